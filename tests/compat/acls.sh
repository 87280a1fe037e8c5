#!/usr/bin/env bash
# ACLs with real clients, on each backend pair in COMPAT_BACKENDS: a broker
# with a SASL_PLAINTEXT listener, --acls on, users admin (the super user),
# alice and bob.
#
# Scenarios per backend:
#   tools/kafka-acls        kafka-acls (as admin) adds a prefixed topic ACL, a
#                           group ACL and a deny ACL, lists them, removes them
#   kcat/prefixed-write     alice produces under her prefix; elsewhere kcat
#                           reports "Topic authorization failed"
#   kcat/deny-wins          User:* may read a topic, bob is denied: alice reads
#                           it, bob gets "Topic authorization failed"
#   java/produce-denied     the console producer as bob (no WRITE) fails with
#                           TopicAuthorizationException
#   java/group-denied       the console consumer as alice in a group she has no
#                           READ on fails with GroupAuthorizationException; in
#                           her group it reads every record
#   tools/removed           once kafka-acls removed her ACL, alice is refused
#
# Usage: tests/compat/acls.sh   (STREAMHOUSE_BIN, COMPAT_BACKENDS, COMPAT_KEEP=1)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAVA_LIB="$STREAMHOUSE_CACHE/java/lib"
TIMEOUT=60

trap broker_cleanup EXIT

command -v kcat >/dev/null || { record FAIL "acls/setup" "kcat not installed (apt-get install kcat)"; exit 1; }

acls_broker_start() {
    local backend="$1"
    broker_prepare "$backend" "acls-$backend" || return 1
    printf 'admin:admin-secret\nalice:alice-secret\nbob:bob-secret\n' >"$BROKER_DIR/users"
    BROKER_PORT="$(free_port)"
    BROKER_BOOTSTRAP="127.0.0.1:$BROKER_PORT"
    BROKER_ARGS=(--listener "SASL_PLAINTEXT://$BROKER_BOOTSTRAP" --sasl-users-file "$BROKER_DIR/users"
        --acls on --super-user User:admin "${BACKEND_ARGS[@]}")
    broker_launch
}

# kcat as USER (password USER-secret) with SCRAM-SHA-256, then kcat's arguments.
kcat_as() {
    local user="$1"
    shift
    timeout --foreground "$TIMEOUT" kcat -b "$BROKER_BOOTSTRAP" -X security.protocol=SASL_PLAINTEXT \
        -X sasl.mechanisms=SCRAM-SHA-256 -X sasl.username="$user" -X sasl.password="$user-secret" "$@"
}

# The client properties of USER, in WORK/USER.properties.
java_config() {
    local user="$1"
    cat >"$work/$user.properties" <<CONFIG
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$user" password="$user-secret";
CONFIG
}

# A Kafka tool's main class as admin, with its arguments.
tool() {
    local main="$1"
    shift
    timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" "org.apache.kafka.tools.$main" \
        --bootstrap-server "$BROKER_BOOTSTRAP" "$@"
}

acls() { tool AclCommand --command-config "$work/admin.properties" "$@"; }

run_backend() {
    local backend="$1" pfx="acls/$1" prefix group other shared listed
    work="$BROKER_DIR/work"
    mkdir -p "$work"
    for user in admin alice bob; do java_config "$user"; done
    prefix="$(unique alice)"
    group="$(unique alice-group)"
    other="$(unique other)"
    shared="$(unique shared)"
    for topic in "$prefix-orders" "$other" "$shared"; do
        tool TopicCommand --command-config "$work/admin.properties" --create --topic "$topic" \
            --partitions 2 >>"$work/topics.out" 2>&1
    done

    if acls --add --allow-principal User:alice --operation Write --operation Read \
            --topic "$prefix" --resource-pattern-type prefixed >"$work/add.out" 2>&1 &&
        acls --add --allow-principal User:alice --operation Read --group "$group" >>"$work/add.out" 2>&1 &&
        acls --add --allow-principal 'User:*' --operation Read --topic "$shared" >>"$work/add.out" 2>&1 &&
        acls --add --deny-principal User:bob --operation Read --topic "$shared" >>"$work/add.out" 2>&1; then
        listed="$(acls --list 2>"$work/list.err")"
        if [[ "$listed" == *"name=$prefix, patternType=PREFIXED"* &&
              "$listed" == *"principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW"* &&
              "$listed" == *"name=$group, patternType=LITERAL"* &&
              "$listed" == *"principal=User:bob, host=*, operation=READ, permissionType=DENY"* ]]; then
            record PASS "$pfx/tools/kafka-acls"
        else
            record FAIL "$pfx/tools/kafka-acls" "--list: $(echo "$listed" | tr '\n' ' ' | head -c 800)"
        fi
    else
        record FAIL "$pfx/tools/kafka-acls" "--add: $(grep -v INFO "$work/add.out" | tail -n 3 | tr '\n' ' ')"
    fi

    seq 1 50 | sed 's/^/record-/' >"$work/expected"
    kcat_as alice -q -P -t "$prefix-orders" <"$work/expected" 2>"$work/mine.err"
    # Without -q: kcat reports failed deliveries only when not quiet.
    kcat_as alice -P -t "$other" <"$work/expected" 2>"$work/other.err"
    kcat_as alice -q -C -t "$prefix-orders" -o beginning -e -f '%s\n' 2>>"$work/mine.err" |
        sort -V >"$work/mine.got"
    if cmp -s "$work/mine.got" "$work/expected" && grep -q "Topic authorization failed" "$work/other.err"; then
        record PASS "$pfx/kcat/prefixed-write"
    else
        record FAIL "$pfx/kcat/prefixed-write" "read $(wc -l <"$work/mine.got") of 50; $(tail -n 2 "$work/mine.err" "$work/other.err" | tr '\n' ' ')"
    fi

    kcat_as admin -q -P -t "$shared" <"$work/expected" 2>"$work/shared.err"
    local alice_read
    alice_read="$(kcat_as alice -q -C -t "$shared" -o beginning -e -f '%s\n' 2>>"$work/shared.err" | wc -l)"
    kcat_as bob -q -C -t "$shared" -o beginning -e -f '%s\n' >"$work/bob.out" 2>"$work/bob.err"
    if [[ "$alice_read" == 50 ]] && grep -q "Topic authorization failed" "$work/bob.err"; then
        record PASS "$pfx/kcat/deny-wins"
    else
        record FAIL "$pfx/kcat/deny-wins" "alice read $alice_read of 50; bob: $(tail -n 2 "$work/bob.err" | tr '\n' ' ')"
    fi

    echo "from-bob" | timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" org.apache.kafka.tools.ConsoleProducer \
        --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$prefix-orders" \
        --command-config "$work/bob.properties" >"$work/bob-produce.out" 2>&1
    if grep -q "TopicAuthorizationException" "$work/bob-produce.out"; then
        record PASS "$pfx/java/produce-denied"
    else
        record FAIL "$pfx/java/produce-denied" "$(grep -m 3 -i -E 'exception|error' "$work/bob-produce.out" | tr '\n' ' ')"
    fi

    local consumed
    timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
        --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$prefix-orders" --from-beginning --max-messages 50 \
        --group "$(unique not-alices)" --command-config "$work/alice.properties" \
        >"$work/denied-group.out" 2>&1
    consumed="$(timeout "$TIMEOUT" java -cp "$JAVA_LIB/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
        --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$prefix-orders" --from-beginning --max-messages 50 \
        --group "$group" --command-config "$work/alice.properties" 2>"$work/group.err" | grep -c '^record-')"
    if grep -q "GroupAuthorizationException" "$work/denied-group.out" && [[ "$consumed" == 50 ]]; then
        record PASS "$pfx/java/group-denied"
    else
        record FAIL "$pfx/java/group-denied" "read $consumed of 50 in her group; other group: $(grep -m 2 -i exception "$work/denied-group.out" | tr '\n' ' ')"
    fi

    acls --remove --force --allow-principal User:alice --operation Write --operation Read \
        --topic "$prefix" --resource-pattern-type prefixed >"$work/remove.out" 2>&1
    listed="$(acls --list --topic "$prefix" --resource-pattern-type prefixed 2>/dev/null)"
    sleep 1.5
    kcat_as alice -P -t "$prefix-orders" <"$work/expected" 2>"$work/removed.err"
    if [[ "$listed" != *"User:alice"* ]] && grep -q "Topic authorization failed" "$work/removed.err"; then
        record PASS "$pfx/tools/removed"
    else
        record FAIL "$pfx/tools/removed" "listed after removal: $(echo "$listed" | tr '\n' ' ' | head -c 300); kcat: $(tail -n 2 "$work/removed.err" | tr '\n' ' ')"
    fi
}

for backend in $COMPAT_BACKENDS; do
    if ! acls_broker_start "$backend"; then
        record FAIL "acls/$backend/broker-start" "see the broker log above"
        continue
    fi
    run_backend "$backend"
    broker_cleanup
done
exit "$COMPAT_FAILED"
