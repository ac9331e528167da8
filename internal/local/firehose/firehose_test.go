package firehose

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/taxistream/taxistream/internal/local/stream"
)

var ctx = context.Background()

var _ shardReader = (*stream.Stream)(nil)

type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// bucket is an in-memory S3 PutObject.
type bucket struct {
	mu      sync.Mutex
	objects map[string][]byte
	fail    int // fail this many next puts
}

func (b *bucket) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail > 0 {
		b.fail--
		return nil, errors.New("injected: service unavailable")
	}
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	if b.objects == nil {
		b.objects = map[string][]byte{}
	}
	if aws.ToString(in.Bucket) != "lake" {
		return nil, fmt.Errorf("wrong bucket %q", aws.ToString(in.Bucket))
	}
	b.objects[aws.ToString(in.Key)] = body
	return &s3.PutObjectOutput{}, nil
}

func (b *bucket) keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var k []string
	for key := range b.objects {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// content returns the (gunzipped) content of every object under prefix, in key order.
func (b *bucket) content(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for _, k := range b.keys() {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		body := b.objects[k]
		if strings.HasSuffix(k, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
		}
		out = append(out, string(body))
	}
	return out
}

var t0 = time.Date(2024, 3, 5, 7, 8, 9, 123e6, time.UTC)

type env struct {
	s   *stream.Stream
	c   *clock
	b   *bucket
	f   *Firehose
	cfg Config
}

func setup(t *testing.T, shards int, cfg Config) *env {
	t.Helper()
	c := &clock{t: t0}
	s, err := stream.New(stream.Config{Name: "trips", ShardCount: shards, LimitsOff: true, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DeliveryStreamName = "trips-archive"
	cfg.StreamName = "trips"
	cfg.Bucket = "lake"
	cfg.Now = c.Now
	return &env{s: s, c: c, b: &bucket{}, cfg: cfg}
}

func (e *env) start(t *testing.T) {
	t.Helper()
	f, err := New(e.cfg, e.s, e.b)
	if err != nil {
		t.Fatal(err)
	}
	e.f = f
}

func (e *env) put(t *testing.T, key string, data ...[]byte) {
	t.Helper()
	var recs []types.PutRecordsRequestEntry
	for _, d := range data {
		recs = append(recs, types.PutRecordsRequestEntry{Data: d, PartitionKey: aws.String(key)})
	}
	out, err := e.s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("trips"), Records: recs})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %v %v", err, out)
	}
}

func lines(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf(`{"%s":%d}`+"\n", prefix, i))
	}
	return out
}

func join(recs [][]byte) string { return string(bytes.Join(recs, nil)) }

// aggregate builds a KPL aggregated record by hand (magic, protobuf AggregatedRecord, MD5), independent
// of internal/kpl, so the test cross-checks the de-aggregation the Firehose uses.
func aggregate(keys []string, data [][]byte) []byte {
	var body []byte
	index := map[string]uint64{}
	for _, k := range keys {
		if _, ok := index[k]; !ok {
			index[k] = uint64(len(index))
			body = protowire.AppendTag(body, 1, protowire.BytesType)
			body = protowire.AppendString(body, k)
		}
	}
	for i, d := range data {
		var rec []byte
		rec = protowire.AppendTag(rec, 1, protowire.VarintType)
		rec = protowire.AppendVarint(rec, index[keys[i]])
		rec = protowire.AppendTag(rec, 3, protowire.BytesType)
		rec = protowire.AppendBytes(rec, d)
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendBytes(body, rec)
	}
	sum := md5.Sum(body)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, body...)
	return append(out, sum[:]...)
}

func TestStartsAtLatest(t *testing.T) {
	e := setup(t, 2, Config{})
	e.put(t, "a", lines("old", 3)...)
	e.put(t, "b", lines("old", 3)...)
	e.start(t)
	e.put(t, "a", lines("new", 2)...)
	if err := e.f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(e.b.content(t, ""), "")
	if strings.Contains(got, "old") || got != join(lines("new", 2)) {
		t.Errorf("archived %q, want only the records written after creation", got)
	}
}

func TestDeaggregatesKPL(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t)
	users := lines("u", 3)
	e.put(t, "agg", aggregate([]string{"k1", "k2", "k1"}, users), []byte("plain\n"))
	if err := e.f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	e.f.Flush(ctx)
	if got, want := strings.Join(e.b.content(t, ""), ""), join(users)+"plain\n"; got != want {
		t.Errorf("archived %q, want %q", got, want)
	}
	if st := e.f.Stats(); st.RecordsIn != 2 || st.UserRecords != 4 || st.RecordsDelivered != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestCorruptAggregateGoesToErrorPrefix(t *testing.T) {
	e := setup(t, 1, Config{Prefix: "archive/!{timestamp:yyyy}/", ErrorOutputPrefix: "archive-errors/!{firehose:error-output-type}/!{timestamp:yyyy}/"})
	e.start(t)
	bad := aggregate([]string{"k", "k"}, lines("u", 2))
	bad[len(bad)-1] ^= 0xff // break the MD5
	e.put(t, "k", bad, []byte("good\n"))
	e.f.Poll(ctx)
	e.f.Flush(ctx)
	if got := strings.Join(e.b.content(t, "archive/"), ""); got != "good\n" {
		t.Errorf("archive has %q, want only the good record", got)
	}
	errs := e.b.content(t, "archive-errors/processing-failed/2024/")
	if len(errs) != 1 {
		t.Fatalf("error objects %v", e.b.keys())
	}
	var rec errorRecord
	if err := json.Unmarshal([]byte(errs[0]), &rec); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(rec.RawData)
	if !bytes.Equal(raw, bad) || rec.ErrorCode == "" || rec.PartitionKey != "k" || rec.SequenceNumber == "" {
		t.Errorf("error record %+v", rec)
	}
	if st := e.f.Stats(); st.ErrorRecords != 1 || st.ErrorObjects != 1 || st.RecordsDelivered != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestBufferSize: objects of at most the size hint, from a buffer in memory or in a file (SpoolDir),
// each with exactly its records.
func TestBufferSize(t *testing.T) {
	for _, spool := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "spool"}[spool], func(t *testing.T) {
			cfg := Config{BufferSizeMiB: 1, CompressionFormat: CompressionGZIP}
			if spool {
				cfg.SpoolDir = t.TempDir()
			}
			e := setup(t, 1, cfg)
			e.start(t)
			var recs [][]byte
			for i := 0; i < 25; i++ { // 100,000 bytes each: 10 fit in 1 MiB, 11 do not
				recs = append(recs, append([]byte(fmt.Sprintf("%09d", i)), append(bytes.Repeat([]byte("x"), 99_990), '\n')...))
			}
			for i := 0; i < 5; i++ {
				e.put(t, "k", recs[5*i:5*i+5]...)
			}
			if err := e.f.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			objs := e.b.content(t, "")
			if len(objs) != 2 || !slices.Contains(objs, join(recs[:10])) || !slices.Contains(objs, join(recs[10:20])) {
				t.Errorf("got %d objects, want 2 of 10 records each, in order", len(objs))
			}
			if st := e.f.Stats(); st.BufferedRecords != 5 || st.BufferedBytes != 500_000 {
				t.Errorf("buffered %d records, %d bytes; want 5, 500000", st.BufferedRecords, st.BufferedBytes)
			}
			if err := e.f.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if objs := e.b.content(t, ""); len(objs) != 3 || !slices.Contains(objs, join(recs[20:])) {
				t.Errorf("after the flush: %d objects, the last 5 records not one of them", len(objs))
			}
		})
	}
}

func TestBufferInterval(t *testing.T) {
	e := setup(t, 1, Config{BufferIntervalSeconds: 60})
	e.start(t)
	e.put(t, "k", []byte("a\n"))
	e.f.Poll(ctx)
	e.c.Advance(59 * time.Second)
	e.put(t, "k", []byte("b\n"))
	e.f.Poll(ctx)
	if n := len(e.b.keys()); n != 0 {
		t.Fatalf("%d objects before the interval", n)
	}
	e.c.Advance(time.Second)
	e.f.Poll(ctx)
	if got := e.b.content(t, ""); len(got) != 1 || got[0] != "a\nb\n" {
		t.Errorf("after 60 s: %q", got)
	}
}

func TestGzipRoundTripAndNaming(t *testing.T) {
	e := setup(t, 1, Config{
		CompressionFormat: CompressionGZIP,
		Prefix:            "archive/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/",
		ErrorOutputPrefix: "archive-errors/!{firehose:error-output-type}/",
	})
	e.start(t)
	recs := lines("gz", 100)
	e.put(t, "k", recs[:50]...)
	e.c.Advance(52*time.Minute + 50*time.Second) // 08:00:59.123: the next records arrive in another hour
	e.put(t, "k", recs[50:]...)
	e.c.Advance(2 * time.Hour) // delivered much later: the prefix still uses the oldest arrival
	e.f.Poll(ctx)
	e.f.Flush(ctx)
	keys := e.b.keys()
	re := regexp.MustCompile(`^archive/year=2024/month=03/day=05/hour=07/trips-archive-1-2024-03-05-07-08-09-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.gz$`)
	if len(keys) != 1 || !re.MatchString(keys[0]) {
		t.Fatalf("keys %q do not match %s", keys, re)
	}
	if got := e.b.content(t, ""); got[0] != join(recs) {
		t.Errorf("gunzipped content differs")
	}
	if st := e.f.Stats(); st.BytesWritten >= st.BytesIn {
		t.Errorf("gzip did not shrink: %+v", st)
	}
}

func TestDefaultPrefix(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t)
	e.put(t, "k", []byte("a\n"))
	e.f.Poll(ctx)
	e.f.Flush(ctx)
	if k := e.b.keys(); len(k) != 1 || !strings.HasPrefix(k[0], "2024/03/05/07/trips-archive-1-2024-03-05-07-08-09-") || strings.HasSuffix(k[0], ".gz") {
		t.Errorf("keys %q", k)
	}
}

func TestPrefixExpressions(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct{ prefix, want string }{
		{"!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/", "2024/01/02/03/"},
		{"dt=!{timestamp:yyyy-MM-dd}/h=!{timestamp:HH}/", "dt=2024-01-02/h=03/"},
		{"!{timestamp:yyyy'-'MM'-'dd}/", "2024-01-02/"},
		{"!{timestamp:yyyy-MM-dd'T'HH:mm:ss}", "2024-01-02T03:04:05"},
		{"!{timestamp:yy/M/d/H}/", "24/1/2/3/"},
		{"!{timestamp:'it''s' yyyy}", "it's 2024"},
		{"plain/", "plain/"},
	} {
		p, err := compilePrefix(tc.prefix, false)
		if err != nil {
			t.Errorf("%s: %v", tc.prefix, err)
			continue
		}
		if got := p.eval(ts, ""); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	p, _ := compilePrefix("e/!{firehose:error-output-type}/!{firehose:random-string}/", true)
	if got := p.eval(ts, "processing-failed"); !regexp.MustCompile(`^e/processing-failed/[a-zA-Z0-9]{11}/$`).MatchString(got) {
		t.Errorf("error prefix = %q", got)
	}
	for _, bad := range []string{"!{firehose:error-output-type}/", "!{timestamp:EEE}", "!{timestamp:yyyy", "!{partitionKeyFromQuery:zone}", "!{timestamp:'x}"} {
		if _, err := compilePrefix(bad, false); err == nil {
			t.Errorf("%s: compiled", bad)
		}
	}
	c := &clock{t: t0}
	s, _ := stream.New(stream.Config{Name: "trips", Now: c.Now})
	if _, err := New(Config{DeliveryStreamName: "d", StreamName: "trips", Bucket: "lake", Prefix: "a/!{timestamp:yyyy}/"}, s, &bucket{}); err == nil || !strings.Contains(err.Error(), "ErrorOutputPrefix is required") {
		t.Errorf("expressions without ErrorOutputPrefix: err = %v", err)
	}
}

func TestBusyAndIdle(t *testing.T) {
	e := setup(t, 2, Config{})
	e.start(t)
	if !e.f.Busy() || e.f.Idle() {
		t.Error("before the first poll: want busy")
	}
	e.put(t, "k", lines("x", 3)...)
	e.f.Poll(ctx)
	if e.f.Busy() || e.f.Idle() {
		t.Errorf("caught up with a full buffer: Busy %v Idle %v, want false false", e.f.Busy(), e.f.Idle())
	}
	e.f.Flush(ctx)
	if !e.f.Idle() {
		t.Error("after Flush: want idle")
	}
}

func TestDeliveryFailureIsRetried(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t)
	e.put(t, "k", []byte("a\n"))
	e.f.Poll(ctx)
	e.b.fail = 1
	if err := e.f.Flush(ctx); err == nil {
		t.Fatal("Flush with a failing bucket returned nil")
	}
	if st := e.f.Stats(); st.BufferedRecords != 1 {
		t.Fatalf("buffer lost on failure: %+v", st)
	}
	if err := e.f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.b.content(t, ""); len(got) != 1 || got[0] != "a\n" {
		t.Errorf("got %q", got)
	}
}

func TestReshardAndExpiredIterator(t *testing.T) {
	e := setup(t, 1, Config{})
	e.start(t)
	e.put(t, "k", []byte("before-split\n"))
	if _, err := e.s.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("trips"), ShardToSplit: aws.String(stream.ShardID(0)), NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	e.put(t, "k", []byte("after-split\n"))
	e.f.Poll(ctx) // reads the parent to its end and finds the children
	e.f.Poll(ctx)
	e.c.Advance(6 * time.Minute) // every iterator expires
	e.put(t, "k", []byte("after-expiry\n"))
	for i := 0; i < 3; i++ {
		e.f.Poll(ctx)
	}
	e.f.Flush(ctx)
	got := strings.Join(e.b.content(t, ""), "")
	for _, want := range []string{"before-split\n", "after-split\n", "after-expiry\n"} {
		if strings.Count(got, want) != 1 {
			t.Errorf("%q archived %d times, want once (archive %q)", want, strings.Count(got, want), got)
		}
	}
}

// With GZIP the buffer is compressed as records come in. A delivery that fails leaves a closed gzip
// member behind; records that arrive before the retry must end up in the same, single member.
func TestGzipDeliveryFailureThenMoreRecords(t *testing.T) {
	for _, spool := range []bool{false, true} {
		t.Run(fmt.Sprintf("spool=%v", spool), func(t *testing.T) {
			cfg := Config{CompressionFormat: CompressionGZIP}
			if spool {
				cfg.SpoolDir = t.TempDir()
			}
			e := setup(t, 1, cfg)
			e.start(t)
			defer e.f.Close()
			first, more := lines("first", 200), lines("more", 300)
			e.put(t, "k", first...)
			e.f.Poll(ctx)
			e.b.fail = 1
			if err := e.f.Flush(ctx); err == nil {
				t.Fatal("Flush with a failing bucket returned nil")
			}
			e.put(t, "k", more...)
			e.f.Poll(ctx)
			if st := e.f.Stats(); st.BufferedRecords != 500 || st.BufferedBytes != int64(len(join(first))+len(join(more))) {
				t.Fatalf("buffer after a failed delivery and more records: %+v", st)
			}
			if err := e.f.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			keys := e.b.keys()
			if len(keys) != 1 {
				t.Fatalf("objects %q, want one", keys)
			}
			body := bytes.NewReader(e.b.objects[keys[0]])
			zr, err := gzip.NewReader(body)
			if err != nil {
				t.Fatal(err)
			}
			zr.Multistream(false)
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if want := join(first) + join(more); string(got) != want {
				t.Errorf("first gzip member holds %d bytes, want the %d of every record", len(got), len(want))
			}
			if body.Len() != 0 {
				t.Errorf("%d bytes after the first gzip member, want one member", body.Len())
			}
			// The next object starts a new member from an empty buffer.
			e.put(t, "k", []byte("next\n"))
			e.f.Poll(ctx)
			if err := e.f.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if c := e.b.content(t, ""); len(c) != 2 || (c[0] != "next\n" && c[1] != "next\n") {
				t.Errorf("after the retry: %d objects, want the next one to hold only its record", len(c))
			}
		})
	}
}
