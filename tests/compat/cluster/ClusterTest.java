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
 *   leads-again       the agent, started again on its port (and so with its
 *                     node id), leads again the partitions it led before the
 *                     kill: every agent leads what it led then (placement is
 *                     a hash of the topic and the node ids; a 6-partition
 *                     topic leaves one agent of three without any in about
 *                     one run of eleven, so "leads some" would not hold)
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
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;

public final class ClusterTest {
    /** Client-side delays on top of the reaping: reconnect and retry backoffs
     * (up to 1 s each), a metadata refresh, a FindCoordinator round. */
    static final long RESUME_SLACK_MS = 5000;

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

    static void failover(Admin admin) throws Exception {
        long limit = ClusterLoad.SESSION_TIMEOUT_MS + (long) (1.3 * leaseMs) + RESUME_SLACK_MS;
        try (ClusterLoad load = new ClusterLoad(admin, bootstrap, "failover", UUID.randomUUID().toString().substring(0, 8))) {
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
            while (now() < leadDeadline && !(after = leadersByAgent(admin, load.topic)).equals(before)) {
                Thread.sleep(200);
            }
            check("failover/leads-again", after.equals(before) ? null
                    : "agent " + victim + " restarted, but 20 s later the partitions per agent are " + after
                            + ", not " + before + " as before the kill");
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
        try (ClusterLoad load = new ClusterLoad(admin, bootstrap, "rolling", UUID.randomUUID().toString().substring(0, 8))) {
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
