// Command loadgen is the benchmark's second load generator, built on franz-go
// rather than the Java client: Kafka's ProducerPerformance needs about a core
// of the benchmark machine's two, so its results measure the client as much as
// the broker. It runs against any Kafka-protocol broker.
//
//	loadgen -mode produce -bootstrap HOST:PORT -topic T -records N [-rate R] ...
//	loadgen -mode consume -bootstrap HOST:PORT -topic T -records N [-group G]
//
// Each run ends with one line on stdout, "RESULT <mode> key=value ...", for the
// harness (benches/e2e/bench/loadgen.py) to parse; progress, one line a
// second, and errors go to stderr. The exit status is 0 only if every record
// was acknowledged (produce) or read (consume); 2 for bad flags.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const mib = 1 << 20

// At most this many produce errors are printed; the rest are only counted, so
// that a broker refusing everything does not flood the log.
const maxPrintedErrors = 20

// The rate limiter is a token bucket this deep: how far it may fall behind
// its schedule and still catch up. Sleeps on Linux last at least about a
// millisecond, so at thousands of records a second the records that came due
// during one sleep go out back to back anyway; and on a loaded two-core
// machine the sender is now and then descheduled for several milliseconds
// (with 5 ms here, runs on the busy benchmark machine lost 2-4% of their
// rate). Up to 20 ms is made up at once: at 5 MiB/s that is 100 KiB, two
// lingers' worth at franz-go's default 10 ms, so the broker sees somewhat
// fuller batches rather than a burst of requests. A longer lag (Produce
// blocked on a full buffer, a long stall) is dropped and shows as a lower
// records_per_s.
const maxLag = 20 * time.Millisecond

type config struct {
	mode        string
	bootstrap   string
	topic       string
	records     int64
	recordSize  int
	rate        float64
	lingerMs    int
	batchBytes  int
	maxInflight int
	set         map[string]bool // flags given, where the default is franz-go's own
	warmup      int64
	group       string
	timeout     time.Duration
}

// Flags only one mode understands; naming one in the other mode is an error
// rather than silently ignored.
var modeFlags = map[string][]string{
	"produce": {"record-size", "rate", "linger-ms", "batch-bytes", "max-inflight", "warmup-records"},
	"consume": {"group"},
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if errors.Is(err, errUsage) { // the flag package has said what is wrong
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		fmt.Fprintln(os.Stderr, "run loadgen -h for the flags")
		os.Exit(2)
	}
	var ok bool
	switch cfg.mode {
	case "produce":
		ok = produce(cfg)
	case "consume":
		ok = consume(cfg)
	}
	if !ok {
		os.Exit(1)
	}
}

// errUsage: flags the flag package could not parse, already reported by it.
var errUsage = errors.New("usage")

func parseFlags(args []string, out io.Writer) (config, error) {
	var c config
	var timeoutS float64
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.mode, "mode", "", "produce or consume (required)")
	fs.StringVar(&c.bootstrap, "bootstrap", "", "HOST:PORT[,HOST:PORT...] of the broker(s) (required)")
	fs.StringVar(&c.topic, "topic", "", "topic to produce to or consume from (required)")
	fs.Int64Var(&c.records, "records", 0, "number of records to produce or consume (required)")
	fs.IntVar(&c.recordSize, "record-size", 1024, "produce: bytes of random payload per record")
	fs.Float64Var(&c.rate, "rate", -1, "produce: records per second, -1 for as fast as the broker takes them")
	fs.IntVar(&c.lingerMs, "linger-ms", 0, "produce: linger per partition in ms (default: franz-go's, 10)")
	fs.IntVar(&c.batchBytes, "batch-bytes", 0, "produce: maximum record batch bytes (default: franz-go's, 1000012)")
	fs.IntVar(&c.maxInflight, "max-inflight", 0,
		"produce: produce requests in flight per broker; turns idempotence off, as franz-go only\n"+
			"allows setting it for a non-idempotent producer (default: idempotent, 5 in flight)")
	fs.Int64Var(&c.warmup, "warmup-records", 0, "produce: leave the first N records out of the latencies")
	fs.StringVar(&c.group, "group", "", "consume: consumer group (default: no group, every partition from its start)")
	fs.Float64Var(&timeoutS, "timeout-s", 0, "give up after this many seconds (default 120 to consume, 600 to produce)")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: loadgen -mode produce|consume -bootstrap HOST:PORT -topic T -records N [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, errUsage
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	switch c.mode {
	case "produce", "consume":
	case "":
		return c, errors.New("-mode is required (produce or consume)")
	default:
		return c, fmt.Errorf("-mode %q: must be produce or consume", c.mode)
	}
	var misplaced []string
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		c.set[f.Name] = true
		for mode, names := range modeFlags {
			if mode != c.mode && slices.Contains(names, f.Name) {
				misplaced = append(misplaced, "-"+f.Name)
			}
		}
	})
	if len(misplaced) > 0 {
		return c, fmt.Errorf("%s: not a flag of -mode %s", strings.Join(misplaced, ", "), c.mode)
	}

	switch {
	case c.bootstrap == "":
		return c, errors.New("-bootstrap is required")
	case c.topic == "":
		return c, errors.New("-topic is required")
	case c.records <= 0:
		return c, fmt.Errorf("-records %d: must be positive", c.records)
	case c.recordSize <= 0:
		return c, fmt.Errorf("-record-size %d: must be positive", c.recordSize)
	case c.rate != -1 && c.rate <= 0:
		return c, fmt.Errorf("-rate %v: must be positive, or -1 for unlimited", c.rate)
	case c.lingerMs < 0:
		return c, fmt.Errorf("-linger-ms %d: must be 0 or more", c.lingerMs)
	case c.set["batch-bytes"] && (c.batchBytes < 512 || c.batchBytes > 1<<30):
		// franz-go's bounds; a batch must also hold one whole record.
		return c, fmt.Errorf("-batch-bytes %d: must be between 512 and %d", c.batchBytes, 1<<30)
	case c.set["max-inflight"] && c.maxInflight <= 0:
		return c, fmt.Errorf("-max-inflight %d: must be positive", c.maxInflight)
	case c.warmup < 0 || c.warmup >= c.records:
		return c, fmt.Errorf("-warmup-records %d: must be at least 0 and less than -records %d", c.warmup, c.records)
	case timeoutS < 0:
		return c, fmt.Errorf("-timeout-s %v: must be positive", timeoutS)
	}
	switch {
	case timeoutS > 0:
		c.timeout = time.Duration(timeoutS * float64(time.Second))
	case c.mode == "consume":
		c.timeout = 120 * time.Second
	default:
		// Long enough for a slow backend (S3) at the benchmark's sizes; the
		// harness's own limit for a client run is 900 s.
		c.timeout = 600 * time.Second
	}
	return c, nil
}

// progress prints cumulative records and the rate over the last second to
// stderr every second until stop is closed, so that a run's steady state (or
// its stalls) can be seen in the log.
func progress(start time.Time, records, bytes *atomic.Int64, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastR, lastB int64
	last := start
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			r, b := records.Load(), bytes.Load()
			dt := now.Sub(last).Seconds()
			fmt.Fprintf(os.Stderr, "t=%.1f records=%d records_per_s=%.0f mib_per_s=%.2f\n",
				now.Sub(start).Seconds(), r, float64(r-lastR)/dt, float64(b-lastB)/mib/dt)
			lastR, lastB, last = r, b, now
		}
	}
}

func seedBrokers(bootstrap string) []string {
	return strings.Split(bootstrap, ",")
}

// ping fails fast, with a clear message, when the broker cannot be reached at
// all, instead of every record failing (or the consumer waiting) until the
// timeout.
func ping(cl *kgo.Client, bootstrap string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: broker %s not reachable: %v\n", bootstrap, err)
		return false
	}
	return true
}

// pacer hands out one send slot per 1/rate seconds on a fixed schedule.
type pacer struct {
	interval time.Duration
	next     time.Time
	dropped  time.Duration // schedule given up after falling behind
	drops    int
}

func (p *pacer) wait() {
	now := time.Now()
	if ahead := p.next.Sub(now); ahead > 0 {
		time.Sleep(ahead)
	} else if -ahead > maxLag {
		// Behind by more than the timer's granularity explains: restart the
		// schedule here rather than send the missed records in a burst.
		p.dropped += -ahead
		p.drops++
		p.next = now
	}
	p.next = p.next.Add(p.interval)
}

func produce(c config) bool {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seedBrokers(c.bootstrap)...),
		kgo.DefaultProduceTopic(c.topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// As ProducerPerformance (compression.type=none): franz-go would
		// otherwise snappy-compress every batch of the incompressible payload
		// only to throw the result away, client CPU for nothing.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	}
	if c.set["linger-ms"] { // -linger-ms 0 means no linger
		opts = append(opts, kgo.ProducerLinger(time.Duration(c.lingerMs)*time.Millisecond))
	}
	if c.set["batch-bytes"] {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(c.batchBytes)))
	}
	if c.set["max-inflight"] {
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(c.maxInflight))
		fmt.Fprintf(os.Stderr, "loadgen: -max-inflight %d: idempotent writes off (acks=all still)\n", c.maxInflight)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: client configuration: %v\n", err)
		os.Exit(2)
	}
	defer cl.Close()
	if !ping(cl, c.bootstrap) {
		return false
	}

	// One random payload, shared by every record (franz-go does not modify a
	// record's value): random so that nothing on the way can compress it,
	// shared so that generating it costs nothing during the run.
	payload := make([]byte, c.recordSize)
	_, _ = rand.Read(payload)

	// What the promises report, under one mutex: they run on the client's
	// goroutines, and after a timeout some still run while the result is
	// printed; closed shuts them out then, so that the result, the message
	// and the exit status agree. acked and ackedBytes are atomics as well for
	// the progress lines.
	var (
		mu         sync.Mutex
		closed     bool
		lat        = make([]time.Duration, 0, c.records-c.warmup) // after the warm-up, in completion order
		failed     int64
		acked      atomic.Int64
		ackedBytes atomic.Int64
		// When the warm-up's last record was acknowledged (Unix ns), and the
		// bytes acknowledged by then: the steady rate is measured from there.
		warmedAt    atomic.Int64
		warmedBytes atomic.Int64
	)

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	stop := make(chan struct{})
	start := time.Now()
	go progress(start, &acked, &ackedBytes, stop)

	var pace *pacer
	if c.rate > 0 {
		pace = &pacer{interval: time.Duration(float64(time.Second) / c.rate), next: start}
	}
	for i := int64(0); i < c.records && ctx.Err() == nil; i++ {
		if pace != nil {
			pace.wait()
		}
		steady := i >= c.warmup
		// Measured from before Produce, which blocks while the client's buffer
		// is full: that wait is part of the latency, as in ProducerPerformance.
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: payload}, func(r *kgo.Record, err error) {
			d := time.Since(sent)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case closed:
			case err != nil:
				failed++
				if failed <= maxPrintedErrors {
					fmt.Fprintf(os.Stderr, "loadgen: produce error (partition %d): %v\n", r.Partition, err)
				} else if failed == maxPrintedErrors+1 {
					fmt.Fprintln(os.Stderr, "loadgen: further produce errors only counted")
				}
			default:
				if steady {
					lat = append(lat, d)
				}
				total := ackedBytes.Add(int64(len(r.Value)))
				if acked.Add(1) == c.warmup {
					warmedAt.Store(time.Now().UnixNano())
					warmedBytes.Store(total)
				}
			}
		})
	}
	flushErr := cl.Flush(ctx)
	elapsed := time.Since(start)
	mu.Lock()
	closed = true
	n, bytes, errs := acked.Load(), ackedBytes.Load(), failed
	mu.Unlock()
	close(stop)
	if pace != nil && pace.drops > 0 {
		// The client could not keep to the rate (CPU starved, or Produce
		// blocked on a full buffer): seen here, and in a lower records_per_s.
		fmt.Fprintf(os.Stderr, "loadgen: fell behind the rate %d times, %s of schedule dropped\n",
			pace.drops, pace.dropped.Round(time.Millisecond))
	}

	ok := true
	if flushErr != nil || ctx.Err() != nil {
		fmt.Fprintf(os.Stderr, "loadgen: gave up after %s (-timeout-s): %d of %d records acknowledged\n",
			c.timeout, n, c.records)
		ok = false
	}
	slices.Sort(lat)
	secs := elapsed.Seconds()
	// After the warm-up (the whole run's without one).
	steadyBytes, steadySecs := bytes, secs
	if at := warmedAt.Load(); at != 0 {
		steadyBytes = bytes - warmedBytes.Load()
		steadySecs = start.Add(elapsed).Sub(time.Unix(0, at)).Seconds()
	}
	fmt.Printf("RESULT produce records=%d bytes=%d seconds=%.3f records_per_s=%.1f mib_per_s=%.3f "+
		"steady_mib_per_s=%.3f steady_records=%d avg_ms=%.3f p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f "+
		"p999_ms=%.3f max_ms=%.3f errors=%d\n",
		n, bytes, secs, float64(n)/secs, float64(bytes)/mib/secs,
		float64(steadyBytes)/mib/max(steadySecs, 1e-9), len(lat), ms(mean(lat)), ms(percentile(lat, 0.50)), ms(percentile(lat, 0.95)),
		ms(percentile(lat, 0.99)), ms(percentile(lat, 0.999)), ms(percentile(lat, 1)), errs)
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: %d produce errors\n", errs)
		ok = false
	}
	return ok && n == c.records
}

func consume(c config) bool {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seedBrokers(c.bootstrap)...),
		kgo.ConsumeTopics(c.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	// With a group, the time until the group's assignment is kept apart from
	// the reading, as ConsumerPerformance reports "rebalance" and "fetch" time
	// apart (and the harness compares the fetch rate).
	var assigned atomic.Int64 // unix nanoseconds of the first assignment
	if c.group != "" {
		opts = append(opts, kgo.ConsumerGroup(c.group),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
				assigned.CompareAndSwap(0, time.Now().UnixNano())
			}))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: client configuration: %v\n", err)
		os.Exit(2)
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var seen, bytes atomic.Int64
	stop := make(chan struct{})
	start := time.Now()
	go progress(start, &seen, &bytes, stop)

	ok := ping(cl, c.bootstrap)
	for ok && seen.Load() < c.records {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "loadgen: gave up after %s (-timeout-s): %d of %d records read\n",
				c.timeout, seen.Load(), c.records)
			ok = false
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			// Errors the client retries itself (a leader moving, say) are
			// worth seeing but not fatal; the timeout ends a run that does not
			// recover.
			fmt.Fprintf(os.Stderr, "loadgen: fetch error (%s/%d): %v\n", t, p, err)
		})
		// Counted up to exactly -records, as the last fetch may hold more.
		fetches.EachRecord(func(r *kgo.Record) {
			if seen.Load() < c.records {
				bytes.Add(int64(len(r.Key) + len(r.Value)))
				seen.Add(1)
			}
		})
	}
	end := time.Now()
	close(stop)

	total := end.Sub(start)
	rebalance := time.Duration(0)
	if a := assigned.Load(); a != 0 {
		rebalance = time.Unix(0, a).Sub(start)
	}
	fetch := (total - rebalance).Seconds()
	n, b := seen.Load(), bytes.Load()
	fmt.Printf("RESULT consume records=%d bytes=%d seconds=%.3f mib_per_s=%.3f records_per_s=%.1f "+
		"rebalance_ms=%.1f fetch_seconds=%.3f mib_per_s_total=%.3f\n",
		n, b, total.Seconds(), float64(b)/mib/fetch, float64(n)/fetch,
		ms(rebalance), fetch, float64(b)/mib/total.Seconds())
	return ok && n == c.records
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mean(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	var sum time.Duration
	for _, x := range xs {
		sum += x
	}
	return sum / time.Duration(len(xs))
}

// percentile of sorted xs, by the rule ProducerPerformance uses (the element
// at index floor(n*p)), so that the two generators' percentiles compare.
func percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	return xs[min(int(float64(len(xs))*p), len(xs)-1)]
}
