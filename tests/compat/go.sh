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

trap broker_cleanup EXIT

if [[ ! -x "$GO_BIN" ]]; then
    record FAIL "go/setup" "$GO_BIN missing; run ./scripts/test.sh --setup-only"
    exit 1
fi

clients=("$@")
((${#clients[@]})) || clients=(franz-go sarama)
for client in "${clients[@]}"; do
    run_program "$client" 300 --group-initial-rebalance-delay-ms 0 -- \
        "$GO_BIN" -client "$client" -bootstrap "{bootstrap}" -label "{backend}"
done
exit "$COMPAT_FAILED"
