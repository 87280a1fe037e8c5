#!/usr/bin/env bash
# Kafka Streams 4.4.0 (tests/compat/streams/StreamsCompat.java: counts per key,
# regrouped through a repartition topic into a persistent RocksDB store with
# a compacted changelog, at-least-once) against a fresh StreamHouse broker, on
# each backend pair in COMPAT_BACKENDS (STREAMS_BACKENDS overrides it for this
# runner only):
#
#   restore   3,000 records over 50 keys counted exactly (60 each); the
#             changelog and repartition topics carry the configs Streams
#             asks for (compact; delete with retention.ms=-1); the app is
#             stopped (SIGTERM, a clean close), its state dir wiped, 2,000
#             more records produced; the restarted app restores "counts" from
#             the changelog (its restore listener logs it) and the counts are
#             exactly 100 each: a clean stop under at-least-once counts
#             nothing twice
#   bounded   the changelog, 5,001 updates of 50 keys, read from its start
#             holds one record per key plus at most two (the last
#             record, which the cleaner keeps) once the log cleaner ran
#             (needs the log cleaner: the agents' --log-cleaner-interval-ms
#             is set to 1 s when the broker has it)
#
# Needs the jars that scripts/test.sh puts in $STREAMHOUSE_CACHE/java/streams-lib
# (streams/pom.xml).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SLIB="$STREAMHOUSE_CACHE/java/streams-lib"
CLASSES="$STREAMHOUSE_CACHE/java/streams-classes"
KEYS=50
FIRST=3000
MORE=2000
COUNT_TIMEOUT_S=120
BOUNDED_TIMEOUT_S=45

APP_PID=""
app_kill() {
    if [[ -n "$APP_PID" ]]; then
        kill -KILL "$APP_PID" 2>/dev/null
        wait "$APP_PID" 2>/dev/null
        APP_PID=""
    fi
}
# SIGTERM: the app's shutdown hook closes Streams, which flushes the store and
# its changelog, then commits the input offsets.
app_stop() {
    [[ -n "$APP_PID" ]] || return 0
    kill -TERM "$APP_PID" 2>/dev/null
    local i
    for ((i = 0; i < 400; i++)); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$APP_PID" 2>/dev/null; then
        echo "the Streams app did not stop within 40 s of SIGTERM; killed" >&2
        app_kill
        return 1
    fi
    wait "$APP_PID" 2>/dev/null
    APP_PID=""
    grep -q '^CLOSED true' "$ALOG"
}
trap 'app_kill; broker_cleanup' EXIT

if ! ls "$SLIB"/kafka-streams-*.jar >/dev/null 2>&1; then
    record FAIL "streams/setup" "kafka-streams jar missing in $SLIB; run ./scripts/test.sh --setup-only"
    exit 1
fi
COMPILE_JAVA_LIB="$SLIB" compile_java streams "$CLASSES" "$COMPAT_DIR/streams/StreamsCompat.java" || exit 1

# The broker's log cleaner, if it has one, looks every second instead of 15 s.
# (Not asked of the reference script, which would start Kafka for --help.)
CLEANER_ARGS=()
if [[ "${COMPAT_REFERENCE:-0}" != 1 ]] &&
    "$STREAMHOUSE_BIN" --help 2>/dev/null | grep -q -- '--log-cleaner-interval-ms'; then
    CLEANER_ARGS=(--log-cleaner-interval-ms 1000)
fi

sc() {   # sc MODE ARGS...: a StreamsCompat call with a bound on its time
    timeout 120 java -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$CLASSES:$SLIB/*" StreamsCompat "$1" "$BROKER_BOOTSTRAP" "${@:2}"
}

app_start() {
    echo "=== app start at $(date +%T)" >>"$ALOG"
    java -Xmx384m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$CLASSES:$SLIB/*" \
        StreamsCompat app "$BROKER_BOOTSTRAP" "$APP_ID" "$INPUT" "$OUTPUT" "$STATE_DIR" >>"$ALOG" 2>&1 </dev/null &
    APP_PID=$!
}

# The lines of the log since the app's last start.
since_start() { awk '/^=== app start/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$ALOG"; }

# wait_counts EACH: every one of the KEYS keys' last count in OUTPUT is EACH
# within COUNT_TIMEOUT_S; then, two seconds later, still (nothing counted twice).
wait_counts() {
    local each="$1" deadline=$((SECONDS + COUNT_TIMEOUT_S)) want
    want="$(for ((k = 0; k < KEYS; k++)); do echo "k-$k $each"; done | sort)"
    while ((SECONDS < deadline)); do
        kill -0 "$APP_PID" 2>/dev/null ||
            { REASON="the app exited: $(grep -m3 -E 'UNCAUGHT|ERROR|Exception' "$ALOG" | tr '\n' ' ' | cut -c1-600)"; return 1; }
        sc counts "$OUTPUT" >"$T_DIR/counts.out" 2>"$T_DIR/counts.err"
        [[ "$(cat "$T_DIR/counts.out")" == "$want" ]] && break
        sleep 1
    done
    sleep 2
    sc counts "$OUTPUT" >"$T_DIR/counts.out" 2>"$T_DIR/counts.err"
    if [[ "$(cat "$T_DIR/counts.out")" != "$want" ]]; then
        REASON="counts in $OUTPUT are not $each for each of $KEYS keys (within ${COUNT_TIMEOUT_S}s): $(diff <(echo "$want") "$T_DIR/counts.out" | grep '^[<>]' | head -n 6 | tr '\n' ' ') $(tail -n 2 "$T_DIR/counts.err" | tr '\n' ' ' | cut -c1-300)"
        return 1
    fi
}

scenario_restore() {
    T_DIR="$W/restore"
    mkdir -p "$T_DIR"
    APP_ID="$(unique streams-app)"
    INPUT="$APP_ID-in"
    OUTPUT="$APP_ID-out"
    STATE_DIR="$T_DIR/state"
    ALOG="$T_DIR/app.log"
    CHANGELOG="$APP_ID-counts-changelog"
    REPARTITION="$APP_ID-by-name-repartition"
    sc create 1 "$INPUT" "$OUTPUT" >/dev/null 2>"$T_DIR/create.err" ||
        { REASON="creating the topics: $(tail -n 3 "$T_DIR/create.err" | tr '\n' ' ')"; return 1; }
    sc produce "$INPUT" 0 "$FIRST" "$KEYS" >/dev/null 2>"$T_DIR/produce.err" ||
        { REASON="producing: $(tail -n 3 "$T_DIR/produce.err" | tr '\n' ' ')"; return 1; }
    app_start
    wait_counts $((FIRST / KEYS)) || return 1

    # The internal topics, as Streams created them and the broker reports them.
    sc configs "$CHANGELOG" >"$T_DIR/changelog.configs" 2>&1
    grep -qx 'cleanup.policy=compact' "$T_DIR/changelog.configs" ||
        { REASON="changelog $CHANGELOG is not cleanup.policy=compact: $(tr '\n' ' ' <"$T_DIR/changelog.configs" | cut -c1-400)"; return 1; }
    sc configs "$REPARTITION" >"$T_DIR/repartition.configs" 2>&1
    grep -qx 'cleanup.policy=delete' "$T_DIR/repartition.configs" && grep -qx 'retention.ms=-1' "$T_DIR/repartition.configs" ||
        { REASON="repartition topic $REPARTITION lacks cleanup.policy=delete, retention.ms=-1: $(tr '\n' ' ' <"$T_DIR/repartition.configs" | cut -c1-400)"; return 1; }

    app_stop || { REASON="the app did not close cleanly on SIGTERM: $(tail -n 3 "$ALOG" | tr '\n' ' ')"; return 1; }
    rm -rf "$STATE_DIR"
    sc produce "$INPUT" "$FIRST" "$MORE" "$KEYS" >/dev/null 2>"$T_DIR/produce.err" ||
        { REASON="producing: $(tail -n 3 "$T_DIR/produce.err" | tr '\n' ' ')"; return 1; }
    app_start
    wait_counts $(((FIRST + MORE) / KEYS)) || { REASON="after the restart: $REASON"; return 1; }

    # The store came back from the changelog, not from nothing.
    local restored
    restored="$(since_start | awk -v t="$CHANGELOG-0" '$1 == "RESTORE-END" && $2 == t && $3 == "counts" { n += $4 } END { print n + 0 }')"
    if ((restored < KEYS)); then
        REASON="no restore of store counts from $CHANGELOG-0 logged after the restart (restored $restored records): $(since_start | grep RESTORE | head -n 3 | tr '\n' ' ')"
        return 1
    fi
    DETAIL="$FIRST records over $KEYS keys counted, internal topics' configs as asked, state wiped, $restored changelog records restored, $MORE more counted exactly"
}

# Runs after restore, with its app still running: 5,000 updates of 50 keys
# in the changelog.
scenario_bounded() {
    [[ -n "$APP_PID" ]] || { REASON="needs the app of the restore scenario"; return 1; }
    # One more record after the burst: new writes make the partition worth a
    # look again, and the log cleaner keeps each partition's last record.
    sc produce "$INPUT" $((FIRST + MORE)) 1 "$KEYS" >/dev/null 2>"$T_DIR/produce.err" ||
        { REASON="producing: $(tail -n 3 "$T_DIR/produce.err" | tr '\n' ' ')"; return 1; }
    sleep 2
    local before after="" deadline=$((SECONDS + BOUNDED_TIMEOUT_S)) records bound=$((KEYS + 2))
    before="$(sc scan "$CHANGELOG" 2>&1 | tail -n 1)"
    while ((SECONDS < deadline)); do
        after="$(sc scan "$CHANGELOG" 2>&1 | tail -n 1)"
        records="$(sed -n 's/^records=\([0-9]*\) .*/\1/p' <<<"$after")"
        [[ -n "$records" ]] && ((records <= bound)) && break
        sleep 3
    done
    if [[ -z "$records" ]] || ((records > bound)); then
        REASON="changelog $CHANGELOG from its start: $after after ${BOUNDED_TIMEOUT_S}s (at first $before), want at most $bound records; ${CLEANER_ARGS[*]:-the broker has no --log-cleaner-interval-ms (no log cleaner)}"
        return 1
    fi
    DETAIL="changelog from its start: $before, then $after"
}

run_scenario() {   # run_scenario NAME FUNCTION
    REASON=""
    DETAIL=""
    local t0=$SECONDS
    if "$2"; then
        record PASS "streams/$backend/$1" "$DETAIL ($((SECONDS - t0)) s)"
    else
        record FAIL "streams/$backend/$1" "$REASON ($((SECONDS - t0)) s)"
        echo "--- $ALOG (tail) ---"; tail -n 15 "$ALOG"
        broker_log_tail 25
    fi
}

run_backend() {
    backend="$1"
    W="$BROKER_DIR/streams"
    ALOG="$W/app.log"
    APP_PID=""
    mkdir -p "$W"
    run_scenario restore scenario_restore
    run_scenario bounded scenario_bounded
    app_stop || app_kill
}

COMPAT_BACKENDS="${STREAMS_BACKENDS:-$COMPAT_BACKENDS}"
on_each_backend streams run_backend --group-initial-rebalance-delay-ms 0 ${CLEANER_ARGS[@]+"${CLEANER_ARGS[@]}"}
exit "$COMPAT_FAILED"
