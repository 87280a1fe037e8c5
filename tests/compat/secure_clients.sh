#!/usr/bin/env bash
# Every client over every secure listener: the Java client (kafka-clients
# 4.4.0 tools), confluent-kafka (librdkafka 2.16) and franz-go produce 100
# records to a fresh topic and read every one back, over SASL_SSL with
# SCRAM-SHA-512, over SSL with a client certificate (mTLS) and over
# SASL_PLAINTEXT with PLAIN. kcat does the same in tls.sh and sasl.sh. Then
# what Kafka's clients see when TLS goes wrong: an expired server
# certificate, and a plain-text client on a TLS port.
#
# On the embedded backend pair only: transport and authentication sit in
# front of the catalog and the store and do not depend on them, and one pair
# keeps the runner near a minute. Nothing runs (and run_all.sh reports "ran
# no scenario") when COMPAT_BACKENDS leaves embedded out.
#
# One broker per listener (one listener per agent), started with
# --group-initial-rebalance-delay-ms 0; the certificates come from certs.sh,
# in each broker's temp dir.
#
# Scenarios (LISTENER is sasl-ssl, mtls or sasl-plaintext):
#   secure/LISTENER/java             the console producer (acks=all) writes
#                                    100 records, the console consumer reads
#                                    them in a group; PEM truststore and, on
#                                    mtls, a PEM keystore (ssl.keystore.type=PEM)
#   secure/LISTENER/confluent-kafka  secure_client.py: admin CreateTopics (3
#                                    partitions), 100 records acks=all, read
#                                    back in a group, each exactly once
#   secure/LISTENER/franz-go         the same with tests/compat/go (compat
#                                    secure): kadm, the idempotent producer,
#                                    a consumer group
#   secure/plaintext-on-tls/confluent-kafka, .../franz-go
#                                    without TLS on the mtls broker's port: no
#                                    metadata; the same process then serves
#                                    kcat with its client certificate
#   secure/expired-cert/kcat, .../java, .../confluent-kafka, .../franz-go
#                                    a server certificate that expired in 2020:
#                                    each client refuses the handshake, in its
#                                    own words: CertificateExpiredException
#                                    (Java), "x509: certificate has expired"
#                                    (Go), "certificate verify failed"
#                                    (librdkafka, which gives no reason)
#   secure/expired-cert/openssl      openssl s_client with the same CA file:
#                                    "certificate has expired" is the reason
#   secure/expired-cert/reload       SIGHUP with a valid certificate: the same
#                                    process serves kcat
#
# Needs the Go binary of ./scripts/test.sh --setup-only
# ($STREAMHOUSE_CACHE/go/bin/compat), the venv and the Java jars.
#
# Usage: tests/compat/secure_clients.sh   (STREAMHOUSE_BIN, COMPAT_BACKENDS, COMPAT_KEEP=1)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=certs.sh
source "$COMPAT_DIR/certs.sh"

JAVA_LIB="$STREAMHOUSE_CACHE/java/lib"
GO_BIN="$STREAMHOUSE_CACHE/go/bin/compat"
PY="$SH_VENV/bin/python"
TIMEOUT=60
RECORDS=100

trap broker_cleanup EXIT

failed() { record FAIL "$1" "$2"; }

if [[ " $COMPAT_BACKENDS " != *" embedded "* ]]; then
    echo "secure: runs on the embedded backend pair only, and COMPAT_BACKENDS is '$COMPAT_BACKENDS'" >&2
    exit 0
fi
command -v kcat >/dev/null || { record FAIL "secure/setup" "kcat not installed (apt-get install kcat)"; exit 1; }
command -v openssl >/dev/null || { record FAIL "secure/setup" "openssl not installed"; exit 1; }
[[ -x "$PY" ]] || { record FAIL "secure/setup" "no venv at $SH_VENV; run ./scripts/test.sh --setup-only"; exit 1; }
# An older build of the Go program has no secure mode: it would fail every
# franz-go scenario with a usage message.
if [[ "$("$GO_BIN" secure -h 2>&1)" != *"-protocol"* ]]; then
    record FAIL "secure/setup" "$GO_BIN missing or without its secure mode; run ./scripts/test.sh --setup-only"
    exit 1
fi

# A broker with one PROTOCOL listener: the TLS files on SSL and SASL_SSL,
# client certificates required with MTLS=mtls, the users file (alice) on the
# SASL protocols. SERVER names the certificate to serve (server or expired).
secure_broker_start() {
    local name="$1" protocol="$2" mtls="${3:-}" server="${4:-server}"
    broker_prepare embedded "secure-$name" || return 1
    make_certs || return 1
    if [[ "$server" == expired ]]; then
        (cd "$CERTS" && issue_expired expired /CN=localhost "$SERVER_EXTENSIONS") >>"$CERTS/openssl.log" 2>&1 ||
            { cat "$CERTS/openssl.log" >&2; return 1; }
    fi
    BROKER_PORT="$(free_port)"
    BROKER_BOOTSTRAP="127.0.0.1:$BROKER_PORT"
    BROKER_ARGS=(--listener "$protocol://$BROKER_BOOTSTRAP" --group-initial-rebalance-delay-ms 0
        "${BACKEND_ARGS[@]}")
    if [[ "$protocol" == *SSL ]]; then
        BROKER_ARGS+=(--tls-cert "$CERTS/$server.pem" --tls-key "$CERTS/$server.key")
    fi
    [[ "$mtls" == mtls ]] && BROKER_ARGS+=(--tls-client-ca "$CERTS/ca.pem")
    if [[ "$protocol" == SASL_* ]]; then
        printf 'alice:alice-secret\n' >"$BROKER_DIR/users"
        BROKER_ARGS+=(--sasl-users-file "$BROKER_DIR/users")
    fi
    WORK="$BROKER_DIR/work"
    mkdir -p "$WORK"
    broker_launch
}

# The settings of LISTENER (or ssl: no client certificate) for each client: Java properties in
# $WORK/java.properties, librdkafka's -X pairs in LIBRDKAFKA, the Go
# program's flags in FRANZ.
client_settings() {
    local listener="$1"
    case "$listener" in
        sasl-ssl)
            cat >"$WORK/java.properties" <<CONFIG
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS/ca.pem
CONFIG
            LIBRDKAFKA=(-X security.protocol=SASL_SSL -X ssl.ca.location="$CERTS/ca.pem"
                -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=alice -X sasl.password=alice-secret)
            FRANZ=(-protocol SASL_SSL -ca "$CERTS/ca.pem" -mechanism SCRAM-SHA-512 -user alice
                -password alice-secret)
            ;;
        ssl)
            cat >"$WORK/java.properties" <<CONFIG
security.protocol=SSL
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS/ca.pem
CONFIG
            LIBRDKAFKA=(-X security.protocol=SSL -X ssl.ca.location="$CERTS/ca.pem")
            FRANZ=(-protocol SSL -ca "$CERTS/ca.pem")
            ;;
        mtls)
            # Kafka's PEM keystore file: the PKCS#8 key, then the certificate.
            cat "$CERTS/client.key" "$CERTS/client.pem" >"$CERTS/client-keystore.pem"
            cat >"$WORK/java.properties" <<CONFIG
security.protocol=SSL
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS/ca.pem
ssl.keystore.type=PEM
ssl.keystore.location=$CERTS/client-keystore.pem
CONFIG
            LIBRDKAFKA=(-X security.protocol=SSL -X ssl.ca.location="$CERTS/ca.pem"
                -X ssl.certificate.location="$CERTS/client.pem" -X ssl.key.location="$CERTS/client.key")
            FRANZ=(-protocol SSL -ca "$CERTS/ca.pem" -cert "$CERTS/client.pem" -key "$CERTS/client.key")
            ;;
        sasl-plaintext)
            cat >"$WORK/java.properties" <<CONFIG
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret";
CONFIG
            LIBRDKAFKA=(-X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN
                -X sasl.username=alice -X sasl.password=alice-secret)
            FRANZ=(-protocol SASL_PLAINTEXT -mechanism PLAIN -user alice -password alice-secret)
            ;;
    esac
}

java_tool() {
    timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" "$@"
}

# The console producer writes record-1..100 (acks=all, the default), the
# console consumer reads them in a fresh group; every record must come back.
java_round_trip() {
    local name="$1" topic expected="$WORK/java.expected" got="$WORK/java.got"
    topic="$(unique secure-java)"
    seq 1 "$RECORDS" | sed 's/^/record-/' >"$expected"
    java_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BROKER_BOOTSTRAP" \
        --topic "$topic" --command-config "$WORK/java.properties" \
        <"$expected" >"$WORK/java-produce.out" 2>&1
    java_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BROKER_BOOTSTRAP" \
        --topic "$topic" --from-beginning --max-messages "$RECORDS" --group "$(unique secure-group)" \
        --command-config "$WORK/java.properties" 2>"$WORK/java-consume.err" | sort >"$got"
    if cmp -s "$got" <(sort "$expected"); then
        record PASS "$name"
    else
        failed "$name" "read $(wc -l <"$got") of $RECORDS records; $(grep -h -m 2 -E 'Exception|ERROR' \
            "$WORK/java-produce.out" "$WORK/java-consume.err" | tr '\n' ' ' | head -c 600)"
    fi
}

# One line of the program's stdout is its verdict, stderr is librdkafka's log.
confluent_round_trip() {
    local name="$1"
    if timeout "$TIMEOUT" "$PY" "$COMPAT_DIR/secure_client.py" "$BROKER_BOOTSTRAP" "${LIBRDKAFKA[@]}" \
            --records "$RECORDS" >"$WORK/confluent.out" 2>"$WORK/confluent.err"; then
        record PASS "$name"
    else
        failed "$name" "$(cat "$WORK/confluent.out") $(tail -n 3 "$WORK/confluent.err" | tr '\n' ' ' | head -c 400)"
    fi
}

franz_round_trip() {
    local name="$1"
    if timeout "$TIMEOUT" "$GO_BIN" secure -bootstrap "$BROKER_BOOTSTRAP" "${FRANZ[@]}" \
            -records "$RECORDS" >"$WORK/franz.out" 2>"$WORK/franz.err"; then
        record PASS "$name"
    else
        failed "$name" "$(cat "$WORK/franz.out") $(tail -n 3 "$WORK/franz.err" | tr '\n' ' ' | head -c 400)"
    fi
}

kcat_mtls() {
    timeout --foreground "$TIMEOUT" kcat -b "$BROKER_BOOTSTRAP" -X security.protocol=SSL \
        -X ssl.ca.location="$CERTS/ca.pem" -X ssl.certificate.location="$CERTS/client.pem" \
        -X ssl.key.location="$CERTS/client.key" "$@"
}

# NAME passes when COMMAND (a plain-text client's metadata request) fails
# with output matching PATTERN, and the broker then still serves kcat with
# the client certificate.
plaintext_refused() {
    local name="$1" pattern="$2" out="$WORK/plaintext-${1##*/}.out"
    shift 2
    if timeout "$TIMEOUT" "$@" >"$out" 2>&1; then
        record FAIL "$name" "metadata answered: $(head -c 300 "$out" | tr '\n' ' ')"
    elif ! grep -q -E "$pattern" "$out"; then
        record FAIL "$name" "refused, but not with /$pattern/: $(tail -n 4 "$out" | tr '\n' ' ' | head -c 600)"
    elif ! broker_alive || ! kcat_mtls -L -m 5 >"$WORK/after.out" 2>&1; then
        record FAIL "$name" "the broker no longer serves TLS clients: $(tail -n 3 "$WORK/after.out" | tr '\n' ' ')"
    else
        record PASS "$name"
    fi
}

# NAME passes when COMMAND's output matches PATTERN, the client's words for
# an expired certificate. Not its exit status: ProducerPerformance reports
# failed sends and exits 0.
expired_refused() {
    local name="$1" pattern="$2" out="$WORK/expired-${1##*/}.out" rc
    shift 2
    timeout "$TIMEOUT" "$@" >"$out" 2>&1
    rc=$?
    if grep -q -E "$pattern" "$out"; then
        record PASS "$name"
    else
        record FAIL "$name" "exit status $rc, no /$pattern/: $(grep -m 3 -i -E 'error|exception|fail|metadata' "$out" | tr '\n' ' ' | head -c 600)"
    fi
}

# The three listeners, each client round trip.
for listener in sasl-ssl mtls sasl-plaintext; do
    case "$listener" in
        sasl-ssl) secure_broker_start "$listener" SASL_SSL ;;
        mtls) secure_broker_start "$listener" SSL mtls ;;
        sasl-plaintext) secure_broker_start "$listener" SASL_PLAINTEXT ;;
    esac || { record FAIL "secure/$listener/broker-start" "see the broker log above"; broker_cleanup; continue; }
    client_settings "$listener"
    java_round_trip "secure/$listener/java"
    confluent_round_trip "secure/$listener/confluent-kafka"
    franz_round_trip "secure/$listener/franz-go"
    if [[ "$listener" == mtls ]]; then
        plaintext_refused secure/plaintext-on-tls/confluent-kafka 'Broker transport failure' \
            "$PY" "$COMPAT_DIR/secure_client.py" "$BROKER_BOOTSTRAP" --metadata
        plaintext_refused secure/plaintext-on-tls/franz-go 'speaking to a tls endpoint|is TLS missing' \
            "$GO_BIN" secure -bootstrap "$BROKER_BOOTSTRAP" -protocol PLAINTEXT -metadata
    fi
    broker_alive || record FAIL "secure/$listener/broker-alive" "the broker died: $(broker_log_tail 20 | tr '\n' ' ')"
    broker_cleanup
done

# An SSL listener serving a certificate that expired in 2020, issued by the
# CA the clients trust: each client refuses it for its date. Then SIGHUP with
# a valid one, and the same process serves kcat.
if secure_broker_start expired SSL "" expired; then
    client_settings ssl
    # librdkafka prints OpenSSL's "certificate verify failed" without the
    # reason; OpenSSL's own client, with the same CA file, names it.
    expired_refused secure/expired-cert/kcat 'SSL handshake failed: .*certificate verify failed' \
        kcat -b "$BROKER_BOOTSTRAP" "${LIBRDKAFKA[@]}" -L -m 5
    expired_refused secure/expired-cert/openssl 'verify error:num=10:certificate has expired' \
        openssl s_client -connect "$BROKER_BOOTSTRAP" -CAfile "$CERTS/ca.pem" -verify_return_error </dev/null
    expired_refused secure/expired-cert/java 'CertificateExpiredException: NotAfter' \
        java -cp "$JAVA_LIB/*" org.apache.kafka.tools.ProducerPerformance --topic "$(unique secure-expired)" \
        --num-records 1 --record-size 10 --throughput -1 \
        --command-property bootstrap.servers="$BROKER_BOOTSTRAP" max.block.ms=10000 \
        --command-config "$WORK/java.properties"
    expired_refused secure/expired-cert/confluent-kafka 'SSL handshake failed: .*certificate verify failed' \
        "$PY" "$COMPAT_DIR/secure_client.py" "$BROKER_BOOTSTRAP" "${LIBRDKAFKA[@]}" --metadata
    expired_refused secure/expired-cert/franz-go 'x509: certificate has expired' \
        "$GO_BIN" secure -bootstrap "$BROKER_BOOTSTRAP" "${FRANZ[@]}" -metadata

    pid="$BROKER_PID"
    log_lines="$(wc -l <"$BROKER_LOG")"
    # Moved into place whole, as docs/security.md asks of a renewal.
    cp "$CERTS/server.key" "$CERTS/expired.key.new" && mv "$CERTS/expired.key.new" "$CERTS/expired.key"
    cp "$CERTS/server.pem" "$CERTS/expired.pem.new" && mv "$CERTS/expired.pem.new" "$CERTS/expired.pem"
    kill -HUP "$BROKER_PID"
    for _ in $(seq 50); do
        tail -n +"$log_lines" "$BROKER_LOG" | grep -q "TLS certificate and key reloaded" && break
        sleep 0.1
    done
    if ! tail -n +"$log_lines" "$BROKER_LOG" | grep -q "TLS certificate and key reloaded"; then
        record FAIL secure/expired-cert/reload "no reload logged: $(broker_log_tail 5 | tr '\n' ' ')"
    elif ! timeout --foreground "$TIMEOUT" kcat -b "$BROKER_BOOTSTRAP" "${LIBRDKAFKA[@]}" -L -m 5 \
            >"$WORK/reloaded.out" 2>&1; then
        record FAIL secure/expired-cert/reload "kcat refused after the reload: $(tail -n 3 "$WORK/reloaded.out" | tr '\n' ' ')"
    elif [[ "$BROKER_PID" != "$pid" ]] || ! broker_alive; then
        record FAIL secure/expired-cert/reload "not the same broker process"
    else
        record PASS secure/expired-cert/reload
    fi
else
    record FAIL secure/expired-cert/broker-start "see the broker log above"
fi
broker_cleanup
exit "$COMPAT_FAILED"
