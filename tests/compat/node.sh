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

trap broker_cleanup EXIT

if [[ ! -d "$NODE_DIR/node_modules/kafkajs" ]]; then
    record FAIL "kafkajs/setup" "$NODE_DIR/node_modules missing; run ./scripts/test.sh --setup-only"
    exit 1
fi

run_program kafkajs 300 --group-initial-rebalance-delay-ms 0 -- \
    env NODE_PATH="$NODE_DIR/node_modules" node "$COMPAT_DIR/node/compat.js" "{bootstrap}" "{backend}"
exit "$COMPAT_FAILED"
