import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * One member of a consumer group, for tests/compat/tools.sh (its group
 * scenario): a KafkaConsumer (kafka-clients 4.4.0, classic
 * protocol) that subscribes to a topic, commits synchronously after every
 * poll that returned records, and reports on stdout, one line each:
 *
 *   ASSIGNED p0,p3       its whole assignment, every time it changes
 *   REC partition offset value
 *   COMMITTED n          after a successful commitSync of n records
 *   CLOSED               after a clean close (SIGTERM)
 *
 * The shell runner reads these lines; SIGKILL is how it "crashes" a member.
 *
 *   java GroupMember BOOTSTRAP TOPIC GROUP CLIENT_ID [SESSION_TIMEOUT_MS]
 */
public final class GroupMember {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2], clientId = args[3];
        String sessionTimeout = args.length > 4 ? args[4] : "10000";

        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, sessionTimeout);
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());

        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p);
        CountDownLatch closed = new CountDownLatch(1);
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            consumer.wakeup();
            try {
                closed.await();
                main.join(15000);
            } catch (InterruptedException ignored) {
                // exiting anyway
            }
        }));

        String lastAssignment = null;
        try {
            consumer.subscribe(Collections.singletonList(topic));
            while (true) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                String assignment = describe(consumer.assignment());
                if (!assignment.equals(lastAssignment)) {
                    System.out.println("ASSIGNED " + assignment);
                    System.out.flush();
                    lastAssignment = assignment;
                }
                if (records.isEmpty()) continue;
                StringBuilder out = new StringBuilder();
                for (ConsumerRecord<String, String> r : records) {
                    out.append("REC ").append(r.partition()).append(' ').append(r.offset()).append(' ')
                            .append(r.value()).append('\n');
                }
                System.out.print(out);
                consumer.commitSync();
                System.out.println("COMMITTED " + records.count());
                System.out.flush();
            }
        } catch (WakeupException e) {
            // SIGTERM: close below, which leaves the group.
        } finally {
            consumer.close(org.apache.kafka.clients.consumer.CloseOptions.timeout(Duration.ofSeconds(10)));
            System.out.println("CLOSED");
            System.out.flush();
            closed.countDown();
        }
    }

    private static String describe(java.util.Set<TopicPartition> assignment) {
        TreeSet<Integer> parts = new TreeSet<>();
        for (TopicPartition tp : assignment) parts.add(tp.partition());
        List<String> names = new ArrayList<>();
        for (int part : parts) names.add("p" + part);
        return names.isEmpty() ? "-" : String.join(",", names);
    }
}
