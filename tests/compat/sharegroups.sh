#!/usr/bin/env bash
# Share groups (KIP-932, queues) with real clients, on each backend pair in
# COMPAT_BACKENDS: a fresh broker started with
# --group-initial-rebalance-delay-ms 0 and, when the broker has them,
# --group-share-record-lock-duration-ms $LOCK_MS and
# --group-share-session-timeout-ms $SESSION_MS (and
# --group-share-heartbeat-interval-ms a third of it; the reference Kafka maps
# them to group.share.record.lock.duration.ms, group.share.session.timeout.ms
# and a third of it as group.share.heartbeat.interval.ms).
# Every group starts at the earliest offset: share.auto.offset.reset=earliest
# is set on it (IncrementalAlterConfigs, resource type GROUP) before any
# member joins, and a broker that has --group-share-auto-offset-reset is
# started with it set to earliest too (the group config is then a scenario
# of its own, admin/share-group-config; the records are produced once every
# consumer has joined and been assigned a partition in any case). The
# consumers are KafkaShareConsumers of kafka-clients 4.4.0
# (sharegroups/ShareCompat.java), each a JVM of its own, with
# share.acknowledgement.mode=explicit: acknowledge(record, ACCEPT) for each
# record of a poll, then commitSync(); an offset counts as acknowledged when
# the acknowledgement commit callback reports it without an error.
#
# Scenarios per backend:
#   java/share-queue        a 2-partition topic; three consumers join one
#                           share group (Stable, each assigned a partition),
#                           then QUEUE_N records are produced: every record
#                           acknowledged exactly once over the three, none
#                           twice, and some partition's records acknowledged
#                           by two consumers or more (the split is printed)
#   admin/share-group-config
#                           (with share-queue's group) the group config
#                           share.auto.offset.reset=earliest set by
#                           IncrementalAlterConfigs (resource type GROUP) and
#                           read back by DescribeConfigs
#   tools/share-groups      kafka-share-groups (ShareGroupCommand) while the
#                           three are still members: --list names the group,
#                           --describe --state shows it Stable with 3 members,
#                           --describe --members shows the three client ids,
#                           their assignments covering both partitions
#   tools/share-groups-offsets
#                           --describe --offsets (DescribeShareGroupOffsets):
#                           a line per partition, START-OFFSET within the
#                           partition, LAG 0 (or "-", when not reported)
#   tools/share-groups-reset
#                           once share-queue's consumers closed (the group
#                           Empty): --reset-offsets --to-earliest --execute
#                           (AlterShareGroupOffsets) puts both partitions back
#                           at 0, as --describe --offsets then shows;
#                           --delete-offsets (DeleteShareGroupOffsets) says
#                           the topic's deletion was Successful, and
#                           --describe --offsets then shows no start offset
#                           for it
#   java/share-redelivery   three consumers, then REDELIVERY_N records; one
#                           consumer takes its first poll's records
#                           (max.poll.records 50; Kafka hands out whole
#                           batches) without acknowledging them and is
#                           SIGKILLed: the other two acknowledge every record
#                           exactly once, the killed one's at a delivery
#                           count >= 2 (Kafka releases them when the killed
#                           consumer's connection closes; else they wait for
#                           the acquisition lock to expire)
#   java/share-coordinator-failover   (with --agents N only)
#                           as share-queue, slower, with the agent that
#                           coordinates the group (DescribeShareGroups)
#                           SIGKILLed once a quarter of the records are
#                           acknowledged and started again 2 s later: every
#                           record acknowledged once, none twice; a record
#                           whose acknowledgement failed in the kill (its
#                           outcome unknown to the client) may stay
#                           unacknowledged only if a fresh member of the group
#                           then finds nothing left to deliver (checked for
#                           4 s in any case)
#
# Compiles sharegroups/ShareCompat.java into
# $STREAMHOUSE_CACHE/java/sharegroups-classes when it changed. Needs the jars
# of ./scripts/test.sh --setup-only.
#
# Usage: tests/compat/sharegroups.sh [--agents N]
#        (STREAMHOUSE_BIN, COMPAT_BACKENDS, COMPAT_KEEP=1)
# With --agents N (N > 1) every scenario runs against a cluster of N agents,
# named sharegroups-Nagents/..., on the pg-s3 pair alone when COMPAT_BACKENDS
# has it; the failover scenario is added. SHAREGROUPS_FAILOVER=1 adds it with
# one broker too (the broker itself killed and restarted: how the scenario is
# checked against the reference Kafka, which has no agents).
set -uo pipefail
if [[ "${1:-}" == --agents ]]; then
    export COMPAT_AGENTS="$2"
    [[ " ${COMPAT_BACKENDS:-embedded pg-s3} " == *" pg-s3 "* ]] && export COMPAT_BACKENDS=pg-s3
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LIB="$STREAMHOUSE_CACHE/java/lib"
CLASSES="$STREAMHOUSE_CACHE/java/sharegroups-classes"
TIMEOUT=60
QUEUE_N=3000
REDELIVERY_N=600
FAILOVER_N=3000
LOCK_MS=5000
SESSION_MS=9000
# How long the consumers may take to acknowledge everything (after the
# production, the SIGKILL or the restart).
ACK_DEADLINE_S=45

BG_PIDS=()
bg_kill() {
    local pid
    for pid in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do kill -KILL "$pid" 2>/dev/null; done
    for pid in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do wait "$pid" 2>/dev/null; done
    BG_PIDS=()
}
trap 'bg_kill; broker_cleanup' EXIT

compile_java sharegroups "$CLASSES" "$COMPAT_DIR/sharegroups/ShareCompat.java" || exit 1

BROKER_EXTRA=(--group-initial-rebalance-delay-ms 0)
if [[ "${COMPAT_REFERENCE:-0}" == 1 ]]; then
    # (Not asked with --help, which would start Kafka.)
    BROKER_EXTRA+=(--group-share-record-lock-duration-ms "$LOCK_MS" --group-share-session-timeout-ms "$SESSION_MS")
else
    help="$("$STREAMHOUSE_BIN" --help 2>/dev/null)"
    grep -q -- '--group-share-record-lock-duration-ms' <<<"$help" &&
        BROKER_EXTRA+=(--group-share-record-lock-duration-ms "$LOCK_MS")
    grep -q -- '--group-share-session-timeout-ms' <<<"$help" &&
        BROKER_EXTRA+=(--group-share-session-timeout-ms "$SESSION_MS")
    grep -q -- '--group-share-auto-offset-reset' <<<"$help" &&
        BROKER_EXTRA+=(--group-share-auto-offset-reset earliest)
    grep -q -- '--group-share-heartbeat-interval-ms' <<<"$help" &&
        BROKER_EXTRA+=(--group-share-heartbeat-interval-ms $((SESSION_MS / 3)))
fi

JAVA=(java -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)

sc() {   # sc MODE ARGS...: a ShareCompat call with a bound on its time
    timeout "$TIMEOUT" "${JAVA[@]}" -cp "$CLASSES:$LIB/*" ShareCompat "$@"
}

# consumer NAME OUT STOPFILE TOPIC GROUP [OPTION...]: a share consumer in the
# background (its pid, the JVM's own, in BG_PIDS and LAST_PID); it stops by
# itself when STOPFILE exists, at the latest after 150 s.
consumer() {
    local name="$1" out="$2" stop="$3" topic="$4" group="$5"
    shift 5
    "${JAVA[@]}" -cp "$CLASSES:$LIB/*" ShareCompat consume "$BROKER_BOOTSTRAP" "$topic" "$group" "$name" "$stop" \
        "$@" >"$out" 2>"${out%.out}.err" </dev/null &
    LAST_PID=$!
    BG_PIDS+=("$LAST_PID")
}

# stop_consumers STOPFILE: the consumers close and exit (at most 30 s, then
# SIGKILL); status 1 if one had to be killed.
stop_consumers() {
    local pid i rc=0
    touch "$1"
    for ((i = 0; i < 300; i++)); do
        local alive=0
        for pid in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do kill -0 "$pid" 2>/dev/null && rc=1; done
    bg_kill
    return "$rc"
}

acked_count() { cat "$@" 2>/dev/null | grep '^A ' | sort -u | wc -l; }

# wait_acked N SECONDS FILE...: until the FILEs hold N distinct acknowledged
# offsets; status 1 after SECONDS.
wait_acked() {
    local n="$1" deadline=$((SECONDS + $2))
    shift 2
    while ((SECONDS < deadline)); do
        (($(acked_count "$@") >= n)) && return 0
        sleep 0.3
    done
    (($(acked_count "$@") >= n))
}

# outcome NAME FILE: the last line of FILE ("OK detail" or "FAIL reason")
# into DETAIL or REASON; status 0 for OK.
outcome() {
    local name="$1" file="$2" last
    last="$(tail -n 1 "$file" 2>/dev/null)"
    case "$last" in
        "OK "*) DETAIL="${last#OK }"; return 0 ;;
        "FAIL "*) REASON="$name: ${last#FAIL }" ;;
        *) REASON="$name printed no outcome; stderr: $(grep -v '^\s*at ' "${file%.out}.err" 2>/dev/null | tail -n 4 | tr '\n' ' ' | cut -c1-600)" ;;
    esac
    return 1
}

# The consumers' last lines and the first errors of their stderr, for a FAIL.
consumers_said() {
    local f
    for f in "$@"; do
        printf '[%s: %s %s] ' "$(basename "${f%.out}")" "$(tail -n 1 "$f" 2>/dev/null | cut -c1-300)" \
            "$(grep -E 'ERROR|WARN|Exception' "${f%.out}.err" 2>/dev/null | grep -v '^\s*at ' | head -n 2 | tr '\n' ' ' | cut -c1-400)"
    done
}

# Runs the queue's consumers; the tools' checks run while they are members,
# and their outcomes wait in TOOLS_* for their own record lines.
TOOLS_STATUS="" TOOLS_DETAIL="" OFFSETS_STATUS="" OFFSETS_DETAIL="" CONFIG_LINE=""
RESET_STATUS="" RESET_DETAIL=""

scenario_queue() {
    local t g files=() i
    TOOLS_STATUS=FAIL TOOLS_DETAIL="not run: the share-queue scenario failed first"
    OFFSETS_STATUS=FAIL OFFSETS_DETAIL="$TOOLS_DETAIL"
    RESET_STATUS=FAIL RESET_DETAIL="$TOOLS_DETAIL"
    CONFIG_LINE="FAIL not run: the share-queue scenario failed first"
    t="$(unique share-q)"
    g="$t-group"
    sc setup "$BROKER_BOOTSTRAP" "$t" 2 "$g" >"$W/q-setup.out" 2>"$W/q-setup.err"
    CONFIG_LINE="$(sed -n 's/^GROUPCONFIG //p' "$W/q-setup.out")"
    outcome setup "$W/q-setup.out" || return 1
    for i in 1 2 3; do
        consumer "c$i" "$W/q-c$i.out" "$W/q.stop" "$t" "$g" --max-poll 100 --sleep-ms 20
        files+=("$W/q-c$i.out")
    done
    sc produce "$BROKER_BOOTSTRAP" "$t" 2 "$QUEUE_N" "$W/q-produced.txt" "$g:3" >"$W/q-produce.out" 2>"$W/q-produce.err"
    if ! outcome produce "$W/q-produce.out"; then
        REASON="$REASON; $(consumers_said "${files[@]}")"
        stop_consumers "$W/q.stop"
        return 1
    fi
    local produced="$DETAIL" t0=$SECONDS
    if ! wait_acked "$QUEUE_N" "$ACK_DEADLINE_S" "${files[@]}"; then
        REASON="$(acked_count "${files[@]}") of $QUEUE_N acknowledged after $ACK_DEADLINE_S s; $(consumers_said "${files[@]}")"
        tools_checks "$t" "$g"
        stop_consumers "$W/q.stop"
        return 1
    fi
    local took=$((SECONDS - t0))
    tools_checks "$t" "$g"
    stop_consumers "$W/q.stop" || { REASON="a consumer did not exit within 30 s of its stop; $(consumers_said "${files[@]}")"; return 1; }
    reset_checks "$t" "$g"
    sc verify "$W/q-produced.txt" --shared c1="$W/q-c1.out" c2="$W/q-c2.out" c3="$W/q-c3.out" >"$W/q-verify.out" 2>"$W/q-verify.err"
    outcome verify "$W/q-verify.out" || { REASON="$REASON; $(consumers_said "${files[@]}")"; return 1; }
    DETAIL="$produced; acknowledged within ${took} s; $DETAIL"
}

tool() {   # tool ARGS...: kafka-share-groups
    timeout "$TIMEOUT" "${JAVA[@]}" -cp "$LIB/*" org.apache.kafka.tools.consumer.group.ShareGroupCommand \
        --bootstrap-server "$BROKER_BOOTSTRAP" "$@"
}

# tools_checks TOPIC GROUP: sets TOOLS_* and OFFSETS_*.
tools_checks() {
    local t="$1" g="$2" listed state members offsets why=""
    listed="$(tool --list 2>"$W/tool-list.err")"
    state="$(tool --describe --group "$g" --state 2>"$W/tool-state.err")"
    members="$(tool --describe --group "$g" --members 2>"$W/tool-members.err")"
    offsets="$(tool --describe --group "$g" --offsets 2>"$W/tool-offsets.err")"
    printf '%s\n--- state\n%s\n--- members\n%s\n--- offsets\n%s\n' "$listed" "$state" "$members" "$offsets" >"$W/tools.out"
    # --list: the group's name on a line of its own.
    grep -qx "$g" <<<"$listed" ||
        why+="--list does not name $g: $(head -c 300 <<<"$listed" | tr '\n' ' ') $(tail -n 2 "$W/tool-list.err" | tr '\n' ' '); "
    # --describe --state: GROUP COORDINATOR (ID) STATE #MEMBERS
    local st
    st="$(awk -v g="$g" '$1 == g { print $(NF - 1), $NF }' <<<"$state")"
    [[ "$st" == "Stable 3" ]] ||
        why+="--describe --state: '$st', want 'Stable 3': $(tr -s ' \n' ' ' <<<"$state" | cut -c1-300) $(tail -n 2 "$W/tool-state.err" | tr '\n' ' '); "
    # --describe --members: GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS ASSIGNMENT
    local clients assigned
    clients="$(awk -v g="$g" '$1 == g { print $4 }' <<<"$members" | sort | paste -sd,)"
    assigned="$(awk -v g="$g" '$1 == g { print $6 }' <<<"$members" | tr ',' '\n' |
        sed -n "s/^\($t:\)\{0,1\}\([0-9]*\)$/\2/p" | sort -u | paste -sd,)"
    [[ "$clients" == c1,c2,c3 && "$assigned" == 0,1 ]] ||
        why+="--describe --members: clients '$clients', partitions '$assigned', want c1,c2,c3 and 0,1: $(tr -s ' \n' ' ' <<<"$members" | cut -c1-400) $(tail -n 2 "$W/tool-members.err" | tr '\n' ' '); "
    if [[ -z "$why" ]]; then
        TOOLS_STATUS=PASS
        TOOLS_DETAIL="--list names the group; --describe --state: Stable, 3 members; --describe --members: c1,c2,c3 assigned $(awk -v g="$g" '$1 == g { print $4 "=" $6 }' <<<"$members" | sort | paste -sd' ')"
    else
        TOOLS_STATUS=FAIL
        TOOLS_DETAIL="${why%; }"
    fi
    # --describe --offsets: GROUP TOPIC PARTITION START-OFFSET LAG
    local p lines line start lag ends=() ok=1 detail=""
    read -r -a ends < <(awk '{ n[$1]++ } END { printf "%d %d\n", n[0], n[1] }' "$W/q-produced.txt")
    for p in 0 1; do
        line="$(awk -v g="$g" -v t="$t" -v p="$p" '$1 == g && $2 == t && $3 == p' <<<"$offsets")"
        start="$(awk 'NF >= 2 { print $(NF - 1) }' <<<"$line")"
        lag="$(awk 'NF >= 2 { print $NF }' <<<"$line")"
        if [[ -z "$line" ]]; then
            ok=0; detail+="no line for partition $p; "
        elif ! [[ "$start" =~ ^[0-9]+$ ]] || ((start > ends[p])) || [[ "$lag" != 0 && "$lag" != - ]]; then
            ok=0; detail+="partition $p: START-OFFSET '$start' (its end: ${ends[p]}), LAG '$lag' (want 0); "
        else
            detail+="p$p start $start of ${ends[p]}, lag $lag; "
        fi
    done
    if ((ok)); then
        OFFSETS_STATUS=PASS OFFSETS_DETAIL="${detail%; }"
    else
        OFFSETS_STATUS=FAIL
        OFFSETS_DETAIL="${detail%; }: $(tr -s ' \n' ' ' <<<"$offsets" | cut -c1-400) $(grep -v '^\s*at ' "$W/tool-offsets.err" | tail -n 2 | tr '\n' ' ' | cut -c1-400)"
    fi
}

# reset_checks TOPIC GROUP (the group Empty): sets RESET_*.
reset_checks() {
    local t="$1" g="$2" reset described deleted after why="" got
    reset="$(tool --reset-offsets --group "$g" --topic "$t" --to-earliest --execute 2>"$W/tool-reset.err")"
    described="$(tool --describe --group "$g" --offsets 2>"$W/tool-reset-offsets.err")"
    deleted="$(tool --delete-offsets --group "$g" --topic "$t" 2>"$W/tool-delete.err")"
    after="$(tool --describe --group "$g" --offsets 2>"$W/tool-deleted-offsets.err")"
    printf '%s\n--- described\n%s\n--- deleted\n%s\n--- after\n%s\n' "$reset" "$described" "$deleted" "$after" >"$W/tools-reset.out"
    # --reset-offsets: GROUP TOPIC PARTITION NEW-OFFSET
    got="$(awk -v g="$g" -v t="$t" '$1 == g && $2 == t { print $3 "=" $4 }' <<<"$reset" | sort | paste -sd,)"
    [[ "$got" == "0=0,1=0" ]] ||
        why+="--reset-offsets --to-earliest: '$got', want 0=0,1=0: $(tr -s ' \n' ' ' <<<"$reset" | cut -c1-300) $(grep -v '^\s*at ' "$W/tool-reset.err" | tail -n 2 | tr '\n' ' '); "
    got="$(awk -v g="$g" -v t="$t" '$1 == g && $2 == t { print $3 "=" $(NF - 1) }' <<<"$described" | sort | paste -sd,)"
    [[ "$got" == "0=0,1=0" ]] ||
        why+="--describe --offsets after the reset: '$got', want 0=0,1=0: $(tr -s ' \n' ' ' <<<"$described" | cut -c1-300); "
    # --delete-offsets: TOPIC STATUS
    awk -v t="$t" '$1 == t && $2 == "Successful" { found = 1 } END { exit !found }' <<<"$deleted" ||
        why+="--delete-offsets: no 'Successful' for $t: $(tr -s ' \n' ' ' <<<"$deleted" | cut -c1-300) $(grep -v '^\s*at ' "$W/tool-delete.err" | tail -n 2 | tr '\n' ' '); "
    got="$(awk -v g="$g" -v t="$t" '$1 == g && $2 == t && $(NF - 1) ~ /^[0-9]+$/' <<<"$after")"
    [[ -z "$got" ]] || why+="--describe --offsets after --delete-offsets still shows: $(tr -s ' \n' ' ' <<<"$got" | cut -c1-300); "
    if [[ -z "$why" ]]; then
        RESET_STATUS=PASS
        RESET_DETAIL="--reset-offsets --to-earliest: both partitions at 0, shown by --describe --offsets; --delete-offsets Successful, no start offset shown after"
    else
        RESET_STATUS=FAIL
        RESET_DETAIL="${why%; }"
    fi
}

scenario_config() {
    case "$CONFIG_LINE" in
        "OK "*) DETAIL="${CONFIG_LINE#OK }"; return 0 ;;
        "FAIL "*) REASON="${CONFIG_LINE#FAIL }" ;;
        *) REASON="the setup printed no GROUPCONFIG line: $(tail -n 2 "$W/q-setup.out" | tr '\n' ' ')" ;;
    esac
    return 1
}
scenario_tools() { [[ "$TOOLS_STATUS" == PASS ]] && DETAIL="$TOOLS_DETAIL" && return 0; REASON="$TOOLS_DETAIL"; return 1; }
scenario_offsets() { [[ "$OFFSETS_STATUS" == PASS ]] && DETAIL="$OFFSETS_DETAIL" && return 0; REASON="$OFFSETS_DETAIL"; return 1; }
scenario_reset() { [[ "$RESET_STATUS" == PASS ]] && DETAIL="$RESET_DETAIL" && return 0; REASON="$RESET_DETAIL"; return 1; }

scenario_redelivery() {
    local t g files=() i victim killed_at
    t="$(unique share-r)"
    g="$t-group"
    sc setup "$BROKER_BOOTSTRAP" "$t" 2 "$g" >"$W/r-setup.out" 2>"$W/r-setup.err"
    outcome setup "$W/r-setup.out" || return 1
    consumer victim "$W/r-victim.out" "$W/r.stop" "$t" "$g" --hold --max-poll 50
    victim="$LAST_PID"
    for i in 1 2; do
        consumer "s$i" "$W/r-s$i.out" "$W/r.stop" "$t" "$g" --max-poll 50 --sleep-ms 50
        files+=("$W/r-s$i.out")
    done
    sc produce "$BROKER_BOOTSTRAP" "$t" 2 "$REDELIVERY_N" "$W/r-produced.txt" "$g:3" >"$W/r-produce.out" 2>"$W/r-produce.err"
    if ! outcome produce "$W/r-produce.out"; then
        REASON="$REASON; $(consumers_said "$W/r-victim.out" "${files[@]}")"
        stop_consumers "$W/r.stop"
        return 1
    fi
    local produced="$DETAIL"
    for ((i = 0; i < 300; i++)); do
        grep -q '^HELD' "$W/r-victim.out" && break
        kill -0 "$victim" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^HELD' "$W/r-victim.out"; then
        REASON="the consumer to be killed received nothing within 30 s of the production ($(acked_count "${files[@]}") acknowledged by the others); $(consumers_said "$W/r-victim.out" "${files[@]}")"
        stop_consumers "$W/r.stop"
        return 1
    fi
    kill -KILL "$victim"
    killed_at="$(now_ms)"
    wait "$victim" 2>/dev/null   # (without bash's "Killed" line)
    local held t0=$SECONDS
    held="$(grep '^HELD' "$W/r-victim.out")"
    if ! wait_acked "$REDELIVERY_N" "$ACK_DEADLINE_S" "${files[@]}"; then
        REASON="$(acked_count "${files[@]}") of $REDELIVERY_N acknowledged ${ACK_DEADLINE_S} s after the SIGKILL of the consumer holding ${held#HELD } records; $(consumers_said "${files[@]}")"
        stop_consumers "$W/r.stop"
        return 1
    fi
    local took=$((SECONDS - t0))
    stop_consumers "$W/r.stop" || { REASON="a consumer did not exit within 30 s of its stop; $(consumers_said "${files[@]}")"; return 1; }
    sc verify "$W/r-produced.txt" --held "$W/r-victim.out" --killed-at "$killed_at" \
        s1="$W/r-s1.out" s2="$W/r-s2.out" >"$W/r-verify.out" 2>"$W/r-verify.err"
    outcome verify "$W/r-verify.out" || { REASON="$REASON; $(consumers_said "${files[@]}")"; return 1; }
    DETAIL="$produced; a consumer SIGKILLed holding ${held#HELD } records; all acknowledged ${took} s after; $DETAIL"
}

# kill_coordinator HOST:PORT: SIGKILL of the agent at HOST:PORT (with one
# broker: the broker), started again 2 s later. Sets KILLED.
kill_coordinator() {
    local port="${1##*:}" i
    if ((CLUSTER_N)); then
        for ((i = 0; i < CLUSTER_N; i++)); do [[ "$(agent_port "$i")" == "$port" ]] && break; done
        ((i < CLUSTER_N)) || { REASON="the coordinator $1 is none of the agents"; return 1; }
        KILLED="agent $i"
        agent_kill9 "$i"
        sleep 2
        agent_start "$i" >>"$W/f-restart.log" 2>&1 || { REASON="agent $i did not start again (see $W/f-restart.log)"; return 1; }
        cluster_wait_formed 20 >>"$W/f-restart.log" 2>&1 || { REASON="the cluster did not form again after agent $i restarted (see $W/f-restart.log)"; return 1; }
    else
        KILLED="the broker"
        broker_kill9
        sleep 2
        broker_launch >>"$W/f-restart.log" 2>&1 || { REASON="the broker did not start again (see $W/f-restart.log)"; return 1; }
    fi
}

scenario_failover() {
    local t g files=() i coord
    t="$(unique share-f)"
    g="$t-group"
    sc setup "$BROKER_BOOTSTRAP" "$t" 2 "$g" >"$W/f-setup.out" 2>"$W/f-setup.err"
    outcome setup "$W/f-setup.out" || return 1
    for i in 1 2 3; do
        consumer "c$i" "$W/f-c$i.out" "$W/f.stop" "$t" "$g" --max-poll 50 --sleep-ms 200
        files+=("$W/f-c$i.out")
    done
    sc produce "$BROKER_BOOTSTRAP" "$t" 2 "$FAILOVER_N" "$W/f-produced.txt" "$g:3" >"$W/f-produce.out" 2>"$W/f-produce.err"
    if ! outcome produce "$W/f-produce.out"; then
        REASON="$REASON; $(consumers_said "${files[@]}")"
        stop_consumers "$W/f.stop"
        return 1
    fi
    local produced="$DETAIL"
    coord="$(sed -n 's/^COORDINATOR \([^ ]*\) .*/\1/p' "$W/f-produce.out")"
    if ! wait_acked $((FAILOVER_N / 4)) "$ACK_DEADLINE_S" "${files[@]}"; then
        REASON="$(acked_count "${files[@]}") of $FAILOVER_N acknowledged after $ACK_DEADLINE_S s, before any kill; $(consumers_said "${files[@]}")"
        stop_consumers "$W/f.stop"
        return 1
    fi
    local at_kill leaders="" lp
    at_kill="$(acked_count "${files[@]}")"
    # Which agent leads each partition (for the report).
    for lp in $(sed -n 's/^LEADERS //p' "$W/f-produce.out"); do
        local who="${lp#*=}" j
        if ((CLUSTER_N)); then
            for ((j = 0; j < CLUSTER_N; j++)); do [[ "127.0.0.1:$(agent_port "$j")" == "$who" ]] && who="agent $j"; done
        fi
        leaders+="p${lp%%=*} led by $who, "
    done
    kill_coordinator "$coord" || { stop_consumers "$W/f.stop"; return 1; }
    local t0=$SECONDS
    if ! wait_acked "$FAILOVER_N" "$ACK_DEADLINE_S" "${files[@]}"; then
        REASON="$(acked_count "${files[@]}") of $FAILOVER_N acknowledged $ACK_DEADLINE_S s after $KILLED (the coordinator, $coord) was SIGKILLed at $at_kill and restarted; $(consumers_said "${files[@]}")"
        # What is left: a fresh member's view.
        stop_consumers "$W/f.stop"
        sc drain "$BROKER_BOOTSTRAP" "$t" "$g" 4 >"$W/f-drain.out" 2>"$W/f-drain.err"
        REASON+="; drain: $(tail -n 1 "$W/f-drain.out" | cut -c1-400)"
        return 1
    fi
    local took=$((SECONDS - t0))
    stop_consumers "$W/f.stop" || { REASON="a consumer did not exit within 30 s of its stop; $(consumers_said "${files[@]}")"; return 1; }
    sc drain "$BROKER_BOOTSTRAP" "$t" "$g" 4 >"$W/f-drain.out" 2>"$W/f-drain.err"
    outcome drain "$W/f-drain.out" || return 1
    sc verify "$W/f-produced.txt" --lenient-failed c1="$W/f-c1.out" c2="$W/f-c2.out" c3="$W/f-c3.out" \
        >"$W/f-verify.out" 2>"$W/f-verify.err"
    outcome verify "$W/f-verify.out" || { REASON="$REASON; $(consumers_said "${files[@]}")"; return 1; }
    DETAIL="$produced; ${leaders}$KILLED (the coordinator, $coord) SIGKILLed at $at_kill acknowledged and restarted, all acknowledged ${took} s after; $DETAIL; consumers: $(for f in "${files[@]}"; do tail -n 1 "$f" | sed 's/^OK //' | tr -d '\n'; printf '; '; done | sed 's/; $//')"
}

run_scenario() {   # run_scenario NAME FUNCTION
    REASON=""
    DETAIL=""
    local t0=$SECONDS
    if "$2"; then
        record PASS "sharegroups$(agents_tag)/$backend/$1" "$DETAIL ($((SECONDS - t0)) s)"
    else
        record FAIL "sharegroups$(agents_tag)/$backend/$1" "$REASON ($((SECONDS - t0)) s)"
        broker_log_tail 25
    fi
}

run_backend() {
    backend="$1"
    W="$BROKER_DIR/share"
    mkdir -p "$W"
    local t0=$SECONDS
    run_scenario java/share-queue scenario_queue
    run_scenario admin/share-group-config scenario_config
    run_scenario tools/share-groups scenario_tools
    run_scenario tools/share-groups-offsets scenario_offsets
    run_scenario tools/share-groups-reset scenario_reset
    run_scenario java/share-redelivery scenario_redelivery
    if ((COMPAT_AGENTS > 1)) || [[ "${SHAREGROUPS_FAILOVER:-0}" == 1 ]]; then
        run_scenario java/share-coordinator-failover scenario_failover
    fi
    if ! broker_alive; then
        record FAIL "sharegroups$(agents_tag)/$backend/broker-alive" "the broker died during the run"
    fi
    echo "sharegroups$(agents_tag)/$backend: $((SECONDS - t0)) s (broker: ${BROKER_EXTRA[*]})"
}

on_each_backend sharegroups run_backend "${BROKER_EXTRA[@]}"
exit "$COMPAT_FAILED"
