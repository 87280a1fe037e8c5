#!/usr/bin/env bash
# Consumer groups of the KIP-848 protocol (group.protocol=consumer:
# ConsumerGroupHeartbeat, ConsumerGroupDescribe, the broker's assignors,
# OffsetCommit/OffsetFetch with member epochs) with real clients, on each
# backend pair in COMPAT_BACKENDS: a fresh broker started with
# --group-initial-rebalance-delay-ms 0 and, when the broker has them,
# --group-consumer-session-timeout-ms $SESSION_MS and
# --group-consumer-heartbeat-interval-ms $HEARTBEAT_MS (Kafka's defaults are
# 45 s and 5 s, and its minimums too: against Kafka the scenarios take longer).
#
# Scenarios per backend (newgroups/NewGroups.java and newgroups/client.py
# describe their checks in full):
#   java/consumer-protocol  three Java consumers (kafka-clients 4.4.0, each a
#                           JVM of its own, the broker's default assignor) in
#                           one group on a 6-partition topic under an
#                           idempotent producer's 300 records/s; one is
#                           SIGKILLed, the others take its partitions once
#                           the broker drops it, it is started again: every
#                           acknowledged record consumed, no surviving member
#                           ever had all its partitions revoked (or lost any),
#                           describeConsumerGroups shows type CONSUMER, Stable,
#                           assignor uniform and three members covering the six
#                           partitions once, committed offsets at the end
#   tools/consumer-groups   kafka-consumer-groups against a live group of two
#                           members (group.remote.assignor=range) on 4
#                           partitions: --list, --list --type consumer,
#                           --describe (offsets, lag 0, the members),
#                           --describe --members --verbose (epochs and
#                           assignments, current = target), --describe --state
#                           --verbose (range, Stable, 2 members, group epoch =
#                           target assignment epoch)
#   python/consumer-protocol two confluent-kafka consumers (librdkafka 2.16,
#                           group.protocol=consumer) split a 4-partition topic,
#                           consume every record, committed offsets reach the
#                           high watermarks, describe_consumer_groups shows
#                           type CONSUMER, Stable
#   python/migration        the java/migration moves with confluent-kafka
#                           consumers (librdkafka's classic protocol, eager
#                           range/roundrobin, and its consumer protocol)
#   wire/offset-commit-epochs (newgroups/wire_epoch.py) ConsumerGroupHeartbeat
#                           v0 and OffsetCommit v9 by hand: a member that gave
#                           a partition up and moved to the next epoch commits
#                           the partition it kept at its previous epoch
#                           (NONE: Kafka 4.4 takes it, so a commitSync racing
#                           a rebalance does not fail), the one it gave up at
#                           that epoch and the kept one at a newer epoch
#                           (STALE_MEMBER_EPOCH), the kept one at its epoch
#   java/migration          (newgroups/Migration.java) a live group moved
#                           between the protocols one consumer at a time: two
#                           classic consumers, a consumer-protocol one joins
#                           (the group becomes type CONSUMER with classic
#                           members), the classic ones close, a classic one
#                           joins again, the consumer-protocol one closes (the
#                           group is CLASSIC and Stable again); every record of
#                           each step consumed, offsets committed to the end
#   java/coordinator-kill   (with --agents N only) the Java group with
#                           group.remote.assignor=range against the cluster,
#                           the agent coordinating the group SIGKILLed under
#                           load and restarted: every acknowledged record
#                           consumed, three members covering the six
#                           partitions once (assignor range), committed
#                           offsets at the end
#
# Compiles newgroups/NewGroups.java into $STREAMHOUSE_CACHE/java/newgroups-classes
# when it changed. Needs the jars and the venv of ./scripts/test.sh --setup-only.
#
# Usage: tests/compat/newgroups.sh [--agents N]
#        (STREAMHOUSE_BIN, COMPAT_BACKENDS, COMPAT_KEEP=1, NEWGROUPS_ONLY="java tools")
# With --agents N (N > 1) every scenario runs against a cluster of N agents,
# named newgroups-Nagents/..., on the pg-s3 pair alone when COMPAT_BACKENDS has
# it (a pass with one agent covers both pairs), and java/coordinator-kill is
# added. NEWGROUPS_ONLY runs the scenarios whose names contain one of its
# words. With COMPAT_REFERENCE=1, --agents runs nothing: the reference script
# is one Kafka broker, not a cluster (java/coordinator-kill was checked by
# hand against three Kafka 4.4 brokers, see docs/compatibility.md).
set -uo pipefail
if [[ "${1:-}" == --agents ]]; then
    export COMPAT_AGENTS="$2"
    [[ " ${COMPAT_BACKENDS:-embedded pg-s3} " == *" pg-s3 "* ]] && export COMPAT_BACKENDS=pg-s3
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [[ "${COMPAT_REFERENCE:-0}" == 1 ]] && ((COMPAT_AGENTS > 1)); then
    # kafka-as-streamhouse.sh runs one Kafka per data dir, not a cluster.
    echo "newgroups: --agents $COMPAT_AGENTS skipped against the reference Kafka (one broker per data dir)" >&2
    exit 0
fi

LIB="$STREAMHOUSE_CACHE/java/lib"
CLASSES="$STREAMHOUSE_CACHE/java/newgroups-classes"
PY="$SH_VENV/bin/python"
GROUP_CMD=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
# Each Java or Python call's bound; the Java scenarios wait up to the session
# timeout plus 20 s for a takeover and 60 s for each other step.
TIMEOUT=180
PY_RECORDS=2000

# The holding JVM of the tools scenario: BG_PID is its `timeout`, which
# passes a SIGTERM on to the JVM (a SIGKILL would leave the JVM running).
BG_PID=""
bg_kill() {
    if [[ -n "$BG_PID" ]]; then
        kill -TERM "$BG_PID" 2>/dev/null
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$BG_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$BG_PID" 2>/dev/null
        wait "$BG_PID" 2>/dev/null
        BG_PID=""
    fi
}
trap 'bg_kill; broker_cleanup' EXIT

if [[ ! -x "$PY" ]]; then
    record FAIL "newgroups/setup" "no venv at $SH_VENV; run ./scripts/test.sh --setup-only"
    exit 1
fi
compile_java newgroups "$CLASSES" "$COMPAT_DIR/newgroups/NewGroups.java" "$COMPAT_DIR/newgroups/Migration.java" || exit 1

# The broker's session timeout and heartbeat interval for consumer-protocol
# groups, when it has the flags. (Not asked of the reference script, which
# would start Kafka for --help; Kafka's are 45 s and 5 s, its minimums.)
BROKER_EXTRA=(--group-initial-rebalance-delay-ms 0)
SESSION_MS=45000
if [[ "${COMPAT_REFERENCE:-0}" != 1 ]]; then
    help="$("$STREAMHOUSE_BIN" --help 2>/dev/null)"
    if grep -q -- '--group-consumer-session-timeout-ms' <<<"$help"; then
        SESSION_MS=6000
        BROKER_EXTRA+=(--group-consumer-session-timeout-ms "$SESSION_MS")
    fi
    if grep -q -- '--group-consumer-heartbeat-interval-ms' <<<"$help"; then
        BROKER_EXTRA+=(--group-consumer-heartbeat-interval-ms 1000)
    fi
fi

JAVA=(java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)

ng() {   # ng MODE ARGS...: a NewGroups call with a bound on its time
    timeout "$TIMEOUT" "${JAVA[@]}" -cp "$CLASSES:$LIB/*" NewGroups "$1" "$BROKER_BOOTSTRAP" "${@:2}"
}

tool() {   # tool NAME ARGS...: kafka-consumer-groups into $W/NAME.out and .err
    local name="$1"
    shift
    timeout 60 "${JAVA[@]}" -cp "$LIB/*" "$GROUP_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" "$@" \
        >"$W/$name.out" 2>"$W/$name.err"
}

# Last lines of a tool's output, on one line, for a FAIL reason.
tail_of() { tail -n "${2:-6}" "$W/$1" 2>/dev/null | tr -s ' \n' '  ' | cut -c1-700; }

# outcome NAME FILE [STATUS]: the last line of a client's output FILE ("OK
# detail" or "FAIL reason") into DETAIL or REASON; status 0 for OK.
outcome() {
    local name="$1" file="$2" last
    last="$(tail -n 1 "$file" 2>/dev/null)"
    case "$last" in
        "OK "*) DETAIL="${last#OK }"; return 0 ;;
        "FAIL "*) REASON="${last#FAIL }" ;;
        *) REASON="$name printed no outcome (status ${3:-?}); stderr: $(grep -v '^\s*at ' "${file%.out}.err" 2>/dev/null | tail -n 4 | tr '\n' ' ' | cut -c1-600)" ;;
    esac
    return 1
}

scenario_java() {
    local t
    t="$(unique ng-java)"
    ng consumer-kill "$t" "$t-group" "$SESSION_MS" "$W/java" >"$W/java.out" 2>"$W/java.err"
    outcome NewGroups "$W/java.out" $?
}

scenario_migration() {
    local t
    t="$(unique ng-migrate)"
    timeout 300 "${JAVA[@]}" -cp "$CLASSES:$LIB/*" Migration "$BROKER_BOOTSTRAP" "$t" "$t-group" \
        >"$W/migration.out" 2>"$W/migration.err"
    outcome Migration "$W/migration.out" $?
}

scenario_coordinator_kill() {
    local t
    t="$(unique ng-coord)"
    ng coordinator-kill "$t" "$t-group" "$SESSION_MS" "$W/coord" "$COMPAT_DIR/agentctl.sh" "$BROKER_DIR" \
        >"$W/coord.out" 2>"$W/coord.err"
    outcome NewGroups "$W/coord.out" $?
}

# A check of the tools scenario against the live group: runs one tool, sets
# REASON and returns 1 when its output is not what Kafka prints.
check_list() {
    tool list --list && grep -qx "$group" "$W/list.out" && return 0
    REASON="--list does not show $group: $(tail_of list.out) $(tail_of list.err 3)"
    return 1
}

check_list_type() {
    tool list-consumer --list --type consumer &&
        [[ "$(awk -v g="$group" '$1 == g { print $2 }' "$W/list-consumer.out")" == Consumer ]] && return 0
    REASON="--list --type consumer: want '$group Consumer': $(tail_of list-consumer.out) $(tail_of list-consumer.err 3)"
    return 1
}

check_describe() {   # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    local rows bad
    tool describe --describe --group "$group"
    rows="$(awk -v g="$group" -v t="$t" '$1 == g && $2 == t' "$W/describe.out")"
    bad="$(awk -v ids=" $ids " '!($3 ~ /^[0-3]$/ && $4 == $5 && $6 == "0" && index(ids, " " $7 " ") && $9 ~ /^holder-[12]$/)' <<<"$rows")"
    [[ "$(wc -l <<<"$rows")" == 4 && -z "$bad" && "$(awk '{ print $3 }' <<<"$rows" | sort -u | wc -l)" == 4 ]] && return 0
    REASON="--describe: want partitions 0-3 of $t once each, CURRENT-OFFSET = LOG-END-OFFSET, LAG 0, a member ($ids) and its client id: $(tail_of describe.out 5) $(tail_of describe.err 3)"
    return 1
}

check_members() {   # GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS CURRENT-EPOCH CURRENT-ASSIGNMENT TARGET-EPOCH TARGET-ASSIGNMENT
    local bad
    tool members --describe --members --verbose --group "$group"
    members="$(awk -v g="$group" '$1 == g' "$W/members.out")"
    bad="$(awk -v ids=" $ids " '!(NF == 9 && index(ids, " " $2 " ") && $5 == "2" && $6 ~ /^[0-9]+$/ && $6 > 0 && $6 == $8 && $7 == $9)' <<<"$members")"
    [[ "$(wc -l <<<"$members")" == 2 && -z "$bad" ]] && grep -q '^GROUP .*CURRENT-EPOCH .*TARGET-ASSIGNMENT' "$W/members.out" &&
        return 0
    REASON="--describe --members --verbose: want the two members ($ids) with 2 partitions each, CURRENT-EPOCH = TARGET-EPOCH and CURRENT-ASSIGNMENT = TARGET-ASSIGNMENT: $(tail_of members.out 3) $(tail_of members.err 3)"
    return 1
}

check_state() {   # GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE GROUP-EPOCH TARGET-ASSIGNMENT-EPOCH #MEMBERS
    tool state --describe --state --verbose --group "$group"
    state="$(awk -v g="$group" '$1 == g { print $(NF-4), $(NF-3), ($(NF-2) == $(NF-1) && $(NF-2) > 0 ? "epochs-equal" : "epochs " $(NF-2) "/" $(NF-1)), $NF }' "$W/state.out")"
    [[ "$state" == "range Stable epochs-equal 2" ]] && return 0
    REASON="--describe --state --verbose: got '$state', want 'range Stable epochs-equal 2': $(tail_of state.out 3) $(tail_of state.err 3)"
    return 1
}

scenario_tools() {
    local t group i ids members="" state="" check deadline
    t="$(unique ng-tools)"
    group="$t-group"
    (exec timeout "$TIMEOUT" "${JAVA[@]}" -cp "$CLASSES:$LIB/*" NewGroups hold "$BROKER_BOOTSTRAP" "$t" "$group" range \
        >"$W/hold.out" 2>"$W/hold.err") &
    BG_PID=$!
    for ((i = 0; i < 1200; i++)); do
        grep -q '^HELD' "$W/hold.out" && break
        kill -0 "$BG_PID" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q '^FAIL ' "$W/hold.out"; then
        REASON="the group's members: $(sed -n 's/^FAIL //p' "$W/hold.out" | head -n 1 | cut -c1-700)"
        bg_kill
        return 1
    fi
    if ! grep -q '^HELD' "$W/hold.out"; then
        REASON="the two members did not split the partitions and consume and commit 400 records in 120 s (or exited): $(tail -n 2 "$W/hold.out" | tr '\n' ' ') $(grep -v '^\s*at ' "$W/hold.err" | tail -n 3 | tr '\n' ' ' | cut -c1-500)"
        bg_kill
        return 1
    fi
    ids="$(sed -n 's/^HELD //p' "$W/hold.out")"
    # The members split the partitions and committed: what the tools show
    # should hold now; a few seconds' grace for a heartbeat in flight.
    deadline=$((SECONDS + 15))
    for check in check_list check_list_type check_describe check_members check_state; do
        until "$check"; do
            ((SECONDS < deadline)) || { bg_kill; return 1; }
            sleep 1
        done
    done
    bg_kill
    DETAIL="list (type Consumer); describe: 4 partitions at lag 0 over 2 members; members: epoch $(awk 'NR == 1 { print $6 }' <<<"$members"), assignments $(awk '{ printf "%s ", $7 }' <<<"$members")(current = target); state: $(awk -v g="$group" '$1 == g { print $(NF-4), $(NF-3), "group epoch", $(NF-2) }' "$W/state.out"), 2 members"
}

scenario_python() {
    local t
    t="$(unique ng-py)"
    timeout "$TIMEOUT" "$PY" "$COMPAT_DIR/newgroups/client.py" split "$BROKER_BOOTSTRAP" "$t" "$t-group" "$PY_RECORDS" \
        >"$W/py.out" 2>"$W/py.err"
    outcome client.py "$W/py.out" $?
}

scenario_python_migration() {
    local t
    t="$(unique ng-py-migrate)"
    timeout 300 "$PY" "$COMPAT_DIR/newgroups/client.py" migrate "$BROKER_BOOTSTRAP" "$t" "$t-group" 400 \
        >"$W/py-migration.out" 2>"$W/py-migration.err"
    outcome client.py "$W/py-migration.out" $?
}

scenario_wire_epoch() {
    local t
    t="$(unique ng-wire)"
    timeout 90 "$PY" "$COMPAT_DIR/newgroups/wire_epoch.py" "$BROKER_BOOTSTRAP" "$t" "$t-group" \
        >"$W/wire.out" 2>"$W/wire.err"
    outcome wire_epoch.py "$W/wire.out" $?
}

run_scenario() {   # run_scenario NAME FUNCTION
    REASON=""
    DETAIL=""
    local t0=$SECONDS word
    if [[ -n "${NEWGROUPS_ONLY:-}" ]]; then
        for word in $NEWGROUPS_ONLY; do [[ "$1" == *"$word"* ]] && break; word=""; done
        [[ -n "$word" ]] || return 0
    fi
    if "$2"; then
        record PASS "newgroups$(agents_tag)/$backend/$1" "$DETAIL ($((SECONDS - t0)) s)"
    else
        record FAIL "newgroups$(agents_tag)/$backend/$1" "$REASON ($((SECONDS - t0)) s)"
        broker_log_tail 25
    fi
}

run_backend() {
    backend="$1"
    W="$BROKER_DIR/newgroups"
    mkdir -p "$W"
    run_scenario java/consumer-protocol scenario_java
    run_scenario java/migration scenario_migration
    run_scenario tools/consumer-groups scenario_tools
    run_scenario python/consumer-protocol scenario_python
    run_scenario python/migration scenario_python_migration
    run_scenario wire/offset-commit-epochs scenario_wire_epoch
    if ((COMPAT_AGENTS > 1)); then
        run_scenario java/coordinator-kill scenario_coordinator_kill
    fi
    if ! broker_alive; then
        record FAIL "newgroups$(agents_tag)/$backend/broker-alive" "the broker died during the run"
    fi
}

on_each_backend newgroups run_backend "${BROKER_EXTRA[@]}"
exit "$COMPAT_FAILED"
