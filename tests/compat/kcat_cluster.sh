#!/usr/bin/env bash
# kcat against a cluster of agents (default 3; COMPAT_AGENTS=N for another
# N > 1) sharing one catalog and store, on each backend pair in
# COMPAT_BACKENDS. Agent I runs with --zone zI and --default-partitions 30, so
# the topic kcat auto-creates has 30 partitions.
#
#   placement-vectors     placement.py (the rendezvous hash of
#                         docs/design/cluster.md 4.1, with hashlib) reproduces
#                         the design's test vectors (once, not per backend)
# Per backend, names kcat-Nagents/BACKEND/...:
#   metadata              kcat -L through each agent lists every agent, each at
#                         its address, with distinct node ids
#   same-leaders          kcat -L -t T through each agent names the same leader
#                         for each of the 30 partitions
#   leaders-by-hash       for 5 topics of 30 partitions, each described through
#                         another agent, every leader is the hash's winner over
#                         the listed node ids (topic ids from confluent-kafka's
#                         describe_topics), and each agent leads 30/N +-40% of
#                         a topic's partitions on average (6-14 for 3). One
#                         topic alone would miss that range for some agent with
#                         a chance of 18% (random topic ids); five, 0.2%.
#   zone-leaders          with streamhouse_zone=zI in client.id every partition
#                         is led by agent I (design 4.2)
#   produce-zone-a        1,000 keyed records with kcat -P as a client of zone
#                         z0 (so every produce goes to agent 0)
#   live-consume-zone-b   a kcat -C started before the produce, as a client of
#                         zone z1 (every fetch to agent 1), receives all 1,000
#   read-zone-c           kcat -C -e from the beginning as a client of zone z2
#                         reads exactly those 1,000 records, offsets 0..n-1 per
#                         partition, and (if it got them all) just as the live
#                         consumer saw them
#
# Usage: tests/compat/kcat_cluster.sh   (STREAMHOUSE_BIN, COMPAT_BACKENDS, COMPAT_KEEP=1)
set -uo pipefail
AGENTS="${COMPAT_AGENTS:-3}"
((AGENTS > 1)) || AGENTS=3
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PARTITIONS=30
TOPICS=5
N=1000
KCAT_TIMEOUT=45
FORMAT='%p|%o|%k|%s\n'
NAME="kcat-${AGENTS}agents"
# The share of the partitions each agent must lead: 30/N +-40%.
LEAD_MIN=$((PARTITIONS * 6 / (AGENTS * 10)))
LEAD_MAX=$(((PARTITIONS * 14 + AGENTS * 10 - 1) / (AGENTS * 10)))
PY="$SH_VENV/bin/python"

trap broker_cleanup EXIT

command -v kcat >/dev/null || { record FAIL "$NAME/setup" "kcat not installed (apt-get install kcat)"; exit 1; }

if out="$(python3 "$COMPAT_DIR/placement.py" selftest 2>&1)"; then
    record PASS "$NAME/placement-vectors"
else
    record FAIL "$NAME/placement-vectors" "$(tr '\n' ' ' <<<"$out" | head -c 600)"
fi

# meta_json OUT AGENT [ZONE] [TOPIC]: kcat -L -J through agent AGENT, as a
# client of ZONE if not empty; for TOPIC only if given.
meta_json() {
    local out="$1" i="$2" zone="${3:-}" topic="${4:-}"
    local -a args=(-b "127.0.0.1:${AGENT_PORTS[$i]}" -L -J -m 10 -X "client.id=kcat-cluster${zone:+,streamhouse_zone=$zone}")
    [[ -n "$topic" ]] && args+=(-t "$topic")
    timeout --foreground 30 kcat "${args[@]}" >"$out" 2>"$out.err"
}

# leaders FILE: "partition:leader" lines of a metadata JSON, sorted by partition.
leaders() {
    python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
for t in m.get("topics") or []:
    for p in sorted(t["partitions"], key=lambda p: p["partition"]):
        print("%d:%s" % (p["partition"], p.get("leader")))' "$1"
}

run_backend() {
    local backend="$1" pfx="$NAME/$1" w="$BROKER_DIR/work" i
    mkdir -p "$w"
    local topic t
    local -a topics=()
    for ((t = 0; t < TOPICS; t++)); do topics+=("$(unique "kcat-cluster-$t")"); done
    topic="${topics[0]}"

    # metadata: every agent lists all, at their addresses, distinct node ids.
    local want problems="" node_of_agent=() listed
    want="$(printf '127.0.0.1:%s\n' "${AGENT_PORTS[@]}" | sort | paste -sd' ')"
    for ((i = 0; i < AGENTS; i++)); do
        if ! meta_json "$w/meta-$i.json" "$i"; then
            problems+="agent $i: kcat -L failed: $(tail -n 3 "$w/meta-$i.json.err" | tr '\n' ' '); "
            continue
        fi
        listed="$(python3 -c 'import json, sys
bs = json.load(open(sys.argv[1]))["brokers"]
ids = [b["id"] for b in bs]
names = " ".join(sorted(b["name"] for b in bs))
print(names if len(set(ids)) == len(ids) else "%s (repeated node ids %s)" % (names, ids))' \
            "$w/meta-$i.json")"
        [[ "$listed" == "$want" ]] || problems+="agent $i lists $listed, want $want; "
    done
    # Node id of each agent, from agent 0's answer.
    for ((i = 0; i < AGENTS; i++)); do
        node_of_agent[i]="$(python3 -c 'import json, sys
print(next((b["id"] for b in json.load(open(sys.argv[1]))["brokers"] if b["name"] == sys.argv[2]), "?"))' \
            "$w/meta-0.json" "127.0.0.1:${AGENT_PORTS[$i]}" 2>/dev/null || echo "?")"
    done
    if [[ -z "$problems" ]]; then
        record PASS "$pfx/metadata"
    else
        record FAIL "$pfx/metadata" "$problems"
    fi

    # The topics (auto-created with 30 partitions), topic t described through agent t % N.
    for ((t = 0; t < TOPICS; t++)); do
        for ((i = 0; i < 50; i++)); do
            meta_json "$w/topic$t.json" $((t % AGENTS)) "" "${topics[t]}" &&
                [[ "$(leaders "$w/topic$t.json" | grep -c ':[0-9]')" == "$PARTITIONS" ]] && break
            sleep 0.2
        done
    done
    problems=""
    for ((i = 0; i < AGENTS; i++)); do
        meta_json "$w/topic-$i.json" "$i" "" "$topic" || { problems+="agent $i: kcat -L -t failed; "; continue; }
        leaders "$w/topic-$i.json" >"$w/leaders-$i.txt"
        [[ "$(wc -l <"$w/leaders-$i.txt")" == "$PARTITIONS" ]] ||
            problems+="agent $i lists $(wc -l <"$w/leaders-$i.txt") partitions, want $PARTITIONS; "
        cmp -s "$w/leaders-0.txt" "$w/leaders-$i.txt" ||
            problems+="agent $i names other leaders than agent 0: $(diff "$w/leaders-0.txt" "$w/leaders-$i.txt" | grep '^>' | head -n 5 | tr '\n' ' '); "
    done
    if [[ -z "$problems" ]]; then record PASS "$pfx/same-leaders"; else record FAIL "$pfx/same-leaders" "$problems"; fi

    local out
    local -a ids=() files=()
    if ! mapfile -t ids < <("$PY" "$COMPAT_DIR/placement.py" topic-id "127.0.0.1:${AGENT_PORTS[0]}" "${topics[@]}" 2>"$w/topic-id.err") ||
            ((${#ids[@]} != TOPICS)); then
        record FAIL "$pfx/leaders-by-hash" "no topic ids (confluent-kafka describe_topics): $(tail -n 3 "$w/topic-id.err" | tr '\n' ' ')"
    else
        for ((t = 0; t < TOPICS; t++)); do files+=("$w/topic$t.json=${ids[t]}"); done
        if out="$(python3 "$COMPAT_DIR/placement.py" check $((LEAD_MIN * TOPICS)) $((LEAD_MAX * TOPICS)) "${files[@]}" 2>&1)"; then
            echo "$pfx: $TOPICS topics of $PARTITIONS partitions, $out"
            record PASS "$pfx/leaders-by-hash"
        else
            record FAIL "$pfx/leaders-by-hash" "$(tr '\n' ' ' <<<"$out" | head -c 600)"
        fi
    fi

    # Zones: a client of zone zI is served by agent I alone.
    problems=""
    for ((i = 0; i < AGENTS; i++)); do
        meta_json "$w/zone-$i.json" $(((i + 1) % AGENTS)) "z$i" "$topic" || { problems+="zone z$i: kcat -L failed; "; continue; }
        local others
        others="$(leaders "$w/zone-$i.json" | grep -cv ":${node_of_agent[$i]}\$")"
        ((others == 0)) || problems+="zone z$i: $others of $PARTITIONS partitions not led by agent $i (node ${node_of_agent[$i]}): $(leaders "$w/zone-$i.json" | grep -v ":${node_of_agent[$i]}\$" | head -n 5 | tr '\n' ' '); "
    done
    if [[ -z "$problems" ]]; then record PASS "$pfx/zone-leaders"; else record FAIL "$pfx/zone-leaders" "$problems"; fi

    # Across agents: produce as a client of z0, consume live as z1, read again as z2.
    local -a kc=(kcat -q -b "$BROKER_BOOTSTRAP")
    awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "key-%d:value-%d\n", i, i }' >"$w/input.txt"
    sed 's/:/|/' "$w/input.txt" | sort >"$w/input.sorted"
    timeout --foreground "$KCAT_TIMEOUT" "${kc[@]}" -C -t "$topic" -o beginning -c "$N" -f "$FORMAT" \
        -X "client.id=kcat-consumer,streamhouse_zone=z1" >"$w/live.txt" 2>"$w/live.err" &
    local live_pid=$! rc
    sleep 1  # the consumer has its partitions before the first record arrives
    timeout --foreground "$KCAT_TIMEOUT" "${kc[@]}" -P -t "$topic" -K: -X acks=all -X message.timeout.ms=30000 \
        -X "client.id=kcat-producer,streamhouse_zone=z0" <"$w/input.txt" 2>"$w/produce.err"
    rc=$?
    if [[ "$rc" == 0 ]] && ! grep -qiE 'error|fail' "$w/produce.err"; then
        record PASS "$pfx/produce-zone-a"
    else
        record FAIL "$pfx/produce-zone-a" "kcat -P exited $rc: $(head -n 5 "$w/produce.err" | tr '\n' ' ')"
    fi
    wait "$live_pid"
    rc=$?
    local live_ok=0
    cut -d'|' -f3- "$w/live.txt" | sort >"$w/live.sorted"
    if [[ "$rc" == 0 ]] && cmp -s "$w/live.sorted" "$w/input.sorted"; then
        record PASS "$pfx/live-consume-zone-b"
        live_ok=1
    else
        record FAIL "$pfx/live-consume-zone-b" "kcat -C exited $rc after $(wc -l <"$w/live.txt") of $N records; first differences (< sent, > got): $(diff "$w/input.sorted" "$w/live.sorted" | grep '^[<>]' | head -n 4 | tr '\n' ' ') stderr: $(tail -n 3 "$w/live.err" | tr '\n' ' ')"
    fi

    timeout --foreground "$KCAT_TIMEOUT" "${kc[@]}" -C -t "$topic" -o beginning -e -f "$FORMAT" \
        -X "client.id=kcat-reader,streamhouse_zone=z2" >"$w/read.txt" 2>"$w/read.err"
    rc=$?
    problems="$(python3 -c 'import sys
offs = {}
for line in open(sys.argv[1]):
    p, o, _ = line.split("|", 2)
    offs.setdefault(int(p), []).append(int(o))
bad = ["partition %d: offsets %s... for %d records" % (p, o[:5], len(o)) for p, o in sorted(offs.items()) if o != list(range(len(o)))]
print("; ".join(bad[:5]))' "$w/read.txt" 2>&1)"
    sort "$w/read.txt" >"$w/read.sorted"
    sort "$w/live.txt" >"$w/live.full.sorted"
    cut -d'|' -f3- "$w/read.txt" | sort >"$w/read.kv.sorted"
    if [[ "$rc" != 0 ]]; then
        record FAIL "$pfx/read-zone-c" "kcat -C -e exited $rc after $(wc -l <"$w/read.txt") records: $(tail -n 3 "$w/read.err" | tr '\n' ' ')"
    elif [[ -n "$problems" ]]; then
        record FAIL "$pfx/read-zone-c" "$problems"
    elif ! cmp -s "$w/read.kv.sorted" "$w/input.sorted"; then
        record FAIL "$pfx/read-zone-c" "read $(wc -l <"$w/read.txt") records of $N; first differences (< sent, > read): $(diff "$w/input.sorted" "$w/read.kv.sorted" | grep '^[<>]' | head -n 4 | tr '\n' ' ')"
    elif ((live_ok)) && ! cmp -s "$w/read.sorted" "$w/live.full.sorted"; then
        record FAIL "$pfx/read-zone-c" "read $(wc -l <"$w/read.txt") records, the live consumer $(wc -l <"$w/live.txt"); first differences (< live, > read): $(diff "$w/live.full.sorted" "$w/read.sorted" | grep '^[<>]' | head -n 4 | tr '\n' ' ')"
    else
        record PASS "$pfx/read-zone-c"
    fi

    if ! broker_alive; then
        record FAIL "$pfx/agents-alive" "an agent died during the run"
        broker_log_tail 40
    fi
    [[ "$COMPAT_FAILED" == 1 ]] && broker_log_tail 30
}

for backend in $COMPAT_BACKENDS; do
    cluster_start "$backend" "kcat-cluster-$backend" "$AGENTS" --zone 'z{i}' --default-partitions "$PARTITIONS"
    case $? in
        0) ;;
        2) record FAIL "$NAME/$backend/cluster-formed" "see what each agent listed above" ;;
        *) record FAIL "$NAME/$backend/broker-start" "see the agent logs above"; broker_cleanup; continue ;;
    esac
    run_backend "$backend"
    broker_cleanup
done
exit "$COMPAT_FAILED"
