"""The summary of a run: a row per metric (median over repetitions, failures
counted), derived ratios, the Markdown table of results.md, the plots, and a
description of the machine."""

import os
import platform
import statistics

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
    ("produce throughput @ 10 MiB/s offered, 8 partitions", "rate-10m", "mib_per_s", "MiB/s", True, False),
    ("produce latency p50 @ 10 MiB/s", "rate-10m", "p50_ms", "ms", False, False),
    ("produce latency p99 @ 10 MiB/s", "rate-10m", "p99_ms", "ms", False, False),
    ("produce latency p99.9 @ 10 MiB/s", "rate-10m", "p999_ms", "ms", False, False),
    ("store PUTs per GiB written @ 10 MiB/s", "rate-10m", "puts_per_gib", "", False, True),
    ("store request cost per TiB written @ 10 MiB/s", "rate-10m", "usd_per_tib", "USD/TiB", False, True),
    ("hedged PUTs per GiB written @ 10 MiB/s", "rate-10m", "hedges_per_gib", "", False, True),
    ("store mean PUT time (@ 10 MiB/s)", "rate-10m", "store_put_mean_ms", "ms", False, True),
    ("store PUTs per GiB written", "produce", "puts_per_gib", "", False, True),
    ("store request cost per TiB written (produce)", "produce", "usd_per_tib", "USD/TiB", False, True),
    ("store request cost per TiB read (catch-up)", "consume", "usd_per_tib", "USD/TiB", False, True),
    ("store mean PUT time (produce)", "produce", "store_put_mean_ms", "ms", False, True),
    ("store mean PUT time (@ 5 MiB/s)", "latency", "store_put_mean_ms", "ms", False, True),
    ("catalog mean commit time (produce)", "produce", "catalog_commit_mean_ms", "ms", False, True),
    ("objects per catalog commit (produce)", "produce", "objects_per_commit", "", True, True),
    ("catalog mean commit time (@ 5 MiB/s)", "latency", "catalog_commit_mean_ms", "ms", False, True),
    ("compaction mean catalog swap time (@ 5 MiB/s)", "latency", "compaction_swap_mean_ms", "ms", False, True),
    ("wait for compaction before the catch-up read", "consume", "compaction_wait_s", "s", False, True),
    ("store GETs per GiB read", "consume", "gets_per_gib", "", False, True),
    ("store MiB per GET (catch-up)", "consume", "mib_per_get", "MiB", True, True),
    ("readers' store GETs per GiB written, 1 group tailing @ 5 MiB/s", "fanout-1", "tail_gets_per_gib", "",
     False, True),
    ("readers' store GETs per GiB written, 3 groups tailing @ 5 MiB/s", "fanout-3", "tail_gets_per_gib", "",
     False, True),
    ("compaction's store GETs per GiB written, 3 groups tailing", "fanout-3", "compaction_gets_per_gib", "",
     False, True),
    ("slowest group done after the last record, 1 group tailing", "fanout-1", "tail_lag_s", "s", False, False),
    ("slowest group done after the last record, 3 groups tailing", "fanout-3", "tail_lag_s", "s", False, False),
    ("broker CPU, 3 groups tailing @ 5 MiB/s (cores)", "fanout-3", "broker_cores", "", False, False),
    ("store PUTs/s @ 5 MiB/s, 1 partition", "fixed-1p", "store_puts_per_s", "/s", False, True),
    ("store PUTs/s @ 5 MiB/s, 8 partitions", "latency", "store_puts_per_s", "/s", False, True),
    ("store PUTs/s @ 5 MiB/s, 1000 partitions", "fixed-1000p", "store_puts_per_s", "/s", False, True),
    ("produce throughput, 8 partitions, franz-go", "produce-franz", "mib_per_s", "MiB/s", True, False),
    ("consume throughput (catch-up, cold broker), franz-go", "consume-franz", "mib_per_s", "MiB/s", True, False),
    ("broker CPU per MiB produced, franz-go", "produce-franz", "broker_cpu_ms_per_mib", "ms", False, False),
    ("broker CPU per MiB consumed, franz-go", "consume-franz", "broker_cpu_ms_per_mib", "ms", False, False),
    ("client CPU, produce, franz-go (cores)", "produce-franz", "client_cores", "", False, False),
    ("client CPU, consume, franz-go (cores)", "consume-franz", "client_cores", "", False, False),
    ("store request cost per TiB read (catch-up), franz-go", "consume-franz", "usd_per_tib", "USD/TiB", False, True),
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


# AWS S3 Standard request prices, us-east-1 (aws.amazon.com/s3/pricing, as of
# 2026): PUT, COPY, POST and LIST $0.005 per 1,000; GET and the rest $0.0004
# per 1,000; DELETE free. Only PUTs and GETs are priced here: the other
# requests a run makes are a few deletes and lists of the collector.
USD_PER_PUT = 0.005 / 1000
USD_PER_GET = 0.0004 / 1000


def derived(values):
    """Adds the ratios computed from a scenario's raw values."""
    v = dict(values)
    # Per GiB the clients wrote: the store's own bytes also count compaction's
    # rewrites, which are a cost of the same GiB, not more GiB.
    gib_written = v.get("bytes_produced", v.get("store_put_bytes", 0)) / 2**30
    if "store_puts" in v and gib_written > 0:
        v["puts_per_gib"] = v["store_puts"] / gib_written
        v["hedges_per_gib"] = v.get("store_put_hedges", 0) / gib_written
        v["usd_per_tib"] = 1024 * (v["store_puts"] * USD_PER_PUT + v.get("store_gets", 0) * USD_PER_GET) / gib_written
    if v.get("tail_groups") and "store_gets" in v and gib_written > 0:
        # The readers' GETs: the store's less compaction's own.
        v["tail_gets_per_gib"] = (v["store_gets"] - v.get("compaction_gets", 0)) / gib_written
        v["compaction_gets_per_gib"] = v.get("compaction_gets", 0) / gib_written
    if v.get("catalog_commits"):
        v["objects_per_commit"] = v["objects_committed"] / v["catalog_commits"]
    mib = v.get("mib")
    if "store_gets" in v and mib:
        v["gets_per_gib"] = v["store_gets"] / (mib / 1024)
        v["usd_per_tib"] = 1024 * (v["store_gets"] * USD_PER_GET + v.get("store_puts", 0) * USD_PER_PUT) / (mib / 1024)
        if v["store_gets"] and v.get("store_get_bytes"):
            v["mib_per_get"] = v["store_get_bytes"] / 2**20 / v["store_gets"]
    # Rates per second of the client's own measured interval (the producer's
    # duration, the consumer's fetch time), not counting the JVM's start, when
    # the broker is idle.
    active = None
    if v.get("records") and v.get("records_per_s"):
        active = v["records"] / v["records_per_s"]
    elif v.get("fetch_ms"):
        active = v["fetch_ms"] / 1000
    # Broker CPU per MiB the client moved: the broker's own cost, whatever
    # limited the rate.
    moved_mib = mib or v.get("bytes_produced", 0) / 2**20
    if v.get("broker_cpu_s") is not None and moved_mib:
        v["broker_cpu_ms_per_mib"] = v["broker_cpu_s"] * 1000 / moved_mib
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

    # One colour per broker the harness knows: a broker left to matplotlib's
    # cycle would get a colour per line, the same as another broker's.
    colors = {"kafka": "#555555", "kafka-fsync": "#999999", "sh-embedded": "#1f77b4", "sh-s3": "#ff7f0e",
              "sh-embedded-base": "#2ca02c", "nisshi-s3": "#d62728", "nisshi-sqlite": "#9467bd"}
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

    path = throughput_over_time(plt, results, brokers, colors, out)
    if path:
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


def throughput_over_time(plt, results, brokers, colors, out):
    """The produce scenario's throughput over each run, one line per
    repetition: whether both brokers reached a steady state, and when (the
    warm-up of a JVM, the first seconds of a fresh broker). None without
    per-interval reports."""
    runs = [r for r in results if r.get("ok") and r["scenario"] == "produce"
            and r["values"].get("mib_per_s_per_interval")]
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    labelled = set()
    for r in runs:
        series = r["values"]["mib_per_s_per_interval"][:-1] or r["values"]["mib_per_s_per_interval"]
        step = r["values"].get("reporting_interval_s", 1)
        b = r["broker"]
        ax.plot([step * (i + 1) for i in range(len(series))], series, color=colors.get(b),
                alpha=0.8, label=None if b in labelled else b)
        labelled.add(b)
    ax.set_xlabel("seconds since the producer started")
    ax.set_ylabel("MiB/s in each interval")
    ax.set_title("Produce throughput over time, 8 partitions (each line a repetition; last partial interval left out)")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out, "throughput_over_time.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
