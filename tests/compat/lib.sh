# shellcheck shell=bash
# Helpers for the shell compat runners (kcat.sh, java.sh, go.sh, ...): fresh
# brokers on free ports, scenario results, and the loop over backend pairs
# every runner shares. The Python runners use harness.py, which follows the
# same conventions (see its docstring for the environment).
#
#   on_each_backend CLIENT FUNCTION [BROKER_ARG...]
#       For each backend pair in COMPAT_BACKENDS: a fresh broker named
#       CLIENT-BACKEND (broker_start with the BROKER_ARGs), FUNCTION BACKEND,
#       then broker_cleanup. A broker that does not start is the failed
#       scenario CLIENT/BACKEND/broker-start.
#   run_program CLIENT TIMEOUT [BROKER_ARG...] -- COMMAND [ARG...]
#       on_each_backend for a client program that runs every scenario itself:
#       COMMAND (under TIMEOUT seconds, with {bootstrap} and {backend} in its
#       arguments replaced) writes a line per scenario, "PASS NAME" or
#       "FAIL|XFAIL NAME: DETAIL", recorded as they are. Its output goes to
#       $BROKER_DIR/CLIENT.out and .err. A non-zero exit without a FAIL line
#       fails CLIENT/BACKEND/run, a broker that died CLIENT/BACKEND/broker-alive.
#   broker_start BACKEND NAME [extra broker args...]
#       BACKEND is embedded or pg-s3. Sets BROKER_PID, BROKER_PORT,
#       BROKER_BOOTSTRAP, BROKER_DIR, BROKER_LOG (and BROKER_DB for pg-s3).
#       Returns 1, with the log's tail on stderr, if the broker does not accept
#       TCP connections within 30 s.
#   broker_stop            SIGTERM, then SIGKILL after 10 s
#   broker_cleanup         broker_stop, then remove the data dir and database
#                          (kept when COMPAT_KEEP=1 or after a FAIL)
#   record PASS|FAIL NAME [detail]
#   compile_java CLIENT DIR SOURCE...
#       javac the SOURCEs against the Kafka jars of scripts/test.sh into DIR,
#       unless DIR.stamp shows that they and the jars are unchanged. A javac
#       error is the failed scenario CLIENT/setup (and status 1).

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$COMPAT_DIR/../.." && pwd)"
# shellcheck source=../../scripts/services.sh
source "$REPO_ROOT/scripts/services.sh"

: "${STREAMHOUSE_BIN:=${CARGO_TARGET_DIR:-$STREAMHOUSE_CACHE/target}/debug/streamhouse}"
: "${COMPAT_BACKENDS:=embedded pg-s3}"
: "${COMPAT_S3_MODE:=prefix}"
BROKER_READY_TIMEOUT_S=30

if [[ -z "${COMPAT_RUN_DIR:-}" ]]; then
    mkdir -p "$STREAMHOUSE_CACHE/compat-runs"
    COMPAT_RUN_DIR="$(mktemp -d "$STREAMHOUSE_CACHE/compat-runs/$(date +%Y%m%d-%H%M%S)-XXXX")"
fi
export COMPAT_RUN_DIR STREAMHOUSE_BIN COMPAT_BACKENDS COMPAT_S3_MODE

COMPAT_FAILED=0

unique() { printf '%s-%s-%s\n' "$1" "$(date +%H%M%S)" "$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"; }

record() {
    local status="$1" name="$2" detail="${3:-}"
    if [[ -n "$detail" ]]; then echo "$status $name: $detail"; else echo "$status $name"; fi
    [[ "$status" == FAIL ]] && COMPAT_FAILED=1
    if [[ -n "${COMPAT_RESULTS:-}" ]]; then echo "$status $name" >>"$COMPAT_RESULTS"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now_ms() { date +%s%3N; }

BROKER_PID=""
BROKER_DB=""

broker_start() {
    local backend="$1" name="$2"
    shift 2
    BROKER_NAME="$(unique "$name")"
    BROKER_DIR="$COMPAT_RUN_DIR/$BROKER_NAME"
    BROKER_LOG="$BROKER_DIR/broker.log"
    BROKER_DB=""
    mkdir -p "$BROKER_DIR/data"
    if [[ ! -x "$STREAMHOUSE_BIN" ]]; then
        echo "broker binary $STREAMHOUSE_BIN missing (cargo build, or set STREAMHOUSE_BIN)" >&2
        return 1
    fi
    local -a args=(--data-dir "$BROKER_DIR/data")
    case "$backend" in
        embedded) ;;
        pg-s3)
            if [[ -z "${STREAMHOUSE_TEST_POSTGRES_URL:-}" || -z "${STREAMHOUSE_TEST_S3_URL:-}" ]]; then
                echo "pg-s3: STREAMHOUSE_TEST_POSTGRES_URL / STREAMHOUSE_TEST_S3_URL unset (eval \"\$(scripts/services.sh start)\")" >&2
                return 1
            fi
            BROKER_DB="shcompat_${BROKER_NAME//-/_}"
            if ! psql -X -q -v ON_ERROR_STOP=1 -d "$STREAMHOUSE_TEST_POSTGRES_URL" \
                    -c "CREATE DATABASE \"$BROKER_DB\"" >"$BROKER_DIR/createdb.log" 2>&1; then
                echo "pg-s3: CREATE DATABASE $BROKER_DB failed:" >&2; cat "$BROKER_DIR/createdb.log" >&2
                return 1
            fi
            local store
            if [[ "$COMPAT_S3_MODE" == bucket ]]; then
                local bucket="sh-${BROKER_NAME,,}"
                sh_s3_create_bucket "$bucket" >"$BROKER_DIR/bucket.log" 2>&1 || {
                    echo "pg-s3: creating bucket $bucket failed:" >&2; cat "$BROKER_DIR/bucket.log" >&2; return 1; }
                store="s3://$bucket?${STREAMHOUSE_TEST_S3_URL#*\?}"
            else
                store="$STREAMHOUSE_TEST_S3_URL&prefix=compat/$BROKER_NAME"
            fi
            args+=(--catalog "${STREAMHOUSE_TEST_POSTGRES_URL%/*}/$BROKER_DB" --store "$store")
            ;;
        *) echo "unknown backend $backend" >&2; return 1 ;;
    esac
    BROKER_PORT="$(free_port)"
    BROKER_BOOTSTRAP="127.0.0.1:$BROKER_PORT"
    BROKER_ARGS=(--listen "$BROKER_BOOTSTRAP" "${args[@]}" "$@")
    broker_launch
}

# (Re)starts the broker with BROKER_ARGS on BROKER_PORT; waits for TCP.
broker_launch() {
    echo "=== start at $(date +%T): $STREAMHOUSE_BIN ${BROKER_ARGS[*]}" >>"$BROKER_LOG"
    # Without STREAMHOUSE_* settings a developer may have exported (the flags
    # are what the tests mean; STREAMHOUSE_LOG and _CACHE stay), no colour
    # codes in the log.
    local -a unset_env=()
    local v
    for v in $(compgen -e | grep '^STREAMHOUSE_' | grep -vxE 'STREAMHOUSE_(LOG|CACHE)'); do unset_env+=(-u "$v"); done
    env "${unset_env[@]}" NO_COLOR=1 "$STREAMHOUSE_BIN" "${BROKER_ARGS[@]}" >>"$BROKER_LOG" 2>&1 </dev/null &
    BROKER_PID=$!
    local deadline=$((SECONDS + BROKER_READY_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            wait "$BROKER_PID"
            local rc=$?
            BROKER_PID=""
            {
                echo "broker exited with status $rc before accepting connections on $BROKER_BOOTSTRAP"
                echo "command: $STREAMHOUSE_BIN ${BROKER_ARGS[*]}"
                echo "--- $BROKER_LOG (tail) ---"; tail -n 60 "$BROKER_LOG"
            } >&2
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    {
        echo "broker did not accept connections on $BROKER_BOOTSTRAP within ${BROKER_READY_TIMEOUT_S} s"
        echo "command: $STREAMHOUSE_BIN ${BROKER_ARGS[*]}"
        echo "--- $BROKER_LOG (tail) ---"; tail -n 60 "$BROKER_LOG"
    } >&2
    broker_kill9
    return 1
}

broker_kill9() {
    if [[ -n "$BROKER_PID" ]]; then
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=""
    fi
}

broker_stop() {
    if [[ -n "$BROKER_PID" ]]; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        broker_kill9
    fi
}

broker_cleanup() {
    broker_stop
    [[ -n "${BROKER_DIR:-}" ]] || return 0
    if [[ "${COMPAT_KEEP:-0}" == 1 || "$COMPAT_FAILED" == 1 ]]; then
        echo "kept $BROKER_DIR (log $BROKER_LOG)" >&2
        return 0
    fi
    rm -rf "$BROKER_DIR/data"
    if [[ -n "$BROKER_DB" ]]; then
        psql -X -q -d "$STREAMHOUSE_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS \"$BROKER_DB\" WITH (FORCE)" \
            >/dev/null 2>&1 || true
    fi
    BROKER_DIR=""
}

broker_log_tail() {
    echo "--- $BROKER_LOG (tail) ---"
    tail -n "${1:-40}" "$BROKER_LOG" 2>/dev/null
}

on_each_backend() {
    local client="$1" fn="$2" backend
    shift 2
    for backend in $COMPAT_BACKENDS; do
        if ! broker_start "$backend" "$client-$backend" "$@"; then
            record FAIL "$client/$backend/broker-start" "see the broker log above"
            continue
        fi
        "$fn" "$backend"
        broker_cleanup
    done
}

PROGRAM_CLIENT=""
PROGRAM_TIMEOUT=""
PROGRAM=()

run_program() {
    PROGRAM_CLIENT="$1" PROGRAM_TIMEOUT="$2"
    shift 2
    local -a broker_args=()
    while (($#)) && [[ "$1" != -- ]]; do broker_args+=("$1"); shift; done
    (($#)) || { echo "run_program: no -- COMMAND" >&2; return 2; }
    shift
    PROGRAM=("$@")
    on_each_backend "$PROGRAM_CLIENT" program_on_backend ${broker_args[@]+"${broker_args[@]}"}
}

program_on_backend() {
    local backend="$1" client="$PROGRAM_CLIENT"
    local out="$BROKER_DIR/$client.out" err="$BROKER_DIR/$client.err"
    local t0=$SECONDS arg rc line status name
    local -a cmd=()
    for arg in "${PROGRAM[@]}"; do
        arg="${arg//"{bootstrap}"/$BROKER_BOOTSTRAP}"
        cmd+=("${arg//"{backend}"/$backend}")
    done
    timeout --foreground "$PROGRAM_TIMEOUT" "${cmd[@]}" >"$out" 2>"$err"
    rc=$?
    while IFS= read -r line; do
        case "$line" in
            "PASS "*) record PASS "${line#PASS }" ;;
            "FAIL "* | "XFAIL "*)
                status="${line%% *}"; name="${line#* }"
                record "$status" "${name%%: *}" "${name#*: }" ;;
        esac
    done <"$out"
    echo "$client/$backend: $((SECONDS - t0))s" >&2
    if [[ "$rc" != 0 ]] && ! grep -q '^FAIL ' "$out"; then
        record FAIL "$client/$backend/run" "exited with status $rc; stderr tail: $(tail -n 8 "$err" | tr '\n' ' ')"
    fi
    if [[ "$rc" != 0 ]]; then
        echo "--- $err (tail) ---"; tail -n 40 "$err"
        broker_log_tail 40
    fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        record FAIL "$client/$backend/broker-alive" "the broker died during the run"
    fi
}

compile_java() {
    local client="$1" dir="$2" want log="$COMPAT_RUN_DIR/$1-javac.log"
    shift 2
    want="$(cat "$@" "$STREAMHOUSE_CACHE/java/lib.stamp" 2>/dev/null | sha256sum | cut -d' ' -f1)"
    [[ "$(cat "$dir.stamp" 2>/dev/null)" == "$want" ]] && return 0
    rm -rf "$dir"
    mkdir -p "$dir"
    if ! javac -encoding UTF-8 -d "$dir" -cp "$STREAMHOUSE_CACHE/java/lib/*" "$@" >"$log" 2>&1; then
        record FAIL "$client/setup" "javac failed: $(head -c 600 "$log")"
        return 1
    fi
    echo "$want" >"$dir.stamp"
}
