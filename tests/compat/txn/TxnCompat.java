/*
 * Transactions with the Java client (kafka-clients 4.4.0), for
 * tests/compat/transactions.sh, which compiles it with javac against
 * $STREAMHOUSE_CACHE/java/lib and runs one mode per call:
 *
 *   TxnCompat commit-abort BOOTSTRAP TOPIC TXID
 *       A 3-partition topic; 20 transactions of 50 records each, the even
 *       ones committed, the odd ones aborted; transaction t writes to
 *       partitions t%3 and (t+1)%3, or only t%3 when t%4 == 3. Then:
 *       read_committed reads every committed record exactly once and no
 *       aborted one, reaching each partition's end; read_uncommitted reads
 *       all 1,000; each partition's end offset is its records plus one
 *       marker per transaction that touched it, and the offsets missing from
 *       read_uncommitted are exactly those just after each transaction's
 *       last record in the partition (where its marker sits).
 *   TxnCompat zombie BOOTSTRAP TOPIC TXID
 *       Producer A begins a transaction and sends 10 records; producer B
 *       with the same transactional.id calls initTransactions; A's
 *       commitTransaction fails. B begins and sends 10, C (the same id)
 *       calls initTransactions, B's next send and its commitTransaction
 *       fail. C commits 10 records of its own: read_committed reads C's 10
 *       only, read_uncommitted also A's and B's. Prints the exception
 *       classes ("A commitTransaction=X B send=Y B commitTransaction=Z",
 *       each a chain outermost first joined by '<'), which the caller checks.
 *   TxnCompat hold BOOTSTRAP TOPIC TXID
 *       Creates a 2-partition TOPIC, begins a transaction, sends a record to
 *       each partition, flushes, prints "HELD <producerId>" and sleeps until
 *       killed (at most 150 s), the transaction left Ongoing.
 *
 * commit-abort and zombie print "OK <detail>" or "FAIL <reason>" last and
 * exit 0 or 1. Everything has a deadline: nothing waits more than 30 s.
 */

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class TxnCompat {
    static final Duration TIMEOUT = Duration.ofSeconds(30);
    static final int TXNS = 20;
    static final int PER_TXN = 50;
    static final int PARTITIONS = 3;

    static final class Failure extends Exception {
        Failure(String why) {
            super(why);
        }
    }

    /** One record as read back. */
    record Got(int partition, long offset, String value) {}

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: TxnCompat commit-abort|zombie|hold BOOTSTRAP TOPIC TXID");
            System.exit(2);
        }
        String mode = args[0], boot = args[1], topic = args[2], txid = args[3];
        try {
            String detail;
            switch (mode) {
                case "commit-abort" -> detail = commitAbort(boot, topic, txid);
                case "zombie" -> detail = zombie(boot, topic, txid);
                case "hold" -> {
                    hold(boot, topic, txid);
                    return;
                }
                default -> throw new Failure("unknown mode " + mode);
            }
            System.out.println("OK " + detail);
            System.out.flush();
            System.exit(0);
        } catch (Failure f) {
            System.out.println("FAIL " + f.getMessage());
        } catch (Throwable t) {
            System.out.println("FAIL unexpected " + t);
            t.printStackTrace();
        }
        System.out.flush();
        System.exit(1);
    }

    static void createTopic(String boot, String topic, int partitions) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
            long deadline = System.currentTimeMillis() + 30000;
            while (true) {
                try {
                    int n = admin.describeTopics(List.of(topic)).allTopicNames().get(10, TimeUnit.SECONDS)
                        .get(topic).partitions().size();
                    if (n == partitions) return;
                } catch (ExecutionException e) {
                    // not yet in the metadata
                }
                if (System.currentTimeMillis() > deadline) throw new Failure("topic " + topic + " not in metadata with " + partitions + " partitions");
                Thread.sleep(200);
            }
        }
    }

    static KafkaProducer<String, String> producer(String boot, String txid) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txid);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    static KafkaConsumer<String, String> consumer(String boot, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    static List<TopicPartition> partitions(String topic, int n) {
        List<TopicPartition> tps = new ArrayList<>();
        for (int i = 0; i < n; i++) tps.add(new TopicPartition(topic, i));
        return tps;
    }

    /** The end offsets (read_uncommitted: high watermark; read_committed: LSO). */
    static Map<TopicPartition, Long> ends(String boot, List<TopicPartition> tps, String isolation) {
        try (KafkaConsumer<String, String> c = consumer(boot, isolation)) {
            return c.endOffsets(tps, TIMEOUT);
        }
    }

    /**
     * Every record from the start to each partition's end offset as this
     * isolation level sees it; fails unless the position reaches that end
     * within the timeout.
     */
    static List<Got> readAll(String boot, List<TopicPartition> tps, String isolation) throws Failure {
        List<Got> got = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(boot, isolation)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, TIMEOUT);
            long deadline = System.currentTimeMillis() + TIMEOUT.toMillis();
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) {
                    if (c.position(tp, TIMEOUT) < end.get(tp)) done = false;
                }
                if (done) break;
                if (System.currentTimeMillis() > deadline) {
                    Map<TopicPartition, Long> pos = new HashMap<>();
                    for (TopicPartition tp : tps) pos.put(tp, c.position(tp));
                    throw new Failure(isolation + " consumer stuck at " + pos + " below end offsets " + end
                        + " after " + TIMEOUT.toSeconds() + " s (" + got.size() + " records read)");
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    got.add(new Got(r.partition(), r.offset(), r.value()));
                }
            }
            // Anything beyond the end offsets would be a record of nobody's.
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(300))) {
                got.add(new Got(r.partition(), r.offset(), r.value()));
            }
        }
        return got;
    }

    /** Waits until the high watermarks are WANT (or the timeout), then returns them. */
    static Map<TopicPartition, Long> awaitEnds(String boot, List<TopicPartition> tps, Map<TopicPartition, Long> want)
            throws InterruptedException {
        long deadline = System.currentTimeMillis() + 15000;
        Map<TopicPartition, Long> hw;
        while (true) {
            hw = ends(boot, tps, "read_uncommitted");
            Map<TopicPartition, Long> lso = ends(boot, tps, "read_committed");
            if ((hw.equals(want) && lso.equals(want)) || System.currentTimeMillis() > deadline) return hw;
            Thread.sleep(300);
        }
    }

    static String commitAbort(String boot, String topic, String txid) throws Exception {
        createTopic(boot, topic, PARTITIONS);
        List<TopicPartition> tps = partitions(topic, PARTITIONS);
        TreeSet<String> committed = new TreeSet<>(), aborted = new TreeSet<>();
        // Per partition: data records, and the offset just after each
        // transaction's last record there (where its marker must sit).
        long[] records = new long[PARTITIONS];
        List<TreeSet<Long>> markers = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) markers.add(new TreeSet<>());
        try (KafkaProducer<String, String> prod = producer(boot, txid)) {
            prod.initTransactions();
            for (int t = 0; t < TXNS; t++) {
                boolean commit = t % 2 == 0;
                int[] parts = t % 4 == 3 ? new int[] {t % 3} : new int[] {t % 3, (t + 1) % 3};
                prod.beginTransaction();
                List<Future<RecordMetadata>> futures = new ArrayList<>();
                List<String> values = new ArrayList<>();
                for (int i = 0; i < PER_TXN; i++) {
                    String v = String.format("txn-%02d-%s-rec-%02d", t, commit ? "commit" : "abort", i);
                    values.add(v);
                    futures.add(prod.send(new ProducerRecord<>(topic, parts[i % parts.length], "k" + i, v)));
                }
                prod.flush();
                long[] last = new long[PARTITIONS];
                java.util.Arrays.fill(last, -1);
                for (int i = 0; i < PER_TXN; i++) {
                    RecordMetadata md = futures.get(i).get(30, TimeUnit.SECONDS);
                    records[md.partition()]++;
                    last[md.partition()] = Math.max(last[md.partition()], md.offset());
                }
                for (int p = 0; p < PARTITIONS; p++) {
                    if (last[p] >= 0) markers.get(p).add(last[p] + 1);
                }
                if (commit) {
                    prod.commitTransaction();
                    committed.addAll(values);
                } else {
                    prod.abortTransaction();
                    aborted.addAll(values);
                }
            }
        }

        Map<TopicPartition, Long> want = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) want.put(tps.get(p), records[p] + markers.get(p).size());
        Map<TopicPartition, Long> hw = awaitEnds(boot, tps, want);
        if (!hw.equals(want)) {
            throw new Failure("end offsets " + new TreeMap<>(byPartition(hw)) + ", want records + one marker per transaction "
                + new TreeMap<>(byPartition(want)) + " (records per partition " + java.util.Arrays.toString(records) + ")");
        }

        List<Got> rc = readAll(boot, tps, "read_committed");
        List<String> rcValues = new ArrayList<>();
        for (Got g : rc) rcValues.add(g.value());
        TreeSet<String> rcSet = new TreeSet<>(rcValues);
        if (rcValues.size() != rcSet.size()) {
            throw new Failure("read_committed read " + rcValues.size() + " records, " + rcSet.size() + " distinct: duplicates");
        }
        if (!rcSet.equals(committed)) {
            TreeSet<String> missing = new TreeSet<>(committed);
            missing.removeAll(rcSet);
            TreeSet<String> extra = new TreeSet<>(rcSet);
            extra.removeAll(committed);
            throw new Failure("read_committed read " + rcSet.size() + " of " + committed.size() + " committed records; missing "
                + first(missing) + "; not committed " + first(extra));
        }

        List<Got> ru = readAll(boot, tps, "read_uncommitted");
        TreeSet<String> all = new TreeSet<>(committed);
        all.addAll(aborted);
        TreeSet<String> ruSet = new TreeSet<>();
        List<TreeSet<Long>> seen = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) seen.add(new TreeSet<>());
        for (Got g : ru) {
            ruSet.add(g.value());
            seen.get(g.partition()).add(g.offset());
        }
        if (ru.size() != all.size() || !ruSet.equals(all)) {
            throw new Failure("read_uncommitted read " + ru.size() + " records (" + ruSet.size() + " distinct), want the "
                + all.size() + " committed and aborted ones");
        }
        StringBuilder gaps = new StringBuilder();
        for (int p = 0; p < PARTITIONS; p++) {
            TreeSet<Long> missing = new TreeSet<>();
            for (long o = 0; o < want.get(tps.get(p)); o++) {
                if (!seen.get(p).contains(o)) missing.add(o);
            }
            if (!missing.equals(markers.get(p))) {
                throw new Failure("partition " + p + ": offsets without a record " + missing
                    + ", want the marker offsets " + markers.get(p));
            }
            gaps.append(String.format(" p%d: %d records + %d markers at %s;", p, records[p], missing.size(), missing));
        }
        return TXNS + " transactions (" + committed.size() + " records committed, " + aborted.size()
            + " aborted); read_committed read the committed ones once each; end offsets " + new TreeMap<>(byPartition(hw))
            + ";" + gaps;
    }

    static Map<Integer, Long> byPartition(Map<TopicPartition, Long> m) {
        Map<Integer, Long> out = new HashMap<>();
        m.forEach((tp, v) -> out.put(tp.partition(), v));
        return out;
    }

    static String first(TreeSet<String> s) {
        List<String> l = new ArrayList<>(s);
        return l.size() <= 5 ? l.toString() : l.subList(0, 5) + " and " + (l.size() - 5) + " more";
    }

    /** The chain of exception classes of T, outermost first ("-" for none). */
    static String chain(Throwable t) {
        if (t == null) return "-";
        List<String> names = new ArrayList<>();
        for (Throwable c = t; c != null && names.size() < 5; c = c.getCause()) {
            names.add(c.getClass().getSimpleName());
            if (c.getCause() == c) break;
        }
        return String.join("<", names);
    }

    /** Sends "PREFIX-0".."PREFIX-9" to partition 0 of TOPIC and waits for their acks. */
    static void sendTen(KafkaProducer<String, String> p, String topic, String prefix) throws Exception {
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        for (int i = 0; i < 10; i++) fs.add(p.send(new ProducerRecord<>(topic, 0, null, prefix + "-" + i)));
        p.flush();
        for (Future<RecordMetadata> f : fs) f.get(30, TimeUnit.SECONDS);
    }

    /**
     * Three producers with one transactional.id, each fenced by the next's
     * initTransactions while its transaction is open: A then calls
     * commitTransaction straight away (the coordinator's EndTxn answer), B
     * sends once more first (the partition leader's Produce answer), then
     * commits. C commits its own ten records.
     */
    static String zombie(String boot, String topic, String txid) throws Exception {
        createTopic(boot, topic, 1);
        List<TopicPartition> tps = partitions(topic, 1);
        String aCommit, bSend, bCommit;
        List<KafkaProducer<String, String>> open = new ArrayList<>();
        try {
            KafkaProducer<String, String> a = producer(boot, txid);
            open.add(a);
            a.initTransactions();
            a.beginTransaction();
            sendTen(a, topic, "A");

            KafkaProducer<String, String> b = producer(boot, txid);
            open.add(b);
            b.initTransactions();
            aCommit = chain(commitError(a));

            b.beginTransaction();
            sendTen(b, topic, "B");
            KafkaProducer<String, String> c = producer(boot, txid);
            open.add(c);
            c.initTransactions();
            Throwable se = null;
            try {
                b.send(new ProducerRecord<>(topic, 0, null, "B-late")).get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                se = e.getCause();
            } catch (Exception e) {
                se = e;
            }
            bSend = chain(se);
            bCommit = chain(commitError(b));

            c.beginTransaction();
            sendTen(c, topic, "C");
            c.commitTransaction();
        } finally {
            for (KafkaProducer<String, String> p : open) p.close(Duration.ofSeconds(5));
        }

        List<String> rc = new ArrayList<>();
        for (Got g : readAll(boot, tps, "read_committed")) rc.add(g.value());
        List<String> wantC = new ArrayList<>();
        for (int i = 0; i < 10; i++) wantC.add("C-" + i);
        List<String> ru = new ArrayList<>();
        for (Got g : readAll(boot, tps, "read_uncommitted")) ru.add(g.value());
        int aInLog = 0, bInLog = 0;
        for (String v : ru) {
            if (v.startsWith("A-")) aInLog++;
            if (v.startsWith("B-")) bInLog++;
        }
        // The caller checks the exception classes against Kafka's.
        String detail = "A commitTransaction=" + aCommit + " B send=" + bSend + " B commitTransaction=" + bCommit
            + " read_committed=" + String.join(",", rc) + " A-in-log=" + aInLog + " B-in-log=" + bInLog;
        if (!rc.equals(wantC)) throw new Failure("read_committed read " + rc + ", want C-0..C-9 only; " + detail);
        if (aInLog != 10 || bInLog != 10) {
            throw new Failure("A's and B's 10 acknowledged records are not all in the log (read_uncommitted " + ru + "); " + detail);
        }
        return detail;
    }

    static Throwable commitError(KafkaProducer<String, String> p) {
        try {
            p.commitTransaction();
            return null;
        } catch (Exception e) {
            return e;
        }
    }

    static void hold(String boot, String topic, String txid) throws Exception {
        createTopic(boot, topic, 2);
        KafkaProducer<String, String> p = producer(boot, txid);
        p.initTransactions();
        p.beginTransaction();
        Future<RecordMetadata> f0 = p.send(new ProducerRecord<>(topic, 0, null, "held-0"));
        Future<RecordMetadata> f1 = p.send(new ProducerRecord<>(topic, 1, null, "held-1"));
        p.flush();
        f0.get(30, TimeUnit.SECONDS);
        f1.get(30, TimeUnit.SECONDS);
        System.out.println("HELD");
        System.out.flush();
        Thread.sleep(150_000);
        System.exit(0);
    }
}
