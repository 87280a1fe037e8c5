"""The cost sweep's summary (benches/e2e/cost_sweep.sh): for each setting's
run of the rate-10m scenario, PUTs per GiB written (compaction's included)
against produce p99, as a table (cost_sweep.md) and a plot (cost_sweep.png).

    python -m bench.sweep --out DIR LABEL=RESULT_DIR ...
"""

import argparse
import json
import os
import statistics

from .report import derived


def point(result_dir):
    with open(os.path.join(result_dir, "results.json")) as f:
        data = json.load(f)
    runs = [derived(r["values"]) for r in data["runs"]
            if r["scenario"] == "rate-10m" and r["ok"]]
    if not runs:
        return None

    def med(key):
        vals = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None
    return {"flags": data["info"].get("streamhouse_args") or "(s3:// defaults)",
            "mib_per_s": med("mib_per_s"), "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
            "puts_per_gib": med("puts_per_gib"), "hedges_per_gib": med("hedges_per_gib"),
            "usd_per_tib": med("usd_per_tib"), "reps": len(runs)}


def main():
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("points", nargs="+", metavar="LABEL=RESULT_DIR")
    opts = p.parse_args()
    rows = []
    for arg in opts.points:
        label, _, result_dir = arg.partition("=")
        values = point(result_dir)
        if values is None:
            print("%s: no successful rate-10m run in %s" % (label, result_dir))
            continue
        rows.append((label, values))
    lines = ["| setting | StreamHouse flags | achieved MiB/s | p50 ms | p99 ms | PUTs per GiB | "
             "of which hedges | request cost, USD per TiB |", "|---|---|---|---|---|---|---|---|"]
    for label, v in rows:
        lines.append("| %s | `%s` | %.2f | %.0f | %.0f | %.0f | %.0f | %.2f |" % (
            label, v["flags"], v["mib_per_s"], v["p50_ms"], v["p99_ms"], v["puts_per_gib"],
            v["hedges_per_gib"] or 0, v["usd_per_tib"]))
    with open(os.path.join(opts.out, "cost_sweep.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5.5))
    # The cost goal: at most 350 PUTs per GiB at a p99 of at most 500 ms.
    ax.fill_between([0, 500], 0, 350, color="#2ca02c", alpha=0.12, label="<= 350 PUTs/GiB at p99 <= 500 ms")
    # Points crowd near the goal: numbered, and named in the legend.
    for n, (label, v) in enumerate(rows, 1):
        ax.plot(v["p99_ms"], v["puts_per_gib"], "o", color="#ff7f0e",
                label="%d: %s" % (n, label))
        ax.annotate(str(n), (v["p99_ms"], v["puts_per_gib"]), textcoords="offset points",
                    xytext=(4, 3 + 9 * (n % 2)), fontsize=8)
    ax.legend(fontsize=7, loc="upper right", handlelength=0.8)
    ax.set_xlabel("produce latency p99 at 10 MiB/s (ms)")
    ax.set_ylabel("store PUTs per GiB written (compaction's included)")
    ax.set_title("Cost against latency on S3-like latency (object-storage producer profile)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(opts.out, "cost_sweep.png")
    fig.savefig(path, dpi=110)
    print("wrote %s" % path)


if __name__ == "__main__":
    main()
