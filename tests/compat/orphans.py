#!/usr/bin/env python3
"""An agent SIGKILLed between its uploads and their catalog commits, again and
again: after the orphan grace the store holds exactly the objects the catalog
knows.

Per backend pair, one agent with a short orphan grace (--orphan-grace-ms
15000, scanned every second: longer than the three rounds take, so the
orphans outlive the agents killed and are the last one's to delete) takes a
confluent-kafka producer's records (acks=all, idempotent) to 3 partitions.
Three times: the test holds the catalog's write lock (a PostgreSQL `LOCK
TABLE partitions`, an SQLite `BEGIN IMMEDIATE`) so that the agent's uploads
finish and their commits wait, SIGKILLs the agent a second later, releases
the lock, notes the objects the catalog does not know while no agent runs,
and starts the agent again. Then:

  orphans-made     the store held objects the catalog did not know after a
                   kill (the kills landed between upload and commit;
                   otherwise the run proves nothing)
  orphans-deleted  within 45 s of the last start the store's object keys and
                   the catalog's are the same set, twice in a row a second
                   apart, and the agent's metrics count the orphans deleted
  acked-durable    every acknowledged record is at its acknowledged offset

Usage: orphans.py [--rounds N]
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import harness  # noqa: E402
from crash_test import PARTITIONS, check_log, client_logger, read_all  # noqa: E402

LOCK_HELD_S = 1.0
SETTLE_TIMEOUT_S = 45.0
FLOWING_TIMEOUT_S = 20.0
AGENT_ARGS = ["--orphan-grace-ms", "15000", "--orphan-scan-interval-ms", "1000",
              "--catalog-timeout-ms", "2000", "--gc-grace-ms", "1000"]


class CatalogLock:
    """Holds the catalog's write lock until released: commits wait for it."""

    def __init__(self, broker):
        self.broker = broker
        self.proc = None
        self.db = None

    def __enter__(self):
        if self.broker.backend == "embedded":
            self.db = sqlite3.connect(os.path.join(self.broker.data_dir, "catalog.db"),
                                      timeout=10, isolation_level=None)
            self.db.execute("BEGIN IMMEDIATE")
        else:
            url = harness._with_db(harness._pg_admin_url(), self.broker.db)
            self.proc = subprocess.Popen(
                ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            self.proc.stdin.write("BEGIN; LOCK TABLE partitions IN ACCESS EXCLUSIVE MODE;\n"
                                  "SELECT 'locked';\n")
            self.proc.stdin.flush()
            time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        if self.db is not None:
            self.db.execute("ROLLBACK")
            self.db.close()
        if self.proc is not None:
            self.proc.communicate("ROLLBACK;\n", timeout=30)


def store_keys(broker):
    """The object keys in the agent's store, as the agent names them."""
    if broker.backend == "embedded":
        root = os.path.join(broker.data_dir, "objects")
        keys = set()
        for folder, _, files in os.walk(root):
            for name in files:
                if name.endswith(".sho"):
                    keys.add(os.path.relpath(os.path.join(folder, name), root))
        return keys
    prefix = broker.s3_prefix + "/"
    return {k[len(prefix):] for k in broker.s3_keys() if k.endswith(".sho")}


def catalog_keys(broker):
    if broker.backend == "embedded":
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(broker.data_dir, "catalog.db"),
                             uri=True, timeout=10)
        try:
            return {row[0] for row in db.execute("SELECT key FROM objects")}
        finally:
            db.close()
    out = harness._psql_in(broker.db, "SELECT key FROM objects")
    return {line for line in out.splitlines() if line}


def metric(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "_total "):
                return float(line.split()[-1])
    return None


class Feeder:
    """Sends numbered records until stopped; records what was acknowledged."""

    def __init__(self, bootstrap, topic, logger):
        self.topic = topic
        self.acked = []
        self.sent = set()
        self.stop = threading.Event()
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "enable.idempotence": True, "linger.ms": 5,
                                  "message.timeout.ms": 120000}, logger=logger)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, err, msg):
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))

    def _run(self):
        n = 0
        while not self.stop.is_set():
            value = b"orphans-%08d" % n
            try:
                self.producer.produce(self.topic, value, partition=n % PARTITIONS,
                                      on_delivery=self._delivered)
                self.sent.add(value)
                n += 1
            except BufferError:
                pass
            self.producer.poll(0.002)

    def wait_flowing(self, timeout):
        """Waits until more records are acknowledged than when called."""
        seen = len(self.acked)
        deadline = time.monotonic() + timeout
        while len(self.acked) <= seen + 20 and time.monotonic() < deadline:
            time.sleep(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join()
        left = self.producer.flush(120)
        if left:
            raise RuntimeError("%d records not delivered" % left)


def run_backend(backend, args):
    name = "orphans-" + backend
    metrics_port = harness.free_port()
    broker = harness.Broker(backend, name, AGENT_ARGS + ["--metrics-listen", "127.0.0.1:%d" % metrics_port])
    ok = True
    try:
        broker.start()
        logger = client_logger(os.path.join(broker.dir, "client.log"))
        topic = harness.unique("orphans")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
        feeder = Feeder(broker.bootstrap, topic, logger)
        feeder.thread.start()
        time.sleep(1.0)
        made_keys = set()
        for _ in range(args.rounds):
            # Records flowing (the producer back on the restarted agent, past
            # its reconnect backoff), so uploads are in flight under the lock.
            feeder.wait_flowing(FLOWING_TIMEOUT_S)
            with CatalogLock(broker):
                time.sleep(LOCK_HELD_S)
                broker.kill9()
            # No agent runs: nothing commits or deletes meanwhile.
            made_keys |= store_keys(broker) - catalog_keys(broker)
            broker.start()
            time.sleep(1.0)
        orphans = len(made_keys)
        feeder.finish()
        made = orphans > 0
        harness.record("PASS" if made else "FAIL", "%s/orphans-made" % name,
                       "%d objects in the store unknown to the catalog after %d kills"
                       % (orphans, args.rounds))
        ok &= made

        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        started = time.monotonic()
        same_twice = False
        previous = None
        while time.monotonic() < deadline:
            stored, known = store_keys(broker), catalog_keys(broker)
            now_same = stored == known
            if now_same and previous:
                same_twice = True
                break
            previous = now_same
            time.sleep(1.0)
        deleted = metric(metrics_port, "streamhouse_gc_orphans_deleted") or 0
        detail = ("store and catalog agree (%d objects) after %.1f s; %d orphans deleted by the agent"
                  % (len(stored), time.monotonic() - started, deleted))
        if not same_twice:
            detail = ("after %.0f s: %d objects only in the store, %d only in the catalog"
                      % (SETTLE_TIMEOUT_S, len(stored - known), len(known - stored)))
        good = same_twice and deleted >= 1
        harness.record("PASS" if good else "FAIL", "%s/orphans-deleted" % name, detail)
        ok &= good

        log = read_all(broker.bootstrap, topic, logger)
        _, durable, _ = check_log(log, feeder.acked, feeder.sent)
        harness.record("PASS" if not durable else "FAIL", "%s/acked-durable" % name,
                       "%d acknowledged records" % len(feeder.acked) if not durable
                       else "; ".join(durable[:5]))
        ok &= not durable
    except Exception as e:  # noqa: BLE001 - any failure is this scenario's
        harness.record("FAIL", "%s/scenario" % name, "%s: %s\n--- broker log ---\n%s"
                       % (type(e).__name__, e, broker.log_tail()))
        ok = False
    finally:
        broker.cleanup()
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results = [run_backend(b, args) for b in harness.backends()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
