"""The franz-go load generator (benches/e2e/loadgen): a second producer and
consumer beside Kafka's Java tools, which take about a core of the benchmark
machine's two. Built on demand with the Go toolchain into the cache, and run
like the Java tools through run_client, so that its CPU and the broker's are
measured the same way."""

import glob
import os
import shutil
import subprocess

from .processes import Failed, run_client

RECORD_SIZE = 1024


def _sources(src_dir):
    return [os.path.join(src_dir, "go.mod"), os.path.join(src_dir, "go.sum")] + \
        sorted(glob.glob(os.path.join(src_dir, "*.go")))


def ensure_loadgen(cache_dir, src_dir, log_path):
    """Returns the path of the load generator, cache_dir/bin/loadgen, built
    first if it is missing or older than a source (go.mod, go.sum, *.go).
    cache_dir is $STREAMHOUSE_CACHE: the modules and build cache are those of
    scripts/test.sh's Go runner (cache_dir/go), so franz-go is usually there
    already; otherwise only the Go module proxy is needed."""
    binary = os.path.join(cache_dir, "bin", "loadgen")
    sources = _sources(src_dir)
    missing = [s for s in sources if not os.path.exists(s)]
    if missing:
        raise Failed("load generator sources missing: %s" % ", ".join(missing))
    if os.path.exists(binary) and os.path.getmtime(binary) >= max(map(os.path.getmtime, sources)):
        return binary
    go = shutil.which("go")
    if not go:
        raise Failed("go not found: needed to build the load generator (%s)" % src_dir)
    go_dir = os.path.join(cache_dir, "go")
    env = dict(os.environ, GOPATH=go_dir, GOMODCACHE=os.path.join(go_dir, "mod"),
               GOCACHE=os.path.join(go_dir, "build"), GOFLAGS="-modcacherw")
    os.makedirs(os.path.dirname(binary), exist_ok=True)
    # Built beside the binary and renamed over it: an interrupted or failed
    # build leaves no half-written binary that looks up to date.
    tmp = binary + ".tmp"
    with open(log_path, "ab") as out:
        out.write(("\n$ (cd %s && go build -trimpath -o %s .)\n" % (src_dir, tmp)).encode())
        out.flush()
        try:
            done = subprocess.run([go, "build", "-trimpath", "-o", tmp, "."], cwd=src_dir, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=600)
        except subprocess.TimeoutExpired:
            raise Failed("building the load generator timed out (see %s)" % log_path)
    if done.returncode != 0:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise Failed("building the load generator failed (see %s)" % log_path)
    os.replace(tmp, binary)
    return binary


def _result(out, mode, log_path):
    """The values of the last "RESULT <mode> key=value ..." line of out."""
    for line in reversed(out.splitlines()):
        fields = line.split()
        if fields[:2] == ["RESULT", mode]:
            values = {}
            for field in fields[2:]:
                key, _, value = field.partition("=")
                values[key] = float(value)
            return values
    raise Failed("no %s result from the load generator (see %s)" % (mode, log_path))


def produce(binary, broker, topic, records, rate, log_path, warmup=0, linger_ms=None, batch_bytes=None):
    """Produces `records` records of 1 KiB at `rate` records/s (-1: unlimited),
    acks=all, idempotent, franz-go's defaults otherwise (its sticky
    partitioner; linger and batch size unless given). With `warmup`, the
    latencies are those of the records after the first `warmup`. The keys are
    those of Bench.produce, plus the client's and broker's usage."""
    args = [binary, "-mode", "produce", "-bootstrap", "127.0.0.1:%d" % broker.port, "-topic", topic,
            "-records", str(records), "-record-size", str(RECORD_SIZE), "-rate", str(rate)]
    if warmup:
        args += ["-warmup-records", str(warmup)]
    if linger_ms is not None:
        args += ["-linger-ms", str(linger_ms)]
    if batch_bytes is not None:
        args += ["-batch-bytes", str(batch_bytes)]
    out, usage = run_client(args, 900, log_path, broker.pid())
    r = _result(out, "produce", log_path)
    if int(r["records"]) != records or r["errors"]:
        raise Failed("%d of %d records acknowledged, %d errors (see %s)"
                     % (r["records"], records, r["errors"], log_path))
    values = {
        "records": records,
        "records_per_s": r["records_per_s"],
        "mib_per_s": r["mib_per_s"],
        # After the warm-up (the whole run's without one).
        "steady_mib_per_s": r["steady_mib_per_s"],
        "steady_records_per_s": r["steady_mib_per_s"] * 2**20 / RECORD_SIZE,
        "steady_records": int(r["steady_records"]),
        "avg_ms": r["avg_ms"],
        "max_ms": r["max_ms"],
        "p50_ms": r["p50_ms"],
        "p95_ms": r["p95_ms"],
        "p99_ms": r["p99_ms"],
        "p999_ms": r["p999_ms"],
    }
    values.update(usage)
    return values


def consume(binary, broker, topic, records, log_path, group=None):
    """Reads `records` records of the topic from its start: every partition
    directly, or with `group` as a member of that consumer group (a new one,
    or it resumes from the group's offsets), its join time apart in
    rebalance_ms as with ConsumerPerformance. The keys are those of
    Bench.consume, plus the client's and broker's usage."""
    args = [binary, "-mode", "consume", "-bootstrap", "127.0.0.1:%d" % broker.port, "-topic", topic,
            "-records", str(records)]
    if group:
        args += ["-group", group]
    out, usage = run_client(args, 900, log_path, broker.pid())
    r = _result(out, "consume", log_path)
    if int(r["records"]) < records:
        raise Failed("consumed %d of %d records (see %s)" % (r["records"], records, log_path))
    values = {
        "mib": r["bytes"] / (1 << 20),
        "mib_per_s_total": r["mib_per_s_total"],
        "records": int(r["records"]),
        "rebalance_ms": r["rebalance_ms"],
        "fetch_ms": r["fetch_seconds"] * 1000,
        "mib_per_s": r["mib_per_s"],
        "records_per_s": r["records_per_s"],
    }
    values.update(usage)
    return values
