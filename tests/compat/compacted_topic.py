"""A compacted topic fed by confluent-kafka and read back by the Java consumer
(Kafka 4.4.0's ConsoleConsumer, kafka-clients 4.4.0), on each backend pair in
COMPAT_BACKENDS (issue 14, acceptance 2). One broker per backend pair, its log
cleaner checking every second.

Scenarios (BACKEND embedded or pg-s3):
  compacted/BACKEND/keyless-refused   a record without a key is refused with
                                      INVALID_RECORD (Kafka's message)
  compacted/BACKEND/produce           200,000 records over 2,000 keys, in four
                                      parts through gzip, snappy, lz4 and zstd
                                      producers; then a tombstone for 10% of the
                                      keys (200); a last record of a key "head"
  compacted/BACKEND/java-read-back    once cleaned, the Java consumer from the
                                      beginning reads exactly one record per live
                                      key, its latest value, in offset order, no
                                      tombstone (they are older than the topic's
                                      delete.retention.ms of 5 s), then the head;
                                      min.compaction.lag.ms (20 s) holds the
                                      cleaner off until the bytes are measured
  compacted/BACKEND/stored-bytes      the bytes the topic's index entries point
                                      at fall to under a tenth of what was
                                      written, and the store's objects follow
                                      once garbage collection has run
  compacted/BACKEND/storage-check     with the broker stopped, `streamctl
                                      storage check` finds every index entry's
                                      object and whole, intact batches in it

Prints the figures (records and bytes before and after, seconds to clean).
Usage: compacted_topic.py
"""

import os
import sqlite3
import subprocess
import sys
import time
import traceback

import harness

FAILED = 0


def record(status, name, detail=""):
    global FAILED
    if status == "FAIL":
        FAILED = 1
    harness.record(status, name, detail)

KEYS = 2000
RECORDS = 200_000
TOMBSTONE_EVERY = 10  # every tenth key: 10% of the keys
CODECS = ["gzip", "snappy", "lz4", "zstd"]
DELETE_RETENTION_MS = 5000
MIN_LAG_MS = 20000
CLEAN_TIMEOUT_S = 180
JAVA_LIB = os.path.join(os.environ.get("STREAMHOUSE_CACHE", "/var/cache/streamhouse-ci"), "java", "lib")


def expected_after(produced):
    """(key -> (offset, value)) of the latest record of each key; None = tombstone."""
    latest = {}
    for offset, key, value in produced:
        latest[key] = (offset, value)
    return latest


def produce_all(bootstrap, topic):
    from confluent_kafka import Producer

    produced = []  # (offset, key, value)
    per_codec = RECORDS // len(CODECS)
    n = 0
    for codec in CODECS:
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                      "enable.idempotence": True, "linger.ms": 20, "batch.num.messages": 2000})
        errors = []

        def done(err, msg):
            if err is not None:
                errors.append(err)
            else:
                produced.append((msg.offset(), msg.key().decode(),
                                 None if msg.value() is None else msg.value().decode()))

        for _ in range(per_codec):
            key = "key-%04d" % (n % KEYS)
            p.produce(topic, key=key, value="v%06d-%s" % (n, codec), on_delivery=done)
            n += 1
            if n % 10000 == 0:
                p.poll(0)
        p.flush(60)
        if errors:
            raise AssertionError("%s producer: %s" % (codec, errors[:3]))
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": "zstd", "enable.idempotence": True})
    errors = []

    def done(err, msg):
        if err is not None:
            errors.append(err)
        else:
            produced.append((msg.offset(), msg.key().decode(),
                             None if msg.value() is None else msg.value().decode()))

    for k in range(0, KEYS, TOMBSTONE_EVERY):
        p.produce(topic, key="key-%04d" % k, value=None, on_delivery=done)
    p.flush(60)
    p.produce(topic, key="head", value="head", on_delivery=done)
    p.flush(60)
    if errors:
        raise AssertionError("tombstones: %s" % errors[:3])
    produced.sort()
    return produced


def index_bytes(broker, topic):
    """Bytes the topic's index entries point at, and their count."""
    sql = ("SELECT COALESCE(SUM(e.length), 0), COUNT(*) FROM index_entries e "
           "JOIN topics t ON t.id = e.topic_id WHERE t.name = '%s'" % topic)
    if broker.backend == "embedded":
        db = sqlite3.connect(os.path.join(broker.data_dir, "catalog.db"), timeout=30)
        try:
            total, count = db.execute(sql).fetchone()
        finally:
            db.close()
    else:
        total, count = harness._psql_in(broker.db, sql).strip().split("|")
    return int(total), int(count)


def store_bytes(broker):
    if broker.backend == "embedded":
        total = 0
        for root, _, files in os.walk(os.path.join(broker.data_dir, "objects")):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        return total
    s3 = harness.s3_client()
    total = 0
    kwargs = {"Bucket": broker.bucket}
    if broker.s3_prefix:
        kwargs["Prefix"] = broker.s3_prefix
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        total += sum(o["Size"] for o in page.get("Contents", []))
    return total


def java_read(bootstrap, topic):
    """(offset, key, value or None) of every record, read by the Java consumer."""
    cmd = ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", os.path.join(JAVA_LIB, "*"),
           "org.apache.kafka.tools.consumer.ConsoleConsumer",
           "--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning",
           "--timeout-ms", "15000",
           "--formatter-property", "print.offset=true",
           "--formatter-property", "print.key=true",
           "--formatter-property", "print.value=true",
           "--formatter-property", "key.separator=|",
           "--formatter-property", "null.literal=<TOMBSTONE>"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    records = []
    for line in r.stdout.splitlines():
        if not line.startswith("Offset:"):
            continue
        # "Offset:N|key|value" (the formatter puts key.separator between fields)
        offset, key, value = line.split("|", 2)
        records.append((int(offset[len("Offset:"):]), key, None if value == "<TOMBSTONE>" else value))
    if not records:
        raise AssertionError("the Java consumer read nothing (status %s): %s"
                             % (r.returncode, (r.stderr or r.stdout)[-800:]))
    return records


def run(backend):
    prefix = "compacted/%s" % backend
    broker = harness.new_broker(backend, "compacted-" + backend,
                                extra_args=["--log-cleaner-interval-ms", "1000", "--gc-grace-ms", "5000"])
    try:
        broker.start()
    except harness.BrokerError as e:
        record("FAIL", prefix + "/broker-start", str(e).replace("\n", " ")[:600])
        return
    try:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        topic = harness.unique("compacted")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        # min.compaction.lag.ms holds the cleaner off until the written bytes
        # are measured; by then the tombstones are past delete.retention.ms.
        # The lag then releases the burst entry by entry, pass after pass: at
        # Kafka's default dirty ratio (0.5) whether the tail (the tombstones)
        # is ever worth a pass would depend on where the first pass fell, as
        # it would on Kafka; a low ratio makes every pass count.
        configs = {"cleanup.policy": "compact", "delete.retention.ms": str(DELETE_RETENTION_MS),
                   "min.compaction.lag.ms": str(MIN_LAG_MS), "min.cleanable.dirty.ratio": "0.01"}
        admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(30)

        # A keyless record is refused.
        p = Producer({"bootstrap.servers": broker.bootstrap, "message.send.max.retries": 0})
        outcome = []
        p.produce(topic, value=b"no key", on_delivery=lambda err, msg: outcome.append(err))
        p.flush(30)
        err = outcome[0] if outcome else None
        if err is not None and err.name() == "INVALID_RECORD":
            record("PASS", prefix + "/keyless-refused")
        else:
            record("FAIL", prefix + "/keyless-refused", "got %r" % (err,))

        t0 = time.monotonic()
        produced = produce_all(broker.bootstrap, topic)
        latest = expected_after(produced)
        live = sorted((offset, key, value) for key, (offset, value) in latest.items() if value is not None)
        tombstoned = sum(1 for _, value in latest.values() if value is None)
        if len(produced) == RECORDS + KEYS // TOMBSTONE_EVERY + 1 and tombstoned == KEYS // TOMBSTONE_EVERY:
            record("PASS", prefix + "/produce")
        else:
            record("FAIL", prefix + "/produce", "%d records, %d tombstoned keys" % (len(produced), tombstoned))
        before_bytes, before_entries = index_bytes(broker, topic)
        print("  %s: produced %d records in %.1f s; index: %d entries, %d bytes; store %d bytes"
              % (prefix, len(produced), time.monotonic() - t0, before_entries, before_bytes,
                 store_bytes(broker)), flush=True)

        # The tombstones must be older than delete.retention.ms before a pass
        # may remove them; then wait for the Java consumer to see the result.
        produced_at = time.monotonic()
        deadline = produced_at + CLEAN_TIMEOUT_S
        records = []
        while time.monotonic() < deadline:
            time.sleep(3)
            if time.monotonic() - produced_at < DELETE_RETENTION_MS / 1000:
                continue
            after_bytes, _ = index_bytes(broker, topic)
            if after_bytes * 10 > before_bytes:
                continue
            records = java_read(broker.bootstrap, topic)
            if len(records) == len(live):
                break
        cleaned_s = time.monotonic() - produced_at
        if records == live:
            record("PASS", prefix + "/java-read-back")
        else:
            keys = [r[1] for r in records]
            record("FAIL", prefix + "/java-read-back",
                   "%d records read, %d live keys expected; duplicate keys %d; tombstones %d; first %r"
                   % (len(records), len(live), len(keys) - len(set(keys)),
                      sum(1 for r in records if r[2] is None), records[:3]))
        after_bytes, after_entries = index_bytes(broker, topic)
        # Garbage collection: old objects go after the grace (5 s) and a sweep.
        time.sleep(15)
        after_store = store_bytes(broker)
        print("  %s: cleaned within %.1f s; index: %d entries, %d bytes (%.1f%%); store %d bytes"
              % (prefix, cleaned_s, after_entries, after_bytes, 100.0 * after_bytes / max(before_bytes, 1),
                 after_store), flush=True)
        if after_bytes * 10 <= before_bytes and after_store * 5 <= before_bytes:
            record("PASS", prefix + "/stored-bytes")
        else:
            record("FAIL", prefix + "/stored-bytes",
                   "index %d -> %d bytes, store %d bytes" % (before_bytes, after_bytes, after_store))
        # Every entry the cleaner, the compactor and garbage collection left
        # names whole, intact batches of an object still in the store.
        broker.stop()
        status, output = broker.storage_check()
        last = output.splitlines()[-1] if output else ""
        if status == 0:
            record("PASS", prefix + "/storage-check", last)
        else:
            record("FAIL", prefix + "/storage-check", "exit %d: %s" % (status, output[-600:]))
    except Exception as e:  # noqa: BLE001 - a crash of the runner itself
        traceback.print_exc()
        record("FAIL", prefix + "/run", "%s: %s" % (type(e).__name__, e))
    finally:
        broker.stop()
        broker.cleanup(keep=bool(os.environ.get("COMPAT_KEEP")))


def main(argv):
    for backend in harness.backends():
        run(backend)
    return FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
