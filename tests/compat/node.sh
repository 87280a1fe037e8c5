#!/usr/bin/env bash
# KafkaJS 2.2.4 (tests/compat/node/compat.js) against a fresh StreamHouse
# broker per backend pair in COMPAT_BACKENDS, started with
# --group-initial-rebalance-delay-ms 0. The scenarios are listed in
# compat.js. Needs the node_modules that scripts/test.sh installs (npm ci from
# tests/compat/node/package-lock.json) into $STREAMHOUSE_CACHE/node
# (./scripts/test.sh --setup-only does that).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODE_DIR="$STREAMHOUSE_CACHE/node"
NODE_TIMEOUT=300

trap broker_cleanup EXIT

if [[ ! -d "$NODE_DIR/node_modules/kafkajs" ]]; then
    record FAIL "kafkajs/setup" "$NODE_DIR/node_modules missing; run ./scripts/test.sh --setup-only"
    exit 1
fi

for backend in $COMPAT_BACKENDS; do
    if ! broker_start "$backend" "kafkajs-$backend" --group-initial-rebalance-delay-ms 0; then
        record FAIL "kafkajs/$backend/broker-start" "see the broker log above"
        continue
    fi
    out="$BROKER_DIR/kafkajs.out"
    err="$BROKER_DIR/kafkajs.err"
    t0=$SECONDS
    NODE_PATH="$NODE_DIR/node_modules" timeout --foreground "$NODE_TIMEOUT" \
        node "$COMPAT_DIR/node/compat.js" "$BROKER_BOOTSTRAP" "$backend" >"$out" 2>"$err"
    rc=$?
    # Its PASS/FAIL/XFAIL lines are the scenarios.
    while IFS= read -r line; do
        case "$line" in
            "PASS "*) record PASS "${line#PASS }" ;;
            "FAIL "* | "XFAIL "*)
                status="${line%% *}"; name="${line#* }"
                record "$status" "${name%%: *}" "${name#*: }" ;;
        esac
    done <"$out"
    echo "kafkajs/$backend: $((SECONDS - t0))s" >&2
    if [[ "$rc" != 0 ]] && ! grep -q '^FAIL ' "$out"; then
        record FAIL "kafkajs/$backend/run" "exited with status $rc; stderr tail: $(tail -n 8 "$err" | tr '\n' ' ')"
    fi
    if [[ "$rc" != 0 ]]; then
        echo "--- $err (tail) ---"; tail -n 40 "$err"
        broker_log_tail 40
    fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        record FAIL "kafkajs/$backend/broker-alive" "the broker died during the run"
    fi
    broker_cleanup
done
exit "$COMPAT_FAILED"
