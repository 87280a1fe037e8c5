import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The load of tests/compat/cluster/ClusterTest.java: an idempotent acks=all
 * producer sending numbered records ("v-INDEX", partition INDEX % 6) at 500 a
 * second, and a group of three KafkaConsumers (classic protocol) committing
 * synchronously after every poll that returned records; what each saw, every
 * exception that reached them, and when they came back after an event.
 */
final class ClusterLoad implements AutoCloseable {
    static final int PARTITIONS = 6;
    static final int MEMBERS = 3;
    static final int SESSION_TIMEOUT_MS = 6000;
    /** Records per producer tick of 10 ms: 500 records a second. */
    static final int PER_TICK = 5;
    static final Duration DRAIN = Duration.ofSeconds(40);

    final String topic;
    final String group;
    final KafkaProducer<String, String> producer;
    final AtomicLong sent = new AtomicLong();
    final Set<Long> acked = ConcurrentHashMap.newKeySet();
    final Map<Long, AtomicInteger> consumed = new ConcurrentHashMap<>();
    final ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();
    final List<Thread> threads = new ArrayList<>();
    final List<KafkaConsumer<String, String>> consumers = new ArrayList<>();
    final AtomicInteger assignments = new AtomicInteger();
    final AtomicInteger revocations = new AtomicInteger();
    final AtomicInteger losses = new AtomicInteger();
    /** Per member: records it consumed. */
    final AtomicLongArray memberConsumed = new AtomicLongArray(MEMBERS);
    final Map<String, Collection<TopicPartition>> assigned = new ConcurrentHashMap<>();
    volatile boolean producing = true;
    volatile boolean consuming = true;
    /** Records from this index on were sent after the event (the kill). */
    volatile long eventIndex = Long.MAX_VALUE;
    volatile long eventMs;
    volatile long eventStartMs;
    /** Per partition: when its first record sent after the event was consumed (0: not yet). */
    final AtomicLongArray partitionBackMs = new AtomicLongArray(PARTITIONS);
    final AtomicLongArray partitionConsumed = new AtomicLongArray(PARTITIONS);
    /** Per member: when it first committed after the event (0: not yet). */
    final AtomicLongArray commitBackMs = new AtomicLongArray(MEMBERS);

    ClusterLoad(Admin admin, String bootstrap, String name, String tag) throws Exception {
        topic = name + "-" + tag;
        group = name + "-group-" + tag;
        admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        producer = new KafkaProducer<>(pp);

        for (int m = 0; m < MEMBERS; m++) {
            Properties cp = new Properties();
            cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            cp.put(ConsumerConfig.CLIENT_ID_CONFIG, group + "-member-" + m);
            cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            cp.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, Integer.toString(SESSION_TIMEOUT_MS));
            cp.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
            cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            KafkaConsumer<String, String> c = new KafkaConsumer<>(cp);
            consumers.add(c);
            int member = m;
            threads.add(new Thread(() -> consume(c, member), "member-" + m));
        }
        threads.add(new Thread(this::produce, "producer"));
        threads.forEach(Thread::start);
    }

    void produce() {
        long i = 0;
        while (producing) {
            for (int k = 0; k < PER_TICK; k++, i++) {
                long index = i;
                try {
                    producer.send(new ProducerRecord<>(topic, (int) (index % PARTITIONS), "k-" + index, "v-" + index),
                            (md, e) -> {
                                if (e == null) {
                                    acked.add(index);
                                } else {
                                    errors.add("producer, record " + index + ": " + e);
                                }
                            });
                } catch (Exception e) {
                    errors.add("producer.send, record " + index + ": " + e);
                }
                sent.set(i + 1);
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    void consume(KafkaConsumer<String, String> c, int member) {
        String name = "member " + member;
        try {
            c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                    if (!parts.isEmpty()) {
                        revocations.incrementAndGet();
                    }
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> parts) {
                    losses.incrementAndGet();
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    assignments.incrementAndGet();
                    assigned.put(name, c.assignment());
                }
            });
            while (consuming) {
                ConsumerRecords<String, String> recs;
                try {
                    recs = c.poll(Duration.ofMillis(200));
                } catch (WakeupException e) {
                    break;
                } catch (Exception e) {
                    errors.add(name + ", poll: " + e);
                    continue;
                }
                for (ConsumerRecord<String, String> r : recs) {
                    long index = Long.parseLong(r.value().substring(2));
                    consumed.computeIfAbsent(index, x -> new AtomicInteger()).incrementAndGet();
                    partitionConsumed.incrementAndGet(r.partition());
                    memberConsumed.incrementAndGet(member);
                    if (index >= eventIndex) {
                        partitionBackMs.compareAndSet(r.partition(), 0, now());
                    }
                }
                if (recs.isEmpty()) {
                    continue;
                }
                try {
                    long before = now();
                    c.commitSync();
                    if (before > eventMs && eventMs > 0) {
                        commitBackMs.compareAndSet(member, 0, now());
                    }
                } catch (WakeupException e) {
                    break;
                } catch (Exception e) {
                    errors.add(name + ", commitSync: " + e);
                }
            }
        } finally {
            try {
                c.close(CloseOptions.timeout(Duration.ofSeconds(10)));
            } catch (Exception e) {
                errors.add(name + ", close: " + e);
            }
        }
    }

    /** Every member has partitions, all partitions are assigned, and each delivered a record. */
    void awaitFlowing(Duration timeout) throws Exception {
        long deadline = now() + timeout.toMillis();
        while (now() < deadline) {
            Set<TopicPartition> all = assigned.values().stream().flatMap(Collection::stream).collect(Collectors.toSet());
            boolean everyPartition = true;
            for (int p = 0; p < PARTITIONS; p++) {
                everyPartition &= partitionConsumed.get(p) > 0;
            }
            if (assigned.size() == MEMBERS && assigned.values().stream().noneMatch(Collection::isEmpty)
                    && all.size() == PARTITIONS && everyPartition) {
                return;
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException("the group did not settle within " + timeout.toSeconds() + " s: assignments "
                + assigned + ", " + consumed.size() + " of " + sent.get() + " records consumed, errors " + errorSummary());
    }

    /** The event (a kill that began at startedMs) is over: from now on a
     * record sent, or a commit begun, cannot have reached the dead agent. */
    void markEvent(long startedMs) {
        eventStartMs = startedMs;
        eventMs = now();
        eventIndex = sent.get();
    }

    /** Milliseconds from the start of the event until every partition and member is back, or -1. */
    long resumedAfterMs() {
        long last = 0;
        for (int p = 0; p < PARTITIONS; p++) {
            long t = partitionBackMs.get(p);
            if (t == 0) {
                return -1;
            }
            last = Math.max(last, t);
        }
        for (int m = 0; m < MEMBERS; m++) {
            long t = commitBackMs.get(m);
            if (t == 0) {
                return -1;
            }
            last = Math.max(last, t);
        }
        return last - eventStartMs;
    }

    String notBack() {
        List<String> out = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            if (partitionBackMs.get(p) == 0) {
                out.add("partition " + p);
            }
        }
        for (int m = 0; m < MEMBERS; m++) {
            if (commitBackMs.get(m) == 0) {
                out.add("commits of member " + m);
            }
        }
        return String.join(", ", out);
    }

    /** Stops the producer (every send completed), then waits until every acked record was consumed. */
    void stopProducingAndDrain() throws Exception {
        producing = false;
        threads.get(threads.size() - 1).join(10000);
        producer.flush();
        long deadline = now() + DRAIN.toMillis();
        while (now() < deadline && !consumed.keySet().containsAll(acked)) {
            Thread.sleep(100);
        }
    }

    String lost() {
        List<Long> missing = acked.stream().filter(i -> !consumed.containsKey(i)).sorted().collect(Collectors.toList());
        if (missing.isEmpty()) {
            return null;
        }
        return missing.size() + " of " + acked.size() + " acknowledged records never consumed, e.g. "
                + missing.subList(0, Math.min(10, missing.size())) + " (partition = index % " + PARTITIONS + ")";
    }

    List<Long> duplicates() {
        return consumed.entrySet().stream().filter(e -> e.getValue().get() > 1).map(Map.Entry::getKey).sorted()
                .collect(Collectors.toList());
    }

    String errorSummary() {
        List<String> all = new ArrayList<>(errors);
        if (all.isEmpty()) {
            return null;
        }
        return all.size() + " exceptions, first: " + all.subList(0, Math.min(3, all.size()));
    }

    String summary() {
        return sent.get() + " sent, " + acked.size() + " acked, " + consumed.size() + " distinct consumed, "
                + duplicates().size() + " duplicated (consumed per member " + memberConsumed + "), "
                + assignments.get() + " assignments, " + revocations.get() + " revocations, " + losses.get()
                + " losses, "
                + errors.size() + " client exceptions";
    }

    @Override
    public void close() throws Exception {
        producing = false;
        consuming = false;
        consumers.forEach(KafkaConsumer::wakeup);
        for (Thread t : threads) {
            t.join(15000);
        }
        producer.close(Duration.ofSeconds(10));
    }

    static long now() {
        return System.currentTimeMillis();
    }
}
