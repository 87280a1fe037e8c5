"""Retention with real clients (confluent-kafka, and Kafka 4.4.0's
kafka-log-dirs tool), on each backend pair in COMPAT_BACKENDS. One broker per
backend pair, started with --retention-check-interval-ms 1000 and
--gc-grace-ms 2000 so that expiry and deletion show within a minute.

Scenarios (BACKEND embedded or pg-s3; RULE time or size):
  retention/BACKEND/RULE/earliest-advances   the earliest offset moves past what
                                             the rule no longer keeps, and no
                                             further than the kept head
  retention/BACKEND/RULE/sizes-drop          kafka-log-dirs --describe and the
                                             streamhouse_topic_retained_bytes gauge
                                             report about the kept head
  retention/BACKEND/RULE/reset-earliest      a group whose committed offset fell
                                             below the log start resumes at the
                                             log start (auto.offset.reset=earliest)
  retention/BACKEND/RULE/reset-latest        another such group resumes at the end
                                             with auto.offset.reset=latest
  retention/BACKEND/RULE/store-shrinks       the bytes in the object store fall
                                             to at most about the kept head once
                                             garbage collection has run
RULE time: a topic with retention.ms=20000; 2 MB produced, then, once it has
expired, a head of 100 KB. RULE size: retention.bytes=262144; 2 MB produced in
acknowledged bursts of 64 KB.

Usage: retention.py   (prints PASS/FAIL lines; run_all.sh counts them)
"""

import json
import os
import re
import subprocess
import sys
import time
import traceback
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

RETENTION_MS = 20_000
RETENTION_BYTES = 256 * 1024
VALUE = b"v" * 1000
BULK = 2000          # records of about 1 KB before expiry: 2 MB
HEAD = 100           # records of the kept head: 100 KB
BURST = 64           # records per acknowledged burst
TIMEOUT_S = 90
JAVA_LIB = os.path.join(harness.CACHE, "java", "lib")

FAILED = 0


def record(status, name, detail=""):
    global FAILED
    if status == "FAIL":
        FAILED = 1
    harness.record(status, name, detail)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def wait_for(what, probe, timeout=TIMEOUT_S, every=0.5):
    """Calls probe() until it returns something true; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError("%s: not within %d s (last: %r)" % (what, timeout, last))


class Run:
    def __init__(self, backend, broker, metrics_port):
        self.backend = backend
        self.broker = broker
        self.metrics_port = metrics_port

    def producer(self):
        return Producer({"bootstrap.servers": self.broker.bootstrap, "acks": "all",
                         "linger.ms": 5, "enable.idempotence": False,
                         "message.timeout.ms": 30_000})

    def produce(self, topic, count, first=0):
        """`count` records to partition 0 in acknowledged bursts; returns the
        bytes of their values and keys."""
        p = self.producer()
        for i in range(first, first + count):
            p.produce(topic, key=b"k%08d" % i, value=VALUE, partition=0)
            if (i - first + 1) % BURST == 0:
                check(p.flush(30) == 0, "unacknowledged records")
        check(p.flush(30) == 0, "unacknowledged records")
        return count * (len(VALUE) + 9)

    def watermarks(self, topic):
        c = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": harness.unique("wm")})
        try:
            return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        finally:
            c.close()

    def commit(self, group, topic, offset):
        c = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": group,
                      "enable.auto.commit": False})
        try:
            c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
        finally:
            c.close()

    def resume(self, group, topic, reset, marker_first):
        """The first offset a member of `group` reads with `reset`. With
        marker_first, records are produced once the member has had time to
        find its committed offset out of range and reset (librdkafka reports
        no position before a record is read), so that 'latest' has
        something to read."""
        c = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": group,
                      "enable.auto.commit": False, "auto.offset.reset": reset})
        try:
            c.assign([TopicPartition(topic, 0)])  # from the committed offset
            deadline = time.monotonic() + (5 if marker_first else 30)
            while time.monotonic() < deadline:
                msg = c.poll(0.2)
                if msg is not None and msg.error() is None:
                    return msg.offset()
            check(marker_first, "%s read nothing in 30 s" % group)
            self.produce(topic, 3, first=10_000_000)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msg = c.poll(0.2)
                if msg is not None and msg.error() is None:
                    return msg.offset()
            raise AssertionError("%s read nothing in 30 s after the marker" % group)
        finally:
            c.close()

    def log_dir_size(self, topic):
        """The topic's size summed over every broker's log dirs, from
        kafka-log-dirs --describe (Kafka 4.4.0's LogDirsCommand)."""
        out = subprocess.run(
            ["java", "-Xlog:disable", "-XX:TieredStopAtLevel=1", "-cp", os.path.join(JAVA_LIB, "*"),
             "org.apache.kafka.tools.LogDirsCommand", "--bootstrap-server", self.broker.bootstrap,
             "--describe", "--topic-list", topic],
            capture_output=True, text=True, timeout=120)
        check(out.returncode == 0, "kafka-log-dirs failed: %s" % out.stderr[-800:])
        line = [l for l in out.stdout.splitlines() if l.startswith("{")]
        check(line, "no JSON in kafka-log-dirs output: %r" % out.stdout[-800:])
        doc = json.loads(line[-1])
        size = 0
        for b in doc["brokers"]:
            for d in b["logDirs"]:
                check(d.get("error") in (None, "null"), "log dir error %r" % d)
                for p in d["partitions"]:
                    if p["partition"].rsplit("-", 1)[0] == topic:
                        size += p["size"]
        return size

    def gauge(self, topic):
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=10).read().decode()
        m = re.search(r'^streamhouse_topic_retained_bytes\{topic="%s"\} (\d+)' % re.escape(topic), text, re.M)
        return int(m.group(1)) if m else None

    def store_bytes(self):
        """Bytes of every object in this broker's store."""
        if self.backend == "embedded":
            total = 0
            for root, _, files in os.walk(os.path.join(self.broker.data_dir, "objects")):
                total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
            return total
        s3 = harness.s3_client()
        total = 0
        kwargs = {"Bucket": self.broker.bucket}
        if self.broker.s3_prefix:
            kwargs["Prefix"] = self.broker.s3_prefix
        for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
            total += sum(o["Size"] for o in page.get("Contents", []))
        return total


def scenario(name, fn, results):
    try:
        fn()
        record("PASS", name)
        results[name] = True
    except Exception as e:  # noqa: BLE001 - a failed scenario, reported
        traceback.print_exc()
        record("FAIL", name, "%s: %s" % (type(e).__name__, str(e)[:600]))
        results[name] = False


def run_rule(run, rule):
    prefix = "retention/%s/%s" % (run.backend, rule)
    topic = harness.unique("retention-" + rule)
    configs = {"retention.ms": str(RETENTION_MS)} if rule == "time" else {
        "retention.bytes": str(RETENTION_BYTES), "retention.ms": "-1"}
    admin = AdminClient({"bootstrap.servers": run.broker.bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1, config=configs)]).values():
        f.result(30)
    time.sleep(0.5)
    store_before = run.store_bytes()
    bulk = run.produce(topic, BULK)
    groups = {"earliest": harness.unique("g-earliest"), "latest": harness.unique("g-latest")}
    for g in groups.values():
        run.commit(g, topic, 10)
    if rule == "time":
        # Expire the bulk, then add a head that is kept.
        time.sleep(RETENTION_MS / 1000 + 1)
        head_start = BULK
        head = run.produce(topic, HEAD, first=BULK)
    else:
        head_start, head = None, RETENTION_BYTES
        # Two checks after the last burst: the log start has settled.
        time.sleep(2.5)
    end = BULK + (HEAD if rule == "time" else 0)
    results = {}
    state = {}

    def earliest():
        def moved():
            low, high = run.watermarks(topic)
            check(high == end, "high watermark %d, not %d" % (high, end))
            return low if low > 0 and (head_start is None or low == head_start) else None
        state["low"] = wait_for("earliest offset past the expired records", moved)
        if head_start is None:
            # About retention.bytes of ~1 KB records remain, not much more.
            kept = end - state["low"]
            check(RETENTION_BYTES // 1100 <= kept <= RETENTION_BYTES // 1000 + 2 * BURST,
                  "%d records kept for retention.bytes=%d" % (kept, RETENTION_BYTES))

    def sizes():
        size = wait_for("kafka-log-dirs size about the head",
                        lambda: (lambda s: s if s <= head * 1.5 + 16_384 else None)(run.log_dir_size(topic)),
                        timeout=30, every=1)
        check(size >= head * 0.9, "kafka-log-dirs says %d bytes, the kept head is ~%d" % (size, head))
        gauge = wait_for("the retained-bytes gauge", lambda: (lambda g: g if g is not None and g <= head * 1.5 + 16_384 else None)(run.gauge(topic)),
                         timeout=30, every=1)
        print("%s: bulk %d B, head ~%d B, kafka-log-dirs %d B, gauge %d B" % (prefix, bulk, head, size, gauge), flush=True)

    def store():
        limit = store_before + head * 1.5 + 64 * 1024

        def shrunk():
            b = run.store_bytes()
            state["store"] = b
            return b if b <= limit else None
        b = wait_for("store bytes about the head (GC every 10 s, grace 2 s)", shrunk, timeout=TIMEOUT_S, every=1)
        print("%s: store %d B before the topic, %d B after the bulk expired (bulk was %d B)"
              % (prefix, store_before, b, bulk), flush=True)

    def reset(kind):
        def go():
            # Read now: on the time rule the head expires too, 20 s after it
            # was produced.
            low = run.watermarks(topic)[0]
            check(low > 10, "the log start (%d) is not past the committed offset 10" % low)
            _, high = run.watermarks(topic)
            first = run.resume(groups[kind], topic, kind, marker_first=(kind == "latest"))
            want = low if kind == "earliest" else high
            check(first == want, "%s resumed at %d, expected %d" % (kind, first, want))
        return go

    scenario(prefix + "/earliest-advances", earliest, results)
    scenario(prefix + "/sizes-drop", sizes, results)
    # Before the store check, which waits for garbage collection: by then the
    # time rule's head has expired as well.
    scenario(prefix + "/reset-earliest", reset("earliest"), results)
    scenario(prefix + "/reset-latest", reset("latest"), results)
    scenario(prefix + "/store-shrinks", store, results)
    for f in admin.delete_topics([topic]).values():
        f.result(30)


def main():
    for backend in harness.backends():
        t0 = time.monotonic()
        metrics_port = harness.free_port()
        broker = harness.new_broker(backend, "retention-" + backend, extra_args=[
            "--retention-check-interval-ms", "1000", "--gc-grace-ms", "2000",
            "--metrics-listen", "127.0.0.1:%d" % metrics_port,
            "--group-initial-rebalance-delay-ms", "0"])
        try:
            broker.start()
        except harness.BrokerError as e:
            record("FAIL", "retention/%s/broker-start" % backend, str(e).replace("\n", " ")[:600])
            continue
        failed_before = FAILED
        try:
            run = Run(backend, broker, metrics_port)
            for rule in ("time", "size"):
                run_rule(run, rule)
        except Exception as e:  # noqa: BLE001 - a crash of the runner itself
            traceback.print_exc()
            record("FAIL", "retention/%s/run" % backend, "%s: %s" % (type(e).__name__, e))
        except BaseException:
            broker.stop()
            raise
        failed = FAILED and not failed_before
        if failed:
            print("--- %s (tail) ---\n%s" % (broker.log_path, broker.log_tail(40)), flush=True)
        broker.cleanup(keep=bool(failed))
        print("retention/%s: %.1fs" % (backend, time.monotonic() - t0), file=sys.stderr, flush=True)
    return FAILED


if __name__ == "__main__":
    sys.exit(main())
