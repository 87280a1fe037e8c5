#!/usr/bin/env python3
"""Turns the results of a compat run into docs/compatibility.md: the client x
scenario matrix, the client versions, every scenario that did not pass with
its reason, and the known gaps.

    tests/compat/run_all.sh                          # any set of clients
    python3 tests/compat/matrix.py [RUN_DIR] [-o docs/compatibility.md]

RUN_DIR is the run's log folder that run_all.sh prints ("logs in ..."):
$STREAMHOUSE_CACHE/compat-runs/<run>/, holding results.txt (one
"PASS|FAIL|XFAIL name" line per scenario) and <client>.out (the runners'
output, where the reasons are). Default: the newest run dir with a non-empty
results.txt. Without -o the page goes to stdout. Only the standard library
is used; the venv's python is asked for confluent-kafka's librdkafka version.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict

COMPAT = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(COMPAT))
CACHE = os.environ.get("STREAMHOUSE_CACHE", "/var/cache/streamhouse-ci")
BACKENDS = ("embedded", "pg-s3")
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")

# Rows: matrix client name -> prefix of its scenario names in results.txt.
CLIENTS = [
    ("kcat", "kcat"),
    ("confluent-kafka", "python"),
    ("Java kafka-clients", "java"),
    ("franz-go", "franz-go"),
    ("Sarama", "sarama"),
    ("kafka-python", "kafka-python"),
    ("aiokafka", "aiokafka"),
    ("KafkaJS", "kafkajs"),
]

# Columns: (title, predicate on the normalized scenario name).
COLUMNS = [("metadata", "metadata"), ("create topic", "create-topic")] + \
    [(c, "codec:" + c) for c in CODECS] + [
    ("from offset", "from-offset"),
    ("from timestamp", "from-timestamp"),
    ("group split", "group/split"),
    ("group leave → rebalance", "group/leave-rebalance"),
    ("group resume from commits", "group/resume-from-commits"),
    ("describe configs", "configs/describe"),
    ("alter configs", "configs/alter"),
    ("delete topic", "delete-topic"),
]

# Features a client does not have at all: (row, column) -> why. Shown as n/a.
NOT_SUPPORTED = {
    ("KafkaJS", "lz4"): "KafkaJS has no LZ4 codec; its plugin (kafkajs-lz4) needs a native build (node-gyp)",
    ("KafkaJS", "zstd"): "KafkaJS has no ZSTD codec; its plugin (@kafkajs/zstd) needs a native build",
}

# Scenarios a runner does not have (yet): row -> what it covers instead.
NOT_COVERED = {
    "kcat": "kcat.sh covers metadata, produce and the three reads per codec (kcat has no admin or group commits)",
    "confluent-kafka": "test_confluent_kafka.py has no consumer-group or config scenarios (yet)",
    "Java kafka-clients": "java.sh (CompatTest) has no metadata-lists-the-broker, config or group split, "
                          "rebalance and resume scenarios (it lists topics through Metadata, and its one group "
                          "scenario is a regex subscription that must leave out __consumer_offsets); the Java "
                          "tools runner (tools) covers groups and configs with the Kafka 4.4 tools",
}


def normalize(prefix, rest):
    """(backend, scenario key) of a scenario name after 'PREFIX/', or None."""
    if prefix == "python":
        # pytest ids: test_name[backend] or test_name[backend-codec] (either order)
        m = re.match(r"(test_\w+)(?:\[(.*)\])?(?: \((\w+)\))?$", rest)
        if not m:
            return None
        test, params = m.group(1), m.group(2) or ""
        backend = next((b for b in BACKENDS if b in params), None)
        codec = next((c for c in CODECS if re.search(r"(^|-)%s($|-)" % c, params.replace("pg-s3", ""))), None)
        key = {
            "test_metadata_lists_this_broker": "metadata",
            "test_produce_acks_every_record_in_order": "produce",
            "test_consume_from_beginning": "from-beginning",
            "test_consume_from_offset": "from-offset",
            "test_consume_from_timestamp": "from-timestamp",
            "test_admin_create_list_delete": "create-topic+delete-topic",
        }.get(test, test)
        if codec and key in ("produce", "from-beginning", "from-offset", "from-timestamp"):
            key = codec + "/" + key
        return backend, key
    parts = rest.split("/", 1)
    if len(parts) < 2 or parts[0] not in BACKENDS:
        return None, rest
    backend, key = parts
    key = {"admin/create-topics-3-partitions": "create-topic", "admin/delete-topics": "delete-topic"}.get(key, key)
    return backend, key


def column_of(key):
    """Column ids a normalized scenario key counts toward."""
    out = []
    for k in key.split("+"):
        m = re.match(r"(%s)/(produce|from-beginning|from-offset|from-timestamp)$" % "|".join(CODECS), k)
        if m:
            out.append("codec:" + m.group(1))
            if m.group(2) in ("from-offset", "from-timestamp"):
                out.append(m.group(2))
            continue
        if k in ("metadata", "create-topic", "delete-topic") or k.startswith(("group/", "configs/")):
            out.append(k)
    return out


def read_results(run_dir):
    results = []  # (status, name)
    with open(os.path.join(run_dir, "results.txt")) as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"(PASS|FAIL|XFAIL) (.+)$", line)
            if m:
                results.append((m.group(1), m.group(2)))
    return results


def read_reasons(run_dir):
    """name -> reason, from the runners' FAIL/XFAIL lines and pytest's summary."""
    reasons = {}
    for path in glob.glob(os.path.join(run_dir, "*.out")):
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                m = re.match(r"(?:FAIL|XFAIL) (\S+): (.*)$", line)
                if m:
                    reasons.setdefault(m.group(1), m.group(2))
                m = re.match(r"FAILED \S*::(\S+) - (.*)$", line)
                if m:
                    reasons.setdefault("python/" + m.group(1), m.group(2))
    return reasons


def run(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def versions():
    req = {}
    with open(os.path.join(COMPAT, "requirements.txt")) as f:
        for line in f:
            if "==" in line:
                n, v = line.strip().split("==", 1)
                req[n.lower()] = v
    gomod = open(os.path.join(COMPAT, "go", "go.mod")).read()

    def gover(mod):
        m = re.search(r"^\s*%s (\S+)" % re.escape(mod), gomod, re.M)
        return m.group(1) if m else "?"

    lock = json.load(open(os.path.join(COMPAT, "node", "package-lock.json")))
    pkgs = lock.get("packages", {})
    pom = open(os.path.join(COMPAT, "java", "pom.xml")).read()
    m = re.search(r"<artifactId>kafka-clients</artifactId>\s*<version>([^<]+)</version>", pom)
    java = m.group(1) if m else "?"
    if java.startswith("${"):
        m = re.search(r"<%s>([^<]+)</" % re.escape(java[2:-1]), pom)
        java = m.group(1) if m else java
    rdk = run([os.path.join(CACHE, "venv", "bin", "python"), "-c",
               "import confluent_kafka; print(confluent_kafka.libversion()[0])"]) or "its bundled librdkafka"
    kcat = run(["kcat", "-V"])
    m = re.search(r"kcat - .*?version ([\d.]+)", kcat)
    kcat_v = m.group(1) if m else "1.7.1"
    m = re.search(r"librdkafka version ([\d.]+)", kcat)
    kcat_rdk = m.group(1) if m else "2.0.2"
    return {
        "kcat": ("kcat %s / librdkafka %s (Debian's packages)" % (kcat_v, kcat_rdk), "kcat", "tests/compat/kcat.sh"),
        "confluent-kafka": ("confluent-kafka %s (librdkafka %s)" % (req.get("confluent-kafka", "?"), rdk),
                            "python", "tests/compat/test_confluent_kafka.py"),
        "Java kafka-clients": ("org.apache.kafka:kafka-clients %s" % java, "java", "tests/compat/java.sh"),
        "franz-go": ("github.com/twmb/franz-go %s (kgo), pkg/kadm %s; idempotent producer (its default)"
                     % (gover("github.com/twmb/franz-go"), gover("github.com/twmb/franz-go/pkg/kadm")),
                     "go", "tests/compat/go.sh, go/franz.go"),
        "Sarama": ("github.com/IBM/sarama %s (protocol version set to 3.6)" % gover("github.com/IBM/sarama"),
                   "go", "tests/compat/go.sh, go/sarama.go"),
        "kafka-python": ("kafka-python %s (codecs: python-snappy %s, lz4 %s, zstandard %s)"
                         % (req.get("kafka-python", "?"), req.get("python-snappy", "?"), req.get("lz4", "?"),
                            req.get("zstandard", "?")), "pyclients", "tests/compat/pyclients.py"),
        "aiokafka": ("aiokafka %s (codecs: cramjam %s); caps at Metadata v5, Produce v7, Fetch v11, ListOffsets v3"
                     % (req.get("aiokafka", "?"), req.get("cramjam", "?")), "pyclients",
                     "tests/compat/pyclients.py"),
        "KafkaJS": ("kafkajs %s (+ kafkajs-snappy %s); caps at Metadata v6, Produce v7, Fetch v11"
                    % (pkgs.get("node_modules/kafkajs", {}).get("version", "?"),
                       pkgs.get("node_modules/kafkajs-snappy", {}).get("version", "?")),
                    "node", "tests/compat/node.sh, node/compat.js"),
    }


def cell(statuses, backends_run):
    """statuses: {backend: [status...]} of one client x column."""
    if not any(statuses.values()):
        return "—"
    per = {}
    for b in backends_run:
        s = statuses.get(b, [])
        if not s:
            per[b] = "not run"
        elif "FAIL" in s:
            per[b] = "**FAIL**"
        elif "XFAIL" in s:
            per[b] = "xfail"
        else:
            per[b] = "pass"
    vals = set(per.values())
    if len(vals) == 1:
        return vals.pop()
    return " / ".join("%s (%s)" % (v, b) for b, v in per.items())


def render(run_dir):
    results = read_results(run_dir)
    reasons = read_reasons(run_dir)
    vers = versions()
    backends_run = [b for b in BACKENDS if any("/%s/" % b in n or "[%s" % b in n or "-%s]" % b in n
                                               for _, n in results)] or list(BACKENDS)
    table = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # row -> col -> backend -> [status]
    other = defaultdict(lambda: defaultdict(int))  # runner prefix -> status -> count
    bad = []  # (status, name)
    rows = dict((p, r) for r, p in CLIENTS)
    for status, name in results:
        prefix, _, rest = name.partition("/")
        if status != "PASS":
            bad.append((status, name))
        if prefix not in rows:
            other[prefix][status] += 1
            continue
        backend, key = normalize(prefix, rest) or (None, rest)
        cols = column_of(key)
        if not cols:
            other[prefix][status] += 1
            continue
        for c in cols:
            table[rows[prefix]][c][backend].append(status)

    count = defaultdict(int)
    for s, _ in results:
        count[s] += 1
    out = []
    w = out.append
    w("# Client compatibility")
    w("")
    w("Generated by `tests/compat/matrix.py` from the results of a compat run; do not edit by hand.")
    w("To refresh it:")
    w("")
    w("```sh")
    w("tests/compat/run_all.sh kcat python java go node pyclients   # prints 'logs in RUN_DIR'")
    w("python3 tests/compat/matrix.py RUN_DIR -o docs/compatibility.md")
    w("```")
    w("")
    head = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "?"
    w("This page: run `%s` (%s UTC), generated in a work tree at commit `%s` (the broker is whatever "
      "binary the run was given, normally the debug build of that tree), "
      "backend pairs: %s. %d scenarios passed, %d failed, %d failed as known gaps (xfail)."
      % (os.path.basename(os.path.normpath(run_dir)),
         time.strftime("%Y-%m-%d %H:%M", time.gmtime(os.path.getmtime(os.path.join(run_dir, "results.txt")))),
         head, ", ".join("`%s`" % b for b in backends_run), count["PASS"], count["FAIL"], count["XFAIL"]))
    w("")
    w("Backend pairs: `embedded` is the SQLite catalog with objects in a local folder; `pg-s3` is PostgreSQL "
      "with an S3-compatible store (moto). Every runner starts its own fresh brokers.")
    w("")
    w("## Clients")
    w("")
    w("| client | version | runner (`run_all.sh` name) |")
    w("|---|---|---|")
    for r, _ in CLIENTS:
        v, name, path = vers[r]
        w("| %s | %s | `%s` (%s) |" % (r, v, name, path))
    w("")
    w("## Matrix")
    w("")
    w("A cell is `pass` when every scenario behind it passed on every backend pair, `**FAIL**` or `xfail` "
      "(a known gap, listed below) otherwise, naming the backend pair when they differ; `n/a` is a feature "
      "the client does not have; `—` is a scenario that client's runner does not cover. A codec column is "
      "produce (keyed records with headers, acks=all) plus the reads of those records from the beginning, "
      "from an offset and from a timestamp; `from offset` and `from timestamp` sum up those reads over the "
      "codecs.")
    w("")
    w("| client | " + " | ".join(t for t, _ in COLUMNS) + " |")
    w("|---|" + "---|" * len(COLUMNS))
    for r, _ in CLIENTS:
        cells = []
        for _, c in COLUMNS:
            codec = c.split(":", 1)[1] if c.startswith("codec:") else c
            if (r, codec) in NOT_SUPPORTED:
                cells.append("n/a")
            else:
                cells.append(cell(table[r][c], backends_run))
        w("| %s | %s |" % (r, " | ".join(cells)))
    w("")
    notes = [(r, NOT_SUPPORTED[(r, c)]) for r, c in NOT_SUPPORTED] + list(NOT_COVERED.items())
    for r, why in notes:
        w("- %s: %s." % (r, why))
    if other:
        w("")
        w("- Scenarios of this run outside these columns (counted in the totals above; the runners name "
          "them): " + "; ".join("`%s` %d passed, %d failed, %d xfail" % (p, s["PASS"], s["FAIL"], s["XFAIL"])
                                for p, s in sorted(other.items())) + ".")
    w("")
    w("## Scenarios that did not pass")
    w("")
    if not bad:
        w("None in this run.")
    for status, name in bad:
        why = reasons.get(name) or reasons.get(name.split(" (")[0]) or \
            "see %s" % os.path.join(run_dir, name.split("/")[0] + ".out")
        w("- %s `%s`: %s" % (status, name, why.replace("|", "\\|")))
    w("")
    w("## Known gaps and notes")
    w("")
    for line in KNOWN_GAPS_TEXT:
        w(line)
    return "\n".join(out) + "\n"


KNOWN_GAPS_TEXT = [
    "- KafkaJS 2.2.4 compresses only with gzip out of the box (snappy through kafkajs-snappy, pure JS); "
    "LZ4 and ZSTD need native plugins, which this suite does not build, so they are `n/a`, not tested.",
    "- aiokafka 0.14 asks for at most Metadata v5, Produce v7, Fetch v11 and ListOffsets v3, and KafkaJS "
    "2.2 for at most Metadata v6, Produce v7, Fetch v11: these runners are what checks StreamHouse's "
    "older request versions.",
    "- kafka-python 3.0.12: a `poll()` whose timeout runs out while the consumer's JoinGroup/SyncGroup is in "
    "flight can leave the consumer without its assignment and with heartbeats stopped until its session "
    "expires (a client bug: its debug log shows the SyncGroup answered with the assignment, then nothing). "
    "It showed in about 1 run in 10 with 200 ms polls; `pyclients.py` polls group members with 1 s timeouts.",
    "- aiokafka 0.14: stopping a group-less consumer right after `start()` raises `CancelledError` from "
    "its own coordinator; `pyclients.py` uses a bare `AIOKafkaClient` for metadata.",
    "- The kcat, confluent-kafka and Java client runners do not (yet) run the consumer-group and config "
    "scenarios (`—` above); the Java tools runner covers groups and configs through the Kafka 4.4 tools.",
    "- Everything runs on one broker (no replication, no leader changes); transactions are not part of "
    "these scenarios.",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", nargs="?")
    ap.add_argument("-o", "--output")
    a = ap.parse_args()
    run_dir = a.run_dir
    if not run_dir:
        cands = [d for d in glob.glob(os.path.join(CACHE, "compat-runs", "*"))
                 if os.path.isfile(os.path.join(d, "results.txt"))
                 and os.path.getsize(os.path.join(d, "results.txt")) > 0]
        if not cands:
            print("matrix.py: no run dir with results under %s/compat-runs" % CACHE, file=sys.stderr)
            return 2
        run_dir = max(cands, key=lambda d: os.path.getmtime(os.path.join(d, "results.txt")))
    page = render(run_dir)
    if a.output:
        with open(a.output, "w") as f:
            f.write(page)
        print("matrix.py: wrote %s from %s" % (a.output, run_dir), file=sys.stderr)
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
