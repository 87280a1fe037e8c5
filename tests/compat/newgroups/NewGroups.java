/*
 * Consumer groups of the KIP-848 protocol (group.protocol=consumer) with the
 * Java client (kafka-clients 4.4.0), for tests/compat/newgroups.sh, which
 * compiles it with javac against $STREAMHOUSE_CACHE/java/lib and runs one
 * mode per call:
 *
 *   NewGroups consumer-kill BOOTSTRAP TOPIC GROUP SESSION_MS WORKDIR
 *       A 6-partition TOPIC and three members of GROUP, each a JVM of its
 *       own (the member mode below) with the broker's default assignor. Once
 *       they split the partitions, an idempotent producer sends RATE keyed
 *       records a second (values 0, 1, 2, ...). The third member is
 *       SIGKILLed once it has consumed KILL_AFTER records; once the broker
 *       dropped it (the two others own all six partitions, within SESSION_MS
 *       + TAKEOVER_SLACK_MS of the kill) it is started again, a new member,
 *       and once that one has a share and has consumed records, the producer
 *       stops a second later. Then:
 *         every acknowledged record was consumed (duplicates allowed: the
 *         killed member's uncommitted records are redelivered);
 *         no member that lived on had all its partitions revoked at once, or
 *         lost (onPartitionsLost) any, while the others joined or left, and
 *         none was assigned a partition it owned: the assignment changed
 *         incrementally;
 *         Admin.describeConsumerGroups (ConsumerGroupDescribe) shows type
 *         CONSUMER, state STABLE, the assignor "uniform" (Kafka's default),
 *         three members with member epochs whose assignments cover the six
 *         partitions exactly once, equal their target assignments and are
 *         what each member's listener says it owns;
 *         the committed offsets are the partitions' end offsets;
 *         every member leaves cleanly (close) at the end.
 *   NewGroups coordinator-kill BOOTSTRAP TOPIC GROUP SESSION_MS WORKDIR AGENTCTL CLUSTER_DIR
 *       The same group (group.remote.assignor=range) and load against a
 *       cluster of agents (BOOTSTRAP lists them in index order; AGENTCTL is
 *       agentctl.sh acting on the cluster in CLUSTER_DIR): once the group
 *       has consumed KILL_AFTER records, the agent coordinating it
 *       (describeConsumerGroups, through FindCoordinator) is SIGKILLed.
 *       Within MOVE_MS describeConsumerGroups names another agent as the
 *       coordinator, and the group's committed offsets then rise by
 *       KILL_AFTER (the members commit through it); then the agent is started
 *       again, and once the group consumed KILL_AFTER more records with three
 *       members owning every partition once the producer stops. Every
 *       acknowledged record consumed, the final description as above
 *       (assignor "range"), committed offsets at the end. Revocations and
 *       lost partitions are reported, not judged.
 *   NewGroups member BOOTSTRAP TOPIC GROUP ASSIGNOR NAME
 *       One member (ASSIGNOR "-": the broker's default), run by the modes
 *       above: commits synchronously after every poll that returned records
 *       and prints, one line each:
 *         ASSIGNED p,p / REVOKED p,p / LOST p,p   its rebalance listener's calls
 *         REC partition offset value
 *         ERROR what                               a failed commit or poll
 *         CLOSING / CLOSED                         around close() at stdin's end
 *   NewGroups hold BOOTSTRAP TOPIC GROUP ASSIGNOR
 *       For kafka-consumer-groups: a 4-partition TOPIC with 400 records, two
 *       members (threads) of GROUP that consume them all and commit (a
 *       failed commitSync prints "FAIL <why>" and exits 1); once
 *       they own the four partitions between them, each some, prints
 *       "HELD <member ids>" and keeps polling until killed (at most 150 s).
 *
 * consumer-kill and coordinator-kill print "OK <detail>" or "FAIL <reason>"
 * last and exit 0 or 1; their workdir gets each member's output
 * (member-NAME.out, .err).
 */

import java.io.BufferedReader;
import java.io.File;
import java.io.FileWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class NewGroups {
    static final int PARTITIONS = 6;
    /** Records a second, from the split until the group is whole again. */
    static final int RATE = 300;
    /** Records the victim (m3, or the group with the coordinator) consumes before the kill. */
    static final int KILL_AFTER = 200;
    /** For the group's coordinator to move off a SIGKILLed agent: StreamHouse's
     * agent lease (2 s in the compat runs) or Kafka's broker session (9 s)
     * and a leader election, the admin client's retries. */
    static final long MOVE_MS = 30000;
    /** After the session timeout: the broker's expiry check, a heartbeat
     * interval (Kafka's is 5 s) for the survivors to hear of their new
     * partitions, and their reconciliation. */
    static final long TAKEOVER_SLACK_MS = 20000;
    /** To split the partitions among three members that start together, to
     * consume everything once produced, for the final assignment: Kafka
     * needs a few heartbeat intervals of 5 s for each. */
    static final long STEP_MS = 60000;

    static final class Failure extends Exception {
        private static final long serialVersionUID = 1L;

        Failure(String why) {
            super(why);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: NewGroups consumer-kill|coordinator-kill|member|hold BOOTSTRAP TOPIC GROUP ...");
            System.exit(2);
        }
        String mode = args[0];
        switch (mode) {
            case "member" -> member(args[1], args[2], args[3], args[4], args[5]);
            case "hold" -> hold(args[1], args[2], args[3], args[4]);
            case "consumer-kill", "coordinator-kill" -> {
                boolean ok;
                try {
                    Run run = new Run(mode, args);
                    String detail = run.run();
                    System.out.println("OK " + detail);
                    ok = true;
                } catch (Failure f) {
                    System.out.println("FAIL " + f.getMessage().replace('\n', ' '));
                    ok = false;
                } catch (Exception e) {
                    e.printStackTrace();
                    System.out.println("FAIL " + e.toString().replace('\n', ' '));
                    ok = false;
                }
                System.out.flush();
                System.exit(ok ? 0 : 1);
            }
            default -> {
                System.err.println("unknown mode " + mode);
                System.exit(2);
            }
        }
    }

    static long now() {
        return System.currentTimeMillis();
    }

    static String parts(Collection<TopicPartition> tps) {
        return tps.stream().map(TopicPartition::partition).sorted().map(String::valueOf)
                .collect(Collectors.joining(","));
    }

    static Properties consumerProps(String bootstrap, String group, String assignor, String clientId) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        if (!assignor.equals("-")) {
            p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor);
        }
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "200");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return p;
    }

    // ---- member: one consumer of the group, a process of its own ------------

    static void member(String bootstrap, String topic, String group, String assignor, String name) {
        PrintWriter out = new PrintWriter(System.out, false);
        AtomicBoolean stop = new AtomicBoolean();
        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() >= 0) {
                    // the orchestrator closes stdin to stop the member
                }
            } catch (IOException ignored) {
                // as closed
            }
            stop.set(true);
        });
        stdin.setDaemon(true);
        stdin.start();
        long deadline = now() + 150_000;
        try (KafkaConsumer<String, String> consumer =
                     new KafkaConsumer<>(consumerProps(bootstrap, group, assignor, name))) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> tps) {
                    if (!tps.isEmpty()) {
                        out.println("REVOKED " + parts(tps));
                        out.flush();
                    }
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> tps) {
                    if (!tps.isEmpty()) {
                        out.println("ASSIGNED " + parts(tps));
                        out.flush();
                    }
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> tps) {
                    if (!tps.isEmpty()) {
                        out.println("LOST " + parts(tps));
                        out.flush();
                    }
                }
            });
            while (!stop.get() && now() < deadline) {
                ConsumerRecords<String, String> records;
                try {
                    records = consumer.poll(Duration.ofMillis(200));
                } catch (Exception e) {
                    out.println("ERROR poll: " + e);
                    out.flush();
                    Thread.sleep(200);
                    continue;
                }
                if (records.isEmpty()) {
                    continue;
                }
                for (ConsumerRecord<String, String> r : records) {
                    out.append("REC ").append(String.valueOf(r.partition())).append(' ')
                            .append(String.valueOf(r.offset())).append(' ').append(r.value()).append('\n');
                }
                out.flush();
                try {
                    consumer.commitSync(Duration.ofSeconds(15));
                } catch (Exception e) {
                    out.println("ERROR commitSync: " + e);
                    out.flush();
                }
            }
            out.println("CLOSING");
            out.flush();
            consumer.close(CloseOptions.timeout(Duration.ofSeconds(15)));
            out.println("CLOSED");
            out.flush();
        } catch (Exception e) {
            out.println("ERROR " + e);
            out.flush();
            System.exit(1);
        }
        System.exit(0);
    }

    // ---- hold: a live group for kafka-consumer-groups -----------------------

    static void hold(String bootstrap, String topic, String group, String assignor) throws Exception {
        int partitions = 4;
        int records = 400;
        try (Admin admin = admin(bootstrap)) {
            createTopic(admin, topic, partitions);
            produce(bootstrap, topic, 0, records);
        }
        List<KafkaConsumer<String, String>> consumers = new ArrayList<>();
        for (int i = 1; i <= 2; i++) {
            KafkaConsumer<String, String> c =
                    new KafkaConsumer<>(consumerProps(bootstrap, group, assignor, "holder-" + i));
            c.subscribe(List.of(topic));
            consumers.add(c);
        }
        BitSet seen = new BitSet();
        long deadline = now() + 150_000;
        boolean held = false;
        while (now() < deadline) {
            for (int i = 0; i < consumers.size(); i++) {
                KafkaConsumer<String, String> c = consumers.get(i);
                ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(100));
                for (ConsumerRecord<String, String> r : rs) {
                    seen.set(Integer.parseInt(r.value()));
                }
                if (!rs.isEmpty()) {
                    try {
                        c.commitSync(Duration.ofSeconds(15));
                    } catch (Exception e) {
                        // Kafka 4.4 takes a commit at an older member epoch for
                        // the partitions the member owned at that epoch, so
                        // a commit racing a rebalance does not fail there.
                        System.out.println("FAIL commitSync of holder-" + (i + 1) + " after a poll of " + rs.count()
                                + " records (member epoch now " + c.groupMetadata().generationId()
                                + ", partitions " + parts(c.assignment()) + "): " + e);
                        System.out.flush();
                        System.exit(1);
                    }
                }
            }
            List<TopicPartition> owned = new ArrayList<>();
            consumers.forEach(c -> owned.addAll(c.assignment()));
            if (!held && seen.cardinality() == records && owned.size() == partitions
                    && new TreeSet<>(owned.stream().map(TopicPartition::partition).toList()).size() == partitions
                    && consumers.stream().allMatch(c -> !c.assignment().isEmpty())) {
                held = true;
                // Every record consumed (and committed after its poll), the
                // partitions split between the two.
                System.out.println("HELD " + consumers.stream().map(c -> c.groupMetadata().memberId())
                        .collect(Collectors.joining(" ")));
                System.out.flush();
            }
        }
        System.exit(held ? 0 : 1);
    }

    // ---- shared helpers ------------------------------------------------------

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        return Admin.create(p);
    }

    static void createTopic(Admin admin, String topic, int partitions) throws Exception {
        admin.createTopics(List.of(new NewTopic(topic, partitions, (short) -1))).all().get(30, TimeUnit.SECONDS);
        long deadline = now() + 30_000;
        while (true) {
            try {
                int n = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS)
                        .get(topic).partitions().size();
                if (n == partitions) {
                    return;
                }
            } catch (Exception e) {
                if (now() > deadline) {
                    throw e;
                }
            }
            if (now() > deadline) {
                throw new Failure("topic " + topic + " not described with " + partitions + " partitions in 30 s");
            }
            Thread.sleep(200);
        }
    }

    /** Records with values from .. to-1, keyed by their value. */
    static void produce(String bootstrap, String topic, int from, int to) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "90000");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            List<Future<?>> acks = new ArrayList<>();
            for (int i = from; i < to; i++) {
                acks.add(producer.send(new ProducerRecord<>(topic, "k" + i, Integer.toString(i))));
            }
            producer.flush();
            for (Future<?> f : acks) {
                f.get(90, TimeUnit.SECONDS);
            }
        }
    }

    // ---- the orchestrated scenarios -----------------------------------------

    /** A member process and what its output said. */
    static final class Member {
        final String name;
        final Process process;
        final TreeSet<Integer> owned = new TreeSet<>();
        final List<String> violations = new ArrayList<>();
        final List<String> errors = new ArrayList<>();
        int revocations;
        int lost;
        volatile boolean closing;
        volatile boolean closed;
        volatile long records;
        final Thread reader;

        Member(String name, Process process, File outFile, Run run) throws IOException {
            this.name = name;
            this.process = process;
            FileWriter copy = new FileWriter(outFile, StandardCharsets.UTF_8);
            reader = new Thread(() -> {
                try (BufferedReader in = new BufferedReader(new InputStreamReader(process.getInputStream(),
                        StandardCharsets.UTF_8)); copy) {
                    String line;
                    while ((line = in.readLine()) != null) {
                        copy.write(line);
                        copy.write('\n');
                        run.onLine(this, line);
                    }
                } catch (IOException ignored) {
                    // the process is gone
                }
            }, "reader-" + name);
            reader.setDaemon(true);
            reader.start();
        }

        synchronized TreeSet<Integer> ownedNow() {
            return new TreeSet<>(owned);
        }

        boolean alive() {
            return process.isAlive();
        }
    }

    static final class Run {
        final String mode;
        final String bootstrap;
        final String topic;
        final String group;
        final long sessionMs;
        final File workdir;
        final String agentctl;
        final String clusterDir;
        final String assignor;
        final boolean judgeRevocations;
        final BitSet consumed = new BitSet();
        final Map<String, Member> members = new TreeMap<>();
        final List<String> timeline = new ArrayList<>();
        final long t0 = now();

        Run(String mode, String[] args) {
            this.mode = mode;
            bootstrap = args[1];
            topic = args[2];
            group = args[3];
            sessionMs = Long.parseLong(args[4]);
            workdir = new File(args[5]);
            agentctl = args.length > 6 ? args[6] : null;
            clusterDir = args.length > 7 ? args[7] : null;
            boolean coordinator = mode.equals("coordinator-kill");
            assignor = coordinator ? "range" : "-";
            judgeRevocations = !coordinator;
        }

        void note(String what) {
            String line = String.format("%6.1fs %s", (now() - t0) / 1000.0, what);
            synchronized (timeline) {
                timeline.add(line);
            }
            System.err.println(line);
        }

        void onLine(Member m, String line) {
            int sp = line.indexOf(' ');
            String kind = sp < 0 ? line : line.substring(0, sp);
            String rest = sp < 0 ? "" : line.substring(sp + 1);
            switch (kind) {
                case "REC" -> {
                    String[] f = rest.split(" ");
                    int v = Integer.parseInt(f[2]);
                    synchronized (consumed) {
                        consumed.set(v);
                    }
                    m.records++;
                }
                case "ASSIGNED", "REVOKED", "LOST" -> {
                    TreeSet<Integer> ps = Arrays.stream(rest.split(",")).map(Integer::valueOf)
                            .collect(Collectors.toCollection(TreeSet::new));
                    synchronized (m) {
                        TreeSet<Integer> before = new TreeSet<>(m.owned);
                        if (kind.equals("ASSIGNED")) {
                            TreeSet<Integer> again = new TreeSet<>(ps);
                            again.retainAll(before);
                            if (!again.isEmpty()) {
                                m.violations.add(m.name + " was assigned " + again + " it already owned");
                            }
                            m.owned.addAll(ps);
                        } else {
                            if (kind.equals("LOST")) {
                                m.lost++;
                            } else {
                                m.revocations++;
                            }
                            if (!m.closing && !before.isEmpty() && ps.containsAll(before)) {
                                m.violations.add(m.name + " had all its partitions " + before + " "
                                        + (kind.equals("LOST") ? "lost" : "revoked") + " at once");
                            } else if (!m.closing && kind.equals("LOST")) {
                                m.violations.add(m.name + " lost partitions " + ps + " of " + before);
                            }
                            m.owned.removeAll(ps);
                        }
                        note(m.name + " " + kind + " " + ps + " -> owns " + m.owned);
                    }
                }
                case "ERROR" -> {
                    synchronized (m) {
                        m.errors.add(rest);
                    }
                    note(m.name + " ERROR " + rest);
                }
                case "CLOSING" -> m.closing = true;
                case "CLOSED" -> m.closed = true;
                default -> note(m.name + " said: " + line);
            }
        }

        Member start(String name) throws IOException {
            String java = System.getProperty("java.home") + "/bin/java";
            List<String> cmd = List.of(java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                    "-cp", System.getProperty("java.class.path"), "NewGroups", "member",
                    bootstrap, topic, group, assignor, name);
            Process p = new ProcessBuilder(cmd)
                    .redirectError(new File(workdir, "member-" + name + ".err"))
                    .start();
            Member m = new Member(name, p, new File(workdir, "member-" + name + ".out"), this);
            synchronized (members) {
                members.put(name, m);
            }
            note("started " + name + " (pid " + p.pid() + ")");
            return m;
        }

        List<Member> live() {
            synchronized (members) {
                return members.values().stream().filter(Member::alive).collect(Collectors.toList());
            }
        }

        /** The live members own every partition exactly once, each some. */
        boolean split(List<Member> who) {
            TreeSet<Integer> all = new TreeSet<>();
            int total = 0;
            for (Member m : who) {
                TreeSet<Integer> o = m.ownedNow();
                if (o.isEmpty()) {
                    return false;
                }
                all.addAll(o);
                total += o.size();
            }
            return total == PARTITIONS && all.size() == PARTITIONS;
        }

        String owners(Collection<Member> who) {
            return who.stream().map(m -> m.name + "=" + m.ownedNow()).collect(Collectors.joining(" "));
        }

        int consumedCount() {
            synchronized (consumed) {
                return consumed.cardinality();
            }
        }

        boolean waitFor(long ms, BooleanSupplier cond) throws InterruptedException {
            long deadline = now() + ms;
            while (now() < deadline) {
                if (cond.getAsBoolean()) {
                    return true;
                }
                Thread.sleep(100);
            }
            return cond.getAsBoolean();
        }

        int agentctl(String... args) throws Exception {
            List<String> cmd = new ArrayList<>(List.of("bash", agentctl, clusterDir));
            cmd.addAll(Arrays.asList(args));
            File log = new File(workdir, "agentctl.log");
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(log)).start();
            if (!p.waitFor(90, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new Failure("agentctl " + String.join(" ", args) + " hung; see " + log);
            }
            return p.exitValue();
        }

        ConsumerGroupDescription describe(Admin admin) throws Exception {
            return admin.describeConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS).get(group);
        }

        String describeText(ConsumerGroupDescription d) {
            return "type " + d.type() + ", state " + d.groupState() + ", assignor " + d.partitionAssignor()
                    + ", epoch " + d.groupEpoch().map(String::valueOf).orElse("?") + ", members "
                    + d.members().stream().map(md -> md.clientId() + "="
                    + new TreeSet<>(md.assignment().topicPartitions().stream().map(TopicPartition::partition)
                    .collect(Collectors.toList())) + "@" + md.memberEpoch().map(String::valueOf).orElse("?"))
                    .sorted().collect(Collectors.joining(" "));
        }

        /** What is wrong with the group's description, or null. */
        String describeProblem(ConsumerGroupDescription d, List<Member> live) {
            String want = assignor.equals("-") ? "uniform" : assignor;
            if (d.type() != GroupType.CONSUMER) {
                return "type " + d.type() + ", want CONSUMER";
            }
            if (d.groupState() != GroupState.STABLE) {
                return "state " + d.groupState() + ", want STABLE";
            }
            if (!want.equals(d.partitionAssignor())) {
                return "assignor " + d.partitionAssignor() + ", want " + want;
            }
            if (d.members().size() != live.size()) {
                return d.members().size() + " members, want " + live.size();
            }
            int[] owner = new int[PARTITIONS];
            for (MemberDescription md : d.members()) {
                Member m;
                synchronized (members) {
                    m = members.get(md.clientId());
                }
                if (m == null || !m.alive()) {
                    return "member " + md.consumerId() + " (client " + md.clientId() + ") is none of the live members";
                }
                TreeSet<Integer> ps = new TreeSet<>();
                for (TopicPartition tp : md.assignment().topicPartitions()) {
                    if (!tp.topic().equals(topic) || tp.partition() < 0 || tp.partition() >= PARTITIONS) {
                        return "member " + md.clientId() + " is assigned " + tp;
                    }
                    owner[tp.partition()]++;
                    ps.add(tp.partition());
                }
                if (!ps.equals(m.ownedNow())) {
                    return "member " + md.clientId() + " is described with " + ps + " but its listener owns "
                            + m.ownedNow();
                }
                Optional<Integer> epoch = md.memberEpoch();
                if (epoch.isEmpty() || epoch.get() <= 0) {
                    return "member " + md.clientId() + " has member epoch " + epoch;
                }
                if (md.targetAssignment().isPresent()
                        && !md.targetAssignment().get().topicPartitions().equals(md.assignment().topicPartitions())) {
                    return "member " + md.clientId() + " has a target assignment "
                            + parts(md.targetAssignment().get().topicPartitions()) + " other than its assignment "
                            + parts(md.assignment().topicPartitions());
                }
            }
            for (int p = 0; p < PARTITIONS; p++) {
                if (owner[p] != 1) {
                    return "partition " + p + " is assigned to " + owner[p] + " members";
                }
            }
            return null;
        }

        /** The partitions whose committed offset is not their end offset, as "p=committed/end". */
        String uncommitted(Admin admin) throws Exception {
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            for (int p = 0; p < PARTITIONS; p++) {
                latest.put(new TopicPartition(topic, p), OffsetSpec.latest());
            }
            var ends = admin.listOffsets(latest).all().get(30, TimeUnit.SECONDS);
            Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            List<String> off = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                TopicPartition tp = new TopicPartition(topic, p);
                long end = ends.get(tp).offset();
                OffsetAndMetadata c = committed.get(tp);
                long at = c == null ? -1 : c.offset();
                if (at != end && !(c == null && end == 0)) {
                    off.add(p + "=" + (c == null ? "none" : at) + "/" + end);
                }
            }
            return off.isEmpty() ? null : String.join(" ", off);
        }

        String run() throws Exception {
            workdir.mkdirs();
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                synchronized (members) {
                    members.values().forEach(m -> m.process.destroyForcibly());
                }
            }));
            try (Admin admin = admin(bootstrap); Load load = new Load(bootstrap, topic)) {
                createTopic(admin, topic, PARTITIONS);
                start("m1");
                start("m2");
                start("m3");
                if (!waitFor(STEP_MS, () -> live().size() == 3 && split(live()))) {
                    throw new Failure("three members did not split the " + PARTITIONS + " partitions in "
                            + STEP_MS / 1000 + " s: " + owners(members.values()) + violations() + clientErrors());
                }
                note("split: " + owners(live()));

                load.start();
                note("producing " + RATE + " records/s");
                String event = mode.equals("consumer-kill") ? killMember() : killCoordinator(admin);
                Thread.sleep(1000);
                int n = load.stop();
                note("stopped producing: " + n + " records sent, " + load.ackedCount() + " acknowledged");
                if (!load.errors.isEmpty()) {
                    throw new Failure(load.errors.size() + " of " + n + " sends failed, e.g. " + load.errors.get(0));
                }
                if (!waitFor(STEP_MS, () -> load.unconsumed(consumed).isEmpty())) {
                    List<Integer> miss = load.unconsumed(consumed);
                    throw new Failure(miss.size() + " of " + n + " acknowledged records not consumed " + STEP_MS / 1000
                            + " s after the last was produced, e.g. " + miss.subList(0, Math.min(10, miss.size()))
                            + "; " + owners(live()) + violations() + clientErrors());
                }
                note("all " + n + " consumed");

                // The final assignment, as the members and the broker see it.
                ConsumerGroupDescription[] last = new ConsumerGroupDescription[1];
                String[] problem = new String[1];
                boolean stable = waitFor(STEP_MS, () -> {
                    try {
                        List<Member> live = live();
                        last[0] = describe(admin);
                        problem[0] = describeProblem(last[0], live);
                        return live.size() == 3 && problem[0] == null;
                    } catch (Exception e) {
                        problem[0] = e.toString();
                        return false;
                    }
                });
                if (!stable) {
                    throw new Failure("final assignment: " + problem[0] + " (" + (last[0] == null ? "no description"
                            : describeText(last[0])) + "; listeners: " + owners(live()) + ")" + violations()
                            + clientErrors());
                }
                String described = describeText(last[0]);
                note("described: " + described + ", coordinator " + last[0].coordinator());

                String[] off = new String[1];
                if (!waitFor(15000, () -> {
                    try {
                        return (off[0] = uncommitted(admin)) == null;
                    } catch (Exception e) {
                        off[0] = e.toString();
                        return false;
                    }
                })) {
                    throw new Failure("committed offsets not at the end offsets (partition=committed/end): " + off[0]);
                }

                // A clean stop: every member leaves the group.
                List<Member> live = live();
                for (Member m : live) {
                    m.process.getOutputStream().close();
                }
                for (Member m : live) {
                    if (!m.process.waitFor(30, TimeUnit.SECONDS)) {
                        m.process.destroyForcibly();
                        throw new Failure(m.name + " did not close within 30 s of its stdin's end");
                    }
                    m.reader.join(5000);
                }
                String v = violations();
                int revocations = 0, lost = 0, errors = 0;
                long dup = 0;
                for (Member m : members.values()) {
                    revocations += m.revocations;
                    lost += m.lost;
                    errors += m.errors.size();
                    dup += m.records;
                }
                dup -= n;
                String counts = revocations + " revocations, " + lost + " lost, " + errors
                        + " client errors, " + dup + " records redelivered";
                if (judgeRevocations && !v.isEmpty()) {
                    throw new Failure("the assignment did not change incrementally:" + v + " (" + counts + ")");
                }
                List<String> errs = new ArrayList<>();
                members.values().forEach(m -> m.errors.forEach(e -> errs.add(m.name + ": " + e)));
                return "all " + n + " records consumed; " + event + "; final: " + described
                        + "; committed = end offsets; " + counts
                        + (errs.isEmpty() ? "" : " (e.g. " + errs.get(0) + ")")
                        + (!judgeRevocations && !v.isEmpty() ? "; not judged:" + v : "");
            } finally {
                synchronized (members) {
                    members.values().forEach(m -> m.process.destroyForcibly());
                }
            }
        }

        /** The first error each member printed, and how many, for a failure's reason. */
        String clientErrors() {
            StringBuilder sb = new StringBuilder();
            synchronized (members) {
                for (Member m : members.values()) {
                    synchronized (m) {
                        if (!m.errors.isEmpty()) {
                            sb.append(sb.length() == 0 ? "; client errors: " : "; ").append(m.name).append(' ')
                                    .append(m.errors.size()).append("x, first ")
                                    .append(m.errors.get(0), 0, Math.min(300, m.errors.get(0).length()));
                        }
                    }
                }
            }
            return sb.toString();
        }

        String violations() {
            StringBuilder sb = new StringBuilder();
            synchronized (members) {
                for (Member m : members.values()) {
                    synchronized (m) {
                        for (String v : m.violations) {
                            sb.append(sb.length() == 0 ? " " : "; ").append(v);
                        }
                    }
                }
            }
            return sb.toString();
        }

        String killMember() throws Exception {
            Member victim = members.get("m3");
            if (!waitFor(STEP_MS, () -> victim.records >= KILL_AFTER)) {
                throw new Failure("m3 consumed " + victim.records + " records in " + STEP_MS / 1000
                        + " s, fewer than " + KILL_AFTER + ": " + owners(live()));
            }
            TreeSet<Integer> had = victim.ownedNow();
            victim.process.destroyForcibly(); // SIGKILL
            long killed = now();
            victim.process.waitFor(10, TimeUnit.SECONDS);
            long consumedByVictim = victim.records;
            note("SIGKILLed m3, which owned " + had + " and had consumed " + consumedByVictim + " records");
            List<Member> survivors = List.of(members.get("m1"), members.get("m2"));
            long limit = sessionMs + TAKEOVER_SLACK_MS;
            if (!waitFor(limit - (now() - killed), () -> split(survivors))) {
                throw new Failure("m3 SIGKILLed; " + limit / 1000 + " s later (session timeout " + sessionMs
                        + " ms) m1 and m2 own " + owners(survivors) + violations() + clientErrors());
            }
            long took = now() - killed;
            note("m1, m2 own all partitions " + took + " ms after the kill: " + owners(survivors));
            Member again = start("m3b");
            if (!waitFor(STEP_MS, () -> again.records > 0 && live().size() == 3 && split(live()))) {
                throw new Failure("m3b, started after m3's partitions were taken over, did not get a share and"
                        + " records within " + STEP_MS / 1000 + " s: " + owners(live()) + violations()
                        + clientErrors());
            }
            note("m3b joined: " + owners(live()));
            return "m3 SIGKILLed after " + consumedByVictim + " records, its partitions " + had
                    + " taken over in " + took + " ms (session timeout " + sessionMs + " ms), m3b joined";
        }

        String killCoordinator(Admin admin) throws Exception {
            List<String> agents = Arrays.asList(bootstrap.split(","));
            ConsumerGroupDescription d = describe(admin);
            Node c = d.coordinator();
            int victim = agents.indexOf(c.host() + ":" + c.port());
            if (victim < 0) {
                throw new Failure("the coordinator " + c + " is none of the agents " + agents);
            }
            if (!waitFor(STEP_MS, () -> consumedCount() >= KILL_AFTER)) {
                throw new Failure("only " + consumedCount() + " records consumed in " + STEP_MS / 1000 + " s: "
                        + owners(live()) + clientErrors());
            }
            int before = consumedCount();
            if (agentctl("kill9", Integer.toString(victim)) != 0) {
                throw new Failure("agentctl kill9 " + victim + " failed (" + workdir + "/agentctl.log)");
            }
            long killed = now();
            note("SIGKILLed agent " + victim + " (node " + c.id() + "), the coordinator, after " + before
                    + " records consumed");

            // Another agent coordinates the group, and the members commit through it.
            String[] where = new String[1];
            boolean moved = waitFor(MOVE_MS, () -> {
                try {
                    Node n = describe(admin).coordinator();
                    int a = agents.indexOf(n.host() + ":" + n.port());
                    where[0] = "agent " + a + " (node " + n.id() + ")";
                    return a >= 0 && a != victim;
                } catch (Exception e) {
                    where[0] = e.toString();
                    return false;
                }
            });
            if (!moved) {
                throw new Failure("agent " + victim + " SIGKILLed; " + MOVE_MS / 1000 + " s later the group's"
                        + " coordinator is still " + where[0] + "; " + owners(live()) + clientErrors());
            }
            long movedAfter = now() - killed;
            note("the group is coordinated by " + where[0] + " " + movedAfter + " ms after the kill");
            long[] committed = {-1, -1};
            if (!waitFor(STEP_MS, () -> {
                try {
                    long sum = committedSum(admin);
                    if (committed[0] < 0) {
                        committed[0] = sum;
                    }
                    committed[1] = sum;
                    return sum >= committed[0] + KILL_AFTER;
                } catch (Exception e) {
                    return false;
                }
            })) {
                throw new Failure("the group's coordinator moved to " + where[0] + ", but its committed offsets"
                        + " rose only from " + committed[0] + " to " + committed[1] + " in " + STEP_MS / 1000
                        + " s; " + owners(live()) + clientErrors());
            }
            long resumedAfter = now() - killed;
            note("commits through it: the committed offsets rose from " + committed[0] + " to " + committed[1]);

            if (agentctl("start", Integer.toString(victim)) != 0) {
                throw new Failure("agentctl start " + victim + " failed (" + workdir + "/agentctl.log)");
            }
            agentctl("formed", "20");
            long down = now() - killed;
            int restarted = consumedCount();
            note("agent " + victim + " started again; " + restarted + " records consumed");
            if (!waitFor(STEP_MS, () -> consumedCount() >= restarted + KILL_AFTER && live().size() == 3
                    && split(live()))) {
                throw new Failure("after the coordinator's restart the group did not consume " + KILL_AFTER
                        + " more records with three members owning every partition once in " + STEP_MS / 1000
                        + " s: " + (consumedCount() - restarted) + " consumed, " + owners(live()) + clientErrors());
            }
            return "coordinator agent " + victim + " SIGKILLed after " + before + " records consumed, the group"
                    + " coordinated by " + where[0] + " " + movedAfter + " ms later, commits through it "
                    + resumedAfter + " ms after the kill, agent " + victim + " back after " + down + " ms";
        }

        /** The sum of the group's committed offsets on the topic. */
        long committedSum(Admin admin) throws Exception {
            return admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS)
                    .entrySet().stream().filter(e -> e.getKey().topic().equals(topic) && e.getValue() != null)
                    .mapToLong(e -> e.getValue().offset()).sum();
        }
    }

    /** An idempotent producer sending RATE keyed records a second, values 0, 1, 2, ... */
    static final class Load implements AutoCloseable {
        final KafkaProducer<String, String> producer;
        final String topic;
        final BitSet acked = new BitSet();
        final List<String> errors = Collections.synchronizedList(new ArrayList<>());
        final AtomicInteger sent = new AtomicInteger();
        volatile boolean stopping;
        final Thread thread;

        Load(String bootstrap, String topic) {
            this.topic = topic;
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.ACKS_CONFIG, "all");
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
            p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "90000");
            p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            producer = new KafkaProducer<>(p);
            thread = new Thread(this::loop, "load");
            thread.setDaemon(true);
        }

        void start() {
            thread.start();
        }

        void loop() {
            long next = now();
            while (!stopping) {
                for (int i = 0; i < RATE / 10; i++) {
                    int v = sent.getAndIncrement();
                    try {
                        producer.send(new ProducerRecord<>(topic, "k" + v, Integer.toString(v)), (md, e) -> {
                            if (e == null) {
                                synchronized (acked) {
                                    acked.set(v);
                                }
                            } else {
                                errors.add(v + ": " + e);
                            }
                        });
                    } catch (Exception e) {
                        errors.add(v + ": " + e);
                    }
                }
                next += 100;
                long d = next - now();
                if (d > 0) {
                    try {
                        Thread.sleep(d);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }
        }

        /** Stops sending, waits for every acknowledgement; the number of records sent. */
        int stop() throws InterruptedException {
            stopping = true;
            thread.join(120_000);
            producer.flush();
            return sent.get();
        }

        int ackedCount() {
            synchronized (acked) {
                return acked.cardinality();
            }
        }

        List<Integer> unconsumed(BitSet consumed) {
            BitSet miss;
            synchronized (acked) {
                miss = (BitSet) acked.clone();
            }
            synchronized (consumed) {
                miss.andNot(consumed);
            }
            return miss.stream().boxed().collect(Collectors.toList());
        }

        @Override
        public void close() {
            stopping = true;
            producer.close(Duration.ofSeconds(30));
        }
    }
}
