"""What the benchmark measures besides the clients' own reports: a process's
CPU time and memory (/proc), StreamHouse's metrics endpoint, the store and
catalog work between two scrapes, and percentiles."""

import os
import urllib.request

# The compactor's gauge of its last pass with nothing to do, and its default
# minimum object age (storage/src/compaction).
COMPACTION_IDLE = "streamhouse_compaction_last_idle_ms"
COMPACTION_PENDING = "streamhouse_compaction_pending_objects"
COMPACTION_MIN_AGE_S = 5
CLK_TCK = os.sysconf("SC_CLK_TCK")


def scrape(port):
    """The values of the Prometheus text at 127.0.0.1:PORT/metrics, by series
    name (with labels); raises OSError when it does not answer."""
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read()
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


def store_deltas(m0, m1, wall):
    def d(name):
        return m1.get(name, 0) - m0.get(name, 0)
    puts, gets = d("streamhouse_store_puts_total"), d("streamhouse_store_gets_total")
    out = {
        "store_puts": puts,
        "store_put_bytes": d("streamhouse_store_put_bytes_total"),
        "store_gets": gets,
        # Of them, compaction's and the log cleaner's (absent before the
        # broker counted them).
        "compaction_gets": d("streamhouse_compaction_store_gets_total"),
        "store_get_bytes": d("streamhouse_store_get_bytes_total"),
        "store_other": d("streamhouse_store_other_requests_total"),
        "store_put_hedges": d("streamhouse_store_put_hedges_total"),
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
