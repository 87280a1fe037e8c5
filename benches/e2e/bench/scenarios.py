"""The scenarios run on each broker: Kafka's ProducerPerformance,
ConsumerPerformance and EndToEndLatency at the sizes of a mode, Metadata
timing on a wide topic, and what one scenario records around its body (CPU,
peak RSS, store requests)."""

import os
import re
import socket
import statistics
import threading
import time
import uuid

from .metrics import (COMPACTION_PENDING, cpu_seconds, percentile, reset_peak_rss, status_kib,
                      store_deltas)
from . import loadgen
from .processes import Failed, log, run_client
from .wire import metadata_request

RECORD_SIZE = 1024
FIXED_RATE = 5120  # records/s of 1 KiB: 5 MiB/s
# For the 1- and 1000-partition runs at the fixed rate: with the default 16 KiB
# batches and 5 requests in flight, one partition carries at most 80 KiB per
# round trip, below 5 MiB/s once a round trip exceeds 16 ms.
BIG_BATCHES = ("batch.size=131072",)
# The producer settings every producing scenario adds (--profile): Java's
# defaults, or what object-storage brokers recommend (WarpStream and Aiven's
# diskless topics both advise lingering about 100 ms into batches of up to
# 1 MiB), so that each request carries enough to pay for an object's latency.
PRODUCER_PROFILES = {
    "default": (),
    "object-storage": ("linger.ms=100", "batch.size=1048576"),
}
# The rate-10m scenario: 10 MiB/s of 1 KiB records on 8 partitions.
RATE_10M = 10 * 1024

FULL = {
    "reps": 3,
    "produce_records": 300_000,
    "latency_seconds": 10,
    "e2e_records": 1000,
    "wide_records": 100_000,
    "metadata_requests": 200,
    "fixed_seconds": 8,
    "rate_seconds": 40,
    "fanout_seconds": 20,
}
QUICK = {
    "reps": 1,
    "produce_records": 100_000,
    "latency_seconds": 5,
    "e2e_records": 300,
    "wide_records": 50_000,
    "metadata_requests": 50,
    "fixed_seconds": 5,
    "rate_seconds": 15,
    "fanout_seconds": 10,
}

SCENARIOS = ["produce", "consume", "latency", "e2e", "fixed-1p", "produce-1000p", "fixed-1000p", "rate-10m",
             "produce-franz", "consume-franz", "fanout-1", "fanout-3"]
# Run only when named, or by default when the store has S3-like latency.
LATENCY_SCENARIOS = ["rate-10m"]


def steady_rate(values):
    """A throughput scenario's result: its rate after the warm-up, the whole
    run's kept beside it."""
    values["whole_run_mib_per_s"] = values["mib_per_s"]
    values["whole_run_records_per_s"] = values["records_per_s"]
    values["mib_per_s"] = values["steady_mib_per_s"]
    values["records_per_s"] = values["steady_records_per_s"]
    return values


# ProducerPerformance's report of each --reporting-interval (no percentiles).
PRODUCER_WINDOW_RE = re.compile(
    r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), [\d.]+ ms avg latency, "
    r"[\d.]+ ms max latency\.$")
# Seconds between those reports: the throughput-over-time plot's resolution.
REPORTING_INTERVAL_MS = 1000

PRODUCER_RE = re.compile(
    r"(\d+) (?:steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


class Bench:
    def __init__(self, opts, sizes):
        self.opts, self.sizes = opts, sizes
        self.lib = opts.kafka_lib
        self.results = []
        self.profile = PRODUCER_PROFILES[getattr(opts, "profile", "default")]
        self._loadgen = None

    def loadgen(self, logdir):
        """The franz-go load generator's binary, built on first use."""
        if self._loadgen is None:
            src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "loadgen")
            self._loadgen = loadgen.ensure_loadgen(self.opts.cache, src,
                                                   os.path.join(logdir, "loadgen-build.log"))
        return self._loadgen

    def java_client(self, main, *args):
        return ["java", "-Xmx1g", "-cp", os.path.join(self.lib, "*"),
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", main, *args]

    def create_topic(self, broker, topic, partitions):
        """Creates the topic and waits until every partition's leader serves
        ListOffsets: Kafka shows leaders in Metadata before the broker has
        created the partitions' logs, and producing then meets
        NOT_LEADER_OR_FOLLOWER. Returns the seconds this took."""
        from confluent_kafka import KafkaException, TopicPartition
        from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
        admin = AdminClient({"bootstrap.servers": "127.0.0.1:%d" % broker.port, "log_level": 0})
        t0 = time.time()
        futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=120,
                                      request_timeout=120)
        try:
            futures[topic].result(timeout=180)
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
        last = None
        while time.time() - t0 < 180:
            try:
                specs = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
                for future in admin.list_offsets(specs, request_timeout=30).values():
                    future.result(timeout=60)
                return time.time() - t0
            except KafkaException as e:
                last = e
                time.sleep(0.2)
        raise Failed("topic %s: partitions not all served after 180 s: %s" % (topic, last))

    def produce(self, broker, topic, records, rate, log_path, warmup=0, props=()):
        """ProducerPerformance, acks=all, otherwise the producer's defaults plus
        `props`. With `warmup`, the latencies are those of the steady state
        after the first `warmup` records (the client JVM's warm-up excluded)."""
        args = ["--bootstrap-server", "127.0.0.1:%d" % broker.port, "--topic", topic,
                "--num-records", str(records), "--record-size", str(RECORD_SIZE),
                "--throughput", str(rate),
                # One option with every property (a repeated option would keep
                # only its last values); later ones win: the profile's batch
                # size over a scenario's.
                "--command-property", "acks=all", *props, *self.profile]
        if warmup:
            args += ["--warmup-records", str(warmup)]
        args += ["--reporting-interval", str(REPORTING_INTERVAL_MS)]
        out, usage = run_client(self.java_client("org.apache.kafka.tools.ProducerPerformance", *args),
                                900, log_path, broker.pid())
        matches = [m for m in map(PRODUCER_RE.search, out.splitlines()) if m]
        # The complete test's summary, then (with a warm-up) the steady state's.
        if not matches or int(matches[0].group(1)) != records:
            raise Failed("not every record was acknowledged (see %s)" % log_path)
        total, steady = matches[0], matches[-1]
        values = {
            "records": records,
            "bytes_produced": records * RECORD_SIZE,
            "records_per_s": float(total.group(2)),
            "mib_per_s": float(total.group(3)),
            # With a warm-up, the rate after it (the whole run's without).
            "steady_records_per_s": float(steady.group(2)),
            "steady_mib_per_s": float(steady.group(3)),
            "steady_records": int(steady.group(1)),
            "avg_ms": float(steady.group(4)),
            "max_ms": float(steady.group(5)),
            "p50_ms": float(steady.group(6)),
            "p95_ms": float(steady.group(7)),
            "p99_ms": float(steady.group(8)),
            "p999_ms": float(steady.group(9)),
            # MiB/s of each reporting interval, in order (the last one partial):
            # whether the run reached a steady state, and when.
            "mib_per_s_per_interval": [float(m.group(3)) for m in
                                       map(PRODUCER_WINDOW_RE.search, out.splitlines()) if m],
            "reporting_interval_s": REPORTING_INTERVAL_MS / 1000,
        }
        values.update(usage)
        return values

    def consume(self, broker, topic, records, log_path):
        out, usage = run_client(self.java_client(
            "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", "127.0.0.1:%d" % broker.port,
            "--topic", topic, "--num-records", str(records), "--group", "bench-" + uuid.uuid4().hex[:8],
            "--timeout", "60000"), 900, log_path, broker.pid())
        lines = [l for l in out.splitlines() if l.count(",") >= 9 and not l.startswith("start.time")]
        if not lines:
            raise Failed("no ConsumerPerformance result (see %s)" % log_path)
        f = [x.strip() for x in lines[-1].split(",")]
        consumed = int(f[4])
        if consumed < records:
            raise Failed("consumed %d of %d records" % (consumed, records))
        values = {
            "mib": float(f[2]),
            "mib_per_s_total": float(f[3]),
            "records": consumed,
            "rebalance_ms": float(f[6]),
            "fetch_ms": float(f[7]),
            "mib_per_s": float(f[8]),
            "records_per_s": float(f[9]),
        }
        values.update(usage)
        return values

    def end_to_end(self, broker, topic, records, log_path):
        args = ["127.0.0.1:%d" % broker.port, topic, str(records), "all", str(RECORD_SIZE)]
        if self.profile:
            # The tool's optional sixth argument: a file of client properties.
            props = os.path.join(os.path.dirname(log_path), "e2e-profile.properties")
            with open(props, "w") as f:
                f.write("\n".join(self.profile) + "\n")
            args.append(props)
        out, usage = run_client(self.java_client("org.apache.kafka.tools.EndToEndLatency", *args),
                                900, log_path, broker.pid())
        avg = re.search(r"Avg latency: ([\d.]+) ms", out)
        pct = re.search(r"50th = (\d+), 99th = (\d+), 99.9th = (\d+)", out)
        if not (avg and pct):
            raise Failed("no EndToEndLatency result (see %s)" % log_path)
        values = {"avg_ms": float(avg.group(1)), "p50_ms": float(pct.group(1)),
                  "p99_ms": float(pct.group(2)), "p999_ms": float(pct.group(3))}
        values.update(usage)
        return values

    def metadata_latency(self, broker, topic, partitions, requests):
        times = []
        with socket.create_connection(("127.0.0.1", broker.port), timeout=30) as sock:
            size = 0
            for i in range(requests + 10):
                t0 = time.perf_counter()
                body = metadata_request(sock, 100 + i, [topic])
                elapsed = time.perf_counter() - t0
                size = len(body)
                if i >= 10:  # the first ten warm the connection and caches
                    times.append(elapsed * 1000)
        times.sort()
        return {"metadata_p50_ms": percentile(times, 0.5), "metadata_p99_ms": percentile(times, 0.99),
                "metadata_mean_ms": statistics.mean(times), "metadata_response_bytes": size,
                "metadata_partitions": partitions}

    def fanout(self, broker, topic, groups, seconds, logdir):
        """`groups` consumer groups (franz-go, one member each) tail a new
        8-partition topic while franz-go produces 5 MiB/s into it for
        `seconds`: how long after the last acknowledgement the slowest group
        has read everything (tail_lag_s), and the records written, for the
        store's GETs per GiB."""
        self.create_topic(broker, topic, 8)
        binary = self.loadgen(logdir)
        records = FIXED_RATE * seconds
        done = [None] * groups
        failures = []

        def tail(i):
            try:
                path = os.path.join(logdir, "%s-g%d.log" % (topic, i))
                loadgen.consume(binary, broker, topic, records, path, group="%s-g%d" % (topic, i))
                done[i] = time.time()
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append("group %d: %s" % (i, e))
        threads = [threading.Thread(target=tail, args=(i,), daemon=True) for i in range(groups)]
        for t in threads:
            t.start()
        # Joined (the group coordinator's first rebalance waits a moment)
        # before the first record, so that every group reads at the tail.
        time.sleep(4)
        v = loadgen.produce(binary, broker, topic, records, FIXED_RATE,
                            os.path.join(logdir, "%s-produce.log" % topic))
        produced_at = time.time()
        for t in threads:
            t.join(timeout=300)
        if failures or None in done:
            raise Failed("; ".join(failures) or "a group did not finish within 300 s")
        v["bytes_produced"] = records * RECORD_SIZE
        v["tail_groups"] = groups
        v["tail_lag_s"] = max(0.0, max(done) - produced_at)
        return v

    # One scenario: resets the broker's peak RSS, measures CPU and store
    # requests around `body`, and records the result (or the failure).
    def scenario(self, rep, broker, name, body):
        if self.opts.scenarios and name not in self.opts.scenarios:
            return {"ok": False, "skipped": True}
        log(" %s / %s" % (broker.name, name))
        entry = {"rep": rep, "broker": broker.name, "scenario": name, "ok": False}
        try:
            # Compaction is counted in the scenario that wrote what it merges
            # (below); whatever is still pending is not this one's.
            if broker.metrics().get(COMPACTION_PENDING, 0) > 0:
                entry["compaction_wait_before_s"] = broker.wait_compacted()
            # Written-back pages of the previous scenario (or broker: Kafka leaves
            # hundreds of MiB unflushed) would otherwise compete with this one's
            # fsyncs; the first measured runs were slower right after Kafka.
            t_sync = time.time()
            os.sync()
            entry["sync_before_s"] = time.time() - t_sync
            entry["load_1m_before"] = os.getloadavg()[0]
            pid = broker.pid()
            reset_peak_rss(pid)
            cpu0, m0, t0 = cpu_seconds(pid), broker.metrics(), time.time()
            values = body()
            wall = time.time() - t0
            values["wall_s"] = wall
            values["scenario_broker_cpu_s"] = cpu_seconds(pid) - cpu0
            values["broker_peak_rss_mib"] = status_kib(pid, "VmHWM") / 1024
            # The store requests of compacting what this scenario wrote are part
            # of its cost per GiB (a store billed per request pays for them).
            values["compaction_wait_after_s"] = broker.wait_compacted()
            m1 = broker.metrics()
            if m0 and m1:
                values.update(store_deltas(m0, m1, wall))
            entry["values"] = values
            entry["ok"] = True
        except Exception as e:  # noqa: BLE001 - any failure is recorded, the run goes on
            entry["error"] = "%s: %s" % (type(e).__name__, e)
            log("  FAILED: %s" % entry["error"])
        self.results.append(entry)
        return entry

    def after_restart(self, rep, broker, name, body, produced):
        """Runs scenario `name` (a catch-up read) on the broker restarted, so
        that the read comes from the store (StreamHouse) or the log files
        (Kafka), not the agent's cache. Catch-up reads are of data older than
        what compaction leaves alone, so compaction of what was `produced`
        finishes first (Kafka has nothing to wait for); how long that took is
        recorded with the scenario's values (compaction_wait_s)."""
        if self.opts.scenarios and name not in self.opts.scenarios:
            return
        try:
            compaction_wait = broker.wait_compacted() if produced else 0.0
            broker.stop()
            broker.start()
        except Exception as e:  # noqa: BLE001
            self.results.append({"rep": rep, "broker": broker.name, "scenario": name, "ok": False,
                                 "error": "restart failed: %s" % e})
            return
        self.scenario(rep, broker, name, lambda: dict(body(), compaction_wait_s=compaction_wait))

    def run_broker(self, rep, broker):
        s = self.sizes
        logdir = broker.logdir
        try:
            broker.start()
        except Exception as e:  # noqa: BLE001
            self.results.append({"rep": rep, "broker": broker.name, "scenario": "start", "ok": False,
                                 "error": "%s: %s" % (type(e).__name__, e)})
            log("  %s did not start: %s" % (broker.name, e))
            return
        self.results.append({"rep": rep, "broker": broker.name, "scenario": "start", "ok": True,
                             "values": {"idle_rss_mib": status_kib(broker.pid(), "VmRSS") / 1024}})

        # The throughput scenarios send as many records again first: Kafka's
        # JVM (and the client's) take seconds to reach their steady rate, and
        # a short run measured that warm-up instead (docs/benchmarks.md,
        # "Produce throughput over time").
        produce_total = 2 * s["produce_records"]

        def produce_8p():
            created = self.create_topic(broker, "tp8", 8)
            v = steady_rate(self.produce(broker, "tp8", produce_total, -1,
                                         os.path.join(logdir, "produce.log"), warmup=s["produce_records"]))
            v["create_s"] = created
            return v
        produced = self.scenario(rep, broker, "produce", produce_8p)

        # Catch-up read from a cold broker: restart it, so the read comes from
        # the store (StreamHouse) or the log files (Kafka), not the agent's cache.
        def consume():
            if not produced["ok"]:
                raise Failed("nothing produced")
            return self.consume(broker, "tp8", produce_total, os.path.join(logdir, "consume.log"))
        self.after_restart(rep, broker, "consume", consume, produced["ok"])

        warmup = FIXED_RATE * 2  # two seconds of records

        def latency_8p():
            self.create_topic(broker, "tl8", 8)
            return self.produce(broker, "tl8", FIXED_RATE * s["latency_seconds"] + warmup, FIXED_RATE,
                                os.path.join(logdir, "latency.log"), warmup=warmup)
        self.scenario(rep, broker, "latency", latency_8p)

        def e2e():
            self.create_topic(broker, "te2e", 1)
            return self.end_to_end(broker, "te2e", s["e2e_records"], os.path.join(logdir, "e2e.log"))
        self.scenario(rep, broker, "e2e", e2e)

        def fixed_1p():
            self.create_topic(broker, "tf1", 1)
            return self.produce(broker, "tf1", FIXED_RATE * s["fixed_seconds"] + warmup, FIXED_RATE,
                                os.path.join(logdir, "fixed1.log"), warmup=warmup, props=BIG_BATCHES)
        self.scenario(rep, broker, "fixed-1p", fixed_1p)

        def wide():
            created = self.create_topic(broker, "tw1000", 1000)
            v = steady_rate(self.produce(broker, "tw1000", 2 * s["wide_records"], -1,
                                         os.path.join(logdir, "wide.log"), warmup=s["wide_records"]))
            v["create_s"] = created
            v.update(self.metadata_latency(broker, "tw1000", 1000, s["metadata_requests"]))
            return v
        wide_done = self.scenario(rep, broker, "produce-1000p", wide)

        def fixed_1000p():
            if not wide_done["ok"]:
                self.create_topic(broker, "tw1000", 1000)
            return self.produce(broker, "tw1000", FIXED_RATE * s["fixed_seconds"] + warmup, FIXED_RATE,
                                os.path.join(logdir, "fixed1000.log"), warmup=warmup, props=BIG_BATCHES)
        self.scenario(rep, broker, "fixed-1000p", fixed_1000p)

        # Whether a producer keeps up with 10 MiB/s, and at what latency: with
        # S3-like store latency this is where Java's default producer (5
        # requests of 8 x 16 KiB in flight) runs out of window.
        def rate_10m():
            self.create_topic(broker, "tr10", 8)
            warm = RATE_10M * 2
            v = self.produce(broker, "tr10", RATE_10M * s["rate_seconds"] + warm, RATE_10M,
                             os.path.join(logdir, "rate10m.log"), warmup=warm)
            v["target_mib_per_s"] = RATE_10M * RECORD_SIZE / 2**20
            return v
        self.scenario(rep, broker, "rate-10m", rate_10m)

        # The same produce and catch-up read driven by franz-go, which needs a
        # fraction of the Java tools' CPU, so the broker's own cost shows. Five
        # times the records: at franz-go's rates the Java count lasts a second.
        franz_records = 5 * s["produce_records"]

        def produce_franz():
            self.create_topic(broker, "tpf8", 8)
            props = dict(prop.split("=", 1) for prop in self.profile)
            linger, batch = props.get("linger.ms"), props.get("batch.size")
            # Warmed up as the Java produce scenario is (there is no client JIT
            # here, but Kafka's broker warms up too).
            v = steady_rate(loadgen.produce(self.loadgen(logdir), broker, "tpf8", 2 * franz_records, -1,
                                            os.path.join(logdir, "produce-franz.log"), warmup=franz_records,
                                            linger_ms=linger, batch_bytes=batch))
            v["bytes_produced"] = 2 * franz_records * RECORD_SIZE
            return v
        franz_produced = self.scenario(rep, broker, "produce-franz", produce_franz)

        def consume_franz():
            if not franz_produced["ok"]:
                raise Failed("nothing produced")
            # After the restart: every partition served before the clock starts
            # (Kafka takes seconds to load its logs and elect leaders again).
            self.create_topic(broker, "tpf8", 8)
            return loadgen.consume(self.loadgen(logdir), broker, "tpf8", 2 * franz_records,
                                   os.path.join(logdir, "consume-franz.log"))
        self.after_restart(rep, broker, "consume-franz", consume_franz, franz_produced["ok"])

        # Fan-out: one group tailing a topic, then three, each while 5 MiB/s
        # is produced. The read cache should serve the second and third
        # groups: GETs per GiB written stay those of one.
        for groups in (1, 3):
            name = "fanout-%d" % groups
            self.scenario(rep, broker, name, lambda g=groups, n=name: self.fanout(
                broker, "t" + n.replace("-", ""), g, s["fanout_seconds"], logdir))
