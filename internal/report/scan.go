package report

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/local/stream"
	"github.com/taxistream/taxistream/internal/process"
)

// BucketReader is the part of the S3 API the report reads with; *s3.Client and the local
// *bucket.Bucket fit it.
type BucketReader interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// object is one listed object.
type object struct {
	key      string
	size     int64
	modified time.Time
}

// prefixes are the bucket's top-level areas (README, bucket layout), in the order the outputs table
// lists them.
var prefixes = []struct{ prefix, what string }{
	{"raw/", "input trip files"},
	{"state/", "ingest manifests and checkpoints"},
	{"rejected/", "rows that could not be converted"},
	{"archive/", "the stream, archived by Firehose (gzip'd NDJSON)"},
	{"archive-errors/", "Firehose delivery errors"},
	{process.TripsPrefix, "valid trips, Parquet by pickup date"},
	{process.ZoneStatsPrefix, "per-zone tumbling-window statistics"},
	{process.QuarantinePrefix, "trips that failed validation"},
}

// maxExamples is how many examples of each rejection reason or quarantine rule the report shows.
const maxExamples = 2

// scan is what the report reads from the bucket.
type scan struct {
	listed    map[string][]object // by prefix of prefixes
	rawPut    map[string]time.Time
	manifests []ingest.Manifest
	bySource  map[string]string // record_id prefix → object key

	rejected     map[string]int64
	rejectedEx   map[string][]Example
	quarantined  map[string]int64 // by rule (a trip may fail several rules)
	quarantineEx map[string][]Example
	quarantineN  int64 // quarantined trips

	data dataAcc
	lat  latencyAcc
}

// arrivals maps a sequence number to the time it reached the stream (from the timeline); nil without one.
type arrivals func(seq string) (time.Time, bool)

func list(ctx context.Context, b BucketReader, bucket, prefix string) ([]object, error) {
	var out []object
	pages := s3.NewListObjectsV2Paginator(b, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, object{key: aws.ToString(o.Key), size: aws.ToInt64(o.Size), modified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

func get(ctx context.Context, b BucketReader, bucket, key string) ([]byte, error) {
	out, err := b.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("getting s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
	}
	if strings.HasSuffix(key, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("gunzipping s3://%s/%s: %w", bucket, key, err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("gunzipping s3://%s/%s: %w", bucket, key, err)
		}
	}
	return body, nil
}

func eachLine(body []byte, fn func(line []byte) error) error {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// scanBucket lists the bucket's areas and reads manifests, rejected rows, quarantine and the trips.
func scanBucket(ctx context.Context, b BucketReader, bucket string, arrive arrivals) (*scan, error) {
	s := &scan{
		listed: map[string][]object{}, rawPut: map[string]time.Time{}, bySource: map[string]string{},
		rejected: map[string]int64{}, rejectedEx: map[string][]Example{},
		quarantined: map[string]int64{}, quarantineEx: map[string][]Example{},
		data: newDataAcc(),
	}
	for _, p := range prefixes {
		objs, err := list(ctx, b, bucket, p.prefix)
		if err != nil {
			return nil, err
		}
		s.listed[p.prefix] = objs
	}
	for _, o := range s.listed["raw/"] {
		s.rawPut[o.key] = o.modified
	}
	rejectedBy := map[string]string{} // rejected/ folder → object key
	for _, o := range s.listed["state/"] {
		if !strings.HasSuffix(o.key, ".json") || !(strings.HasPrefix(o.key, "state/ingest/") || strings.HasPrefix(o.key, "state/replay/")) {
			continue
		}
		body, err := get(ctx, b, bucket, o.key)
		if err != nil {
			return nil, err
		}
		var m ingest.Manifest
		if err := json.Unmarshal(body, &m); err != nil || m.Key == "" {
			continue // not a manifest (a checkpoint or another tool's file)
		}
		s.manifests = append(s.manifests, m)
		s.bySource[convert.RecordIDPrefix(convert.Source{Bucket: m.Bucket, Key: m.Key, Version: m.Version})] = m.Key
		if m.RejectedPrefix != "" {
			rejectedBy[m.RejectedPrefix] = m.Key
		}
	}
	if err := s.readRejected(ctx, b, bucket, rejectedBy); err != nil {
		return nil, err
	}
	if err := s.readQuarantine(ctx, b, bucket); err != nil {
		return nil, err
	}
	if err := s.readTrips(ctx, b, bucket, arrive); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *scan) readRejected(ctx context.Context, b BucketReader, bucket string, rejectedBy map[string]string) error {
	for _, o := range s.listed["rejected/"] {
		body, err := get(ctx, b, bucket, o.key)
		if err != nil {
			return err
		}
		src := rejectedBy[path.Dir(o.key)+"/"]
		if src == "" {
			src = strings.TrimPrefix(path.Dir(path.Dir(o.key)), "rejected/")
		}
		err = eachLine(body, func(line []byte) error {
			var r ingest.RejectedRow
			if json.Unmarshal(line, &r) != nil || r.Reason == "" {
				return nil
			}
			s.rejected[r.Reason]++
			if len(s.rejectedEx[r.Reason]) < maxExamples {
				where := fmt.Sprintf("line %d", r.Line)
				if r.Field != "" {
					where += ", " + r.Field
				} else if r.Column > 0 {
					where += fmt.Sprintf(", column %d", r.Column)
				}
				s.rejectedEx[r.Reason] = append(s.rejectedEx[r.Reason], Example{
					Reason: r.Reason, Object: src, Line: r.Line, Where: where, Detail: r.Detail, Raw: clipText(r.Raw, 140),
				})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading s3://%s/%s: %w", bucket, o.key, err)
		}
	}
	return nil
}

func (s *scan) readQuarantine(ctx context.Context, b BucketReader, bucket string) error {
	for _, o := range s.listed[process.QuarantinePrefix] {
		body, err := get(ctx, b, bucket, o.key)
		if err != nil {
			return err
		}
		err = eachLine(body, func(line []byte) error {
			var q struct {
				RecordID   string              `json:"record_id"`
				Rejections []process.Rejection `json:"_rejections"`
			}
			_ = json.Unmarshal(line, &q) // a line that is not an object still counts
			s.quarantineN++
			if len(q.Rejections) == 0 {
				q.Rejections = []process.Rejection{{Rule: "unreadable", Detail: "the line has no _rejections"}}
			}
			for _, r := range q.Rejections {
				s.quarantined[r.Rule]++
				if len(s.quarantineEx[r.Rule]) < maxExamples {
					ex := Example{Reason: r.Rule, Detail: r.Detail, Object: "(record_id " + q.RecordID + ")"}
					if row, ok := convert.RecordIDRow(q.RecordID); ok {
						if key, ok := s.bySource[q.RecordID[:16]]; ok {
							ex.Object, ex.Line, ex.Where = key, row, fmt.Sprintf("row %d", row)
						}
					}
					s.quarantineEx[r.Rule] = append(s.quarantineEx[r.Rule], ex)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading s3://%s/%s: %w", bucket, o.key, err)
		}
	}
	return nil
}

// tripCols are the columns of processed/trips/ the report reads (process.TripRow names them); the
// has* flags say which nullable ones hold a value.
type tripCols struct {
	RecordID, TaxiType, Sequence string
	PickupHour                   int32
	PULocationID, PaymentType    int32
	PUBorough, PUZone            string
	Fare, Tip, Distance, Speed   float64

	hasPU, hasPayment, hasFare, hasTip, hasDistance, hasSpeed bool
}

// tripColumn reads one Parquet column into tripCols. Columns listed later for the same field (fhvhv's
// base_passenger_fare, tips, trip_miles) fill it only when the earlier one is null.
type tripColumn struct {
	name string
	set  func(r *tripCols, v parquet.Value, st *strs)
}

var tripColumns = []tripColumn{
	{"record_id", func(r *tripCols, v parquet.Value, _ *strs) { r.RecordID = string(v.ByteArray()) }},
	{"kinesis_sequence_number", func(r *tripCols, v parquet.Value, _ *strs) { r.Sequence = string(v.ByteArray()) }},
	{"taxi_type", func(r *tripCols, v parquet.Value, st *strs) { r.TaxiType = st.intern(v.ByteArray()) }},
	{"pickup_hour", func(r *tripCols, v parquet.Value, _ *strs) { r.PickupHour = v.Int32() }},
	{"pu_location_id", func(r *tripCols, v parquet.Value, _ *strs) { r.PULocationID, r.hasPU = v.Int32(), true }},
	{"pu_borough", func(r *tripCols, v parquet.Value, st *strs) { r.PUBorough = st.intern(v.ByteArray()) }},
	{"pu_zone", func(r *tripCols, v parquet.Value, st *strs) { r.PUZone = st.intern(v.ByteArray()) }},
	{"payment_type", func(r *tripCols, v parquet.Value, _ *strs) { r.PaymentType, r.hasPayment = v.Int32(), true }},
	{"fare_amount", func(r *tripCols, v parquet.Value, _ *strs) { r.Fare, r.hasFare = v.Double(), true }},
	{"base_passenger_fare", func(r *tripCols, v parquet.Value, _ *strs) {
		if !r.hasFare {
			r.Fare, r.hasFare = v.Double(), true
		}
	}},
	{"tip_amount", func(r *tripCols, v parquet.Value, _ *strs) { r.Tip, r.hasTip = v.Double(), true }},
	{"tips", func(r *tripCols, v parquet.Value, _ *strs) {
		if !r.hasTip {
			r.Tip, r.hasTip = v.Double(), true
		}
	}},
	{"trip_distance", func(r *tripCols, v parquet.Value, _ *strs) { r.Distance, r.hasDistance = v.Double(), true }},
	{"trip_miles", func(r *tripCols, v parquet.Value, _ *strs) {
		if !r.hasDistance {
			r.Distance, r.hasDistance = v.Double(), true
		}
	}},
	{"avg_speed_mph", func(r *tripCols, v parquet.Value, _ *strs) { r.Speed, r.hasSpeed = v.Double(), true }},
}

// strs interns the few distinct values of dictionary columns (zone names, taxi types).
type strs map[string]string

func (s *strs) intern(b []byte) string {
	if v, ok := (*s)[string(b)]; ok {
		return v
	}
	v := string(b)
	(*s)[v] = v
	return v
}

// readTripColumns reads the report's columns of one Parquet file column by column: parquet-go's
// generic row reader converts whole rows between schemas, about ten times slower for this. A column
// the file does not have stays empty (a file of another writer, or of an older schema).
func readTripColumns(body []byte, st *strs) ([]tripCols, error) {
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, err
	}
	rows := make([]tripCols, f.NumRows())
	buf := make([]parquet.Value, 1024)
	base := 0
	for _, rg := range f.RowGroups() {
		chunks := rg.ColumnChunks()
		for _, col := range tripColumns {
			leaf, ok := f.Schema().Lookup(col.name)
			if !ok || leaf.MaxRepetitionLevel > 0 || leaf.ColumnIndex >= len(chunks) {
				continue
			}
			if err := readColumn(chunks[leaf.ColumnIndex], rows[base:], buf, col.set, st); err != nil {
				return nil, fmt.Errorf("reading column %s: %w", col.name, err)
			}
		}
		base += int(rg.NumRows())
	}
	return rows, nil
}

func readColumn(chunk parquet.ColumnChunk, rows []tripCols, buf []parquet.Value, set func(*tripCols, parquet.Value, *strs), st *strs) error {
	pages := chunk.Pages()
	defer pages.Close()
	i := 0
	for {
		p, err := pages.ReadPage()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		vr := p.Values()
		for {
			n, err := vr.ReadValues(buf)
			for _, v := range buf[:n] {
				if i >= len(rows) {
					parquet.Release(p)
					return fmt.Errorf("more values than the row group's %d rows", len(rows))
				}
				if !v.IsNull() {
					set(&rows[i], v, st)
				}
				i++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				parquet.Release(p)
				return err
			}
		}
		parquet.Release(p)
	}
}

func (s *scan) readTrips(ctx context.Context, b BucketReader, bucket string, arrive arrivals) error {
	st := strs{}
	for _, o := range s.listed[process.TripsPrefix] {
		if !strings.HasSuffix(o.key, ".parquet") {
			continue
		}
		body, err := get(ctx, b, bucket, o.key)
		if err != nil {
			return err
		}
		rows, err := readTripColumns(body, &st)
		if err != nil {
			return fmt.Errorf("reading s3://%s/%s: %w", bucket, o.key, err)
		}
		date := partitionValue(o.key, "pickup_date=")
		s.data.files++
		for i := range rows {
			r := &rows[i]
			s.data.add(r, date)
			s.lat.add(r, o.modified, s, arrive)
		}
	}
	return nil
}

// partitionValue returns the value of a Hive partition segment name=value in key ("" when absent).
func partitionValue(key, name string) string {
	for _, seg := range strings.Split(key, "/") {
		if v, ok := strings.CutPrefix(seg, name); ok {
			return v
		}
	}
	return ""
}

func clipText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// latencyAcc collects the end-to-end latency of every trip: object put → record in the stream →
// trip in Parquet (seconds).
type latencyAcc struct {
	putToStream, streamToParquet, putToParquet sample
	noSource                                   int64 // trips whose raw object was not found
}

func (l *latencyAcc) add(r *tripCols, written time.Time, s *scan, arrive arrivals) {
	var put time.Time
	ok := false
	if len(r.RecordID) == 32 {
		if key, found := s.bySource[r.RecordID[:16]]; found {
			put, ok = s.rawPut[key]
		}
	}
	if !ok {
		l.noSource++
	} else {
		l.putToParquet.add(written.Sub(put).Seconds())
	}
	if arrive == nil {
		return
	}
	at, found := arrive(r.Sequence)
	if !found {
		return
	}
	if ok {
		l.putToStream.add(at.Sub(put).Seconds())
	}
	l.streamToParquet.add(written.Sub(at).Seconds())
}

// arrivalsFrom returns the arrival lookup of a timeline's put requests: the arrival of a sequence
// number is the time of the first request whose counter reaches it.
func arrivalsFrom(puts []putPoint) arrivals {
	return func(seq string) (time.Time, bool) {
		c, ok := stream.SequenceCounter(seq)
		if !ok {
			return time.Time{}, false
		}
		i := sort.Search(len(puts), func(i int) bool { return puts[i].counter >= c })
		if i == len(puts) {
			return time.Time{}, false
		}
		return puts[i].t, true
	}
}

type putPoint struct {
	t       time.Time
	counter uint64
}
