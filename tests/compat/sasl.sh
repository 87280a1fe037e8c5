#!/usr/bin/env bash
# SASL on a SASL_PLAINTEXT listener with real clients, on each backend pair in
# COMPAT_BACKENDS: a broker started with --listener SASL_PLAINTEXT://..., a
# second listener PLAINTEXT://... and a users file (alice, and admin with a
# colon in its password).
#
# Scenarios per backend:
#   kcat/MECH/round-trip    kcat (librdkafka 2.0.2) as alice with MECH (PLAIN,
#                           SCRAM-SHA-256, SCRAM-SHA-512): 100 records produced,
#                           read back by admin with SCRAM-SHA-512
#   kcat/wrong-password     PLAIN and SCRAM refused with Kafka's messages
#   kcat/no-sasl            a client without SASL gets no metadata
#   java/re-authentication  (one backend pair) an agent with
#                           --connections-max-reauth-ms 3000: the Java producer
#                           sends for 12 s, re-authenticating on its connections
#                           at least 3 times, never cut off
#   kcat/two-listeners      kcat without SASL on the PLAINTEXT listener and as
#                           alice on the SASL_PLAINTEXT one: each is told that
#                           listener's address as the broker's, and records
#                           produced on one are read on the other
#   java/scram-sha-512      ProducerPerformance (1,000 records, acks=all) and the
#                           console consumer in a group, both SCRAM-SHA-512
#   java/wrong-password     SaslAuthenticationException with Kafka's message
#   tools/scram-users       kafka-configs (as admin) creates carol's SCRAM-SHA-256
#                           credential at 8,192 iterations and describes it; kcat
#                           signs in as carol; once deleted, carol is refused
#
# Usage: tests/compat/sasl.sh   (STREAMHOUSE_BIN, COMPAT_BACKENDS, COMPAT_KEEP=1)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAVA_LIB="$STREAMHOUSE_CACHE/java/lib"
TIMEOUT=60

trap broker_cleanup EXIT

command -v kcat >/dev/null || { record FAIL "sasl/setup" "kcat not installed (apt-get install kcat)"; exit 1; }

# The broker of this backend: a SASL_PLAINTEXT listener (the bootstrap of
# every scenario but two-listeners) and a PLAINTEXT one.
sasl_broker_start() {
    local backend="$1"
    broker_prepare "$backend" "sasl-$backend" || return 1
    printf '# compat users\nalice:alice-secret\nadmin:ad:min\n' >"$BROKER_DIR/users"
    BROKER_PORT="$(free_port)"
    BROKER_BOOTSTRAP="127.0.0.1:$BROKER_PORT"
    PLAIN_PORT="$(free_port)"
    while [[ "$PLAIN_PORT" == "$BROKER_PORT" ]]; do PLAIN_PORT="$(free_port)"; done
    PLAIN_BOOTSTRAP="127.0.0.1:$PLAIN_PORT"
    BROKER_ARGS=(--listener "SASL_PLAINTEXT://$BROKER_BOOTSTRAP" --listener "PLAINTEXT://$PLAIN_BOOTSTRAP"
        --sasl-users-file "$BROKER_DIR/users" "${BACKEND_ARGS[@]}")
    broker_launch
}

# The brokers kcat's metadata (-L) names, one "HOST:PORT" a line.
listed_brokers() { sed -n 's/^ *broker [0-9-]* at \([^ ]*\).*/\1/p' "$1"; }

two_listeners() {
    local pfx="$1" work="$2" topic plain sasl got
    topic="$(unique sasl-listeners)"
    timeout --foreground "$TIMEOUT" kcat -b "$PLAIN_BOOTSTRAP" -L -m 5 >"$work/plain.list" 2>&1
    kcat_as alice alice-secret SCRAM-SHA-512 -L -m 5 >"$work/sasl.list" 2>&1
    plain="$(listed_brokers "$work/plain.list" | tr '\n' ' ')"
    sasl="$(listed_brokers "$work/sasl.list" | tr '\n' ' ')"
    if [[ "$plain" != "$PLAIN_BOOTSTRAP " || "$sasl" != "$BROKER_BOOTSTRAP " ]]; then
        record FAIL "$pfx/kcat/two-listeners" "told '$plain' on PLAINTEXT and '$sasl' on SASL_PLAINTEXT; expected $PLAIN_BOOTSTRAP and $BROKER_BOOTSTRAP"
        return
    fi
    seq 1 20 | sed 's/^/plain-/' >"$work/listeners.expected"
    timeout --foreground "$TIMEOUT" kcat -b "$PLAIN_BOOTSTRAP" -q -P -t "$topic" \
        <"$work/listeners.expected" 2>"$work/listeners.err"
    kcat_as alice alice-secret SCRAM-SHA-512 -q -C -t "$topic" -o beginning -e -f '%s\n' \
        >"$work/listeners.got" 2>>"$work/listeners.err"
    if cmp -s "$work/listeners.got" "$work/listeners.expected"; then
        record PASS "$pfx/kcat/two-listeners"
    else
        got="$(wc -l <"$work/listeners.got")"
        record FAIL "$pfx/kcat/two-listeners" "read $got of 20 records over SASL_PLAINTEXT: $(tail -n 3 "$work/listeners.err" | tr '\n' ' ')"
    fi
}

# kcat as USER/PASSWORD with MECHANISM, then kcat's own arguments.
kcat_as() {
    local user="$1" password="$2" mechanism="$3"
    shift 3
    timeout --foreground "$TIMEOUT" kcat -b "$BROKER_BOOTSTRAP" -X security.protocol=SASL_PLAINTEXT \
        -X sasl.mechanisms="$mechanism" -X sasl.username="$user" -X sasl.password="$password" "$@"
}

java_config() {
    local file="$1" mechanism="$2" user="$3" password="$4" module
    case "$mechanism" in
        PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
        *) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
    esac
    cat >"$file" <<CONFIG
security.protocol=SASL_PLAINTEXT
sasl.mechanism=$mechanism
sasl.jaas.config=$module required username="$user" password="$password";
CONFIG
}

run_backend() {
    local backend="$1" pfx="sasl/$1" work="$BROKER_DIR/work" mechanism topic
    mkdir -p "$work"
    for mechanism in PLAIN SCRAM-SHA-256 SCRAM-SHA-512; do
        topic="$(unique "sasl-$mechanism")"
        seq 1 100 | sed 's/^/record-/' >"$work/$mechanism.expected"
        if ! kcat_as alice alice-secret "$mechanism" -q -P -t "$topic" <"$work/$mechanism.expected" \
                2>"$work/$mechanism.err"; then
            record FAIL "$pfx/kcat/$mechanism/round-trip" "produce failed: $(tail -n 3 "$work/$mechanism.err" | tr '\n' ' ')"
            continue
        fi
        kcat_as admin ad:min SCRAM-SHA-512 -q -C -t "$topic" -o beginning -e -f '%s\n' \
            >"$work/$mechanism.got" 2>>"$work/$mechanism.err"
        if cmp -s "$work/$mechanism.got" "$work/$mechanism.expected"; then
            record PASS "$pfx/kcat/$mechanism/round-trip"
        else
            record FAIL "$pfx/kcat/$mechanism/round-trip" "read $(wc -l <"$work/$mechanism.got") of 100 records: $(tail -n 3 "$work/$mechanism.err" | tr '\n' ' ')"
        fi
    done

    kcat_as alice wrong PLAIN -L -m 5 >/dev/null 2>"$work/wrong-plain.err"
    kcat_as alice wrong SCRAM-SHA-512 -L -m 5 >/dev/null 2>"$work/wrong-scram.err"
    if grep -q "Authentication failed: Invalid username or password" "$work/wrong-plain.err" &&
        grep -q "Authentication failed: Invalid user credentials" "$work/wrong-scram.err"; then
        record PASS "$pfx/kcat/wrong-password"
    else
        record FAIL "$pfx/kcat/wrong-password" "stderr: $(head -c 600 "$work/wrong-plain.err" "$work/wrong-scram.err" | tr '\n' ' ')"
    fi

    if timeout --foreground "$TIMEOUT" kcat -b "$BROKER_BOOTSTRAP" -L -m 5 >"$work/no-sasl.out" 2>&1; then
        record FAIL "$pfx/kcat/no-sasl" "metadata without SASL: $(head -c 300 "$work/no-sasl.out")"
    else
        record PASS "$pfx/kcat/no-sasl"
    fi

    topic="$(unique sasl-java)"
    java_config "$work/scram.properties" SCRAM-SHA-512 alice alice-secret
    local produced consumed
    produced="$(timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" org.apache.kafka.tools.ProducerPerformance \
        --topic "$topic" --num-records 1000 --record-size 100 --throughput -1 \
        --producer-props bootstrap.servers="$BROKER_BOOTSTRAP" acks=all \
        --producer.config "$work/scram.properties" 2>"$work/java-produce.err" | tail -n 1)"
    consumed="$(timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
        --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$topic" --from-beginning --max-messages 1000 \
        --group "$(unique sasl-group)" --consumer.config "$work/scram.properties" \
        2>"$work/java-consume.err" | tee "$work/java-consume.out" | grep -c -E '^.{100}$')"
    if [[ "$produced" == "1000 records sent"* && "$consumed" == 1000 ]]; then
        record PASS "$pfx/java/scram-sha-512"
    else
        record FAIL "$pfx/java/scram-sha-512" "producer: '$produced'; consumer read $consumed of 1000; $(grep -h -m 2 Exception "$work"/java-*.err | tr '\n' ' ')"
    fi

    java_config "$work/wrong.properties" SCRAM-SHA-512 alice wrong
    timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" org.apache.kafka.tools.ProducerPerformance \
        --topic "$topic" --num-records 1 --record-size 10 --throughput -1 \
        --producer-props bootstrap.servers="$BROKER_BOOTSTRAP" max.block.ms=10000 \
        --producer.config "$work/wrong.properties" >"$work/java-wrong.out" 2>&1
    if grep -q "SaslAuthenticationException: Authentication failed: Invalid user credentials" "$work/java-wrong.out"; then
        record PASS "$pfx/java/wrong-password"
    else
        record FAIL "$pfx/java/wrong-password" "$(grep -m 3 -i exception "$work/java-wrong.out" | tr '\n' ' ')"
    fi
}

# kafka-configs as admin, over SASL.
configs() {
    timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" org.apache.kafka.tools.ConfigCommand \
        --bootstrap-server "$BROKER_BOOTSTRAP" --command-config "$work/admin.properties" "$@"
}

scram_users() {
    local pfx="$1" work="$2" described
    java_config "$work/admin.properties" SCRAM-SHA-512 admin ad:min
    if ! configs --alter --add-config 'SCRAM-SHA-256=[iterations=8192,password=carol-pw]' \
            --entity-type users --entity-name carol >"$work/configs-add.out" 2>&1; then
        record FAIL "$pfx/tools/scram-users" "kafka-configs --alter: $(grep -v INFO "$work/configs-add.out" | tail -n 3 | tr '\n' ' ')"
        return
    fi
    described="$(configs --describe --entity-type users --entity-name carol 2>/dev/null | grep -v INFO)"
    if [[ "$described" != *"SCRAM-SHA-256=iterations=8192"* ]]; then
        record FAIL "$pfx/tools/scram-users" "kafka-configs --describe: $described"
        return
    fi
    if ! kcat_as carol carol-pw SCRAM-SHA-256 -L -m 5 >/dev/null 2>"$work/carol.err"; then
        record FAIL "$pfx/tools/scram-users" "carol cannot sign in: $(tail -n 2 "$work/carol.err" | tr '\n' ' ')"
        return
    fi
    configs --alter --delete-config SCRAM-SHA-256 --entity-type users --entity-name carol \
        >"$work/configs-delete.out" 2>&1
    if kcat_as carol carol-pw SCRAM-SHA-256 -L -m 5 >/dev/null 2>"$work/carol-deleted.err"; then
        record FAIL "$pfx/tools/scram-users" "carol still signs in after her credential was deleted"
    elif grep -q "Invalid user credentials" "$work/carol-deleted.err"; then
        record PASS "$pfx/tools/scram-users"
    else
        record FAIL "$pfx/tools/scram-users" "after the deletion: $(tail -n 2 "$work/carol-deleted.err" | tr '\n' ' ')"
    fi
}

for backend in $COMPAT_BACKENDS; do
    if ! sasl_broker_start "$backend"; then
        record FAIL "sasl/$backend/broker-start" "see the broker log above"
        continue
    fi
    run_backend "$backend"
    scram_users "sasl/$backend" "$BROKER_DIR/work"
    two_listeners "sasl/$backend" "$BROKER_DIR/work"
    broker_cleanup
done

# Re-authentication (KIP-368): an agent whose sessions last 3 s; the Java
# producer, 12 s long on one connection, re-authenticates as told and is
# never cut off. Transport only: the embedded pair (or the first one named).
reauthentication() {
    local backend="$1" pfx="sasl/$1/java/re-authentication" work produced renewed closed
    broker_prepare "$backend" "sasl-reauth-$backend" || { record FAIL "$pfx" "broker_prepare failed"; return; }
    printf 'alice:alice-secret\n' >"$BROKER_DIR/users"
    BROKER_PORT="$(free_port)"
    BROKER_BOOTSTRAP="127.0.0.1:$BROKER_PORT"
    BROKER_ARGS=(--listener "SASL_PLAINTEXT://$BROKER_BOOTSTRAP" --sasl-users-file "$BROKER_DIR/users"
        --connections-max-reauth-ms 3000 "${BACKEND_ARGS[@]}")
    STREAMHOUSE_LOG=info,streamhouse::sasl=debug broker_launch || { record FAIL "$pfx" "the broker did not start"; return; }
    work="$BROKER_DIR/work"
    mkdir -p "$work"
    java_config "$work/scram.properties" SCRAM-SHA-512 alice alice-secret
    produced="$(timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" org.apache.kafka.tools.ProducerPerformance \
        --topic "$(unique reauth)" --num-records 1200 --record-size 100 --throughput 100 \
        --producer-props bootstrap.servers="$BROKER_BOOTSTRAP" acks=all \
        --producer.config "$work/scram.properties" 2>"$work/produce.err" | tail -n 1)"
    renewed="$(grep -c "re-authenticated" "$BROKER_LOG")"
    closed="$(grep -c "SASL session expired" "$BROKER_LOG")"
    if [[ "$produced" == "1200 records sent"* && "$renewed" -ge 3 && "$closed" == 0 ]]; then
        record PASS "$pfx"
    else
        record FAIL "$pfx" "producer: '$produced'; re-authentications: $renewed; connections closed on expiry: $closed"
    fi
    broker_cleanup
}
first_backend="embedded"
[[ " $COMPAT_BACKENDS " == *" embedded "* ]] || first_backend="${COMPAT_BACKENDS%% *}"
reauthentication "$first_backend"
exit "$COMPAT_FAILED"
