#!/usr/bin/env bash
# franz-go (kgo + kadm) and Sarama (tests/compat/go/, one program) against a
# fresh StreamHouse broker per client and backend pair in COMPAT_BACKENDS,
# started with --group-initial-rebalance-delay-ms 0. The scenarios are listed
# in tests/compat/go/main.go. Needs the binary that scripts/test.sh builds into
# $STREAMHOUSE_CACHE/go/bin/compat (./scripts/test.sh --setup-only does that).
#
# Usage: tests/compat/go.sh [franz-go] [sarama]   (default both)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GO_BIN="$STREAMHOUSE_CACHE/go/bin/compat"
GO_TIMEOUT=300

trap broker_cleanup EXIT

if [[ ! -x "$GO_BIN" ]]; then
    record FAIL "go/setup" "$GO_BIN missing; run ./scripts/test.sh --setup-only"
    exit 1
fi

clients=("$@")
((${#clients[@]})) || clients=(franz-go sarama)
for client in "${clients[@]}"; do
    for backend in $COMPAT_BACKENDS; do
        if ! broker_start "$backend" "$client-$backend" --group-initial-rebalance-delay-ms 0; then
            record FAIL "$client/$backend/broker-start" "see the broker log above"
            continue
        fi
        out="$BROKER_DIR/$client.out"
        err="$BROKER_DIR/$client.err"
        t0=$SECONDS
        timeout --foreground "$GO_TIMEOUT" "$GO_BIN" -client "$client" -bootstrap "$BROKER_BOOTSTRAP" \
            -label "$backend" >"$out" 2>"$err"
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
        echo "$client/$backend: $((SECONDS - t0))s" >&2
        if [[ "$rc" != 0 ]] && ! grep -q '^FAIL ' "$out"; then
            record FAIL "$client/$backend/run" "exited with status $rc; stderr tail: $(tail -n 8 "$err" | tr '\n' ' ')"
        fi
        if [[ "$rc" != 0 ]]; then
            echo "--- $err (tail) ---"; tail -n 40 "$err"
            broker_log_tail 40
        fi
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            record FAIL "$client/$backend/broker-alive" "the broker died during the run"
        fi
        broker_cleanup
    done
done
exit "$COMPAT_FAILED"
