package main

// The "secure" mode: franz-go over one SSL, SASL_SSL or SASL_PLAINTEXT
// listener, for tests/compat/secure_clients.sh (the other scenarios run on
// plain-text listeners only, so they say nothing about TLS or SASL).
//
//	compat secure -bootstrap 127.0.0.1:PORT -protocol SASL_SSL -ca ca.pem \
//	    [-cert client.pem -key client.key] \
//	    [-mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 -user alice -password secret] \
//	    [-records 100] [-metadata]
//
// Without -metadata: a fresh 3-partition topic (kadm), -records records
// produced (franz-go's idempotent producer, acks=all) and read back in a
// fresh consumer group; exit 0 when every record arrived exactly once. With
// -metadata: only a Metadata request; exit 0 when it is answered (the runner
// expects a refusal from -protocol PLAINTEXT on a TLS port). One line on
// stdout says what happened.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func runSecure(args []string) int {
	fs := flag.NewFlagSet("secure", flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "", "host:port")
	protocol := fs.String("protocol", "", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
	ca := fs.String("ca", "", "PEM file of the CA that issued the server certificate")
	cert := fs.String("cert", "", "PEM file of the client certificate (mTLS)")
	key := fs.String("key", "", "PEM file of the client certificate's key")
	mechanism := fs.String("mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	user := fs.String("user", "", "SASL user")
	password := fs.String("password", "", "SASL password")
	records := fs.Int("records", 100, "records to produce and read back")
	metadataOnly := fs.Bool("metadata", false, "only ask for metadata")
	_ = fs.Parse(args)

	opts, err := securityOpts(*protocol, *ca, *cert, *key, *mechanism, *user, *password)
	if err != nil {
		fmt.Println("setup:", err)
		return 2
	}
	opts = append(opts, kgo.SeedBrokers(*bootstrap), kgo.RequiredAcks(kgo.AllISRAcks()))
	if *metadataOnly {
		err = secureMetadata(opts)
	} else {
		err = secureRoundTrip(opts, *records)
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
}

func securityOpts(protocol, ca, cert, key, mechanism, user, password string) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	switch protocol {
	case "PLAINTEXT", "SASL_PLAINTEXT":
	case "SSL", "SASL_SSL":
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, err
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no certificate in %s", ca)
			}
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, err
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		// franz-go sets ServerName from the seed's host (127.0.0.1 here,
		// which the server certificate names as an IP address).
		opts = append(opts, kgo.DialTLSConfig(cfg))
	default:
		return nil, fmt.Errorf("unknown -protocol %q", protocol)
	}
	if protocol == "SASL_PLAINTEXT" || protocol == "SASL_SSL" {
		var m sasl.Mechanism
		switch mechanism {
		case "PLAIN":
			m = plain.Auth{User: user, Pass: password}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			m = scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
		default:
			return nil, fmt.Errorf("unknown -mechanism %q", mechanism)
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func secureMetadata(opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append(opts, kgo.RetryTimeout(10*time.Second))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("no metadata: %w", err)
	}
	fmt.Printf("metadata answered: %d broker(s)\n", len(md.Brokers))
	return nil
}

func secureRoundTrip(opts []kgo.Opt, n int) error {
	topic := unique("secure-franz")
	group := unique("secure-franz-group")
	cl, err := kgo.NewClient(append(opts, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()

	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("CreateTopic: %w", err)
	}
	want := map[string]bool{}
	batch := make([]*kgo.Record, 0, n)
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("record-%d", i)
		want[v] = true
		batch = append(batch, &kgo.Record{Topic: topic, Key: []byte(v), Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	got := map[string]int{}
	total := 0
	for total < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("read %d of %d records before the timeout", total, n)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("fetch %s/%d: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)]++
			total++
		})
	}
	for v := range want {
		if got[v] != 1 {
			return fmt.Errorf("%s read %d times", v, got[v])
		}
	}
	if total != n {
		return fmt.Errorf("read %d records, expected %d", total, n)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	fmt.Printf("%d records produced and read back in a group\n", n)
	return nil
}
