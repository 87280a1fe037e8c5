#!/usr/bin/env bash
# TLS listeners with real clients, on each backend pair in COMPAT_BACKENDS.
# openssl makes a CA, a server certificate for localhost and 127.0.0.1 (so
# that kcat's and the Java client's hostname checks pass) and a client
# certificate in each broker's temp dir (certs.sh); no key is kept anywhere
# else.
#
# Scenarios per backend:
#   kcat/ssl/round-trip          an SSL listener: kcat (librdkafka 2.0.2) trusting
#                                the CA produces 100 records and reads them back
#   kcat/ssl/reload              SIGHUP with a half-written certificate keeps the
#                                old one (error logged); with a new key and
#                                certificate, new connections get the new one
#   kcat/mtls/client-cert        an SSL listener with --tls-client-ca: kcat with
#                                the client certificate produces and consumes
#   kcat/mtls/no-client-cert     the same without a certificate gets no metadata
#   kcat/sasl-ssl/scram-sha-512  a SASL_SSL listener: kcat as alice with
#                                SCRAM-SHA-512, 100 records round trip
#   kcat/sasl-ssl/plaintext      a plain-text kcat on the SASL_SSL port gets no
#                                metadata
#   java/sasl-ssl/scram-sha-512  ProducerPerformance (1,000 records, acks=all) and
#                                the console consumer in a group, SCRAM-SHA-512
#                                with the CA as a PEM truststore
#
# Usage: tests/compat/tls.sh   (STREAMHOUSE_BIN, COMPAT_BACKENDS, COMPAT_KEEP=1)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=certs.sh
source "$COMPAT_DIR/certs.sh"

JAVA_LIB="$STREAMHOUSE_CACHE/java/lib"
TIMEOUT=60

trap broker_cleanup EXIT

command -v kcat >/dev/null || { record FAIL "tls/setup" "kcat not installed (apt-get install kcat)"; exit 1; }
command -v openssl >/dev/null || { record FAIL "tls/setup" "openssl not installed"; exit 1; }

# A broker of this backend with one PROTOCOL listener and the TLS files;
# requiring client certificates with MTLS=mtls; with the users file (alice)
# on SASL_SSL.
tls_broker_start() {
    local backend="$1" protocol="$2" mtls="${3:-}"
    broker_prepare "$backend" "tls-$backend" || return 1
    make_certs || return 1
    BROKER_PORT="$(free_port)"
    BROKER_BOOTSTRAP="127.0.0.1:$BROKER_PORT"
    BROKER_ARGS=(--listener "$protocol://$BROKER_BOOTSTRAP" --tls-cert "$CERTS/server.pem"
        --tls-key "$CERTS/server.key" "${BACKEND_ARGS[@]}")
    [[ "$mtls" == mtls ]] && BROKER_ARGS+=(--tls-client-ca "$CERTS/ca.pem")
    if [[ "$protocol" == SASL_SSL ]]; then
        printf 'alice:alice-secret\n' >"$BROKER_DIR/users"
        BROKER_ARGS+=(--sasl-users-file "$BROKER_DIR/users")
    fi
    broker_launch
}

kcat_ssl() {
    timeout --foreground "$TIMEOUT" kcat -b "$BROKER_BOOTSTRAP" -X security.protocol=SSL \
        -X ssl.ca.location="$CERTS/ca.pem" "$@"
}

kcat_mtls() {
    kcat_ssl -X ssl.certificate.location="$CERTS/client.pem" -X ssl.key.location="$CERTS/client.key" "$@"
}

kcat_sasl_ssl() {
    timeout --foreground "$TIMEOUT" kcat -b "$BROKER_BOOTSTRAP" -X security.protocol=SASL_SSL \
        -X ssl.ca.location="$CERTS/ca.pem" -X sasl.mechanisms=SCRAM-SHA-512 \
        -X sasl.username=alice -X sasl.password=alice-secret "$@"
}

# 100 records produced and read back with the kcat wrapper $1; records NAME.
round_trip() {
    local client="$1" name="$2" work="$BROKER_DIR/work" topic
    mkdir -p "$work"
    topic="$(unique tls)"
    seq 1 100 | sed 's/^/record-/' >"$work/$client.expected"
    if ! "$client" -q -P -t "$topic" <"$work/$client.expected" 2>"$work/$client.err"; then
        record FAIL "$name" "produce failed: $(tail -n 3 "$work/$client.err" | tr '\n' ' ')"
        return
    fi
    "$client" -q -C -t "$topic" -o beginning -e -f '%s\n' >"$work/$client.got" 2>>"$work/$client.err"
    if cmp -s "$work/$client.got" "$work/$client.expected"; then
        record PASS "$name"
    else
        record FAIL "$name" "read $(wc -l <"$work/$client.got") of 100 records: $(tail -n 3 "$work/$client.err" | tr '\n' ' ')"
    fi
}

# Whether metadata is refused to this command line.
refused() {
    local out="$BROKER_DIR/refused.out"
    if "$@" -L -m 5 >"$out" 2>&1; then
        echo "metadata answered: $(head -c 300 "$out" | tr '\n' ' ')"
        return 1
    fi
}

# SIGHUP twice: a broken certificate is refused, a renewed one served.
reload() {
    local pfx="$1" log_lines
    log_lines="$(wc -l <"$BROKER_LOG")"
    cp "$CERTS/server.pem" "$CERTS/server.pem.good"
    head -c 200 "$CERTS/server.pem.good" >"$CERTS/server.pem"
    kill -HUP "$BROKER_PID"
    sleep 1
    if ! tail -n +"$log_lines" "$BROKER_LOG" | grep -q "TLS reload failed"; then
        record FAIL "$pfx/kcat/ssl/reload" "no error logged for a broken certificate"
        return
    fi
    if ! kcat_ssl -L -m 5 >/dev/null 2>"$BROKER_DIR/reload.err"; then
        record FAIL "$pfx/kcat/ssl/reload" "not served after a failed reload: $(tail -n 2 "$BROKER_DIR/reload.err")"
        return
    fi
    # A new key and certificate from the same CA.
    (cd "$CERTS" && issue server /CN=localhost "$SERVER_EXTENSIONS") \
        >"$CERTS/renew.log" 2>&1
    kill -HUP "$BROKER_PID"
    sleep 1
    local served
    served="$(echo | timeout 10 openssl s_client -connect "$BROKER_BOOTSTRAP" -CAfile "$CERTS/ca.pem" 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null)"
    if [[ "$served" != "$(openssl x509 -in "$CERTS/server.pem" -noout -fingerprint -sha256)" ]]; then
        record FAIL "$pfx/kcat/ssl/reload" "the renewed certificate is not served: $served"
    elif ! kcat_ssl -L -m 5 >/dev/null 2>"$BROKER_DIR/reload.err"; then
        record FAIL "$pfx/kcat/ssl/reload" "not served after the reload: $(tail -n 2 "$BROKER_DIR/reload.err")"
    else
        record PASS "$pfx/kcat/ssl/reload"
    fi
}

java_sasl_ssl() {
    local pfx="$1" work="$BROKER_DIR/work" topic produced consumed
    mkdir -p "$work"
    topic="$(unique tls-java)"
    cat >"$work/client.properties" <<CONFIG
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS/ca.pem
CONFIG
    produced="$(timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" org.apache.kafka.tools.ProducerPerformance \
        --topic "$topic" --num-records 1000 --record-size 100 --throughput -1 \
        --producer-props bootstrap.servers="$BROKER_BOOTSTRAP" acks=all \
        --producer.config "$work/client.properties" 2>"$work/java-produce.err" | tail -n 1)"
    consumed="$(timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
        --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$topic" --from-beginning --max-messages 1000 \
        --group "$(unique tls-group)" --consumer.config "$work/client.properties" \
        2>"$work/java-consume.err" | grep -c -E '^.{100}$')"
    if [[ "$produced" == "1000 records sent"* && "$consumed" == 1000 ]]; then
        record PASS "$pfx/java/sasl-ssl/scram-sha-512"
    else
        record FAIL "$pfx/java/sasl-ssl/scram-sha-512" "producer: '$produced'; consumer read $consumed of 1000; $(grep -h -m 2 Exception "$work"/java-*.err | tr '\n' ' ')"
    fi
}

for backend in $COMPAT_BACKENDS; do
    pfx="tls/$backend"
    if tls_broker_start "$backend" SSL; then
        round_trip kcat_ssl "$pfx/kcat/ssl/round-trip"
        reload "$pfx"
    else
        record FAIL "$pfx/ssl/broker-start" "see the broker log above"
    fi
    broker_cleanup

    if tls_broker_start "$backend" SSL mtls; then
        round_trip kcat_mtls "$pfx/kcat/mtls/client-cert"
        if why="$(refused kcat_ssl)"; then
            record PASS "$pfx/kcat/mtls/no-client-cert"
        else
            record FAIL "$pfx/kcat/mtls/no-client-cert" "$why"
        fi
    else
        record FAIL "$pfx/mtls/broker-start" "see the broker log above"
    fi
    broker_cleanup

    if tls_broker_start "$backend" SASL_SSL; then
        round_trip kcat_sasl_ssl "$pfx/kcat/sasl-ssl/scram-sha-512"
        if why="$(refused timeout --foreground "$TIMEOUT" kcat -b "$BROKER_BOOTSTRAP")"; then
            record PASS "$pfx/kcat/sasl-ssl/plaintext"
        else
            record FAIL "$pfx/kcat/sasl-ssl/plaintext" "$why"
        fi
        java_sasl_ssl "$pfx"
    else
        record FAIL "$pfx/sasl-ssl/broker-start" "see the broker log above"
    fi
    broker_cleanup
done
exit "$COMPAT_FAILED"
