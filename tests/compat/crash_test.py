#!/usr/bin/env python3
"""Durability under SIGKILL, on each backend pair (COMPAT_BACKENDS).

A confluent-kafka producer (acks=all, idempotence off) sends numbered records
round-robin to a 3-partition topic and records every acknowledgement
(partition, offset, value) from its delivery callbacks. After 40% of them,
paced, and a burst of 500 unpaced ones, the broker gets `kill -9` with
hundreds of records in flight; it is started again on the same port, data
dir, catalog and store while the producer keeps going (librdkafka reconnects
and retries). Then everything is read back:

  acked-durable       every acknowledged value is at its acknowledged offset
  offsets-contiguous  each partition reads as offsets 0..HW-1, no gap, no repeat,
                      and holds only values this producer sent
  all-delivered       every record was acknowledged in the end (the restarted
                      broker took the retries)
  second-restart      after another SIGKILL and restart the log reads the same

Duplicated values are allowed (a batch committed just before the kill is
retried without idempotence) and reported. With --idempotent
(enable.idempotence=true, scenarios named crash-idempotent/...) they are not:

  no-duplicates       every value is in the log exactly once

With --agents N (N > 1, scenarios named crash-Nagents/... and
crash-idempotent-Nagents/...) the broker is a cluster of N agents sharing one
catalog and store (harness.Cluster), the producer is bootstrapped with all of
them, and the SIGKILL hits the agent that leads partition 0, which is then
started again on its port; the second restart kills and restarts them all.

  cluster-formed      Metadata through every agent lists all N (at the start)

With --transactional (scenarios crash-transactional/... and, with --agents N,
crash-transactional-Nagents/...) a confluent-kafka transactional producer
sends numbered records (2000) in transactions of --txn-size (50) over the
three partitions, committing each. Each attempt at a transaction tags its
values with its attempt number ("v-<n>-a<attempt>"), so a resent
transaction's records differ from those of an aborted attempt. Errors are
handled as confluent-kafka documents: retriable -> commit_transaction (or
abort_transaction) again; txn_requires_abort -> abort_transaction and the
transaction resent as its next attempt; fatal -> a new producer with the same
transactional.id (its init_transactions fences the old one and completes or
aborts its transaction; whether that attempt committed is then read at
read_committed). The stream:

  - at --kill-after, before the transaction there begins, two other
    transactional.ids each leave a transaction open (a record in each
    partition, acknowledged): "abandoned" (transaction.timeout.ms 5 s) is
    never touched again, the broker's timeout check has to abort it;
    "zombie" is fenced once all is committed (a new producer with its
    transactional.id calls init_transactions, then the zombie
    commit_transaction);
  - half-way through that transaction the broker (or the agent leading
    partition 0) gets `kill -9` and is started again 0.5 s later;
  - the next transaction's first attempt is aborted on purpose once its
    records are acknowledged, and resent;
  - 30% of the transactions later, with all its records acknowledged, the
    same process gets a second `kill -9` 2 ms into commit_transaction
    (EndTxn and the markers in flight), and is started again.

The producer goes on until every transaction is committed. The broker gets
--transaction-abort-check-interval-ms 1000 when its --help lists it. Then:

  txn-committed-exactly-once  at read_committed every record of every committed
                      attempt is there exactly once, in its partition and in
                      order, and no record number appears twice
  txn-no-aborted-visible      at read_committed every value belongs to a
                      committed attempt: nothing of an aborted attempt, of the
                      abandoned or of the zombie transaction (and some records
                      of aborted attempts are in the log, read_uncommitted)
  txn-read-uncommitted-superset  read_uncommitted has every record read_committed
                      has, at the same offset
  txn-open-at-kill-aborted    the abandoned and the zombie transaction's acknowledged
                      records are in the log (read_uncommitted), and
                      read_committed reads up to the high watermark past them:
                      both were aborted; the zombie's commit_transaction fails
                      with a fatal error (fenced)
  second-restart      after another SIGKILL and restart read_committed reads
                      the same

Usage: crash_test.py [--records N] [--kill-after FRACTION] [--idempotent | --transactional [--txn-size N]]
                     [--agents N]
"""

import argparse
import functools
import logging
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,  # noqa: E402
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import harness  # noqa: E402

PARTITIONS = 3
READ_TIMEOUT_S = 90
# Records sent unpaced right before the SIGKILL.
KILL_BURST = 500


def client_logger(path):
    """librdkafka's own log (every refused reconnect while the broker is down)
    goes to a file in the broker's dir instead of the terminal."""
    log = logging.getLogger("rdkafka:" + path)
    if not log.handlers:
        h = logging.FileHandler(path)
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(h)
        log.setLevel(logging.DEBUG)
        log.propagate = False
    return log


def read_partition(bootstrap, topic, partition, logger):
    """All (offset, value) of a partition from its start to its high watermark."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": harness.unique("crash-read"),
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "error"}, logger=logger)
    try:
        # Errors right after a restart are retried for a while, as clients do.
        deadline = time.monotonic() + 30
        while True:
            try:
                low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        out = []
        if high == 0:
            return low, high, out
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if out and out[-1][0] >= high - 1:
                        break
                    continue
                raise RuntimeError("consumer error on partition %d: %s" % (partition, m.error()))
            out.append((m.offset(), m.value()))
            if m.offset() >= high - 1:
                break
        else:
            raise RuntimeError("partition %d: read %d records of %d in %d s"
                               % (partition, len(out), high - low, READ_TIMEOUT_S))
        return low, high, out
    finally:
        c.close()


def read_all(bootstrap, topic, logger):
    return {p: read_partition(bootstrap, topic, p, logger) for p in range(PARTITIONS)}


def check_log(log, acked, sent_values):
    """Returns (problems of offsets-contiguous, problems of acked-durable, duplicates)."""
    contiguous, durable = [], []
    seen = {}
    for p, (low, high, recs) in sorted(log.items()):
        offsets = [o for o, _ in recs]
        if low != 0:
            contiguous.append("partition %d: log start offset %d, expected 0" % (p, low))
        if offsets != list(range(0, high)):
            gaps = sorted(set(range(0, high)) - set(offsets))
            repeats = sorted({o for o in offsets if offsets.count(o) > 1})
            contiguous.append("partition %d: read %d records for high watermark %d; missing offsets %s%s; "
                              "repeated %s; first offsets %s"
                              % (p, len(offsets), high, gaps[:10], "..." if len(gaps) > 10 else "",
                                 repeats[:10], offsets[:5]))
        for o, v in recs:
            if v not in sent_values:
                contiguous.append("partition %d offset %d: value %r was never sent" % (p, o, v[:40] if v else v))
            seen.setdefault(v, []).append((p, o))
    by_pos = {p: dict(recs) for p, (_, _, recs) in log.items()}
    for p, o, v in acked:
        have = by_pos.get(p, {}).get(o)
        if have != v:
            durable.append("acked %r at partition %d offset %d, log has %r there" % (v, p, o, have))
    dups = {v: where for v, where in seen.items() if len(where) > 1}
    return contiguous, durable, dups


def leader_agent(cluster, producer, topic, partition):
    """Index of the agent the cluster names as the partition's leader."""
    md = producer.list_topics(topic, timeout=10)
    node = md.topics[topic].partitions[partition].leader
    return cluster.index_of_port(md.brokers[node].port), node


def run_backend(backend, args):
    base = "crash-idempotent" if args.idempotent else "crash"
    if args.agents > 1:
        base += "-%dagents" % args.agents
        broker = harness.Cluster(backend, "crash-" + backend, args.agents)
    else:
        broker = harness.Broker(backend, "crash-" + backend)
    name = "%s/%s" % (base, backend)
    ok = True

    def fail(scenario, detail):
        nonlocal ok
        ok = False
        harness.record("FAIL", "%s/%s" % (name, scenario), detail)

    def passed(scenario):
        harness.record("PASS", "%s/%s" % (name, scenario))

    try:
        try:
            broker.start()
            if args.agents > 1:
                passed("cluster-formed")
        except harness.ClusterNotFormed as e:
            fail("cluster-formed", str(e))
        logger = client_logger(os.path.join(broker.dir, "clients.log"))
        topic = harness.unique("crash")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap}, logger=logger)
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)

        acked, failed = [], []
        lock = threading.Lock()

        def on_delivery(err, msg):
            with lock:
                if err is None:
                    acked.append((msg.partition(), msg.offset(), msg.value()))
                else:
                    failed.append((msg.value(), str(err)))

        producer = Producer({
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "enable.idempotence": args.idempotent,
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            "retry.backoff.ms": 100,
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 1000,
        }, logger=logger)
        sent_values = set()
        kill_at = int(args.records * args.kill_after)
        killed = restarted = False
        acked_before_kill = 0
        restart_error = None

        def restart_soon():
            nonlocal restarted, restart_error
            time.sleep(0.5)
            try:
                victim.start()
                restarted = True
            except harness.BrokerError as e:
                restart_error = e

        # The process to kill: the broker, or partition 0's leader in a cluster.
        victim = broker
        if args.agents > 1:
            idx, node = leader_agent(broker, producer, topic, 0)
            victim = broker.agents[idx]
            print("crash %s: partition 0 is led by node %d, agent %d (%s)" % (backend, node, idx, victim.bootstrap),
                  flush=True)

        restarter = None
        burst_end = kill_at + KILL_BURST
        for i in range(args.records):
            value = b"rec-%07d" % i
            sent_values.add(value)
            while True:
                try:
                    producer.produce(topic, value=value, key=b"%d" % i, partition=i % PARTITIONS,
                                     on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            # Paced (~1 ms a record) so that acknowledgements keep coming, except
            # for a burst right before the kill, so that many records are in
            # flight when it lands; the producer keeps sending while the broker
            # is down and while it restarts.
            if not (kill_at <= i < burst_end) and i % 20 == 19:
                time.sleep(0.02)
            if not killed and i + 1 == burst_end:
                producer.poll(0.015)  # let the client ship the burst
                with lock:
                    acked_before_kill = len(acked)
                in_flight = len(producer)
                victim.kill9()
                killed = True
                print("crash %s: SIGKILL after %d sent, %d acked, %d in flight or queued"
                      % (backend, i + 1, acked_before_kill, in_flight), flush=True)
                restarter = threading.Thread(target=restart_soon)
                restarter.start()
        left = producer.flush(150)
        if restarter:
            restarter.join()
        if restart_error:
            raise restart_error
        print("crash %s: %d sent, %d acked (%d before the kill), %d failed, %d undelivered"
              % (backend, args.records, len(acked), acked_before_kill, len(failed), left), flush=True)
        if acked_before_kill == 0:
            fail("setup", "nothing was acknowledged before the kill; cannot judge durability")

        log = read_all(broker.bootstrap, topic, logger)
        contiguous, durable, dups = check_log(log, acked, sent_values)
        print("crash %s: high watermarks %s, %d values duplicated by retries"
              % (backend, [log[p][1] for p in range(PARTITIONS)], len(dups)), flush=True)
        if durable:
            fail("acked-durable", "%d acknowledged records lost or moved, first: %s" % (len(durable), durable[:5]))
        else:
            passed("acked-durable")
        if contiguous:
            fail("offsets-contiguous", "; ".join(contiguous[:5]))
        else:
            passed("offsets-contiguous")
        if args.idempotent:
            if dups:
                some = sorted(dups.items())[:3]
                fail("no-duplicates", "%d values written more than once despite idempotence, e.g. %s" % (len(dups), some))
            else:
                passed("no-duplicates")
        if failed or left:
            fail("all-delivered", "%d deliveries failed (first: %s), %d undelivered"
                 % (len(failed), failed[:3], left))
        elif not restarted:
            fail("all-delivered", "broker was not restarted")
        else:
            passed("all-delivered")

        # The same log after another hard kill and a cold start. The clients go
        # first, so they do not fill the output with reconnect attempts.
        del producer, admin
        broker.kill9()
        broker.start()
        again = read_all(broker.bootstrap, topic, logger)
        if again != log:
            diff = [p for p in range(PARTITIONS) if again.get(p) != log.get(p)]
            fail("second-restart", "partitions %s read differently after a second SIGKILL+restart: "
                 "high watermarks %s then %s" % (diff, [log[p][1] for p in diff], [again[p][1] for p in diff]))
        else:
            passed("second-restart")
    except Exception as e:  # noqa: BLE001 - any error is this backend's failure
        fail("run", "%s: %s" % (type(e).__name__, str(e) or "no answer in time"))
        if not isinstance(e, harness.BrokerError):  # those carry the log already
            print("--- broker log %s (tail) ---\n%s" % (broker.log_path, broker.log_tail()), flush=True)
    finally:
        broker.cleanup(keep=not ok)
        if not ok:
            print("crash %s: kept %s" % (backend, broker.dir), flush=True)
    return ok

# -- --transactional -----------------------------------------------------------

TXN_TIMEOUT_MS = 60_000
# The abandoned transaction's transaction.timeout.ms: it is aborted by the
# broker's timeout check after the restart.
ABANDONED_TIMEOUT_MS = 5_000
OP_TIMEOUT_S = 30
# All transactions committed within this, kill and restart included.
PRODUCE_DEADLINE_S = 150


def abort_check_args():
    """--transaction-abort-check-interval-ms 1000 when the broker's --help lists
    it. Not asked of the reference script (it would start Kafka for --help;
    Kafka checks every 10 s)."""
    if os.environ.get("COMPAT_REFERENCE") == "1":
        return []
    try:
        out = subprocess.run([harness.broker_binary(), "--help"], capture_output=True, text=True,
                             timeout=30, env=harness.broker_env()).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--transaction-abort-check-interval-ms", "1000"] if "--transaction-abort-check-interval-ms" in out else []


def high_watermarks(bootstrap, topic, logger):
    """{partition: high watermark}, retrying errors right after a restart.
    (read_uncommitted: librdkafka's default, read_committed, would give the
    last stable offsets.)"""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": harness.unique("crash-hw"),
                  "enable.auto.commit": False, "isolation.level": "read_uncommitted"}, logger=logger)
    try:
        out = {}
        deadline = time.monotonic() + 30
        for p in range(PARTITIONS):
            while True:
                try:
                    out[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                    break
                except KafkaException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        return out
    finally:
        c.close()


def read_view(bootstrap, topic, isolation, logger, ends, timeout_s=READ_TIMEOUT_S):
    """Each partition's (offset, value) records as ISOLATION sees them, from the
    start until the consumer's end-of-partition position reaches ends[p] (the
    high watermark: at read_committed the last stable offset has to catch up
    with it first, i.e. every transaction below it has ended), or timeout_s.
    Returns ({p: [(offset, value)]}, {p: end position reached})."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": harness.unique("crash-read"),
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", "isolation.level": isolation}, logger=logger)
    out = {p: [] for p in range(PARTITIONS)}
    reached = {p: 0 for p in range(PARTITIONS)}
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout_s
        while any(reached[p] < ends[p] for p in range(PARTITIONS)) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            p = m.partition()
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    reached[p] = max(reached[p], m.offset())
                    continue
                raise RuntimeError("%s consumer error on partition %s: %s" % (isolation, p, m.error()))
            out[p].append((m.offset(), m.value()))
            reached[p] = max(reached[p], m.offset() + 1)
        return out, reached
    finally:
        c.close()


def run_backend_txn(backend, args):
    base = "crash-transactional"
    extra = abort_check_args()
    if args.agents > 1:
        base += "-%dagents" % args.agents
        broker = harness.Cluster(backend, "crash-txn-" + backend, args.agents, extra)
    else:
        broker = harness.Broker(backend, "crash-txn-" + backend, extra)
    name = "%s/%s" % (base, backend)
    ok = True
    t0 = time.monotonic()

    def fail(scenario, detail):
        nonlocal ok
        ok = False
        harness.record("FAIL", "%s/%s" % (name, scenario), detail)

    def passed(scenario):
        harness.record("PASS", "%s/%s" % (name, scenario))

    def say(msg):
        print("crash-transactional %s (%.1fs): %s" % (backend, time.monotonic() - t0, msg), flush=True)

    producer = abandoned = zombie = admin = None
    try:
        try:
            broker.start()
            if args.agents > 1:
                passed("cluster-formed")
        except harness.ClusterNotFormed as e:
            fail("cluster-formed", str(e))
        logger = client_logger(os.path.join(broker.dir, "clients.log"))
        topic = harness.unique("crash-txn")
        txid = harness.unique("crash-txid")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap}, logger=logger)
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
        deadline = time.monotonic() + PRODUCE_DEADLINE_S

        # attempts[(txn, attempt)]: [(record number, value)]; each attempt ends
        # up in committed (txn -> its committed attempt) or aborted.
        attempts, committed, aborted = {}, {}, set()
        delivered, delivery_errors = {}, {}
        events = []          # every error the producer saw, in order
        incarnations = [0]   # producers made for txid
        atomicity = []       # attempts of unknown outcome read back partly visible
        lock = threading.Lock()

        def on_delivery(key, err, msg):
            with lock:
                if err is None:
                    delivered.setdefault(key, []).append((msg.partition(), msg.offset(), msg.value()))
                else:
                    delivery_errors.setdefault(key, []).append(str(err))

        def kind_of(err):
            return ("fatal" if err.fatal() else "abortable" if err.txn_requires_abort() else
                    "retriable" if err.retriable() else "other")

        def note(key, call, err):
            events.append((key, call, kind_of(err), err.name()))
            say("txn %d attempt %d: %s: %s (%s): %s" % (key[0], key[1], call, err.name(), kind_of(err), err.str()))
            return kind_of(err)

        def retrying(key, call, fn):
            """fn() again while it fails with a retriable error (documented for
            init_transactions, commit_transaction and abort_transaction)."""
            while True:
                try:
                    return fn()
                except KafkaException as e:
                    err = e.args[0]
                    if kind_of(err) == "retriable" and time.monotonic() < deadline:
                        note(key, call, err)
                        continue
                    raise

        def new_producer(key):
            incarnations[0] += 1
            p = Producer({
                "bootstrap.servers": broker.bootstrap,
                "transactional.id": txid,
                "transaction.timeout.ms": TXN_TIMEOUT_MS,
                "message.timeout.ms": TXN_TIMEOUT_MS,
                "linger.ms": 5,
                "retry.backoff.ms": 100,
                "reconnect.backoff.ms": 100,
                "reconnect.backoff.max.ms": 1000,
                "debug": "eos",  # the transaction's steps, in clients.log
            }, logger=logger)
            retrying(key, "init_transactions", lambda: p.init_transactions(OP_TIMEOUT_S))
            return p

        def resolve(key):
            """After a fatal error the new producer's init_transactions has ended
            the attempt's transaction one way or the other: read_committed
            tells which. True if it committed."""
            want = {v for _, v in attempts[key]}
            hw = high_watermarks(broker.bootstrap, topic, logger)
            view, reached = read_view(broker.bootstrap, topic, "read_committed", logger, hw)
            visible = {v for recs in view.values() for _, v in recs} & want
            say("txn %d attempt %d after a fatal error: %d of its %d records visible at read_committed"
                % (key[0], key[1], len(visible), len(want)))
            if visible and visible != want:
                atomicity.append("txn %d attempt %d: %d of its %d records visible at read_committed (read to %s of %s)"
                                 % (key[0], key[1], len(visible), len(want), reached, hw))
            return bool(visible)

        producer = new_producer((-1, 0))
        victim = broker
        if args.agents > 1:
            idx, node = leader_agent(broker, producer, topic, 0)
            victim = broker.agents[idx]
            say("partition 0 is led by node %d, agent %d (%s)" % (node, idx, victim.bootstrap))

        killed = killed_in_commit = False
        restarts = 0
        restart_error = None
        abandoned_acked = []

        def restart_soon(kill_after_s=None):
            """Starts the victim again 0.5 s after its SIGKILL; kill_after_s: the
            SIGKILL too, that long from now."""
            nonlocal restarts, restart_error
            if kill_after_s is not None:
                time.sleep(kill_after_s)
                victim.kill9()
                say("SIGKILL 2 ms after commit_transaction of transaction %d was called" % kill2_txn)
            time.sleep(0.5)
            try:
                victim.start()
                restarts += 1
            except harness.BrokerError as e:
                restart_error = e

        def leave_one_open(what, timeout_ms):
            """Another transactional.id's transaction: a record in each partition,
            acknowledged, and the transaction left open."""
            errs = []
            p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": txid + "-" + what,
                          "transaction.timeout.ms": timeout_ms,
                          "message.timeout.ms": min(timeout_ms, OP_TIMEOUT_S * 1000), "linger.ms": 0}, logger=logger)
            p.init_transactions(OP_TIMEOUT_S)
            p.begin_transaction()
            for part in range(PARTITIONS):
                p.produce(topic, value=b"%s-%d" % (what.encode(), part), partition=part,
                          on_delivery=lambda err, msg: abandoned_acked.append((msg.partition(), msg.offset(), msg.value()))
                          if err is None else errs.append(str(err)))
            left = p.flush(OP_TIMEOUT_S)
            if left or errs:
                raise RuntimeError("%s transaction: %d undelivered, errors %s" % (what, left, errs))
            return p

        n_txns = (args.records + args.txn_size - 1) // args.txn_size
        kill_txn = min(int(n_txns * args.kill_after), n_txns - 1)
        kill2_txn = min(kill_txn + max(1, int(n_txns * 0.3)), n_txns - 1)
        restarter = None
        for k in range(n_txns):
            nums = range(k * args.txn_size, min((k + 1) * args.txn_size, args.records))
            attempt = 0
            while k not in committed:
                if time.monotonic() > deadline:
                    raise RuntimeError("transaction %d not committed within %d s (%d of %d committed)"
                                       % (k, PRODUCE_DEADLINE_S, len(committed), n_txns))
                attempt += 1
                key = (k, attempt)
                attempts[key] = [(n, b"v-%07d-a%d" % (n, attempt)) for n in nums]
                if k == kill_txn and not killed:
                    abandoned = leave_one_open("abandoned", ABANDONED_TIMEOUT_MS)
                    zombie = leave_one_open("zombie", TXN_TIMEOUT_MS)
                call = "begin_transaction"
                try:
                    producer.begin_transaction()
                    call = "produce"
                    for i, (n, v) in enumerate(attempts[key]):
                        if k == kill_txn and not killed and i == len(nums) // 2:
                            # Half of this transaction sent (some of it on the
                            # wire), the rest still to come.
                            producer.poll(0.015)
                            with lock:
                                acked_now = len(delivered.get(key, []))
                            victim.kill9()
                            killed = True
                            say("SIGKILL in transaction %d of %d, attempt %d: %d of its records produced, %d acked, "
                                "%d in flight or queued; the abandoned and the zombie transaction open"
                                % (k, n_txns, attempt, i, acked_now, len(producer)))
                            restarter = threading.Thread(target=restart_soon)
                            restarter.start()
                        while True:
                            try:
                                producer.produce(topic, value=v, key=b"%d" % n, partition=n % PARTITIONS,
                                                 on_delivery=functools.partial(on_delivery, key))
                                break
                            except BufferError:
                                producer.poll(0.05)
                        producer.poll(0)
                    if k == kill_txn + 1 and attempt == 1:
                        # Aborted on purpose once its records are acknowledged:
                        # aborted records in the log for read_committed to skip.
                        call = "flush"
                        left = producer.flush(OP_TIMEOUT_S)
                        call = "abort_transaction"
                        retrying(key, call, lambda: producer.abort_transaction(OP_TIMEOUT_S))
                        aborted.add(key)
                        say("transaction %d attempt %d aborted on purpose (%d of its records unacknowledged)"
                            % (k, attempt, left))
                        continue
                    if k == kill2_txn and killed and not killed_in_commit:
                        # The second SIGKILL lands in the commit: every record
                        # acknowledged first, then EndTxn and the markers.
                        call = "flush"
                        left = producer.flush(OP_TIMEOUT_S)
                        if left:
                            raise RuntimeError("transaction %d: %d records not delivered within %d s"
                                               % (k, left, OP_TIMEOUT_S))
                        restarter.join()
                        if restart_error:
                            raise restart_error
                        killed_in_commit = True
                        restarter = threading.Thread(target=restart_soon, args=(0.002,))
                        restarter.start()
                    call = "commit_transaction"
                    began = time.monotonic()
                    retrying(key, call, lambda: producer.commit_transaction(OP_TIMEOUT_S))
                    committed[k] = attempt
                    if k == kill2_txn and killed_in_commit:
                        say("transaction %d attempt %d: commit_transaction returned after %.2f s"
                            % (k, attempt, time.monotonic() - began))
                except KafkaException as e:
                    err = e.args[0]
                    kind = note(key, call, err)
                    if kind == "abortable":
                        try:
                            retrying(key, "abort_transaction", lambda: producer.abort_transaction(OP_TIMEOUT_S))
                            aborted.add(key)
                            continue
                        except KafkaException as e2:
                            kind = note(key, "abort_transaction", e2.args[0])
                    if kind != "fatal":
                        raise
                    # A new incarnation fences the old one; the transaction of
                    # this attempt is ended by its init_transactions.
                    producer = None
                    producer = new_producer(key)
                    if resolve(key):
                        committed[k] = attempt
                    else:
                        aborted.add(key)
        if restarter:
            restarter.join()
        if restart_error:
            raise restart_error
        kinds = {}
        for _, _, kind, ename in events:
            kinds["%s %s" % (kind, ename)] = kinds.get("%s %s" % (kind, ename), 0) + 1
        say("%d transactions committed in %d attempts (%d aborted), %d producer(s); errors seen: %s"
            % (len(committed), len(attempts), len(aborted), incarnations[0], kinds or "none"))
        if not killed or not killed_in_commit or restarts != 2:
            fail("setup", "the broker was killed in a transaction: %s, in a commit: %s, restarted %d times, want 2"
                 % (killed, killed_in_commit, restarts))

        # The zombie's successor: its init_transactions fences the zombie and
        # aborts the transaction it left open; the zombie's commit is refused.
        successor = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": txid + "-zombie"},
                             logger=logger)
        successor.init_transactions(OP_TIMEOUT_S)
        successor = None
        zombie_problem = None
        try:
            zombie.commit_transaction(OP_TIMEOUT_S)
            zombie_problem = "the zombie's commit_transaction succeeded after its successor's init_transactions"
        except KafkaException as e:
            err = e.args[0]
            say("zombie commit_transaction after the successor's init_transactions: %s (%s): %s"
                % (err.name(), kind_of(err), err.str()))
            if not err.fatal():
                zombie_problem = ("the zombie's commit_transaction failed with %s (%s), want a fatal error (fenced)"
                                  % (err.name(), kind_of(err)))
        zombie = None

        hw = high_watermarks(broker.bootstrap, topic, logger)
        ru, ru_reached = read_view(broker.bootstrap, topic, "read_uncommitted", logger, hw)
        rc, rc_reached = read_view(broker.bootstrap, topic, "read_committed", logger, hw)
        say("high watermarks %s; read_uncommitted %d records, read_committed %d (reached %s)"
            % ([hw[p] for p in range(PARTITIONS)], sum(map(len, ru.values())), sum(map(len, rc.values())),
               [rc_reached[p] for p in range(PARTITIONS)]))

        committed_values = {v: (k, n) for k, a in committed.items() for n, v in attempts[(k, a)]}
        aborted_values = {v: key for key in aborted for _, v in attempts[key]}
        abandoned_values = {v for _, _, v in abandoned_acked}  # and the zombie's
        visible = [(p, o, v) for p in range(PARTITIONS) for o, v in rc[p]]
        stuck = ["partition %d: read_committed stopped at %d, high watermark %d" % (p, rc_reached[p], hw[p])
                 for p in range(PARTITIONS) if rc_reached[p] < hw[p]]

        # txn-committed-exactly-once
        problems = list(atomicity)
        if len(committed) != n_txns:
            problems.append("%d of %d transactions committed" % (len(committed), n_txns))
        where = {}
        for p, o, v in visible:
            where.setdefault(v, []).append((p, o))
        missing = [v for v in committed_values if v not in where]
        if missing:
            problems.append("%d committed records not visible, first %s%s"
                            % (len(missing), sorted(missing)[:5], "; " + "; ".join(stuck) if stuck else ""))
        twice = {v: w for v, w in where.items() if len(w) > 1}
        if twice:
            problems.append("%d values visible more than once, e.g. %s" % (len(twice), sorted(twice.items())[:3]))
        by_num = {}
        for p, o, v in visible:
            if v.startswith(b"v-"):
                by_num.setdefault(int(v.split(b"-")[1]), []).append((p, o, v))
        num_twice = {n: w for n, w in by_num.items() if len({v for _, _, v in w}) > 1}
        if num_twice:
            problems.append("%d record numbers visible in more than one attempt, e.g. %s"
                            % (len(num_twice), sorted(num_twice.items())[:3]))
        wrong_part = [(p, o, v) for p, o, v in visible if v in committed_values and committed_values[v][1] % PARTITIONS != p]
        if wrong_part:
            problems.append("%d records in the wrong partition, e.g. %s" % (len(wrong_part), wrong_part[:3]))
        for p in range(PARTITIONS):
            nums = [committed_values[v][1] for o, v in rc[p] if v in committed_values]
            if nums != sorted(nums):
                bad = next(i for i in range(1, len(nums)) if nums[i] < nums[i - 1])
                problems.append("partition %d out of order: record %d after %d" % (p, nums[bad], nums[bad - 1]))
        if problems:
            fail("txn-committed-exactly-once", "; ".join(problems))
        else:
            passed("txn-committed-exactly-once")

        # txn-no-aborted-visible
        leaked = []
        for p, o, v in visible:
            if v in committed_values:
                continue
            what = ("of aborted txn %d attempt %d" % aborted_values[v] if v in aborted_values
                    else "of the abandoned or zombie transaction" if v in abandoned_values else "never committed")
            leaked.append("%r at %d/%d (%s)" % (v, p, o, what))
        in_log_aborted = sum(1 for p in range(PARTITIONS) for _, v in ru[p] if v in aborted_values)
        if leaked:
            fail("txn-no-aborted-visible", "%d values visible at read_committed that no committed attempt wrote: %s"
                 % (len(leaked), "; ".join(leaked[:5])))
        elif not in_log_aborted:
            fail("txn-no-aborted-visible", "no record of an aborted attempt in the log (read_uncommitted): "
                 "nothing to check")
        else:
            passed("txn-no-aborted-visible")
        say("%d records of %d aborted attempts in the log (read_uncommitted), none expected at read_committed"
            % (in_log_aborted, len(aborted)))

        # txn-read-uncommitted-superset
        ru_pos = {p: dict(ru[p]) for p in range(PARTITIONS)}
        absent = [(p, o, v) for p, o, v in visible if ru_pos[p].get(o) != v]
        if absent:
            fail("txn-read-uncommitted-superset", "%d records read at read_committed are not at their offset at "
                 "read_uncommitted, e.g. %s" % (len(absent), [(p, o, v, ru_pos[p].get(o)) for p, o, v in absent[:3]]))
        elif any(ru_reached[p] < hw[p] for p in range(PARTITIONS)):
            fail("txn-read-uncommitted-superset", "read_uncommitted stopped at %s below the high watermarks %s"
                 % (ru_reached, hw))
        else:
            passed("txn-read-uncommitted-superset")

        # txn-open-at-kill-aborted
        problems = [zombie_problem] if zombie_problem else []
        for p, o, v in abandoned_acked:
            if ru_pos[p].get(o) != v:
                problems.append("acknowledged %r at %d/%d, read_uncommitted has %r there" % (v, p, o, ru_pos[p].get(o)))
        problems += stuck
        if problems:
            fail("txn-open-at-kill-aborted", "; ".join(problems)
                 + ("; (a transaction open at the kill was never aborted)" if stuck else ""))
        else:
            passed("txn-open-at-kill-aborted")

        # The same read_committed view after another hard kill and a cold start.
        producer = abandoned = zombie = admin = None
        broker.kill9()
        broker.start()
        hw2 = high_watermarks(broker.bootstrap, topic, logger)
        rc2, reached2 = read_view(broker.bootstrap, topic, "read_committed", logger, hw2)
        if rc2 != rc:
            diff = [p for p in range(PARTITIONS) if rc2.get(p) != rc.get(p)]
            fail("second-restart", "partitions %s read differently at read_committed after a second SIGKILL+restart: "
                 "%s records then %s; high watermarks %s then %s, read to %s"
                 % (diff, [len(rc[p]) for p in diff], [len(rc2[p]) for p in diff], hw, hw2, reached2))
        else:
            passed("second-restart")
        say("done")
    except Exception as e:  # noqa: BLE001 - any error is this backend's failure
        fail("run", "%s: %s" % (type(e).__name__, str(e) or "no answer in time"))
        if not isinstance(e, harness.BrokerError):  # those carry the log already
            print("--- broker log %s (tail) ---\n%s" % (broker.log_path, broker.log_tail()), flush=True)
    finally:
        producer = abandoned = zombie = admin = None
        broker.cleanup(keep=not ok)
        if not ok:
            print("crash-transactional %s: kept %s" % (backend, broker.dir), flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=None, help="default 5000, with --transactional 2000")
    ap.add_argument("--kill-after", type=float, default=0.4,
                    help="SIGKILL after this fraction of the records (plus a burst of %d) is sent" % KILL_BURST)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--idempotent", action="store_true", help="enable.idempotence=true")
    mode.add_argument("--transactional", action="store_true",
                      help="a transactional producer, a transaction per --txn-size records")
    ap.add_argument("--txn-size", type=int, default=50, help="records per transaction (--transactional)")
    ap.add_argument("--agents", type=int, default=harness.agents_wanted(),
                    help="a cluster of this many agents (default: COMPAT_AGENTS, else 1)")
    args = ap.parse_args()
    if args.records is None:
        args.records = 2000 if args.transactional else 5000
    run = run_backend_txn if args.transactional else run_backend
    results = [run(b, args) for b in harness.backends()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
