"""The brokers under test: Apache Kafka (KRaft, one node), StreamHouse on
either backend and, when named, Nisshi on its S3 or SQLite engine, each
started on free ports and ready once Metadata lists a broker."""

import os
import socket
import struct
import time

from .metrics import COMPACTION_IDLE, COMPACTION_MIN_AGE_S, COMPACTION_PENDING, scrape
from .processes import Failed, free_port, log, run_client, start_process, stop_process
from .wire import broker_count, metadata_request


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
    def __init__(self, name, binary, workdir, logdir, catalog=None, store=None, extra_args=()):
        self.name, self.binary, self.workdir, self.logdir = name, binary, workdir, logdir
        self.catalog, self.store = catalog, store
        self.extra_args = list(extra_args)
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
        args += self.extra_args
        self.proc = start_process(args, os.path.join(self.logdir, self.name + ".log"))
        wait_ready(self.port, self.proc, self.name)

    def metrics(self):
        """The metrics endpoint's values; {} when it does not answer (older binaries)."""
        try:
            return scrape(self.metrics_port)
        except OSError as e:
            log("  no metrics from %s: %s" % (self.name, e))
            return {}


class NisshiBroker(Broker):
    """Nisshi (formerly Tansu), the open-source Rust peer, built with cargo
    install into the bench cache (run.sh), on one of its storage engines:
    its S3 engine (everything in the bucket) or its SQLite one (libsql, a
    file). Its store requests are counted by the latency proxy in front of
    the S3 server (`counts_file`), as it reports none the harness reads."""

    def __init__(self, name, binary, workdir, logdir, engine, env=None, counts_file=None):
        self.name, self.binary, self.workdir, self.logdir = name, binary, workdir, logdir
        self.engine, self.env, self.counts_file = engine, dict(env or {}), counts_file
        self.port = free_port()

    def start(self):
        url = "tcp://127.0.0.1:%d" % self.port
        # A sqlite:// path is relative to the working directory.
        args = [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", self.engine, "--group-initial-rebalance-delay", "0s"]
        self.proc = start_process(args, os.path.join(self.logdir, self.name + ".log"),
                                  cwd=self.workdir, env=dict(os.environ, **self.env))
        wait_ready(self.port, self.proc, self.name)

    def metrics(self):
        """The proxy's request counts under the keys store_deltas reads."""
        if not self.counts_file:
            return {}
        counts = proxy_counts(self.counts_file)
        return {"streamhouse_store_puts_total": counts.get("PUT", 0) + counts.get("POST", 0),
                "streamhouse_store_gets_total": counts.get("GET", 0),
                "streamhouse_store_other_requests_total":
                    sum(counts.get(k, 0) for k in ("LIST", "HEAD", "DELETE", "OTHER"))}


def proxy_counts(path):
    """The latency proxy's request counts ({"PUT": n, ...}); {} before its
    first write."""
    try:
        with open(path) as f:
            return {k: int(v) for k, v in (line.split() for line in f if line.strip())}
    except OSError:
        return {}
