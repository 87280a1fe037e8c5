/*
 * A running consumer group moved between the protocols one consumer at a
 * time, as an operator rolls an application onto group.protocol=consumer and
 * back (Kafka's online migration, policy "bidirectional", its default):
 *
 *   classic      two consumers with group.protocol=classic (the Java default
 *                assignors, range first) split a 4-partition topic and
 *                consume its first 400 records;
 *   upgrade      a consumer with group.protocol=consumer joins the live group:
 *                the group becomes a consumer group (describeConsumerGroups:
 *                type CONSUMER) whose three members, two of them still
 *                classic, share the four partitions with none held twice;
 *                400 more records are consumed;
 *   classic out  the two classic consumers close: the new one holds all four
 *                and consumes 400 more;
 *   downgrade    a classic consumer joins (type still CONSUMER, two members),
 *                then the new one closes: the group is a classic group again
 *                (type CLASSIC, Stable, one member) and its last member
 *                consumes 400 more on all four partitions.
 *
 * Every record produced is consumed (each consumer commits after each poll;
 * a commit overtaken by a rebalance, as the switches cause in Kafka too, is
 * counted, and its records come again), no poll fails, and at the end the
 * committed offsets are the end offsets. All consumers run in this JVM, polled in turn.
 * Prints "OK detail" or "FAIL reason" last.
 *
 * Usage: Migration BOOTSTRAP TOPIC GROUP
 */

import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;

public final class Migration {
    static final int PARTITIONS = 4;
    static final int BATCH = 400;
    static final long STEP_MS = 90_000;

    final String bootstrap;
    final String topic;
    final String group;
    final Admin admin;
    final Map<String, KafkaConsumer<String, String>> consumers = new LinkedHashMap<>();
    final BitSet seen = new BitSet();
    int produced;
    final List<String> steps = new ArrayList<>();
    /** Commits refused because a rebalance overtook them, by step. */
    final Map<String, Integer> refusedCommits = new LinkedHashMap<>();

    Migration(String bootstrap, String topic, String group) {
        this.bootstrap = bootstrap;
        this.topic = topic;
        this.group = group;
        this.admin = NewGroups.admin(bootstrap);
    }

    public static void main(String[] args) {
        boolean ok = false;
        try {
            Migration m = new Migration(args[0], args[1], args[2]);
            String detail = m.run();
            System.out.println("OK " + detail);
            ok = true;
        } catch (NewGroups.Failure f) {
            System.out.println("FAIL " + f.getMessage().replace('\n', ' '));
        } catch (Exception e) {
            e.printStackTrace();
            System.out.println("FAIL " + e.toString().replace('\n', ' '));
        }
        System.out.flush();
        System.exit(ok ? 0 : 1);
    }

    void start(String name, String protocol) {
        Properties p = NewGroups.consumerProps(bootstrap, group, "-", name);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        if (protocol.equals("classic")) {
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        }
        KafkaConsumer<String, String> c = new KafkaConsumer<>(p);
        c.subscribe(List.of(topic));
        consumers.put(name, c);
    }

    void close(String name) {
        consumers.remove(name).close(CloseOptions.timeout(Duration.ofSeconds(15)));
    }

    void produceBatch() throws Exception {
        NewGroups.produce(bootstrap, topic, produced, produced + BATCH);
        produced += BATCH;
    }

    /** Polls every consumer in turn (committing what it read) until `done`. */
    void pollUntil(String step, BooleanSupplier done) throws Exception {
        long deadline = NewGroups.now() + STEP_MS;
        while (!done.getAsBoolean()) {
            if (NewGroups.now() > deadline) {
                throw new NewGroups.Failure(step + ": not reached in " + STEP_MS / 1000 + " s; "
                        + state());
            }
            pollOnce(step);
        }
    }

    /** Polls every consumer once, committing what it read. */
    void pollOnce(String step) throws Exception {
        for (Map.Entry<String, KafkaConsumer<String, String>> e : consumers.entrySet()) {
            KafkaConsumer<String, String> c = e.getValue();
            var records = c.poll(Duration.ofMillis(100));
            for (ConsumerRecord<String, String> r : records) {
                seen.set(Integer.parseInt(r.value()));
            }
            if (!records.isEmpty()) {
                try {
                    c.commitSync(Duration.ofSeconds(15));
                } catch (CommitFailedException | RebalanceInProgressException ex) {
                    // The group moved on under this poll (a protocol switch
                    // rebalances, in Kafka too): its records come again
                    // from the last commit.
                    refusedCommits.merge(step, 1, Integer::sum);
                } catch (Exception ex) {
                    throw new NewGroups.Failure(step + ": commitSync of " + e.getKey() + " failed: " + ex);
                }
            }
        }
    }

    String state() {
        StringBuilder s = new StringBuilder("records seen " + seen.cardinality() + "/" + produced);
        consumers.forEach((name, c) -> s.append("; ").append(name).append(" holds ")
                .append(NewGroups.parts(c.assignment())));
        return s.toString();
    }

    /** Every record produced seen, every partition held by exactly one consumer, each holding some. */
    boolean settled() {
        if (seen.cardinality() != produced) {
            return false;
        }
        TreeSet<Integer> held = new TreeSet<>();
        int total = 0;
        for (KafkaConsumer<String, String> c : consumers.values()) {
            if (c.assignment().isEmpty()) {
                return false;
            }
            total += c.assignment().size();
            c.assignment().forEach(tp -> held.add(tp.partition()));
        }
        return total == PARTITIONS && held.size() == PARTITIONS;
    }

    ConsumerGroupDescription describe() throws Exception {
        return admin.describeConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS).get(group);
    }

    /** Waits for the group to be described as `type` with `members` members (and `state`, if given). */
    void expectGroup(String step, GroupType type, int members, GroupState state) throws Exception {
        long deadline = NewGroups.now() + 20_000;
        String last = "";
        while (NewGroups.now() < deadline) {
            ConsumerGroupDescription d = describe();
            last = "type " + d.type() + ", state " + d.groupState() + ", " + d.members().size() + " members";
            if (d.type() == type && d.members().size() == members && (state == null || d.groupState() == state)) {
                steps.add(step + ": " + last);
                return;
            }
            for (KafkaConsumer<String, String> c : consumers.values()) {
                c.poll(Duration.ofMillis(100));
            }
        }
        throw new NewGroups.Failure(step + ": the group is described as " + last + "; want type " + type + ", "
                + members + " members" + (state == null ? "" : ", state " + state));
    }

    String run() throws Exception {
        NewGroups.createTopic(admin, topic, PARTITIONS);
        produceBatch();
        start("classic-1", "classic");
        start("classic-2", "classic");
        pollUntil("two classic consumers", this::settled);
        expectGroup("classic", GroupType.CLASSIC, 2, GroupState.STABLE);

        start("consumer-1", "consumer");
        produceBatch();
        pollUntil("upgrade: two classic consumers and one of the consumer protocol", this::settled);
        expectGroup("upgraded", GroupType.CONSUMER, 3, null);

        close("classic-1");
        close("classic-2");
        produceBatch();
        pollUntil("the classic consumers closed", this::settled);
        expectGroup("classic members gone", GroupType.CONSUMER, 1, null);

        start("classic-3", "classic");
        produceBatch();
        pollUntil("a classic consumer joins the consumer group", this::settled);
        expectGroup("mixed", GroupType.CONSUMER, 2, null);

        close("consumer-1");
        produceBatch();
        pollUntil("downgrade: the last consumer-protocol member closed", this::settled);
        expectGroup("downgraded", GroupType.CLASSIC, 1, GroupState.STABLE);

        // A commit overtaken by the last switch leaves its records to be read
        // and committed again: poll until the commits reach the end offsets.
        Map<TopicPartition, OffsetSpec> latest = new LinkedHashMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            latest.put(new TopicPartition(topic, p), OffsetSpec.latest());
        }
        var ends = admin.listOffsets(latest).all().get(30, TimeUnit.SECONDS);
        String behind = "";
        long deadline = NewGroups.now() + 20_000;
        do {
            pollOnce("committing to the end");
            Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            behind = "";
            for (var e : ends.entrySet()) {
                OffsetAndMetadata c = committed.get(e.getKey());
                if (c == null || c.offset() != e.getValue().offset()) {
                    behind += " " + e.getKey() + " at " + (c == null ? "none" : c.offset()) + " of "
                            + e.getValue().offset();
                }
            }
        } while (!behind.isEmpty() && NewGroups.now() < deadline);
        if (!behind.isEmpty()) {
            throw new NewGroups.Failure("committed offsets behind the end offsets 20 s after the last step:" + behind);
        }
        close("classic-3");
        admin.close();
        return produced + " records consumed across the moves; " + String.join("; ", steps)
                + "; committed offsets at the end offsets; commits overtaken by a rebalance: "
                + (refusedCommits.isEmpty() ? "none" : refusedCommits);
    }
}
