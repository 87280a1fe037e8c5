"""kafka-python and aiokafka against fresh StreamHouse brokers, on each backend
pair in COMPAT_BACKENDS. One broker per client and backend pair, started with
--group-initial-rebalance-delay-ms 0.

Scenarios (CLIENT is kafka-python or aiokafka, BACKEND embedded or pg-s3):
  CLIENT/BACKEND/metadata                 the broker lists itself at its address
  CLIENT/BACKEND/create-topic             admin CreateTopics, 3 partitions, seen in metadata
  CLIENT/BACKEND/CODEC/produce            200 keyed records with headers and explicit
                                          CreateTime, in two acknowledged bursts, to a
                                          1-partition topic; offsets 0..199 in order
  CLIENT/BACKEND/CODEC/from-beginning     assign + seek to beginning: all 200, exact
  CLIENT/BACKEND/CODEC/from-offset        seek(100): records 100..199
  CLIENT/BACKEND/CODEC/from-timestamp     offsets_for_times(between the bursts) == 100,
                                          then records 100..199
  CLIENT/BACKEND/group/split              two members of one group on a 4-partition
                                          topic get disjoint, non-empty assignments
                                          covering all partitions; they consume and commit
  CLIENT/BACKEND/group/leave-rebalance    one member closes; the other gets all 4
  CLIENT/BACKEND/group/resume-from-commits a restarted member reads only what was
                                          produced after the commits
  CLIENT/BACKEND/configs/describe         DescribeConfigs of a topic has retention.ms
  CLIENT/BACKEND/configs/alter            AlterConfigs retention.ms, described back
  CLIENT/BACKEND/delete-topic             DeleteTopics; the topic leaves the metadata
for CODEC in none gzip snappy lz4 zstd (both clients support all five, through
cramjam).

A scenario that fails and is listed in KNOWN_GAPS prints XFAIL with the known
reason and the error (run_all.sh counts XFAIL separately); one that passes
prints PASS whatever KNOWN_GAPS says.

Usage: pyclients.py [kafka-python] [aiokafka]   (default both)
"""

import asyncio
import os
import re
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
N = 200
HALF = N // 2
GAP_MS = 10_000
TIMEOUT_S = 30
GROUP_PARTITIONS = 4
KP_GROUP_POLL_MS = 1000
PER_PARTITION = 10

# scenario-name regex (after CLIENT/BACKEND/) -> why it is expected to fail.
KNOWN_GAPS = {
    "kafka-python": {},
    "aiokafka": {},
}

FAILED = 0


def record(status, name, detail=""):
    global FAILED
    if status == "FAIL":
        FAILED = 1
    line = "%s %s" % (status, name)
    print(line + (": " + detail if detail else ""), flush=True)
    path = os.environ.get("COMPAT_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


class Scenarios:
    def __init__(self, client, backend, broker):
        self.client = client
        self.backend = backend
        self.broker = broker
        self.prefix = "%s/%s" % (client, backend)

    def _outcome(self, name, err):
        full = "%s/%s" % (self.prefix, name)
        if err is None:
            record("PASS", full)
            return True
        for pattern, why in KNOWN_GAPS.get(self.client, {}).items():
            if re.fullmatch(pattern, name):
                record("XFAIL", full, "%s (%s)" % (why, err))
                return False
        record("FAIL", full, err)
        return False

    def run(self, name, fn, *args):
        try:
            fn(*args)
            err = None
        except Exception as e:  # noqa: BLE001 - every failure is a scenario result
            err = "%s: %s" % (type(e).__name__, str(e).replace("\n", " ")[:600])
            if os.environ.get("COMPAT_DEBUG"):
                traceback.print_exc()
        return self._outcome(name, err)

    async def arun(self, name, fn, *args):
        try:
            await asyncio.wait_for(fn(*args), 3 * TIMEOUT_S)
            err = None
        except (Exception, asyncio.CancelledError) as e:  # noqa: BLE001
            err = "%s: %s" % (type(e).__name__, str(e).replace("\n", " ")[:600])
            if os.environ.get("COMPAT_DEBUG"):
                traceback.print_exc()
        return self._outcome(name, err)

    def skip(self, name, why):
        self._outcome(name, "not run: " + why)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def codec_records(codec, base):
    """(key, value, headers, timestamp) of the N records of one codec."""
    out = []
    for i in range(N):
        ts = base + i + (GAP_MS if i >= HALF else 0)
        out.append((b"key-%d" % i, b"value-%d-%s" % (i, codec.encode()),
                    [("a", b"b"), ("codec", codec.encode()), ("i", b"%d" % i)], ts))
    return out


def same(got, expected, first_offset):
    """got: (key, value, headers, offset, ts) tuples; expected: codec_records slice."""
    for j, (g, e) in enumerate(zip(got, expected)):
        want = (e[0], e[1], e[2], first_offset + j, e[3])
        check(g == want, "record #%d differs: got %r, expected %r" % (j, g, want))
    check(len(got) == len(expected), "got %d records, expected %d" % (len(got), len(expected)))


def group_records():
    return [(p, b"g-%d-%d" % (p, i)) for p in range(GROUP_PARTITIONS) for i in range(PER_PARTITION)]


# ---------------------------------------------------------------- kafka-python

def run_kafka_python(sc):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.admin import NewTopic  # deprecated but still there
    boot = sc.broker.bootstrap

    admin = KafkaAdminClient(bootstrap_servers=boot, request_timeout_ms=TIMEOUT_S * 1000)

    def metadata():
        c = KafkaConsumer(bootstrap_servers=boot)
        try:
            check(c.topics() is not None, "no topics")
            brokers = c._client.cluster.brokers()
            addrs = sorted("%s:%d" % (b.host, b.port) for b in brokers)
            check(boot in addrs, "brokers in metadata: %s" % addrs)
        finally:
            c.close()

    def create_topic(topic, partitions):
        admin.create_topics([NewTopic(topic, partitions, 1)])
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            c = KafkaConsumer(bootstrap_servers=boot)
            try:
                parts = c.partitions_for_topic(topic)
            finally:
                c.close()
            if parts and len(parts) == partitions:
                return
            check(time.monotonic() < deadline, "partitions of %s: %r" % (topic, parts))
            time.sleep(0.2)

    def consume(topic, start, count, ts_start=None):
        c = KafkaConsumer(bootstrap_servers=boot, enable_auto_commit=False, auto_offset_reset="none")
        tp = TopicPartition(topic, 0)
        got = []
        try:
            c.assign([tp])
            if ts_start is not None:
                found = c.offsets_for_times({tp: ts_start})[tp]
                check(found is not None and found.offset == start, "offsets_for_times: %r" % (found,))
            if start == 0:
                c.seek_to_beginning(tp)
            else:
                c.seek(tp, start)
            deadline = time.monotonic() + TIMEOUT_S
            while len(got) < count and time.monotonic() < deadline:
                for recs in c.poll(timeout_ms=500).values():
                    for m in recs:
                        got.append((m.key, m.value, list(m.headers), m.offset, m.timestamp))
        finally:
            c.close()
        return got

    sc.run("metadata", metadata)
    sc.run("create-topic", create_topic, harness.unique("kp-create"), 3)

    for codec in CODECS:
        topic = harness.unique("kp-" + codec)
        base = int(time.time() * 1000) - 600_000
        recs = codec_records(codec, base)

        def produce():
            create_topic(topic, 1)
            p = KafkaProducer(bootstrap_servers=boot, acks="all", linger_ms=5,
                              compression_type=None if codec == "none" else codec)
            try:
                offsets = []
                for burst in (recs[:HALF], recs[HALF:]):
                    futs = [p.send(topic, key=k, value=v, headers=h, partition=0, timestamp_ms=ts)
                            for k, v, h, ts in burst]
                    p.flush(TIMEOUT_S)
                    offsets += [f.get(TIMEOUT_S).offset for f in futs]
                check(offsets == list(range(N)), "acknowledged offsets %r..." % offsets[:10])
            finally:
                p.close(TIMEOUT_S)

        if not sc.run(codec + "/produce", produce):
            for s in ("from-beginning", "from-offset", "from-timestamp"):
                sc.skip(codec + "/" + s, "produce failed")
            continue
        sc.run(codec + "/from-beginning", lambda: same(consume(topic, 0, N), recs, 0))
        sc.run(codec + "/from-offset", lambda: same(consume(topic, HALF, N - HALF), recs[HALF:], HALF))
        split = base + HALF + GAP_MS // 2
        sc.run(codec + "/from-timestamp",
               lambda: same(consume(topic, HALF, N - HALF, ts_start=split), recs[HALF:], HALF))

    # -- group
    # kafka-python 3.0.12: a poll() whose timeout runs out while its JoinGroup/
    # SyncGroup is in flight can leave the consumer without its assignment and
    # with heartbeats off until the session expires (seen in about 1 run in 10
    # with 200 ms polls; its debug log shows the SyncGroup answered with the
    # assignment and then nothing). Polls of 1 s leave the join time to finish.
    gtopic = harness.unique("kp-group")
    group = harness.unique("kp-g")
    state = {}

    def member():
        return KafkaConsumer(gtopic, bootstrap_servers=boot, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", heartbeat_interval_ms=300,
                             session_timeout_ms=10000, max_poll_interval_ms=60000)

    def produce_group(recs):
        p = KafkaProducer(bootstrap_servers=boot, acks="all")
        for part, v in recs:
            p.send(gtopic, key=v, value=v, partition=part)
        p.flush(TIMEOUT_S)
        p.close(TIMEOUT_S)

    def split():
        create_topic(gtopic, GROUP_PARTITIONS)
        produce_group(group_records())
        a, b = member(), member()
        state["a"], state["b"] = a, b
        seen = set()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            for c in (a, b):
                for recs in c.poll(timeout_ms=KP_GROUP_POLL_MS).values():
                    seen.update(m.value for m in recs)
            pa = {tp.partition for tp in a.assignment()}
            pb = {tp.partition for tp in b.assignment()}
            if pa and pb and not (pa & pb) and pa | pb == set(range(GROUP_PARTITIONS)) \
                    and all(c.position(tp) == PER_PARTITION for c in (a, b) for tp in c.assignment()):
                a.commit()
                b.commit()
                return
        raise AssertionError("assignments a=%s b=%s, %d of %d records seen" % (
            sorted(pa), sorted(pb), len(seen), GROUP_PARTITIONS * PER_PARTITION))

    def leave():
        a, b = state["a"], state["b"]
        b.close()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            a.poll(timeout_ms=KP_GROUP_POLL_MS)
            pa = {tp.partition for tp in a.assignment()}
            if pa == set(range(GROUP_PARTITIONS)):
                a.commit()
                a.close()
                return
        raise AssertionError("remaining member has %s after the other left" % sorted(pa))

    def resume():
        extra = [(p, b"late-%d" % p) for p in range(GROUP_PARTITIONS)]
        produce_group(extra)
        c = member()
        seen = []
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline and len(seen) < len(extra):
                for recs in c.poll(timeout_ms=KP_GROUP_POLL_MS).values():
                    seen += [m.value for m in recs]
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                for recs in c.poll(timeout_ms=KP_GROUP_POLL_MS).values():
                    seen += [m.value for m in recs]
        finally:
            c.close()
        check(sorted(seen) == sorted(v for _, v in extra), "restarted member read %r" % seen[:10])

    ok = sc.run("group/split", split)
    if ok:
        ok = sc.run("group/leave-rebalance", leave)
    else:
        sc.skip("group/leave-rebalance", "group/split failed")
    if ok:
        sc.run("group/resume-from-commits", resume)
    else:
        sc.skip("group/resume-from-commits", "an earlier group scenario failed")
    for k in ("a", "b"):
        try:
            state[k].close()
        except Exception:  # noqa: BLE001
            pass

    # -- configs, delete
    ctopic = harness.unique("kp-configs")

    def find_value(described, key):
        for by_name in described.values():
            for cfgs in by_name.values():
                if key in cfgs:
                    v = cfgs[key]
                    return v.get("value") if isinstance(v, dict) else v
        raise AssertionError("%s not in %r" % (key, described))

    def describe():
        create_topic(ctopic, 1)
        d = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ctopic)], config_filter="all")
        v = find_value(d, "retention.ms")
        check(v is not None, "retention.ms has no value")

    def alter():
        r = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, ctopic,
                                                configs={"retention.ms": "123456789"})])
        check("rror" not in repr(r) or "NoError" in repr(r), "alter_configs answered %r" % (r,))
        d = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ctopic)], config_filter="all")
        v = find_value(d, "retention.ms")
        check(str(v) == "123456789", "retention.ms is %r after the alter" % (v,))

    sc.run("configs/describe", describe)
    sc.run("configs/alter", alter)

    def delete():
        admin.delete_topics([ctopic])
        deadline = time.monotonic() + TIMEOUT_S
        while ctopic in admin.list_topics():
            check(time.monotonic() < deadline, "deleted topic still listed")
            time.sleep(0.2)

    sc.run("delete-topic", delete)
    admin.close()


# ---------------------------------------------------------------- aiokafka

async def run_aiokafka(sc):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    boot = sc.broker.bootstrap

    admin = AIOKafkaAdminClient(bootstrap_servers=boot, request_timeout_ms=TIMEOUT_S * 1000)
    await admin.start()

    async def cluster():
        # A bare client: a consumer stopped right after start() trips over
        # aiokafka's own NoGroupCoordinator (CancelledError from close()).
        from aiokafka.client import AIOKafkaClient
        cl = AIOKafkaClient(bootstrap_servers=boot)
        await cl.bootstrap()
        return cl

    async def metadata():
        cl = await cluster()
        try:
            addrs = sorted("%s:%d" % (b.host, b.port) for b in cl.cluster.brokers())
            check(boot in addrs, "brokers in metadata: %s" % addrs)
        finally:
            await cl.close()

    async def create_topic(topic, partitions):
        await admin.create_topics([NewTopic(topic, partitions, 1)])
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            cl = await cluster()
            try:
                cl.add_topic(topic)
                await cl.force_metadata_update()
                parts = cl.cluster.partitions_for_topic(topic)
            finally:
                await cl.close()
            if parts and len(parts) == partitions:
                return
            check(time.monotonic() < deadline, "partitions of %s: %r" % (topic, parts))
            await asyncio.sleep(0.2)

    async def consume(topic, start, count, ts_start=None):
        c = AIOKafkaConsumer(bootstrap_servers=boot, enable_auto_commit=False, auto_offset_reset="none")
        await c.start()
        tp = TopicPartition(topic, 0)
        got = []
        try:
            c.assign([tp])
            if ts_start is not None:
                found = (await c.offsets_for_times({tp: ts_start}))[tp]
                check(found is not None and found.offset == start, "offsets_for_times: %r" % (found,))
            if start == 0:
                await c.seek_to_beginning(tp)
            else:
                c.seek(tp, start)
            deadline = time.monotonic() + TIMEOUT_S
            while len(got) < count and time.monotonic() < deadline:
                for recs in (await c.getmany(timeout_ms=500)).values():
                    for m in recs:
                        got.append((m.key, m.value, [(k, v) for k, v in m.headers], m.offset, m.timestamp))
        finally:
            await c.stop()
        return got

    await sc.arun("metadata", metadata)
    await sc.arun("create-topic", create_topic, harness.unique("aio-create"), 3)

    for codec in CODECS:
        topic = harness.unique("aio-" + codec)
        base = int(time.time() * 1000) - 600_000
        recs = codec_records(codec, base)

        async def produce():
            await create_topic(topic, 1)
            p = AIOKafkaProducer(bootstrap_servers=boot, acks="all", linger_ms=5,
                                 compression_type=None if codec == "none" else codec)
            await p.start()
            try:
                offsets = []
                for burst in (recs[:HALF], recs[HALF:]):
                    futs = [await p.send(topic, key=k, value=v, headers=h, partition=0, timestamp_ms=ts)
                            for k, v, h, ts in burst]
                    await p.flush()
                    offsets += [(await f).offset for f in futs]
                check(offsets == list(range(N)), "acknowledged offsets %r..." % offsets[:10])
            finally:
                await p.stop()

        if not await sc.arun(codec + "/produce", produce):
            for s in ("from-beginning", "from-offset", "from-timestamp"):
                sc.skip(codec + "/" + s, "produce failed")
            continue

        async def beginning():
            same(await consume(topic, 0, N), recs, 0)

        async def offset():
            same(await consume(topic, HALF, N - HALF), recs[HALF:], HALF)

        async def timestamp():
            same(await consume(topic, HALF, N - HALF, ts_start=base + HALF + GAP_MS // 2), recs[HALF:], HALF)

        await sc.arun(codec + "/from-beginning", beginning)
        await sc.arun(codec + "/from-offset", offset)
        await sc.arun(codec + "/from-timestamp", timestamp)

    # -- group
    gtopic = harness.unique("aio-group")
    group = harness.unique("aio-g")
    state = {}

    async def member():
        c = AIOKafkaConsumer(gtopic, bootstrap_servers=boot, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", heartbeat_interval_ms=300,
                             session_timeout_ms=10000, max_poll_interval_ms=60000)
        await c.start()
        return c

    async def produce_group(recs):
        p = AIOKafkaProducer(bootstrap_servers=boot, acks="all")
        await p.start()
        try:
            for part, v in recs:
                await p.send_and_wait(gtopic, key=v, value=v, partition=part)
        finally:
            await p.stop()

    async def split():
        await create_topic(gtopic, GROUP_PARTITIONS)
        await produce_group(group_records())
        a = await member()
        state["a"] = a
        b = await member()
        state["b"] = b
        seen = set()
        pa = pb = set()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            for c in (a, b):
                for recs in (await c.getmany(timeout_ms=200)).values():
                    seen.update(m.value for m in recs)
            pa = {tp.partition for tp in a.assignment()}
            pb = {tp.partition for tp in b.assignment()}
            if pa and pb and not (pa & pb) and pa | pb == set(range(GROUP_PARTITIONS)) \
                    and all([await c.position(tp) == PER_PARTITION for c in (a, b) for tp in c.assignment()]):
                await a.commit()
                await b.commit()
                return
        raise AssertionError("assignments a=%s b=%s, %d of %d records seen" % (
            sorted(pa), sorted(pb), len(seen), GROUP_PARTITIONS * PER_PARTITION))

    async def leave():
        a, b = state["a"], state.pop("b")
        await b.stop()
        pa = set()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            await a.getmany(timeout_ms=200)
            pa = {tp.partition for tp in a.assignment()}
            if pa == set(range(GROUP_PARTITIONS)):
                await a.commit()
                await state.pop("a").stop()
                return
        raise AssertionError("remaining member has %s after the other left" % sorted(pa))

    async def resume():
        extra = [(p, b"late-%d" % p) for p in range(GROUP_PARTITIONS)]
        await produce_group(extra)
        c = await member()
        seen = []
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline and len(seen) < len(extra):
                for recs in (await c.getmany(timeout_ms=200)).values():
                    seen += [m.value for m in recs]
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                for recs in (await c.getmany(timeout_ms=200)).values():
                    seen += [m.value for m in recs]
        finally:
            await c.stop()
        check(sorted(seen) == sorted(v for _, v in extra), "restarted member read %r" % seen[:10])

    ok = await sc.arun("group/split", split)
    if ok:
        ok = await sc.arun("group/leave-rebalance", leave)
    else:
        sc.skip("group/leave-rebalance", "group/split failed")
    if ok:
        await sc.arun("group/resume-from-commits", resume)
    else:
        sc.skip("group/resume-from-commits", "an earlier group scenario failed")
    for c in list(state.values()):
        try:
            await c.stop()
        except Exception:  # noqa: BLE001
            pass

    # -- configs, delete
    ctopic = harness.unique("aio-configs")

    def entries(responses):
        """{name: value} of every topic resource in DescribeConfigs responses."""
        out = {}
        for resp in responses:
            for res in resp.resources:
                err = res[0]
                check(err == 0, "DescribeConfigs error %r for %r" % (err, res[:4]))
                for e in res[4]:
                    out[e[0]] = e[1]
        return out

    async def describe():
        await create_topic(ctopic, 1)
        got = entries(await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ctopic)]))
        check(got.get("retention.ms") is not None, "retention.ms not described: %r" % sorted(got)[:20])

    async def alter():
        resps = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, ctopic,
                                                          configs={"retention.ms": "123456789"})])
        for resp in resps:
            for res in resp.resources:
                check(res[0] == 0, "AlterConfigs error %r" % (res,))
        got = entries(await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ctopic)]))
        check(got.get("retention.ms") == "123456789", "retention.ms is %r after the alter" % got.get("retention.ms"))

    await sc.arun("configs/describe", describe)
    await sc.arun("configs/alter", alter)

    async def delete():
        await admin.delete_topics([ctopic])
        deadline = time.monotonic() + TIMEOUT_S
        while ctopic in await admin.list_topics():
            check(time.monotonic() < deadline, "deleted topic still listed")
            await asyncio.sleep(0.2)

    await sc.arun("delete-topic", delete)
    await admin.close()


def main(argv):
    if os.environ.get("COMPAT_PYLOG"):  # client debug log, for investigating a failure
        import logging
        logging.basicConfig(level=logging.DEBUG, filename=os.environ["COMPAT_PYLOG"],
                            format="%(asctime)s %(name)s %(message)s")
    clients = argv or ["kafka-python", "aiokafka"]
    for client in clients:
        if client not in ("kafka-python", "aiokafka"):
            print("pyclients.py: unknown client %r" % client, file=sys.stderr)
            return 2
    for client in clients:
        for backend in harness.backends():
            t0 = time.monotonic()
            broker = harness.new_broker(backend, client + "-" + backend,
                                        extra_args=["--group-initial-rebalance-delay-ms", "0"])
            sc = Scenarios(client, backend, broker)
            try:
                broker.start()
            except harness.BrokerError as e:
                record("FAIL", "%s/broker-start" % sc.prefix, str(e).replace("\n", " ")[:600])
                continue
            failed_before = FAILED
            try:
                if client == "kafka-python":
                    run_kafka_python(sc)
                else:
                    asyncio.run(run_aiokafka(sc))
            except (Exception, asyncio.CancelledError) as e:  # noqa: BLE001 - a crash of the runner itself
                traceback.print_exc()
                record("FAIL", "%s/run" % sc.prefix, "%s: %s" % (type(e).__name__, e))
            except BaseException:
                # SIGINT (run_all.sh's timeout) and the like: no broker is left behind.
                broker.stop()
                raise
            if not broker.running():
                record("FAIL", "%s/broker-alive" % sc.prefix, "the broker died during the run")
            failed = FAILED and not failed_before
            if failed:
                print("--- %s (tail) ---\n%s" % (broker.log_path, broker.log_tail(40)), flush=True)
            broker.cleanup(keep=bool(failed))
            print("%s: %.1fs" % (sc.prefix, time.monotonic() - t0), file=sys.stderr, flush=True)
    return FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
