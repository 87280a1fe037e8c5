#!/usr/bin/env bash
# Apache Kafka 4.4.0 (KRaft, one combined broker+controller) behind the
# StreamHouse command line, so the compat suite can be run against the real
# thing. This checks the TESTS: what fails here is a test's mistake, not
# StreamHouse's.
#
#   COMPAT_REFERENCE=1 STREAMHOUSE_BIN=tests/compat/reference/kafka-as-streamhouse.sh \
#       tests/compat/run_all.sh [client...]
#
# COMPAT_REFERENCE=1 skips the checks of StreamHouse's own storage layout.
# Only --listen and --data-dir are honoured (other flags are ignored, so the
# pg-s3 backend pair runs the same Kafka), and for sharegroups.sh
# --group-share-record-lock-duration-ms and --group-share-session-timeout-ms
# (group.share.record.lock.duration.ms and group.share.session.timeout.ms,
# their minimums lowered to match, the heartbeat a third of the session).
# The share-group state topic has one replica. The jars are fetched from Maven
# Central into $STREAMHOUSE_CACHE/reference-kafka on first use. Kafka needs
# ~10 s to start; a restart on the same --data-dir keeps its log.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${STREAMHOUSE_CACHE:-/var/cache/streamhouse-ci}"
LIB="$CACHE/reference-kafka/lib"

LISTEN=127.0.0.1:9092
DATA=./data
SHARE_LOCK_MS=""
SHARE_SESSION_MS=""
while (($#)); do
    case "$1" in
        --listen) LISTEN="$2"; shift 2 ;;
        --data-dir) DATA="$2"; shift 2 ;;
        --group-share-record-lock-duration-ms) SHARE_LOCK_MS="$2"; shift 2 ;;
        --group-share-session-timeout-ms) SHARE_SESSION_MS="$2"; shift 2 ;;
        --*) shift 2 ;;
        *) shift ;;
    esac
done

if [[ ! -f "$CACHE/reference-kafka/lib.stamp" ]]; then
    mkdir -p "$CACHE/reference-kafka"
    mvn -B -q -Dstyle.color=never -f "$HERE/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB" \
        >"$CACHE/reference-kafka/maven.log" 2>&1 || { cat "$CACHE/reference-kafka/maven.log" >&2; exit 1; }
    touch "$CACHE/reference-kafka/lib.stamp"
fi

mkdir -p "$DATA"
DATA="$(cd "$DATA" && pwd)"
# The controller's port must survive a restart on the same data dir.
if [[ ! -s "$DATA/controller-port" ]]; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        >"$DATA/controller-port"
fi
CPORT="$(cat "$DATA/controller-port")"
cat >"$DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://$LISTEN,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://$LISTEN
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA/kafka-logs
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
num.partitions=1
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
PROPS
if [[ -n "$SHARE_LOCK_MS" ]]; then
    printf '%s\n' "group.share.record.lock.duration.ms=$SHARE_LOCK_MS" \
        "group.share.min.record.lock.duration.ms=$((SHARE_LOCK_MS < 15000 ? SHARE_LOCK_MS : 15000))" >>"$DATA/server.properties"
fi
if [[ -n "$SHARE_SESSION_MS" ]]; then
    hb=$((SHARE_SESSION_MS / 3 < 5000 ? SHARE_SESSION_MS / 3 : 5000))
    printf '%s\n' "group.share.session.timeout.ms=$SHARE_SESSION_MS" \
        "group.share.min.session.timeout.ms=$((SHARE_SESSION_MS < 45000 ? SHARE_SESSION_MS : 45000))" \
        "group.share.heartbeat.interval.ms=$hb" "group.share.min.heartbeat.interval.ms=$hb" >>"$DATA/server.properties"
fi
JAVA=(java -Xmx512m -cp "$LIB/*" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
if [[ ! -f "$DATA/kafka-logs/meta.properties" ]]; then
    "${JAVA[@]}" kafka.tools.StorageTool format -t "$("${JAVA[@]}" kafka.tools.StorageTool random-uuid)" \
        -c "$DATA/server.properties" >/dev/null
fi
exec "${JAVA[@]}" kafka.Kafka "$DATA/server.properties"
