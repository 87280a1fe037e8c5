#!/usr/bin/env python3
"""Several StreamHouse agents on one machine: produce throughput with 1, 2 and 3
agents, and the end-to-end latency a record pays when it is produced through
one agent and consumed through another.

    benches/e2e/cluster.py --bin target/release/streamhouse [--agents 1,2,3]

The agents share one --data-dir (SQLite catalog and folder store), as on one
machine. Throughput: one confluent-kafka producer (acks=all, idempotent, the
librdkafka defaults otherwise) bootstrapped with every agent, sending
--records records of 100 bytes to an 8-partition topic as fast as it is
acknowledged. Latency: agents A (--zone a) and B (--zone b); the producer names
zone a in its client.id and the consumer zone b, so every record is written
through A and read through B; the same run with both on A is the single-agent
figure. Records are sent one at a time, 100 per second, each carrying its send
time. Prints a Markdown table; the exit status is non-zero if a run failed.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agents:
    """N agents on one data dir, stopped (SIGTERM) on exit."""

    def __init__(self, binary, count, zones=None):
        self.dir = tempfile.mkdtemp(prefix="sh-cluster-bench-")
        self.procs = []
        self.addrs = []
        for i in range(count):
            port = free_port()
            args = [binary, "--data-dir", self.dir, "--listen", f"127.0.0.1:{port}"]
            if zones:
                args += ["--zone", zones[i]]
            log = open(os.path.join(self.dir, f"agent{i}.log"), "w")
            self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
            self.addrs.append(f"127.0.0.1:{port}")
        self.bootstrap = ",".join(self.addrs)
        deadline = time.time() + 30
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        while time.time() < deadline:
            try:
                if len(admin.list_topics(timeout=2).brokers) == count:
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{count} agents did not all join within 30 s")

    def create_topic(self, name, partitions):
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)

    def close(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def throughput(binary, count, records):
    with Agents(binary, count) as agents:
        agents.create_topic("bench", 8)
        producer = Producer({
            "bootstrap.servers": agents.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        })
        failed = []
        value = b"x" * 100

        def delivered(err, _msg):
            if err is not None:
                failed.append(err)

        started = time.time()
        for i in range(records):
            while True:
                try:
                    producer.produce("bench", value, key=str(i).encode(), on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        producer.flush(120)
        elapsed = time.time() - started
        if failed:
            raise RuntimeError(f"{len(failed)} records failed: {failed[0]}")
        return records / elapsed


def latency(binary, cross, messages):
    zones = ["a", "b"] if cross else ["a"]
    with Agents(binary, len(zones), zones) as agents:
        agents.create_topic("latency", 1)
        producer = Producer({
            "bootstrap.servers": agents.bootstrap,
            "client.id": "bench,streamhouse_zone=a",
            "acks": "all",
            "linger.ms": 0,
        })
        consumer = Consumer({
            "bootstrap.servers": agents.bootstrap,
            "client.id": f"bench,streamhouse_zone={zones[-1]}",
            "group.id": "latency",
            "auto.offset.reset": "latest",
            "fetch.wait.max.ms": 500,
        })
        consumer.subscribe(["latency"])
        # Joined and positioned before the first record is sent.
        deadline = time.time() + 30
        while not consumer.assignment() and time.time() < deadline:
            consumer.poll(0.1)
        time.sleep(1)
        samples = []
        for i in range(messages):
            sent = time.time()
            producer.produce("latency", str(sent).encode())
            producer.flush(10)
            while True:
                msg = consumer.poll(5)
                if msg is None:
                    raise RuntimeError(f"record {i} not consumed within 5 s")
                if msg.error():
                    continue
                if float(msg.value()) == sent:
                    samples.append((time.time() - sent) * 1000)
                    break
            time.sleep(max(0.0, 0.01 - (time.time() - sent)))
        consumer.close()
        samples.sort()
        return samples[len(samples) // 2], samples[int(len(samples) * 0.99) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--agents", default="1,2,3")
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores\n")
    print("| agents | produce records/s (100 B, acks=all) |")
    print("|---|---|")
    for count in [int(n) for n in args.agents.split(",")]:
        print(f"| {count} | {throughput(args.bin, count, args.records):,.0f} |", flush=True)
    print("\n| path | p50 ms | p99 ms |")
    print("|---|---|---|")
    for cross in (False, True):
        p50, p99 = latency(args.bin, cross, args.messages)
        label = "produce via A, consume via B" if cross else "produce and consume via A"
        print(f"| {label} | {p50:.1f} | {p99:.1f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
