#!/usr/bin/env bash
# The Java client (kafka-clients 4.4.0, tests/compat/java/CompatTest.java)
# against a fresh StreamHouse broker, on each backend pair in COMPAT_BACKENDS.
# Needs the jars and classes that scripts/test.sh puts in $STREAMHOUSE_CACHE/java
# (./scripts/test.sh --setup-only does that).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAVA_DIR="$STREAMHOUSE_CACHE/java"

trap broker_cleanup EXIT

if [[ ! -f "$JAVA_DIR/classes/CompatTest.class" ]]; then
    record FAIL "java/setup" "$JAVA_DIR/classes/CompatTest.class missing; run ./scripts/test.sh --setup-only"
    exit 1
fi

# The clients log at WARN and above only; their INFO config dumps drown the rest.
run_program java 400 -- \
    java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$JAVA_DIR/classes:$JAVA_DIR/lib/*" \
    CompatTest "{bootstrap}" "{backend}"
exit "$COMPAT_FAILED"
