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

Usage: crash_test.py [--records N] [--kill-after FRACTION] [--idempotent] [--agents N]
"""

import argparse
import logging
import os
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--kill-after", type=float, default=0.4,
                    help="SIGKILL after this fraction of the records (plus a burst of %d) is sent" % KILL_BURST)
    ap.add_argument("--idempotent", action="store_true", help="enable.idempotence=true")
    ap.add_argument("--agents", type=int, default=harness.agents_wanted(),
                    help="a cluster of this many agents (default: COMPAT_AGENTS, else 1)")
    args = ap.parse_args()
    results = [run_backend(b, args) for b in harness.backends()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
