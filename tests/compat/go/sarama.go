package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

var saramaCodecs = map[string]sarama.CompressionCodec{
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	// Sarama picks request versions from this (3.6: headers, zstd, ...).
	c.Version = sarama.V3_6_0_0
	c.ClientID = "streamhouse-compat-sarama"
	c.Net.DialTimeout = 10 * time.Second
	c.Net.ReadTimeout = ioTimeout
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	// A consumer's Close waits out its fetch in flight: short fetch waits keep
	// each read at ~0.1 s instead of ~0.6 s.
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	return c
}

func runSarama(r *runner, boot string) {
	addrs := []string{boot}
	client, err := sarama.NewClient(addrs, saramaConfig())
	if err != nil {
		r.outcome("run", err)
		return
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		r.outcome("run", err)
		return
	}

	createTopic := func(topic string, partitions int32) error {
		if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
			return fmt.Errorf("CreateTopic: %w", err)
		}
		deadline := time.Now().Add(ioTimeout)
		for {
			_ = client.RefreshMetadata(topic)
			ps, err := client.Partitions(topic)
			if err == nil && len(ps) == int(partitions) {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("topic %s partitions %v (%v)", topic, ps, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	r.scenario("metadata", func() error {
		if err := client.RefreshMetadata(); err != nil {
			return err
		}
		var seen []string
		for _, b := range client.Brokers() {
			seen = append(seen, b.Addr())
			if b.Addr() == boot {
				return nil
			}
		}
		return fmt.Errorf("brokers in metadata: %v", seen)
	})
	r.scenario("create-topic", func() error { return createTopic(unique("sa-create"), 3) })

	consume := func(topic string, from int64, count int) ([]rec, error) {
		c, err := sarama.NewConsumer(addrs, saramaConfig())
		if err != nil {
			return nil, err
		}
		defer c.Close()
		pc, err := c.ConsumePartition(topic, 0, from)
		if err != nil {
			return nil, err
		}
		defer pc.Close()
		var got []rec
		timer := time.NewTimer(ioTimeout)
		defer timer.Stop()
		for len(got) < count {
			select {
			case m := <-pc.Messages():
				var hs []header
				for _, h := range m.Headers {
					hs = append(hs, header{string(h.Key), string(h.Value)})
				}
				got = append(got, rec{m.Key, m.Value, hs, m.Offset, m.Timestamp.UnixMilli()})
			case e := <-pc.Errors():
				return got, fmt.Errorf("consumer error after %d records: %v", len(got), e)
			case <-timer.C:
				return got, fmt.Errorf("timed out with %d of %d records", len(got), count)
			}
		}
		return got, nil
	}

	for _, codec := range codecs {
		topic := unique("sa-" + codec)
		baseTs := time.Now().UnixMilli() - 600_000
		recs := codecRecords(codec, baseTs)
		ok := r.scenario(codec+"/produce", func() error {
			if err := createTopic(topic, 1); err != nil {
				return err
			}
			cfg := saramaConfig()
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Return.Successes = true
			cfg.Producer.Compression = saramaCodecs[codec]
			cfg.Producer.Partitioner = sarama.NewManualPartitioner
			cfg.Net.MaxOpenRequests = 1 // in order, not idempotent
			p, err := sarama.NewSyncProducer(addrs, cfg)
			if err != nil {
				return err
			}
			defer p.Close()
			var offsets []int64
			for _, burst := range [][]rec{recs[:half], recs[half:]} {
				var msgs []*sarama.ProducerMessage
				for _, x := range burst {
					m := &sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.ByteEncoder(x.key),
						Value: sarama.ByteEncoder(x.value), Timestamp: time.UnixMilli(x.ts)}
					for _, h := range x.headers {
						m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.k), Value: []byte(h.v)})
					}
					msgs = append(msgs, m)
				}
				if err := p.SendMessages(msgs); err != nil {
					return fmt.Errorf("SendMessages: %w", err)
				}
				for _, m := range msgs {
					offsets = append(offsets, m.Offset)
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
			got, err := consume(topic, sarama.OffsetOldest, nRecords)
			if err != nil {
				return err
			}
			return same(got, recs)
		})
		r.scenario(codec+"/from-offset", func() error {
			got, err := consume(topic, half, nRecords-half)
			if err != nil {
				return err
			}
			return same(got, recs[half:])
		})
		r.scenario(codec+"/from-timestamp", func() error {
			o, err := client.GetOffset(topic, 0, baseTs+half+gapMs/2)
			if err != nil {
				return fmt.Errorf("GetOffset(time): %w", err)
			}
			if o != half {
				return fmt.Errorf("GetOffset(time between bursts) = %d, expected %d", o, half)
			}
			got, err := consume(topic, o, nRecords-half)
			if err != nil {
				return err
			}
			return same(got, recs[half:])
		})
	}

	saramaGroup(r, addrs, createTopic)

	ctopic := unique("sa-configs")
	describe := func() (map[string]string, error) {
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: ctopic})
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for _, e := range entries {
			out[e.Name] = e.Value
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
		v := "123456789"
		if err := admin.AlterConfig(sarama.TopicResource, ctopic, map[string]*string{"retention.ms": &v}, false); err != nil {
			return fmt.Errorf("AlterConfigs: %w", err)
		}
		cfg, err := describe()
		if err != nil {
			return err
		}
		if cfg["retention.ms"] != v {
			return fmt.Errorf("retention.ms is %q after the alter", cfg["retention.ms"])
		}
		return nil
	})
	r.scenario("delete-topic", func() error {
		if err := admin.DeleteTopic(ctopic); err != nil {
			return fmt.Errorf("DeleteTopic: %w", err)
		}
		deadline := time.Now().Add(ioTimeout)
		for {
			ts, err := admin.ListTopics()
			if err == nil {
				if _, ok := ts[ctopic]; !ok {
					return nil
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("deleted topic still listed (%v)", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// saramaMember is one consumer-group member: Consume() in a loop (it returns
// at each rebalance), its current claims, the values it saw; every message is
// marked and committed synchronously (auto-commit off).
type saramaMember struct {
	group  sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	parts  []int32
	seen   map[string]bool
	next   map[int32]int64 // next offset of each claimed partition, as consumed in this session
	errs   []error
}

// caughtUp: every claimed partition has been consumed to offset perPartition.
func (m *saramaMember) caughtUp() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.parts {
		if m.next[p] != perPartition {
			return false
		}
	}
	return len(m.parts) > 0
}

func (m *saramaMember) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parts = nil
	m.next = map[int32]int64{}
	for _, ps := range s.Claims() {
		m.parts = append(m.parts, ps...)
	}
	sort.Slice(m.parts, func(i, j int) bool { return m.parts[i] < m.parts[j] })
	return nil
}

func (m *saramaMember) Cleanup(sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	m.parts = nil
	m.mu.Unlock()
	return nil
}

func (m *saramaMember) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		m.mu.Lock()
		m.seen[string(msg.Value)] = true
		m.next[msg.Partition] = msg.Offset + 1
		m.mu.Unlock()
		s.MarkMessage(msg, "")
		s.Commit()
	}
	return nil
}

func (m *saramaMember) assigned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int32{}, m.parts...)
}

func (m *saramaMember) nseen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}

func (m *saramaMember) close() {
	m.cancel()
	_ = m.group.Close() // leaves the group
	<-m.done
}

func saramaGroup(r *runner, addrs []string, createTopic func(string, int32) error) {
	topic := unique("sa-group")
	groupID := unique("sa-g")
	newMember := func() (*saramaMember, error) {
		cfg := saramaConfig()
		cfg.Consumer.Offsets.AutoCommit.Enable = false
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
		cfg.Consumer.Group.Session.Timeout = 10 * time.Second
		cfg.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
		cfg.Consumer.Return.Errors = true
		g, err := sarama.NewConsumerGroup(addrs, groupID, cfg)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := &saramaMember{group: g, cancel: cancel, done: make(chan struct{}), seen: map[string]bool{},
			next: map[int32]int64{}}
		go func() {
			for range g.Errors() {
			}
		}()
		go func() {
			defer close(m.done)
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, m); err != nil {
					m.mu.Lock()
					m.errs = append(m.errs, err)
					m.mu.Unlock()
					if err == sarama.ErrClosedConsumerGroup {
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
		return m, nil
	}
	produce := func(vals map[int32][]string) error {
		cfg := saramaConfig()
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Return.Successes = true
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		p, err := sarama.NewSyncProducer(addrs, cfg)
		if err != nil {
			return err
		}
		defer p.Close()
		var msgs []*sarama.ProducerMessage
		for part, vs := range vals {
			for _, v := range vs {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: part,
					Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)})
			}
		}
		return p.SendMessages(msgs)
	}
	var a, b *saramaMember
	defer func() {
		for _, m := range []*saramaMember{a, b} {
			if m != nil {
				m.close()
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
			time.Sleep(200 * time.Millisecond)
			pa, pb := a.assigned(), b.assigned()
			all := map[int32]bool{}
			for _, p := range append(append([]int32{}, pa...), pb...) {
				all[p] = true
			}
			if len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == groupParts && len(all) == groupParts &&
				a.caughtUp() && b.caughtUp() {
				return nil
			}
		}
		return fmt.Errorf("assignments a=%v b=%v, %d+%d of %d records seen; errors a=%v b=%v", a.assigned(),
			b.assigned(), a.nseen(), b.nseen(), groupParts*perPartition, a.errs, b.errs)
	})
	if ok {
		ok = r.scenario("group/leave-rebalance", func() error {
			b.close()
			b = nil
			deadline := time.Now().Add(ioTimeout)
			for time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				if len(a.assigned()) == groupParts {
					a.close()
					a = nil
					return nil
				}
			}
			return fmt.Errorf("remaining member has %v after the other left; errors %v", a.assigned(), a.errs)
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
		defer c.close()
		deadline := time.Now().Add(ioTimeout)
		for time.Now().Before(deadline) && c.nseen() < groupParts {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Second)
		c.mu.Lock()
		var seen []string
		for v := range c.seen {
			seen = append(seen, v)
		}
		c.mu.Unlock()
		sort.Strings(seen)
		if fmt.Sprint(seen) != "[late-0 late-1 late-2 late-3]" {
			return fmt.Errorf("restarted member read %v", seen)
		}
		return nil
	})
}
