#!/usr/bin/env python3
"""The rendezvous placement of docs/design/cluster.md section 4.1, written
again from the design with hashlib, to check from outside which agent the
cluster names as a partition's leader or a group's coordinator.

    score(kind, key, node) = first 8 bytes, big-endian, of SHA-256(
        "streamhouse/hrw/v1" || kind (1 byte) || len(key) (u32 BE) || key || node (i32 BE))
    winner = highest score; equal scores: the lower node id

Usage (standard library only, except topic-id):
  placement.py selftest
      checks the design's test vectors; exit status 1 on a mismatch
  placement.py check MIN MAX JSON_FILE=TOPIC_ID...
      each JSON_FILE is `kcat -L -J -t TOPIC` (through any agent) for the
      topic with that id: every partition's leader must be the winner over
      the brokers listed, and every broker must lead between MIN and MAX of
      all the files' partitions together. Prints the count per broker, then
      one line per finding; exit status 1 if any.
  placement.py leaders TOPIC_ID PARTITIONS NODE...
      the leader of each partition, space-separated
  placement.py topic-id BOOTSTRAP TOPIC...
      each topic's id (UUID), one a line, through confluent-kafka's
      describe_topics (needs the compat venv)
"""

import hashlib
import json
import struct
import sys
import uuid

PREFIX = b"streamhouse/hrw/v1"
KIND_PARTITION = 1
KIND_GROUP = 2


def score(kind, key, node):
    h = hashlib.sha256(PREFIX + bytes([kind]) + struct.pack(">I", len(key)) + key + struct.pack(">i", node))
    return struct.unpack(">Q", h.digest()[:8])[0]


def winner(kind, key, nodes):
    # Highest score; on equal scores the lower node id (so sort by -node as the tiebreak).
    return max(sorted(nodes), key=lambda n: (score(kind, key, n), -n))


def partition_key(topic_id, partition):
    return uuid.UUID(str(topic_id)).bytes + struct.pack(">i", partition)


def leader(topic_id, partition, nodes):
    return winner(KIND_PARTITION, partition_key(topic_id, partition), nodes)


def coordinator(group, nodes):
    return winner(KIND_GROUP, group.encode(), nodes)


TOPIC_1 = "00000000-0000-0000-0000-000000000001"


def selftest():
    """Design 4.1's vectors: [] if they hold, else what differs."""
    bad = []

    def expect(what, got, want):
        if got != want:
            bad.append("%s: got %s, design says %s" % (what, got, want))

    k0 = partition_key(TOPIC_1, 0)
    expect("score(1, p0, node 0)", "%016x" % score(KIND_PARTITION, k0, 0), "089f5a9e9bcf7393")
    expect("score(1, p0, node 1)", "%016x" % score(KIND_PARTITION, k0, 1), "2b52f7851c9d5705")
    expect("leaders 0..7 over {0,1,2}", [leader(TOPIC_1, p, [0, 1, 2]) for p in range(8)], [2, 0, 1, 1, 2, 1, 2, 1])
    expect("leaders 0..7 over {0,1,2,3}", [leader(TOPIC_1, p, [0, 1, 2, 3]) for p in range(8)],
           [2, 3, 1, 1, 2, 1, 2, 1])
    expect("coordinator of g1 over {0,1,2}", coordinator("g1", [0, 1, 2]), 1)
    expect("score(2, g1, node 0)", "%016x" % score(KIND_GROUP, b"g1", 0), "20d9c2a7604c98da")
    three = [leader(TOPIC_1, p, [0, 1, 2]) for p in range(1000)]
    expect("1000 partitions over {0,1,2}", [three.count(n) for n in range(3)], [302, 347, 351])
    four = [leader(TOPIC_1, p, [0, 1, 2, 3]) for p in range(1000)]
    expect("moved when node 3 joins", sum(a != b for a, b in zip(three, four)), 275)
    two = [leader(TOPIC_1, p, [0, 2]) for p in range(1000)]
    expect("moved when node 1 leaves", sum(a != b for a, b in zip(three, two)), 347)
    return bad


def check(lo, hi, metas):
    """Findings (strings) for kcat's -L -J metadata of topics: [(topic id, metadata)]."""
    findings = []
    counts = {}
    for topic_id, meta in metas:
        nodes = sorted(b["id"] for b in meta["brokers"])
        for n in nodes:
            counts.setdefault(n, 0)
        topics = meta.get("topics") or []
        if len(topics) != 1:
            findings.append("expected one topic in the metadata, got %d" % len(topics))
            continue
        name = topics[0]["topic"]
        for p in topics[0]["partitions"]:
            want = leader(topic_id, p["partition"], nodes)
            if p["leader"] != want:
                findings.append("%s partition %d: leader %s, the hash over %s says %d"
                                % (name, p["partition"], p["leader"], nodes, want))
            counts[p["leader"]] = counts.get(p["leader"], 0) + 1
    for n, c in sorted(counts.items()):
        if not lo <= c <= hi:
            findings.append("broker %d leads %d partitions, expected %d-%d" % (n, c, lo, hi))
    print("leaders per broker: %s" % " ".join("%d:%d" % kv for kv in sorted(counts.items())))
    return findings


def topic_ids(bootstrap, topics):
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_topics(TopicCollection(topics), request_timeout=20)
    out = []
    for t in topics:
        d = futures[t].result(30)
        hi = d.topic_id.get_most_significant_bits() & (2**64 - 1)
        lo = d.topic_id.get_least_significant_bits() & (2**64 - 1)
        out.append(str(uuid.UUID(int=(hi << 64) | lo)))
    return out


def main(argv):
    if len(argv) >= 1 and argv[0] == "selftest":
        bad = selftest()
        for b in bad:
            print(b)
        return 1 if bad else 0
    if len(argv) >= 4 and argv[0] == "check":
        metas = []
        for arg in argv[3:]:
            path, _, topic_id = arg.rpartition("=")
            with open(path) as f:
                metas.append((topic_id, json.load(f)))
        findings = check(int(argv[1]), int(argv[2]), metas)
        for f in findings:
            print(f)
        return 1 if findings else 0
    if len(argv) >= 3 and argv[0] == "leaders":
        nodes = [int(n) for n in argv[3:]]
        print(" ".join(str(leader(argv[1], p, nodes)) for p in range(int(argv[2]))))
        return 0
    if len(argv) >= 3 and argv[0] == "topic-id":
        print("\n".join(topic_ids(argv[1], argv[2:])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
