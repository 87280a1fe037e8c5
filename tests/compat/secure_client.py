"""confluent-kafka (librdkafka) over one secure listener, for
tests/compat/secure_clients.sh: the security settings come as librdkafka
properties on the command line, so that the shell runner states what each
listener needs (CA, client certificate, SASL mechanism) next to the broker it
started.

  secure_client.py BOOTSTRAP [-X KEY=VALUE ...] [--records N]
      creates a fresh 3-partition topic with the admin client, produces N
      records (acks=all) and reads them back in a fresh consumer group;
      exit 0 when every record arrived exactly once
  secure_client.py BOOTSTRAP [-X KEY=VALUE ...] --metadata
      only asks for metadata; exit 0 when it is answered, 1 with librdkafka's
      errors otherwise (the runner expects that from a plain-text client on a
      TLS port)

Prints one line saying what happened; librdkafka's own log lines go to
stderr, where the runner looks for the reason of a refusal.
"""

import argparse
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("bootstrap")
    p.add_argument("-X", dest="config", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--records", type=int, default=100)
    p.add_argument("--metadata", action="store_true")
    return p.parse_args()


def metadata(conf):
    """Whether the listener answers Metadata; librdkafka's errors are logged
    to stderr as they come (error_cb), the exception names the last one."""
    errors = []
    admin = AdminClient(dict(conf, error_cb=lambda e: errors.append(str(e))))
    try:
        md = admin.list_topics(timeout=10)
    except KafkaException as e:
        print("no metadata: %s; errors: %s" % (e, " | ".join(errors)))
        return 1
    print("metadata answered: brokers %s" % sorted(b.id for b in md.brokers.values()))
    return 0


def round_trip(conf, n):
    topic = "secure-%s" % uuid.uuid4().hex[:12]
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(TIMEOUT_S)

    failures = []
    producer = Producer(dict(conf, acks="all"))
    expected = {"record-%d" % i for i in range(n)}
    for value in sorted(expected):
        producer.produce(topic, value=value.encode(), key=value.encode(),
                         on_delivery=lambda err, _msg: err and failures.append(str(err)))
    left = producer.flush(TIMEOUT_S)
    if left or failures:
        print("produce: %d not delivered, errors: %s" % (left, failures[:3]))
        return 1

    consumer = Consumer(dict(conf, **{"group.id": "secure-%s" % uuid.uuid4().hex[:12],
                                      "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                print("consume: %s" % msg.error())
                return 1
            got.append(msg.value().decode())
        if got:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    if len(got) != n or set(got) != expected:
        print("read %d records (%d distinct) of %d" % (len(got), len(set(got)), n))
        return 1
    print("%d records produced and read back in a group" % n)
    return 0


def main():
    args = parse_args()
    conf = {"bootstrap.servers": args.bootstrap}
    for kv in args.config:
        key, sep, value = kv.partition("=")
        if not sep:
            sys.exit("-X %s: expected KEY=VALUE" % kv)
        conf[key] = value
    return metadata(conf) if args.metadata else round_trip(conf, args.records)


if __name__ == "__main__":
    sys.exit(main())
