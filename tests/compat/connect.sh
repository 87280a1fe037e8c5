#!/usr/bin/env bash
# Kafka Connect 4.4.0 (connect-runtime; FileStream connectors from connect-file)
# against a fresh StreamHouse broker, on each backend pair in
# COMPAT_BACKENDS (CONNECT_BACKENDS overrides it for this runner only;
# CONNECT_SCENARIOS, default all three, names the scenarios to run):
#
#   standalone    ConnectStandalone: FileStreamSource -> topic -> FileStreamSink
#                 copies a 10,000-line file exactly
#   distributed   ConnectDistributed, one worker, REST on a free port,
#                 connectors created by POSTing JSON: its internal topics are
#                 compacted (ConfigCommand shows cleanup.policy=compact), the
#                 file is copied exactly; after a worker restart and 500 more
#                 lines the copy is still exact (nothing copied twice)
#   bounded       the same worker setup with offset.flush.interval.ms=100 while
#                 a writer appends 100 lines a second: the worker restarted
#                 (SIGTERM) in the middle of it, the source paused and resumed
#                 5 times, then 20 s more (about one offset commit a second:
#                 FileStreamSource waits 1 s when it finds no line): the copy
#                 is exact (no line twice, none lost), then the config,
#                 offsets and status topics read from their start hold one
#                 record per key plus at most two per partition (the
#                 last record, which the cleaner keeps) once the log cleaner
#                 ran (needs the log cleaner: the broker's
#                 --log-cleaner-interval-ms is set to 1 s when it has it)
#
# The worker and connector configs are templates in connect/. Needs the jars
# that scripts/test.sh puts in $STREAMHOUSE_CACHE/java/lib (connect-file among
# them, see java/pom.xml; connect/AppInfoParser.java says why 4.3.1's).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LIB="$STREAMHOUSE_CACHE/java/lib"
TEMPLATES="$COMPAT_DIR/connect"
LINES=10000
MORE_LINES=500
COPY_TIMEOUT_S=120
WORKER_READY_TIMEOUT_S=90
WRITE_S=20
LINES_PER_TICK=20
PAUSES=5
BOUNDED_TIMEOUT_S=45

# The broker's log cleaner, if it has one, looks every second instead of 15 s.
# (Not asked of the reference script, which would start Kafka for --help.)
CLEANER_ARGS=()
if [[ "${COMPAT_REFERENCE:-0}" != 1 ]] &&
    "$STREAMHOUSE_BIN" --help 2>/dev/null | grep -q -- '--log-cleaner-interval-ms'; then
    CLEANER_ARGS=(--log-cleaner-interval-ms 1000)
fi

WORKER_PID=""
worker_kill() {
    if [[ -n "$WORKER_PID" ]]; then
        kill -KILL "$WORKER_PID" 2>/dev/null
        wait "$WORKER_PID" 2>/dev/null
        WORKER_PID=""
    fi
}
# SIGTERM: Connect stops its tasks, commits their offsets and leaves the group.
worker_stop() {
    [[ -n "$WORKER_PID" ]] || return 0
    kill -TERM "$WORKER_PID" 2>/dev/null
    local i
    for ((i = 0; i < 300; i++)); do kill -0 "$WORKER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$WORKER_PID" 2>/dev/null; then
        echo "connect worker did not stop within 30 s of SIGTERM; killed" >&2
        worker_kill
        return 1
    fi
    wait "$WORKER_PID" 2>/dev/null
    WORKER_PID=""
}
WRITER_PID=""
writer_stop() {
    if [[ -n "$WRITER_PID" ]]; then
        kill "$WRITER_PID" 2>/dev/null
        wait "$WRITER_PID" 2>/dev/null
        WRITER_PID=""
    fi
}
trap 'writer_stop; worker_kill; broker_cleanup' EXIT

if ! ls "$LIB"/connect-runtime-*.jar "$LIB"/connect-file-*.jar >/dev/null 2>&1; then
    record FAIL "connect/setup" "connect-runtime or connect-file jar missing in $LIB; run ./scripts/test.sh --setup-only"
    exit 1
fi

# connect/AppInfoParser.java (see there why) is compiled when it or the jars changed.
SHIM_CLASSES="$STREAMHOUSE_CACHE/java/connect-classes"
compile_java connect "$SHIM_CLASSES" "$TEMPLATES/AppInfoParser.java" "$TEMPLATES/TopicScan.java" || exit 1

# fill TEMPLATE OUT: the template without comments, @NAME@ replaced by $T_NAME.
fill() {
    local line
    while IFS= read -r line; do
        [[ "$line" == "#"* ]] && continue
        while [[ "$line" =~ @([A-Z_]+)@ ]]; do
            local var="T_${BASH_REMATCH[1]}"
            line="${line//@${BASH_REMATCH[1]}@/${!var}}"
        done
        printf '%s\n' "$line"
    done <"$1" >"$2"
}

tail_of() { tail -n "${2:-6}" "$1" 2>/dev/null | tr '\n' ' ' | cut -c1-700; }

# The lines of the source file: numbered, so a duplicate or a gap shows.
write_lines() {   # write_lines FILE FROM TO
    seq -f "line %06g of the StreamHouse connect test, some padding to make it longer" "$2" "$3" >>"$1"
}

lines_of() { if [[ -f "$1" ]]; then wc -l <"$1"; else echo 0; fi; }

# wait_copy WANT: the sink file reaches WANT lines within COPY_TIMEOUT_S; then
# two more seconds for anything extra to show up.
wait_copy() {
    local want="$1" deadline=$((SECONDS + COPY_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        (($(lines_of "$T_OUT") >= want)) && break
        kill -0 "$WORKER_PID" 2>/dev/null || { REASON="the worker exited: $(grep -m3 -E 'ERROR|Exception' "$WLOG" | tr '\n' ' ' | cut -c1-600)"; return 1; }
        sleep 0.5
    done
    sleep 2
    local got
    got="$(lines_of "$T_OUT")"
    if ((got != want)); then
        REASON="sink file has $got lines, want $want (within ${COPY_TIMEOUT_S}s); worker errors: $(grep -m3 -E 'ERROR' "$WLOG" | tr '\n' ' ' | cut -c1-500)"
        return 1
    fi
    if ! cmp -s "$T_IN" "$T_OUT"; then
        REASON="sink file differs from the source: $(diff "$T_IN" "$T_OUT" | head -n 4 | tr '\n' ' ')"
        return 1
    fi
}

# connect_java LOG CLASS ARGS...: a Connect worker in the background.
connect_java() {
    local log="$1"
    shift
    java -Xmx512m -Dorg.slf4j.simpleLogger.defaultLogLevel=info -Dorg.slf4j.simpleLogger.showDateTime=true \
        -cp "$SHIM_CLASSES:$LIB/*" "$@" >>"$log" 2>&1 </dev/null &
    WORKER_PID=$!
}

# shellcheck disable=SC2034  # the T_ variables are read by fill
setup_names() {   # setup_names KIND
    T_BOOTSTRAP="$BROKER_BOOTSTRAP"
    T_DIR="$W/$1"
    mkdir -p "$T_DIR"
    T_PREFIX="$(unique "connect-$1")"
    T_TOPIC="$T_PREFIX-lines"
    T_IN="$T_DIR/in.txt"
    T_OUT="$T_DIR/out.txt"
    T_REST_PORT="$(free_port)"
    T_FLUSH_MS=1000
    WLOG="$T_DIR/worker.log"
    : >"$T_IN"
    write_lines "$T_IN" 1 "$LINES"
}

# ---- standalone ------------------------------------------------------------

scenario_standalone() {
    setup_names standalone
    fill "$TEMPLATES/worker-standalone.properties" "$T_DIR/worker.properties"
    fill "$TEMPLATES/file-source.properties" "$T_DIR/source.properties"
    fill "$TEMPLATES/file-sink.properties" "$T_DIR/sink.properties"
    connect_java "$WLOG" org.apache.kafka.connect.cli.ConnectStandalone \
        "$T_DIR/worker.properties" "$T_DIR/source.properties" "$T_DIR/sink.properties"
    wait_copy "$LINES" || return 1
    worker_stop || { REASON="the worker did not stop on SIGTERM"; return 1; }
    DETAIL="$LINES lines copied exactly through $T_TOPIC"
}

# ---- distributed -----------------------------------------------------------

rest() {   # rest METHOD PATH [JSON]: curl against the worker, body on stdout
    local -a data=()
    [[ $# -gt 2 ]] && data=(-H 'Content-Type: application/json' --data "$3")
    curl -sS --max-time 30 -X "$1" "${data[@]}" "http://127.0.0.1:$T_REST_PORT$2"
}
# connector_json PROPERTIES: {"name": ..., "config": {...}} for POST /connectors.
connector_json() {
    python3 - "$1" <<'EOF'
import json, sys
config = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line and not line.startswith("#"):
        k, v = line.split("=", 1)
        config[k] = v
print(json.dumps({"name": config["name"], "config": config}))
EOF
}
worker_up() { rest GET / 2>/dev/null | grep -q '"version"'; }
running() {   # running NAME: the connector and its task are RUNNING
    rest GET "/connectors/$1/status" 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
ok = s["connector"]["state"] == "RUNNING" and s["tasks"] and all(t["state"] == "RUNNING" for t in s["tasks"])
sys.exit(0 if ok else 1)' 2>/dev/null
}
wait_for() {   # wait_for SECONDS CMD...
    local deadline=$((SECONDS + $1))
    shift
    while ((SECONDS < deadline)); do
        "$@" && return 0
        kill -0 "$WORKER_PID" 2>/dev/null || return 1
        sleep 0.5
    done
    "$@"
}

start_distributed() {
    echo "=== worker start at $(date +%T)" >>"$WLOG"
    connect_java "$WLOG" org.apache.kafka.connect.cli.ConnectDistributed "$T_DIR/worker.properties"
    wait_for "$WORKER_READY_TIMEOUT_S" worker_up ||
        { REASON="the worker's REST API did not come up in ${WORKER_READY_TIMEOUT_S}s: $(grep -m4 -E 'ERROR|Exception' "$WLOG" | tr '\n' ' ' | cut -c1-700)"; return 1; }
}

scenario_distributed() {
    setup_names distributed
    fill "$TEMPLATES/worker-distributed.properties" "$T_DIR/worker.properties"
    fill "$TEMPLATES/file-source.properties" "$T_DIR/source.properties"
    fill "$TEMPLATES/file-sink.properties" "$T_DIR/sink.properties"
    start_distributed || return 1
    local kind
    for kind in source sink; do
        rest POST /connectors "$(connector_json "$T_DIR/$kind.properties")" >"$T_DIR/post-$kind.json" 2>&1 ||
            { REASON="POST /connectors ($kind): $(cat "$T_DIR/post-$kind.json")"; return 1; }
        grep -q '"name"' "$T_DIR/post-$kind.json" ||
            { REASON="POST /connectors ($kind) answered: $(head -c 400 "$T_DIR/post-$kind.json")"; return 1; }
    done
    for kind in source sink; do
        wait_for 60 running "$T_PREFIX-$kind" ||
            { REASON="connector $T_PREFIX-$kind not RUNNING: $(rest GET "/connectors/$T_PREFIX-$kind/status" 2>&1 | head -c 600)"; return 1; }
    done

    # The internal topics, as the broker reports them.
    local topic
    for topic in "$T_PREFIX-configs" "$T_PREFIX-offsets" "$T_PREFIX-status"; do
        timeout 120 java -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$LIB/*" \
            org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BROKER_BOOTSTRAP" --entity-type topics \
            --entity-name "$topic" --describe >"$T_DIR/configs-$topic.out" 2>&1
        grep -qE '^\s*cleanup\.policy=compact ' "$T_DIR/configs-$topic.out" ||
            { REASON="internal topic $topic is not cleanup.policy=compact: $(tail_of "$T_DIR/configs-$topic.out" 4)"; return 1; }
    done

    wait_copy "$LINES" || return 1

    # Restart: the source resumes after its committed file position, the
    # sink after its group's committed offset.
    worker_stop || { REASON="the worker did not stop on SIGTERM"; return 1; }
    write_lines "$T_IN" $((LINES + 1)) $((LINES + MORE_LINES))
    start_distributed || { REASON="after the restart: $REASON"; return 1; }
    wait_copy $((LINES + MORE_LINES)) || { REASON="after the restart: $REASON"; return 1; }
    worker_stop || { REASON="the worker did not stop on SIGTERM"; return 1; }
    DETAIL="internal topics compacted; $LINES lines copied exactly, restart, $MORE_LINES more copied once"
}

# ---- bounded ---------------------------------------------------------------

create_connectors() {
    local kind
    for kind in source sink; do
        rest POST /connectors "$(connector_json "$T_DIR/$kind.properties")" >"$T_DIR/post-$kind.json" 2>&1 ||
            { REASON="POST /connectors ($kind): $(cat "$T_DIR/post-$kind.json")"; return 1; }
        grep -q '"name"' "$T_DIR/post-$kind.json" ||
            { REASON="POST /connectors ($kind) answered: $(head -c 400 "$T_DIR/post-$kind.json")"; return 1; }
    done
    for kind in source sink; do
        wait_for 60 running "$T_PREFIX-$kind" ||
            { REASON="connector $T_PREFIX-$kind not RUNNING: $(rest GET "/connectors/$T_PREFIX-$kind/status" 2>&1 | head -c 600)"; return 1; }
    done
}

# scan TOPIC: TOPIC read from its start to its end offsets into scan-TOPIC.out,
# "PARTITION<tab>KEY" a line (connect/TopicScan.java); an empty file if it failed.
scan() {
    timeout 120 java -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$SHIM_CLASSES:$LIB/*" TopicScan "$BROKER_BOOTSTRAP" "$1" >"$T_DIR/scan-$1.out" 2>"$T_DIR/scan-$1.err" ||
        : >"$T_DIR/scan-$1.out"
}
scanned() { echo "$(wc -l <"$T_DIR/scan-$1.out") records, $(sort -u "$T_DIR/scan-$1.out" | wc -l) keys"; }

# bounded TOPIC PARTITIONS: the last scan of TOPIC has one record per key plus
# at most two per partition: the log cleaner keeps a partition's last record
# whatever it is (Kafka never cleans its active segment at all).
bounded() {
    local r k
    r="$(wc -l <"$T_DIR/scan-$1.out")"
    k="$(sort -u "$T_DIR/scan-$1.out" | wc -l)"
    SCANNED="$SCANNED ${1##*-}: $r records, $k keys;"
    ((r > 0 && r <= k + 2 * $2))
}

scenario_bounded() {
    setup_names bounded
    T_FLUSH_MS=100
    fill "$TEMPLATES/worker-distributed.properties" "$T_DIR/worker.properties"
    fill "$TEMPLATES/file-source.properties" "$T_DIR/source.properties"
    fill "$TEMPLATES/file-sink.properties" "$T_DIR/sink.properties"
    start_distributed || return 1
    create_connectors || return 1

    # The writer: LINES_PER_TICK lines every 0.2 s until the stop file shows.
    (
        i=0
        while [[ ! -f "$T_DIR/stop" ]]; do
            write_lines "$T_IN" $((LINES + i * LINES_PER_TICK + 1)) $((LINES + (i + 1) * LINES_PER_TICK))
            i=$((i + 1))
            sleep 0.2
        done
    ) &
    WRITER_PID=$!
    # The restart, in the middle of the writing; then pauses, then writing
    # on for WRITE_S seconds with an offset commit every 0.1 s.
    sleep 2
    worker_stop || { REASON="the worker did not stop on SIGTERM"; return 1; }
    start_distributed || { REASON="after the restart: $REASON"; return 1; }
    local i
    for ((i = 0; i < PAUSES; i++)); do
        rest PUT "/connectors/$T_PREFIX-source/pause" >/dev/null 2>&1
        sleep 0.5
        rest PUT "/connectors/$T_PREFIX-source/resume" >/dev/null 2>&1
        sleep 0.5
    done
    sleep "$WRITE_S"
    touch "$T_DIR/stop"
    wait "$WRITER_PID"
    WRITER_PID=""
    local total
    total="$(lines_of "$T_IN")"
    wait_copy "$total" || { REASON="after the restart: $REASON"; return 1; }
    local commits topic
    scan "$T_PREFIX-offsets"
    commits="$(scanned "$T_PREFIX-offsets")"

    # The internal topics, once the log cleaner ran.
    local deadline=$((SECONDS + BOUNDED_TIMEOUT_S))
    while :; do
        SCANNED=""
        # The three at once: a JVM each.
        local -a scans=()
        for topic in configs offsets status; do scan "$T_PREFIX-$topic" & scans+=($!); done
        wait "${scans[@]}"
        local ok=1
        bounded "$T_PREFIX-configs" 1 || ok=0
        bounded "$T_PREFIX-offsets" 5 || ok=0
        bounded "$T_PREFIX-status" 3 || ok=0
        ((ok)) && break
        if ((SECONDS >= deadline)); then
            REASON="the copy of $total lines across the restart was exact, but internal topics not bounded after ${BOUNDED_TIMEOUT_S}s (want at most 1 record per key + 2 per partition):$SCANNED offsets at first $commits; ${CLEANER_ARGS[*]:-the broker has no --log-cleaner-interval-ms (no log cleaner)}"
            return 1
        fi
        sleep 2
    done
    worker_stop || { REASON="the worker did not stop on SIGTERM"; return 1; }
    DETAIL="$total lines copied exactly across a restart and $PAUSES pauses; offsets at first $commits; then$SCANNED"
}

run_scenario() {   # run_scenario NAME FUNCTION
    REASON=""
    DETAIL=""
    local t0=$SECONDS
    if "$2"; then
        record PASS "connect/$backend/$1" "$DETAIL ($((SECONDS - t0)) s)"
    else
        record FAIL "connect/$backend/$1" "$REASON ($((SECONDS - t0)) s)"
        echo "--- $WLOG (errors) ---"; grep -E 'ERROR|WARN' "$WLOG" | tail -n 15
        broker_log_tail 25
    fi
    writer_stop
    worker_kill
}

run_backend() {
    backend="$1"
    W="$BROKER_DIR/connect"
    mkdir -p "$W"
    local name
    for name in $CONNECT_SCENARIOS; do run_scenario "$name" "scenario_$name"; done
}

COMPAT_BACKENDS="${CONNECT_BACKENDS:-$COMPAT_BACKENDS}"
: "${CONNECT_SCENARIOS:=standalone distributed bounded}"
on_each_backend connect run_backend --group-initial-rebalance-delay-ms 0 ${CLEANER_ARGS[@]+"${CLEANER_ARGS[@]}"}
exit "$COMPAT_FAILED"
