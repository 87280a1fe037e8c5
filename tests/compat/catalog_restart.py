#!/usr/bin/env python3
"""PostgreSQL restarted and its connections dropped under load: an agent keeps
running, loses nothing acknowledged and writes nothing twice.

A PostgreSQL server of its own (initdb in a temp dir, a free port; never the
shared test server, which other runners use meanwhile) holds the catalog of
one agent whose objects go to the S3 server of the test command (a fresh key
prefix). A confluent-kafka producer (acks=all, enable.idempotence=true) sends
numbered records round-robin to 3 partitions, paced, and records every
acknowledgement. At a third of them PostgreSQL is restarted in immediate mode
(no clean shutdown: crash recovery on start, every connection cut, commits in
flight lost or finished without an answer); at two thirds every connection to
it is terminated; at five sixths it is stopped (fast mode) for 5 s and started
again. A thread polls /readyz on the agent's metrics listener every quarter
second throughout. The agent is never restarted. Then:

  all-delivered       every record was acknowledged (librdkafka retried what
                      failed while the catalog was away)
  acked-durable       every acknowledged value is at its acknowledged offset
  offsets-contiguous  each partition reads as offsets 0..HW-1 with only values
                      this producer sent
  no-duplicates       every value is in the log exactly once
  group-offsets       a consumer group commits offsets after the faults and
                      reads them back
  agent-survived      the agent process is the one started first
  readyz-follows-catalog
                      /readyz answered 503 within 5 s of PostgreSQL stopping
                      and 200 within 10 s of its start returning

The figures (the longest gap between acknowledgements around each fault,
errors seen by the producer, how long /readyz took to turn unready and ready
again) are printed for docs/reliability.md.

Usage: catalog_restart.py [--records N]
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import harness  # noqa: E402
from crash_test import PARTITIONS, check_log, client_logger, read_all  # noqa: E402

# PostgreSQL is held down this long at five sixths of the records: well inside
# the agent's lease (10 s), which it renews once its pool reconnects (the
# pool's reconnect backoff adds up to a few seconds).
STOPPED_S = 5.0
UNREADY_WITHIN_S = 5.0
READY_WITHIN_S = 10.0


def pg_bindir():
    dirs = sorted(d for d in glob.glob("/usr/lib/postgresql/*/bin")
                  if os.access(os.path.join(d, "pg_ctl"), os.X_OK))
    if not dirs:
        raise harness.BrokerError("no PostgreSQL server installed (scripts/test.sh --setup-only installs it)")
    return dirs[-1]


def as_postgres(cmd):
    """initdb and the server refuse to run as root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class PrivatePostgres:
    """A PostgreSQL server in a temp dir on a free port, for this run only."""

    def __init__(self):
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix="sh-catalog-restart-")
        self.data = os.path.join(self.dir, "data")
        self.port = harness.free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    @property
    def url(self):
        return "postgres://postgres@127.0.0.1:%d/postgres" % self.port

    def _run(self, *args, timeout=120):
        r = subprocess.run(as_postgres([os.path.join(self.bindir, args[0])] + list(args[1:])),
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise harness.BrokerError("%s failed: %s%s" % (args[0], r.stdout, r.stderr))
        return r.stdout

    def start(self):
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync",
                  "--encoding=UTF8", "--locale=C.UTF-8")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                       "fsync = off\nmax_connections = 100\n" % (self.port, self.dir))
        self.pg_ctl("start")

    def pg_ctl(self, action, mode=None):
        args = ["pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "postgres.log"), "-w", "-t", "60"]
        if mode:
            args += ["-m", mode]
        self._run(*(args + [action]))

    def terminate_connections(self):
        out = subprocess.run(["psql", "-X", "-A", "-t", "-d", self.url, "-c",
                              "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE datname = 'postgres' AND pid <> pg_backend_pid()"],
                             capture_output=True, text=True, timeout=30)
        return int(out.stdout.strip() or "0")

    def cleanup(self):
        try:
            self.pg_ctl("stop", mode="immediate")
        except (harness.BrokerError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def s3_store(name):
    base = os.environ.get("STREAMHOUSE_TEST_S3_URL")
    if not base:
        raise harness.BrokerError("STREAMHOUSE_TEST_S3_URL is not set (scripts/test.sh starts the S3 server)")
    return base + ("&" if "?" in base else "?") + "prefix=" + urllib.parse.quote("compat/" + name)


class ReadyWatch:
    """Polls /readyz on a metrics listener every `every` seconds and keeps
    (time sent, status): 200, 503, or None when the listener did not answer."""

    def __init__(self, port, every):
        self.url = "http://127.0.0.1:%d/readyz" % port
        self.every = every
        self.seen = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError:
                status = None
            self.seen.append((t, status))
            self.stop.wait(self.every)

    def first(self, status, after):
        """When a poll sent at or after `after` first answered `status`."""
        return next((t for t, s in list(self.seen) if t >= after and s == status), None)

    def between(self, start, end):
        return [s for t, s in list(self.seen) if start <= t <= end]

    def finish(self):
        self.stop.set()
        self.thread.join()


def longest_gap(ack_times, start, end):
    """The longest time without an acknowledgement between start and end."""
    times = [start] + [t for t in ack_times if start <= t <= end] + [end]
    return max(b - a for a, b in zip(times, times[1:]))


def run(args):
    name = "catalog-restart"
    if "pg-s3" not in harness.backends():
        print("%s: not run, it needs the pg-s3 backend pair (COMPAT_BACKENDS=%s)"
              % (name, " ".join(harness.backends())), flush=True)
        return True
    ok = True

    def fail(scenario, detail):
        nonlocal ok
        ok = False
        harness.record("FAIL", "%s/%s" % (name, scenario), detail)

    def check(scenario, problems):
        if problems:
            fail(scenario, "; ".join(problems[:5]))
        else:
            harness.record("PASS", "%s/%s" % (name, scenario))

    pg = PrivatePostgres()
    broker = None
    watch = None
    try:
        pg.start()
        broker_name = harness.unique(name)
        metrics_port = harness.free_port()
        broker = harness.Broker("embedded", name,
                                ["--catalog", pg.url, "--store", s3_store(broker_name),
                                 "--metrics-listen", "127.0.0.1:%d" % metrics_port])
        broker.start()
        watch = ReadyWatch(metrics_port, 0.25)
        watch.thread.start()
        first_pid = broker.proc.pid
        logger = client_logger(os.path.join(broker.dir, "clients.log"))
        topic = harness.unique("catalog-restart")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap}, logger=logger)
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)

        acked, failed, ack_times, errors = [], [], [], []
        lock = threading.Lock()

        def on_delivery(err, msg):
            with lock:
                if err is None:
                    acked.append((msg.partition(), msg.offset(), msg.value()))
                    ack_times.append(time.monotonic())
                else:
                    failed.append((msg.value(), str(err)))

        producer = Producer({
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            "retry.backoff.ms": 100,
            "error_cb": lambda e: errors.append(str(e)),
        }, logger=logger)
        sent_values = set()
        faults = {}  # name -> (started, ended), and for postgres-stopped when it was down
        restart_at, drop_at, stop_at = args.records // 3, 2 * args.records // 3, 5 * args.records // 6

        def restart_postgres():
            t0 = time.monotonic()
            pg.pg_ctl("restart", mode="immediate")
            faults["postgres-restart"] = (t0, time.monotonic())

        def drop_connections():
            t0 = time.monotonic()
            dropped = pg.terminate_connections()
            faults["connections-dropped"] = (t0, time.monotonic())
            print("%s: terminated %d catalog connections" % (name, dropped), flush=True)

        def stop_postgres():
            t0 = time.monotonic()
            pg.pg_ctl("stop", mode="fast")
            stopped = time.monotonic()
            time.sleep(STOPPED_S)
            pg.pg_ctl("start")
            faults["postgres-stopped"] = (t0, time.monotonic(), stopped)

        workers = []
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
            if i == restart_at:
                workers.append(threading.Thread(target=restart_postgres))
                workers[-1].start()
            if i == drop_at:
                workers.append(threading.Thread(target=drop_connections))
                workers[-1].start()
            if i == stop_at:
                workers.append(threading.Thread(target=stop_postgres))
                workers[-1].start()
            time.sleep(0.002)
        for w in workers:
            w.join()
        if "postgres-stopped" not in faults:
            raise harness.BrokerError("stopping or starting PostgreSQL failed (the traceback above)")
        producer.flush(150)
        end = time.monotonic()
        # Ready again well after PostgreSQL returned, for the figures.
        deadline = time.monotonic() + READY_WITHIN_S
        while watch.first(200, faults["postgres-stopped"][1]) is None and time.monotonic() < deadline:
            time.sleep(0.25)
        watch.finish()

        check("all-delivered",
              ["%d of %d records not acknowledged: %s" % (args.records - len(acked), args.records,
                                                         failed[:3])] if len(acked) != args.records else [])
        log = read_all(broker.bootstrap, topic, logger)
        contiguous, durable, dups = check_log(log, acked, sent_values)
        check("acked-durable", durable)
        check("offsets-contiguous", contiguous)
        check("no-duplicates", ["%r at %s" % (v, where) for v, where in list(dups.items())[:5]])

        group = harness.unique("catalog-restart-group")
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                             "enable.auto.commit": False}, logger=logger)
        try:
            wanted = [TopicPartition(topic, p, 7 + p) for p in range(PARTITIONS)]
            consumer.commit(offsets=wanted, asynchronous=False)
            got = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
            check("group-offsets", [] if [tp.offset for tp in got] == [7 + p for p in range(PARTITIONS)]
                  else ["committed %s, read back %s" % ([tp.offset for tp in wanted], [tp.offset for tp in got])])
        finally:
            consumer.close()

        check("agent-survived",
              [] if broker.running() and broker.proc.pid == first_pid and broker.starts == 1
              else ["the agent is not the process started first (running: %s)" % broker.running()])

        _, started_again, stopped = faults["postgres-stopped"]
        unready_at, ready_at = watch.first(503, stopped), watch.first(200, started_again)
        problems = []
        if unready_at is None or unready_at > stopped + UNREADY_WITHIN_S:
            problems.append("/readyz did not answer 503 within %.0f s of PostgreSQL stopping (answers: %s)"
                            % (UNREADY_WITHIN_S, watch.between(stopped, stopped + UNREADY_WITHIN_S)))
        if ready_at is None or ready_at > started_again + READY_WITHIN_S:
            problems.append("/readyz did not answer 200 within %.0f s of PostgreSQL starting (answers: %s)"
                            % (READY_WITHIN_S, watch.between(started_again, started_again + READY_WITHIN_S)))
        check("readyz-follows-catalog", problems)

        ordered = sorted(faults.items(), key=lambda f: f[1][0])
        for n, (fault, (started, ended, *_)) in enumerate(ordered):
            # Up to 20 s after, or to the next fault.
            until = min([end, started + 20] + [f[1][0] for f in ordered[n + 1:]])
            print("%s: %s took %.2f s; longest gap between acknowledgements from then to %.0f s after: %.2f s"
                  % (name, fault, ended - started, until - started, longest_gap(ack_times, started, until)),
                  flush=True)

        def after(t, since):
            return "%.2f s" % (t - since) if t is not None else "never"
        first_ack = next((t for t in ack_times if t >= started_again), None)
        print("%s: PostgreSQL stopped for %.1f s: /readyz 503 %s after it stopped, 200 again %s after its "
              "start returned (polled every 0.25 s); the first acknowledgement %s after it returned"
              % (name, started_again - stopped, after(unready_at, stopped), after(ready_at, started_again),
                 after(first_ack, started_again)), flush=True)
        print("%s: %d records acknowledged, %d producer errors reported (%s)"
              % (name, len(acked), len(errors), "; ".join(sorted(set(errors))[:3])), flush=True)
    except Exception as e:  # noqa: BLE001 - any error is this run's failure
        fail("run", "%s: %s" % (type(e).__name__, str(e) or "no answer in time"))
        if broker is not None and not isinstance(e, harness.BrokerError):
            print("--- broker log %s (tail) ---\n%s" % (broker.log_path, broker.log_tail()), flush=True)
    finally:
        if watch is not None:
            watch.finish()
        if broker is not None:
            broker.cleanup(keep=not ok)
            if not ok:
                print("%s: kept %s" % (name, broker.dir), flush=True)
        pg.cleanup()
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=6000)
    args = ap.parse_args()
    return 0 if run(args) else 1


if __name__ == "__main__":
    sys.exit(main())
