"""Transactions with confluent-kafka (librdkafka), for tests/compat/transactions.sh.

One mode per call; each prints "OK <detail>" or "FAIL <reason>" as its last
line and exits 0 or 1 (abandon prints "READY" and waits to be SIGKILLed):

  txn_client.py abandon BOOTSTRAP TOPIC TXID TIMEOUT_MS
      Creates TOPIC (1 partition), a transactional producer with
      transaction.timeout.ms=TIMEOUT_MS begins a transaction, produces
      "abandoned-0".."abandoned-9", flushes, prints "READY" and sleeps (at
      most 300 s): the caller SIGKILLs it with the transaction open.
  txn_client.py after-abandon BOOTSTRAP TOPIC TXID DEADLINE_S
      After the abandoned producer was killed: another transactional.id
      commits "later-0".."later-9" to TOPIC. read_uncommitted reads the
      abandoned records and the later ones (they are in the log);
      read_committed reads nothing at first (the open transaction holds the
      last stable offset below the later records); then, within DEADLINE_S,
      read_committed reads exactly the ten later records and never an
      abandoned one: the broker aborted the abandoned transaction.
  txn_client.py ctp BOOTSTRAP IN OUT GROUP TXID N
      Consume-transform-produce: N records produced (not transactionally)
      to IN (2 partitions); a consumer in GROUP (read_committed, no
      auto-commit) and a transactional producer copy them upper-cased to OUT
      (1 partition), a transaction per batch with send_offsets_to_transaction.
      The first batch's transaction is aborted and the batch reprocessed.
      Then: read_committed reads exactly N records in OUT, each input's
      transform once; read_uncommitted reads N plus the aborted batch; the
      group's committed offsets are IN's end offsets.
"""

import sys
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

OP_TIMEOUT_S = 30


class Failure(Exception):
    pass


def create_topic(boot, topic, partitions):
    admin = AdminClient({"bootstrap.servers": boot})
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                              operation_timeout=OP_TIMEOUT_S, request_timeout=OP_TIMEOUT_S)[topic]
    fut.result(timeout=OP_TIMEOUT_S)
    deadline = time.monotonic() + OP_TIMEOUT_S
    while True:
        md = admin.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        if time.monotonic() > deadline:
            raise Failure("topic %s not in metadata with %d partitions" % (topic, partitions))
        time.sleep(0.2)


def txn_producer(boot, txid, **extra):
    conf = {
        "bootstrap.servers": boot,
        "transactional.id": txid,
        "linger.ms": 5,
        "message.timeout.ms": OP_TIMEOUT_S * 1000,
    }
    conf.update(extra)
    return Producer(conf)


def check_delivery(errors):
    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
    return cb


def produce_all(p, topic, values, partition=None):
    errors = []
    for v in values:
        kwargs = {"value": v.encode(), "on_delivery": check_delivery(errors)}
        if partition is not None:
            kwargs["partition"] = partition
        p.produce(topic, **kwargs)
        p.poll(0)
    left = p.flush(OP_TIMEOUT_S)
    if left or errors:
        raise Failure("%d undelivered, delivery errors %s" % (left, errors[:3]))


def consumer(boot, isolation, group=None, **extra):
    conf = {
        "bootstrap.servers": boot,
        "group.id": group or "txn-reader",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }
    conf.update(extra)
    return Consumer(conf)


def read_all(boot, topic, partitions, isolation, timeout_s=OP_TIMEOUT_S):
    """Every value in TOPIC from its start up to the end (the partition EOF)
    as ISOLATION sees it, in order per partition."""
    c = consumer(boot, isolation)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        eof = set()
        got = []
        deadline = time.monotonic() + timeout_s
        while len(eof) < partitions:
            if time.monotonic() > deadline:
                raise Failure("%s read of %s did not reach the end of every partition within %d s (%d records)"
                              % (isolation, topic, timeout_s, len(got)))
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise Failure("%s consumer: %s" % (isolation, m.error()))
            eof.discard(m.partition())
            got.append(m.value().decode())
        return got
    finally:
        c.close()


def abandon(boot, topic, txid, timeout_ms):
    create_topic(boot, topic, 1)
    # librdkafka wants message.timeout.ms <= transaction.timeout.ms.
    p = txn_producer(boot, txid, **{"transaction.timeout.ms": int(timeout_ms),
                                    "message.timeout.ms": min(int(timeout_ms), OP_TIMEOUT_S * 1000)})
    p.init_transactions(OP_TIMEOUT_S)
    p.begin_transaction()
    produce_all(p, topic, ["abandoned-%d" % i for i in range(10)], partition=0)
    print("READY", flush=True)
    time.sleep(300)
    return "not killed"


def after_abandon(boot, topic, txid, deadline_s):
    deadline_s = float(deadline_s)
    t0 = time.monotonic()
    later = ["later-%d" % i for i in range(10)]
    p = txn_producer(boot, txid)
    p.init_transactions(OP_TIMEOUT_S)
    p.begin_transaction()
    produce_all(p, topic, later, partition=0)
    p.commit_transaction(OP_TIMEOUT_S)

    ru = read_all(boot, topic, 1, "read_uncommitted")
    abandoned = ["abandoned-%d" % i for i in range(10)]
    if ru[:10] != abandoned or ru[10:] != later:
        raise Failure("read_uncommitted read %s, want the 10 abandoned then the 10 later records" % ru)

    first = read_all(boot, topic, 1, "read_committed")
    blocked_s = time.monotonic() - t0
    if first:
        raise Failure("read_committed read %s %.1f s after the kill's successor committed: want nothing while the "
                      "abandoned transaction is open (its first offset holds the last stable offset)" % (first, blocked_s))

    while True:
        got = read_all(boot, topic, 1, "read_committed")
        leaked = [v for v in got if v.startswith("abandoned-")]
        if leaked:
            raise Failure("read_committed read abandoned records %s" % leaked)
        if got == later:
            break
        if got:
            raise Failure("read_committed read %s, want %s" % (got, later))
        if time.monotonic() - t0 > deadline_s:
            raise Failure("read_committed still read nothing %d s after the producer was killed: the abandoned "
                          "transaction was not aborted" % deadline_s)
        time.sleep(0.5)
    took = time.monotonic() - t0
    # The log: abandoned-0..9 (0-9), later-0..9 (10-19), the later commit's
    # marker (20), the abort's marker (21), written before the LSO moved.
    c = consumer(boot, "read_uncommitted")
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=OP_TIMEOUT_S)
    finally:
        c.close()
    if (low, high) != (0, 22):
        raise Failure("watermarks (%d, %d) once the abort is visible, want (0, 22): 20 records, the later commit's "
                      "marker and the abort's" % (low, high))
    return ("read_committed read nothing at first, then exactly later-0..9 (%.1f s after the kill), no abandoned "
            "record; read_uncommitted had all 20; end offset 22 (two markers)" % took)


def ctp(boot, inp, out, group, txid, n):
    n = int(n)
    create_topic(boot, inp, 2)
    create_topic(boot, out, 1)
    values = ["v-%04d" % i for i in range(n)]
    plain = Producer({"bootstrap.servers": boot, "linger.ms": 5})
    for i, v in enumerate(values):
        plain.produce(inp, value=v.encode(), partition=i % 2)
    if plain.flush(OP_TIMEOUT_S):
        raise Failure("input not delivered")

    c = consumer(boot, "read_committed", group=group, **{"enable.partition.eof": False})
    p = txn_producer(boot, txid)
    p.init_transactions(OP_TIMEOUT_S)
    c.subscribe([inp])
    done = 0
    aborted = 0
    deadline = time.monotonic() + 60
    while done < n:
        if time.monotonic() > deadline:
            raise Failure("copied %d of %d records within 60 s" % (done, n))
        msgs = c.consume(num_messages=40, timeout=1.0)
        if not msgs:
            continue
        for m in msgs:
            if m.error():
                raise Failure("consumer: %s" % m.error())
        p.begin_transaction()
        for m in msgs:
            p.produce(out, value=m.value().decode().upper().encode(), partition=0)
        positions = [tp for tp in c.position(c.assignment()) if tp.offset >= 0]
        p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), OP_TIMEOUT_S)
        if aborted == 0:
            # Delivered first: abort_transaction purges what is still queued,
            # and the aborted records must be in the log for the
            # read_uncommitted count.
            if p.flush(OP_TIMEOUT_S):
                raise Failure("the batch to abort was not delivered within %d s" % OP_TIMEOUT_S)
            p.abort_transaction(OP_TIMEOUT_S)
            aborted = len(msgs)
            # Back to each partition's first offset of the batch: reprocessed.
            firsts = {}
            for m in msgs:
                firsts.setdefault(m.partition(), m.offset())
            for part, off in firsts.items():
                c.seek(TopicPartition(inp, part, off))
            continue
        p.commit_transaction(OP_TIMEOUT_S)
        done += len(msgs)
    c.close()

    rc = read_all(boot, out, 1, "read_committed")
    want = sorted(v.upper() for v in values)
    if len(rc) != n or sorted(rc) != want:
        dup = len(rc) - len(set(rc))
        raise Failure("read_committed read %d records in %s (%d duplicates, %d of the %d transforms), want exactly %d"
                      % (len(rc), out, dup, len(set(rc) & set(want)), n, n))
    ru = read_all(boot, out, 1, "read_uncommitted")
    if len(ru) != n + aborted:
        raise Failure("read_uncommitted read %d records in %s, want %d (N plus the aborted batch of %d)"
                      % (len(ru), out, n + aborted, aborted))

    probe = consumer(boot, "read_committed", group=group)
    try:
        tps = [TopicPartition(inp, part) for part in range(2)]
        committed = probe.committed(tps, timeout=OP_TIMEOUT_S)
        ends = [probe.get_watermark_offsets(tp, timeout=OP_TIMEOUT_S)[1] for tp in tps]
    finally:
        probe.close()
    offs = [tp.offset for tp in committed]
    if offs != ends or sum(ends) != n:
        raise Failure("group %s committed offsets %s, want the input's end offsets %s (sum %d)" % (group, offs, ends, n))
    return ("%d records copied in transactions, the first batch of %d aborted and redone; read_committed: %d, "
            "read_uncommitted: %d; group offsets %s = end offsets" % (n, aborted, len(rc), len(ru), offs))


MODES = {"abandon": abandon, "after-abandon": after_abandon, "ctp": ctp}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        print("usage: txn_client.py abandon|after-abandon|ctp ARGS...", file=sys.stderr)
        return 2
    try:
        print("OK " + MODES[sys.argv[1]](*sys.argv[2:]), flush=True)
        return 0
    except (Failure, KafkaException) as e:
        print("FAIL %s: %s" % (type(e).__name__, e), flush=True)
    except Exception as e:  # anything else is a failure too, with its class
        print("FAIL unexpected %s: %s" % (type(e).__name__, e), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
