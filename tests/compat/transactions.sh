#!/usr/bin/env bash
# Kafka transactions with real clients, on each backend pair in
# COMPAT_BACKENDS: a fresh broker started with
# --group-initial-rebalance-delay-ms 0 and, when the broker has it,
# --transaction-abort-check-interval-ms 1000.
#
# Scenarios per backend:
#   java/commit-abort       (txn/TxnCompat.java) 20 transactions of 50 records
#                           on a 3-partition topic, even ones committed, odd
#                           ones aborted: read_committed reads each committed
#                           record once and no aborted one; read_uncommitted
#                           reads all 1,000; each partition's end offset is its
#                           records plus one marker per transaction that
#                           touched it, and the offsets with no record are
#                           exactly those after each transaction's last record
#   java/zombie-fenced      three producers with one transactional.id, each
#                           fenced by the next's initTransactions mid-
#                           transaction: the first's commitTransaction fails
#                           with ProducerFencedException, the second's next
#                           send and commitTransaction with
#                           InvalidProducerEpochException (Kafka 4.4.0's
#                           classes, with transaction.version 1 and 2 alike);
#                           read_committed reads the third's records only
#   tools/kafka-transactions TransactionsCommand list shows a transactional id
#                           left Ongoing (a producer that sent and paused);
#                           describe shows it Ongoing with its two partitions
#   python/abandoned        (txn_client.py, confluent-kafka) a producer with
#                           transaction.timeout.ms=5000 is SIGKILLed inside
#                           its transaction; another commits after it:
#                           read_committed reads nothing at first, then within
#                           ABORT_DEADLINE_S only the later records (the
#                           broker aborted the abandoned one); end offset 22
#   python/consume-transform-produce
#                           read_committed consumer + transactional producer
#                           with send_offsets_to_transaction, the first batch
#                           aborted and redone: exactly N outputs under
#                           read_committed, N + the batch under
#                           read_uncommitted, the group's offsets at the end
#   go/group-transact       (txn/go, franz-go) the same with
#                           kgo.GroupTransactSession
#
# Compiles txn/TxnCompat.java into $STREAMHOUSE_CACHE/java/txn-classes and
# builds txn/go into $STREAMHOUSE_CACHE/go/bin/txn when they changed. Needs the
# jars and the venv of ./scripts/test.sh --setup-only.
#
# Usage: tests/compat/transactions.sh [--agents N]
#        (STREAMHOUSE_BIN, COMPAT_BACKENDS, COMPAT_KEEP=1)
# With --agents N (N > 1) every scenario runs against a cluster of N agents,
# named transactions-Nagents/... (clients bootstrap with every agent; the
# transactions, the partitions' leaders and the group coordinator land on
# different agents), on the pg-s3 pair alone when COMPAT_BACKENDS has it, to
# keep the test command's time (a pass with one agent covers both pairs).
set -uo pipefail
if [[ "${1:-}" == --agents ]]; then
    export COMPAT_AGENTS="$2"
    [[ " ${COMPAT_BACKENDS:-embedded pg-s3} " == *" pg-s3 "* ]] && export COMPAT_BACKENDS=pg-s3
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LIB="$STREAMHOUSE_CACHE/java/lib"
CLASSES="$STREAMHOUSE_CACHE/java/txn-classes"
GO_DIR="$STREAMHOUSE_CACHE/go"
GO_TXN="$GO_DIR/bin/txn"
PY="$SH_VENV/bin/python"
TIMEOUT=90
# The abandoned producer's transaction.timeout.ms, and how long after its
# SIGKILL read_committed may still be blocked: the timeout plus Kafka's abort
# check every 10 s (transaction.abort.timed.out.transaction.cleanup.interval.ms)
# plus slack.
ABANDON_TIMEOUT_MS=5000
ABORT_DEADLINE_S=35
CTP_RECORDS=300

# What Kafka 4.4.0 answers a fenced producer: A commits right after B's
# initTransactions (EndTxn), B sends once more after C's, then commits.
ZOMBIE_WANT="A commitTransaction=ProducerFencedException B send=InvalidProducerEpochException B commitTransaction=InvalidProducerEpochException"

BG_PID=""
bg_kill() {
    if [[ -n "$BG_PID" ]]; then
        kill -KILL "$BG_PID" 2>/dev/null
        wait "$BG_PID" 2>/dev/null
        BG_PID=""
    fi
}
trap 'bg_kill; broker_cleanup' EXIT

if [[ ! -x "$PY" ]]; then
    record FAIL "transactions/setup" "no venv at $SH_VENV; run ./scripts/test.sh --setup-only"
    exit 1
fi
compile_java transactions "$CLASSES" "$COMPAT_DIR/txn/TxnCompat.java" || exit 1

# franz-go's module is in the cache of scripts/test.sh (ensure_go_compat).
GO_SRC="$COMPAT_DIR/txn/go"
go_want="$(cat "$GO_SRC/go.mod" "$GO_SRC/go.sum" "$GO_SRC"/*.go | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$GO_TXN.stamp" 2>/dev/null)" != "$go_want" || ! -x "$GO_TXN" ]]; then
    mkdir -p "$GO_DIR/bin"
    rm -f "$GO_TXN" "$GO_TXN.stamp"
    if env GOPATH="$GO_DIR" GOMODCACHE="$GO_DIR/mod" GOCACHE="$GO_DIR/build" GOFLAGS=-modcacherw \
            bash -c 'cd "$1" && go build -trimpath -o "$2" .' _ "$GO_SRC" "$GO_TXN" \
            >"$COMPAT_RUN_DIR/transactions-go-build.log" 2>&1; then
        echo "$go_want" >"$GO_TXN.stamp"
    else
        record FAIL "transactions/setup" "go build of txn/go failed: $(head -c 600 "$COMPAT_RUN_DIR/transactions-go-build.log")"
    fi
fi

# A short abort check, when the broker has the flag. (Not asked of the
# reference script, which would start Kafka for --help; Kafka checks every 10 s.)
BROKER_EXTRA=(--group-initial-rebalance-delay-ms 0)
if [[ "${COMPAT_REFERENCE:-0}" != 1 ]] &&
    "$STREAMHOUSE_BIN" --help 2>/dev/null | grep -q -- '--transaction-abort-check-interval-ms'; then
    BROKER_EXTRA+=(--transaction-abort-check-interval-ms 1000)
fi

tc() {   # tc MODE ARGS...: a TxnCompat call with a bound on its time
    timeout "$TIMEOUT" java -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$CLASSES:$LIB/*" TxnCompat "$1" "$BROKER_BOOTSTRAP" "${@:2}"
}

tool() {   # tool ARGS...: kafka-transactions
    timeout "$TIMEOUT" java -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$LIB/*" org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$BROKER_BOOTSTRAP" "$@"
}

py() { timeout "$TIMEOUT" "$PY" "$COMPAT_DIR/txn_client.py" "$1" "$BROKER_BOOTSTRAP" "${@:2}"; }

# outcome NAME FILE: the last line of a client's output FILE ("OK detail" or
# "FAIL reason") into DETAIL or REASON; status 0 for OK.
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

scenario_commit_abort() {
    local t
    t="$(unique txn-ca)"
    tc commit-abort "$t" "$t-tx" >"$W/ca.out" 2>"$W/ca.err"
    outcome TxnCompat "$W/ca.out" $?
}

scenario_zombie() {
    local t
    t="$(unique txn-zombie)"
    tc zombie "$t" "$t-tx" >"$W/zombie.out" 2>"$W/zombie.err"
    outcome TxnCompat "$W/zombie.out" $? || return 1
    if [[ "$DETAIL" != "$ZOMBIE_WANT "* ]]; then
        REASON="the fenced producers' exceptions: $DETAIL; want $ZOMBIE_WANT"
        return 1
    fi
}

# The value of COLUMN in the line of OUTPUT (kafka-transactions' tab-separated
# table) whose TransactionalId is ID.
column_of() {
    local output="$1" id="$2" column="$3"
    awk -F'\t' -v id="$id" -v col="$column" '
        NR == 1 { for (i = 1; i <= NF; i++) { h = $i; gsub(/ /, "", h); idx[h] = i }; next }
        { v = $idx["TransactionalId"]; gsub(/ /, "", v)
          if (v == id) { c = $idx[col]; gsub(/ /, "", c); print c; exit } }' <<<"$output"
}

scenario_tools() {
    local t i listed described state parts
    t="$(unique txn-held)"
    tc hold "$t" "$t-tx" >"$W/hold.out" 2>"$W/hold.err" &
    BG_PID=$!
    for ((i = 0; i < 600; i++)); do
        grep -q '^HELD' "$W/hold.out" && break
        kill -0 "$BG_PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^HELD' "$W/hold.out"; then
        REASON="the holding producer did not print HELD (it exited, or 60 s passed): $(tail -n 2 "$W/hold.out") $(grep -v '^\s*at ' "$W/hold.err" | tail -n 3 | tr '\n' ' ' | cut -c1-500)"
        bg_kill
        return 1
    fi
    listed="$(tool list 2>"$W/list.err")"
    described="$(tool describe --transactional-id "$t-tx" 2>"$W/describe.err")"
    bg_kill
    state="$(column_of "$listed" "$t-tx" TransactionState)"
    if [[ "$state" != Ongoing ]]; then
        REASON="list: $t-tx in state '${state:-not listed}', want Ongoing: $(head -c 600 <<<"$listed" | tr '\t\n' '  ') $(tail -n 2 "$W/list.err" | tr '\n' ' ')"
        return 1
    fi
    state="$(column_of "$described" "$t-tx" TransactionState)"
    parts="$(column_of "$described" "$t-tx" TopicPartitions | tr ',' '\n' | sort | paste -sd,)"
    if [[ "$state" != Ongoing || "$parts" != "$t-0,$t-1" ]]; then
        REASON="describe: state '$state', partitions '$parts', want Ongoing and $t-0,$t-1: $(tr '\t\n' '  ' <<<"$described" | tr -s ' ' | cut -c1-600) $(tail -n 2 "$W/describe.err" | tr '\n' ' ')"
        return 1
    fi
    DETAIL="list: $t-tx Ongoing; describe: Ongoing, partitions $parts, epoch $(column_of "$described" "$t-tx" ProducerEpoch), timeout $(column_of "$described" "$t-tx" TransactionTimeoutMs) ms"
}

scenario_abandoned() {
    local t i rc
    t="$(unique txn-abandoned)"
    py abandon "$t" "$t-tx" "$ABANDON_TIMEOUT_MS" >"$W/abandon.out" 2>"$W/abandon.err" &
    BG_PID=$!
    for ((i = 0; i < 600; i++)); do
        grep -q '^READY' "$W/abandon.out" && break
        kill -0 "$BG_PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^READY' "$W/abandon.out"; then
        REASON="the abandoned producer did not print READY (it exited, or 60 s passed): $(tail -n 2 "$W/abandon.out" | tr '\n' ' ') $(tail -n 3 "$W/abandon.err" | tr '\n' ' ' | cut -c1-500)"
        bg_kill
        return 1
    fi
    bg_kill   # SIGKILL inside the transaction
    py after-abandon "$t" "$t-later" "$ABORT_DEADLINE_S" >"$W/after.out" 2>"$W/after.err"
    rc=$?
    outcome txn_client.py "$W/after.out" "$rc" || return 1
    DETAIL="transaction.timeout.ms=$ABANDON_TIMEOUT_MS, killed; $DETAIL (${BROKER_EXTRA[*]})"
}

scenario_ctp() {
    local t
    t="$(unique txn-ctp)"
    py ctp "$t-in" "$t-out" "$t-group" "$t-tx" "$CTP_RECORDS" >"$W/ctp.out" 2>"$W/ctp.err"
    outcome txn_client.py "$W/ctp.out" $?
}

scenario_go() {
    local t
    [[ -x "$GO_TXN" ]] || { REASON="$GO_TXN missing (see transactions/setup)"; return 1; }
    t="$(unique txn-go)"
    timeout "$TIMEOUT" "$GO_TXN" -bootstrap "$BROKER_BOOTSTRAP" -in "$t-in" -out "$t-out" -group "$t-group" \
        -txid "$t-tx" -n "$CTP_RECORDS" >"$W/go.out" 2>"$W/go.err"
    outcome "the franz-go program" "$W/go.out" $?
}

run_scenario() {   # run_scenario NAME FUNCTION
    REASON=""
    DETAIL=""
    local t0=$SECONDS
    if "$2"; then
        record PASS "transactions$(agents_tag)/$backend/$1" "$DETAIL ($((SECONDS - t0)) s)"
    else
        record FAIL "transactions$(agents_tag)/$backend/$1" "$REASON ($((SECONDS - t0)) s)"
        broker_log_tail 25
    fi
}

run_backend() {
    backend="$1"
    W="$BROKER_DIR/txn"
    mkdir -p "$W"
    run_scenario java/commit-abort scenario_commit_abort
    run_scenario java/zombie-fenced scenario_zombie
    run_scenario tools/kafka-transactions scenario_tools
    run_scenario python/abandoned scenario_abandoned
    run_scenario python/consume-transform-produce scenario_ctp
    run_scenario go/group-transact scenario_go
    if ! broker_alive; then
        record FAIL "transactions$(agents_tag)/$backend/broker-alive" "the broker died during the run"
    fi
}

on_each_backend transactions run_backend "${BROKER_EXTRA[@]}"
exit "$COMPAT_FAILED"
