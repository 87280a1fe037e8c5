"""End-to-end benchmark: StreamHouse against Apache Kafka with the same clients.

Started by benches/e2e/run.sh, which prepares jars, the venv, PostgreSQL and
the S3 server's binary. This starts the brokers, runs every scenario on
each broker in turn (the order rotates each repetition), and writes
results.json, the table (results.md) and the plots into --out.

Every scenario runs on a freshly started broker per repetition; a scenario that
fails is recorded as failed and the next one runs.
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

from .brokers import KafkaBroker, NisshiBroker, StreamHouseBroker
from .processes import Failed, free_port, log, start_process, stop_all
from .report import machine, markdown_table, plots, summarize
from .scenarios import (FIXED_RATE, FULL, LATENCY_SCENARIOS, PRODUCER_PROFILES, QUICK, RECORD_SIZE,
                        SCENARIOS, Bench)

BROKERS = ["kafka", "sh-embedded", "sh-s3"]
# Not run by default: Kafka fsyncing every append (log.flush.interval.messages=1),
# the durability StreamHouse's embedded default gives an acknowledgement.
# Nisshi (formerly Tansu), the open-source Rust peer, on its S3 engine (behind
# the same S3 server and latency proxy as sh-s3) or its SQLite one.
OPTIONAL_BROKERS = ["kafka-fsync", "nisshi-s3", "nisshi-sqlite", "sh-embedded-base"]


def psql(pg_admin_url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", pg_admin_url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_listening(port, what, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise Failed("%s did not listen on port %d" % (what, port))
            time.sleep(0.1)


def main():
    p = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
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
    p.add_argument("--profile", default="default", choices=sorted(PRODUCER_PROFILES),
                   help="producer settings added to every producing scenario")
    p.add_argument("--s3-latency", metavar="MEDIAN_MS,P99_MS",
                   help="put the S3 server behind a proxy delaying each answer's first byte "
                        "(log-normal with this median and 99th percentile)")
    p.add_argument("--s3-latency-from", default="request", choices=["request", "answer"],
                   help="where the proxy's delay starts: the request's last byte (answers take "
                        "the drawn time, the S3 server's own time inside it) or the server's "
                        "answer (the drawn time on top of the server's; before 2026-12-06)")
    p.add_argument("--cache", default=os.environ.get("STREAMHOUSE_CACHE", "/var/cache/streamhouse-ci"),
                   help="where the franz-go load generator is built (bin/loadgen; Go caches in go/)")
    p.add_argument("--sh-args", default="",
                   help="more flags for every StreamHouse broker, e.g. '--flush-interval-ms 250'")
    p.add_argument("--s3-proxy-bin", help="the latency proxy (benches/e2e/latency-proxy)")
    p.add_argument("--nisshi-bin", help="the nisshi binary, for the nisshi-* brokers")
    p.add_argument("--base-bin", help="another streamhouse binary, run as sh-embedded-base")
    opts = p.parse_args()
    latency = None
    if opts.s3_latency:
        try:
            latency = [float(x) for x in opts.s3_latency.split(",")]
            if len(latency) != 2 or not 0 < latency[0] <= latency[1]:
                raise ValueError
        except ValueError:
            p.error("--s3-latency needs MEDIAN_MS,P99_MS with 0 < median <= p99, e.g. 25,150")
        if not opts.s3_proxy_bin:
            p.error("--s3-latency needs --s3-proxy-bin")
    if not opts.scenarios:
        # The 10 MiB/s scenario is about store latency; a local store has none.
        opts.scenarios = ",".join(x for x in SCENARIOS if latency or x not in LATENCY_SCENARIOS)
    if opts.scenarios:
        opts.scenarios = {x.strip() for x in opts.scenarios.split(",") if x.strip()}
        unknown = opts.scenarios - set(SCENARIOS)
        if unknown:
            p.error("unknown scenarios: %s" % ", ".join(sorted(unknown)))
        if "consume" in opts.scenarios:
            opts.scenarios.add("produce")
        if "consume-franz" in opts.scenarios:
            opts.scenarios.add("produce-franz")

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
        if b.startswith("nisshi") and not opts.nisshi_bin:
            p.error("%s needs --nisshi-bin" % b)
        if b == "sh-embedded-base" and not opts.base_bin:
            p.error("sh-embedded-base needs --base-bin")
    on_s3 = [b for b in brokers if b in ("sh-s3", "nisshi-s3")]

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(opts.out, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    bench = Bench(opts, sizes)
    databases = []
    s3_url = opts.s3_url
    store_note = "moto" if s3_url else None
    t_start = time.time()
    info = {"machine": machine(), "sizes": sizes, "brokers": brokers, "record_size": RECORD_SIZE,
            "producer_profile": opts.profile, "streamhouse_args": opts.sh_args,
            "producer_profile_props": list(PRODUCER_PROFILES[opts.profile]),
            "s3_latency_ms": {"median": latency[0], "p99": latency[1]} if latency else None,
            "fixed_rate_records_per_s": FIXED_RATE, "run_id": run_id, "notes": opts.notes,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        s3_root = None
        if on_s3 and opts.versitygw:
            root = s3_root = os.path.join(opts.workdir, "versitygw")
            os.makedirs(os.path.join(root, opts.s3_bucket))  # a directory is a bucket
            port = free_port()
            start_process([opts.versitygw, "--access", "test", "--secret", "test",
                           "--port", "127.0.0.1:%d" % port, "posix", root],
                          os.path.join(opts.workdir, "versitygw.log"))
            wait_listening(port, "versitygw")
            s3_url = "http://127.0.0.1:%d" % port
            store_note = "versitygw (posix backend on %s)" % root
        counts_file = None
        if on_s3 and latency and s3_url:
            port = free_port()
            # The proxy also counts the requests (for Nisshi, which reports none).
            counts_file = os.path.join(opts.workdir, "s3-request-counts.txt")
            start_process([opts.s3_proxy_bin, "--listen", "127.0.0.1:%d" % port,
                           "--upstream", s3_url.split("//", 1)[1],
                           "--median-ms", str(latency[0]), "--p99-ms", str(latency[1]),
                           "--delay-from", opts.s3_latency_from, "--counts", counts_file],
                          os.path.join(opts.workdir, "s3-latency-proxy.log"))
            wait_listening(port, "the latency proxy")
            s3_url = "http://127.0.0.1:%d" % port
            store_note += ", behind a proxy delaying each answer (log-normal, median %g ms, p99 %g ms, " \
                "from the %s)" % (latency[0], latency[1], "request's last byte"
                                  if opts.s3_latency_from == "request" else "server's answer")
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
                    elif name == "nisshi-sqlite":
                        broker = NisshiBroker(name, opts.nisshi_bin, workdir, logdir, "sqlite://nisshi.db")
                    elif name == "nisshi-s3":
                        if not (s3_url and s3_root):
                            raise Failed("nisshi-s3 needs versitygw (a bucket per repetition)")
                        bucket = "nisshi-%s-rep%d" % (run_id, rep)
                        os.makedirs(os.path.join(s3_root, bucket))
                        env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT": s3_url,
                               "AWS_ALLOW_HTTP": "true"}
                        broker = NisshiBroker(name, opts.nisshi_bin, workdir, logdir, "s3://%s/" % bucket,
                                              env=env, counts_file=counts_file)
                    elif name in ("sh-embedded", "sh-embedded-base"):
                        binary = opts.base_bin if name == "sh-embedded-base" else opts.streamhouse_bin
                        broker = StreamHouseBroker(name, binary, workdir, logdir,
                                                   extra_args=shlex.split(opts.sh_args))
                    else:
                        if not (opts.pg_url and s3_url):
                            raise Failed("sh-s3 needs --pg-url and an S3 server")
                        db = "shbench_%s_%d" % (run_id, rep)
                        psql(opts.pg_url + "/postgres", "CREATE DATABASE %s" % db)
                        databases.append(db)
                        store = "s3://%s?endpoint=%s&region=us-east-1&allow_http=true&path_style=true" \
                                "&prefix=%s/rep%d" % (opts.s3_bucket, s3_url, run_id, rep)
                        broker = StreamHouseBroker(name, opts.streamhouse_bin, workdir, logdir,
                                                   catalog="%s/%s" % (opts.pg_url, db), store=store,
                                                   extra_args=shlex.split(opts.sh_args))
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
