/*
 * The Java client (kafka-clients 4.4.0) against a running StreamHouse broker.
 *
 *   java -cp "$STREAMHOUSE_CACHE/java/classes:$STREAMHOUSE_CACHE/java/lib/*" \
 *       CompatTest <bootstrap> <label>
 *
 * AdminClient creates one 3-partition topic per codec; a KafkaProducer
 * (enable.idempotence=false, acks=all, compression.type=<codec>) sends keyed
 * records with headers and explicit CreateTime timestamps in two bursts; a
 * KafkaConsumer reads them back with assign()+seekToBeginning, seek(offset)
 * and offsetsForTimes, comparing key, value, headers, offset and timestamp of
 * every record. A consumer group subscribed to the pattern ".*" is assigned
 * the user topic and never the internal __consumer_offsets. Prints one
 * "PASS java/<label>/<scenario>" or
 * "FAIL java/<label>/<scenario>: why" line per scenario; exits 1 on any failure.
 *
 * Plain javac, no build tool: tests/compat/java.sh compiles and runs it.
 */

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class CompatTest {
    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
    static final int PARTITIONS = 3;
    /** Records per codec topic, spread round-robin over the partitions. */
    static final int RECORDS = 600;
    static final int PER_PARTITION = RECORDS / PARTITIONS;
    /** Burst 2 starts at this index within each partition. */
    static final int HALF = PER_PARTITION / 2;
    static final long BURST_GAP_MS = 100_000;
    static final Duration TIMEOUT = Duration.ofSeconds(30);

    static String bootstrap;
    static String label;
    static int passed;
    static int failed;

    /** One record as it must come back. */
    record Expected(int partition, long offset, byte[] key, byte[] value, List<Header> headers, long timestamp) {}

    interface Body {
        void run() throws Exception;
    }

    static void scenario(String name, Body body) {
        try {
            body.run();
            System.out.println("PASS java/" + label + "/" + name);
            passed++;
        } catch (Throwable t) {
            String why = t.getClass().getSimpleName() + ": " + t.getMessage();
            if (t.getCause() != null && t.getCause() != t) {
                why += " (cause " + t.getCause().getClass().getSimpleName() + ": " + t.getCause().getMessage() + ")";
            }
            System.out.println("FAIL java/" + label + "/" + name + ": " + why.replace('\n', ' '));
            t.printStackTrace(System.err);
            failed++;
        }
        System.out.flush();
    }

    static void check(boolean ok, String fmt, Object... args) {
        if (!ok) {
            throw new AssertionError(String.format(fmt, args));
        }
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String show(byte[] bytes) {
        return bytes == null ? "null" : new String(bytes, StandardCharsets.UTF_8);
    }

    static String show(Iterable<Header> headers) {
        StringBuilder sb = new StringBuilder("[");
        for (Header h : headers) {
            sb.append(h.key()).append('=').append(show(h.value())).append(' ');
        }
        return sb.append(']').toString();
    }

    static boolean sameHeaders(List<Header> expected, Header[] got) {
        if (expected.size() != got.length) {
            return false;
        }
        for (int i = 0; i < got.length; i++) {
            if (!expected.get(i).key().equals(got[i].key()) || !Arrays.equals(expected.get(i).value(), got[i].value())) {
                return false;
            }
        }
        return true;
    }

    static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
        return Admin.create(p);
    }

    static KafkaConsumer<byte[], byte[]> consumer() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        // No group: assign() only, nothing committed.
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        // A position that is not where we put it must be an error, not a silent reset.
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
        return new KafkaConsumer<>(p);
    }

    /**
     * A group member subscribed to ".*": the broker lists __consumer_offsets as
     * internal, so the consumer (exclude.internal.topics, on by default) leaves
     * it out of the subscription, while the user topic is assigned and read.
     */
    static void regexSubscription(Admin admin, String run) throws Exception {
        String topic = "java-regex-" + run;
        admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(60, TimeUnit.SECONDS);
        Map<Integer, List<Expected>> produced = produce(topic, "none", System.currentTimeMillis());
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, "java-regex-" + run);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
        Set<String> values = new HashSet<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            c.subscribe(Pattern.compile(".*"));
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (values.size() < RECORDS || !c.assignment().containsAll(partitions(topic))) {
                check(System.nanoTime() < deadline, "timed out: %d of %d records, assignment %s",
                        values.size(), RECORDS, c.assignment());
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    if (r.topic().equals(topic)) {
                        values.add(show(r.value()));
                    }
                }
                for (TopicPartition tp : c.assignment()) {
                    check(!tp.topic().startsWith("__"), "assigned the internal %s: %s", tp, c.assignment());
                }
                check(!c.subscription().contains("__consumer_offsets"), "subscribed to __consumer_offsets: %s",
                        c.subscription());
            }
        }
        for (List<Expected> part : produced.values()) {
            for (Expected e : part) {
                check(values.contains(show(e.value())), "%s never consumed", show(e.value()));
            }
        }
        // Listed only when asked for internal topics (after the group's
        // FindCoordinator, which is when Kafka creates it).
        Set<String> listed = admin.listTopics().names().get(60, TimeUnit.SECONDS);
        Set<String> withInternal = admin.listTopics(new ListTopicsOptions().listInternal(true)).names()
                .get(60, TimeUnit.SECONDS);
        check(listed.contains(topic) && !listed.contains("__consumer_offsets"), "listTopics gave %s", listed);
        check(withInternal.contains("__consumer_offsets"), "listTopics(listInternal) lacks __consumer_offsets: %s",
                withInternal);
        admin.deleteTopics(List.of(topic)).all().get(60, TimeUnit.SECONDS);
    }

    /** Produces one codec's records; returns them by partition, in offset order. */
    static Map<Integer, List<Expected>> produce(String topic, String codec, long base) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false);
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60_000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        Map<Integer, List<Expected>> expected = new HashMap<>();
        for (int part = 0; part < PARTITIONS; part++) {
            expected.put(part, new ArrayList<>());
        }
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            List<Expected> order = new ArrayList<>();
            for (int burst = 0; burst < 2; burst++) {
                for (int n = burst * HALF; n < (burst + 1) * HALF; n++) {
                    for (int part = 0; part < PARTITIONS; part++) {
                        int i = n * PARTITIONS + part;
                        long ts = base + burst * BURST_GAP_MS + i;
                        List<Header> headers = List.of(
                                new RecordHeader("a", b("b")),
                                new RecordHeader("codec", b(codec)),
                                new RecordHeader("i", b(Integer.toString(i))));
                        Expected e = new Expected(part, n, b("key-" + i), b("value-" + i + "-" + codec), headers, ts);
                        expected.get(part).add(e);
                        order.add(e);
                        acks.add(producer.send(new ProducerRecord<>(topic, part, ts, e.key(), e.value(), headers)));
                    }
                }
                producer.flush();
            }
            for (int j = 0; j < acks.size(); j++) {
                RecordMetadata md = acks.get(j).get(60, TimeUnit.SECONDS);
                Expected e = order.get(j);
                check(md.partition() == e.partition() && md.offset() == e.offset(),
                        "record %s acknowledged at partition %d offset %d, expected partition %d offset %d",
                        show(e.value()), md.partition(), md.offset(), e.partition(), e.offset());
            }
        }
        return expected;
    }

    /** Reads each partition from `start` (offset per partition) until `want` records, then compares. */
    static void readAndCompare(KafkaConsumer<byte[], byte[]> c, Map<TopicPartition, List<Expected>> want) {
        Map<TopicPartition, List<ConsumerRecord<byte[], byte[]>>> got = new HashMap<>();
        for (TopicPartition tp : want.keySet()) {
            got.put(tp, new ArrayList<>());
        }
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (true) {
            boolean done = true;
            for (TopicPartition tp : want.keySet()) {
                done &= got.get(tp).size() >= want.get(tp).size();
            }
            if (done) {
                break;
            }
            check(System.nanoTime() < deadline, "timed out: got %s records, wanted %s", sizes(got), sizesE(want));
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                got.get(new TopicPartition(r.topic(), r.partition())).add(r);
            }
        }
        for (TopicPartition tp : want.keySet()) {
            List<Expected> exp = want.get(tp);
            List<ConsumerRecord<byte[], byte[]>> g = got.get(tp);
            check(g.size() == exp.size(), "%s: got %d records, expected %d", tp, g.size(), exp.size());
            for (int i = 0; i < exp.size(); i++) {
                Expected e = exp.get(i);
                ConsumerRecord<byte[], byte[]> r = g.get(i);
                Header[] hs = r.headers().toArray();
                boolean same = r.offset() == e.offset()
                        && Arrays.equals(r.key(), e.key())
                        && Arrays.equals(r.value(), e.value())
                        && sameHeaders(e.headers(), hs)
                        && r.timestamp() == e.timestamp()
                        && r.timestampType() == TimestampType.CREATE_TIME;
                check(same, "%s record #%d: got offset %d key %s value %s headers %s ts %d (%s); "
                                + "expected offset %d key %s value %s headers %s ts %d (CreateTime)",
                        tp, i, r.offset(), show(r.key()), show(r.value()), show(Arrays.asList(hs)), r.timestamp(),
                        r.timestampType(), e.offset(), show(e.key()), show(e.value()), show(e.headers()),
                        e.timestamp());
            }
        }
    }

    static Map<TopicPartition, Integer> sizes(Map<TopicPartition, List<ConsumerRecord<byte[], byte[]>>> m) {
        Map<TopicPartition, Integer> out = new HashMap<>();
        m.forEach((k, v) -> out.put(k, v.size()));
        return out;
    }

    static Map<TopicPartition, Integer> sizesE(Map<TopicPartition, List<Expected>> m) {
        Map<TopicPartition, Integer> out = new HashMap<>();
        m.forEach((k, v) -> out.put(k, v.size()));
        return out;
    }

    static List<TopicPartition> partitions(String topic) {
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            tps.add(new TopicPartition(topic, p));
        }
        return tps;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: CompatTest <bootstrap host:port> <label>");
            System.exit(2);
        }
        bootstrap = args[0];
        label = args[1];
        String run = UUID.randomUUID().toString().substring(0, 8);
        Map<String, String> topics = new HashMap<>();
        for (String codec : CODECS) {
            topics.put(codec, "java-" + codec + "-" + run);
        }

        try (Admin admin = admin()) {
            scenario("admin/create-topics-3-partitions", () -> {
                List<NewTopic> nts = new ArrayList<>();
                for (String t : topics.values()) {
                    nts.add(new NewTopic(t, PARTITIONS, (short) 1));
                }
                admin.createTopics(nts).all().get(60, TimeUnit.SECONDS);
                Map<String, TopicDescription> d = admin.describeTopics(topics.values()).allTopicNames()
                        .get(60, TimeUnit.SECONDS);
                for (String t : topics.values()) {
                    check(d.containsKey(t), "describeTopics lacks %s", t);
                    check(d.get(t).partitions().size() == PARTITIONS, "%s has %d partitions",
                            t, d.get(t).partitions().size());
                }
                // Produce once every partition has a leader: a send retried while the
                // topic settles may be reordered (idempotence is off).
                long deadline = System.nanoTime() + TIMEOUT.toNanos();
                while (true) {
                    boolean led = true;
                    for (TopicDescription td : admin.describeTopics(topics.values()).allTopicNames()
                            .get(60, TimeUnit.SECONDS).values()) {
                        led &= td.partitions().stream().allMatch(p -> p.leader() != null && p.leader().id() >= 0);
                    }
                    if (led) {
                        break;
                    }
                    check(System.nanoTime() < deadline, "partitions without a leader after %s", TIMEOUT);
                    Thread.sleep(200);
                }
            });

            long base = System.currentTimeMillis() - 600_000;
            for (String codec : CODECS) {
                String topic = topics.get(codec);
                Map<Integer, List<Expected>> expected = new HashMap<>();
                scenario(codec + "/produce", () -> expected.putAll(produce(topic, codec, base)));
                if (expected.isEmpty()) {
                    // Nothing to compare with; the read scenarios still count, as failures.
                    for (String s : new String[] {"from-beginning", "from-offset", "from-timestamp", "offsets-for-times-exact"}) {
                        scenario(codec + "/" + s, () -> check(false, "produce failed"));
                    }
                    continue;
                }
                scenario(codec + "/from-beginning", () -> {
                    try (KafkaConsumer<byte[], byte[]> c = consumer()) {
                        List<TopicPartition> tps = partitions(topic);
                        c.assign(tps);
                        c.seekToBeginning(tps);
                        Map<TopicPartition, Long> begin = c.beginningOffsets(tps);
                        Map<TopicPartition, Long> end = c.endOffsets(tps);
                        Map<TopicPartition, List<Expected>> want = new HashMap<>();
                        for (TopicPartition tp : tps) {
                            check(begin.get(tp) == 0L, "%s beginning offset %d", tp, begin.get(tp));
                            check(end.get(tp) == PER_PARTITION, "%s end offset %d, expected %d",
                                    tp, end.get(tp), PER_PARTITION);
                            want.put(tp, expected.get(tp.partition()));
                        }
                        readAndCompare(c, want);
                    }
                });
                scenario(codec + "/from-offset", () -> {
                    try (KafkaConsumer<byte[], byte[]> c = consumer()) {
                        List<TopicPartition> tps = partitions(topic);
                        c.assign(tps);
                        Map<TopicPartition, List<Expected>> want = new HashMap<>();
                        for (TopicPartition tp : tps) {
                            // A different start in each partition.
                            int from = 17 + 31 * tp.partition();
                            c.seek(tp, from);
                            List<Expected> all = expected.get(tp.partition());
                            want.put(tp, all.subList(from, all.size()));
                        }
                        readAndCompare(c, want);
                    }
                });
                scenario(codec + "/from-timestamp", () -> {
                    try (KafkaConsumer<byte[], byte[]> c = consumer()) {
                        List<TopicPartition> tps = partitions(topic);
                        c.assign(tps);
                        Map<TopicPartition, Long> query = new HashMap<>();
                        for (TopicPartition tp : tps) {
                            query.put(tp, base + BURST_GAP_MS / 2); // between the bursts
                        }
                        Map<TopicPartition, OffsetAndTimestamp> found = c.offsetsForTimes(query);
                        Map<TopicPartition, List<Expected>> want = new HashMap<>();
                        for (TopicPartition tp : tps) {
                            List<Expected> all = expected.get(tp.partition());
                            OffsetAndTimestamp ot = found.get(tp);
                            check(ot != null, "%s: offsetsForTimes found nothing", tp);
                            check(ot.offset() == HALF, "%s: offsetsForTimes gave offset %d, expected %d",
                                    tp, ot.offset(), HALF);
                            c.seek(tp, ot.offset());
                            want.put(tp, all.subList(HALF, all.size()));
                        }
                        // Past the last record there is no offset: Kafka answers null.
                        Map<TopicPartition, OffsetAndTimestamp> none =
                                c.offsetsForTimes(Map.of(tps.get(0), base + 10 * BURST_GAP_MS));
                        check(none.get(tps.get(0)) == null, "offsetsForTimes after the last record gave %s",
                                none.get(tps.get(0)));
                        readAndCompare(c, want);
                    }
                });
                scenario(codec + "/offsets-for-times-exact", () -> {
                    // Kafka's broker answers with the first record at or after the time
                    // and that record's timestamp, searching inside compressed batches too.
                    try (KafkaConsumer<byte[], byte[]> c = consumer()) {
                        TopicPartition tp = new TopicPartition(topic, 1);
                        List<Expected> all = expected.get(1);
                        for (int i : new int[] {1, 37, HALF, HALF + 41, PER_PARTITION - 1}) {
                            OffsetAndTimestamp ot = c.offsetsForTimes(Map.of(tp, all.get(i).timestamp())).get(tp);
                            check(ot != null && ot.offset() == i && ot.timestamp() == all.get(i).timestamp(),
                                    "%s: offsetsForTimes(ts of offset %d = %d) gave %s", tp, i, all.get(i).timestamp(), ot);
                        }
                    }
                });
            }

            scenario("admin/list-topics", () -> {
                Set<String> names = admin.listTopics().names().get(60, TimeUnit.SECONDS);
                check(names.containsAll(topics.values()), "listTopics lacks some of %s: %s", topics.values(), names);
            });
            scenario("admin/delete-topics", () -> {
                Collection<String> ts = topics.values();
                admin.deleteTopics(ts).all().get(60, TimeUnit.SECONDS);
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (true) {
                    Set<String> left = new HashSet<>(admin.listTopics().names().get(60, TimeUnit.SECONDS));
                    left.retainAll(ts);
                    if (left.isEmpty()) {
                        break;
                    }
                    check(System.nanoTime() < deadline, "still listed 10 s after deleteTopics: %s", left);
                    Thread.sleep(200);
                }
            });
            scenario("group/regex-subscription-skips-internal-topics", () -> regexSubscription(admin, run));
        }
        System.err.println("java/" + label + ": " + passed + " scenarios passed, " + failed + " failed");
        System.exit(failed > 0 ? 1 : 0);
    }
}
