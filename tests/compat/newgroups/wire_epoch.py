"""OffsetCommit at the member epochs Kafka 4.4 takes and refuses, on the wire,
for tests/compat/newgroups.sh (no client library hides the race: the Java
consumer's commitSync can carry the epoch it had when it sent the request
while its heartbeat moves it to the next one).

  wire_epoch.py BOOTSTRAP TOPIC GROUP

Creates TOPIC with 2 partitions (confluent-kafka's AdminClient), finds GROUP's
coordinator (FindCoordinator v3) and, there, with ConsumerGroupHeartbeat v0:
member A joins and owns both partitions at epoch E1; member B joins; A is told
to give one partition up, acks owning the other and moves to epoch E2 > E1.
Then OffsetCommit v9 from A must answer, as Kafka 4.4 does:
  the kept partition at E2 (current)          NONE
  the kept partition at E1 (older, assigned
  to A at E1)                                 NONE
  the given-up partition at E1                STALE_MEMBER_EPOCH (113)
  the kept partition at E2 + 1 (newer)        STALE_MEMBER_EPOCH (113)
Prints "OK <detail>" or "FAIL <reason>" as its last line; exit 0 or 1.
"""

import socket
import struct
import sys
import time

from confluent_kafka.admin import AdminClient, NewTopic

DEADLINE_S = 60
RETRIABLE = {14, 15, 16}  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR
ERRORS = {0: "NONE", 113: "STALE_MEMBER_EPOCH", 25: "UNKNOWN_MEMBER_ID", 22: "ILLEGAL_GENERATION"}


class Failure(Exception):
    pass


def uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


NO_TAGS = uvarint(0)


def cstr(s):
    """A compact (nullable) string."""
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def carr(items):
    """A compact (nullable) array of encoded items."""
    if items is None:
        return uvarint(0)
    return uvarint(len(items) + 1) + b"".join(items)


class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self):
        shift = n = 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    def cstr(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=30)
        self.correlation = 0

    def call(self, key, version, body):
        """A request with header v2 (flexible); the response after its header v1."""
        self.correlation += 1
        msg = struct.pack(">hhih", key, version, self.correlation, 10) + b"wire-epoch" + NO_TAGS + body
        self.s.sendall(struct.pack(">i", len(msg)) + msg)
        r = Reader(self.recv(struct.unpack(">i", self.recv(4))[0]))
        if r.i32() != self.correlation:
            raise Failure("a response to another request")
        if key != 18:
            r.skip_tags()
        return r

    def recv(self, n):
        b = b""
        while len(b) < n:
            chunk = self.s.recv(n - len(b))
            if not chunk:
                raise Failure("the broker closed the connection")
            b += chunk
        return b

    def close(self):
        self.s.close()


def find_coordinator(conn, group):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        r = conn.call(10, 3, cstr(group) + struct.pack(">b", 0) + NO_TAGS)
        r.i32()
        err = r.i16()
        msg = r.cstr()
        node = r.i32()
        host = r.cstr()
        port = r.i32()
        if err == 0:
            return node, host, port
        if err not in RETRIABLE or time.monotonic() > deadline:
            raise Failure("FindCoordinator: error %d %s" % (err, msg))
        time.sleep(0.3)


def heartbeat(conn, group, member, epoch, subscribe=None, owned=None):
    """ConsumerGroupHeartbeat v0: (error, message, member id, epoch, assignment or None)."""
    body = (cstr(group) + cstr(member) + struct.pack(">i", epoch) + cstr(None) + cstr(None)
            + struct.pack(">i", 30000)
            + carr([cstr(subscribe)] if subscribe else None)
            + cstr(None)
            + carr(None if owned is None else
                   [tid + carr([struct.pack(">i", p) for p in ps]) + NO_TAGS for tid, ps in owned])
            + NO_TAGS)
    r = conn.call(68, 0, body)
    r.i32()
    err, msg, member_id, member_epoch = r.i16(), r.cstr(), r.cstr(), r.i32()
    r.i32()
    assignment = None
    if r.i8() >= 0:
        assignment = []
        for _ in range(r.uvarint() - 1):
            tid = r.take(16)
            ps = sorted(r.i32() for _ in range(r.uvarint() - 1))
            r.skip_tags()
            assignment.append((tid, ps))
        r.skip_tags()
    return err, msg, member_id, member_epoch, assignment


def commit(conn, group, member, epoch, topic, partition):
    """OffsetCommit v9 of offset 1 of one partition: its error code."""
    body = (cstr(group) + struct.pack(">i", epoch) + cstr(member) + cstr(None)
            + carr([cstr(topic) + carr([struct.pack(">iqi", partition, 1, -1) + cstr("") + NO_TAGS]) + NO_TAGS])
            + NO_TAGS)
    r = conn.call(8, 9, body)
    r.i32()
    codes = []
    for _ in range(r.uvarint() - 1):
        r.cstr()
        for _ in range(r.uvarint() - 1):
            r.i32()
            codes.append(r.i16())
            r.skip_tags()
        r.skip_tags()
    if len(codes) != 1:
        raise Failure("OffsetCommit answered %d partitions, want 1" % len(codes))
    return codes[0]


def partitions(assignment):
    return sorted(p for _, ps in assignment or [] for p in ps)


def run(boot, topic, group):
    admin = AdminClient({"bootstrap.servers": boot})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)],
                        operation_timeout=30, request_timeout=30)[topic].result(timeout=30)
    host, port = boot.split(",")[0].rsplit(":", 1)
    first = Conn(host, int(port))
    _, chost, cport = find_coordinator(first, group)
    first.close()
    a, b = Conn(chost, cport), Conn(chost, cport)
    try:
        def beat(conn, member, epoch, what, cond, **kw):
            deadline = time.monotonic() + DEADLINE_S
            while True:
                res = heartbeat(conn, group, member, epoch, **kw)
                if res[0] == 0 and cond(res):
                    return res
                if (res[0] != 0 and res[0] not in RETRIABLE) or time.monotonic() > deadline:
                    raise Failure("%s: last heartbeat answered error %d %s, epoch %d, assignment %s"
                                  % (what, res[0], res[1], res[3], partitions(res[4])))
                time.sleep(0.3)

        _, _, a_id, e1, got = beat(a, "", 0, "A joins", lambda r: True, subscribe=topic, owned=[])
        if partitions(got) != [0, 1]:
            _, _, _, e1, got = beat(a, a_id, e1, "A gets both partitions",
                                    lambda r: partitions(r[4]) == [0, 1], owned=[])
        tid = got[0][0]
        _, _, _, e1, _ = beat(a, a_id, e1, "A acks both partitions", lambda r: True, owned=[(tid, [0, 1])])
        beat(b, "", 0, "B joins", lambda r: True, subscribe=topic, owned=[])
        _, _, _, e, got = beat(a, a_id, e1, "A is told to give a partition up",
                               lambda r: r[4] is not None and len(partitions(r[4])) == 1, owned=[(tid, [0, 1])])
        if e != e1:
            raise Failure("A moved from epoch %d to %d before it gave a partition up" % (e1, e))
        kept = partitions(got)[0]
        gave = 1 - kept
        _, _, _, e2, _ = beat(a, a_id, e, "A moves to the next epoch", lambda r: r[3] > e1, owned=[(tid, [kept])])
        cases = [("kept partition %d at the current epoch %d" % (kept, e2), kept, e2, 0),
                 ("kept partition %d at the older epoch %d" % (kept, e1), kept, e1, 0),
                 ("given-up partition %d at the older epoch %d" % (gave, e1), gave, e1, 113),
                 ("kept partition %d at a newer epoch %d" % (kept, e2 + 1), kept, e2 + 1, 113)]
        got_codes = [(what, commit(a, group, a_id, epoch, topic, p), want) for what, p, epoch, want in cases]
        text = "; ".join("%s: %s" % (what, ERRORS.get(code, code)) for what, code, _ in got_codes)
        wrong = [(what, code, want) for what, code, want in got_codes if code != want]
        if wrong:
            raise Failure("OffsetCommit v9 of member A: " + "; ".join(
                "%s answered %s, Kafka 4.4 answers %s" % (what, ERRORS.get(code, code), ERRORS.get(want, want))
                for what, code, want in wrong) + " (all: %s)" % text)
        return "OffsetCommit v9 of member A (epochs %d -> %d): %s" % (e1, e2, text)
    finally:
        a.close()
        b.close()


def main():
    if len(sys.argv) != 4:
        print("usage: wire_epoch.py BOOTSTRAP TOPIC GROUP", file=sys.stderr)
        return 2
    try:
        print("OK " + run(*sys.argv[1:4]), flush=True)
        return 0
    except Failure as e:
        print("FAIL %s" % e, flush=True)
    except Exception as e:  # noqa: BLE001 - reported as the outcome
        print("FAIL %s: %s" % (type(e).__name__, e), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
