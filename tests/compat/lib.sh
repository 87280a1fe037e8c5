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
#       COMMAND (under TIMEOUT seconds, with {bootstrap}, {backend} and {dir}
#       (BROKER_DIR) in its arguments replaced) writes a line per scenario, "PASS NAME" or
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
#   cluster_start BACKEND NAME N [extra agent args...]
#       N agents sharing one data dir (pg-s3: one database and store prefix),
#       each on its own free port, with --agent-lease-ms
#       $COMPAT_AGENT_LEASE_MS (2000; empty: no such flag); waits until Metadata through every agent
#       lists all N. Sets BROKER_DIR (the cluster's dir, see cluster_lib.sh
#       for its files and the agent_* functions), AGENT_PORTS,
#       BROKER_BOOTSTRAP (every agent, comma-separated) and BROKER_PID/PORT/
#       LOG (agent 0's). "{i}" in an extra arg is the agent's index
#       (--zone 'z{i}'). Status 1 if an agent did not start, 2 if they started
#       but did not form a cluster of N. broker_launch, _stop, _kill9,
#       _cleanup, _alive and _log_tail then act on every agent.
#   COMPAT_AGENTS=N        on_each_backend (and run_program) start clusters of
#                          N agents instead of one broker
#   record PASS|FAIL NAME [detail]
#   compile_java CLIENT DIR SOURCE...
#       javac the SOURCEs against the Kafka jars of scripts/test.sh into DIR,
#       unless DIR.stamp shows that they and the jars are unchanged. A javac
#       error is the failed scenario CLIENT/setup (and status 1).
#       COMPILE_JAVA_LIB names another jar dir of scripts/test.sh (one with
#       a .stamp beside it, as java/streams-lib) instead of java/lib.

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$COMPAT_DIR/../.." && pwd)"
# shellcheck source=../../scripts/services.sh
source "$REPO_ROOT/scripts/services.sh"
# shellcheck source=cluster_lib.sh
source "$COMPAT_DIR/cluster_lib.sh"

: "${STREAMHOUSE_BIN:=${CARGO_TARGET_DIR:-$STREAMHOUSE_CACHE/target}/debug/streamhouse}"
: "${COMPAT_BACKENDS:=embedded pg-s3}"
: "${COMPAT_S3_MODE:=prefix}"
: "${COMPAT_AGENTS:=1}"
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

# "-Nagents" when runners start clusters of N agents (COMPAT_AGENTS), else "":
# for scenario names that must not mix with the single broker's.
agents_tag() { ((COMPAT_AGENTS > 1)) && echo "-${COMPAT_AGENTS}agents"; }

BROKER_PID=""
BROKER_DB=""

# The dir, database and store of a fresh broker or cluster: sets BROKER_NAME,
# BROKER_DIR, BROKER_LOG, BROKER_DB and BACKEND_ARGS (--data-dir and, for
# pg-s3, --catalog and --store).
broker_prepare() {
    local backend="$1" name="$2"
    CLUSTER_N=0
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
    BACKEND_ARGS=("${args[@]}")
}

broker_start() {
    local backend="$1" name="$2"
    shift 2
    broker_prepare "$backend" "$name" || return 1
    BROKER_PORT="$(free_port)"
    BROKER_BOOTSTRAP="127.0.0.1:$BROKER_PORT"
    BROKER_ARGS=(--listen "$BROKER_BOOTSTRAP" "${BACKEND_ARGS[@]}" "$@")
    broker_launch
}

CLUSTER_N=0
AGENT_PORTS=()

cluster_start() {
    local backend="$1" name="$2" n="$3" i port
    shift 3
    broker_prepare "$backend" "$name" || return 1
    AGENT_PORTS=()
    for ((i = 0; i < n; i++)); do
        # Distinct ports: free_port may hand out one just released.
        while :; do
            port="$(free_port)"
            [[ " ${AGENT_PORTS[*]} " == *" $port "* ]] || break
        done
        AGENT_PORTS+=("$port")
        echo "$port" >"$BROKER_DIR/agent-$i.port"
        local -a lease=()
        [[ -n "$COMPAT_AGENT_LEASE_MS" ]] && lease=(--agent-lease-ms "$COMPAT_AGENT_LEASE_MS")
        printf '%s\0' "$STREAMHOUSE_BIN" --listen "127.0.0.1:$port" "${BACKEND_ARGS[@]}" \
            ${lease[@]+"${lease[@]}"} ${@+"${@//"{i}"/$i}"} >"$BROKER_DIR/agent-$i.cmd"
    done
    echo "$n" >"$BROKER_DIR/agents"
    CLUSTER_N="$n"
    BROKER_BOOTSTRAP="$(printf '127.0.0.1:%s,' "${AGENT_PORTS[@]}")"
    BROKER_BOOTSTRAP="${BROKER_BOOTSTRAP%,}"
    BROKER_PORT="${AGENT_PORTS[0]}"
    BROKER_LOG="$(agent_log 0)"
    # One after the other, as an operator would. Node ids come from
    # registration, which follows the listen: runners map them by address.
    for ((i = 0; i < n; i++)); do
        agent_start "$i" || { cluster_kill9; return 1; }
    done
    BROKER_PID="$(agent_pid 0)"
    cluster_wait_formed 20 || return 2
}

cluster_kill9() {
    local i
    for ((i = 0; i < CLUSTER_N; i++)); do agent_kill9 "$i"; done
}

# SIGTERM to every agent at once, then SIGKILL after COMPAT_AGENT_STOP_S.
cluster_stop() {
    local i
    for ((i = 0; i < CLUSTER_N; i++)); do agent_alive "$i" && kill -TERM "$(agent_pid "$i")" 2>/dev/null; done
    for ((i = 0; i < CLUSTER_N; i++)); do agent_wait_gone "$i" "$COMPAT_AGENT_STOP_S" || agent_kill9 "$i"; done
}

# Is the broker, or every agent of the cluster, running?
broker_alive() {
    if ((CLUSTER_N)); then
        local i
        for ((i = 0; i < CLUSTER_N; i++)); do agent_alive "$i" || return 1; done
        return 0
    fi
    [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null
}

# (Re)starts the broker with BROKER_ARGS on BROKER_PORT (a cluster: every
# agent that is not running); waits for TCP.
broker_launch() {
    if ((CLUSTER_N)); then
        local i
        for ((i = 0; i < CLUSTER_N; i++)); do agent_alive "$i" || agent_start "$i" || return 1; done
        BROKER_PID="$(agent_pid 0)"
        return 0
    fi
    echo "=== start at $(date +%T): $STREAMHOUSE_BIN ${BROKER_ARGS[*]}" >>"$BROKER_LOG"
    # Without STREAMHOUSE_* settings a developer may have exported (the flags
    # are what the tests mean; STREAMHOUSE_LOG and _CACHE stay), no colour
    # codes in the log.
    local -a unset_env=()
    mapfile -t unset_env < <(sh_broker_env_args)
    env ${unset_env[@]+"${unset_env[@]}"} NO_COLOR=1 "$STREAMHOUSE_BIN" "${BROKER_ARGS[@]}" >>"$BROKER_LOG" 2>&1 </dev/null &
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
    if ((CLUSTER_N)); then cluster_kill9; return; fi
    if [[ -n "$BROKER_PID" ]]; then
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=""
    fi
}

broker_stop() {
    if ((CLUSTER_N)); then cluster_stop; return; fi
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
    CLUSTER_N=0
}

broker_log_tail() {
    if ((CLUSTER_N)); then
        local i
        for ((i = 0; i < CLUSTER_N; i++)); do
            echo "--- $(agent_log "$i") (tail) ---"
            tail -n "${1:-40}" "$(agent_log "$i")" 2>/dev/null
        done
        return
    fi
    echo "--- $BROKER_LOG (tail) ---"
    tail -n "${1:-40}" "$BROKER_LOG" 2>/dev/null
}

on_each_backend() {
    local client="$1" fn="$2" backend
    shift 2
    for backend in $COMPAT_BACKENDS; do
        if ((COMPAT_AGENTS > 1)); then
            cluster_start "$backend" "$client-$backend" "$COMPAT_AGENTS" "$@"
            case $? in
                0) ;;
                2) record FAIL "$client/$backend/cluster-formed" "see what each agent listed above" ;;
                *) record FAIL "$client/$backend/broker-start" "see the agent logs above"
                   broker_cleanup; continue ;;
            esac
        elif ! broker_start "$backend" "$client-$backend" "$@"; then
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
        arg="${arg//"{dir}"/$BROKER_DIR}"
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
    if ! broker_alive; then
        record FAIL "$client/$backend/broker-alive" "the broker (or an agent) died during the run"
    fi
}

compile_java() {
    local client="$1" dir="$2" want log="$COMPAT_RUN_DIR/$1-javac.log"
    local lib="${COMPILE_JAVA_LIB:-$STREAMHOUSE_CACHE/java/lib}"
    shift 2
    want="$(cat "$@" "$lib.stamp" 2>/dev/null | sha256sum | cut -d' ' -f1)"
    [[ "$(cat "$dir.stamp" 2>/dev/null)" == "$want" ]] && return 0
    rm -rf "$dir"
    mkdir -p "$dir"
    if ! javac -encoding UTF-8 -d "$dir" -cp "$lib/*" "$@" >"$log" 2>&1; then
        record FAIL "$client/setup" "javac failed: $(head -c 600 "$log")"
        return 1
    fi
    echo "$want" >"$dir.stamp"
}
