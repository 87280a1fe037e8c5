"""confluent-kafka (current librdkafka) against a fresh StreamHouse broker, on
each backend pair: produce with acks=all and every codec, keys and headers,
explicit CreateTime timestamps; read back with assign() from the beginning, from
an offset and from offsets_for_times(); AdminClient create/list/delete.

Every comparison is exact: key, value, headers (order included), offset and
timestamp of each record, and nothing more than what was produced."""

import os
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, KafkaError,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

import harness

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
N = 1000
HALF = N // 2
# Burst 2's timestamps start this far after burst 1's, so a timestamp between
# the bursts has exactly one right answer: offset HALF.
BURST_GAP_MS = 10_000
IO_TIMEOUT_S = 30


def _producer(broker, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "linger.ms": 5,
        "message.timeout.ms": IO_TIMEOUT_S * 1000,
    }
    conf.update(extra)
    return Producer(conf)


def _consumer(broker):
    return Consumer({
        "bootstrap.servers": broker.bootstrap,
        # Required by the client; nothing is committed (assign() only).
        "group.id": harness.unique("compat-py"),
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        # A bad position must show as an error, not as a silent jump.
        "auto.offset.reset": "error",
    })


def _ensure_topic(producer, topic, partitions=1):
    """Asks for the topic's metadata (which auto-creates it) until every
    partition has a leader. Producing to a topic still being created gets
    retried, and retries may reorder a non-idempotent producer's batches."""
    deadline = time.monotonic() + IO_TIMEOUT_S
    while True:
        md = producer.list_topics(topic, timeout=10).topics.get(topic)
        if (md is not None and md.error is None and len(md.partitions) >= partitions
                and all(p.leader >= 0 for p in md.partitions.values())):
            return
        assert time.monotonic() < deadline, "topic %s has no leader for every partition after %d s: %r" % (
            topic, IO_TIMEOUT_S, md and (md.error, {i: p.leader for i, p in md.partitions.items()}))
        time.sleep(0.2)


def _produce(broker, topic, records, **producer_conf):
    """Produces (partition, key, value, headers, ts) tuples in order, flushing
    after each burst (a None entry); returns the delivery reports in order of
    the records: (error, partition, offset)."""
    p = _producer(broker, **producer_conf)
    _ensure_topic(p, topic, 1 + max(r[0] for r in records if r is not None))
    reports = {}

    def on_delivery(err, msg, idx):
        reports[idx] = (err, msg.partition(), msg.offset())

    for idx, rec in enumerate(records):
        if rec is None:
            left = p.flush(IO_TIMEOUT_S)
            assert left == 0, "%d messages of the first burst undelivered after %d s" % (left, IO_TIMEOUT_S)
            continue
        partition, key, value, headers, ts = rec
        kwargs = {"timestamp": ts} if ts is not None else {}
        p.produce(topic, value=value, key=key, partition=partition, headers=headers,
                  on_delivery=lambda err, msg, idx=idx: on_delivery(err, msg, idx), **kwargs)
        p.poll(0)
    left = p.flush(IO_TIMEOUT_S)
    assert left == 0, "%d messages still undelivered after %d s" % (left, IO_TIMEOUT_S)
    return [reports.get(i, ("no delivery report", None, None)) for i, r in enumerate(records) if r is not None]


def _consume(broker, topic, partition, start, count):
    """Reads from `start` until the partition's end (EOF) after at least `count`
    records; returns (key, value, headers, offset, timestamp) tuples."""
    c = _consumer(broker)
    got = []
    try:
        c.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + IO_TIMEOUT_S
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if len(got) >= count:
                        break
                    continue
                raise AssertionError("consumer error at %d records: %s" % (len(got), m.error()))
            got.append((m.key(), m.value(), m.headers(), m.offset(), m.timestamp()))
        else:
            raise AssertionError("timed out after %d s with %d of %d records" % (IO_TIMEOUT_S, len(got), count))
    finally:
        c.close()
    return got


def _assert_same(got, expected):
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, "record #%d differs:\n  got      %r\n  expected %r" % (i, g, e)
    assert len(got) == len(expected), "got %d records, expected %d (extra: %r)" % (
        len(got), len(expected), got[len(expected):len(expected) + 3])


class Produced:
    def __init__(self, topic, expected, reports, split_ts):
        self.topic = topic
        self.expected = expected  # (key, value, headers, offset, (type, ts)) in offset order
        self.reports = reports
        self.split_ts = split_ts


def _produce_codec(broker, codec):
    """1,000 records on partition 0 of an auto-created topic, in two bursts."""
    topic = harness.unique("py-" + codec)
    base = int(time.time() * 1000) - 600_000  # recent, far inside any retention
    records, expected = [], []
    for i in range(N):
        if i == HALF:
            records.append(None)  # flush: burst 1 is acknowledged before burst 2
        ts = base + i + (BURST_GAP_MS if i >= HALF else 0)
        key = b"key-%d" % i
        value = b"value-%d-%s" % (i, codec.encode())
        headers = [("a", b"b"), ("codec", codec.encode()), ("i", b"%d" % i)]
        records.append((0, key, value, headers, ts))
        expected.append((key, value, headers, i, (TIMESTAMP_CREATE_TIME, ts)))
    reports = _produce(broker, topic, records, **{"compression.type": codec})
    return Produced(topic, expected, reports, base + HALF + BURST_GAP_MS // 2)


@pytest.fixture(scope="session")
def produced_cache():
    return {}


@pytest.fixture(params=CODECS)
def produced(request, broker, produced_cache):
    """The records of one codec on one broker, produced once for all its tests."""
    key = (broker.backend, request.param)
    if key not in produced_cache:
        try:
            produced_cache[key] = _produce_codec(broker, request.param)
        except Exception as e:  # noqa: BLE001 - every test of this codec reports it
            produced_cache[key] = "producing %s records failed: %s: %s" % (request.param, type(e).__name__, e)
    value = produced_cache[key]
    if isinstance(value, str):
        pytest.fail(value, pytrace=False)
    return value


def test_metadata_lists_this_broker(broker):
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    addrs = sorted("%s:%d" % (b.host, b.port) for b in md.brokers.values())
    # A cluster (COMPAT_AGENTS) bootstraps with every agent: all are listed.
    missing = [a for a in broker.bootstrap.split(",") if a not in addrs]
    assert not missing, "%s not among the brokers in metadata: %s" % (missing, addrs)
    assert md.cluster_id, "no cluster id in metadata"


def test_produce_acks_every_record_in_order(produced):
    errors = [(i, r[0]) for i, r in enumerate(produced.reports) if r[0] is not None]
    assert not errors, "%d failed deliveries, first: %r" % (len(errors), errors[:3])
    offsets = [r[2] for r in produced.reports]
    assert offsets == list(range(N)), "acknowledged offsets are not 0..%d in order: %r..." % (
        N - 1, offsets[:10])
    assert {r[1] for r in produced.reports} == {0}


def test_watermarks(broker, produced):
    c = _consumer(broker)
    try:
        low, high = c.get_watermark_offsets(TopicPartition(produced.topic, 0), timeout=10)
    finally:
        c.close()
    assert (low, high) == (0, N)


def test_consume_from_beginning(broker, produced):
    got = _consume(broker, produced.topic, 0, OFFSET_BEGINNING, N)
    _assert_same(got, produced.expected)


def test_consume_from_offset(broker, produced):
    got = _consume(broker, produced.topic, 0, HALF, N - HALF)
    _assert_same(got, produced.expected[HALF:])


def _offset_for_time(broker, topic, ts):
    c = _consumer(broker)
    try:
        return c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)[0]
    finally:
        c.close()


def test_consume_from_timestamp(broker, produced):
    """offsets_for_times with a time between the two bursts, then a read from there."""
    between = _offset_for_time(broker, produced.topic, produced.split_ts)
    assert between.error is None and between.offset == HALF, "between bursts: %r" % between
    # Past the last record: Kafka answers offset -1 (no such record).
    last_ts = produced.expected[-1][4][1]
    after = _offset_for_time(broker, produced.topic, last_ts + 1)
    assert after.error is None and after.offset == -1, "after the last record: %r" % after
    got = _consume(broker, produced.topic, 0, between.offset, N - HALF)
    _assert_same(got, produced.expected[HALF:])


def test_offsets_for_times_finds_the_exact_record(broker, produced):
    """A time inside a batch gives the first record at or after it, as Kafka's
    broker answers (it searches inside compressed batches too)."""
    for i in (1, 250, 700, N - 1):
        ts = produced.expected[i][4][1]
        found = _offset_for_time(broker, produced.topic, ts)
        assert found.error is None and found.offset == i, "timestamp of offset %d: got %r" % (i, found)


def test_admin_create_list_delete(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = harness.unique("py-admin")
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)

    md = admin.list_topics(timeout=10)
    assert topic in md.topics, "created topic missing from list_topics"
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]

    # Every partition takes records and gives back exactly its own.
    records, expected = [], {0: [], 1: [], 2: []}
    base = int(time.time() * 1000) - 60_000
    for i in range(60):
        p = i % 3
        rec = (p, b"k%d" % i, b"v%d" % i, [("p", b"%d" % p)], base + i)
        records.append(rec)
        expected[p].append((rec[1], rec[2], rec[3], len(expected[p]), (TIMESTAMP_CREATE_TIME, rec[4])))
    reports = _produce(broker, topic, records)
    assert [r[0] for r in reports] == [None] * 60, reports[:3]
    for p in range(3):
        _assert_same(_consume(broker, topic, p, OFFSET_BEGINNING, 20), expected[p])

    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 10
    while topic in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, "deleted topic still listed after 10 s"
        time.sleep(0.2)


def test_admin_create_existing_topic_fails(broker):
    from confluent_kafka import KafkaException
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = harness.unique("py-dup")
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, e.value


def test_edge_records(broker):
    """Null key, null value (tombstone), empty key and value, binary bytes,
    null/empty/repeated headers and a 512 KiB value come back unchanged."""
    topic = harness.unique("py-edge")
    base = int(time.time() * 1000) - 60_000
    big = os.urandom(512 * 1024)
    binary = bytes(range(256))
    cases = [
        (None, b"null key", None),
        (b"null value", None, None),
        (b"", b"", None),
        (binary, binary * 4, [("bin", binary)]),
        (b"headers", b"v", [("empty", b""), ("null", None), ("dup", b"1"), ("dup", b"2")]),
        (b"big", big, None),
    ]
    records = [(0, k, v, h, base + i) for i, (k, v, h) in enumerate(cases)]
    reports = _produce(broker, topic, records, **{"message.max.bytes": 2_000_000})
    assert [r[0] for r in reports] == [None] * len(cases), reports
    got = _consume(broker, topic, 0, OFFSET_BEGINNING, len(cases))
    expected = [(k, v, h, i, (TIMESTAMP_CREATE_TIME, base + i)) for i, (k, v, h) in enumerate(cases)]
    _assert_same(got, expected)


def test_backend_holds_the_data(broker):
    """Acknowledged records went where the backend pair says: the local folder
    and SQLite file, or the S3 bucket under this broker's prefix and its own
    PostgreSQL database."""
    if os.environ.get("COMPAT_REFERENCE") == "1":
        pytest.skip("reference run against Apache Kafka: StreamHouse's storage layout does not apply")
    topic = harness.unique("py-where")
    reports = _produce(broker, topic, [(0, b"k", b"v%d" % i, None, None) for i in range(10)])
    assert [r[0] for r in reports] == [None] * 10, reports
    if broker.backend == "embedded":
        assert os.path.isfile(os.path.join(broker.data_dir, "catalog.db")), "no catalog.db in the data dir"
        objects = [f for _, _, fs in os.walk(os.path.join(broker.data_dir, "objects")) for f in fs]
        assert objects, "no files under %s/objects" % broker.data_dir
    else:
        keys = broker.s3_keys()
        assert keys, "no objects in bucket %s under prefix %r" % (broker.bucket, broker.s3_prefix)
        assert broker.pg_tables() > 0, "no tables in database %s" % broker.db
