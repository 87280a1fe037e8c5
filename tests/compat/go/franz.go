package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var franzCodecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

func ctxT() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), ioTimeout)
}

func runFranz(r *runner, boot string) {
	base, err := kgo.NewClient(kgo.SeedBrokers(boot))
	if err != nil {
		r.outcome("run", err)
		return
	}
	defer base.Close()
	adm := kadm.NewClient(base)

	createTopic := func(topic string, partitions int32) error {
		ctx, cancel := ctxT()
		defer cancel()
		resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("CreateTopic: %w", err)
		}
		for {
			md, err := adm.Metadata(ctx, topic)
			if err == nil {
				if t, ok := md.Topics[topic]; ok && t.Err == nil && len(t.Partitions) == int(partitions) {
					return nil
				}
			}
			if ctx.Err() != nil {
				return fmt.Errorf("topic %s not in metadata with %d partitions: %v", topic, partitions, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	r.scenario("metadata", func() error {
		ctx, cancel := ctxT()
		defer cancel()
		md, err := adm.Metadata(ctx)
		if err != nil {
			return err
		}
		var addrs []string
		for _, b := range md.Brokers {
			addrs = append(addrs, fmt.Sprintf("%s:%d", b.Host, b.Port))
			if fmt.Sprintf("%s:%d", b.Host, b.Port) == boot {
				return nil
			}
		}
		return fmt.Errorf("brokers in metadata: %v", addrs)
	})
	r.scenario("create-topic", func() error { return createTopic(unique("fr-create"), 3) })

	consume := func(topic string, from kgo.Offset, count int) ([]rec, error) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(boot),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: from}}))
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		var got []rec
		ctx, cancel := ctxT()
		defer cancel()
		for len(got) < count && ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			for _, fe := range fs.Errors() {
				if fe.Err != context.DeadlineExceeded {
					return got, fmt.Errorf("fetch error after %d records: %v", len(got), fe.Err)
				}
			}
			fs.EachRecord(func(m *kgo.Record) {
				var hs []header
				for _, h := range m.Headers {
					hs = append(hs, header{h.Key, string(h.Value)})
				}
				got = append(got, rec{m.Key, m.Value, hs, m.Offset, m.Timestamp.UnixMilli()})
			})
		}
		return got, nil
	}

	for _, codec := range codecs {
		topic := unique("fr-" + codec)
		baseTs := time.Now().UnixMilli() - 600_000
		recs := codecRecords(codec, baseTs)
		ok := r.scenario(codec+"/produce", func() error {
			if err := createTopic(topic, 1); err != nil {
				return err
			}
			// Idempotent (franz-go's default), acks=all.
			cl, err := kgo.NewClient(kgo.SeedBrokers(boot), kgo.ProducerBatchCompression(franzCodecs[codec]),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
			if err != nil {
				return err
			}
			defer cl.Close()
			var offsets []int64
			for _, burst := range [][]rec{recs[:half], recs[half:]} {
				var krs []*kgo.Record
				for _, x := range burst {
					kr := &kgo.Record{Topic: topic, Partition: 0, Key: x.key, Value: x.value,
						Timestamp: time.UnixMilli(x.ts)}
					for _, h := range x.headers {
						kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.k, Value: []byte(h.v)})
					}
					krs = append(krs, kr)
				}
				ctx, cancel := ctxT()
				res := cl.ProduceSync(ctx, krs...)
				cancel()
				if err := res.FirstErr(); err != nil {
					return fmt.Errorf("produce: %w", err)
				}
				for _, pr := range res {
					offsets = append(offsets, pr.Record.Offset)
				}
			}
			for i, o := range offsets {
				if o != int64(i) {
					return fmt.Errorf("acknowledged offset #%d is %d (first: %v)", i, o, offsets[:10])
				}
			}
			return nil
		})
		if !ok {
			for _, s := range []string{"from-beginning", "from-offset", "from-timestamp"} {
				r.skip(codec+"/"+s, "produce failed")
			}
			continue
		}
		r.scenario(codec+"/from-beginning", func() error {
			got, err := consume(topic, kgo.NewOffset().AtStart(), nRecords)
			if err != nil {
				return err
			}
			return same(got, recs)
		})
		r.scenario(codec+"/from-offset", func() error {
			got, err := consume(topic, kgo.NewOffset().At(half), nRecords-half)
			if err != nil {
				return err
			}
			return same(got, recs[half:])
		})
		r.scenario(codec+"/from-timestamp", func() error {
			split := baseTs + half + gapMs/2
			ctx, cancel := ctxT()
			defer cancel()
			lo, err := adm.ListOffsetsAfterMilli(ctx, split, topic)
			if err != nil {
				return fmt.Errorf("ListOffsets: %w", err)
			}
			o, ok := lo.Lookup(topic, 0)
			if !ok || o.Err != nil || o.Offset != half {
				return fmt.Errorf("ListOffsets(time between bursts) = %+v, expected offset %d", o, half)
			}
			got, err := consume(topic, kgo.NewOffset().AfterMilli(split), nRecords-half)
			if err != nil {
				return err
			}
			return same(got, recs[half:])
		})
	}

	franzGroup(r, boot, createTopic)
	r.scenario("group/regex-skips-internal", func() error { return franzRegex(boot, adm, createTopic) })

	ctopic := unique("fr-configs")
	describe := func() (map[string]string, error) {
		ctx, cancel := ctxT()
		defer cancel()
		rcs, err := adm.DescribeTopicConfigs(ctx, ctopic)
		if err != nil {
			return nil, err
		}
		rc, err := rcs.On(ctopic, nil)
		if err != nil {
			return nil, err
		}
		if rc.Err != nil {
			return nil, rc.Err
		}
		out := map[string]string{}
		for _, c := range rc.Configs {
			out[c.Key] = c.MaybeValue()
		}
		return out, nil
	}
	r.scenario("configs/describe", func() error {
		if err := createTopic(ctopic, 1); err != nil {
			return err
		}
		cfg, err := describe()
		if err != nil {
			return err
		}
		if cfg["retention.ms"] == "" {
			return fmt.Errorf("retention.ms not described (%d configs)", len(cfg))
		}
		return nil
	})
	r.scenario("configs/alter", func() error {
		ctx, cancel := ctxT()
		defer cancel()
		resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms",
			Value: kadm.StringPtr("123456789")}}, ctopic)
		if err != nil {
			return fmt.Errorf("IncrementalAlterConfigs: %w", err)
		}
		for _, x := range resp {
			if x.Err != nil {
				return fmt.Errorf("IncrementalAlterConfigs: %v %s", x.Err, x.ErrMessage)
			}
		}
		cfg, err := describe()
		if err != nil {
			return err
		}
		if cfg["retention.ms"] != "123456789" {
			return fmt.Errorf("retention.ms is %q after the alter", cfg["retention.ms"])
		}
		return nil
	})
	r.scenario("delete-topic", func() error {
		ctx, cancel := ctxT()
		defer cancel()
		resp, err := adm.DeleteTopics(ctx, ctopic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("DeleteTopics: %w", err)
		}
		for {
			ts, err := adm.ListTopics(ctx)
			if err == nil && !ts.Has(ctopic) {
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("deleted topic still listed (%v)", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

type franzMember struct {
	cl    *kgo.Client
	mu    sync.Mutex
	parts map[int32]bool
	seen  map[string]bool
	next  map[int32]int64 // next offset of each owned partition, as consumed since it was assigned
}

// caughtUp: every owned partition has been consumed to offset perPartition.
func (m *franzMember) caughtUp() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.parts {
		if m.next[p] != perPartition {
			return false
		}
	}
	return len(m.parts) > 0
}

func (m *franzMember) assigned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.parts {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (m *franzMember) poll(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fs := m.cl.PollFetches(ctx)
	m.mu.Lock()
	fs.EachRecord(func(r *kgo.Record) {
		m.seen[string(r.Value)] = true
		m.next[r.Partition] = r.Offset + 1
	})
	m.mu.Unlock()
}

func (m *franzMember) commit() error {
	ctx, cancel := ctxT()
	defer cancel()
	return m.cl.CommitUncommittedOffsets(ctx)
}

// wireVersions keeps the highest version of each request kind the clients
// logging to it wrote (franz-go logs "wrote <Kind> v<N>" at debug level).
type wireVersions struct {
	mu      sync.Mutex
	highest map[string]int
}

func (w *wireVersions) Level() kgo.LogLevel { return kgo.LogLevelDebug }

func (w *wireVersions) Log(_ kgo.LogLevel, msg string, _ ...any) {
	var kind string
	var version int
	if n, _ := fmt.Sscanf(msg, "wrote %s v%d", &kind, &version); n != 2 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if version > w.highest[kind] {
		w.highest[kind] = version
	}
}

func (w *wireVersions) of(kind string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.highest[kind]
}

func franzGroup(r *runner, boot string, createTopic func(string, int32) error) {
	topic := unique("fr-group")
	group := unique("fr-g")
	versions := &wireVersions{highest: map[string]int{}}
	newMember := func() (*franzMember, error) {
		m := &franzMember{parts: map[int32]bool{}, seen: map[string]bool{}, next: map[int32]int64{}}
		cl, err := kgo.NewClient(kgo.SeedBrokers(boot), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.WithLogger(versions),
			kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.HeartbeatInterval(300*time.Millisecond), kgo.SessionTimeout(10*time.Second),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				m.mu.Lock()
				for _, p := range a[topic] {
					m.parts[p] = true
				}
				m.mu.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				m.mu.Lock()
				for _, p := range a[topic] {
					delete(m.parts, p)
					delete(m.next, p)
				}
				m.mu.Unlock()
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				m.mu.Lock()
				for _, p := range a[topic] {
					delete(m.parts, p)
					delete(m.next, p)
				}
				m.mu.Unlock()
			}))
		m.cl = cl
		return m, err
	}
	produce := func(vals map[int32][]string) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(boot), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			return err
		}
		defer cl.Close()
		var krs []*kgo.Record
		for p, vs := range vals {
			for _, v := range vs {
				krs = append(krs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(v), Value: []byte(v)})
			}
		}
		ctx, cancel := ctxT()
		defer cancel()
		return cl.ProduceSync(ctx, krs...).FirstErr()
	}
	var a, b *franzMember
	defer func() {
		for _, m := range []*franzMember{a, b} {
			if m != nil {
				m.cl.Close()
			}
		}
	}()
	ok := r.scenario("group/split", func() error {
		if err := createTopic(topic, groupParts); err != nil {
			return err
		}
		if err := produce(groupValues()); err != nil {
			return err
		}
		var err error
		if a, err = newMember(); err != nil {
			return err
		}
		if b, err = newMember(); err != nil {
			return err
		}
		deadline := time.Now().Add(ioTimeout)
		for time.Now().Before(deadline) {
			a.poll(200 * time.Millisecond)
			b.poll(200 * time.Millisecond)
			pa, pb := a.assigned(), b.assigned()
			all := map[int32]bool{}
			for _, p := range append(append([]int32{}, pa...), pb...) {
				all[p] = true
			}
			if len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == groupParts && len(all) == groupParts &&
				a.caughtUp() && b.caughtUp() {
				if err := a.commit(); err != nil {
					return fmt.Errorf("commit a: %w", err)
				}
				return b.commit()
			}
		}
		return fmt.Errorf("assignments a=%v b=%v, %d+%d of %d records seen", a.assigned(), b.assigned(),
			len(a.seen), len(b.seen), groupParts*perPartition)
	})
	if ok {
		ok = r.scenario("group/leave-rebalance", func() error {
			b.cl.Close() // leaves the group
			b = nil
			deadline := time.Now().Add(ioTimeout)
			for time.Now().Before(deadline) {
				a.poll(200 * time.Millisecond)
				if len(a.assigned()) == groupParts {
					if err := a.commit(); err != nil {
						return err
					}
					a.cl.Close()
					a = nil
					return nil
				}
			}
			return fmt.Errorf("remaining member has %v after the other left", a.assigned())
		})
	} else {
		r.skip("group/leave-rebalance", "group/split failed")
	}
	if !ok {
		r.skip("group/resume-from-commits", "an earlier group scenario failed")
		return
	}
	r.scenario("group/resume-from-commits", func() error {
		extra := map[int32][]string{}
		for p := int32(0); p < groupParts; p++ {
			extra[p] = []string{fmt.Sprintf("late-%d", p)}
		}
		if err := produce(extra); err != nil {
			return err
		}
		c, err := newMember()
		if err != nil {
			return err
		}
		defer c.cl.Close()
		deadline := time.Now().Add(ioTimeout)
		for time.Now().Before(deadline) && len(c.seen) < groupParts {
			c.poll(200 * time.Millisecond)
		}
		end := time.Now().Add(time.Second)
		for time.Now().Before(end) {
			c.poll(200 * time.Millisecond)
		}
		var seen []string
		for v := range c.seen {
			seen = append(seen, v)
		}
		sort.Strings(seen)
		if fmt.Sprint(seen) != "[late-0 late-1 late-2 late-3]" {
			return fmt.Errorf("restarted member read %v", seen)
		}
		return nil
	})
	// franz-go names topics by id in commits and offset fetches (v10) when
	// the broker advertises it; the members above committed and resumed so.
	r.scenario("group/offsets-by-topic-id", func() error {
		commit, fetch := versions.of("OffsetCommit"), versions.of("OffsetFetch")
		if commit != 10 || fetch != 10 {
			return fmt.Errorf("OffsetCommit v%d and OffsetFetch v%d written, want v10", commit, fetch)
		}
		return nil
	})
}

// franzRegex: a group member consuming the regex ".*" is assigned every
// partition of a user topic and reads its records, and never a partition of
// __consumer_offsets, which the broker lists as internal (franz-go skips
// internal topics when it evaluates a regex).
func franzRegex(boot string, adm *kadm.Client, createTopic func(string, int32) error) error {
	topic := unique("fr-regex")
	if err := createTopic(topic, groupParts); err != nil {
		return err
	}
	ctx, cancel := ctxT()
	defer cancel()
	pcl, err := kgo.NewClient(kgo.SeedBrokers(boot), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	var krs []*kgo.Record
	for p, vs := range groupValues() {
		for _, v := range vs {
			krs = append(krs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
		}
	}
	err = pcl.ProduceSync(ctx, krs...).FirstErr()
	pcl.Close()
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}

	var mu sync.Mutex
	assigned := map[string]map[int32]bool{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(boot), kgo.ConsumerGroup(unique("fr-regex-g")),
		kgo.ConsumeRegex(), kgo.ConsumeTopics(".*"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			mu.Lock()
			defer mu.Unlock()
			for t, ps := range a {
				if assigned[t] == nil {
					assigned[t] = map[int32]bool{}
				}
				for _, p := range ps {
					assigned[t][p] = true
				}
			}
		}))
	if err != nil {
		return err
	}
	defer cl.Close()
	seen := map[string]bool{}
	for len(seen) < len(krs) && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Topic == topic {
				seen[string(rec.Value)] = true
			}
		})
	}
	// Listed as internal (checked after the group's FindCoordinator, which
	// is when Kafka creates it).
	listed, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		return fmt.Errorf("ListTopicsWithInternal: %w", err)
	}
	if t, ok := listed["__consumer_offsets"]; !ok || !t.IsInternal {
		return fmt.Errorf("__consumer_offsets not listed as internal: %v", listed.Names())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(assigned["__consumer_offsets"]) > 0 {
		return fmt.Errorf("assigned __consumer_offsets %v", assigned["__consumer_offsets"])
	}
	if len(assigned[topic]) != groupParts || len(seen) != len(krs) {
		return fmt.Errorf("assigned %v of %s, %d of %d records seen", assigned[topic], topic, len(seen), len(krs))
	}
	return nil
}
