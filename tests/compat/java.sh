#!/usr/bin/env bash
# The Java client (kafka-clients 4.4.0, tests/compat/java/CompatTest.java)
# against a fresh StreamHouse broker, on each backend pair in COMPAT_BACKENDS.
# Needs the jars and classes that scripts/test.sh puts in $STREAMHOUSE_CACHE/java
# (./scripts/test.sh --setup-only does that).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAVA_DIR="$STREAMHOUSE_CACHE/java"
CP="$JAVA_DIR/classes:$JAVA_DIR/lib/*"
JAVA_TIMEOUT=400

trap broker_cleanup EXIT

if [[ ! -f "$JAVA_DIR/classes/CompatTest.class" ]]; then
    record FAIL "java/setup" "$JAVA_DIR/classes/CompatTest.class missing; run ./scripts/test.sh --setup-only"
    exit 1
fi

for backend in $COMPAT_BACKENDS; do
    if ! broker_start "$backend" "java-$backend"; then
        record FAIL "java/$backend/broker-start" "see the broker log above"
        continue
    fi
    out="$BROKER_DIR/java.out"
    err="$BROKER_DIR/java.err"
    # The clients log at WARN and above only; their INFO config dumps drown the rest.
    timeout --foreground "$JAVA_TIMEOUT" java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$CP" CompatTest "$BROKER_BOOTSTRAP" "$backend" >"$out" 2>"$err"
    rc=$?
    # Its PASS/FAIL lines are the scenarios.
    while IFS= read -r line; do
        case "$line" in
            "PASS "*) record PASS "${line#PASS }" ;;
            "FAIL "*) name="${line#FAIL }"; record FAIL "${name%%: *}" "${name#*: }" ;;
        esac
    done <"$out"
    if [[ "$rc" != 0 ]] && ! grep -q '^FAIL ' "$out"; then
        record FAIL "java/$backend/run" "java exited with status $rc; stderr tail: $(tail -n 8 "$err" | tr '\n' ' ')"
    fi
    if [[ "$rc" != 0 ]]; then
        echo "--- $err (tail) ---"; tail -n 40 "$err"
        broker_log_tail 40
    fi
    broker_cleanup
done
exit "$COMPAT_FAILED"
