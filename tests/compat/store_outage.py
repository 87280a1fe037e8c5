#!/usr/bin/env python3
"""The object store frozen under load: an agent keeps running, loses nothing
acknowledged, writes nothing twice, and says it is not ready meanwhile.

An S3 server of its own (moto from the venv on a free port, a fresh bucket;
never the shared test server, which other runners use meanwhile) holds the
objects of one agent whose catalog is a fresh database on the test command's
PostgreSQL. A confluent-kafka producer (acks=all, enable.idempotence=true)
sends numbered records round-robin to 3 partitions, paced, and records every
acknowledgement. Twice the S3 server is frozen (SIGSTOP: connections are still
accepted by the kernel, nothing answers) and thawed (SIGCONT): first for 35 s,
longer than the store client's 30 s request timeout (object_store's default;
the PUTs in flight time out and are retried) and than the 30 s the producer
waits for an answer (socket.timeout.ms, set to the Java client's
request.timeout.ms: it drops the connection and retries the batches); then
for 10 s, shorter than both. A thread polls /readyz on the agent's metrics
listener every half second throughout. The agent is never restarted. Then:

  all-delivered       every record was acknowledged (librdkafka retried what
                      failed or timed out while the store was away)
  acked-durable       every acknowledged value is at its acknowledged offset
  offsets-contiguous  each partition reads as offsets 0..HW-1 with only values
                      this producer sent
  no-duplicates       every value is in the log exactly once
  read-back           a consumer read back every value sent
  unready-in-outage   /readyz answered 503 within 10 s of each freeze
  ready-after-outage  /readyz answered 200 within 30 s of each thaw, and
                      acknowledgements flowed again
  agent-survived      the agent process is the one started first

The figures (per outage: the longest gap between acknowledgements, how long
after the freeze /readyz answered 503 and after the thaw the first
acknowledgement and /readyz's 200 came, the WARN lines the agent logged from
the freeze to its recovery; records acknowledged, producer errors, requests
the producer timed out) are printed for docs/reliability.md.

Usage: store_outage.py [--outages SECONDS,SECONDS] [--rate N]
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import harness  # noqa: E402
from catalog_restart import ReadyWatch, longest_gap  # noqa: E402
from crash_test import PARTITIONS, check_log, client_logger, read_all  # noqa: E402

# Records flow this long before the first freeze and after each recovery.
STEADY_S = 5.0
UNREADY_WITHIN_S = 10.0
RECOVER_WITHIN_S = 30.0
READYZ_EVERY_S = 0.5


def moto_binary():
    here = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if os.access(here, os.X_OK):
        return here
    return os.path.join(harness.CACHE, "venv", "bin", "moto_server")


class PrivateS3:
    """A moto S3 server on a free port, for this run only, that can be frozen."""

    def __init__(self, log_path):
        self.port = harness.free_port()
        self.log_path = log_path
        self.proc = None
        self.bucket = harness.unique("sh-outage").lower()

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def store_url(self):
        return "s3://%s?endpoint=%s&region=us-east-1&allow_http=true" % (self.bucket, self.endpoint)

    def start(self):
        binary = moto_binary()
        if not os.access(binary, os.X_OK):
            raise harness.BrokerError("%s missing (scripts/test.sh --setup-only installs it)" % binary)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise harness.BrokerError("moto_server exited with status %s (log %s)"
                                          % (self.proc.returncode, self.log_path))
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise harness.BrokerError("moto_server did not answer on %s within 30 s" % self.endpoint)
                time.sleep(0.2)
        import boto3  # the venv's
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test").create_bucket(Bucket=self.bucket)

    def _signal(self, sig):
        # Its own session: the signal reaches moto and nothing else.
        os.killpg(self.proc.pid, sig)

    def freeze(self):
        self._signal(signal.SIGSTOP)

    def thaw(self):
        self._signal(signal.SIGCONT)

    def cleanup(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.thaw()
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait()


class Feeder:
    """Sends numbered records at a fixed pace until stopped; records every
    acknowledgement (partition, offset, value) and its time."""

    def __init__(self, bootstrap, topic, rate, logger):
        self.topic = topic
        self.rate = rate
        self.acked, self.ack_times, self.failed, self.errors = [], [], [], []
        self.sent = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            # Longer than the first outage and its recovery together.
            "message.timeout.ms": 180_000,
            "retry.backoff.ms": 100,
            # librdkafka gives up on a request after socket.timeout.ms (60 s);
            # 30 s is the Java client's request.timeout.ms, which the first
            # outage exceeds: the producer drops the connection and retries.
            "socket.timeout.ms": 30_000,
            "error_cb": lambda e: self.errors.append(str(e)),
        }, logger=logger)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, err, msg):
        with self.lock:
            if err is None:
                self.acked.append((msg.partition(), msg.offset(), msg.value()))
                self.ack_times.append(time.monotonic())
            else:
                self.failed.append((msg.value(), str(err)))

    def _run(self):
        n = 0
        start = time.monotonic()
        while not self.stop.is_set():
            value = b"outage-%08d" % n
            try:
                self.producer.produce(self.topic, value, key=b"%d" % n, partition=n % PARTITIONS,
                                      on_delivery=self._delivered)
                self.sent.add(value)
                n += 1
            except BufferError:
                self.producer.poll(0.05)
                continue
            self.producer.poll(0)
            pause = start + n / self.rate - time.monotonic()
            if pause > 0:
                self.producer.poll(pause)

    def acks_since(self, t):
        with self.lock:
            return sum(1 for a in self.ack_times if a >= t)

    def first_ack_after(self, t):
        with self.lock:
            return next((a for a in self.ack_times if a >= t), None)

    def finish(self, timeout):
        self.stop.set()
        self.thread.join()
        return self.producer.flush(timeout)


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def warn_lines(path, start, end):
    """The agent's WARN lines between two byte offsets of its log."""
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read(max(0, end - start)).decode("utf-8", "replace")
    return [line for line in text.splitlines() if " WARN " in line]


def client_timeouts(path):
    """ProduceRequests librdkafka gave up on (socket.timeout.ms) in its log."""
    try:
        with open(path, errors="replace") as f:
            return sum(1 for line in f if "Timed out ProduceRequest in flight" in line)
    except OSError:
        return 0


def warn_summary(lines):
    """How many WARN lines each logging module wrote: 'target N, ...'."""
    counts = {}
    for line in lines:
        parts = line.split()
        target = parts[2].rstrip(":") if len(parts) > 2 else "?"
        counts[target] = counts.get(target, 0) + 1
    return ", ".join("%s %d" % kv for kv in sorted(counts.items(), key=lambda kv: -kv[1]))


def run(args):
    name = "store-outage"
    if "pg-s3" not in harness.backends():
        print("%s: not run, it needs the pg-s3 backend pair (COMPAT_BACKENDS=%s)"
              % (name, " ".join(harness.backends())), flush=True)
        return True
    ok = True

    def fail(scenario, detail):
        nonlocal ok
        ok = False
        harness.record("FAIL", "%s/%s" % (name, scenario), detail)

    def check(scenario, problems, detail=""):
        if problems:
            fail(scenario, "; ".join(problems[:5]))
        else:
            harness.record("PASS", "%s/%s" % (name, scenario), detail)

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    s3 = PrivateS3(os.path.join(harness.run_dir(), harness.unique("store-outage-moto") + ".log"))
    broker = None
    watch = None
    feeder = None
    try:
        s3.start()
        db = "shcompat_" + harness.unique("store_outage").replace("-", "_").lower()
        harness._psql('CREATE DATABASE "%s"' % db)
        metrics_port = harness.free_port()
        broker = harness.Broker("embedded", name,
                                ["--catalog", harness._with_db(harness._pg_admin_url(), db),
                                 "--store", s3.store_url,
                                 "--metrics-listen", "127.0.0.1:%d" % metrics_port])
        broker.db = db  # dropped by cleanup()
        broker.start()
        first_pid = broker.proc.pid
        clients_log = os.path.join(broker.dir, "clients.log")
        logger = client_logger(clients_log)
        topic = harness.unique("store-outage")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap}, logger=logger)
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)

        watch = ReadyWatch(metrics_port, READYZ_EVERY_S)
        watch.thread.start()
        feeder = Feeder(broker.bootstrap, topic, args.rate, logger)
        feeder.thread.start()
        time.sleep(STEADY_S)

        outages = []
        for held in args.outages:
            o = {"held": held, "log_at_freeze": log_size(broker.log_path)}
            o["frozen"] = time.monotonic()
            s3.freeze()
            time.sleep(held)
            o["thawed"] = time.monotonic()
            s3.thaw()
            # Recovered: ready again and records acknowledged since the thaw.
            deadline = o["thawed"] + RECOVER_WITHIN_S
            while time.monotonic() < deadline:
                if watch.first(200, o["thawed"]) is not None and feeder.acks_since(o["thawed"]) >= 50:
                    break
                time.sleep(0.1)
            o["recovered"] = time.monotonic()
            o["log_at_recovery"] = log_size(broker.log_path)
            outages.append(o)
            time.sleep(STEADY_S)
        left = feeder.finish(150)
        end = time.monotonic()
        watch.finish()

        sent = len(feeder.sent)
        check("all-delivered",
              ["%d of %d records not acknowledged (%d still queued): %s"
               % (sent - len(feeder.acked), sent, left, feeder.failed[:3])]
              if len(feeder.acked) != sent else [], "%d records" % sent)
        log = read_all(broker.bootstrap, topic, logger)
        contiguous, durable, dups = check_log(log, feeder.acked, feeder.sent)
        check("acked-durable", durable)
        check("offsets-contiguous", contiguous)
        check("no-duplicates", ["%r at %s" % (v, where) for v, where in list(dups.items())[:5]])
        read = {v for _, (_, _, recs) in log.items() for _, v in recs}
        missing = feeder.sent - read
        check("read-back", ["%d of %d values sent not read back, e.g. %s"
                            % (len(missing), sent, sorted(missing)[:3])] if missing else [])

        unready, ready = [], []
        for i, o in enumerate(outages, 1):
            o["unready_at"] = watch.first(503, o["frozen"])
            o["ready_at"] = watch.first(200, o["thawed"])
            o["first_ack"] = feeder.first_ack_after(o["thawed"])
            if o["unready_at"] is None or o["unready_at"] > min(o["thawed"], o["frozen"] + UNREADY_WITHIN_S):
                unready.append("outage %d (%.0f s): /readyz did not answer 503 within %.0f s of the freeze "
                               "(polls meanwhile: %s)" % (i, o["held"], UNREADY_WITHIN_S,
                                                          watch.between(o["frozen"], o["thawed"])[:20]))
            if o["ready_at"] is None or o["ready_at"] > o["thawed"] + RECOVER_WITHIN_S:
                ready.append("outage %d: /readyz not 200 within %.0f s of the thaw" % (i, RECOVER_WITHIN_S))
            if o["first_ack"] is None or o["first_ack"] > o["thawed"] + RECOVER_WITHIN_S:
                ready.append("outage %d: no acknowledgement within %.0f s of the thaw" % (i, RECOVER_WITHIN_S))
        check("unready-in-outage", unready)
        check("ready-after-outage", ready)
        check("agent-survived",
              [] if broker.running() and broker.proc.pid == first_pid and broker.starts == 1
              else ["the agent is not the process started first (running: %s)" % broker.running()])

        for i, o in enumerate(outages, 1):
            warns = warn_lines(broker.log_path, o["log_at_freeze"], o["log_at_recovery"])

            def after(t, since):
                return "%.2f s" % (t - since) if t is not None else "never"
            print("%s: outage %d: store frozen %.1f s; longest gap between acknowledgements from 5 s before "
                  "the freeze to 20 s after the thaw: %.2f s; /readyz 503 after %s, 200 again %s after the "
                  "thaw; first acknowledgement %s after the thaw; %d WARN lines from the freeze to the "
                  "recovery (%s)"
                  % (name, i, o["thawed"] - o["frozen"],
                     longest_gap(feeder.ack_times, o["frozen"] - 5, min(end, o["thawed"] + 20)),
                     after(o["unready_at"], o["frozen"]), after(o["ready_at"], o["thawed"]),
                     after(o["first_ack"], o["thawed"]), len(warns), warn_summary(warns) or "none"),
                  flush=True)
        print("%s: %d records acknowledged, %d producer errors reported (%s), %d ProduceRequests timed "
              "out by the producer and retried"
              % (name, len(feeder.acked), len(feeder.errors), "; ".join(sorted(set(feeder.errors))[:3]),
                 client_timeouts(clients_log)), flush=True)
    except Exception as e:  # noqa: BLE001 - any error is this run's failure
        fail("run", "%s: %s" % (type(e).__name__, str(e) or "no answer in time"))
        if broker is not None and not isinstance(e, harness.BrokerError):
            print("--- broker log %s (tail) ---\n%s" % (broker.log_path, broker.log_tail()), flush=True)
    finally:
        if s3.proc is not None and s3.proc.poll() is None:
            s3.thaw()  # the agent's shutdown may need the store
        if watch is not None:
            watch.finish()
        if feeder is not None and feeder.thread.is_alive():
            feeder.stop.set()
            feeder.thread.join()
        if broker is not None:
            broker.cleanup(keep=not ok)
            if not ok:
                print("%s: kept %s" % (name, broker.dir), flush=True)
        s3.cleanup()
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outages", default="35,10",
                    help="how long each freeze lasts, in seconds, comma-separated (default 35,10)")
    ap.add_argument("--rate", type=int, default=200, help="records a second (default 200)")
    args = ap.parse_args()
    args.outages = [float(s) for s in args.outages.split(",") if s]
    if os.environ.get("COMPAT_REFERENCE") == "1":
        print("store_outage.py: the reference Kafka keeps no records in an object store")
        return 0
    return 0 if run(args) else 1


if __name__ == "__main__":
    sys.exit(main())
