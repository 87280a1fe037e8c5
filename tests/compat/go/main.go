// Command compat runs the franz-go or Sarama compatibility scenarios against
// one StreamHouse broker and prints one "PASS CLIENT/LABEL/SCENARIO" or
// "FAIL CLIENT/LABEL/SCENARIO: why" line per scenario (tests/compat/go.sh
// starts the brokers and collects the lines).
//
//	compat -client franz-go|sarama -bootstrap 127.0.0.1:PORT -label embedded
//	compat secure ...   franz-go over a TLS or SASL listener (secure.go)
//
// Scenarios (the same for both clients, and as tests/compat/pyclients.py):
//
//	metadata                  the broker lists itself at its address
//	create-topic              admin CreateTopics, 3 partitions, seen in metadata
//	CODEC/produce             200 keyed records with headers and explicit
//	                          CreateTime, two acknowledged bursts, offsets 0..199
//	CODEC/from-beginning      all 200, exact (key, value, headers, offset, time)
//	CODEC/from-offset         from offset 100: records 100..199
//	CODEC/from-timestamp      ListOffsets(time between the bursts) == 100, then 100..199
//	group/split               two members of one group on a 4-partition topic get
//	                          disjoint non-empty assignments covering it; commit
//	group/leave-rebalance     one member leaves; the other gets all 4
//	group/resume-from-commits a restarted member reads only the newer records
//	group/regex-skips-internal (franz-go only) a member of a group consuming the
//	                          regex ".*" is assigned a user topic and never the
//	                          internal __consumer_offsets
//	configs/describe          DescribeConfigs has retention.ms
//	configs/alter             alter retention.ms, described back
//	delete-topic              the topic leaves the metadata
//
// for CODEC in none gzip snappy lz4 zstd. franz-go's producer is idempotent
// (its default); Sarama's is not (its default).
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

var codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

const (
	nRecords     = 200
	half         = nRecords / 2
	gapMs        = 10_000
	ioTimeout    = 30 * time.Second
	groupParts   = 4
	perPartition = 10
)

// knownGaps: scenario-name regex (after CLIENT/LABEL/) -> why it fails. A
// listed scenario that fails prints XFAIL; one that passes prints PASS.
var knownGaps = map[string]map[string]string{
	"franz-go": {},
	"sarama":   {},
}

type runner struct {
	client, label string
	failed        bool
}

func (r *runner) scenario(name string, body func() error) bool {
	t0 := time.Now()
	defer func() { fmt.Fprintf(os.Stderr, "%s/%s/%s: %.2fs\n", r.client, r.label, name, time.Since(t0).Seconds()) }()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return body()
	}()
	return r.outcome(name, err)
}

func (r *runner) outcome(name string, err error) bool {
	full := r.client + "/" + r.label + "/" + name
	if err == nil {
		fmt.Printf("PASS %s\n", full)
		return true
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if len(msg) > 600 {
		msg = msg[:600]
	}
	for pattern, why := range knownGaps[r.client] {
		if regexp.MustCompile("^(?:" + pattern + ")$").MatchString(name) {
			fmt.Printf("XFAIL %s: %s (%s)\n", full, why, msg)
			return false
		}
	}
	r.failed = true
	fmt.Printf("FAIL %s: %s\n", full, msg)
	return false
}

func (r *runner) skip(name, why string) { r.outcome(name, fmt.Errorf("not run: %s", why)) }

func unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%s", prefix, time.Now().Format("150405"), hex.EncodeToString(b))
}

type header struct{ k, v string }

type rec struct {
	key, value []byte
	headers    []header
	offset     int64
	ts         int64 // ms
}

func (a rec) equal(b rec) bool {
	if !bytes.Equal(a.key, b.key) || !bytes.Equal(a.value, b.value) || a.offset != b.offset || a.ts != b.ts ||
		len(a.headers) != len(b.headers) {
		return false
	}
	for i := range a.headers {
		if a.headers[i] != b.headers[i] {
			return false
		}
	}
	return true
}

func (a rec) String() string {
	return fmt.Sprintf("{key=%q value=%q headers=%v offset=%d ts=%d}", a.key, a.value, a.headers, a.offset, a.ts)
}

// codecRecords: the nRecords of one codec, offsets 0..199, burst 2 gapMs later.
func codecRecords(codec string, base int64) []rec {
	out := make([]rec, nRecords)
	for i := range out {
		ts := base + int64(i)
		if i >= half {
			ts += gapMs
		}
		out[i] = rec{
			key:     []byte(fmt.Sprintf("key-%d", i)),
			value:   []byte(fmt.Sprintf("value-%d-%s", i, codec)),
			headers: []header{{"a", "b"}, {"codec", codec}, {"i", fmt.Sprint(i)}},
			offset:  int64(i),
			ts:      ts,
		}
	}
	return out
}

func same(got, want []rec) error {
	for i := 0; i < len(got) && i < len(want); i++ {
		if !got[i].equal(want[i]) {
			return fmt.Errorf("record #%d differs: got %v, expected %v", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("got %d records, expected %d", len(got), len(want))
	}
	return nil
}

func groupValues() map[int32][]string {
	out := map[int32][]string{}
	for p := int32(0); p < groupParts; p++ {
		for i := 0; i < perPartition; i++ {
			out[p] = append(out[p], fmt.Sprintf("g-%d-%d", p, i))
		}
	}
	return out
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "secure" {
		os.Exit(runSecure(os.Args[2:]))
	}
	client := flag.String("client", "", "franz-go or sarama")
	bootstrap := flag.String("bootstrap", "", "host:port")
	label := flag.String("label", "", "backend label in scenario names")
	flag.Parse()
	r := &runner{client: *client, label: *label}
	switch *client {
	case "franz-go":
		runFranz(r, *bootstrap)
	case "sarama":
		runSarama(r, *bootstrap)
	default:
		fmt.Fprintln(os.Stderr, "compat: -client must be franz-go or sarama")
		os.Exit(2)
	}
	if r.failed {
		os.Exit(1)
	}
}
