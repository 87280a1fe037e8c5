#!/usr/bin/env bash
# The Apache Kafka 4.4.0 command-line tools (kafka-tools jar, run as
# `java -cp 'lib/*' CLASS`) against a fresh StreamHouse broker, on each backend
# pair in COMPAT_BACKENDS: consumer groups with the Java client, the idempotent
# producer and the admin tools.
#
#   producer-perf    ProducerPerformance with its default producer settings
#                    (idempotent, acks=all); no error, the log end is the count
#   verifiable       VerifiableProducer (idempotent) + VerifiableConsumer (a
#                    group): every acknowledged record consumed exactly once
#   topic-command    TopicCommand create / describe / list / alter / delete
#   placement        LeaderElectionCommand (preferred and unclean: no election
#                    needed), ReassignPartitionsCommand --list (none),
#                    TopicCommand --describe paged 2 partitions a response
#   config-command   ConfigCommand describe and alter a topic's config; an
#                    invalid value is refused
#   delete-records   DeleteRecordsCommand, then GetOffsetShell shows the new
#                    earliest offset
#   group-command    ConsumerGroupCommand list / describe (members, lag) /
#                    reset offsets / delete
#   java-group       2 then 3 KafkaConsumer processes (java-tools/GroupMember)
#                    split a 6-partition topic; one is SIGKILLed and the others
#                    take over; every record consumed; a restarted group resumes
#                    from its committed offsets
#   client-quotas    ConfigCommand sets and describes producer_byte_rate of a
#                    client id (controller_mutation_rate and a negative
#                    request_percentage refused); ProducerPerformance with that
#                    id is held to about 1 MiB/s and throttled, with another id
#                    never; request_percentage set and described for a third
#                    id, whose ProducerPerformance is throttled and slowed
#
# Needs the jars that scripts/test.sh puts in $STREAMHOUSE_CACHE/java/lib;
# compiles java-tools/*.java itself into $STREAMHOUSE_CACHE/java/tools-classes.
# TOOLS_PERF_RECORDS (default 1000000 on embedded, 200000 on pg-s3) sizes the
# ProducerPerformance run; TOOLS_ONLY="java-group ..." runs only those scenarios.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAVA_DIR="$STREAMHOUSE_CACHE/java"
LIB="$JAVA_DIR/lib"
TOOLS_CLASSES="$JAVA_DIR/tools-classes"
SESSION_TIMEOUT_MS=6000
# Kafka's own floor for the rebalance after a member's session expired: the
# survivors notice it on their next heartbeat (1 s) and rejoin.
TAKEOVER_SLACK_S=8

MEMBER_PIDS=()
stop_members() {
    local pid
    for pid in ${MEMBER_PIDS[@]+"${MEMBER_PIDS[@]}"}; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    MEMBER_PIDS=()
}
trap 'stop_members; broker_cleanup' EXIT

if [[ ! -f "$LIB/kafka-tools-4.4.0.jar" ]]; then
    record FAIL "tools/setup" "$LIB/kafka-tools-4.4.0.jar missing; run ./scripts/test.sh --setup-only"
    exit 1
fi

# Compiles java-tools/*.java when they or the jars changed.
compile_java tools "$TOOLS_CLASSES" "$COMPAT_DIR"/java-tools/*.java || exit 1

# Class-data-sharing archives, one per tool class, made by the tool's first
# run (for these jars): a short-lived tool then starts in half the time, and
# the runner starts some forty of them per backend pair.
# An archive only fits the JVM and jars that made it (a stale one is ignored
# silently, never remade), so both name its folder.
CDS_DIR="$JAVA_DIR/cds-$({ cat "$JAVA_DIR/lib.stamp"; java -version 2>&1; } 2>/dev/null | sha256sum | head -c 12)"
mkdir -p "$CDS_DIR"
find "$JAVA_DIR" -maxdepth 1 -name 'cds-*' ! -path "$CDS_DIR" -exec rm -rf {} + 2>/dev/null

# jt NAME CLASS ARGS...: runs a Kafka tool with stdout in $W/NAME.out, stderr
# in $W/NAME.err; its exit status. Short-lived tools start faster with C1 only;
# -Xlog:disable keeps JVM warnings (about an archive, say) out of the output
# that is parsed.
jt() {
    local name="$1" class="$2" archive flag rc
    shift 2
    archive="$CDS_DIR/${class##*.}.jsa"
    # Written under another name and moved: a concurrent run never maps half an archive.
    if [[ -s "$archive" ]]; then flag="-XX:SharedArchiveFile=$archive"; else flag="-XX:ArchiveClassesAtExit=$archive.$$"; fi
    timeout --foreground 120 java -Xlog:disable "$flag" -XX:TieredStopAtLevel=1 \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$LIB/*" "$class" "$@" >"$W/$name.out" 2>"$W/$name.err"
    rc=$?
    [[ -s "$archive.$$" ]] && mv -f "$archive.$$" "$archive"
    rm -f "$archive.$$"
    return "$rc"
}
TOPIC_CMD=org.apache.kafka.tools.TopicCommand
CONFIG_CMD=org.apache.kafka.tools.ConfigCommand
GROUP_CMD=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
OFFSETS=org.apache.kafka.tools.GetOffsetShell

# Last lines of a tool's output, on one line, for a FAIL reason.
tail_of() { tail -n "${2:-6}" "$W/$1" 2>/dev/null | tr '\n' ' ' | cut -c1-700; }

# wait_until SECONDS CMD...: polls CMD every 0.3 s.
wait_until() {
    local deadline=$(($(now_ms) + $1 * 1000))
    shift
    while (($(now_ms) < deadline)); do
        "$@" && return 0
        sleep 0.3
    done
    "$@"
}

# produce NAME TOPIC COUNT [VALUE_PREFIX]: VerifiableProducer, idempotent; the
# number of acknowledged records must be COUNT.
produce() {
    local name="$1" topic="$2" count="$3"
    shift 3
    # Keyed records (60 keys) spread over all partitions; unkeyed ones would
    # stick to one partition per batch.
    local -a prefix=(--repeating-keys 60)
    [[ $# -gt 0 ]] && prefix+=(--value-prefix "$1")
    jt "$name" org.apache.kafka.tools.VerifiableProducer --bootstrap-server "$BROKER_BOOTSTRAP" \
        --topic "$topic" --max-messages "$count" --command-config "$W/idempotent.properties" "${prefix[@]}" || return 1
    [[ "$(grep -c '"name":"producer_send_success"' "$W/$name.out")" == "$count" ]]
}

create_topic() {   # create_topic NAME TOPIC PARTITIONS
    jt "$1" "$TOPIC_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --create --topic "$2" --partitions "$3" &&
        grep -q "Created topic $2" "$W/$1.out"
}

# ---- 1. ProducerPerformance ------------------------------------------------

scenario_producer_perf() {
    local topic n out="$W/perf.out"
    topic="$(unique perf)"
    n="${TOOLS_PERF_RECORDS:-$([[ "$backend" == embedded ]] && echo 1000000 || echo 200000)}"
    # No producer settings but the bootstrap: the defaults are idempotence and acks=all.
    timeout --foreground 240 java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$LIB/*" \
        org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$n" --record-size 100 \
        --throughput -1 --command-property "bootstrap.servers=$BROKER_BOOTSTRAP" >"$out" 2>"$W/perf.err"
    local rc=$?
    ((rc == 0)) || { REASON="ProducerPerformance exited with $rc: $(tail_of perf.err)"; return 1; }
    # Failed sends are printed by its callback as exceptions.
    if grep -qE 'Exception|ERROR' "$W/perf.err"; then
        REASON="errors on stderr: $(grep -m3 -E 'Exception|ERROR' "$W/perf.err" | tr '\n' ' ' | cut -c1-600)"
        return 1
    fi
    local summary
    summary="$(grep -E "^$n records sent, .* 99.9th\.$" "$out")"
    [[ -n "$summary" ]] || { REASON="no final '$n records sent' line: $(tail_of perf.out 2)"; return 1; }
    jt perf-end "$OFFSETS" --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$topic" --time -1 ||
        { REASON="GetOffsetShell failed: $(tail_of perf-end.err)"; return 1; }
    [[ "$(cat "$W/perf-end.out")" == "$topic:0:$n" ]] ||
        { REASON="log end is '$(tail_of perf-end.out)', want $topic:0:$n"; return 1; }
    DETAIL="$n records: ${summary%%, [0-9]* ms 50th*}"
}

# ---- 2. VerifiableProducer + VerifiableConsumer ----------------------------

scenario_verifiable() {
    local topic n=5000
    topic="$(unique verifiable)"
    create_topic vt-create "$topic" 3 || { REASON="create: $(tail_of vt-create.err)"; return 1; }
    produce vp "$topic" "$n" ||
        { REASON="VerifiableProducer: $(grep -c producer_send_success "$W/vp.out") of $n acked; $(tail_of vp.err 3) $(grep -m2 producer_send_error "$W/vp.out")"; return 1; }
    jt vc org.apache.kafka.tools.VerifiableConsumer --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$topic" \
        --group-id "$(unique vgroup)" --max-messages "$n" --verbose --session-timeout "$SESSION_TIMEOUT_MS" ||
        { REASON="VerifiableConsumer exited non-zero: $(tail_of vc.err)"; return 1; }
    REASON="$(python3 - "$W/vp.out" "$W/vc.out" "$topic" <<'EOF'
import json, sys
acked, consumed, commit_failures = {}, {}, 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["name"] == "producer_send_success":
        acked[(e["partition"], e["offset"])] = e["value"]
for line in open(sys.argv[2]):
    e = json.loads(line)
    if e["name"] == "record_data":
        k = (e["partition"], e["offset"])
        consumed.setdefault(k, []).append(e["value"])
    elif e["name"] == "offsets_committed" and not e.get("success", False):
        commit_failures += 1
problems = []
missing = [k for k in acked if k not in consumed]
dups = [k for k, v in consumed.items() if len(v) != 1]
wrong = [k for k in acked if k in consumed and consumed[k][0] != acked[k]]
extra = [k for k in consumed if k not in acked]
if missing: problems.append(f"{len(missing)} acked records never consumed, e.g. {sorted(missing)[:3]}")
if dups: problems.append(f"{len(dups)} records consumed more than once, e.g. {sorted(dups)[:3]}")
if wrong: problems.append(f"{len(wrong)} records with another value, e.g. {sorted(wrong)[:3]}")
if extra: problems.append(f"{len(extra)} unacknowledged records consumed, e.g. {sorted(extra)[:3]}")
if commit_failures: problems.append(f"{commit_failures} failed offset commits")
print("; ".join(problems))
EOF
)"
    [[ -z "$REASON" ]] || return 1
    DETAIL="$n acked (idempotent), $n consumed exactly once in a group"
}

# ---- 3. TopicCommand, ConfigCommand, DeleteRecordsCommand ------------------

partition_count() {   # partition_count NAME TOPIC -> prints N
    jt "$1" "$TOPIC_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --describe --topic "$2" &&
        grep -oE 'PartitionCount: [0-9]+' "$W/$1.out" | head -1 | awk '{print $2}'
}
listed() { jt "$1" "$TOPIC_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --list && grep -qx "$2" "$W/$1.out"; }
not_listed() { jt "$1" "$TOPIC_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --list && ! grep -qx "$2" "$W/$1.out"; }

scenario_topic_command() {
    local topic got
    topic="$(unique topiccmd)"
    create_topic tc-create "$topic" 3 || { REASON="--create: $(tail_of tc-create.out 2) $(tail_of tc-create.err)"; return 1; }
    got="$(partition_count tc-describe "$topic")"
    [[ "$got" == 3 ]] || { REASON="--describe: PartitionCount '$got', want 3: $(tail_of tc-describe.out 4) $(tail_of tc-describe.err 3)"; return 1; }
    grep -qE "Partition: 2\s+Leader: [0-9]+" "$W/tc-describe.out" ||
        { REASON="--describe shows no leader for partition 2: $(tail_of tc-describe.out 4)"; return 1; }
    listed tc-list "$topic" || { REASON="--list does not show $topic: $(tail_of tc-list.out) $(tail_of tc-list.err 3)"; return 1; }
    jt tc-alter "$TOPIC_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --alter --topic "$topic" --partitions 5 ||
        { REASON="--alter --partitions 5: $(tail_of tc-alter.out) $(tail_of tc-alter.err)"; return 1; }
    got="$(partition_count tc-describe2 "$topic")"
    [[ "$got" == 5 ]] || { REASON="after --alter: PartitionCount '$got', want 5"; return 1; }
    jt tc-delete "$TOPIC_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --delete --topic "$topic" ||
        { REASON="--delete: $(tail_of tc-delete.out) $(tail_of tc-delete.err)"; return 1; }
    wait_until 10 not_listed tc-list2 "$topic" || { REASON="--list still shows $topic 10 s after --delete"; return 1; }
    DETAIL="create 3, describe, list, alter to 5, delete"
}

ELECTION_CMD=org.apache.kafka.tools.LeaderElectionCommand
REASSIGN_CMD=org.apache.kafka.tools.reassign.ReassignPartitionsCommand

scenario_placement() {
    local topic
    topic="$(unique placement)"
    create_topic pl-create "$topic" 3 || { REASON="--create: $(tail_of pl-create.err)"; return 1; }
    # DescribeTopicPartitions, paged: every partition still shows.
    jt pl-describe "$TOPIC_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --describe --topic "$topic" \
        --partition-size-limit-per-response 2 &&
        [[ "$(grep -cE "Partition: [0-2]\s+Leader: [0-9]+" "$W/pl-describe.out")" == 3 ]] ||
        { REASON="--describe, 2 partitions a response: $(tail_of pl-describe.out 4) $(tail_of pl-describe.err 3)"; return 1; }
    jt pl-elect "$ELECTION_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --election-type PREFERRED \
        --topic "$topic" --partition 1 &&
        grep -q "Valid replica already elected for partitions $topic-1" "$W/pl-elect.out" ||
        { REASON="preferred election: $(tail_of pl-elect.out 3) $(tail_of pl-elect.err 3)"; return 1; }
    jt pl-elect-all "$ELECTION_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --election-type UNCLEAN \
        --all-topic-partitions || { REASON="unclean election of all partitions: $(tail_of pl-elect-all.err 3)"; return 1; }
    jt pl-list "$REASSIGN_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --list &&
        grep -q "No partition reassignments found" "$W/pl-list.out" ||
        { REASON="--list: $(tail_of pl-list.out 3) $(tail_of pl-list.err 3)"; return 1; }
    DETAIL="describe paged, elections not needed, no reassignments"
}

scenario_config_command() {
    local topic
    topic="$(unique configcmd)"
    create_topic cc-create "$topic" 1 || { REASON="create: $(tail_of cc-create.err)"; return 1; }
    local -a base=(--bootstrap-server "$BROKER_BOOTSTRAP" --entity-type topics --entity-name "$topic")
    jt cc-alter "$CONFIG_CMD" "${base[@]}" --alter --add-config retention.ms=1234 ||
        { REASON="--alter --add-config retention.ms=1234: $(tail_of cc-alter.out) $(tail_of cc-alter.err)"; return 1; }
    jt cc-describe1 "$CONFIG_CMD" "${base[@]}" --describe &&
        grep -qE '^\s*retention\.ms=1234 ' "$W/cc-describe1.out" ||
        { REASON="--describe after --alter does not show retention.ms=1234: $(tail_of cc-describe1.out) $(tail_of cc-describe1.err 3)"; return 1; }
    # --all lists the defaults too (DescribeConfigs with synonyms).
    jt cc-describe-all "$CONFIG_CMD" "${base[@]}" --describe --all &&
        grep -qE '^\s*cleanup\.policy=delete ' "$W/cc-describe-all.out" ||
        { REASON="--describe --all does not show cleanup.policy=delete: $(tail_of cc-describe-all.out 3) $(tail_of cc-describe-all.err 3)"; return 1; }
    if jt cc-invalid "$CONFIG_CMD" "${base[@]}" --alter --add-config retention.ms=soon; then
        REASON="--add-config retention.ms=soon was accepted: $(tail_of cc-invalid.out)"; return 1
    fi
    grep -qiE 'InvalidConfigurationException|Invalid value|invalid' "$W/cc-invalid.out" "$W/cc-invalid.err" ||
        { REASON="retention.ms=soon refused without saying it is invalid: $(tail_of cc-invalid.out) $(tail_of cc-invalid.err)"; return 1; }
    jt cc-describe2 "$CONFIG_CMD" "${base[@]}" --describe && grep -qE '^\s*retention\.ms=1234 ' "$W/cc-describe2.out" ||
        { REASON="after the refused change retention.ms is no longer 1234: $(tail_of cc-describe2.out)"; return 1; }
    jt cc-delete "$CONFIG_CMD" "${base[@]}" --alter --delete-config retention.ms &&
        jt cc-describe3 "$CONFIG_CMD" "${base[@]}" --describe && ! grep -q 'retention.ms=' "$W/cc-describe3.out" ||
        { REASON="--delete-config retention.ms did not remove it: $(tail_of cc-describe3.out) $(tail_of cc-delete.err 3)"; return 1; }
    DETAIL="describe, add retention.ms=1234, --all, refuse 'soon', delete-config"
}

scenario_delete_records() {
    local topic
    topic="$(unique delrec)"
    create_topic dr-create "$topic" 1 || { REASON="create: $(tail_of dr-create.err)"; return 1; }
    produce dr-produce "$topic" 100 || { REASON="producing 100 records: $(tail_of dr-produce.err)"; return 1; }
    printf '{"version":1,"partitions":[{"topic":"%s","partition":0,"offset":40}]}\n' "$topic" >"$W/delete-records.json"
    jt dr-delete org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$BROKER_BOOTSTRAP" \
        --offset-json-file "$W/delete-records.json" ||
        { REASON="DeleteRecordsCommand: $(tail_of dr-delete.out) $(tail_of dr-delete.err)"; return 1; }
    grep -qE "partition: $topic-0\s+low_watermark: 40" "$W/dr-delete.out" ||
        { REASON="DeleteRecordsCommand did not report low_watermark 40: $(tail_of dr-delete.out)"; return 1; }
    jt dr-earliest "$OFFSETS" --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$topic" --time -2 &&
        [[ "$(cat "$W/dr-earliest.out")" == "$topic:0:40" ]] ||
        { REASON="GetOffsetShell --time -2 says '$(tail_of dr-earliest.out)', want $topic:0:40 $(tail_of dr-earliest.err 3)"; return 1; }
    jt dr-latest "$OFFSETS" --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$topic" --time -1 &&
        [[ "$(cat "$W/dr-latest.out")" == "$topic:0:100" ]] ||
        { REASON="GetOffsetShell --time -1 says '$(tail_of dr-latest.out)', want $topic:0:100"; return 1; }
    DETAIL="100 records, deleted before 40; earliest 40, latest 100"
}

# ---- group members (java-tools/GroupMember) --------------------------------

# member_start NAME TOPIC GROUP: a GroupMember process, output in $W/NAME.member.
member_start() {
    java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$TOOLS_CLASSES:$LIB/*" GroupMember \
        "$BROKER_BOOTSTRAP" "$2" "$3" "$1" "$SESSION_TIMEOUT_MS" >"$W/$1.member" 2>"$W/$1.member.err" &
    MEMBER_PIDS+=($!)
    eval "PID_$1=$!"
}
member_pid() { local v="PID_$1"; echo "${!v}"; }
member_term() {   # SIGTERM, wait for its clean close (CLOSED)
    local pid
    pid="$(member_pid "$1")"
    kill -TERM "$pid" 2>/dev/null
    local i
    for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" 2>/dev/null
    grep -qx CLOSED "$W/$1.member"
}
assignment_of() { grep '^ASSIGNED ' "$W/$1.member" 2>/dev/null | tail -n 1 | cut -d' ' -f2; }
# split_ok PARTITIONS MEMBER...: the members' current assignments are disjoint,
# non-empty and together cover p0..p(PARTITIONS-1).
split_ok() {
    local n="$1" m all=""
    shift
    for m in "$@"; do
        local a
        a="$(assignment_of "$m")"
        [[ -n "$a" && "$a" != - ]] || return 1
        all+="${all:+,}$a"
    done
    [[ "$(tr ',' '\n' <<<"$all" | sort -V | tr '\n' ' ')" == "$(seq -f 'p%g' 0 $((n - 1)) | tr '\n' ' ')" ]]
}
describe_split() {
    local m out=""
    for m in "$@"; do out+="$m=[$(assignment_of "$m")] "; done
    echo "$out"
}
# values_of MEMBER...: the distinct record values the members consumed.
values_of() { local m; for m in "$@"; do grep '^REC ' "$W/$m.member" | cut -d' ' -f4; done; }
# consumed_all PREFIX COUNT MEMBER...: values PREFIX.0 .. PREFIX.(COUNT-1) all consumed.
consumed_all() {
    local pfx="$1" count="$2"
    shift 2
    [[ "$(values_of "$@" | grep -c "^$pfx\.")" -ge "$count" ]] &&
        [[ "$(values_of "$@" | grep "^$pfx\." | sort -u | wc -l)" == "$count" ]]
}

# ---- 4. ConsumerGroupCommand -----------------------------------------------

# group_rows NAME GROUP TOPIC: the describe rows of TOPIC (after jt NAME ... --describe).
group_rows() { awk -v g="$2" -v t="$3" '$1 == g && $2 == t' "$W/$1.out"; }

scenario_group_command() {
    local topic group
    topic="$(unique cgtopic)"
    group="$(unique cgroup)"
    local -a gc=(--bootstrap-server "$BROKER_BOOTSTRAP")
    create_topic cg-create "$topic" 3 || { REASON="create: $(tail_of cg-create.err)"; return 1; }
    produce cg-produce "$topic" 300 7 || { REASON="producing 300 records: $(tail_of cg-produce.err)"; return 1; }
    member_start cgm "$topic" "$group"
    wait_until 60 consumed_all 7 300 cgm ||
        { REASON="a GroupMember consumed $(values_of cgm | sort -u | wc -l) of 300 records in 60 s: $(tail -n 3 "$W/cgm.member.err" | tr '\n' ' ')"; return 1; }
    wait_until 10 grep -q '^COMMITTED' "$W/cgm.member"

    jt cg-list "$GROUP_CMD" "${gc[@]}" --list && grep -qx "$group" "$W/cg-list.out" ||
        { REASON="--list does not show $group: $(tail_of cg-list.out) $(tail_of cg-list.err 3)"; return 1; }
    # The commits are synchronous, the lag may still be settling for a moment.
    lag_zero_active() {
        jt cg-describe "$GROUP_CMD" "${gc[@]}" --describe --group "$group" || return 1
        [[ "$(group_rows cg-describe "$group" "$topic" | awk '$6 == "0" && $7 != "-" && $4 != "-"' | wc -l)" == 3 ]]
    }
    wait_until 10 lag_zero_active ||
        { REASON="--describe: want 3 rows with LAG 0 and a CONSUMER-ID: $(tail_of cg-describe.out 4) $(tail_of cg-describe.err 3)"; return 1; }
    jt cg-members "$GROUP_CMD" "${gc[@]}" --describe --members --group "$group" &&
        awk -v g="$group" '$1 == g && $NF == "3"' "$W/cg-members.out" | grep -q cgm ||
        { REASON="--describe --members: want one member cgm with 3 partitions: $(tail_of cg-members.out 3) $(tail_of cg-members.err 3)"; return 1; }
    jt cg-state "$GROUP_CMD" "${gc[@]}" --describe --state --group "$group" &&
        awk -v g="$group" '$1 == g' "$W/cg-state.out" | grep -qE '\sStable\s+1\s*$' ||
        { REASON="--describe --state: want Stable with 1 member: $(tail_of cg-state.out 3) $(tail_of cg-state.err 3)"; return 1; }

    member_term cgm || { REASON="the GroupMember did not close cleanly: $(tail -n 3 "$W/cgm.member.err" | tr '\n' ' ')"; return 1; }
    produce cg-produce2 "$topic" 30 8 || { REASON="producing 30 more: $(tail_of cg-produce2.err)"; return 1; }
    local lag
    jt cg-describe2 "$GROUP_CMD" "${gc[@]}" --describe --group "$group" ||
        { REASON="--describe of the inactive group: $(tail_of cg-describe2.out) $(tail_of cg-describe2.err)"; return 1; }
    lag="$(group_rows cg-describe2 "$group" "$topic" | awk '{ s += $6 } END { print s + 0 }')"
    [[ "$lag" == 30 ]] || { REASON="--describe of the inactive group: total LAG $lag, want 30: $(tail_of cg-describe2.out 5)"; return 1; }
    grep -q "has no active members" "$W/cg-describe2.out" "$W/cg-describe2.err" ||
        { REASON="--describe does not say the group has no active members: $(tail_of cg-describe2.out 5)"; return 1; }

    jt cg-reset "$GROUP_CMD" "${gc[@]}" --reset-offsets --to-earliest --execute --group "$group" --topic "$topic" ||
        { REASON="--reset-offsets --to-earliest --execute: $(tail_of cg-reset.out) $(tail_of cg-reset.err)"; return 1; }
    [[ "$(group_rows cg-reset "$group" "$topic" | awk '$NF == "0"' | wc -l)" == 3 ]] ||
        { REASON="--reset-offsets: want NEW-OFFSET 0 on 3 partitions: $(tail_of cg-reset.out 4)"; return 1; }
    jt cg-describe3 "$GROUP_CMD" "${gc[@]}" --describe --group "$group"
    lag="$(group_rows cg-describe3 "$group" "$topic" | awk '$4 == "0" { s += $6; n++ } END { print n "/" s }')"
    [[ "$lag" == 3/330 ]] || { REASON="after the reset: want CURRENT-OFFSET 0 on 3 partitions, LAG 330 (got partitions/lag $lag): $(tail_of cg-describe3.out 4)"; return 1; }

    jt cg-delete "$GROUP_CMD" "${gc[@]}" --delete --group "$group" &&
        grep -q "Deletion of requested consumer groups ('$group') was successful" "$W/cg-delete.out" ||
        { REASON="--delete --group: $(tail_of cg-delete.out) $(tail_of cg-delete.err)"; return 1; }
    jt cg-list2 "$GROUP_CMD" "${gc[@]}" --list && ! grep -qx "$group" "$W/cg-list2.out" ||
        { REASON="--list still shows $group after --delete"; return 1; }
    DETAIL="list, describe (lag 0, member, Stable), lag 30 inactive, reset to earliest, delete"
}

# ---- 5. Java consumers in one group, one SIGKILLed -------------------------

scenario_java_group() {
    local topic group
    topic="$(unique grouptopic)"
    group="$(unique javagroup)"
    create_topic jg-create "$topic" 6 || { REASON="create: $(tail_of jg-create.err)"; return 1; }
    member_start m1 "$topic" "$group"
    member_start m2 "$topic" "$group"
    wait_until 60 split_ok 6 m1 m2 || { REASON="two members did not split 6 partitions in 60 s: $(describe_split m1 m2)"; return 1; }
    local two
    two="$(describe_split m1 m2)"
    member_start m3 "$topic" "$group"
    wait_until 60 split_ok 6 m1 m2 m3 || { REASON="three members did not split 6 partitions in 60 s: $(describe_split m1 m2 m3)"; return 1; }
    local three
    three="$(describe_split m1 m2 m3)"

    produce jg-produce1 "$topic" 600 1 || { REASON="producing batch 1: $(tail_of jg-produce1.err)"; return 1; }
    wait_until 60 consumed_all 1 600 m1 m2 m3 ||
        { REASON="batch 1: $(values_of m1 m2 m3 | grep -c '^1\.') of 600 consumed by 3 members"; return 1; }

    local m3_read
    m3_read="$(values_of m3 | wc -l)"
    ((m3_read > 0)) || { REASON="m3 got none of batch 1 ($(describe_split m1 m2 m3))"; return 1; }
    # m3 crashes: the others take its partitions once its session expires.
    local killed_at took
    kill -KILL "$(member_pid m3)"
    killed_at="$(now_ms)"
    wait "$(member_pid m3)" 2>/dev/null
    produce jg-produce2 "$topic" 600 2 || { REASON="producing batch 2: $(tail_of jg-produce2.err)"; return 1; }
    wait_until $((SESSION_TIMEOUT_MS / 1000 + TAKEOVER_SLACK_S)) split_ok 6 m1 m2 ||
        { REASON="m3 SIGKILLed; $((SESSION_TIMEOUT_MS / 1000 + TAKEOVER_SLACK_S)) s later m1, m2 hold $(describe_split m1 m2)"; return 1; }
    took=$(($(now_ms) - killed_at))
    wait_until 60 consumed_all 2 600 m1 m2 ||
        { REASON="batch 2: $(values_of m1 m2 | grep '^2\.' | sort -u | wc -l) of 600 consumed by m1, m2 after the takeover"; return 1; }
    wait_until 10 consumed_all 1 600 m1 m2 m3 || { REASON="batch 1 incomplete after the takeover"; return 1; }

    # Every partition's committed offset is its log end.
    local -a gc=(--bootstrap-server "$BROKER_BOOTSTRAP")
    committed_to_end() {
        jt jg-describe "$GROUP_CMD" "${gc[@]}" --describe --group "$group" || return 1
        # A partition without records has no committed offset ("-").
        [[ "$(group_rows jg-describe "$group" "$topic" | awk '$4 == $5 || ($4 == "-" && $5 == "0")' | wc -l)" == 6 ]]
    }
    wait_until 15 committed_to_end ||
        { REASON="committed offsets not at the log end on all 6 partitions: $(tail_of jg-describe.out 7)"; return 1; }
    member_term m1 && member_term m2 || { REASON="m1/m2 did not close cleanly"; return 1; }

    # The group restarted: it resumes from the committed offsets.
    produce jg-produce3 "$topic" 300 3 || { REASON="producing batch 3: $(tail_of jg-produce3.err)"; return 1; }
    member_start m4 "$topic" "$group"
    wait_until 60 consumed_all 3 300 m4 ||
        { REASON="restarted group: m4 consumed $(values_of m4 | grep -c '^3\.') of 300 new records in 60 s"; return 1; }
    sleep 2
    local again dup
    again="$(values_of m4 | grep -vc '^3\.')"
    dup="$(values_of m4 | sort | uniq -d | wc -l)"
    member_term m4
    ((again == 0 && dup == 0)) ||
        { REASON="restarted group re-read $again records committed before (and $dup twice)"; return 1; }
    DETAIL="2 members: ${two}; 3: ${three}; m3 read ${m3_read}, SIGKILLed, m1+m2 took over in ${took} ms (session ${SESSION_TIMEOUT_MS} ms); restarted group read only the 300 new records"
}

# ---- 9. Client quotas ---------------------------------------------------------

# quota_perf NAME CLIENT_ID RECORDS TOPIC: ProducerPerformance of 1,000-byte
# records as CLIENT_ID, with the producer's metrics at the end.
quota_perf() {
    timeout --foreground 240 java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$LIB/*" \
        org.apache.kafka.tools.ProducerPerformance --topic "$4" --num-records "$3" --record-size 1000 \
        --throughput -1 --print-metrics \
        --command-property "bootstrap.servers=$BROKER_BOOTSTRAP" "client.id=$2" >"$W/$1.out" 2>"$W/$1.err"
}

# The largest produce-throttle-time-max a quota_perf run's metrics show.
throttle_max() {
    grep -oE '^producer-metrics:produce-throttle-time-max:\{client-id=[^}]*\} *: *[0-9.E]+' "$W/$1.out" |
        awk -F: '{print $NF}' | tr -d ' ' | sort -g | tail -1
}

scenario_client_quotas() {
    local topic limited free
    topic="$(unique quota)"
    limited="$(unique quota-limited)"
    free="$(unique quota-free)"
    jt q-alter "$CONFIG_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --alter --entity-type clients \
        --entity-name "$limited" --add-config producer_byte_rate=1048576 ||
        { REASON="alter: $(tail_of q-alter.err)"; return 1; }
    jt q-describe "$CONFIG_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --describe --entity-type clients \
        --entity-name "$limited" && grep -q "producer_byte_rate=1048576" "$W/q-describe.out" ||
        { REASON="describe: $(tail_of q-describe.out) $(tail_of q-describe.err)"; return 1; }
    if jt q-refused "$CONFIG_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --alter --entity-type clients \
        --entity-name "$limited" --add-config controller_mutation_rate=50 ||
        ! grep -q "InvalidRequestException: controller_mutation_rate is not supported" "$W/q-refused.err"; then
        REASON="controller_mutation_rate not refused clearly: $(tail_of q-refused.err 3)"
        return 1
    fi
    if jt q-negative "$CONFIG_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --alter --entity-type clients \
        --entity-name "$limited" --add-config request_percentage=-1 ||
        ! grep -q "InvalidRequestException: Invalid value -1 for request_percentage" "$W/q-negative.err"; then
        REASON="a negative request_percentage not refused clearly: $(tail_of q-negative.err 3)"
        return 1
    fi
    # 24 MB: past the first ten seconds' allowance (10 MiB at once, as the
    # quota's rate is measured over at least ten seconds), then held to it.
    quota_perf q-limited "$limited" 24000 "$topic" ||
        { REASON="limited ProducerPerformance failed: $(tail_of q-limited.err)"; return 1; }
    quota_perf q-free "$free" 8000 "$topic" ||
        { REASON="free ProducerPerformance failed: $(tail_of q-free.err)"; return 1; }
    # The whole run's rate: 24 MB with the first 10 MiB allowed at once and
    # the rest at 1 MiB/s comes to about 1.4 MiB/s; unthrottled, a debug build
    # here produces three times that.
    local rate
    rate="$(grep -oE '^24000 records sent, [0-9.]+ records/sec \([0-9.]+ MB/sec\)' "$W/q-limited.out" |
        grep -oE '[0-9.]+ MB/sec' | awk '{print $1}')"
    [[ -n "$rate" ]] || { REASON="no final '24000 records sent' line: $(tail_of q-limited.out 3)"; return 1; }
    awk -v r="$rate" 'BEGIN { exit !(r >= 0.6 && r <= 1.6) }' ||
        { REASON="the limited producer ran at $rate MB/s, not about 1 MiB/s after its first 10 MiB"; return 1; }
    local limited_throttle free_throttle
    limited_throttle="$(throttle_max q-limited)"
    free_throttle="$(throttle_max q-free)"
    awk -v t="${limited_throttle:-0}" 'BEGIN { exit !(t > 0) }' ||
        { REASON="the limited producer was never throttled (produce-throttle-time-max ${limited_throttle:-missing})"; return 1; }
    awk -v t="${free_throttle:--1}" 'BEGIN { exit !(t == 0) }' ||
        { REASON="the producer without a quota was throttled (produce-throttle-time-max ${free_throttle:-missing})"; return 1; }
    scenario_request_quota "$topic" || return 1
    DETAIL="producer_byte_rate=1048576 on $limited: 24 MB at $rate MB/s (the first 10 MiB at once), throttled up to ${limited_throttle} ms; another client id never throttled; $DETAIL"
}

# request_percentage on a client id of its own: ConfigCommand sets and
# describes it; a ProducerPerformance as that id is throttled (by at most
# Kafka's one-second bound) and takes longer than the same run without a quota.
scenario_request_quota() {
    local topic="$1" busy
    busy="$(unique quota-busy)"
    jt q-alter-req "$CONFIG_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --alter --entity-type clients \
        --entity-name "$busy" --add-config request_percentage=0.1 ||
        { REASON="alter request_percentage: $(tail_of q-alter-req.err)"; return 1; }
    jt q-describe-req "$CONFIG_CMD" --bootstrap-server "$BROKER_BOOTSTRAP" --describe --entity-type clients \
        --entity-name "$busy" && grep -q "request_percentage=0.1" "$W/q-describe-req.out" ||
        { REASON="describe request_percentage: $(tail_of q-describe-req.out) $(tail_of q-describe-req.err)"; return 1; }
    # 0.1 % of a thread is 1 ms of the agent's time a second (10 ms at once,
    # the rate being measured over at least ten seconds). Only the time
    # threads run the request counts, not its wait for the object to be
    # committed, and an embedded debug build ran 1500 records without
    # crossing the 10 ms (2000 barely did): 3000 records take some 25 s under
    # the quota on either backend, one or two without.
    local t0 busy_ms free_ms records=3000
    t0="$(now_ms)"
    quota_perf q-busy "$busy" "$records" "$topic" ||
        { REASON="ProducerPerformance under request_percentage failed: $(tail_of q-busy.err)"; return 1; }
    busy_ms=$(($(now_ms) - t0))
    t0="$(now_ms)"
    quota_perf q-busy-free "$(unique quota-free)" "$records" "$topic" ||
        { REASON="ProducerPerformance without a quota failed: $(tail_of q-busy-free.err)"; return 1; }
    free_ms=$(($(now_ms) - t0))
    local busy_throttle free_throttle
    busy_throttle="$(throttle_max q-busy)"
    free_throttle="$(throttle_max q-busy-free)"
    awk -v t="${busy_throttle:-0}" 'BEGIN { exit !(t > 0 && t <= 1000) }' ||
        { REASON="the producer under request_percentage was not throttled within 1 s (produce-throttle-time-max ${busy_throttle:-missing})"; return 1; }
    awk -v t="${free_throttle:--1}" 'BEGIN { exit !(t == 0) }' ||
        { REASON="the producer without a quota was throttled (produce-throttle-time-max ${free_throttle:-missing})"; return 1; }
    ((busy_ms > free_ms)) ||
        { REASON="the producer under request_percentage took ${busy_ms} ms, no longer than ${free_ms} ms without"; return 1; }
    DETAIL="request_percentage=0.1 on $busy: $records records in ${busy_ms} ms (${free_ms} ms without a quota), throttled up to ${busy_throttle} ms"
}

# ---- the run -----------------------------------------------------------------

run_scenario() {   # run_scenario NAME FUNCTION
    [[ -z "${TOOLS_ONLY:-}" || " $TOOLS_ONLY " == *" $1 "* ]] || return 0
    REASON=""
    DETAIL=""
    local t0
    t0="$(now_ms)"
    if "$2"; then
        record PASS "tools/$backend/$1" "$DETAIL ($(($(now_ms) - t0)) ms)"
    else
        record FAIL "tools/$backend/$1" "$REASON"
        broker_log_tail 25
    fi
    stop_members
}

run_backend() {
    backend="$1"
    W="$BROKER_DIR/tools"
    mkdir -p "$W"
    printf 'enable.idempotence=true\nacks=all\nretries=2147483647\n' >"$W/idempotent.properties"
    run_scenario producer-perf scenario_producer_perf
    run_scenario verifiable scenario_verifiable
    run_scenario topic-command scenario_topic_command
    run_scenario placement scenario_placement
    run_scenario config-command scenario_config_command
    run_scenario delete-records scenario_delete_records
    run_scenario group-command scenario_group_command
    run_scenario java-group scenario_java_group
    run_scenario client-quotas scenario_client_quotas
}

on_each_backend tools run_backend --group-initial-rebalance-delay-ms 0
exit "$COMPAT_FAILED"
