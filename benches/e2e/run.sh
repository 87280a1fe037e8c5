#!/usr/bin/env bash
# End-to-end benchmark: StreamHouse (embedded default, and PostgreSQL + a local
# S3 server) against Apache Kafka 4.4 (single-node KRaft), driven by the same
# Kafka tools (ProducerPerformance, ConsumerPerformance, EndToEndLatency).
#
#   benches/e2e/run.sh            3 repetitions, about 15 minutes on 2 cores
#   benches/e2e/run.sh --quick    1 repetition, smaller runs, about 3 minutes
#
# Options (after the mode):
#   --reps N                 repetitions instead of the mode's default
#   --brokers LIST           subset of kafka,sh-embedded,sh-s3; kafka-fsync (Kafka fsyncing
#                            every append), nisshi-s3 and nisshi-sqlite (Nisshi, formerly Tansu,
#                            on its S3 or SQLite engine) and sh-embedded-base (the embedded broker
#                            built from another commit, --base-bin) run only when named
#   --out DIR                where results.json, results.md and the PNGs go
#                            (default docs/benchmarks)
#   --scale F                multiply record counts and durations (e.g. 0.1 to try it out)
#   --scenarios LIST         subset of produce,consume,latency,e2e,fixed-1p,produce-1000p,fixed-1000p,
#                            rate-10m (10 MiB/s on 8 partitions; by default only with --s3-latency),
#                            produce-franz,consume-franz,fanout-1,fanout-3 (1 or 3 groups tailing
#                            while 5 MiB/s is produced)
#   --profile NAME           producer settings of every producing scenario: default (Java's) or
#                            object-storage (linger.ms=100, batch.size=1048576)
#   --sh-args "FLAGS"        more flags for every StreamHouse broker (e.g. "--flush-interval-ms 250")
#   --s3-latency MED,P99     sh-s3's S3 server behind a proxy (benches/e2e/latency-proxy) that
#                            delays each answer's first byte: log-normal, median MED ms, 99th
#                            percentile P99 ms; 25,150 is like S3 Standard within a region
#   --s3-latency-from WHERE  request (default): an answer comes the drawn delay after the request,
#                            the S3 server's own time inside it; answer: the delay starts when the
#                            server answers, on top of its time (how runs before 2026-12-06 went)
#   --no-build               use the release binary as it is
#   --base-bin PATH          the binary of sh-embedded-base: a change and the build before it,
#                            measured side by side in one run (e.g. a release build of main
#                            copied aside before the change)
#
# Set-up, each step only if missing, everything under
# ${STREAMHOUSE_CACHE:-/var/cache/streamhouse-ci}: the Kafka broker and tools
# jars (mvn -f benches/e2e/pom.xml) in bench/kafka-lib, a venv with matplotlib
# and confluent-kafka in bench/venv, versitygw in bin/ (go install; moto is the
# fallback), the private PostgreSQL of scripts/services.sh, and only when a
# nisshi-* broker is named, Nisshi 0.8.1 (cargo install into bench/nisshi; a
# build of about half an hour on 2 cores, once; it needs rustc 1.96, newer
# than the pinned toolchain, so it is built with the installed nightly). The broker is
# $STREAMHOUSE_BIN, or built with cargo build --release into $CARGO_TARGET_DIR.
# Every process started is stopped on exit and the temporary directories are
# removed. Exit status is non-zero if any scenario failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benches/e2e"
# shellcheck source-path=SCRIPTDIR source=../../scripts/services.sh
source "$ROOT/scripts/services.sh"
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib.sh
source "$ROOT/scripts/lib.sh"

ARGS=()
BROKER_LIST=""
OUT="$ROOT/docs/benchmarks"
BUILD=1
S3_LATENCY=""
while (($#)); do
    case "$1" in
        --quick) ARGS+=(--quick) ;;
        --reps) ARGS+=(--reps "${2:?--reps needs a number}"); shift ;;
        --brokers) BROKER_LIST="${2:?--brokers needs a list}"; ARGS+=(--brokers "$2"); shift ;;
        --scale) ARGS+=(--scale "${2:?--scale needs a factor}"); shift ;;
        --scenarios) ARGS+=(--scenarios "${2:?--scenarios needs a list}"); shift ;;
        --profile) ARGS+=(--profile "${2:?--profile needs a name}"); shift ;;
        --sh-args) ARGS+=(--sh-args "${2?--sh-args needs flags}"); shift ;;
        --s3-latency) S3_LATENCY="${2:?--s3-latency needs MEDIAN_MS,P99_MS}"; shift ;;
        --s3-latency-from) ARGS+=(--s3-latency-from "${2:?--s3-latency-from needs request or answer}"); shift ;;
        --out) OUT="${2:?--out needs a directory}"; shift ;;
        --no-build) BUILD=0 ;;
        --base-bin) ARGS+=(--base-bin "${2:?--base-bin needs a path}"); shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

BENCH_CACHE="$STREAMHOUSE_CACHE/bench"
LIB="$BENCH_CACHE/kafka-lib"
VENV="$BENCH_CACHE/venv"
LOGS="$BENCH_CACHE/logs"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$STREAMHOUSE_CACHE/target}"
mkdir -p "$BENCH_CACHE" "$LOGS"

step() { echo "==> $*" >&2; }

for tool in java mvn python3 psql; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool missing; ./scripts/test.sh --setup-only installs it" >&2; exit 1; }
done

# The Kafka 4.4.0 broker and tools jars, and matplotlib and confluent-kafka.
ensure_maven_jars "$HERE/pom.xml" "$LIB" "$BENCH_CACHE/kafka-lib.stamp" "$LOGS"
ensure_venv "$VENV" "$HERE/requirements.txt" "$VENV/.stamp" "$LOGS"

VERSITYGW="$STREAMHOUSE_CACHE/bin/versitygw"
if [[ ! -x "$VERSITYGW" ]] && command -v go >/dev/null; then
    step "installing versitygw into $STREAMHOUSE_CACHE/bin"
    GOBIN="$STREAMHOUSE_CACHE/bin" quiet "$LOGS/versitygw-install.log" \
        go install github.com/versity/versitygw/cmd/versitygw@latest || true
fi

NISSHI="$BENCH_CACHE/nisshi/bin/nisshi"
if [[ "$BROKER_LIST" == *nisshi* ]]; then
    if [[ ! -x "$NISSHI" ]]; then
        step "cargo +nightly install nisshi 0.8.1 into $BENCH_CACHE/nisshi (a long build, once)"
        CARGO_TARGET_DIR="$BENCH_CACHE/nisshi/target" quiet "$LOGS/nisshi-install.log" \
            cargo +nightly install nisshi --version 0.8.1 --locked --root "$BENCH_CACHE/nisshi"
    fi
    ARGS+=(--nisshi-bin "$NISSHI")
fi

BIN="${STREAMHOUSE_BIN:-$CARGO_TARGET_DIR/release/streamhouse}"
if [[ -z "${STREAMHOUSE_BIN:-}" && "$BUILD" == 1 ]]; then
    step "cargo build --release --bin streamhouse"
    (cd "$ROOT" && cargo build --release --bin streamhouse)
fi
[[ -x "$BIN" ]] || { echo "run.sh: no broker binary at $BIN" >&2; exit 1; }
PROXY="$CARGO_TARGET_DIR/release/s3-latency-proxy"
if [[ -n "$S3_LATENCY" ]]; then
    if [[ "$BUILD" == 1 || ! -x "$PROXY" ]]; then
        step "cargo build --release -p s3-latency-proxy"
        (cd "$ROOT" && cargo build --release -p s3-latency-proxy)
    fi
    [[ -x "$PROXY" ]] || { echo "run.sh: no latency proxy at $PROXY" >&2; exit 1; }
    ARGS+=(--s3-latency "$S3_LATENCY" --s3-proxy-bin "$PROXY")
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/streamhouse-e2e.XXXXXX")"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    sh_services_stop_ours
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "PostgreSQL on 127.0.0.1:$SH_PG_PORT"
sh_pg_start
S3ARGS=()
NOTES=""
if [[ -x "$VERSITYGW" ]]; then
    S3ARGS=(--versitygw "$VERSITYGW")
else
    step "versitygw not available: falling back to moto on 127.0.0.1:$SH_S3_PORT"
    NOTES="S3 server: moto (versitygw was not available); S3 numbers are dominated by moto"
    sh_moto_start
    sh_s3_create_bucket streamhouse-bench >"$LOGS/bucket.log" 2>&1
    S3ARGS=(--s3-url "http://127.0.0.1:$SH_S3_PORT")
fi
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

step "running the benchmark (broker logs under $WORK/logs until it ends; copies in $LOGS/last-run)"
status=0
# The bench package (benches/e2e/bench), without __pycache__ in the repo.
PYTHONPATH="$HERE" PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m bench ${ARGS[@]+"${ARGS[@]}"} \
    --streamhouse-bin "$BIN" --kafka-lib "$LIB" \
    --pg-url "postgres://postgres@127.0.0.1:$SH_PG_PORT" "${S3ARGS[@]}" \
    --workdir "$WORK" --out "$OUT" --notes "$NOTES" --cache "$STREAMHOUSE_CACHE" || status=$?
rm -rf "$LOGS/last-run"
cp -r "$WORK/logs" "$LOGS/last-run" 2>/dev/null || true
exit "$status"
