#!/usr/bin/env bash
# Where an embedded agent's produce round trip goes: starts one agent (SQLite
# catalog, local folder) from BINARY in a fresh data dir, runs Kafka's
# ProducerPerformance against it (1 KiB records, acks=all, otherwise the Java
# producer's defaults, 8 partitions) and prints the client's summary, the
# CPU both used, and the agent's own accounting: Produce requests and their
# mean time, objects and their mean PUT and catalog-commit times.
#
#   benches/e2e/produce_breakdown.sh BINARY [RECORDS] [-- AGENT FLAGS...]
#
# RECORDS defaults to 1,000,000. Needs the harness's Kafka jars (run.sh
# fetches them into $STREAMHOUSE_CACHE/bench/kafka-lib).
set -euo pipefail

BINARY="${1:?usage: produce_breakdown.sh BINARY [RECORDS] [-- AGENT FLAGS...]}"
shift
RECORDS=1000000
if (($#)) && [[ "$1" != -- ]]; then
    RECORDS="$1"
    shift
fi
[[ "${1:-}" == -- ]] && shift
LIB="${STREAMHOUSE_CACHE:-/var/cache/streamhouse-ci}/bench/kafka-lib"
[[ -d "$LIB" ]] || { echo "produce_breakdown.sh: no $LIB; run benches/e2e/run.sh once" >&2; exit 1; }
[[ -x "$BINARY" ]] || { echo "produce_breakdown.sh: $BINARY is not an executable" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
METRICS="$(free_port)"
DATA="$(mktemp -d)"
LOG="$DATA.log"
"$BINARY" --data-dir "$DATA/agent" --listen "127.0.0.1:$PORT" --metrics-listen "127.0.0.1:$METRICS" "$@" >"$LOG" 2>&1 &
AGENT=$!
trap 'kill "$AGENT" 2>/dev/null; wait "$AGENT" 2>/dev/null; rm -rf "$DATA" "$LOG"' EXIT
for _ in $(seq 100); do
    curl -sf "127.0.0.1:$METRICS/metrics" >/dev/null && break
    sleep 0.1
done

java_tool() { java -Xmx1g -cp "$LIB/*" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn "$@"; }
java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" \
    --create --topic breakdown --partitions 8 >/dev/null
cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
agent_before="$(cpu "$AGENT")"
client_time="$(mktemp)"
/usr/bin/time -o "$client_time" -f "%U %S" java -Xmx1g -cp "$LIB/*" \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn org.apache.kafka.tools.ProducerPerformance \
    --bootstrap-server "127.0.0.1:$PORT" --topic breakdown --num-records "$RECORDS" \
    --record-size 1024 --throughput -1 --command-property acks=all \
    --reporting-interval 600000 | tail -1
agent_after="$(cpu "$AGENT")"
read -r client_user client_sys <"$client_time"
rm -f "$client_time"
awk -v cu="$client_user" -v cs="$client_sys" -v a0="$agent_before" -v a1="$agent_after" \
    'BEGIN { printf "CPU: client %.2f s, agent %.2f s\n", cu + cs, a1 - a0 }'
curl -sf "127.0.0.1:$METRICS/metrics" | python3 -c '
import sys
values = {}
for line in sys.stdin:
    if line.startswith("#"):
        continue
    name, _, value = line.rstrip().rpartition(" ")
    try:
        values[name] = float(value)
    except ValueError:
        pass
def mean_ms(family):
    count = values.get(family + "_count", 0)
    return values.get(family + "_sum_micros", 0) / count / 1000 if count else 0
requests = values.get("streamhouse_requests_total{api=\"Produce\"}", 0)
seconds = values.get("streamhouse_request_duration_seconds_sum{api=\"Produce\"}", 0)
objects = values.get("streamhouse_objects_committed_total", 0)
put_bytes = values.get("streamhouse_store_put_bytes_total", 0)
print("Produce requests: %d, mean %.2f ms in the agent" % (requests, seconds / requests * 1000 if requests else 0))
print("objects committed: %d; PUT mean %.2f ms, catalog commit mean %.2f ms (%d commits)" % (
    objects, mean_ms("streamhouse_store_put_latency"), mean_ms("streamhouse_catalog_commit_latency"),
    values.get("streamhouse_catalog_commit_latency_count", 0)))
print("bytes PUT (compaction included): %.0f MiB" % (put_bytes / 2**20))
'
