/*
 * The Java client (kafka-clients 4.4.0) against a cluster of agents that
 * share one catalog and store, while agents die and restart
 * (docs/design/cluster.md section 11, acceptance 2 and 3).
 *
 *   java -cp "CLASSES:$STREAMHOUSE_CACHE/java/lib/*" ClusterTest \
 *       BOOTSTRAP LABEL AGENTCTL CLUSTER_DIR LEASE_MS
 *
 * BOOTSTRAP lists every agent, in index order; AGENTCTL is agentctl.sh, which
 * kills and starts agents of the cluster in CLUSTER_DIR by index. Both
 * scenarios run the same load: an idempotent acks=all producer sends numbered
 * records round-robin to a 6-partition topic, and a group of three
 * KafkaConsumers (classic protocol, bootstrapped with every agent) consumes
 * them, committing synchronously after every poll that returned records.
 *
 * failover: SIGKILL of the agent that coordinates the group (the admin
 * client's describeConsumerGroups names it, through FindCoordinator):
 *   resume            every partition delivers a record produced after the kill
 *                     and every member commits again within the session
 *                     timeout + 1.3 x the agent lease + RESUME_SLACK_MS
 *   leads-again       the agent, started again on its port, leads partitions
 *   acked-consumed    every acknowledged record was consumed
 *   no-duplicates     none was consumed twice (the group did not rebalance
 *                     back over uncommitted records)
 *   no-client-errors  no exception reached the producer's callbacks or the
 *                     consumers' poll/commitSync
 * rolling: SIGTERM and restart of each agent in turn under the same load:
 *   clean-shutdowns   every agent exited within 10 s of SIGTERM
 *   no-client-errors, acked-consumed  as above (duplicates are printed, not
 *                     judged: a group handed over may redeliver at least once)
 *
 * Prints "PASS cluster/LABEL/SCENARIO/CHECK" or "FAIL ...: why" per check;
 * exits 1 on any failure. Compiled by tests/compat/cluster.sh.
 */

import java.io.File;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class ClusterTest {
    static final int PARTITIONS = 6;
    static final int MEMBERS = 3;
    static final int SESSION_TIMEOUT_MS = 6000;
    /** Client-side delays on top of the reaping: reconnect and retry backoffs
     * (up to 1 s each), a metadata refresh, a FindCoordinator round. */
    static final long RESUME_SLACK_MS = 5000;
    /** Records per producer tick of 10 ms: 500 records a second. */
    static final int PER_TICK = 5;
    static final Duration DRAIN = Duration.ofSeconds(40);

    static String bootstrap;
    static String label;
    static List<String> agents;
    static String agentctl;
    static String clusterDir;
    static long leaseMs;
    static int failures;

    static void check(String name, String failure) {
        String full = "cluster/" + label + "/" + name;
        if (failure == null) {
            System.out.println("PASS " + full);
        } else {
            System.out.println("FAIL " + full + ": " + failure.replace('\n', ' '));
            failures++;
        }
        System.out.flush();
    }

    static void info(String line) {
        System.out.println("cluster " + label + ": " + line);
        System.out.flush();
    }

    /** agentctl.sh CLUSTER_DIR ARGS...; its output goes to CLUSTER_DIR/agentctl.log. */
    static int agentctl(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("bash", agentctl, clusterDir));
        cmd.addAll(Arrays.asList(args));
        File log = new File(clusterDir, "agentctl.log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log)).start();
        if (!p.waitFor(90, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("agentctl " + String.join(" ", args) + " hung; see " + log);
        }
        return p.exitValue();
    }

    static void agentctlOrThrow(String... args) throws Exception {
        if (agentctl(args) != 0) {
            throw new IllegalStateException("agentctl " + String.join(" ", args) + " failed; see "
                    + new File(clusterDir, "agentctl.log"));
        }
    }

    static int agentOf(Node n) {
        return agents.indexOf(n.host() + ":" + n.port());
    }

    static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return Admin.create(p);
    }

    static Map<Integer, Integer> leadersByAgent(Admin admin, String topic) throws Exception {
        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
        Map<Integer, Integer> count = new TreeMap<>();
        for (TopicPartitionInfo p : d.partitions()) {
            count.merge(p.leader() == null ? -1 : agentOf(p.leader()), 1, Integer::sum);
        }
        return count;
    }

    static long now() {
        return System.currentTimeMillis();
    }

    /** A producer and a group of consumers on a fresh topic, and what they saw. */
    static final class Load implements AutoCloseable {
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

        Load(Admin admin, String name, String tag) throws Exception {
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
                    public void onPartitionsRevoked(Collection<TopicPartition> parts) {}

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
                    + duplicates().size() + " duplicated, " + assignments.get() + " assignments, "
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
    }

    static void failover(Admin admin) throws Exception {
        long limit = SESSION_TIMEOUT_MS + (long) (1.3 * leaseMs) + RESUME_SLACK_MS;
        try (Load load = new Load(admin, "failover", UUID.randomUUID().toString().substring(0, 8))) {
            load.awaitFlowing(Duration.ofSeconds(40));
            ConsumerGroupDescription g = admin.describeConsumerGroups(List.of(load.group)).all()
                    .get(30, TimeUnit.SECONDS).get(load.group);
            int victim = agentOf(g.coordinator());
            if (victim < 0) {
                throw new IllegalStateException("coordinator " + g.coordinator() + " is none of the agents " + agents);
            }
            Map<Integer, Integer> before = leadersByAgent(admin, load.topic);
            info("failover: group coordinated by agent " + victim + " (node " + g.coordinator().id()
                    + "); partitions led per agent " + before + "; SIGKILL after " + load.sent.get() + " records");
            long killStart = now();
            agentctlOrThrow("kill9", Integer.toString(victim));
            load.markEvent(killStart);
            long deadline = now() + limit + 20000;
            long resumed;
            while ((resumed = load.resumedAfterMs()) < 0 && now() < deadline) {
                Thread.sleep(100);
            }
            if (resumed < 0) {
                check("failover/resume", "not resumed " + (limit + 20000) + " ms after the SIGKILL: " + load.notBack());
            } else {
                info("failover: resumed " + resumed + " ms after the SIGKILL (limit " + limit + " ms)");
                check("failover/resume", resumed <= limit ? null
                        : "resumed only " + resumed + " ms after the SIGKILL, limit " + limit + " ms");
            }
            ConsumerGroupDescription moved = admin.describeConsumerGroups(List.of(load.group)).all()
                    .get(30, TimeUnit.SECONDS).get(load.group);
            info("failover: the group is now coordinated by agent " + agentOf(moved.coordinator()) + ", state "
                    + moved.groupState() + ", " + moved.members().size() + " members");

            agentctlOrThrow("start", Integer.toString(victim));
            agentctl("formed", "20");
            Map<Integer, Integer> after = Map.of();
            long leadDeadline = now() + 20000;
            while (now() < leadDeadline && !(after = leadersByAgent(admin, load.topic)).containsKey(victim)) {
                Thread.sleep(200);
            }
            check("failover/leads-again", after.containsKey(victim) ? null
                    : "agent " + victim + " restarted but leads nothing 20 s later: partitions per agent " + after);
            // Records to the partitions it leads again, through the restarted agent.
            Thread.sleep(2000);
            load.stopProducingAndDrain();
            info("failover: " + load.summary());
            check("failover/acked-consumed", load.lost());
            List<Long> dups = load.duplicates();
            check("failover/no-duplicates", dups.isEmpty() ? null
                    : dups.size() + " records consumed more than once, e.g. " + dups.subList(0, Math.min(10, dups.size()))
                    + " (" + load.assignments.get() + " assignments in all)");
            check("failover/no-client-errors", load.errorSummary());
        }
    }

    static void rolling(Admin admin) throws Exception {
        try (Load load = new Load(admin, "rolling", UUID.randomUUID().toString().substring(0, 8))) {
            load.awaitFlowing(Duration.ofSeconds(40));
            List<String> unclean = new ArrayList<>();
            for (int i = 0; i < agents.size(); i++) {
                long t0 = now();
                if (agentctl("stop", Integer.toString(i)) != 0) {
                    unclean.add("agent " + i);
                }
                long stopped = now();
                agentctlOrThrow("start", Integer.toString(i));
                if (agentctl("formed", "20") != 0) {
                    info("rolling: the cluster did not form again after agent " + i + " restarted (see agentctl.log)");
                }
                info("rolling: agent " + i + " stopped in " + (stopped - t0) + " ms, back in " + (now() - stopped)
                        + " ms; " + load.summary());
                Thread.sleep(2000);
            }
            load.stopProducingAndDrain();
            info("rolling: " + load.summary());
            check("rolling/clean-shutdowns", unclean.isEmpty() ? null
                    : String.join(", ", unclean) + " did not exit within 10 s of SIGTERM");
            check("rolling/no-client-errors", load.errorSummary());
            check("rolling/acked-consumed", load.lost());
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: ClusterTest BOOTSTRAP LABEL AGENTCTL CLUSTER_DIR LEASE_MS");
            System.exit(2);
        }
        bootstrap = args[0];
        label = args[1];
        agents = Arrays.asList(bootstrap.split(","));
        agentctl = args[2];
        clusterDir = args[3];
        leaseMs = args[4].isEmpty() ? 10000 : Long.parseLong(args[4]);
        String only = System.getenv().getOrDefault("CLUSTER_ONLY", "");
        try (Admin admin = admin()) {
            for (String name : List.of("failover", "rolling")) {
                if (!only.isEmpty() && !Arrays.asList(only.split("[ ,]+")).contains(name)) {
                    continue;
                }
                try {
                    if (name.equals("failover")) {
                        failover(admin);
                    } else {
                        rolling(admin);
                    }
                } catch (Exception e) {
                    check(name + "/run", e.toString());
                    e.printStackTrace();
                }
            }
        }
        System.exit(failures == 0 ? 0 : 1);
    }
}
