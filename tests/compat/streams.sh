#!/usr/bin/env bash
# Kafka Streams 4.4.0 (tests/compat/streams/StreamsCompat.java: counts per key,
# regrouped through a repartition topic into a persistent RocksDB store with
# a compacted changelog; at-least-once but in eos) against a fresh StreamHouse broker, on
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
#   eos       the same app with processing.guarantee=exactly_once_v2 (commits
#             every 100 ms) on 2-partition topics, 5,000 records over 50 keys
#             in three batches. The first 2,000 are produced 400 a second
#             once the app runs; once it has read 40% of them (its PROGRESS
#             lines) it is SIGKILLed and restarted on the same state dir (the
#             detail gives how many counts were committed then). The next
#             2,000 likewise; once the app has read 40% of those, the broker
#             is SIGKILLed and, 2 s later, restarted with the same arguments,
#             data dir and port; the producer and the app go on by themselves
#             (were the app to exit, it is restarted once and the detail says
#             so): 80 each at read_committed. A clean stop (SIGTERM), 1,000
#             more, a restart: 100 each. Then the input is 5,000 distinct
#             records, and the whole output read at read_committed has each
#             key's updates exactly 1, 2, ..., 100 in order: no count
#             duplicated, lost or out of order across the kills and aborted
#             transactions (the detail gives how many records read_uncommitted
#             sees). The broker gets --transaction-abort-check-interval-ms
#             1000 when it has it.
#
# STREAMS_SCENARIOS picks scenarios (default "restore bounded eos"; bounded
# needs restore's app).
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
EOS_PARTITIONS=2
EOS_BATCHES=(2000 2000 1000)
# Input records a second while the app runs, and how often it logs its progress.
EOS_RATE=400
EOS_PROGRESS=25
# The bound on waiting for the app to read 40% of a batch, when it is killed.
EOS_PROGRESS_TIMEOUT_S=60
# The broker's downtime between its SIGKILL and its restart.
EOS_BROKER_DOWN_S=2
: "${STREAMS_SCENARIOS:=restore bounded eos}"

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
trap 'app_kill; bg_kill; broker_cleanup' EXIT

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
# Transactions left open by a SIGKILLed app are aborted within a second of
# their timeout (Kafka looks every 10 s).
TXN_ARGS=()
if [[ "${COMPAT_REFERENCE:-0}" != 1 ]] &&
    "$STREAMHOUSE_BIN" --help 2>/dev/null | grep -q -- '--transaction-abort-check-interval-ms'; then
    TXN_ARGS=(--transaction-abort-check-interval-ms 1000)
fi

sc() {   # sc MODE ARGS...: a StreamsCompat call with a bound on its time
    timeout 120 java -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$CLASSES:$SLIB/*" StreamsCompat "$1" "$BROKER_BOOTSTRAP" "${@:2}"
}

# APP_ARGS: the app's optional arguments (processing guarantee, delay).
APP_ARGS=()
app_start() {
    echo "=== app start at $(date +%T)" >>"$ALOG"
    java -Xmx384m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$CLASSES:$SLIB/*" \
        StreamsCompat app "$BROKER_BOOTSTRAP" "$APP_ID" "$INPUT" "$OUTPUT" "$STATE_DIR" \
        ${APP_ARGS[@]+"${APP_ARGS[@]}"} >>"$ALOG" 2>&1 </dev/null &
    APP_PID=$!
}

# The lines of the log since the app's last start.
since_start() { awk '/^=== app start/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$ALOG"; }

# wait_counts EACH: every one of the KEYS keys' last count in OUTPUT (read
# with COUNTS_ISOLATION) is EACH within COUNT_TIMEOUT_S; then, two seconds
# later, still (nothing counted twice).
COUNTS_ISOLATION=read_uncommitted
wait_counts() {
    local each="$1" deadline=$((SECONDS + COUNT_TIMEOUT_S)) want
    want="$(for ((k = 0; k < KEYS; k++)); do echo "k-$k $each"; done | sort)"
    while ((SECONDS < deadline)); do
        kill -0 "$APP_PID" 2>/dev/null ||
            { REASON="the app exited: $(grep -m3 -E 'UNCAUGHT|ERROR|Exception' "$ALOG" | tr '\n' ' ' | cut -c1-600)"; return 1; }
        sc counts "$OUTPUT" "$COUNTS_ISOLATION" >"$T_DIR/counts.out" 2>"$T_DIR/counts.err"
        [[ "$(cat "$T_DIR/counts.out")" == "$want" ]] && break
        sleep 1
    done
    sleep 2
    sc counts "$OUTPUT" "$COUNTS_ISOLATION" >"$T_DIR/counts.out" 2>"$T_DIR/counts.err"
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

# The records counted so far: the sum of the last counts of OUTPUT's keys, read
# at read_committed.
committed_sum() {
    sc counts "$OUTPUT" read_committed 2>>"$T_DIR/counts.err" | awk '{ n += $2 } END { print n + 0 }'
}

# wait_read FROM: waits (EOS_PROGRESS_TIMEOUT_S at most) until the app has
# read, since its start, an input record r-I with I >= FROM (its PROGRESS
# lines, every EOS_PROGRESSth record; polled every 0.2 s); sets MID to I.
# Status 1 if the app exits first.
wait_read() {
    local from="$1" deadline=$((SECONDS + EOS_PROGRESS_TIMEOUT_S))
    MID=-1
    while ((SECONDS < deadline)); do
        kill -0 "$APP_PID" 2>/dev/null ||
            { REASON="the app exited: $(since_start | grep -m3 -E 'UNCAUGHT|ERROR|Exception' | tr '\n' ' ' | cut -c1-600)"; return 1; }
        MID="$(since_start | awk '$1 == "PROGRESS" { i = substr($3, 3) + 0; if (i > m) m = i } END { print m + 0 }')"
        ((MID >= from)) && return 0
        sleep 0.2
    done
    REASON="the app did not read record r-$from within ${EOS_PROGRESS_TIMEOUT_S}s (read up to r-$MID)"
    return 1
}

# wait_running: the app's state is RUNNING (its first assignment done),
# within EOS_PROGRESS_TIMEOUT_S.
wait_running() {
    local deadline=$((SECONDS + EOS_PROGRESS_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        since_start | grep -q -- '-> RUNNING$' && return 0
        kill -0 "$APP_PID" 2>/dev/null || break
        sleep 0.2
    done
    REASON="the app was not RUNNING within ${EOS_PROGRESS_TIMEOUT_S}s: $(since_start | grep -E '^STATE|UNCAUGHT' | tail -n 3 | tr '\n' ' ')"
    return 1
}

# Input records FROM..FROM+COUNT-1, EOS_RATE a second, in the background
# (BG_PID); bg_wait waits for them to be acknowledged.
BG_PID=""
bg_produce() {   # bg_produce FROM COUNT
    BG_ERR="$T_DIR/produce-$1.err"
    sc produce "$INPUT" "$1" "$2" "$KEYS" "$EOS_RATE" >/dev/null 2>"$BG_ERR" &
    BG_PID=$!
}
bg_wait() {
    wait "$BG_PID"
    local rc=$?
    BG_PID=""
    ((rc == 0)) || { REASON="producing the input (status $rc): $(grep -v '^\s*at ' "$BG_ERR" | tail -n 3 | tr '\n' ' ' | cut -c1-400)"; return 1; }
}
bg_kill() {
    if [[ -n "$BG_PID" ]]; then
        kill -KILL "$BG_PID" 2>/dev/null
        wait "$BG_PID" 2>/dev/null
        BG_PID=""
    fi
}

scenario_eos() {
    T_DIR="$W/eos"
    mkdir -p "$T_DIR"
    APP_ID="$(unique streams-eos)"
    INPUT="$APP_ID-in"
    OUTPUT="$APP_ID-out"
    STATE_DIR="$T_DIR/state"
    ALOG="$T_DIR/app.log"
    APP_ARGS=(exactly_once_v2 "$EOS_PROGRESS")
    COUNTS_ISOLATION=read_committed
    local b1="${EOS_BATCHES[0]}" b2="${EOS_BATCHES[1]}" b3="${EOS_BATCHES[2]}" notes="" t counted
    local total=$((b1 + b2 + b3))
    sc create "$EOS_PARTITIONS" "$INPUT" "$OUTPUT" >/dev/null 2>"$T_DIR/create.err" ||
        { REASON="creating the topics: $(tail -n 3 "$T_DIR/create.err" | tr '\n' ' ')"; return 1; }

    # 1. The app SIGKILLed mid-run, while the input comes; restarted on its
    # state dir. (Input that waits for the app is a backlog, which Streams
    # reads through before it counts what it regrouped: not mid-run.)
    app_start
    wait_running || { REASON="first run: $REASON"; return 1; }
    bg_produce 0 "$b1"
    t=$SECONDS
    wait_read $((b1 * 2 / 5)) || { REASON="first run: $REASON"; return 1; }
    app_kill
    echo "=== app SIGKILLed at $(date +%T)" >>"$ALOG"
    notes="app SIGKILLed $((SECONDS - t)) s into the first $b1 records, having read r-$MID"
    counted="$(committed_sum)"
    notes+=" and committed $counted counts"
    app_start
    bg_wait || return 1

    # 2. More input while it runs; the broker SIGKILLed mid-run and restarted
    # on its data dir and port.
    bg_produce "$b1" "$b2"
    t=$SECONDS
    wait_read $((b1 + b2 * 2 / 5)) || { REASON="after the app's SIGKILL: $REASON"; return 1; }
    broker_kill9
    echo "=== broker SIGKILLed at $(date +%T)" >>"$ALOG"
    notes+="; broker SIGKILLed $((SECONDS - t)) s into the next $b2, the app having read r-$MID"
    sleep "$EOS_BROKER_DOWN_S"
    if ! broker_launch 2>"$T_DIR/broker-launch.err"; then
        REASON="the broker did not restart after its SIGKILL: $(head -n 2 "$T_DIR/broker-launch.err" | tr '\n' ' ')"
        return 1
    fi
    echo "=== broker restarted at $(date +%T)" >>"$ALOG"
    t=$SECONDS
    bg_wait || { REASON="across the broker's restart: $REASON"; return 1; }
    if ! wait_counts $(((b1 + b2) / KEYS)); then
        kill -0 "$APP_PID" 2>/dev/null && { REASON="after the broker's restart: $REASON"; return 1; }
        # The app gave up while the broker was away: a second chance.
        notes+=", the app exited after the broker's restart ($REASON) and was restarted"
        app_kill
        app_start
        wait_counts $(((b1 + b2) / KEYS)) || { REASON="after the broker's restart and the app's: $REASON"; return 1; }
    fi
    notes+=", $((b1 + b2)) counted exactly $((SECONDS - t)) s after its restart"

    # 3. A clean stop and restart.
    app_stop || { REASON="the app did not close cleanly on SIGTERM: $(since_start | tail -n 3 | tr '\n' ' ')"; return 1; }
    sc produce "$INPUT" $((b1 + b2)) "$b3" "$KEYS" >/dev/null 2>"$T_DIR/produce.err" ||
        { REASON="producing: $(tail -n 3 "$T_DIR/produce.err" | tr '\n' ' ')"; return 1; }
    app_start
    wait_counts $((total / KEYS)) || { REASON="after a clean restart: $REASON"; return 1; }
    app_stop || { REASON="the app did not close cleanly on SIGTERM: $(since_start | tail -n 3 | tr '\n' ' ')"; return 1; }

    # The input as produced, once: what the counts are measured against.
    local input
    input="$(sc scan "$INPUT" 2>"$T_DIR/scan.err" | tail -n 1)"
    if [[ "$input" != "records=$total keys=$total "* ]]; then
        REASON="input $INPUT is not $total distinct records: $input $(tail -n 2 "$T_DIR/scan.err" | tr '\n' ' ' | cut -c1-300); $notes"
        return 1
    fi
    # Every update of every key, once, in order.
    sc history "$OUTPUT" read_committed >"$T_DIR/history.out" 2>"$T_DIR/history.err" ||
        { REASON="reading $OUTPUT at read_committed: $(tail -n 3 "$T_DIR/history.err" | tr '\n' ' ')"; return 1; }
    local bad records
    records="$(wc -l <"$T_DIR/history.out")"
    bad="$(awk -v keys="$KEYS" -v each=$((total / KEYS)) '
        { if ($2 != last[$1] + 1 && n++ < 5) printf "%s: %s after %s; ", $1, $2, last[$1] + 0; last[$1] = $2 }
        END {
            for (k in last) { seen++; if (last[k] != each && n++ < 5) printf "%s ends at %s, not %s; ", k, last[k], each }
            if (seen != keys) printf "%d keys, not %d; ", seen, keys
        }' "$T_DIR/history.out")"
    if [[ -n "$bad" ]]; then
        REASON="$OUTPUT at read_committed is not 1, 2, ..., $((total / KEYS)) for each key ($records records): $bad$notes"
        return 1
    fi
    local uncommitted
    uncommitted="$(sc scan "$OUTPUT" read_uncommitted 2>"$T_DIR/scan.err" | sed -n 's/^records=\([0-9]*\) .*/\1/p')"
    DETAIL="$notes; a clean restart, $b3 more; $OUTPUT at read_committed: 1..$((total / KEYS)) once each for $KEYS keys ($records records; read_uncommitted ${uncommitted:-?}, the rest aborted)"
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
    local s
    for s in $STREAMS_SCENARIOS; do
        # Only bounded goes on with the app before it.
        [[ "$s" == bounded ]] || app_stop || app_kill
        run_scenario "$s" "scenario_$s"
        bg_kill
    done
    app_stop || app_kill
}

COMPAT_BACKENDS="${STREAMS_BACKENDS:-$COMPAT_BACKENDS}"
on_each_backend streams run_backend --group-initial-rebalance-delay-ms 0 ${CLEANER_ARGS[@]+"${CLEANER_ARGS[@]}"} \
    ${TXN_ARGS[@]+"${TXN_ARGS[@]}"}
exit "$COMPAT_FAILED"
