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
it is terminated. The agent is never restarted. Then:

  all-delivered       every record was acknowledged (librdkafka retried what
                      failed while the catalog was away)
  acked-durable       every acknowledged value is at its acknowledged offset
  offsets-contiguous  each partition reads as offsets 0..HW-1 with only values
                      this producer sent
  no-duplicates       every value is in the log exactly once
  group-offsets       a consumer group commits offsets after the faults and
                      reads them back
  agent-survived      the agent process is the one started first

The figures (the longest gap between acknowledgements around each fault,
errors seen by the producer) are printed for docs/reliability.md.

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
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import harness  # noqa: E402
from crash_test import PARTITIONS, check_log, client_logger, read_all  # noqa: E402


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
    try:
        pg.start()
        broker_name = harness.unique(name)
        broker = harness.Broker("embedded", name,
                                ["--catalog", pg.url, "--store", s3_store(broker_name)])
        broker.start()
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
        faults = {}  # name -> (started, ended)
        restart_at, drop_at = args.records // 3, 2 * args.records // 3

        def restart_postgres():
            t0 = time.monotonic()
            pg.pg_ctl("restart", mode="immediate")
            faults["postgres-restart"] = (t0, time.monotonic())

        def drop_connections():
            t0 = time.monotonic()
            dropped = pg.terminate_connections()
            faults["connections-dropped"] = (t0, time.monotonic())
            print("%s: terminated %d catalog connections" % (name, dropped), flush=True)

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
            time.sleep(0.002)
        for w in workers:
            w.join()
        producer.flush(150)
        end = time.monotonic()

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

        for fault, (started, ended) in sorted(faults.items(), key=lambda f: f[1][0]):
            print("%s: %s took %.2f s; longest gap between acknowledgements from then to 20 s after: %.2f s"
                  % (name, fault, ended - started, longest_gap(ack_times, started, min(end, started + 20))),
                  flush=True)
        print("%s: %d records acknowledged, %d producer errors reported (%s)"
              % (name, len(acked), len(errors), "; ".join(sorted(set(errors))[:3])), flush=True)
    except Exception as e:  # noqa: BLE001 - any error is this run's failure
        fail("run", "%s: %s" % (type(e).__name__, str(e) or "no answer in time"))
        if broker is not None and not isinstance(e, harness.BrokerError):
            print("--- broker log %s (tail) ---\n%s" % (broker.log_path, broker.log_tail()), flush=True)
    finally:
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
