# shellcheck shell=bash
# Certificates for the TLS compat runners (tls.sh, secure_clients.sh), made
# with openssl in a broker's temp dir so that no key is kept anywhere else.
# The server certificate names localhost and 127.0.0.1, so that kcat's, the
# Java client's and Go's hostname checks pass against the bootstrap address.
#
#   make_certs          a CA (ca.pem, ca.key), a server certificate
#                       (server.pem, server.key) and a client certificate
#                       (client.pem, client.key, subject O=acme/OU=eng/CN=alice)
#                       in $BROKER_DIR/certs; sets CERTS to that dir
#   issue NAME SUBJECT EXTENSIONS
#                       NAME.pem and NAME.key, signed by the CA in the current
#                       directory, valid for 2 days; EXTENSIONS are extfile
#                       lines (printf %b: "\n" separates them)
#   issue_expired NAME SUBJECT EXTENSIONS
#                       the same, valid on 1 January 2020 only: expired

SERVER_EXTENSIONS='subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'

issue() {
    local name="$1" subject="$2" extensions="$3"
    printf 'basicConstraints=CA:FALSE\n%b\n' "$extensions" >"$name.ext"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" \
        -out "$name.csr" -subj "$subject" &&
        openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out "$name.pem" -days 2 -extfile "$name.ext"
}

# openssl x509 -req only counts days from now (-not_before/-not_after came in
# OpenSSL 3.4; Debian 12 has 3.0), so a certificate valid in the past takes
# `openssl ca` and its small database.
issue_expired() {
    local name="$1" subject="$2" extensions="$3"
    printf 'basicConstraints=CA:FALSE\n%b\n' "$extensions" >"$name.ext"
    printf '[ca]\ndefault_ca = compat\n[compat]\ndatabase = %s\nnew_certs_dir = .\nserial = %s\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n' \
        "$name.index" "$name.serial" >"$name.cnf"
    : >"$name.index"
    echo 1000 >"$name.serial"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" \
        -out "$name.csr" -subj "$subject" &&
        openssl ca -batch -config "$name.cnf" -cert ca.pem -keyfile ca.key -in "$name.csr" \
            -out "$name.pem" -notext -startdate 20200101000000Z -enddate 20200102000000Z \
            -extfile "$name.ext"
}

make_certs() {
    CERTS="$BROKER_DIR/certs"
    mkdir -p "$CERTS"
    (
        cd "$CERTS" &&
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
                -out ca.pem -days 2 -subj "/CN=StreamHouse compat CA" \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign &&
            issue server /CN=localhost "$SERVER_EXTENSIONS" &&
            issue client /O=acme/OU=eng/CN=alice 'extendedKeyUsage=clientAuth'
    ) >"$CERTS/openssl.log" 2>&1 || { cat "$CERTS/openssl.log" >&2; return 1; }
}
