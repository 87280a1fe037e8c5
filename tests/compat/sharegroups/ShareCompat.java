/*
 * Share groups (KIP-932, queues) with the Java client (kafka-clients 4.4.0),
 * for tests/compat/sharegroups.sh, which compiles it with javac against
 * $STREAMHOUSE_CACHE/java/lib and runs one mode per call:
 *
 *   ShareCompat setup BOOTSTRAP TOPIC PARTITIONS GROUP
 *       Creates TOPIC and sets the group config share.auto.offset.reset=
 *       earliest on GROUP (IncrementalAlterConfigs, resource type GROUP)
 *       before any member joins, so the group starts at offset 0; reads it
 *       back with DescribeConfigs. Prints "GROUPCONFIG OK ..." or
 *       "GROUPCONFIG FAIL ..." for that, and OK once the topic exists.
 *   ShareCompat produce BOOTSTRAP TOPIC PARTITIONS N OUT [GROUP:K]
 *       With GROUP:K, first await-members GROUP K. Produces N records,
 *       record i to partition i % PARTITIONS (acks=all, idempotent, small
 *       batches), and writes each one's "partition offset" to OUT. Prints
 *       "LEADERS 0=host:port 1=..." (each partition's leader).
 *   ShareCompat await-members BOOTSTRAP GROUP K
 *       Until (at most 30 s) DescribeShareGroups shows GROUP Stable with K
 *       members, each assigned a partition. Prints "COORDINATOR host:port
 *       id" (the group's coordinator) and "OK <assignments>".
 *   ShareCompat consume BOOTSTRAP TOPIC GROUP NAME STOPFILE [--max-poll M]
 *           [--sleep-ms S] [--hold]
 *       A KafkaShareConsumer (share.acknowledgement.mode=explicit,
 *       client.id NAME). Each poll: "R partition offset deliveryCount
 *       millis" per record, acknowledge(record, ACCEPT) each, commitSync(),
 *       sleep S ms. The acknowledgement commit callback prints "A partition offset"
 *       for each offset acknowledged without an error and "X partition
 *       offset Exception" for the others. Stops when STOPFILE exists (or
 *       after 150 s): close() (which delivers the last callbacks), then
 *       "OK ..." or "FAIL ...". With --hold: after its first non-empty poll
 *       it prints its records, "HELD n", and acknowledges nothing, sleeping
 *       until it is killed (or STOPFILE / 150 s).
 *   ShareCompat drain BOOTSTRAP TOPIC GROUP SECONDS
 *       A consumer of GROUP polls for SECONDS, releasing (RELEASE) what it
 *       gets: FAIL if it got anything (records left undelivered).
 *   ShareCompat verify PRODUCED [--held FILE [--killed-at MILLIS]]
 *           [--lenient-failed] [--shared] NAME=FILE...
 *       Checks the consumers' outputs: every produced (partition, offset)
 *       acknowledged exactly once over all the consumers, nothing else
 *       acknowledged, none twice. --held FILE: each record FILE (the held
 *       consumer's output) received was acknowledged by another consumer at
 *       a delivery count >= 2 (--killed-at: when FILE's consumer was
 *       killed, to print how long the redelivery took). --shared: some
 *       partition's records were acknowledged by two consumers or more. --lenient-failed: a record
 *       never acknowledged without an error is allowed when an
 *       acknowledgement of it failed (its outcome unknown: the broker that
 *       answered was killed), provided drain found nothing. Prints "OK
 *       <how the records split>" or "FAIL <reason>".
 *
 * Every mode prints "OK detail" or "FAIL reason" last and exits 0 or 1.
 */

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.ShareMemberDescription;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class ShareCompat {
    static final long HOLD_MAX_MS = 150_000;

    static final class Failure extends Exception {
        Failure(String why) {
            super(why);
        }
    }

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: ShareCompat setup|produce|await-members|consume|drain|verify ...");
            System.exit(2);
        }
        try {
            String detail = switch (args[0]) {
                case "setup" -> setup(args[1], args[2], Integer.parseInt(args[3]), args[4]);
                case "produce" -> produce(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                        Path.of(args[5]), args.length > 6 ? args[6] : null);
                case "await-members" -> awaitMembers(args[1], args[2], Integer.parseInt(args[3]));
                case "consume" -> consume(args);
                case "drain" -> drain(args[1], args[2], args[3], Integer.parseInt(args[4]));
                case "verify" -> verify(args);
                default -> throw new Failure("unknown mode " + args[0]);
            };
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

    static Admin admin(String boot) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        return Admin.create(p);
    }

    static String setup(String boot, String topic, int partitions, String group) throws Exception {
        try (Admin admin = admin(boot)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
            long deadline = System.currentTimeMillis() + 30000;
            while (true) {
                try {
                    int n = admin.describeTopics(List.of(topic)).allTopicNames().get(10, TimeUnit.SECONDS)
                        .get(topic).partitions().size();
                    if (n == partitions) break;
                } catch (ExecutionException e) {
                    // not yet in the metadata
                }
                if (System.currentTimeMillis() > deadline) throw new Failure("topic " + topic + " not in the metadata after 30 s");
                Thread.sleep(100);
            }
            // The group config, reported on a line of its own ("GROUPCONFIG
            // OK|FAIL ..."): a broker may start share groups at the earliest
            // offset by a setting of its own instead.
            ConfigResource res = new ConfigResource(ConfigResource.Type.GROUP, group);
            String config;
            try {
                admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                        new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET))))
                    .all().get(30, TimeUnit.SECONDS);
                ConfigEntry ce = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res)
                    .get("share.auto.offset.reset");
                String got = ce == null ? "absent" : ce.value();
                config = got.equals("earliest")
                    ? "OK IncrementalAlterConfigs GROUP " + group + " share.auto.offset.reset=earliest, DescribeConfigs reads it back"
                    : "FAIL IncrementalAlterConfigs GROUP " + group + " share.auto.offset.reset=earliest succeeded, DescribeConfigs reads " + got;
            } catch (ExecutionException e) {
                config = "FAIL IncrementalAlterConfigs/DescribeConfigs GROUP " + group + " share.auto.offset.reset=earliest: " + e.getCause();
            }
            System.out.println("GROUPCONFIG " + config);
            return "topic " + topic + " (" + partitions + " partitions)";
        }
    }

    static String produce(String boot, String topic, int partitions, int n, Path out, String await) throws Exception {
        String awaited = "";
        if (await != null) {
            int colon = await.lastIndexOf(':');
            awaited = awaitMembers(boot, await.substring(0, colon), Integer.parseInt(await.substring(colon + 1))) + "; ";
        }
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        // Batches of some 40 records: the share-partition's acquisitions
        // follow batches, so small ones let several consumers take turns.
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, 2048);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        int[] per = new int[partitions];
        List<String> lines = new ArrayList<>(n);
        try (KafkaProducer<String, String> prod = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            List<Future<RecordMetadata>> fs = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                fs.add(prod.send(new ProducerRecord<>(topic, i % partitions, "k" + i, "value-" + i)));
            }
            prod.flush();
            for (Future<RecordMetadata> f : fs) {
                RecordMetadata md = f.get(30, TimeUnit.SECONDS);
                per[md.partition()]++;
                lines.add(md.partition() + " " + md.offset());
            }
        }
        Files.write(out, lines, StandardCharsets.UTF_8);
        try (Admin admin = admin(boot)) {
            StringBuilder leaders = new StringBuilder("LEADERS");
            for (var pi : admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic).partitions()) {
                leaders.append(' ').append(pi.partition()).append('=')
                    .append(pi.leader() == null ? "none" : pi.leader().host() + ":" + pi.leader().port());
            }
            System.out.println(leaders);
        }
        StringBuilder sb = new StringBuilder(awaited + "produced " + n + " (");
        for (int i = 0; i < partitions; i++) sb.append(i == 0 ? "" : ", ").append("p").append(i).append("=").append(per[i]);
        return sb.append(")").toString();
    }

    static String awaitMembers(String boot, String group, int k) throws Exception {
        try (Admin admin = admin(boot)) {
            long deadline = System.currentTimeMillis() + 30000;
            String last = "nothing";
            while (true) {
                try {
                    ShareGroupDescription d = admin.describeShareGroups(List.of(group)).all()
                        .get(10, TimeUnit.SECONDS).get(group);
                    last = describe(d);
                    boolean assigned = d.members().stream()
                        .allMatch(m -> !m.assignment().topicPartitions().isEmpty());
                    if (d.groupState() == GroupState.STABLE && d.members().size() == k && assigned) {
                        System.out.println("COORDINATOR " + d.coordinator().host() + ":" + d.coordinator().port()
                            + " " + d.coordinator().id());
                        return last;
                    }
                } catch (ExecutionException e) {
                    last = "DescribeShareGroups: " + e.getCause();
                }
                if (System.currentTimeMillis() > deadline) {
                    throw new Failure("group " + group + " not Stable with " + k
                        + " assigned members within 30 s; last seen: " + last);
                }
                Thread.sleep(200);
            }
        }
    }

    static String describe(ShareGroupDescription d) {
        List<String> ms = new ArrayList<>();
        for (ShareMemberDescription m : d.members()) {
            TreeSet<String> tps = new TreeSet<>();
            for (TopicPartition tp : m.assignment().topicPartitions()) tps.add("p" + tp.partition());
            ms.add(m.clientId() + "=" + String.join("+", tps));
        }
        ms.sort(null);
        return d.groupState() + " epoch " + d.groupEpoch() + ", " + d.members().size() + " members "
            + String.join(" ", ms);
    }

    static Properties consumerProps(String boot, String group, String name, int maxPoll) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, name);
        p.put("share.acknowledgement.mode", "explicit");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, maxPoll);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        return p;
    }

    static String consume(String[] args) throws Exception {
        String boot = args[1], topic = args[2], group = args[3], name = args[4];
        File stop = new File(args[5]);
        int maxPoll = 500;
        long sleepMs = 0;
        boolean hold = false;
        for (int i = 6; i < args.length; i++) {
            switch (args[i]) {
                case "--max-poll" -> maxPoll = Integer.parseInt(args[++i]);
                case "--sleep-ms" -> sleepMs = Long.parseLong(args[++i]);
                case "--hold" -> hold = true;
                default -> throw new Failure("unknown option " + args[i]);
            }
        }
        long deadline = System.currentTimeMillis() + HOLD_MAX_MS;
        long[] acked = {0}, failed = {0};
        long received = 0, polls = 0;
        Map<String, Long> errors = new TreeMap<>();
        KafkaShareConsumer<String, String> c = new KafkaShareConsumer<>(consumerProps(boot, group, name, maxPoll),
            new StringDeserializer(), new StringDeserializer());
        try {
            c.setAcknowledgementCommitCallback((offsets, exception) -> {
                StringBuilder sb = new StringBuilder();
                offsets.forEach((tip, set) -> {
                    for (long o : new TreeSet<>(set)) {
                        if (exception == null) {
                            sb.append("A ").append(tip.partition()).append(' ').append(o).append('\n');
                            acked[0]++;
                        } else {
                            sb.append("X ").append(tip.partition()).append(' ').append(o).append(' ')
                                .append(exception.getClass().getSimpleName()).append('\n');
                            failed[0]++;
                        }
                    }
                });
                if (exception != null) errors.merge(exception.getClass().getSimpleName(), 1L, Long::sum);
                System.out.print(sb);
                System.out.flush();
            });
            c.subscribe(List.of(topic));
            while (!stop.exists() && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(200));
                polls++;
                if (recs.isEmpty()) continue;
                StringBuilder sb = new StringBuilder();
                long now = System.currentTimeMillis();
                for (ConsumerRecord<String, String> r : recs) {
                    sb.append("R ").append(r.partition()).append(' ').append(r.offset()).append(' ')
                        .append(r.deliveryCount().map(String::valueOf).orElse("none")).append(' ').append(now).append('\n');
                    received++;
                }
                System.out.print(sb);
                System.out.flush();
                if (hold) {
                    System.out.println("HELD " + recs.count());
                    System.out.flush();
                    while (!stop.exists() && System.currentTimeMillis() < deadline) Thread.sleep(100);
                    break;
                }
                for (ConsumerRecord<String, String> r : recs) c.acknowledge(r, AcknowledgeType.ACCEPT);
                Map<?, Optional<org.apache.kafka.common.KafkaException>> res = c.commitSync();
                for (Optional<org.apache.kafka.common.KafkaException> e : res.values()) {
                    e.ifPresent(x -> errors.merge("commitSync:" + x.getClass().getSimpleName(), 1L, Long::sum));
                }
                if (sleepMs > 0) Thread.sleep(sleepMs);
            }
        } finally {
            c.close(Duration.ofSeconds(20));
        }
        System.out.println("CLOSED");
        return name + " polls " + polls + ", received " + received + ", acknowledged " + acked[0]
            + (failed[0] > 0 ? ", acknowledgements failed " + failed[0] : "")
            + (errors.isEmpty() ? "" : ", errors " + errors);
    }

    static String drain(String boot, String topic, String group, int seconds) throws Exception {
        // partition:offset -> the highest delivery count seen (a released
        // record comes back at once, one delivery count up)
        Map<String, Integer> got = new TreeMap<>();
        try (KafkaShareConsumer<String, String> c = new KafkaShareConsumer<>(
                consumerProps(boot, group, "drain", 500), new StringDeserializer(), new StringDeserializer())) {
            c.subscribe(List.of(topic));
            long end = System.currentTimeMillis() + seconds * 1000L;
            while (System.currentTimeMillis() < end) {
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : recs) {
                    got.merge(r.partition() + ":" + r.offset(), (int) r.deliveryCount().orElse((short) -1), Math::max);
                    // released at once, so that nothing waits on this consumer
                    c.acknowledge(r, AcknowledgeType.RELEASE);
                }
                if (!recs.isEmpty()) c.commitSync();
            }
        }
        if (!got.isEmpty()) {
            List<String> some = new ArrayList<>();
            for (Map.Entry<String, Integer> e : got.entrySet()) {
                if (some.size() == 30) break;
                some.add(e.getKey() + "(delivery count up to " + e.getValue() + ")");
            }
            throw new Failure(got.size() + " records still available to the group after the run: " + String.join(" ", some));
        }
        return "0 records available to a fresh member in " + seconds + " s";
    }

    /** One consumer's output. */
    static final class Out {
        final String name;
        final Map<String, Integer> lastDc = new HashMap<>();   // p:o -> delivery count when last received
        final Map<String, Integer> ackDc = new LinkedHashMap<>(); // p:o acked -> delivery count then
        final List<String> acks = new ArrayList<>();
        final Set<String> failed = new TreeSet<>();
        final Set<String> received = new HashSet<>();
        final Map<String, Long> redeliveredAt = new HashMap<>(); // p:o -> when first received at delivery count >= 2
        long firstAt = 0;  // when the first record was received
        String last = "";

        Out(String name, Path file) throws IOException {
            this.name = name;
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                String[] w = line.split(" ");
                if (w.length >= 3 && (w[0].equals("R") || w[0].equals("A") || w[0].equals("X"))) {
                    String key = w[1] + ":" + w[2];
                    switch (w[0]) {
                        case "R" -> {
                            int dc = w.length > 3 && !w[3].equals("none") ? Integer.parseInt(w[3]) : -1;
                            lastDc.put(key, dc);
                            received.add(key);
                            if (w.length > 4 && firstAt == 0) firstAt = Long.parseLong(w[4]);
                            if (dc >= 2 && w.length > 4) redeliveredAt.putIfAbsent(key, Long.parseLong(w[4]));
                        }
                        case "A" -> {
                            acks.add(key);
                            ackDc.put(key, lastDc.getOrDefault(key, -1));
                        }
                        default -> failed.add(key);
                    }
                } else if (!line.isBlank()) {
                    last = line;
                }
            }
        }
    }

    static String verify(String[] args) throws Exception {
        Path produced = Path.of(args[1]);
        Path held = null;
        boolean lenient = false, shared = false;
        long killedAt = 0;
        List<Out> outs = new ArrayList<>();
        for (int i = 2; i < args.length; i++) {
            switch (args[i]) {
                case "--held" -> held = Path.of(args[++i]);
                case "--lenient-failed" -> lenient = true;
                case "--shared" -> shared = true;
                case "--killed-at" -> killedAt = Long.parseLong(args[++i]);
                default -> {
                    int eq = args[i].indexOf('=');
                    outs.add(new Out(args[i].substring(0, eq), Path.of(args[i].substring(eq + 1))));
                }
            }
        }
        Set<String> want = new TreeSet<>();
        for (String line : Files.readAllLines(produced, StandardCharsets.UTF_8)) {
            String[] w = line.trim().split(" ");
            if (w.length == 2) want.add(w[0] + ":" + w[1]);
        }
        if (want.isEmpty()) throw new Failure("no produced records in " + produced);
        Map<String, List<String>> ackedBy = new HashMap<>();
        Set<String> failedAny = new HashSet<>();
        for (Out o : outs) {
            for (String k : o.acks) ackedBy.computeIfAbsent(k, x -> new ArrayList<>()).add(o.name);
            failedAny.addAll(o.failed);
        }
        List<String> twice = new ArrayList<>(), unknown = new ArrayList<>(), missing = new ArrayList<>();
        List<String> indeterminate = new ArrayList<>();
        for (Map.Entry<String, List<String>> e : ackedBy.entrySet()) {
            if (!want.contains(e.getKey())) unknown.add(e.getKey());
            if (e.getValue().size() > 1) twice.add(e.getKey() + " by " + e.getValue());
        }
        for (String k : want) {
            if (ackedBy.containsKey(k)) continue;
            if (lenient && failedAny.contains(k)) indeterminate.add(k);
            else missing.add(k);
        }
        twice.sort(null);
        unknown.sort(null);
        StringBuilder why = new StringBuilder();
        if (!twice.isEmpty()) why.append(twice.size()).append(" acknowledged more than once: ").append(head(twice)).append("; ");
        if (!unknown.isEmpty()) why.append(unknown.size()).append(" acknowledged but never produced: ").append(head(unknown)).append("; ");
        if (!missing.isEmpty()) {
            why.append(missing.size()).append(" of ").append(want.size()).append(" never acknowledged: ").append(head(missing));
            List<String> seen = new ArrayList<>();
            for (String k : missing.subList(0, Math.min(5, missing.size()))) {
                for (Out o : outs) {
                    if (o.received.contains(k)) seen.add(k + " received by " + o.name + (o.failed.contains(k) ? " (ack failed)" : ""));
                }
            }
            if (!seen.isEmpty()) why.append(" [").append(String.join(", ", seen)).append("]");
            why.append("; ");
        }
        // Who acknowledged what, per partition.
        TreeMap<String, TreeMap<String, Integer>> split = new TreeMap<>();
        for (Out o : outs) {
            for (String k : o.acks) {
                String p = "p" + k.substring(0, k.indexOf(':'));
                split.computeIfAbsent(o.name, x -> new TreeMap<>()).merge(p, 1, Integer::sum);
            }
        }
        Map<String, Integer> sharers = new TreeMap<>();
        for (Map<String, Integer> m : split.values()) for (String p : m.keySet()) sharers.merge(p, 1, Integer::sum);
        boolean anyShared = sharers.values().stream().anyMatch(v -> v >= 2);
        if (shared && !anyShared) why.append("no partition's records were acknowledged by two consumers or more: ").append(split).append("; ");
        String heldDetail = "";
        if (held != null) {
            Out h = new Out("held", held);
            if (h.received.isEmpty()) why.append("the held consumer received nothing; ");
            if (!h.acks.isEmpty()) why.append("the held consumer acknowledged ").append(h.acks.size()).append(" records; ");
            List<String> low = new ArrayList<>();
            int minDc = Integer.MAX_VALUE, maxDc = 0;
            for (String k : new TreeSet<>(h.received)) {
                for (Out o : outs) {
                    Integer dc = o.ackDc.get(k);
                    if (dc == null) continue;
                    minDc = Math.min(minDc, dc);
                    maxDc = Math.max(maxDc, dc);
                    if (dc < 2) low.add(k + " by " + o.name + " at delivery count " + dc);
                }
            }
            if (!low.isEmpty()) why.append(low.size()).append(" of the held consumer's ").append(h.received.size())
                .append(" records acknowledged at delivery count < 2: ").append(head(low)).append("; ");
            long firstDc1 = outs.stream().flatMap(o -> o.ackDc.entrySet().stream())
                .filter(e -> !h.received.contains(e.getKey()) && e.getValue() == 1).count();
            long first = Long.MAX_VALUE, lastAt = 0;
            for (String k : h.received) {
                for (Out o : outs) {
                    Long at = o.redeliveredAt.get(k);
                    if (at == null) continue;
                    first = Math.min(first, at);
                    lastAt = Math.max(lastAt, at);
                }
            }
            heldDetail = "; the killed consumer's " + h.received.size() + " records redelivered and acknowledged at delivery count "
                + (minDc == maxDc ? String.valueOf(minDc) : minDc + ".." + maxDc) + " (" + firstDc1 + " others at 1)"
                + (killedAt > 0 && lastAt > 0 ? ", redelivered " + (first - killedAt) + ".." + (lastAt - killedAt)
                    + " ms after the SIGKILL (acquired " + (killedAt - h.firstAt) + " ms before it)" : "");
        }
        if (why.length() > 0) throw new Failure(why.substring(0, why.length() - 2));
        int redelivered = 0;
        for (Out o : outs) for (int dc : o.ackDc.values()) if (dc > 1) redelivered++;
        return want.size() + " records, each acknowledged once" + (indeterminate.isEmpty() ? ""
                : " (" + indeterminate.size() + " whose acknowledgement failed when a broker was killed never acknowledged again"
                    + " and not available after: " + head(indeterminate) + ")")
            + "; split " + split + "; partitions shared by " + sharers
            + "; acknowledged at delivery count > 1: " + redelivered + heldDetail;
    }

    static String head(Collection<String> xs) {
        List<String> l = new ArrayList<>(xs);
        return l.size() <= 10 ? String.join(" ", l) : String.join(" ", l.subList(0, 10)) + " ...";
    }
}
