#!/usr/bin/env python3
"""Prometheus scrapes a broker and answers every query of the Grafana
dashboard (deploy/grafana/streamhouse.json).

One broker (the embedded backend pair: the metrics do not depend on it) runs
with --metrics-listen, --retention-check-interval-ms 1000 (so the per-topic
retained sizes are reported within a second) and no initial rebalance delay.
A Prometheus server (Debian's `prometheus`, or PROMETHEUS_BIN) scrapes it
every second into a temporary storage dir. confluent-kafka then produces
PRODUCED records to a topic of three partitions, a consumer group reads
CONSUMED of them and commits (so the group has a lag), and a CreateTopics of
the existing topic is refused (TOPIC_ALREADY_EXISTS, so an error is counted).
After a few more scrapes every query of the dashboard runs through
Prometheus' HTTP API (/api/v1/query, at the current time) with Grafana's
variables replaced: $__rate_interval and $__interval by RATE_INTERVAL, every
dashboard variable by its "All" value (.*). The variables' own queries,
label_values(METRIC, LABEL), run as count by (LABEL) (METRIC).

Scenarios:
  prometheus/scrape                   the target is up and its samples are scraped
  prometheus/PANEL/REFID              that panel query returns at least one series
                                      (retried until QUERY_DEADLINE_S); a failure
                                      names the query and the metrics it uses
                                      that the broker does not expose
  prometheus/variable/NAME            a dashboard variable's query returns values

Usage: prometheus_scrape.py [--dashboard FILE] [--keep-prometheus]
  About 20 s. Not for COMPAT_REFERENCE runs (Kafka has none of these metrics).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from confluent_kafka import Consumer, KafkaException, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "streamhouse.json")
RATE_INTERVAL = "30s"
TOPIC = "prom-orders"
GROUP = "prom-group"
PRODUCED = 3000
CONSUMED = 600
STARTUP_TIMEOUT_S = 30
QUERY_DEADLINE_S = 20
FAILED = False


def record(status, name, detail=""):
    global FAILED
    if status == "FAIL":
        FAILED = True
    harness.record(status, name, detail)


def prometheus_binary():
    explicit = os.environ.get("PROMETHEUS_BIN")
    if explicit:
        return explicit
    return shutil.which("prometheus") or "/usr/bin/prometheus"


class Prometheus:
    """A Prometheus server scraping one target every second, its storage and
    log in `directory`."""

    def __init__(self, directory, target):
        self.dir = directory
        self.port = harness.free_port()
        self.log_path = os.path.join(directory, "prometheus.log")
        self.config = os.path.join(directory, "prometheus.yml")
        os.makedirs(directory, exist_ok=True)
        with open(self.config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: streamhouse\n    static_configs:\n"
                    "      - targets: ['%s']\n" % target)
        self.proc = None

    def start(self):
        binary = prometheus_binary()
        if not os.access(binary, os.X_OK):
            raise RuntimeError("no Prometheus at %s (apt-get install prometheus, or ./scripts/test.sh "
                               "--setup-only; or set PROMETHEUS_BIN)" % binary)
        cmd = [binary, "--config.file=" + self.config,
               "--storage.tsdb.path=" + os.path.join(self.dir, "tsdb"),
               "--storage.tsdb.retention.time=1h",
               "--web.listen-address=127.0.0.1:%d" % self.port,
               "--log.level=warn"]
        with open(self.log_path, "ab") as log:
            log.write(("=== %s\n" % " ".join(cmd)).encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, cwd=self.dir)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited with status %s:\n%s" % (self.proc.returncode, self.log_tail()))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus not ready within %d s:\n%s" % (STARTUP_TIMEOUT_S, self.log_tail()))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # a bad query answers 400 with the error in the body
            try:
                return json.load(e)
            except ValueError:
                return {"status": "error", "error": "HTTP %d" % e.code}

    def query(self, expr):
        """(series, error): the instant query's result list, or the error Prometheus gave."""
        body = self.api("query", query=expr)
        if body.get("status") != "success":
            return [], "%s: %s" % (body.get("errorType", "error"), body.get("error", body))
        return body["data"]["result"], None


def dashboard_queries(dashboard):
    """(name, expr) of every panel target, rows' nested panels included."""
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                if t.get("expr"):
                    slug = re.sub(r"[^a-z0-9]+", "-", p.get("title", "panel-%s" % p.get("id")).lower()).strip("-")
                    out.append(("%s/%s" % (slug, t.get("refId", "?")), t["expr"]))

    walk(dashboard.get("panels", []))
    return out


def variables(dashboard):
    return dashboard.get("templating", {}).get("list", [])


def substitute(expr, dashboard):
    """The expression with Grafana's variables replaced; raises on one left over."""
    values = {"__rate_interval": RATE_INTERVAL, "__interval": RATE_INTERVAL, "__range": "5m"}
    for v in variables(dashboard):
        values.setdefault(v["name"], v.get("allValue") or ".*")
    # Longest names first, so that $__rate_interval is not read as $__range + ...
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${%s}" % name, values[name]).replace("$" + name, values[name])
    left = re.findall(r"\$\{?\w+", expr)
    if left:
        raise ValueError("unknown Grafana variable(s) %s" % ", ".join(sorted(set(left))))
    return expr


def variable_query(v):
    """The PromQL a query variable's label_values(...) stands for, or None."""
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query")
    m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", q or "")
    if not m:
        return None
    return "count by (%s) (%s)" % (m.group(2), m.group(1))


def traffic(bootstrap):
    """Produces PRODUCED records, consumes and commits CONSUMED of them in
    GROUP, and asks to create the topic a second time (refused)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[TOPIC].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    for i in range(PRODUCED):
        p.produce(TOPIC, key=b"k%d" % (i % 50), value=b"v" * 200)
        if i % 500 == 0:
            p.poll(0)
    left = p.flush(30)
    assert left == 0, "%d records not delivered" % left
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000})
    c.subscribe([TOPIC])
    got = 0
    deadline = time.monotonic() + 30
    while got < CONSUMED and time.monotonic() < deadline:
        for m in c.consume(100, timeout=1.0):
            if m.error() is None:
                got += 1
    assert got >= CONSUMED, "consumed %d of %d records within 30 s" % (got, CONSUMED)
    c.commit(asynchronous=False)
    c.close()
    # Refused with TOPIC_ALREADY_EXISTS: the error counter has a series.
    try:
        admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[TOPIC].result(30)
    except KafkaException:
        pass
    return got


def run(args):
    with open(args.dashboard) as f:
        dashboard = json.load(f)
    metrics_port = harness.free_port()
    broker = harness.Broker("embedded", "prometheus",
                            ["--metrics-listen", "127.0.0.1:%d" % metrics_port,
                             "--retention-check-interval-ms", "1000",
                             "--group-initial-rebalance-delay-ms", "0"])
    prom = None
    try:
        broker.start()
        prom = Prometheus(os.path.join(broker.dir, "prometheus"), "127.0.0.1:%d" % metrics_port)
        prom.start()

        # The target is up and scraped.
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        up = []
        while time.monotonic() < deadline:
            up, _ = prom.query('up{job="streamhouse"} == 1')
            if up:
                break
            time.sleep(0.5)
        if up:
            record("PASS", "prometheus/scrape", "target 127.0.0.1:%d up" % metrics_port)
        else:
            targets = prom.api("targets").get("data", {}).get("activeTargets", [])
            record("FAIL", "prometheus/scrape", "the target is not up within %d s: %s"
                   % (STARTUP_TIMEOUT_S, [(t.get("health"), t.get("lastError")) for t in targets]))
            return

        consumed = traffic(broker.bootstrap)
        print("prometheus: produced %d records to %s, group %s consumed and committed %d"
              % (PRODUCED, TOPIC, GROUP, consumed), flush=True)
        time.sleep(3)  # a few scrapes after the traffic

        exposed, _ = prom.query('count by (__name__) ({job="streamhouse"})')
        exposed = {s["metric"]["__name__"] for s in exposed}

        checks = dashboard_queries(dashboard)
        checks += [("variable/%s" % v["name"], variable_query(v)) for v in variables(dashboard)
                   if v.get("type") == "query"]
        queries = {}
        for name, expr in checks:
            if expr is None:
                record("FAIL", "prometheus/%s" % name, "not a label_values(METRIC, LABEL) query")
                continue
            try:
                queries[name] = substitute(expr, dashboard)
            except ValueError as e:
                record("FAIL", "prometheus/%s" % name, "%s in %s" % (e, expr))
        # Some series appear late (a retention pass, a lag computation): retry
        # what returned nothing until the deadline.
        deadline = time.monotonic() + QUERY_DEADLINE_S
        results = {}
        pending = list(queries)
        while True:
            for name in pending:
                results[name] = prom.query(queries[name])
            pending = [n for n in pending if not results[n][0] and not results[n][1]]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(1)
        for name in sorted(queries):
            promql = queries[name]
            series, error = results[name]
            if error:
                record("FAIL", "prometheus/%s" % name, "query refused (%s): %s" % (error, promql))
            elif not series:
                used = sorted(set(re.findall(r"\bstreamhouse_[a-z0-9_]+", promql)))
                missing = [m for m in used if m not in exposed]
                why = ("the broker exposes no %s" % ", ".join(missing)) if missing else \
                    "the metrics exist but no series matched"
                record("FAIL", "prometheus/%s" % name, "no data within %d s (%s): %s"
                       % (QUERY_DEADLINE_S, why, promql))
            else:
                record("PASS", "prometheus/%s" % name, "%d series" % len(series))
    except Exception as e:  # noqa: BLE001 - reported as a scenario failure
        record("FAIL", "prometheus/runner", "%r\n--- broker log (tail) ---\n%s%s"
               % (e, broker.log_tail(), "\n--- prometheus log (tail) ---\n" + prom.log_tail() if prom else ""))
    finally:
        if prom is not None:
            prom.stop()
            if not (args.keep_prometheus or FAILED or os.environ.get("COMPAT_KEEP") == "1"):
                shutil.rmtree(os.path.join(prom.dir, "tsdb"), ignore_errors=True)
        broker.cleanup(keep=FAILED)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dashboard", default=DASHBOARD, help="the Grafana dashboard whose queries to run")
    ap.add_argument("--keep-prometheus", action="store_true", help="keep Prometheus' storage dir")
    args = ap.parse_args()
    if os.environ.get("COMPAT_REFERENCE") == "1":
        print("prometheus_scrape.py: the reference Kafka exposes none of StreamHouse's metrics")
        return 0
    run(args)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
