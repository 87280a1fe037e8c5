#!/usr/bin/env bash
# Checks the deployment files in deploy/ without a cluster or a Docker engine
# (a broker is started only to try the settings files):
#
#   deploy/helm-lint          helm lint deploy/helm/streamhouse (--strict)
#   deploy/helm-template      helm template renders a Deployment (replicas 3,
#                             liveness /healthz and readiness /readyz on the
#                             metrics port, the advertised address from the pod
#                             IP, the catalog from the Secret), a Service with
#                             the Kafka and metrics ports, a ConfigMap holding
#                             the settings as TOML, and a PodDisruptionBudget
#   deploy/helm-template-values  the same with hostIP advertising, a created
#                             Secret and minAvailable (the other branches)
#   deploy/compose            deploy/compose.yaml parses: postgres, minio, the
#                             bucket job and three agents on one catalog and
#                             store, each advertising its own port, with a
#                             /readyz health check
#   deploy/systemd            systemd-analyze verify of deploy/systemd/
#                             streamhouse.service (ExecStart pointed at
#                             STREAMHOUSE_BIN); fails where systemd-analyze
#                             is missing (the test command installs it)
#   deploy/settings           the agents' settings of compose.yaml, of the
#                             chart's ConfigMap and deploy/streamhouse.example.toml
#                             are accepted by STREAMHOUSE_BIN: a broker starts
#                             with each (--config, on the embedded pair)
#
# helm comes from $STREAMHOUSE_CACHE/helm/bin (scripts/test.sh builds it from
# the Go module proxy) or HELM_BIN; the Python is the compat venv's (PyYAML).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM="${HELM_BIN:-$STREAMHOUSE_CACHE/helm/bin/helm}"
PY="$STREAMHOUSE_CACHE/venv/bin/python"
CHART="$REPO_ROOT/deploy/helm/streamhouse"
WORK="$(mktemp -d "$COMPAT_RUN_DIR/deploy-XXXX")"
trap 'broker_cleanup; rm -rf "$WORK"' EXIT

# helm keeps its own files (repositories, cache) out of $HOME and the repo.
export HELM_CACHE_HOME="$WORK/helm-cache" HELM_CONFIG_HOME="$WORK/helm-config" HELM_DATA_HOME="$WORK/helm-data"

# check_rendered FILE SCENARIO CHECKS: PyYAML reads the rendered manifests,
# CHECKS (Python, with `docs` by kind) asserts; a failed assert names itself.
check_rendered() {
    local file="$1" scenario="$2" checks="$3"
    local out
    if out="$("$PY" - "$file" "$checks" 2>&1 <<'EOF'
import sys, yaml
docs = {}
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d:
        docs.setdefault(d["kind"], []).append(d)
def one(kind):
    assert len(docs.get(kind, [])) == 1, "expected one %s, rendered %d" % (kind, len(docs.get(kind, [])))
    return docs[kind][0]
def env(container):
    return {e["name"]: e for e in container.get("env", [])}
exec(compile(sys.argv[2], "checks", "exec"))
print("rendered: " + ", ".join("%s %d" % (k, len(v)) for k, v in sorted(docs.items())))
EOF
)"; then
        record PASS "$scenario" "$(tail -n 1 <<<"$out")"
    else
        record FAIL "$scenario" "$out"
    fi
}

# ---- Helm ----------------------------------------------------------------

if [[ ! -x "$HELM" ]]; then
    record FAIL "deploy/helm-lint" "no helm at $HELM (./scripts/test.sh --setup-only builds it; or set HELM_BIN)"
else
    if out="$("$HELM" lint --strict "$CHART" 2>&1)"; then
        record PASS "deploy/helm-lint" "$(grep -m1 'linted' <<<"$out")"
    else
        record FAIL "deploy/helm-lint" "$out"
    fi

    # The checks are Python in single quotes: nothing in them is for the shell.
    # shellcheck disable=SC2016
    if "$HELM" template sh "$CHART" --namespace kafka >"$WORK/default.yaml" 2>"$WORK/default.err"; then
        check_rendered "$WORK/default.yaml" "deploy/helm-template" '
d = one("Deployment"); spec = d["spec"]; pod = spec["template"]["spec"]
assert spec["replicas"] == 3, "replicas %r" % spec["replicas"]
c = pod["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
assert ports == {"kafka": 9092, "metrics": 9644}, ports
assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}, c["livenessProbe"]
assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, c["readinessProbe"]
e = env(c)
assert e["ADVERTISED_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", e["ADVERTISED_HOST"]
assert e["STREAMHOUSE_ADVERTISE"]["value"] == "$(ADVERTISED_HOST):9092", e["STREAMHOUSE_ADVERTISE"]
assert e["STREAMHOUSE_LISTEN"]["value"] == "0.0.0.0:9092"
assert e["STREAMHOUSE_METRICS_LISTEN"]["value"] == "0.0.0.0:9644"
ref = e["STREAMHOUSE_CATALOG"]["valueFrom"]["secretKeyRef"]
assert ref == {"name": "sh-streamhouse", "key": "catalog-url"}, ref
for v in ("PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    assert e[v]["valueFrom"]["secretKeyRef"]["optional"] is True, v
names = [n for n in e if n.startswith("STREAMHOUSE_")]
assert len(names) == len(set(names)), names
assert c["args"] == ["--config", "/etc/streamhouse/streamhouse.toml"], c["args"]
assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"], c["resources"]
assert pod["securityContext"]["runAsNonRoot"] is True
assert c["securityContext"]["readOnlyRootFilesystem"] is True
svc = one("Service")
assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"kafka": 9092, "metrics": 9644}, svc["spec"]["ports"]
assert svc["spec"]["selector"] == spec["selector"]["matchLabels"], (svc["spec"]["selector"], spec["selector"])
pdb = one("PodDisruptionBudget")
assert pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"], pdb["spec"]
toml = one("ConfigMap")["data"]["streamhouse.toml"]
assert "read_cache_bytes = 268435456" in toml and "auto_create_topics = true" in toml \
    and "store = \"s3://" in toml, toml
assert "Secret" not in docs, "a Secret rendered without secret.create"
open(sys.argv[1] + ".toml", "w").write(toml)
'
    else
        record FAIL "deploy/helm-template" "$(cat "$WORK/default.err")"
    fi

    if "$HELM" template sh "$CHART" --set advertise.fieldPath=status.hostIP --set hostPort.enabled=true \
            --set hostPort.port=19092 --set secret.create=true --set-string secret.values.catalog-url=postgres://u@db/sh \
            --set podDisruptionBudget.minAvailable=2 --set zone=eu-1a --set replicaCount=5 \
            >"$WORK/values.yaml" 2>"$WORK/values.err"; then
        # shellcheck disable=SC2016
        check_rendered "$WORK/values.yaml" "deploy/helm-template-values" '
d = one("Deployment"); c = d["spec"]["template"]["spec"]["containers"][0]; e = env(c)
assert d["spec"]["replicas"] == 5
assert e["ADVERTISED_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
assert e["STREAMHOUSE_ADVERTISE"]["value"] == "$(ADVERTISED_HOST):19092", e["STREAMHOUSE_ADVERTISE"]
assert [p.get("hostPort") for p in c["ports"] if p["name"] == "kafka"] == [19092], c["ports"]
assert e["STREAMHOUSE_ZONE"]["value"] == "eu-1a"
assert one("Secret")["stringData"] == {"catalog-url": "postgres://u@db/sh"}, one("Secret")
assert one("PodDisruptionBudget")["spec"] == {"minAvailable": 2, "selector": d["spec"]["selector"]}
'
    else
        record FAIL "deploy/helm-template-values" "$(cat "$WORK/values.err")"
    fi
fi

# ---- compose ---------------------------------------------------------------

if out="$("$PY" - "$REPO_ROOT/deploy/compose.yaml" "$WORK/compose.toml" 2>&1 <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
for name in ("postgres", "minio", "create-bucket", "agent-1", "agent-2", "agent-3"):
    assert name in s, "no service %s" % name
agents = [s["agent-%d" % i] for i in (1, 2, 3)]
envs = [a["environment"] for a in agents]
for k in ("STREAMHOUSE_CATALOG", "STREAMHOUSE_STORE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    assert len({e[k] for e in envs}) == 1, "the agents differ in %s" % k
assert envs[0]["STREAMHOUSE_CATALOG"].startswith("postgres://") and "@postgres:5432/" in envs[0]["STREAMHOUSE_CATALOG"]
assert envs[0]["STREAMHOUSE_STORE"].startswith("s3://") and "endpoint=http://minio:9000" in envs[0]["STREAMHOUSE_STORE"]
adv = [e["STREAMHOUSE_ADVERTISE"] for e in envs]
assert len(set(adv)) == 3, "advertised addresses not distinct: %s" % adv
for a, e in zip(agents, envs):
    port = e["STREAMHOUSE_LISTEN"].rsplit(":", 1)[1]
    assert e["STREAMHOUSE_ADVERTISE"].endswith(":" + port), (e["STREAMHOUSE_ADVERTISE"], port)
    assert "%s:%s" % (port, port) in a["ports"], a["ports"]
    test = " ".join(a["healthcheck"]["test"])
    assert "/readyz" in test and "STREAMHOUSE_METRICS_LISTEN" in test, test
    assert a["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert a["depends_on"]["create-bucket"]["condition"] == "service_completed_successfully"
assert "mc mb" in " ".join(s["create-bucket"]["command"])
open(sys.argv[2], "w").write(c["configs"]["streamhouse-settings"]["content"])
print("6 services; agents advertise %s" % ", ".join(adv))
EOF
)"; then
    record PASS "deploy/compose" "$(tail -n 1 <<<"$out")"
else
    record FAIL "deploy/compose" "$out"
fi

# ---- systemd ---------------------------------------------------------------

UNIT="$REPO_ROOT/deploy/systemd/streamhouse.service"
if command -v systemd-analyze >/dev/null; then
    # verify wants ExecStart's binary to exist: point it at the broker under test.
    mkdir -p "$WORK/systemd"
    sed "s#^ExecStart=/usr/local/bin/streamhouse#ExecStart=$STREAMHOUSE_BIN#" "$UNIT" >"$WORK/systemd/streamhouse.service"
    if out="$(systemd-analyze verify "$WORK/systemd/streamhouse.service" 2>&1)" && [[ -z "$out" ]]; then
        exposure="$(systemd-analyze security --offline=yes "$WORK/systemd/streamhouse.service" 2>/dev/null |
            grep -o 'Overall exposure level.*' | sed 's/ *[^ -~].*$//')"
        record PASS "deploy/systemd" "verified; ${exposure:-no security summary}"
    else
        record FAIL "deploy/systemd" "systemd-analyze verify: ${out:-exit status non-zero}"
    fi
else
    record FAIL "deploy/systemd" "systemd-analyze is not installed (scripts/test.sh --setup-only installs Debian's systemd)"
fi

# ---- the settings files against the broker ---------------------------------

# Each file's settings with the catalog and store of the embedded pair: the
# broker must start with them (an unknown key or a bad value stops it with
# status 2).
settings_ok=1
details=()
for toml in "$WORK/compose.toml" "$WORK/default.yaml.toml" "$REPO_ROOT/deploy/streamhouse.example.toml"; do
    [[ -s "$toml" ]] || { details+=("${toml##*/}: not produced (an earlier scenario failed)"); settings_ok=0; continue; }
    # The embedded pair instead of the file's catalog and store (the example's
    # PostgreSQL and S3 hosts do not exist here).
    grep -v -E '^(catalog|store|listen|advertise) *=' "$toml" >"$WORK/settings.toml"
    if broker_start embedded "deploy-settings" --config "$WORK/settings.toml"; then
        details+=("${toml##*/}: accepted")
        broker_cleanup
    else
        details+=("${toml##*/}: refused: $(broker_log_tail 2>/dev/null | tail -n 5)")
        settings_ok=0
        broker_cleanup
    fi
done
if ((settings_ok)); then
    record PASS "deploy/settings" "${details[*]}"
else
    record FAIL "deploy/settings" "${details[*]}"
fi

exit "$COMPAT_FAILED"
