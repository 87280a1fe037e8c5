#!/usr/bin/env bash
# kcat 1.7.1 (librdkafka 2.0.2, Debian's) against a fresh StreamHouse broker,
# on each backend pair in COMPAT_BACKENDS (default: embedded pg-s3).
#
# Scenarios per backend:
#   metadata                 kcat -L lists the broker at its address
#   CODEC/produce            1,000 keyed records with headers (kcat -P -K: -H -z CODEC),
#                            in two bursts of 500, to an auto-created topic
#   CODEC/from-beginning     kcat -C -o beginning -e: all 1,000, byte for byte
#   CODEC/from-offset        kcat -C -o 500 -e: records 500..999
#   CODEC/from-timestamp     kcat -C -o s@T -e, T taken between the bursts: 500..999
# for CODEC in none gzip snappy lz4 zstd. Output format '%k|%s|%o|%h'.
#
# With COMPAT_AGENTS=N the broker is a cluster of N agents and the names are
# kcat-Nagents/...; kcat_cluster.sh has the scenarios about the cluster itself.
#
# Usage: tests/compat/kcat.sh   (STREAMHOUSE_BIN, COMPAT_BACKENDS, COMPAT_KEEP=1, COMPAT_AGENTS)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CODECS=(none gzip snappy lz4 zstd)
N=1000
HALF=500
KCAT_TIMEOUT=45
FORMAT='%k|%s|%o|%h\n'

trap broker_cleanup EXIT

command -v kcat >/dev/null || { record FAIL "kcat/setup" "kcat not installed (apt-get install kcat)"; exit 1; }

# Lines "key-I:value-I-CODEC" for I in [from, to).
input_lines() { awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { for (i = a; i < b; i++) printf "key-%d:value-%d-%s\n", i, i, c }'; }
# What kcat must print for offsets [from, to).
expected_lines() { awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { for (i = a; i < b; i++) printf "key-%d|value-%d-%s|%d|a=b,codec=%s\n", i, i, c, i, c }'; }

# compare NAME GOT_FILE EXPECTED_FILE KCAT_STATUS ERR_FILE
compare() {
    local name="$1" got="$2" exp="$3" rc="$4" err="$5"
    if [[ "$rc" != 0 ]]; then
        record FAIL "$name" "kcat exited with status $rc after $(wc -l <"$got") lines; stderr: $(tail -n 5 "$err" | tr '\n' ' ')"
    elif cmp -s "$got" "$exp"; then
        record PASS "$name"
    else
        local first
        first="$(diff "$exp" "$got" | head -n 6 | tr '\n' ' ')"
        record FAIL "$name" "got $(wc -l <"$got") lines, expected $(wc -l <"$exp"); first differences (< expected, > got): $first"
    fi
}

run_backend() {
    local backend="$1" pfx="kcat$(agents_tag)/$1"
    local work="$BROKER_DIR/work"
    mkdir -p "$work"
    local -a kc=(kcat -b "$BROKER_BOOTSTRAP" -q)

    # metadata
    if timeout --foreground 30 "${kc[@]}" -L >"$work/metadata.txt" 2>"$work/metadata.err"; then
        local addr missing=""
        for addr in ${BROKER_BOOTSTRAP//,/ }; do grep -q "at $addr" "$work/metadata.txt" || missing+="$addr "; done
        if [[ -z "$missing" ]]; then
            record PASS "$pfx/metadata"
        else
            record FAIL "$pfx/metadata" "broker $missing not in: $(tr '\n' ' ' <"$work/metadata.txt" | head -c 400)"
        fi
    else
        record FAIL "$pfx/metadata" "kcat -L failed: $(tail -n 5 "$work/metadata.err" | tr '\n' ' ')"
        # Without metadata kcat can do nothing else: do not wait for every timeout.
        local c s
        for c in "${CODECS[@]}"; do
            for s in produce from-beginning from-offset from-timestamp; do
                record FAIL "$pfx/$c/$s" "not run: kcat -L failed"
            done
        done
        broker_log_tail 30
        return
    fi

    local codec
    for codec in "${CODECS[@]}"; do
        local topic
        topic="$(unique "kcat-$codec")"
        local -a prod=("${kc[@]}" -P -t "$topic" -p 0 -K: -H a=b -H "codec=$codec" -z "$codec"
                       -X acks=all -X message.timeout.ms=30000)
        local rc1 rc2 ts i
        # Metadata for the topic auto-creates it; produce once it has a leader
        # (a produce retried while the topic is being created may be reordered).
        for ((i = 0; i < 50; i++)); do
            timeout --foreground 15 "${kc[@]}" -L -t "$topic" 2>/dev/null | grep -q 'partition 0, leader [0-9]' && break
            sleep 0.2
        done
        input_lines 0 "$HALF" "$codec" | timeout --foreground "$KCAT_TIMEOUT" "${prod[@]}" 2>"$work/$codec.produce.err"
        rc1=$?
        # kcat stamps CreateTime when it produces: a time between the bursts
        # falls after every record of the first and before every one of the second.
        sleep 0.5; ts="$(now_ms)"; sleep 0.5
        input_lines "$HALF" "$N" "$codec" | timeout --foreground "$KCAT_TIMEOUT" "${prod[@]}" 2>>"$work/$codec.produce.err"
        rc2=$?
        if [[ "$rc1" == 0 && "$rc2" == 0 ]] && ! grep -qiE 'error|fail' "$work/$codec.produce.err"; then
            record PASS "$pfx/$codec/produce"
        else
            record FAIL "$pfx/$codec/produce" "kcat -P exited $rc1/$rc2: $(head -n 5 "$work/$codec.produce.err" | tr '\n' ' ')"
            if [[ "$rc1" == 124 || "$rc2" == 124 ]]; then
                # A hung produce: reading would only time out too.
                local s
                for s in from-beginning from-offset from-timestamp; do
                    record FAIL "$pfx/$codec/$s" "not run: kcat -P timed out"
                done
                continue
            fi
        fi

        local -a cons=("${kc[@]}" -C -t "$topic" -p 0 -e -f "$FORMAT")
        local rc
        expected_lines 0 "$N" "$codec" >"$work/$codec.all.expected"
        expected_lines "$HALF" "$N" "$codec" >"$work/$codec.half.expected"

        timeout --foreground "$KCAT_TIMEOUT" "${cons[@]}" -o beginning >"$work/$codec.beginning" 2>"$work/$codec.beginning.err"
        rc=$?
        compare "$pfx/$codec/from-beginning" "$work/$codec.beginning" "$work/$codec.all.expected" "$rc" "$work/$codec.beginning.err"

        timeout --foreground "$KCAT_TIMEOUT" "${cons[@]}" -o "$HALF" >"$work/$codec.offset" 2>"$work/$codec.offset.err"
        rc=$?
        compare "$pfx/$codec/from-offset" "$work/$codec.offset" "$work/$codec.half.expected" "$rc" "$work/$codec.offset.err"

        timeout --foreground "$KCAT_TIMEOUT" "${cons[@]}" -o "s@$ts" >"$work/$codec.timestamp" 2>"$work/$codec.timestamp.err"
        rc=$?
        compare "$pfx/$codec/from-timestamp" "$work/$codec.timestamp" "$work/$codec.half.expected" "$rc" "$work/$codec.timestamp.err"
    done

    if ! broker_alive; then
        record FAIL "$pfx/broker-alive" "the broker died during the run"
        broker_log_tail 60
    fi
    [[ "$COMPAT_FAILED" == 1 ]] && broker_log_tail 30
}

on_each_backend kcat run_backend
exit "$COMPAT_FAILED"
