// franz-go's GroupTransactSession (kgo, v1.22.3) doing consume-transform-
// produce, for tests/compat/transactions.sh, which builds it into
// $STREAMHOUSE_CACHE/go/bin/txn (a module of its own, beside tests/compat/go).
//
//	txn -bootstrap B -in IN -out OUT -group G -txid T -n N
//
// N records are produced (not transactionally) to IN (2 partitions); a
// GroupTransactSession in group G (read_committed) copies them upper-cased
// to OUT (1 partition), one transaction per poll. The first transaction is
// ended with TryAbort, and the session rewinds to the committed offsets, so
// its batch is copied again. Then: read_committed reads exactly N records in
// OUT, each input's transform once; read_uncommitted reads N plus the
// aborted batch; the group's committed offsets are IN's end offsets.
// Prints "OK <detail>" or "FAIL <reason>" and exits 0 or 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	boot := flag.String("bootstrap", "", "bootstrap servers")
	in := flag.String("in", "", "input topic")
	out := flag.String("out", "", "output topic")
	group := flag.String("group", "", "consumer group")
	txid := flag.String("txid", "", "transactional id")
	n := flag.Int("n", 300, "records")
	flag.Parse()
	detail, err := run(*boot, *in, *out, *group, *txid, *n)
	if err != nil {
		fmt.Println("FAIL " + err.Error())
		os.Exit(1)
	}
	fmt.Println("OK " + detail)
}

func ctxT(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func run(boot, in, out, group, txid string, n int) (string, error) {
	base, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(boot, ",")...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return "", err
	}
	defer base.Close()
	adm := kadm.NewClient(base)
	ctx, cancel := ctxT(30 * time.Second)
	defer cancel()
	for topic, parts := range map[string]int32{in: 2, out: 1} {
		resp, err := adm.CreateTopic(ctx, parts, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return "", fmt.Errorf("CreateTopic %s: %w", topic, err)
		}
	}
	want := make([]string, 0, n)
	recs := make([]*kgo.Record, 0, n)
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("g-%04d", i)
		want = append(want, strings.ToUpper(v))
		recs = append(recs, &kgo.Record{Topic: in, Partition: int32(i % 2), Value: []byte(v)})
	}
	if err := base.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return "", fmt.Errorf("producing the input: %w", err)
	}

	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(strings.Split(boot, ",")...),
		kgo.TransactionalID(txid),
		kgo.TransactionTimeout(30*time.Second),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.RecordRetries(5),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		return "", err
	}
	done, aborted, ends := 0, 0, 0
	deadline := time.Now().Add(60 * time.Second)
	for done < n {
		if time.Now().After(deadline) {
			sess.Close()
			return "", fmt.Errorf("copied %d of %d records within 60 s (%d transactions ended)", done, n, ends)
		}
		pctx, pcancel := ctxT(2 * time.Second)
		fetches := sess.PollRecords(pctx, 40)
		pcancel()
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			sess.Close()
			return "", ferr
		}
		batch := fetches.Records()
		if len(batch) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			sess.Close()
			return "", fmt.Errorf("Begin: %w", err)
		}
		// Acknowledged before End: End(TryAbort) drops records still
		// buffered, and the aborted batch must reach the log.
		outRecs := make([]*kgo.Record, 0, len(batch))
		for _, r := range batch {
			outRecs = append(outRecs, &kgo.Record{Topic: out, Partition: 0, Value: []byte(strings.ToUpper(string(r.Value)))})
		}
		pctx, pcancel = ctxT(30 * time.Second)
		err := sess.ProduceSync(pctx, outRecs...).FirstErr()
		pcancel()
		if err != nil {
			sess.Close()
			return "", fmt.Errorf("producing to %s: %w", out, err)
		}
		try := kgo.TryCommit
		if aborted == 0 {
			try = kgo.TryAbort
		}
		ectx, ecancel := ctxT(30 * time.Second)
		committed, err := sess.End(ectx, try)
		ecancel()
		ends++
		if err != nil {
			sess.Close()
			return "", fmt.Errorf("End(%v): %w", try, err)
		}
		if try == kgo.TryAbort {
			if committed {
				sess.Close()
				return "", fmt.Errorf("End(TryAbort) committed")
			}
			aborted = len(batch)
			continue
		}
		if committed {
			done += len(batch)
		}
	}
	sess.Close()

	rc, err := readAll(boot, out, kgo.ReadCommitted(), n)
	if err != nil {
		return "", err
	}
	sorted := append([]string(nil), rc...)
	sort.Strings(sorted)
	if strings.Join(sorted, ",") != strings.Join(want, ",") {
		dup := map[string]int{}
		d := 0
		for _, v := range rc {
			dup[v]++
			if dup[v] == 2 {
				d++
			}
		}
		return "", fmt.Errorf("read_committed read %d records in %s (%d values twice), want exactly the %d transforms", len(rc), out, d, n)
	}
	ru, err := readAll(boot, out, kgo.ReadUncommitted(), n+aborted)
	if err != nil {
		return "", err
	}
	if len(ru) != n+aborted {
		return "", fmt.Errorf("read_uncommitted read %d records in %s, want %d (N plus the aborted batch of %d)", len(ru), out, n+aborted, aborted)
	}
	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return "", fmt.Errorf("FetchOffsets: %w", err)
	}
	endOffs, err := adm.ListEndOffsets(ctx, in)
	if err != nil {
		return "", fmt.Errorf("ListEndOffsets: %w", err)
	}
	var got, wantOffs []int64
	for p := int32(0); p < 2; p++ {
		o, _ := fetched.Lookup(in, p)
		e, _ := endOffs.Lookup(in, p)
		got = append(got, o.At)
		wantOffs = append(wantOffs, e.Offset)
	}
	if fmt.Sprint(got) != fmt.Sprint(wantOffs) || wantOffs[0]+wantOffs[1] != int64(n) {
		return "", fmt.Errorf("group %s committed offsets %v, want the input's end offsets %v", group, got, wantOffs)
	}
	return fmt.Sprintf("%d records copied in %d transactions, the first (%d records) aborted and redone; read_committed: %d, read_uncommitted: %d; group offsets %v = end offsets",
		n, ends, aborted, len(rc), len(ru), got), nil
}

// readAll reads partition 0 of topic from its start at the isolation level
// until it has at least min records and a further second brings nothing,
// or 30 s passed.
func readAll(boot, topic string, iso kgo.IsolationLevel, min int) ([]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(boot, ",")...), kgo.FetchIsolationLevel(iso),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := ctxT(time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		recs := fs.Records()
		for _, r := range recs {
			got = append(got, string(r.Value))
		}
		if len(recs) == 0 && len(got) >= min {
			return got, nil
		}
	}
	if len(got) >= min {
		return got, nil
	}
	return nil, fmt.Errorf("read %d records of %s within 30 s, want at least %d", len(got), topic, min)
}
