#!/usr/bin/env python3
"""End-to-end benchmark: StreamHouse against Apache Kafka with the same clients.

Started by benches/e2e/run.sh, which prepares jars, the venv, PostgreSQL and
the S3 server's binary. This script starts the brokers, runs every scenario on
each broker in turn (the order rotates each repetition), and writes
results.json, the table (results.md) and the plots into --out.

Every scenario runs on a freshly started broker per repetition; a scenario that
fails is recorded as failed and the next one runs.
"""

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

RECORD_SIZE = 1024
FIXED_RATE = 5120  # records/s of 1 KiB: 5 MiB/s
# For the 1- and 1000-partition runs at the fixed rate: with the default 16 KiB
# batches and 5 requests in flight, one partition carries at most 80 KiB per
# round trip, below 5 MiB/s once a round trip exceeds 16 ms.
BIG_BATCHES = ("batch.size=131072",)

FULL = {
    "reps": 3,
    "produce_records": 300_000,
    "latency_seconds": 10,
    "e2e_records": 1000,
    "wide_records": 100_000,
    "metadata_requests": 200,
    "fixed_seconds": 8,
}
QUICK = {
    "reps": 1,
    "produce_records": 100_000,
    "latency_seconds": 5,
    "e2e_records": 300,
    "wide_records": 50_000,
    "metadata_requests": 50,
    "fixed_seconds": 5,
}

BROKERS = ["kafka", "sh-embedded", "sh-s3"]
# Not run by default: Kafka fsyncing every append (log.flush.interval.messages=1),
# the durability StreamHouse's embedded default gives an acknowledgement.
OPTIONAL_BROKERS = ["kafka-fsync"]
SCENARIOS = ["produce", "consume", "latency", "e2e", "fixed-1p", "produce-1000p", "fixed-1000p"]
# The compactor's gauge of its last pass with nothing to do, and its default
# minimum object age (storage/src/compaction).
COMPACTION_IDLE = "streamhouse_compaction_last_idle_ms"
COMPACTION_PENDING = "streamhouse_compaction_pending_objects"
COMPACTION_MIN_AGE_S = 5
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- processes ---------------------------------------------------------------

STARTED = []  # every long-running process this script started


def start_process(args, log_path, cwd=None, env=None):
    out = open(log_path, "ab")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=cwd, env=env, start_new_session=True)
    out.close()
    STARTED.append(proc)
    return proc


def stop_process(proc, timeout=60):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in STARTED:
        STARTED.remove(proc)


def stop_all():
    for proc in list(STARTED):
        stop_process(proc, timeout=30)


class Failed(Exception):
    pass


def run_client(args, timeout, log_path, broker_pid=None):
    """Runs a client to completion; returns (stdout, usage) where usage has the
    client's CPU seconds, its wall time and, given broker_pid, the broker's CPU
    seconds over the same time, each also as cores (CPU seconds per second)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    broker0 = cpu_seconds(broker_pid) if broker_pid else None
    t0 = time.time()
    with open(log_path, "ab") as err:
        err.write(("\n$ %s\n" % " ".join(args)).encode())
        err.flush()
        try:
            done = subprocess.run(args, stdout=subprocess.PIPE, stderr=err, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Failed("%s timed out after %d s" % (args[-1] if args else "?", timeout))
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    usage = {"client_wall_s": wall, "client_cpu_s": cpu, "client_cores": cpu / wall}
    if broker_pid:
        usage["broker_cpu_s"] = cpu_seconds(broker_pid) - broker0
        usage["broker_cores"] = usage["broker_cpu_s"] / wall
    out = done.stdout.decode(errors="replace")
    with open(log_path, "a") as err:
        err.write(out)
    if done.returncode != 0:
        raise Failed("exit status %d (see %s)" % (done.returncode, log_path))
    return out, usage


# ---- the Kafka wire protocol, just enough for Metadata ------------------------

def _kstring(text):
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def metadata_request(sock, correlation_id, topics):
    """Sends Metadata v4 for `topics` (None: all) and returns the response body."""
    if topics is None:
        body = struct.pack(">i", -1)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(_kstring(t) for t in topics)
    body += b"\x00"  # allow_auto_topic_creation = false
    header = struct.pack(">hhi", 3, 4, correlation_id) + _kstring("e2e-bench")
    frame = header + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    data = _recv_exact(sock, size)
    if struct.unpack(">i", data[:4])[0] != correlation_id:
        raise Failed("metadata: correlation id mismatch")
    return data[4:]


def _recv_exact(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def broker_count(body):
    # throttle_time_ms int32, then the brokers array's length
    return struct.unpack(">i", body[4:8])[0]


def wait_ready(port, proc, what, timeout=120):
    deadline = time.time() + timeout
    last = "no answer"
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Failed("%s exited with status %s while starting" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.settimeout(5)
                if broker_count(metadata_request(sock, 1, None)) >= 1:
                    return
                last = "no brokers in Metadata yet"
        except (OSError, Failed, struct.error) as e:
            last = str(e)
        time.sleep(0.2)
    raise Failed("%s not ready on port %d after %d s: %s" % (what, port, timeout, last))


# ---- brokers -------------------------------------------------------------------

class Skipped(Exception):
    """A scenario left out by --scenarios."""


class Broker:
    name = "?"
    proc = None
    port = None

    def pid(self):
        return self.proc.pid

    def metrics(self):
        return {}

    def wait_compacted(self, timeout=180):
        """Seconds until the compactor (StreamHouse only) has made a pass that found
        nothing to merge, late enough that everything written so far had reached
        the compactor's minimum age (5 s)."""
        t0 = time.time()
        if COMPACTION_IDLE not in self.metrics():
            return 0.0
        while time.time() - t0 < timeout:
            m = self.metrics()
            # Nothing small left at all (also: compaction turned off), or a pass
            # late enough to have seen everything found nothing worth merging.
            if m.get(COMPACTION_PENDING, 0) == 0 or \
                    m.get(COMPACTION_IDLE, 0) >= (t0 + COMPACTION_MIN_AGE_S + 1) * 1000:
                return time.time() - t0
            time.sleep(0.5)
        raise Failed("compaction not idle after %d s" % timeout)

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


class KafkaBroker(Broker):
    def __init__(self, lib, workdir, logdir, fsync_every_append=False):
        self.name = "kafka-fsync" if fsync_every_append else "kafka"
        self.lib, self.workdir, self.logdir = lib, workdir, logdir
        self.port = free_port()
        controller = free_port()
        self.props = os.path.join(workdir, "server.properties")
        with open(self.props, "w") as f:
            f.write("\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                "controller.quorum.voters=1@127.0.0.1:%d" % controller,
                "listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d" % (self.port, controller),
                "advertised.listeners=PLAINTEXT://127.0.0.1:%d" % self.port,
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "log.dirs=%s" % os.path.join(workdir, "logs"),
                "num.partitions=1",
                "group.initial.rebalance.delay.ms=0",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
            ] + (["log.flush.interval.messages=1"] if fsync_every_append else []) + [""]))
        log_path = os.path.join(logdir, "kafka-format.log")
        cluster_id, _ = run_client(self.java("kafka.tools.StorageTool", "random-uuid"), 120, log_path)
        run_client(self.java("kafka.tools.StorageTool", "format", "-t", cluster_id.strip().splitlines()[-1],
                             "-c", self.props), 120, log_path)

    def java(self, main, *args):
        return ["java", "-Xmx256m", "-cp", os.path.join(self.lib, "*"),
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", main, *args]

    def start(self):
        # The JVM options kafka-server-start.sh uses by default.
        args = ["java", "-Xms1g", "-Xmx1g", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                "-Djava.awt.headless=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", os.path.join(self.lib, "*"), "kafka.Kafka", self.props]
        self.proc = start_process(args, os.path.join(self.logdir, "kafka.log"))
        wait_ready(self.port, self.proc, "kafka")


class StreamHouseBroker(Broker):
    def __init__(self, name, binary, workdir, logdir, catalog=None, store=None):
        self.name, self.binary, self.workdir, self.logdir = name, binary, workdir, logdir
        self.catalog, self.store = catalog, store
        self.port = free_port()
        self.metrics_port = free_port()

    def start(self):
        args = [self.binary, "--listen", "127.0.0.1:%d" % self.port,
                "--data-dir", os.path.join(self.workdir, "data"),
                "--group-initial-rebalance-delay-ms", "0",
                "--metrics-listen", "127.0.0.1:%d" % self.metrics_port]
        if self.catalog:
            args += ["--catalog", self.catalog]
        if self.store:
            args += ["--store", self.store]
        self.proc = start_process(args, os.path.join(self.logdir, self.name + ".log"))
        wait_ready(self.port, self.proc, self.name)

    def metrics(self):
        """The metrics endpoint's values; {} when it does not answer (older binaries)."""
        try:
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=10).read()
        except OSError as e:
            log("  no metrics from %s: %s" % (self.name, e))
            return {}
        values = {}
        for line in text.decode().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
        return values


# ---- per-process measurements ---------------------------------------------------

def reset_peak_rss(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


# ---- the scenarios ---------------------------------------------------------------

PRODUCER_RE = re.compile(
    r"(\d+) (?:steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


class Bench:
    def __init__(self, opts, sizes):
        self.opts, self.sizes = opts, sizes
        self.lib = opts.kafka_lib
        self.results = []

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
                "--throughput", str(rate), "--command-property", "acks=all", *props]
        if warmup:
            args += ["--warmup-records", str(warmup)]
        out, usage = run_client(self.java_client("org.apache.kafka.tools.ProducerPerformance", *args),
                                900, log_path, broker.pid())
        matches = [m for m in map(PRODUCER_RE.search, out.splitlines()) if m]
        # The complete test's summary, then (with a warm-up) the steady state's.
        if not matches or int(matches[0].group(1)) != records:
            raise Failed("not every record was acknowledged (see %s)" % log_path)
        total, steady = matches[0], matches[-1]
        values = {
            "records": records,
            "records_per_s": float(total.group(2)),
            "mib_per_s": float(total.group(3)),
            "steady_records": int(steady.group(1)),
            "avg_ms": float(steady.group(4)),
            "max_ms": float(steady.group(5)),
            "p50_ms": float(steady.group(6)),
            "p95_ms": float(steady.group(7)),
            "p99_ms": float(steady.group(8)),
            "p999_ms": float(steady.group(9)),
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
        out, usage = run_client(self.java_client(
            "org.apache.kafka.tools.EndToEndLatency", "127.0.0.1:%d" % broker.port, topic, str(records),
            "all", str(RECORD_SIZE)), 900, log_path, broker.pid())
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

    # One scenario: resets the broker's peak RSS, measures CPU and store
    # requests around `body`, and records the result (or the failure).
    def scenario(self, rep, broker, name, body):
        if self.opts.scenarios and name not in self.opts.scenarios:
            return {"ok": False, "skipped": True}
        log(" %s / %s" % (broker.name, name))
        entry = {"rep": rep, "broker": broker.name, "scenario": name, "ok": False}
        try:
            # The previous scenario's compaction is its own cost, not this one's.
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

        def produce_8p():
            created = self.create_topic(broker, "tp8", 8)
            v = self.produce(broker, "tp8", s["produce_records"], -1, os.path.join(logdir, "produce.log"))
            v["create_s"] = created
            return v
        produced = self.scenario(rep, broker, "produce", produce_8p)

        # Catch-up read from a cold broker: restart it, so the read comes from
        # the store (StreamHouse) or the log files (Kafka), not the agent's cache.
        def consume():
            if not produced["ok"]:
                raise Failed("nothing produced")
            v = self.consume(broker, "tp8", s["produce_records"], os.path.join(logdir, "consume.log"))
            v["compaction_wait_s"] = compaction_wait
            return v
        try:
            if self.opts.scenarios and "consume" not in self.opts.scenarios:
                raise Skipped()
            # Catch-up reads are of data older than what compaction leaves alone;
            # let it finish before the restart (Kafka has nothing to wait for).
            compaction_wait = broker.wait_compacted() if produced["ok"] else 0.0
            broker.stop()
            broker.start()
            self.scenario(rep, broker, "consume", consume)
        except Skipped:
            pass
        except Exception as e:  # noqa: BLE001
            self.results.append({"rep": rep, "broker": broker.name, "scenario": "consume", "ok": False,
                                 "error": "restart failed: %s" % e})

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
            v = self.produce(broker, "tw1000", s["wide_records"], -1, os.path.join(logdir, "wide.log"))
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


def store_deltas(m0, m1, wall):
    def d(name):
        return m1.get(name, 0) - m0.get(name, 0)
    puts, gets = d("streamhouse_store_puts_total"), d("streamhouse_store_gets_total")
    out = {
        "store_puts": puts,
        "store_put_bytes": d("streamhouse_store_put_bytes_total"),
        "store_gets": gets,
        "store_get_bytes": d("streamhouse_store_get_bytes_total"),
        "store_other": d("streamhouse_store_other_requests_total"),
        "objects_sealed": d("streamhouse_objects_sealed_total"),
        "objects_committed": d("streamhouse_objects_committed_total"),
        "catalog_commits": d("streamhouse_catalog_commit_latency_count"),
        "compaction_bytes_rewritten": d("streamhouse_compaction_bytes_rewritten_total"),
    }
    n = d("streamhouse_store_put_latency_count")
    if n:
        out["store_put_mean_ms"] = d("streamhouse_store_put_latency_sum_micros") / n / 1000
    n = d("streamhouse_store_get_latency_count")
    if n:
        out["store_get_mean_ms"] = d("streamhouse_store_get_latency_sum_micros") / n / 1000
    n = d("streamhouse_catalog_commit_latency_count")
    if n:
        out["catalog_commit_mean_ms"] = d("streamhouse_catalog_commit_latency_sum_micros") / n / 1000
    n = d("streamhouse_compaction_swap_latency_count")
    if n:
        out["compaction_swap_mean_ms"] = d("streamhouse_compaction_swap_latency_sum_micros") / n / 1000
    for key, name in [("store_put_p99_ms_cumulative", 'streamhouse_store_put_latency_micros{quantile="0.99"}'),
                      ("catalog_commit_p99_ms_cumulative",
                       'streamhouse_catalog_commit_latency_micros{quantile="0.99"}')]:
        if name in m1:
            out[key] = m1[name] / 1000
    return out


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


# ---- the summary -------------------------------------------------------------------

# (row label, scenario, value key, unit, higher is better, StreamHouse only)
ROWS = [
    ("produce throughput, 8 partitions", "produce", "mib_per_s", "MiB/s", True, False),
    ("consume throughput (catch-up, cold broker)", "consume", "mib_per_s", "MiB/s", True, False),
    ("produce latency p50 @ 5 MiB/s", "latency", "p50_ms", "ms", False, False),
    ("produce latency p99 @ 5 MiB/s", "latency", "p99_ms", "ms", False, False),
    ("produce latency p99.9 @ 5 MiB/s", "latency", "p999_ms", "ms", False, False),
    ("end-to-end latency p50", "e2e", "p50_ms", "ms", False, False),
    ("end-to-end latency p99", "e2e", "p99_ms", "ms", False, False),
    ("produce throughput, 1000 partitions", "produce-1000p", "mib_per_s", "MiB/s", True, False),
    ("create topic, 1000 partitions", "produce-1000p", "create_s", "s", False, False),
    ("Metadata p50, 1000-partition topic", "produce-1000p", "metadata_p50_ms", "ms", False, False),
    ("Metadata p99, 1000-partition topic", "produce-1000p", "metadata_p99_ms", "ms", False, False),
    ("produce latency p99 @ 5 MiB/s, 1 partition, 128 KiB batches", "fixed-1p", "p99_ms", "ms", False, False),
    ("produce latency p99 @ 5 MiB/s, 1000 partitions, 128 KiB batches", "fixed-1000p", "p99_ms", "ms", False, False),
    ("store PUTs per GiB written", "produce", "puts_per_gib", "", False, True),
    ("store mean PUT time (produce)", "produce", "store_put_mean_ms", "ms", False, True),
    ("store mean PUT time (@ 5 MiB/s)", "latency", "store_put_mean_ms", "ms", False, True),
    ("catalog mean commit time (produce)", "produce", "catalog_commit_mean_ms", "ms", False, True),
    ("objects per catalog commit (produce)", "produce", "objects_per_commit", "", True, True),
    ("catalog mean commit time (@ 5 MiB/s)", "latency", "catalog_commit_mean_ms", "ms", False, True),
    ("compaction mean catalog swap time (@ 5 MiB/s)", "latency", "compaction_swap_mean_ms", "ms", False, True),
    ("wait for compaction before the catch-up read", "consume", "compaction_wait_s", "s", False, True),
    ("store GETs per GiB read", "consume", "gets_per_gib", "", False, True),
    ("store MiB per GET (catch-up)", "consume", "mib_per_get", "MiB", True, True),
    ("store PUTs/s @ 5 MiB/s, 1 partition", "fixed-1p", "store_puts_per_s", "/s", False, True),
    ("store PUTs/s @ 5 MiB/s, 8 partitions", "latency", "store_puts_per_s", "/s", False, True),
    ("store PUTs/s @ 5 MiB/s, 1000 partitions", "fixed-1000p", "store_puts_per_s", "/s", False, True),
    ("broker CPU, produce (cores)", "produce", "broker_cores", "", False, False),
    ("client CPU, produce (cores)", "produce", "client_cores", "", False, False),
    ("broker CPU, consume (cores)", "consume", "broker_cores", "", False, False),
    ("client CPU, consume (cores)", "consume", "client_cores", "", False, False),
    ("broker CPU, produce 1000 partitions (cores)", "produce-1000p", "broker_cores", "", False, False),
    ("broker CPU @ 5 MiB/s, 8 partitions (cores)", "latency", "broker_cores", "", False, False),
    ("broker RSS at start", "start", "idle_rss_mib", "MiB", False, False),
    ("broker peak RSS, produce", "produce", "broker_peak_rss_mib", "MiB", False, False),
    ("broker peak RSS, consume", "consume", "broker_peak_rss_mib", "MiB", False, False),
    ("broker peak RSS, latency", "latency", "broker_peak_rss_mib", "MiB", False, False),
    ("broker peak RSS, end-to-end", "e2e", "broker_peak_rss_mib", "MiB", False, False),
    ("broker peak RSS, 1000 partitions", "produce-1000p", "broker_peak_rss_mib", "MiB", False, False),
]


def derived(values):
    """Adds the ratios computed from a scenario's raw values."""
    v = dict(values)
    gib_written = v.get("store_put_bytes", 0) / 2**30
    if "store_puts" in v and gib_written > 0:
        v["puts_per_gib"] = v["store_puts"] / gib_written
    if v.get("catalog_commits"):
        v["objects_per_commit"] = v["objects_committed"] / v["catalog_commits"]
    mib = v.get("mib")
    if "store_gets" in v and mib:
        v["gets_per_gib"] = v["store_gets"] / (mib / 1024)
        if v["store_gets"]:
            v["mib_per_get"] = v["store_get_bytes"] / 2**20 / v["store_gets"]
    # Rates per second of the client's own measured interval (the producer's
    # duration, the consumer's fetch time), not counting the JVM's start, when
    # the broker is idle.
    active = None
    if v.get("records") and v.get("records_per_s"):
        active = v["records"] / v["records_per_s"]
    elif v.get("fetch_ms"):
        active = v["fetch_ms"] / 1000
    if active:
        if "store_puts" in v:
            v["store_puts_per_s"] = v["store_puts"] / active
        if "broker_cpu_s" in v:
            v["broker_cores"] = v["broker_cpu_s"] / active
    return v


def summarize(results, brokers):
    """{row label: {broker: {"median", "values", "failed"}}}"""
    table = {}
    for label, scenario, key, _unit, _higher, sh_only in ROWS:
        row = {}
        for b in brokers:
            if sh_only and b.startswith("kafka"):
                continue
            entries = [r for r in results if r["broker"] == b and r["scenario"] == scenario]
            vals = [derived(r["values"]).get(key) for r in entries if r["ok"]]
            vals = [x for x in vals if x is not None]
            failed = sum(1 for r in entries if not r["ok"])
            row[b] = {"median": statistics.median(vals) if vals else None, "values": vals,
                      "failed": failed, "errors": [r.get("error") for r in entries if not r["ok"]]}
        table[label] = row
    return table


def fmt(x):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return "%.0f" % x
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.2f" % x


def markdown_table(table, brokers):
    sh = [b for b in brokers if b != "kafka"]  # ratios against plain Kafka
    head = ["metric", "unit", "better"] + brokers + (["%s / kafka" % b for b in sh] if "kafka" in brokers else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, _scenario, _key, unit, higher, sh_only in ROWS:
        row = table[label]
        cells = [label, unit, "higher" if higher else "lower"]
        for b in brokers:
            if b not in row:
                cells.append("n/a")
                continue
            c = row[b]
            text = fmt(c["median"]) if c["median"] is not None else ("FAILED" if c["failed"] else "-")
            if c["failed"] and c["median"] is not None:
                text += " (%d failed)" % c["failed"]
            cells.append(text)
        if "kafka" in brokers:
            for b in sh:
                k = row.get("kafka", {}).get("median")
                s = row.get(b, {}).get("median")
                cells.append("%.2fx" % (s / k) if (k and s is not None and not sh_only) else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plots(results, table, brokers, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"kafka": "#555555", "kafka-fsync": "#999999", "sh-embedded": "#1f77b4", "sh-s3": "#ff7f0e"}
    written = []

    def grouped(ax, labels, brokers_, ylabel, title, log=False):
        width = 0.8 / len(brokers_)
        for i, b in enumerate(brokers_):
            med = [table[l].get(b, {}).get("median") for l in labels]
            xs = [j + (i - (len(brokers_) - 1) / 2) * width for j in range(len(labels))]
            ax.bar(xs, [m or 0 for m in med], width, label=b, color=colors.get(b))
            for x, l in zip(xs, labels):  # every repetition as a dot
                vals = table[l].get(b, {}).get("values", [])
                ax.plot([x] * len(vals), vals, "k.", markersize=4)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels([l.replace(", ", ",\n").replace(" @ ", "\n@ ") for l in labels], fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.legend()

    fig, ax = plt.subplots(figsize=(9, 5))
    grouped(ax, ["produce throughput, 8 partitions", "consume throughput (catch-up, cold broker)",
                 "produce throughput, 1000 partitions"], brokers, "MiB/s (median; dots: repetitions)",
            "Throughput, 1 KiB records, acks=all")
    fig.tight_layout()
    path = os.path.join(out, "throughput.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(11, 5))
    grouped(ax, ["produce latency p50 @ 5 MiB/s", "produce latency p99 @ 5 MiB/s",
                 "produce latency p99.9 @ 5 MiB/s", "end-to-end latency p50", "end-to-end latency p99",
                 "produce latency p99 @ 5 MiB/s, 1000 partitions, 128 KiB batches"],
            brokers, "ms (log scale)", "Latency percentiles", log=True)
    fig.tight_layout()
    path = os.path.join(out, "latency.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(11, 5))
    grouped(ax, ["broker RSS at start", "broker peak RSS, produce", "broker peak RSS, consume",
                 "broker peak RSS, latency", "broker peak RSS, 1000 partitions"],
            brokers, "MiB", "Broker resident memory (VmHWM per scenario)")
    fig.tight_layout()
    path = os.path.join(out, "memory.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"nproc": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1), "cpu": model,
            "kernel": platform.release(), "load_1m_at_start": os.getloadavg()[0]}


# ---- main --------------------------------------------------------------------------

def psql(pg_admin_url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", pg_admin_url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int)
    p.add_argument("--scale", type=float, default=1.0, help="multiply record counts and durations")
    p.add_argument("--brokers", default=",".join(BROKERS))
    p.add_argument("--streamhouse-bin", required=True)
    p.add_argument("--kafka-lib", required=True)
    p.add_argument("--pg-url", help="postgres://USER@HOST:PORT (a database per broker is created)")
    p.add_argument("--versitygw", help="versitygw binary (started on a free port)")
    p.add_argument("--s3-url", help="an already running S3 server's base URL (used without --versitygw)")
    p.add_argument("--s3-bucket", default="streamhouse-bench")
    p.add_argument("--workdir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--notes", default="")
    p.add_argument("--scenarios", help="comma-separated subset of: " + ", ".join(SCENARIOS)
                   + " (consume needs produce)")
    opts = p.parse_args()
    if opts.scenarios:
        opts.scenarios = {x.strip() for x in opts.scenarios.split(",") if x.strip()}
        unknown = opts.scenarios - set(SCENARIOS)
        if unknown:
            p.error("unknown scenarios: %s" % ", ".join(sorted(unknown)))
        if "consume" in opts.scenarios:
            opts.scenarios.add("produce")

    sizes = dict(QUICK if opts.quick else FULL)
    if opts.reps:
        sizes["reps"] = opts.reps
    for key in sizes:
        if key != "reps":
            sizes[key] = max(1, int(sizes[key] * opts.scale))
    brokers = [b.strip() for b in opts.brokers.split(",") if b.strip()]
    for b in brokers:
        if b not in BROKERS + OPTIONAL_BROKERS:
            p.error("unknown broker %s (known: %s)" % (b, ", ".join(BROKERS + OPTIONAL_BROKERS)))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(opts.out, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    bench = Bench(opts, sizes)
    databases = []
    s3_url = opts.s3_url
    store_note = "moto" if s3_url else None
    t_start = time.time()
    info = {"machine": machine(), "sizes": sizes, "brokers": brokers, "record_size": RECORD_SIZE,
            "fixed_rate_records_per_s": FIXED_RATE, "run_id": run_id, "notes": opts.notes,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        if "sh-s3" in brokers and opts.versitygw:
            root = os.path.join(opts.workdir, "versitygw")
            os.makedirs(os.path.join(root, opts.s3_bucket))  # a directory is a bucket
            port = free_port()
            start_process([opts.versitygw, "--access", "test", "--secret", "test",
                           "--port", "127.0.0.1:%d" % port, "posix", root],
                          os.path.join(opts.workdir, "versitygw.log"))
            deadline = time.time() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise Failed("versitygw did not listen")
                    time.sleep(0.1)
            s3_url = "http://127.0.0.1:%d" % port
            store_note = "versitygw (posix backend on %s)" % root
        info["s3_server"] = store_note
        for rep in range(1, sizes["reps"] + 1):
            order = brokers[rep - 1:] + brokers[:rep - 1]  # rotate who goes first
            log("repetition %d of %d: %s" % (rep, sizes["reps"], " -> ".join(order)))
            for name in order:
                workdir = tempfile.mkdtemp(prefix="%s-rep%d-" % (name, rep), dir=opts.workdir)
                logdir = os.path.join(opts.workdir, "logs", "rep%d-%s" % (rep, name))
                os.makedirs(logdir, exist_ok=True)
                broker = None
                try:
                    if name in ("kafka", "kafka-fsync"):
                        broker = KafkaBroker(opts.kafka_lib, workdir, logdir,
                                             fsync_every_append=(name == "kafka-fsync"))
                    elif name == "sh-embedded":
                        broker = StreamHouseBroker(name, opts.streamhouse_bin, workdir, logdir)
                    else:
                        if not (opts.pg_url and s3_url):
                            raise Failed("sh-s3 needs --pg-url and an S3 server")
                        db = "shbench_%s_%d" % (run_id, rep)
                        psql(opts.pg_url + "/postgres", "CREATE DATABASE %s" % db)
                        databases.append(db)
                        store = "s3://%s?endpoint=%s&region=us-east-1&allow_http=true&path_style=true" \
                                "&prefix=%s/rep%d" % (opts.s3_bucket, s3_url, run_id, rep)
                        broker = StreamHouseBroker(name, opts.streamhouse_bin, workdir, logdir,
                                                   catalog="%s/%s" % (opts.pg_url, db), store=store)
                    bench.run_broker(rep, broker)
                except Exception as e:  # noqa: BLE001
                    log("  %s: %s" % (name, e))
                    bench.results.append({"rep": rep, "broker": name, "scenario": "start", "ok": False,
                                          "error": "%s: %s" % (type(e).__name__, e)})
                finally:
                    if broker is not None:
                        broker.stop()
                    shutil.rmtree(workdir, ignore_errors=True)
    finally:
        stop_all()
        for db in databases:
            try:
                psql(opts.pg_url + "/postgres", "DROP DATABASE IF EXISTS %s" % db)
            except subprocess.CalledProcessError:
                log("could not drop database %s" % db)
        info["wall_s"] = time.time() - t_start
        info["load_1m_at_end"] = os.getloadavg()[0]
        table = summarize(bench.results, brokers)
        md = markdown_table(table, brokers)
        with open(os.path.join(opts.out, "results.json"), "w") as f:
            json.dump({"info": info, "summary": table, "runs": bench.results}, f, indent=1)
        with open(os.path.join(opts.out, "results.md"), "w") as f:
            f.write(md + "\n")
        print(md)
        failures = [r for r in bench.results if not r["ok"]]
        for r in failures:
            print("FAILED rep %d %s %s: %s" % (r["rep"], r["broker"], r["scenario"], r.get("error")))
        try:
            for path in plots(bench.results, table, brokers, opts.out):
                log("wrote %s" % path)
        except Exception as e:  # noqa: BLE001
            log("plots failed: %s" % e)
        log("done in %.0f s; results in %s" % (info["wall_s"], opts.out))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
