#!/usr/bin/env bash
# Test services for StreamHouse: a private PostgreSQL cluster and moto's
# S3-compatible server, both on loopback, both with their state under
# $STREAMHOUSE_CACHE (default /var/cache/streamhouse-ci), never in the repo.
#
# Sourced by scripts/test.sh and tests/compat/run_all.sh, or run by hand:
#
#   scripts/services.sh start     # start both (reuse running ones), print exports
#   scripts/services.sh env       # print the exports only:  eval "$(scripts/services.sh env)"
#   scripts/services.sh status
#   scripts/services.sh stop      # stop both (whoever started them)
#
# Functions (after `source scripts/services.sh`):
#   sh_pg_start / sh_pg_stop / sh_pg_running
#   sh_moto_start / sh_moto_stop / sh_moto_running / sh_s3_create_bucket NAME
#   sh_services_start        both, then sh_export_env
#   sh_services_stop_ours    stop only what this shell started (for traps)
#   sh_export_env            export STREAMHOUSE_TEST_* and AWS_* in this shell
#   sh_print_exports         the same as `export` lines, for eval
#
# moto needs the Python venv that scripts/test.sh creates
# ($STREAMHOUSE_CACHE/venv); PostgreSQL needs Debian's postgresql package.

: "${STREAMHOUSE_CACHE:=/var/cache/streamhouse-ci}"
export STREAMHOUSE_CACHE

SH_PG_PORT="${STREAMHOUSE_PG_PORT:-54329}"
SH_S3_PORT="${STREAMHOUSE_S3_PORT:-54330}"
SH_S3_BUCKET="${STREAMHOUSE_S3_BUCKET:-streamhouse-test}"
SH_PG_DIR="$STREAMHOUSE_CACHE/postgres"
SH_PG_DATA="$SH_PG_DIR/data"
SH_PG_SOCKETS="$SH_PG_DIR/run"
SH_LOG_DIR="$STREAMHOUSE_CACHE/logs"
SH_VENV="$STREAMHOUSE_CACHE/venv"
SH_MOTO_PIDFILE="$STREAMHOUSE_CACHE/moto.pid"

# Set to 1 by the start functions when this shell started the service (and
# so should stop it again); a service that was already running is reused.
SH_PG_STARTED=0
SH_MOTO_STARTED=0

sh_log() { printf '%s\n' "$*" >&2; }

# Highest installed PostgreSQL server version's bin dir (Debian layout).
sh_pg_bindir() {
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] || continue
        best="$d"   # glob order is lexical; 15 < 16 < 17 all sort right
    done
    [[ -n "$best" ]] || { sh_log "services: no PostgreSQL server found (apt-get install postgresql)"; return 1; }
    printf '%s\n' "$best"
}

# Runs a PostgreSQL tool as the postgres user (initdb and the server refuse root).
sh_as_postgres() {
    if [[ "$(id -un)" == postgres ]]; then
        "$@"
    elif [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        sudo -n -u postgres -- "$@"
    fi
}

sh_pg_url() { printf 'postgres://postgres@127.0.0.1:%s/postgres\n' "$SH_PG_PORT"; }

sh_pg_running() {
    local bindir
    bindir="$(sh_pg_bindir)" || return 1
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$SH_PG_PORT" -t 2 >/dev/null 2>&1
}

sh_pg_start() {
    local bindir
    bindir="$(sh_pg_bindir)" || return 1
    if sh_pg_running; then
        return 0
    fi
    mkdir -p "$SH_LOG_DIR"
    mkdir -p "$SH_PG_DIR" "$SH_PG_SOCKETS"
    chown postgres:postgres "$SH_PG_DIR" "$SH_PG_SOCKETS" 2>/dev/null || true
    if [[ ! -s "$SH_PG_DATA/PG_VERSION" ]]; then
        rm -rf "$SH_PG_DATA"
        if ! sh_as_postgres "$bindir/initdb" -D "$SH_PG_DATA" -U postgres --auth=trust \
                --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$SH_LOG_DIR/initdb.log" 2>&1; then
            sh_log "services: initdb failed:"; cat "$SH_LOG_DIR/initdb.log" >&2; return 1
        fi
        # A throwaway test cluster: loopback only, no fsync (the broker under
        # test is what gets killed, never PostgreSQL), room for many brokers' pools.
        cat >>"$SH_PG_DATA/postgresql.conf" <<EOF

# --- streamhouse test cluster (scripts/services.sh) ---
listen_addresses = '127.0.0.1'
port = $SH_PG_PORT
unix_socket_directories = '$SH_PG_SOCKETS'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
EOF
    fi
    # A postmaster.pid left by a killed cluster whose pid is gone or reused:
    # pg_ctl status is the judge of whether a server really runs on this dir.
    if [[ -f "$SH_PG_DATA/postmaster.pid" ]] && ! sh_as_postgres "$bindir/pg_ctl" -D "$SH_PG_DATA" status >/dev/null 2>&1; then
        rm -f "$SH_PG_DATA/postmaster.pid"
    fi
    # The server's own log is written by the postgres user: keep it in its dir.
    if ! sh_as_postgres "$bindir/pg_ctl" -D "$SH_PG_DATA" -l "$SH_PG_DIR/postgres.log" \
            -w -t 60 start >"$SH_LOG_DIR/pg_ctl.log" 2>&1; then
        sh_log "services: PostgreSQL failed to start on 127.0.0.1:$SH_PG_PORT:"
        tail -n 30 "$SH_LOG_DIR/pg_ctl.log" "$SH_PG_DIR/postgres.log" >&2 2>/dev/null
        return 1
    fi
    SH_PG_STARTED=1
}

sh_pg_stop() {
    local bindir
    bindir="$(sh_pg_bindir)" || return 0
    [[ -f "$SH_PG_DATA/postmaster.pid" ]] || return 0
    sh_as_postgres "$bindir/pg_ctl" -D "$SH_PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    SH_PG_STARTED=0
}

sh_moto_running() {
    # moto answers GET / with its (empty) bucket list.
    python3 - "$SH_S3_PORT" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=2).read()
EOF
}

# Creates bucket NAME in moto unless it exists (moto keeps buckets in memory,
# so every start needs it again).
sh_s3_create_bucket() {
    local name="$1"
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    "$SH_VENV/bin/python" - "$SH_S3_PORT" "$name" <<'EOF'
import sys, boto3, botocore.exceptions
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:%s" % sys.argv[1], region_name="us-east-1")
try:
    s3.head_bucket(Bucket=sys.argv[2])
except botocore.exceptions.ClientError:
    s3.create_bucket(Bucket=sys.argv[2])
EOF
}

sh_moto_start() {
    if [[ ! -x "$SH_VENV/bin/moto_server" ]]; then
        sh_log "services: $SH_VENV/bin/moto_server missing; run ./scripts/test.sh --setup-only first"
        return 1
    fi
    if ! sh_moto_running; then
        mkdir -p "$SH_LOG_DIR"
        # setsid: its own process group, so a Ctrl-C meant for the tests does
        # not take the server down halfway; the pid file is how we stop it.
        setsid "$SH_VENV/bin/moto_server" -H 127.0.0.1 -p "$SH_S3_PORT" \
            >"$SH_LOG_DIR/moto.log" 2>&1 </dev/null &
        echo $! >"$SH_MOTO_PIDFILE"
        local i
        for ((i = 0; i < 300; i++)); do
            sh_moto_running && break
            if ! kill -0 "$(cat "$SH_MOTO_PIDFILE")" 2>/dev/null; then
                sh_log "services: moto_server exited:"; tail -n 30 "$SH_LOG_DIR/moto.log" >&2; return 1
            fi
            sleep 0.1
        done
        if ! sh_moto_running; then
            sh_log "services: moto_server did not answer on 127.0.0.1:$SH_S3_PORT within 30 s:"
            tail -n 30 "$SH_LOG_DIR/moto.log" >&2; return 1
        fi
        SH_MOTO_STARTED=1
    fi
    if ! sh_s3_create_bucket "$SH_S3_BUCKET" >"$SH_LOG_DIR/moto-bucket.log" 2>&1; then
        sh_log "services: creating bucket $SH_S3_BUCKET failed:"; cat "$SH_LOG_DIR/moto-bucket.log" >&2; return 1
    fi
}

sh_moto_stop() {
    local pid
    [[ -f "$SH_MOTO_PIDFILE" ]] || return 0
    pid="$(cat "$SH_MOTO_PIDFILE")"
    # Only the process we started, checked by its command line before the kill.
    if [[ -n "$pid" ]] && grep -qa moto_server "/proc/$pid/cmdline" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$SH_MOTO_PIDFILE"
    SH_MOTO_STARTED=0
}

sh_export_env() {
    export STREAMHOUSE_TEST_POSTGRES_URL
    STREAMHOUSE_TEST_POSTGRES_URL="$(sh_pg_url)"
    export STREAMHOUSE_TEST_S3_URL="s3://$SH_S3_BUCKET?endpoint=http://127.0.0.1:$SH_S3_PORT&region=us-east-1&allow_http=true"
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
    # Some SDKs read this one instead of AWS_REGION.
    export AWS_DEFAULT_REGION=us-east-1
}

sh_print_exports() {
    (
        sh_export_env
        local v
        for v in STREAMHOUSE_TEST_POSTGRES_URL STREAMHOUSE_TEST_S3_URL AWS_ACCESS_KEY_ID \
                 AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION; do
            printf "export %s='%s'\n" "$v" "${!v}"
        done
    )
}

sh_services_start() {
    sh_pg_start && sh_moto_start && sh_export_env
}

sh_services_stop_ours() {
    if [[ "$SH_MOTO_STARTED" == 1 ]]; then sh_moto_stop; fi
    if [[ "$SH_PG_STARTED" == 1 ]]; then sh_pg_stop; fi
}

# Run as a command rather than sourced.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
        start) sh_services_start; sh_print_exports ;;
        stop) sh_moto_stop; sh_pg_stop ;;
        env) sh_print_exports ;;
        status)
            if sh_pg_running; then echo "postgres: running on 127.0.0.1:$SH_PG_PORT (data $SH_PG_DATA)"; else echo "postgres: stopped"; fi
            if sh_moto_running; then echo "moto: running on 127.0.0.1:$SH_S3_PORT"; else echo "moto: stopped"; fi
            ;;
        *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
    esac
fi
