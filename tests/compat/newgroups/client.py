"""A consumer group of the KIP-848 protocol with confluent-kafka (librdkafka), for
tests/compat/newgroups.sh.

  client.py split BOOTSTRAP TOPIC GROUP N
  client.py migrate BOOTSTRAP TOPIC GROUP N

Creates TOPIC with 4 partitions; two consumers with group.protocol=consumer
(librdkafka refuses session.timeout.ms, heartbeat.interval.ms and
partition.assignment.strategy with it: the broker decides them) join GROUP
and are polled in turn. Once they split the partitions (each owns some, none
twice, all four owned), N keyed records are produced; the consumers read
them, committing synchronously after every batch. Then: every record was
consumed, each by the consumer owning its partition at the time, both
consumed some; the group's committed offsets (AdminClient
list_consumer_group_offsets) are the partitions' high watermarks; and
describe_consumer_groups shows type CONSUMER, state STABLE and two members
whose assignments cover the four partitions once. Prints "OK <detail>" or
"FAIL <reason>" as its last line and exits 0 or 1.

migrate moves a live group between the protocols one consumer at a time
(Kafka's online migration): two classic consumers (group.protocol=classic,
librdkafka's default eager assignors) split the topic; a consumer with
group.protocol=consumer joins (describe_consumer_groups: type CONSUMER, three
members); the classic ones close; a classic one joins again; the
consumer-protocol one closes (type CLASSIC, one member). N records are
produced at each of the five steps, and each step ends once every record is
consumed and the partitions are split among the consumers, each owning some
and none owned twice.
"""

import sys
import time

from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, ConsumerGroupType, Consumer,
                             KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 4
OP_TIMEOUT_S = 30
# Kafka's consumer groups heartbeat every 5 s; a rebalance takes a few.
STEP_S = 60


class Failure(Exception):
    pass


def create_topic(admin, topic, partitions):
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                              operation_timeout=OP_TIMEOUT_S, request_timeout=OP_TIMEOUT_S)[topic]
    fut.result(timeout=OP_TIMEOUT_S)
    deadline = time.monotonic() + OP_TIMEOUT_S
    while True:
        md = admin.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        if time.monotonic() > deadline:
            raise Failure("topic %s not in metadata with %d partitions" % (topic, partitions))
        time.sleep(0.2)


class Member:
    def __init__(self, boot, topic, group, name, protocol="consumer"):
        self.name = name
        self.owned = set()
        self.events = []
        self.consumed = {}          # value -> partition
        self.partitions_read = set()
        self.strays = []            # records of partitions it did not own
        self.commit_errors = []
        config = {
            "bootstrap.servers": boot,
            "group.id": group,
            "group.protocol": protocol,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
        if protocol == "classic":
            config.update({"session.timeout.ms": 10000, "heartbeat.interval.ms": 1000})
        self.consumer = Consumer(config)
        self.consumer.subscribe([topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                                on_lost=self.on_lost)

    def on_assign(self, _consumer, tps):
        ps = {tp.partition for tp in tps}
        if ps:
            self.owned |= ps
            self.events.append("+%s" % sorted(ps))

    def on_revoke(self, _consumer, tps):
        ps = {tp.partition for tp in tps}
        if ps:
            self.owned -= ps
            self.events.append("-%s" % sorted(ps))

    def on_lost(self, _consumer, tps):
        ps = {tp.partition for tp in tps}
        if ps:
            self.owned -= ps
            self.events.append("lost%s" % sorted(ps))

    def poll(self):
        msgs = self.consumer.consume(num_messages=500, timeout=0.1)
        got = 0
        for m in msgs:
            if m.error():
                raise Failure("%s: consume error %s" % (self.name, m.error()))
            v = int(m.value())
            self.consumed[v] = m.partition()
            self.partitions_read.add(m.partition())
            if m.partition() not in self.owned:
                self.strays.append((m.partition(), m.offset()))
            got += 1
        if got:
            try:
                self.consumer.commit(asynchronous=False)
            except KafkaException as e:
                self.commit_errors.append(str(e))
        return got

    def text(self):
        return "%s owns %s (%s)" % (self.name, sorted(self.owned), " ".join(self.events))


def split_ok(members):
    owned = [m.owned for m in members]
    allp = set().union(*owned)
    return all(owned) and sum(len(o) for o in owned) == PARTITIONS and allp == set(range(PARTITIONS))


def poll_until(members, seconds, cond):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for m in members:
            m.poll()
        if cond():
            return True
    return cond()


def produce(boot, topic, start, n):
    producer = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "linger.ms": 5})
    failed = []

    def on_delivery(err, _msg):
        if err is not None:
            failed.append(str(err))

    for i in range(start, start + n):
        producer.produce(topic, key="k%d" % i, value=str(i), on_delivery=on_delivery)
        producer.poll(0)
    if producer.flush(OP_TIMEOUT_S) != 0 or failed:
        raise Failure("producing %d records: %d not delivered (%s)" % (n, len(failed), failed[:3]))


def migrate(boot, topic, group, n):
    admin = AdminClient({"bootstrap.servers": boot})
    create_topic(admin, topic, PARTITIONS)
    members = {}
    closed = []     # what the consumers closed so far consumed
    produced = 0
    steps = []

    def seen():
        return set().union(*(m.consumed.keys() for m in list(members.values()) + closed))

    def settled():
        return len(seen()) == produced and split_ok(list(members.values()))

    def step(name, want_type, want_members):
        nonlocal produced
        produce(boot, topic, produced, n)
        produced += n
        if not poll_until(list(members.values()), STEP_S, settled):
            raise Failure("%s: %d of %d records consumed and the partitions not split in %d s: %s"
                          % (name, len(seen()), produced, STEP_S, "; ".join(m.text() for m in members.values())))
        described = {}

        def shown():
            d = admin.describe_consumer_groups([group], request_timeout=OP_TIMEOUT_S)[group].result(
                timeout=OP_TIMEOUT_S)
            described.update(type=d.type.name, state=d.state.name, members=len(d.members))
            return d.type == want_type and len(d.members) == want_members
        if not poll_until(list(members.values()), 20, shown):
            raise Failure("%s: described as %s; want type %s with %d members"
                          % (name, described, want_type.name, want_members))
        steps.append("%s: type %s, %d members" % (name, described["type"], described["members"]))

    def close(name):
        member = members.pop(name)
        member.consumer.close()
        closed.append(member)

    try:
        for name in ("classic-1", "classic-2"):
            members[name] = Member(boot, topic, group, name, "classic")
        step("classic", ConsumerGroupType.CLASSIC, 2)
        members["consumer-1"] = Member(boot, topic, group, "consumer-1")
        step("upgraded", ConsumerGroupType.CONSUMER, 3)
        close("classic-1")
        close("classic-2")
        step("classic members gone", ConsumerGroupType.CONSUMER, 1)
        members["classic-3"] = Member(boot, topic, group, "classic-3", "classic")
        step("mixed", ConsumerGroupType.CONSUMER, 2)
        close("consumer-1")
        step("downgraded", ConsumerGroupType.CLASSIC, 1)
        return "%d records consumed across the moves; %s" % (produced, "; ".join(steps))
    finally:
        for m in members.values():
            try:
                m.consumer.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass


def run(boot, topic, group, n):
    admin = AdminClient({"bootstrap.servers": boot})
    create_topic(admin, topic, PARTITIONS)
    members = [Member(boot, topic, group, "py-1"), Member(boot, topic, group, "py-2")]
    try:
        t0 = time.monotonic()
        if not poll_until(members, STEP_S, lambda: split_ok(members)):
            raise Failure("two consumers did not split %d partitions in %d s: %s"
                          % (PARTITIONS, STEP_S, "; ".join(m.text() for m in members)))
        split_s = time.monotonic() - t0

        producer = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "linger.ms": 5})
        failed = []

        def on_delivery(err, _msg):
            if err is not None:
                failed.append(str(err))

        for i in range(n):
            producer.produce(topic, key="k%d" % i, value=str(i), on_delivery=on_delivery)
            producer.poll(0)
        if producer.flush(OP_TIMEOUT_S) != 0 or failed:
            raise Failure("producing %d records: %d not delivered (%s)" % (n, len(failed), failed[:3]))

        def all_consumed():
            return len(set().union(*(m.consumed.keys() for m in members))) == n
        if not poll_until(members, STEP_S, all_consumed):
            got = set().union(*(m.consumed.keys() for m in members))
            raise Failure("%d of %d records consumed in %d s, e.g. missing %s; %s"
                          % (len(got), n, STEP_S, sorted(set(range(n)) - got)[:10],
                             "; ".join(m.text() for m in members)))
        for m in members:
            if m.strays:
                raise Failure("%s consumed %d records of partitions it did not own, e.g. %s; %s"
                              % (m.name, len(m.strays), m.strays[:5], m.text()))
            if not m.consumed:
                raise Failure("%s consumed nothing: %s" % (m.name, "; ".join(x.text() for x in members)))

        # Committed offsets: the high watermarks.
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = {p: members[0].consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(PARTITIONS)}
        committed = {}

        def at_end():
            res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)],
                                                    request_timeout=OP_TIMEOUT_S)[group].result(timeout=OP_TIMEOUT_S)
            committed.clear()
            committed.update({tp.partition: tp.offset for tp in res.topic_partitions})
            return all(committed.get(p) == ends[p] for p in range(PARTITIONS))
        if not poll_until(members, 15, at_end):
            raise Failure("committed offsets %s, high watermarks %s" % (committed, ends))

        described = {}

        def stable():
            d = admin.describe_consumer_groups([group], request_timeout=OP_TIMEOUT_S)[group].result(
                timeout=OP_TIMEOUT_S)
            assigned = sorted(tp.partition for md in d.members for tp in md.assignment.topic_partitions)
            described.update(type=d.type, state=d.state, assignor=d.partition_assignor,
                             members=len(d.members), assigned=assigned,
                             by_client={md.client_id: sorted(tp.partition for tp in md.assignment.topic_partitions)
                                        for md in d.members})
            return (d.type == ConsumerGroupType.CONSUMER and d.state == ConsumerGroupState.STABLE
                    and len(d.members) == 2 and assigned == list(range(PARTITIONS))
                    and all(described["by_client"].get(m.name) == sorted(m.owned) for m in members))
        if not poll_until(members, 15, stable):
            raise Failure("describe_consumer_groups: %s; want type CONSUMER, state STABLE, two members with "
                          "the partitions each owns: %s" % (described, "; ".join(m.text() for m in members)))
        errors = [e for m in members for e in m.commit_errors]
        return ("split in %.1f s (%s), %d records consumed (%s), committed = high watermarks %s; described "
                "type %s, state %s, assignor %s%s"
                % (split_s, ", ".join("%s=%s" % (m.name, sorted(m.owned)) for m in members), n,
                   ", ".join("%s %d" % (m.name, len(m.consumed)) for m in members), ends,
                   described["type"].name, described["state"].name, described["assignor"],
                   "; commit errors: %s" % errors[:3] if errors else ""))
    finally:
        for m in members:
            try:
                m.consumer.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass


def main():
    modes = {"split": run, "migrate": migrate}
    if len(sys.argv) != 6 or sys.argv[1] not in modes:
        print("usage: client.py split|migrate BOOTSTRAP TOPIC GROUP N", file=sys.stderr)
        return 2
    try:
        print("OK " + modes[sys.argv[1]](sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])), flush=True)
        return 0
    except Failure as e:
        print("FAIL %s" % e, flush=True)
    except Exception as e:  # noqa: BLE001 - reported as the outcome
        print("FAIL %s: %s" % (type(e).__name__, e), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
