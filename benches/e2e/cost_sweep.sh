#!/usr/bin/env bash
# PUTs per GiB against produce latency over the write path's settings, on
# S3-like latency: runs.sh's rate-10m scenario (10 MiB/s of 1 KiB records on
# 8 partitions, the object-storage producer profile) once per setting, then
# plots each setting's point (cost_sweep.png) and writes cost_sweep.md.
#
#   benches/e2e/cost_sweep.sh [--out DIR] [--reps N] [--full] [--no-build] [--only LABEL,...]
#                             [--s3-latency-from request|answer]
#
# Each point is a separate run.sh run into DIR/<label>/ (default
# docs/benchmarks/s3-latency/sweep), about a minute each with one repetition
# of the --quick size (15 s at the rate), or a minute a repetition with
# --full (40 s at the rate). --only runs the named points alone.
# --s3-latency-from is run.sh's (answer: how the sweep of 2026-12-04 ran).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/docs/benchmarks/s3-latency/sweep"
REPS=1
BUILD=()
SIZE=(--quick)
ONLY=""
FROM=request
while (($#)); do
    case "$1" in
        --out) OUT="${2:?--out needs a directory}"; shift ;;
        --reps) REPS="${2:?--reps needs a number}"; shift ;;
        --no-build) BUILD=(--no-build) ;;
        --full) SIZE=() ;;
        --only) ONLY=",${2:?--only needs labels},"; shift ;;
        --s3-latency-from) FROM="${2:?--s3-latency-from needs request or answer}"; shift ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "cost_sweep.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done

# label | StreamHouse flags (empty: the s3:// defaults)
POINTS=(
    "defaults|"
    "interval-100|--seal-when-idle false --flush-interval-ms 100"
    "interval-200|--seal-when-idle false --flush-interval-ms 200"
    "interval-250-hedge-0.9|--seal-when-idle false --flush-interval-ms 250 --compaction-target-bytes 4194304 --put-hedge-quantile 0.9"
    "interval-275-hedge-0.9|--seal-when-idle false --flush-interval-ms 275 --compaction-target-bytes 4194304 --put-hedge-quantile 0.9"
    "interval-300-hedge-0.9|--seal-when-idle false --flush-interval-ms 300 --compaction-target-bytes 4194304 --put-hedge-quantile 0.9"
    "interval-500-hedge-0.9|--seal-when-idle false --flush-interval-ms 500 --compaction-target-bytes 4194304 --put-hedge-quantile 0.9"
    # Three of the profile's requests per object (they come every ~100 ms:
    # linger, or a 1 MiB batch filled at 10 MiB/s), without hedging.
    "interval-230-no-hedge|--seal-when-idle false --compaction-target-bytes 4194304 --flush-interval-ms 230 --put-hedge-quantile 0"
    "interval-230-hedge-0.9|--seal-when-idle false --compaction-target-bytes 4194304 --flush-interval-ms 230 --put-hedge-quantile 0.9"
    "interval-230-hedge-0.97|--seal-when-idle false --compaction-target-bytes 4194304 --flush-interval-ms 230 --put-hedge-quantile 0.97"
    "bytes-3mb-no-hedge|--seal-when-idle false --compaction-target-bytes 4194304 --flush-bytes 3000000 --flush-interval-ms 400 --put-hedge-quantile 0"
)
mkdir -p "$OUT"
dirs=()
for point in "${POINTS[@]}"; do
    label="${point%%|*}"
    flags="${point#*|}"
    if [[ -n "$ONLY" && "$ONLY" != *",$label,"* ]]; then
        [[ -d "$OUT/$label" ]] && dirs+=("$label=$OUT/$label")  # plotted as last run
        continue
    fi
    echo "==> $label: ${flags:-s3:// defaults}" >&2
    "$ROOT/benches/e2e/run.sh" ${SIZE[@]+"${SIZE[@]}"} --reps "$REPS" ${BUILD[@]+"${BUILD[@]}"} --brokers sh-s3 \
        --s3-latency 25,150 --s3-latency-from "$FROM" --profile object-storage --scenarios rate-10m \
        --sh-args "$flags" --out "$OUT/$label"
    BUILD=(--no-build)  # built once is enough
    dirs+=("$label=$OUT/$label")
done
VENV="${STREAMHOUSE_CACHE:-/var/cache/streamhouse-ci}/bench/venv"
PYTHONPATH="$ROOT/benches/e2e" PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m bench.sweep \
    --out "$OUT" "${dirs[@]}"
