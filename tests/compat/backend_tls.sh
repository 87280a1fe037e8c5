#!/usr/bin/env bash
# The agent's own connections over TLS: a PostgreSQL server of its own with
# ssl on and plain-text connections refused (pg_hba), and moto over https,
# both with a certificate from a private CA that openssl makes in the run's
# temp dir. The agent trusts the CA through the catalog URL
# (sslmode=verify-full&sslrootcert=...) and the store URL (ca_file=...).
# Transport only, so one broker, whatever COMPAT_BACKENDS says.
#
# Scenarios:
#   backend-tls/round-trip        kcat produces 100 records and reads them back
#                                 through an agent whose catalog and store are
#                                 reached over TLS only
#   backend-tls/catalog-untrusted sslmode=verify-full without the CA: the agent
#                                 refuses to start, naming the certificate
#   backend-tls/catalog-plaintext sslmode=disable against the TLS-only server:
#                                 the agent refuses to start with the server's
#                                 "no encryption" refusal
#
# Usage: tests/compat/backend_tls.sh   (STREAMHOUSE_BIN, COMPAT_KEEP=1)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/certs.sh"

TIMEOUT=60
PG_PID_DIR=""
MOTO_PID=""
pg=""

cleanup() {
    broker_cleanup
    [[ -n "$MOTO_PID" ]] && kill "$MOTO_PID" 2>/dev/null
    if [[ -n "$PG_PID_DIR" && -f "$PG_PID_DIR/postmaster.pid" ]]; then
        sh_as_postgres "$(sh_pg_bindir)/pg_ctl" -D "$PG_PID_DIR" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    [[ -n "$pg" ]] && rm -rf "$pg"
}
trap cleanup EXIT

command -v kcat >/dev/null || { record FAIL "backend-tls/setup" "kcat not installed"; exit 1; }

# A PostgreSQL server on PG_PORT that takes TLS connections only.
start_postgres() {
    local bindir
    bindir="$(sh_pg_bindir)" || return 1
    # Outside the run's dir, which the postgres user cannot enter.
    pg="$(mktemp -d /tmp/sh-backend-tls-pg-XXXXXX)"
    cp "$CERTS/server.pem" "$CERTS/server.key" "$pg/"
    chown -R postgres:postgres "$pg"
    chmod 0600 "$pg/server.key"
    sh_as_postgres "$bindir/initdb" -D "$pg/data" -U postgres --auth=trust --no-sync \
        --encoding=UTF8 --locale=C.UTF-8 >"$BROKER_DIR/initdb.log" 2>&1 || return 1
    PG_PORT="$(free_port)"
    cat >>"$pg/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$pg'
fsync = off
ssl = on
ssl_cert_file = '$pg/server.pem'
ssl_key_file = '$pg/server.key'
CONF
    printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n' \
        >"$pg/data/pg_hba.conf"
    PG_PID_DIR="$pg/data"
    sh_as_postgres "$bindir/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -w -t 60 start \
        >"$BROKER_DIR/pg_ctl.log" 2>&1
}

# moto over https on S3_PORT, with a bucket.
start_moto() {
    S3_PORT="$(free_port)"
    setsid "$SH_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" -s \
        -c "$CERTS/server.pem" -k "$CERTS/server.key" >"$BROKER_DIR/moto.log" 2>&1 </dev/null &
    MOTO_PID=$!
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$SH_VENV/bin/python" - "$S3_PORT" "$CERTS/ca.pem" <<'PY'
import sys, time, boto3
s3 = boto3.client("s3", endpoint_url="https://localhost:%s" % sys.argv[1], region_name="us-east-1",
                  verify=sys.argv[2])
for _ in range(300):
    try:
        s3.create_bucket(Bucket="backend-tls")
        sys.exit(0)
    except Exception as e:
        error = e
        time.sleep(0.1)
sys.exit("moto over https did not answer: %s" % error)
PY
}

# Starts the agent with CATALOG; its exit status and log for a refusal.
agent_with_catalog() {
    BROKER_PORT="$(free_port)"
    BROKER_BOOTSTRAP="127.0.0.1:$BROKER_PORT"
    BROKER_ARGS=(--data-dir "$BROKER_DIR/data" --listen "$BROKER_BOOTSTRAP" --catalog "$1"
        --store "s3://backend-tls?endpoint=https://localhost:$S3_PORT&region=us-east-1&path_style=true&ca_file=$CERTS/ca.pem")
}

broker_prepare embedded backend-tls || { record FAIL "backend-tls/setup" "broker_prepare failed"; exit 1; }
if ! make_certs; then
    record FAIL "backend-tls/setup" "openssl failed"
    exit 1
fi
if ! start_postgres; then
    record FAIL "backend-tls/setup" "PostgreSQL with ssl did not start: $(tail -n 5 "$pg/postgres.log" "$BROKER_DIR/pg_ctl.log" "$BROKER_DIR/initdb.log" 2>/dev/null | tr '\n' ' ')"
    exit 1
fi
if ! start_moto 2>"$BROKER_DIR/moto-bucket.err"; then
    record FAIL "backend-tls/setup" "moto over https: $(tail -n 3 "$BROKER_DIR/moto-bucket.err" "$BROKER_DIR/moto.log" | tr '\n' ' ')"
    exit 1
fi
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
PG="postgres://postgres@localhost:$PG_PORT/postgres"

# The refusals first: the agent must not start.
for case in untrusted plaintext; do
    case "$case" in
        untrusted) url="$PG?sslmode=verify-full"; expected="certificate" ;;
        plaintext) url="$PG?sslmode=disable"; expected="no encryption" ;;
    esac
    agent_with_catalog "$url"
    timeout "$TIMEOUT" "$STREAMHOUSE_BIN" "${BROKER_ARGS[@]}" >"$BROKER_DIR/$case.log" 2>&1
    status=$?
    if [[ $status -ne 0 && $status -ne 124 ]] && grep -q -i "$expected" "$BROKER_DIR/$case.log"; then
        record PASS "backend-tls/catalog-$case"
    else
        record FAIL "backend-tls/catalog-$case" "exit $status: $(tail -n 3 "$BROKER_DIR/$case.log" | tr '\n' ' ')"
    fi
done

agent_with_catalog "$PG?sslmode=verify-full&sslrootcert=$CERTS/ca.pem"
if ! broker_launch; then
    record FAIL "backend-tls/round-trip" "the agent did not start: $(tail -n 5 "$BROKER_LOG" | tr '\n' ' ')"
    exit "$COMPAT_FAILED"
fi
work="$BROKER_DIR/work"
mkdir -p "$work"
topic="$(unique backend-tls)"
seq 1 100 | sed 's/^/record-/' >"$work/expected"
timeout --foreground "$TIMEOUT" kcat -b "$BROKER_BOOTSTRAP" -P -t "$topic" <"$work/expected" 2>"$work/kcat.err"
timeout --foreground "$TIMEOUT" kcat -b "$BROKER_BOOTSTRAP" -C -t "$topic" -o beginning -e -q -f '%s\n' \
    >"$work/got" 2>>"$work/kcat.err"
ssl_sessions="$(psql -X -A -t -d "$PG?sslmode=verify-full&sslrootcert=$CERTS/ca.pem" \
    -c "SELECT count(*) FILTER (WHERE NOT ssl) || ',' || count(*) FILTER (WHERE ssl) FROM pg_stat_ssl" 2>&1)"
objects="$("$SH_VENV/bin/python" - "$S3_PORT" "$CERTS/ca.pem" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url="https://localhost:%s" % sys.argv[1], region_name="us-east-1",
                  verify=sys.argv[2])
print(s3.list_objects_v2(Bucket="backend-tls").get("KeyCount", 0))
PY
)"
if cmp -s "$work/got" "$work/expected" && [[ "$ssl_sessions" == 0,* && "${objects:-0}" -gt 0 ]]; then
    record PASS "backend-tls/round-trip"
else
    record FAIL "backend-tls/round-trip" "read $(wc -l <"$work/got") of 100; sessions without,with TLS: $ssl_sessions; objects: $objects; $(tail -n 2 "$work/kcat.err" | tr '\n' ' ')"
fi
exit "$COMPAT_FAILED"
