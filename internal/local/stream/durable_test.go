package stream

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func openDurable(t *testing.T, dir string, c *clock, shards int) *Stream {
	t.Helper()
	s, err := New(Config{Name: "trips", Dir: dir, ShardCount: shards, LimitsOff: true, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// readAll reads a shard from TRIM_HORIZON to its tip and returns the data of its records in order.
func readAll(t *testing.T, s *Stream, shard string) (data, seqs []string) {
	t.Helper()
	it := iter(t, s, shard, types.ShardIteratorTypeTrimHorizon, "", nil)
	for it != nil {
		out := get(t, s, it)
		for _, r := range out.Records {
			data = append(data, string(r.Data))
			seqs = append(seqs, aws.ToString(r.SequenceNumber))
		}
		if len(out.Records) == 0 {
			break
		}
		it = out.NextShardIterator
	}
	return data, seqs
}

func putN(t *testing.T, s *Stream, from, n int) {
	t.Helper()
	recs := make([]types.PutRecordsRequestEntry, n)
	for i := range recs {
		recs[i] = types.PutRecordsRequestEntry{Data: []byte(fmt.Sprintf("r%05d", from+i)), PartitionKey: aws.String(fmt.Sprint(i % 13))}
	}
	out := put(t, s, recs)
	if aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("%d entries failed", aws.ToInt32(out.FailedRecordCount))
	}
}

func TestDurableStreamContinuesAfterReopen(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	s := openDurable(t, dir, c, 2)
	putN(t, s, 0, 300)
	before0, seqs0 := readAll(t, s, ShardID(0))
	before1, _ := readAll(t, s, ShardID(1))
	if len(before0)+len(before1) != 300 || len(before0) == 0 || len(before1) == 0 {
		t.Fatalf("read %d + %d records, want 300 over both shards", len(before0), len(before1))
	}
	lastSeq := seqs0[len(seqs0)-1]
	s.Close()

	// A second process on the folder, started with a clock that is behind: sequence numbers still grow.
	c2 := &clock{t: t0.Add(-time.Hour)}
	s2 := openDurable(t, dir, c2, 2)
	if !s2.Reopened() {
		t.Error("Reopened() = false for a folder holding a stream")
	}
	after0, _ := readAll(t, s2, ShardID(0))
	if strings.Join(after0, ",") != strings.Join(before0, ",") {
		t.Fatalf("shard 0 after reopening holds %d records, want the %d written before", len(after0), len(before0))
	}
	// A consumer's checkpoint from the first process still works.
	it := iter(t, s2, ShardID(0), types.ShardIteratorTypeAfterSequenceNumber, seqs0[len(seqs0)-2], nil)
	if out := get(t, s2, it); len(out.Records) != 1 || aws.ToString(out.Records[0].SequenceNumber) != lastSeq {
		t.Errorf("AFTER_SEQUENCE_NUMBER of the earlier run: got %d records", len(out.Records))
	}
	putN(t, s2, 300, 300)
	_, seqs := readAll(t, s2, ShardID(0))
	for i := 1; i < len(seqs); i++ {
		if !seqLess(seqs[i-1], seqs[i]) {
			t.Fatalf("sequence numbers not increasing across the reopen: %s then %s", seqs[i-1], seqs[i])
		}
	}
	if st := s2.Stats(); st.RecordsHeld != 600 {
		t.Errorf("RecordsHeld = %d, want 600", st.RecordsHeld)
	}
}

func seqLess(a, b string) bool { return len(a) < len(b) || (len(a) == len(b) && a < b) }

func TestDurableStreamCutsATornTail(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	s := openDurable(t, dir, c, 1)
	putN(t, s, 0, 10)
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, ShardID(0), "*"+segmentSuffix))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	// A write cut short by a crash: half a frame at the end.
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{40, 0, 0, 0, 1, 2, 3, 4, 5, 6})
	f.Close()
	s2 := openDurable(t, dir, c, 1)
	putN(t, s2, 10, 5)
	data, _ := readAll(t, s2, ShardID(0))
	if len(data) != 15 || data[9] != "r00009" || data[10] != "r00010" {
		t.Errorf("after a torn tail: %d records %v", len(data), data)
	}
}

func TestDurableStreamRefusesAnotherLayout(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	openDurable(t, dir, c, 1).Close()
	for _, cfg := range []Config{{Name: "trips", ShardCount: 4}, {Name: "other", ShardCount: 1}} {
		cfg.Dir, cfg.Now = dir, c.Now
		if _, err := New(cfg); !errors.Is(err, ErrLayoutChanged) {
			t.Errorf("%s with %d shards on a 1-shard trips folder: err = %v, want ErrLayoutChanged", cfg.Name, cfg.ShardCount, err)
		}
	}
}

func TestDurableStreamKeepsReshards(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	s := openDurable(t, dir, c, 1)
	putN(t, s, 0, 5)
	half := "170141183460469231731687303715884105728"
	if _, err := s.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("trips"), ShardToSplit: aws.String(ShardID(0)), NewStartingHashKey: aws.String(half)}); err != nil {
		t.Fatal(err)
	}
	putN(t, s, 5, 5)
	want, _ := s.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("trips")})
	s.Close()
	s2 := openDurable(t, dir, c, 2)
	got, _ := s2.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("trips")})
	if fmt.Sprint(shardIDs(got.Shards)) != fmt.Sprint(shardIDs(want.Shards)) || aws.ToString(got.Shards[0].SequenceNumberRange.EndingSequenceNumber) == "" {
		t.Errorf("shards after reopening: %v, want %v (the parent closed)", shardIDs(got.Shards), shardIDs(want.Shards))
	}
	parent, _ := readAll(t, s2, ShardID(0))
	c1, _ := readAll(t, s2, ShardID(1))
	c2, _ := readAll(t, s2, ShardID(2))
	if len(parent) != 5 || len(c1)+len(c2) != 5 {
		t.Errorf("records after reopening: parent %d, children %d + %d", len(parent), len(c1), len(c2))
	}
}

func shardIDs(sh []types.Shard) []string {
	var ids []string
	for _, s := range sh {
		ids = append(ids, aws.ToString(s.ShardId))
	}
	return ids
}

// Segments roll, retention deletes whole segments once all their records are trimmed, and reads cross
// segment boundaries.
func TestDurableStreamSegments(t *testing.T) {
	old := diskSegmentBytes
	diskSegmentBytes = 4 << 10
	t.Cleanup(func() { diskSegmentBytes = old })
	dir := t.TempDir()
	c := &clock{t: t0}
	s, err := New(Config{Name: "trips", Dir: dir, ShardCount: 1, LimitsOff: true, RetentionHours: 24, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 20; i++ {
		putN(t, s, i*50, 50) // 50 records of 6 bytes + key + 26 bytes of framing per request
		c.Advance(time.Hour)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, ShardID(0), "*"+segmentSuffix))
	if len(segs) < 5 {
		t.Fatalf("%d segments of at most 4 KiB for 1,000 records", len(segs))
	}
	data, _ := readAll(t, s, ShardID(0))
	if len(data) != 1000 || data[999] != "r00999" {
		t.Fatalf("read %d records across segments", len(data))
	}
	// AT_SEQUENCE_NUMBER and AT_TIMESTAMP find records in any segment.
	_, seqs := readAll(t, s, ShardID(0))
	for _, i := range []int{0, 31, 32, 33, 517, 999} {
		out := get(t, s, iter(t, s, ShardID(0), types.ShardIteratorTypeAtSequenceNumber, seqs[i], nil))
		if len(out.Records) == 0 || aws.ToString(out.Records[0].SequenceNumber) != seqs[i] {
			t.Errorf("AT_SEQUENCE_NUMBER of record %d: wrong record", i)
		}
	}
	ts := t0.Add(7 * time.Hour)
	if out := get(t, s, iter(t, s, ShardID(0), types.ShardIteratorTypeAtTimestamp, "", &ts)); len(out.Records) == 0 || string(out.Records[0].Data) != "r00350" {
		t.Errorf("AT_TIMESTAMP +7h: got %d records", len(out.Records))
	}
	// 20 h later the first 10 hours' records are past retention and their segments go.
	c.Advance(14*time.Hour + time.Minute)
	data, _ = readAll(t, s, ShardID(0))
	if len(data) == 0 || data[0] != "r00550" {
		t.Errorf("after retention the first record is %v, want r00550", data[:1])
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ShardID(0), "*"+segmentSuffix)); len(left) >= len(segs) {
		t.Errorf("%d segments before retention, %d after: none deleted", len(segs), len(left))
	}
	if st := s.Stats(); st.RecordsHeld != 450 || st.StorageErrors != 0 {
		t.Errorf("RecordsHeld = %d, StorageErrors = %d", st.RecordsHeld, st.StorageErrors)
	}
}

// TestWriteUse: the share of each open shard's write limit that the last full second used.
func TestWriteUse(t *testing.T) {
	s, c := newStream(t, Config{ShardCount: 2})
	c.t = c.t.Truncate(time.Second)
	put(t, s, entries(250, 10, "a"))                                                                      // 250 records to the shard of "a"
	put(t, s, []types.PutRecordsRequestEntry{{Data: make([]byte, 1<<19), PartitionKey: aws.String("b")}}) // half a MiB
	if u := s.WriteUse(); u[0].Use != 0 || u[1].Use != 0 {
		t.Errorf("during the second: %+v, want nothing (the last full second was empty)", u)
	}
	c.Advance(time.Second)
	u := s.WriteUse()
	sa, sb := shardOf(t, s, "a"), shardOf(t, s, "b")
	if got := u[sa].Use; got != 0.25 {
		t.Errorf("shard of a: use %v, want 0.25 (250 of 1,000 records)", got)
	}
	if got := u[sb].Use; sa != sb && (got < 0.5 || got > 0.51) {
		t.Errorf("shard of b: use %v, want about 0.5 (half of 1 MiB)", got)
	}
	c.Advance(2 * time.Second)
	if u := s.WriteUse(); u[0].Use != 0 || u[1].Use != 0 {
		t.Errorf("two idle seconds later: %+v", u)
	}
}

func shardOf(t *testing.T, s *Stream, key string) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.route(HashKey(key)).index
}

// TestLargeRecordsSeek: records larger than a read buffer are skipped without being read when a read
// starts between index entries, and come back whole.
func TestLargeRecordsSeek(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		s, err := New(Config{Name: "trips", Dir: dir, LimitsOff: true})
		if err != nil {
			t.Fatal(err)
		}
		var seqs []string
		for i := 0; i < 40; i++ {
			data := bytes.Repeat([]byte{byte('a' + i%26)}, 100_000+i)
			out := put(t, s, []types.PutRecordsRequestEntry{{Data: data, PartitionKey: aws.String("k")}})
			seqs = append(seqs, aws.ToString(out.Records[0].SequenceNumber))
		}
		for _, i := range []int{0, 1, 2, 3, 7, 19, 38, 39} {
			out := get(t, s, iter(t, s, ShardID(0), types.ShardIteratorTypeAtSequenceNumber, seqs[i], nil))
			for j, r := range out.Records {
				n := i + j
				if len(r.Data) != 100_000+n || r.Data[0] != byte('a'+n%26) || r.Data[len(r.Data)-1] != byte('a'+n%26) {
					t.Fatalf("dir %q: reading from record %d, record %d came back wrong (%d bytes)", dir, i, n, len(r.Data))
				}
			}
			if len(out.Records) != 40-i {
				t.Errorf("dir %q: from record %d, %d records, want %d", dir, i, len(out.Records), 40-i)
			}
		}
		s.Close()
	}
}

// PutRecords takes no reference to the callers' buffers: a caller that reuses its buffer after the call
// (as the SDK lets it) does not change what the stream holds, on disk or in memory.
func TestCallerMayReuseDataAfterPut(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		s := openDurable(t, dir, &clock{t: t0}, 1)
		buf := []byte("first")
		out := put(t, s, []types.PutRecordsRequestEntry{{Data: buf, PartitionKey: aws.String("k")}})
		if aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatal("put failed")
		}
		copy(buf, "XXXXX")
		if data, _ := readAll(t, s, ShardID(0)); len(data) != 1 || data[0] != "first" {
			t.Errorf("dir %q: the stream holds %q after the caller reused its buffer, want [first]", dir, data)
		}
	}
}

// A file-backed log stores the data of large records compressed when that pays (KPL aggregates of JSON
// lines), small and incompressible ones as they are. Every record reads back as written, before and
// after a reopen (the index and the byte count are rebuilt from compressed frames, in the last segment
// and the ones before), and a torn compressed frame at the end is cut off like any other.
func TestCompressedFrames(t *testing.T) {
	old := diskSegmentBytes
	diskSegmentBytes = 64 << 10
	t.Cleanup(func() { diskSegmentBytes = old })
	rng := rand.New(rand.NewPCG(1, 2))
	var want []string
	raw := 0
	var recs []types.PutRecordsRequestEntry
	for i := 0; i < 120; i++ {
		var d []byte
		switch i % 3 {
		case 0: // JSON lines: compressible
			for len(d) < 4000 {
				d = fmt.Appendf(d, `{"record_id":"r%06d","vendor_id":%d,"fare_amount":%d.%02d,"pickup_datetime":"2019-01-%02dT10:00:00-05:00"}`+"\n", i, i%3, i%70, i%100, 1+i%28)
			}
		case 1: // random: stored as it is
			d = make([]byte, 3000)
			for j := range d {
				d[j] = byte(rng.Uint32())
			}
		default: // small
			d = fmt.Appendf(nil, "small-%d", i)
		}
		want = append(want, string(d))
		raw += len(d) + 1 // + the one-byte key
		recs = append(recs, types.PutRecordsRequestEntry{Data: d, PartitionKey: aws.String("k")})
	}
	dir := t.TempDir()
	c := &clock{t: t0}
	s := openDurable(t, dir, c, 1)
	for i := 0; i < len(recs); i += 40 {
		put(t, s, recs[i:i+40])
	}
	check := func(s *Stream, what string) {
		t.Helper()
		data, _ := readAll(t, s, ShardID(0))
		if len(data) != len(want) {
			t.Fatalf("%s: %d records, want %d", what, len(data), len(want))
		}
		for i := range want {
			if data[i] != want[i] {
				t.Fatalf("%s: record %d differs (%d bytes, want %d)", what, i, len(data[i]), len(want[i]))
			}
		}
		if st := s.Stats(); st.BytesHeld != int64(raw) || st.RecordsHeld != int64(len(want)) {
			t.Errorf("%s: BytesHeld %d RecordsHeld %d, want %d %d (uncompressed)", what, st.BytesHeld, st.RecordsHeld, raw, len(want))
		}
	}
	check(s, "written")
	segs, _ := filepath.Glob(filepath.Join(dir, ShardID(0), "*"+segmentSuffix))
	var onDisk int64
	for _, g := range segs {
		fi, _ := os.Stat(g)
		onDisk += fi.Size()
	}
	if len(segs) < 3 || onDisk >= int64(raw)*3/4 {
		t.Errorf("%d segments, %d bytes on disk for %d bytes of records: want several segments, compressed", len(segs), onDisk, raw)
	}
	s.Close()
	s2 := openDurable(t, dir, c, 1)
	check(s2, "reopened")
	s2.Close()

	// A torn compressed frame: the last frame cut in the middle of its data.
	last := segs[len(segs)-1]
	fi, _ := os.Stat(last)
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	big := []byte(want[0])
	one := t.TempDir()
	s3 := openDurable(t, one, c, 1)
	put(t, s3, []types.PutRecordsRequestEntry{{Data: big, PartitionKey: aws.String("k")}})
	s3.Close()
	frames, _ := filepath.Glob(filepath.Join(one, ShardID(0), "*"+segmentSuffix))
	frame, _ := os.ReadFile(frames[0])
	if len(frame) >= len(big) {
		t.Fatalf("a %d-byte JSON record took a %d-byte frame: not compressed", len(big), len(frame))
	}
	f.Write(frame[:len(frame)-10])
	f.Close()
	s4 := openDurable(t, dir, c, 1)
	check(s4, "after a torn compressed frame")
	if fi2, _ := os.Stat(last); fi2.Size() != fi.Size() {
		t.Errorf("the torn frame was not cut: %d bytes, want %d", fi2.Size(), fi.Size())
	}
}
