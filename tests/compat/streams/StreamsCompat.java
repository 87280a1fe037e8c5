import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The Kafka Streams side of tests/compat/streams.sh, one mode per call:
 *
 * <pre>
 *   app BOOTSTRAP APP_ID INPUT OUTPUT STATE_DIR [GUARANTEE [PROGRESS]]
 *       The application: INPUT's values (a key name each) regrouped by value,
 *       which goes through a repartition topic, and counted in the persistent
 *       (RocksDB) store "counts", whose changelog is compacted; the counts go
 *       to OUTPUT. No record cache (every update reaches the changelog and
 *       OUTPUT). Runs until SIGTERM, then closes cleanly. Logs
 *       "RESTORE-START topic-partition start end" and
 *       "RESTORE-END topic-partition restored" from a state-restore listener.
 *       GUARANTEE is processing.guarantee: at_least_once (the default, with
 *       commits every 500 ms) or exactly_once_v2 (commits every 100 ms, the
 *       transactions of one producer per stream thread, which sends what it
 *       has after 5 ms, so that a transaction cut short has records on the
 *       broker to abort). With PROGRESS (default 0: none), every PROGRESSth
 *       input record read since the start logs "PROGRESS N KEY" (N records
 *       read, KEY the last one's).
 *   produce BOOTSTRAP TOPIC FROM COUNT KEYS [RATE]
 *       Records FROM..FROM+COUNT-1: key "r-i", value "k-(i % KEYS)"; at most
 *       RATE records a second if RATE is given.
 *   counts BOOTSTRAP TOPIC [ISOLATION]
 *       TOPIC from its start to its end: the last Long value of each String
 *       key, "KEY VALUE" a line, sorted. ISOLATION is the consumer's
 *       isolation.level: read_uncommitted (the default) or read_committed
 *       (up to the last stable offset, no aborted record).
 *   history BOOTSTRAP TOPIC [ISOLATION]
 *       TOPIC from its start to its end, every record as "KEY VALUE" (a Long
 *       value) in the order of each partition, partition after partition.
 *   scan BOOTSTRAP TOPIC [ISOLATION]
 *       TOPIC from its start to its end: "records=N keys=M bytes=B".
 *   configs BOOTSTRAP TOPIC
 *       The topic's configs set on it (not defaults): "name=value" a line.
 *   create BOOTSTRAP PARTITIONS TOPIC...
 *       Topics with the broker's default configs.
 * </pre>
 */
public final class StreamsCompat {
    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "app" -> app(args[1], args[2], args[3], args[4], args[5],
                    args.length > 6 ? args[6] : StreamsConfig.AT_LEAST_ONCE,
                    args.length > 7 ? Long.parseLong(args[7]) : 0);
            case "produce" -> produce(args[1], args[2], Long.parseLong(args[3]), Long.parseLong(args[4]),
                    Integer.parseInt(args[5]), args.length > 6 ? Long.parseLong(args[6]) : 0);
            case "counts" -> counts(args[1], args[2], isolation(args, 3));
            case "history" -> history(args[1], args[2], isolation(args, 3));
            case "scan" -> scan(args[1], args[2], isolation(args, 3));
            case "configs" -> configs(args[1], args[2]);
            case "create" -> create(args[1], Integer.parseInt(args[2]), List.of(args).subList(3, args.length));
            default -> throw new IllegalArgumentException("unknown mode " + args[0]);
        }
    }

    static String isolation(String[] args, int i) {
        String level = args.length > i ? args[i] : "read_uncommitted";
        if (!level.equals("read_uncommitted") && !level.equals("read_committed")) {
            throw new IllegalArgumentException("unknown isolation level " + level);
        }
        return level;
    }

    static void app(String bootstrap, String appId, String input, String output, String stateDir,
            String guarantee, long progress) throws InterruptedException {
        boolean eos = guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2);
        if (!eos && !guarantee.equals(StreamsConfig.AT_LEAST_ONCE)) {
            throw new IllegalArgumentException("unknown processing guarantee " + guarantee);
        }
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        // No record cache: every count update is written to the changelog, so
        // the changelog holds many records per key for the log cleaner.
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        // Under exactly_once_v2 a commit ends the transaction of the output,
        // changelog and repartition records and the input offsets: short ones.
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, eos ? 100 : 500);
        if (eos) {
            // Streams' producer lingers 100 ms by default: as long as a
            // transaction, whose records would mostly still be in the client
            // when it is killed.
            p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 5);
        }
        // The internal topics (the changelog among them) cleaned as soon as a
        // hundredth is dirty, in segments of a second: Kafka never cleans its
        // active segment, so a broker of Kafka's would otherwise leave the
        // whole changelog as it is.
        p.put(StreamsConfig.topicPrefix("min.cleanable.dirty.ratio"), "0.01");
        p.put(StreamsConfig.topicPrefix("segment.ms"), "1000");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // Streams' consumer does not leave the group on close, so a restarted
        // instance waits for its predecessor's session to expire: keep it short.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1500);

        StreamsBuilder builder = new StreamsBuilder();
        java.util.concurrent.atomic.AtomicLong read = new java.util.concurrent.atomic.AtomicLong();
        builder.<String, String>stream(input)
                .peek((k, v) -> {
                    long n = read.incrementAndGet();
                    if (progress > 0 && n % progress == 0) {
                        System.out.println("PROGRESS " + n + " " + k);
                    }
                })
                .groupBy((k, v) -> v, Grouped.as("by-name"))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts"))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));

        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
                System.out.println("RESTORE-START " + tp + " " + store + " " + start + " " + end);
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {}

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {
                System.out.println("RESTORE-END " + tp + " " + store + " " + total);
            }
        });
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + before + " -> " + now);
            if (now == KafkaStreams.State.ERROR) {
                // Nothing more will be processed: end, so the runner sees it at once.
                new Thread(() -> System.exit(2)).start();
            }
        });
        CountDownLatch done = new CountDownLatch(1);
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("UNCAUGHT " + e);
            e.printStackTrace(System.out);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
                    .SHUTDOWN_CLIENT;
        });
        // SIGTERM: a clean close commits the input offsets after the store and
        // its changelog are flushed, so nothing is counted twice on restart.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            boolean closed = streams.close(Duration.ofSeconds(30));
            System.out.println("CLOSED " + closed);
            System.out.flush();
            done.countDown();
        }));
        streams.start();
        done.await();
    }

    static void produce(String bootstrap, String topic, long from, long count, int keys, long rate)
            throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            List<java.util.concurrent.Future<?>> sent = new ArrayList<>();
            long start = System.nanoTime();
            for (long i = from; i < from + count; i++) {
                if (rate > 0) {
                    long due = start + (i - from) * 1_000_000_000L / rate;
                    long wait = due - System.nanoTime();
                    if (wait > 0) {
                        Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                    }
                }
                sent.add(producer.send(new ProducerRecord<>(topic, "r-" + i, "k-" + (i % keys))));
            }
            for (var f : sent) {
                f.get(60, TimeUnit.SECONDS);
            }
        }
        System.out.println("produced " + count);
    }

    /** Reads TOPIC from the start to the end offsets it had when called. */
    static <K, V> void readAll(String bootstrap, String topic, KafkaConsumer<K, V> consumer,
            java.util.function.Consumer<ConsumerRecord<K, V>> each) {
        List<TopicPartition> tps = new ArrayList<>();
        for (var info : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
            tps.add(new TopicPartition(topic, info.partition()));
        }
        consumer.assign(tps);
        consumer.seekToBeginning(tps);
        Map<TopicPartition, Long> end = consumer.endOffsets(tps, Duration.ofSeconds(30));
        long deadline = System.currentTimeMillis() + 60_000;
        while (true) {
            boolean atEnd = true;
            for (TopicPartition tp : tps) {
                if (consumer.position(tp, Duration.ofSeconds(30)) < end.get(tp)) {
                    atEnd = false;
                }
            }
            if (atEnd) {
                return;
            }
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("did not reach the end offsets " + end + " of " + topic);
            }
            for (ConsumerRecord<K, V> r : consumer.poll(Duration.ofMillis(500))) {
                if (r.offset() < end.get(new TopicPartition(r.topic(), r.partition()))) {
                    each.accept(r);
                }
            }
        }
    }

    static Properties consumerProps(String bootstrap, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        return p;
    }

    static void counts(String bootstrap, String topic, String isolation) {
        Map<String, Long> last = new TreeMap<>();
        try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(consumerProps(bootstrap, isolation),
                new StringDeserializer(), new LongDeserializer())) {
            readAll(bootstrap, topic, consumer, r -> last.put(r.key(), r.value()));
        }
        last.forEach((k, v) -> System.out.println(k + " " + v));
    }

    static void history(String bootstrap, String topic, String isolation) {
        Map<Integer, List<String>> byPartition = new TreeMap<>();
        try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(consumerProps(bootstrap, isolation),
                new StringDeserializer(), new LongDeserializer())) {
            readAll(bootstrap, topic, consumer, r -> byPartition.computeIfAbsent(r.partition(), k -> new ArrayList<>())
                    .add(r.key() + " " + r.value()));
        }
        byPartition.values().forEach(lines -> lines.forEach(System.out::println));
    }

    static void scan(String bootstrap, String topic, String isolation) {
        long[] records = {0};
        long[] bytes = {0};
        Set<String> keys = new HashSet<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProps(bootstrap, isolation),
                new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            readAll(bootstrap, topic, consumer, r -> {
                records[0]++;
                bytes[0] += (r.key() == null ? 0 : r.key().length) + (r.value() == null ? 0 : r.value().length);
                keys.add(r.partition() + ":" + (r.key() == null ? "" : new String(r.key())));
            });
        }
        System.out.println("records=" + records[0] + " keys=" + keys.size() + " bytes=" + bytes[0]);
    }

    static void configs(String bootstrap, String topic) throws Exception {
        Map<String, Object> p = new HashMap<>();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Map<ConfigResource, Config> all = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS);
            Collection<ConfigEntry> entries = all.get(res).entries();
            for (ConfigEntry e : entries) {
                if (e.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG) {
                    System.out.println(e.name() + "=" + e.value());
                }
            }
        }
    }

    static void create(String bootstrap, int partitions, List<String> topics) throws Exception {
        Map<String, Object> p = new HashMap<>();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        List<NewTopic> news = new ArrayList<>();
        for (String topic : topics) {
            news.add(new NewTopic(topic, partitions, (short) 1));
        }
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(news).all().get(30, TimeUnit.SECONDS);
        }
    }

    private StreamsCompat() {}
}
