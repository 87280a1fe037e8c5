#!/usr/bin/env bash
# The Java client (kafka-clients 4.4.0, tests/compat/cluster/ClusterTest.java)
# against a cluster of agents (default 3; COMPAT_AGENTS=N for another N > 1)
# sharing one catalog and store, on each backend pair in COMPAT_BACKENDS:
# SIGKILL of the agent coordinating a consumer group under an idempotent
# producer's load (failover/...), then a rolling SIGTERM restart of every
# agent (rolling/...); ClusterTest.java describes the checks. The agents run
# with --agent-lease-ms $COMPAT_AGENT_LEASE_MS (2000) and
# --group-initial-rebalance-delay-ms 0; ClusterTest kills and starts them
# through agentctl.sh. CLUSTER_ONLY="failover" (or "rolling") runs one.
#
# Needs the jars that scripts/test.sh puts in $STREAMHOUSE_CACHE/java/lib;
# compiles cluster/*.java itself into $STREAMHOUSE_CACHE/java/cluster-classes.
set -uo pipefail
COMPAT_AGENTS="${COMPAT_AGENTS:-3}"
((COMPAT_AGENTS > 1)) || COMPAT_AGENTS=3
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAVA_DIR="$STREAMHOUSE_CACHE/java"
CLASSES="$JAVA_DIR/cluster-classes"

trap broker_cleanup EXIT

if [[ ! -f "$JAVA_DIR/lib/kafka-clients-4.4.0.jar" ]]; then
    record FAIL "cluster/setup" "$JAVA_DIR/lib/kafka-clients-4.4.0.jar missing; run ./scripts/test.sh --setup-only"
    exit 1
fi
compile_java cluster "$CLASSES" "$COMPAT_DIR"/cluster/*.java || exit 1

# The clients log at WARN and above only; their INFO config dumps drown the rest.
run_program cluster 300 --group-initial-rebalance-delay-ms 0 -- \
    java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$CLASSES:$JAVA_DIR/lib/*" \
    ClusterTest "{bootstrap}" "{backend}" "$COMPAT_DIR/agentctl.sh" "{dir}" "$COMPAT_AGENT_LEASE_MS"
exit "$COMPAT_FAILED"
