#!/usr/bin/env bash
# StreamHouse's one test command. On a fresh Debian 12 machine it installs
# what it needs (each step only if missing), starts PostgreSQL and an
# S3-compatible server (moto), checks formatting and lints (cargo fmt --check,
# cargo clippy -D warnings), runs every Rust test, builds the broker and runs
# the real-client compatibility scenarios (kcat, confluent-kafka, the Java
# client, SIGKILL durability, PostgreSQL restarted under a producer; kcat, the
# crash test and the Java client also against a cluster of three agents)
# against it on both backend pairs.
#
#   ./scripts/test.sh                      everything
#   ./scripts/test.sh --setup-only         install + start services, print exports
#                                          to eval; the services keep running
#   ./scripts/test.sh --compat-only [CLIENT...]
#                                          only the compat runners (kcat python
#                                          java crash cluster), against the broker already
#                                          built ($STREAMHOUSE_BIN or
#                                          $CARGO_TARGET_DIR/debug/streamhouse)
#   ./scripts/test.sh --no-compat          setup, cargo test and build only
#
# Further compat runners (each also a --compat-only CLIENT): go (franz-go and
# Sarama), node (KafkaJS), pyclients (kafka-python and aiokafka), prometheus
# (Debian's Prometheus scrapes a broker; every query of the Grafana dashboard
# in deploy/grafana returns data), deploy (helm lint and helm template of the
# chart, deploy/compose.yaml and the systemd unit), outage (the S3 server
# frozen under an idempotent producer); the list is tests/compat/run_all.sh's.
#
# Everything it installs or writes lives in ${STREAMHOUSE_CACHE:-/var/cache/streamhouse-ci}:
# venv/ (moto, confluent-kafka, pytest), m2/ + java/lib (kafka-clients and
# kafka-tools 4.4.0 jars), java/streams-lib (kafka-streams 4.4.0), java/classes, go/ (module and build caches, the
# franz-go/Sarama runner binary go/bin/compat), node/ (KafkaJS node_modules),
# helm/ (helm built from the Go module proxy, with its module and build caches),
# postgres/ (the test cluster on 127.0.0.1:54329), logs/, compat-runs/ (broker logs), and target/ (the
# default CARGO_TARGET_DIR). Nothing is left in the repo.
#
# Exit status is non-zero if any phase fails; a failed phase does not stop the
# later ones (except setup and services). The last line is
# "N passed, N failed" for the compat scenarios.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=services.sh
source "$ROOT/scripts/services.sh"
# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"

MODE=all
CLIENTS=()
while (($#)); do
    case "$1" in
        --setup-only) MODE=setup ;;
        --compat-only) MODE=compat ;;
        --no-compat) MODE=nocompat ;;
        -h | --help) usage; exit 0 ;;
        *)
            known_clients="$(bash "$ROOT/tests/compat/run_all.sh" --list)"
            if ! grep -qx -- "$1" <<<"$known_clients"; then
                echo "test.sh: unknown argument '$1'" >&2; usage >&2; exit 2
            fi
            [[ "$MODE" == compat ]] || { echo "test.sh: '$1' only goes after --compat-only" >&2; exit 2; }
            CLIENTS+=("$1") ;;
    esac
    shift
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$STREAMHOUSE_CACHE/target}"
LOGS="$STREAMHOUSE_CACHE/logs"
mkdir -p "$STREAMHOUSE_CACHE" "$LOGS"

# ---- phases and their wall times ---------------------------------------

PHASES=()
FAILED_PHASES=()
phase_start() { PHASE_NAME="$1"; PHASE_T0="$(date +%s.%N)"; echo "==> $1" >&2; }
phase_end() {   # phase_end ok|FAILED
    local secs
    secs="$(awk -v a="$PHASE_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
    PHASES+=("$(printf '%-12s %8ss  %s' "$PHASE_NAME" "$secs" "$1")")
    [[ "$1" == ok ]] || FAILED_PHASES+=("$PHASE_NAME")
    echo "<== $PHASE_NAME: $1 in ${secs}s" >&2
}
print_phases() {
    echo "=== phase wall times"
    local p
    for p in "${PHASES[@]}"; do echo "  $p"; done
}

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo -n "$@"; fi
}

# ---- setup: each step only if missing -----------------------------------

ensure_apt_packages() {
    local -a need=()
    command -v kcat >/dev/null || need+=(kcat)
    sh_pg_bindir >/dev/null 2>&1 || need+=(postgresql)
    command -v psql >/dev/null || need+=(postgresql-client)
    command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null || need+=(maven)
    command -v python3 >/dev/null || need+=(python3)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
    command -v curl >/dev/null || need+=(curl)
    command -v go >/dev/null || need+=(golang-go)
    command -v node >/dev/null || need+=(nodejs)
    command -v npm >/dev/null || need+=(npm)
    # The prometheus compat runner's server (tests/compat/prometheus_scrape.py).
    command -v prometheus >/dev/null || need+=(prometheus)
    # systemd-analyze, which the deploy runner verifies the systemd unit with.
    command -v systemd-analyze >/dev/null || need+=(systemd)
    # The certificates of the TLS wire tests and the tls and secure runners.
    command -v openssl >/dev/null || need+=(openssl)
    ((${#need[@]})) || return 0
    echo "installing with apt-get: ${need[*]}" >&2
    quiet "$LOGS/apt-update.log" as_root apt-get update -q
    quiet "$LOGS/apt-install.log" as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${need[@]}"
}

ensure_compat_venv() {
    ensure_venv "$SH_VENV" "$ROOT/tests/compat/requirements.txt" "$SH_VENV/.streamhouse-stamp" "$LOGS"
}

# kafka-clients and kafka-tools 4.4.0 for the Java runners.
JAVA_DIR="$STREAMHOUSE_CACHE/java"
ensure_java_jars() {
    ensure_maven_jars "$ROOT/tests/compat/java/pom.xml" "$JAVA_DIR/lib" "$JAVA_DIR/lib.stamp" "$LOGS"
}

# kafka-streams 4.4.0 (and RocksDB) for tests/compat/streams.sh: a pom of its
# own, so that it does not refetch the jars above.
ensure_streams_jars() {
    ensure_maven_jars "$ROOT/tests/compat/streams/pom.xml" "$JAVA_DIR/streams-lib" "$JAVA_DIR/streams-lib.stamp" "$LOGS"
}

ensure_java_classes() {
    local -a srcs=("$ROOT"/tests/compat/java/*.java)
    up_to_date "$JAVA_DIR/classes.stamp" "${srcs[@]}" "$JAVA_DIR/lib.stamp" && [[ -d "$JAVA_DIR/classes" ]] && return 0
    rm -rf "${JAVA_DIR:?}/classes"
    mkdir -p "$JAVA_DIR/classes"
    quiet "$LOGS/javac.log" javac -encoding UTF-8 -d "$JAVA_DIR/classes" -cp "$JAVA_DIR/lib/*" "${srcs[@]}" || return 1
    echo "$STAMP_WANT" >"$JAVA_DIR/classes.stamp"
}

# The franz-go/Sarama runner (tests/compat/go): modules and build cache in
# $STREAMHOUSE_CACHE/go, the binary in go/bin/compat; rebuilt when a source,
# go.mod or go.sum changes.
GO_DIR="$STREAMHOUSE_CACHE/go"
ensure_go_compat() {
    local src="$ROOT/tests/compat/go"
    up_to_date "$GO_DIR/bin/compat.stamp" "$src/go.mod" "$src/go.sum" "$src"/*.go && [[ -x "$GO_DIR/bin/compat" ]] && return 0
    echo "building the Go compat runner (franz-go, Sarama) into $GO_DIR/bin" >&2
    rm -f "$GO_DIR/bin/compat" "$GO_DIR/bin/compat.stamp"
    mkdir -p "$GO_DIR/bin"
    quiet "$LOGS/go-build.log" env GOPATH="$GO_DIR" GOMODCACHE="$GO_DIR/mod" GOCACHE="$GO_DIR/build" \
        GOFLAGS=-modcacherw bash -c 'cd "$1" && go mod download && go build -trimpath -o "$2" .' \
        _ "$src" "$GO_DIR/bin/compat" || return 1
    echo "$STAMP_WANT" >"$GO_DIR/bin/compat.stamp"
}

# KafkaJS (tests/compat/node): npm ci of the lock file into $STREAMHOUSE_CACHE/node.
NODE_DIR="$STREAMHOUSE_CACHE/node"
ensure_node_modules() {
    local src="$ROOT/tests/compat/node"
    up_to_date "$NODE_DIR/.streamhouse-stamp" "$src/package.json" "$src/package-lock.json" \
        && [[ -d "$NODE_DIR/node_modules/kafkajs" ]] && return 0
    echo "installing KafkaJS (npm ci) into $NODE_DIR" >&2
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR"
    cp "$src/package.json" "$src/package-lock.json" "$NODE_DIR/"
    quiet "$LOGS/npm.log" bash -c 'cd "$1" && npm ci --no-audit --no-fund --ignore-scripts --cache "$2"' \
        _ "$NODE_DIR" "$STREAMHOUSE_CACHE/npm-cache" || return 1
    echo "$STAMP_WANT" >"$NODE_DIR/.streamhouse-stamp"
}

# helm for the deploy compat runner (tests/compat/deploy_check.sh: helm lint
# and helm template of deploy/helm/streamhouse), built from the Go module
# proxy into $STREAMHOUSE_CACHE/helm/bin once; its modules and build cache stay
# beside it. HELM_VERSION picks another release.
HELM_DIR="$STREAMHOUSE_CACHE/helm"
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
ensure_helm() {
    [[ -x "$HELM_DIR/bin/helm" && "$(cat "$HELM_DIR/bin/helm.version" 2>/dev/null)" == "$HELM_VERSION" ]] && return 0
    echo "building helm $HELM_VERSION from the Go module proxy into $HELM_DIR/bin (a few minutes, once)" >&2
    rm -f "$HELM_DIR/bin/helm" "$HELM_DIR/bin/helm.version"
    mkdir -p "$HELM_DIR/bin"
    quiet "$LOGS/helm-build.log" env GOBIN="$HELM_DIR/bin" GOPATH="$HELM_DIR/gopath" GOMODCACHE="$HELM_DIR/mod" \
        GOCACHE="$HELM_DIR/build" GOFLAGS=-modcacherw \
        go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || return 1
    echo "$HELM_VERSION" >"$HELM_DIR/bin/helm.version"
}

ensure_cargo() {
    command -v cargo >/dev/null && return 0
    [[ -x "$HOME/.cargo/bin/cargo" ]] && { export PATH="$HOME/.cargo/bin:$PATH"; return 0; }
    echo "test.sh: cargo not found (install rustup; rust-toolchain.toml pins the version)" >&2
    return 1
}

SERVICES_UP=0
cleanup() {
    if [[ "$MODE" != setup && "$SERVICES_UP" == 1 ]]; then
        sh_services_stop_ours
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the run --------------------------------------------------------------

# The Go builds (the franz-go/Sarama runner and helm: minutes of CPU on a
# fresh machine, nothing once built) go on in the background while the cargo
# phases run, whose single-threaded stretches (a crate's front end, links,
# tests that wait) leave a core idle; only the compat runners need them, and
# the compat phase waits for them. --setup-only waits at once.
# Each run waits for them once: in --setup-only's setup phase, else in the
# "go builds" phase.
GO_BUILDS_PID=""
start_go_builds() {
    (ensure_go_compat && ensure_helm) &
    GO_BUILDS_PID=$!
}
go_builds_ok() { wait "$GO_BUILDS_PID"; }

phase_start setup
if ensure_apt_packages && ensure_compat_venv && ensure_java_jars && ensure_streams_jars && ensure_java_classes \
        && ensure_node_modules && start_go_builds && { [[ "$MODE" != setup ]] || go_builds_ok; }; then
    phase_end ok
else
    phase_end FAILED
    print_phases
    exit 1
fi

phase_start services
SERVICES_UP=1
if sh_services_start; then
    phase_end ok
else
    phase_end FAILED
    print_phases
    exit 1
fi

if [[ "$MODE" == setup ]]; then
    print_phases >&2
    echo "# services are running; to use them: eval \"\$(./scripts/test.sh --setup-only)\"" >&2
    echo "# stop them with: scripts/services.sh stop" >&2
    sh_print_exports
    echo "export CARGO_TARGET_DIR='$CARGO_TARGET_DIR'"
    exit 0
fi

# The full run tests what it just built; --compat-only may be pointed elsewhere.
BIN="$CARGO_TARGET_DIR/debug/streamhouse"
[[ "$MODE" == compat && -n "${STREAMHOUSE_BIN:-}" ]] && BIN="$STREAMHOUSE_BIN"
# The wire tests' PostgreSQL databases (`sh_it_*`, tests/common) outlive their
# test processes; once the cargo tests are over none is in use. Dropped after
# each run (and any a killed run left), so the server's data dir does not grow
# from run to run.
drop_test_databases() {
    local db
    for db in $(psql -X -At -d "$STREAMHOUSE_TEST_POSTGRES_URL" \
        -c "SELECT datname FROM pg_database WHERE datname LIKE 'sh\\_it\\_%'" 2>/dev/null); do
        psql -X -q -d "$STREAMHOUSE_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" \
            >/dev/null 2>&1
    done
}

# The build cache outside the repo keeps every executable cargo ever linked,
# also under hashes it no longer uses (after a feature, profile or dependency
# change), and incremental data per crate and variant; it filled this
# machine's disk once (72 GiB).
# After a build, executables in debug/deps that nothing ran for two days and
# that are not a current binary (cargo hard-links each one built into debug/,
# a second link) go, and incremental data untouched for a day (a crate left
# without it is compiled whole the next time it changes). Test binaries run
# every time, so theirs are recent; on a file system mounted noatime an old
# one goes too, and cargo relinks it when it is next needed.
prune_target_dir() {
    find "$CARGO_TARGET_DIR/debug/deps" -maxdepth 1 -type f -perm -u+x -links 1 -atime +1 \
        -regextype posix-extended -regex '.*/[A-Za-z0-9_]+-[0-9a-f]{16}' -delete 2>/dev/null
    find "$CARGO_TARGET_DIR/debug/incremental" -mindepth 1 -maxdepth 1 -mtime +0 \
        -exec rm -rf -- {} + 2>/dev/null
    return 0
}

BUILD_OK=1
if [[ "$MODE" != compat ]]; then
    ensure_cargo
    # Both checks run even if the first fails, so one run reports both.
    phase_start "fmt+clippy"
    lint_ok=1
    cargo fmt --all --check || lint_ok=0
    cargo clippy --all-targets --workspace -- -D warnings || lint_ok=0
    if [[ "$lint_ok" == 1 ]]; then phase_end ok; else phase_end FAILED; fi

    phase_start "cargo test"
    # --no-fail-fast: one failing test binary must not hide the results of the others.
    # The micro-benchmarks have no tests; left out, their criterion dev-dependency
    # does not change the features of the crates the tests build (syn's, and all
    # that is built with it), so `cargo build` below finds the broker built.
    if cargo test --workspace --exclude streamhouse-microbenches --no-fail-fast; then
        phase_end ok
    else
        phase_end FAILED
    fi
    drop_test_databases

    phase_start "cargo build"
    if cargo build --bin streamhouse; then phase_end ok; else phase_end FAILED; BUILD_OK=0; fi
    # Best effort: `||` also keeps `set -e` from stopping the run on a failed find.
    prune_target_dir || true
fi

COMPAT_PASS=0
COMPAT_FAIL=0
# The background Go builds' time beyond the cargo phases' (none once built).
phase_start "go builds"
if go_builds_ok; then phase_end ok; else phase_end FAILED; fi

if [[ "$MODE" != nocompat ]]; then
    phase_start compat
    if [[ "$BUILD_OK" == 1 && -x "$BIN" ]]; then
        summary="$(mktemp)"
        if STREAMHOUSE_BIN="$BIN" COMPAT_SUMMARY="$summary" \
                bash "$ROOT/tests/compat/run_all.sh" ${CLIENTS[@]+"${CLIENTS[@]}"}; then
            phase_end ok
        else
            phase_end FAILED
        fi
        read -r COMPAT_PASS COMPAT_FAIL <"$summary" || { COMPAT_PASS=0; COMPAT_FAIL=1; }
        rm -f "$summary"
    else
        echo "test.sh: no broker binary at $BIN; the compat scenarios cannot run" >&2
        COMPAT_FAIL=1
        phase_end FAILED
    fi
fi

print_phases
if ((${#FAILED_PHASES[@]})); then
    echo "FAILED phases: ${FAILED_PHASES[*]}"
fi
if [[ "$MODE" != nocompat ]]; then
    echo "$COMPAT_PASS passed, $COMPAT_FAIL failed"
fi
((${#FAILED_PHASES[@]} == 0))
