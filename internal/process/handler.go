// Package process is the ProcessFunction: the Kinesis-triggered consumer that de-aggregates KPL
// records, validates and enriches each trip, writes valid trips as Parquet under processed/trips/,
// invalid ones with reasons under quarantine/, and per-zone tumbling-window aggregates under
// processed/zone_stats/ (DESIGN.md, process contract). RULES.md lists the validation rules.
//
// Output keys (shardId and the first sequence number of the batch name every object, so a retried
// batch overwrites instead of duplicating; the shard's ledger, ledger.go, names every object an earlier
// attempt may have left rows in, so that a bisected, retried or redelivered batch writes no row twice):
//
//	processed/trips/pickup_date=YYYY-MM-DD/<shardId>-<firstSeq>.parquet        one per pickup date per batch
//	quarantine/<YYYY-MM-DD|unknown>/<shardId>-<firstSeq>.jsonl.gz               one per pickup date per batch
//	processed/zone_stats/window_start=<RFC 3339>/<shardId>.parquet             final invoke of a window
//	processed/zone_stats/window_start=<RFC 3339>/<shardId>-<firstSeq>.parquet  when Lambda ended the window early
//	state/process/<shardId>.json                                               the ledger
//
// docs/parquet-schema.md documents the Parquet schemas (TripRow, ZoneStat).
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/geo"
	"github.com/taxistream/taxistream/internal/kpl"
	"github.com/taxistream/taxistream/internal/obs"
)

// ObjectStore is the part of the S3 API the function uses, with the SDK's own signatures.
type ObjectStore interface {
	PutObject(ctx context.Context, params *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, params *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ ObjectStore = (*s3.Client)(nil)

// Deps are the function's collaborators.
type Deps struct {
	S3      ObjectStore
	Log     *slog.Logger     // nil = discard
	Metrics io.Writer        // one EMF line per invocation; nil = discard
	Now     func() time.Time // default time.Now
	Zones   *Zones           // a preloaded zone lookup; when nil, New loads cfg.ZoneLookup
	Shapes  *geo.Map         // preloaded zone shapes; when nil, New loads cfg.ZoneShapes (zones.go)
}

// Handler processes Kinesis batches. It is safe for concurrent use.
type Handler struct {
	cfg         config.Config
	s3          ObjectStore
	log         *slog.Logger
	metrics     io.Writer
	now         func() time.Time
	zones       *Zones
	shapes      *geo.Map // zone shapes for trips with coordinates only (nil: none)
	outsideID   int32    // the lookup's "outside of NYC" id
	stateBudget int
	encoders    sync.Pool
	// units keeps batches' unit slices (*[]unit, cleared) for the next invocation: a batch of 12,000
	// trips needs 14 MB of them, which a fresh allocation per invocation pays for in page faults and
	// garbage collection.
	units sync.Pool
}

// zoneLoadTimeout bounds the zone lookup download at cold start.
const zoneLoadTimeout = 30 * time.Second

// New returns a Handler (the constructor shape of every handler: docs/decisions.md). cfg is what
// config.Load returned and is not checked again. Unless d.Zones is set, it loads the zone lookup once
// (cfg.ZoneLookup: "s3://bucket/key", a file path that exists, or else a key in cfg.Bucket; "" for none),
// within ctx and at most zoneLoadTimeout.
func New(ctx context.Context, cfg config.Config, d Deps) (*Handler, error) {
	if d.S3 == nil {
		return nil, errors.New("process: Deps.S3 is required")
	}
	h := &Handler{cfg: cfg, s3: d.S3, log: d.Log, metrics: d.Metrics, now: d.Now, zones: d.Zones, stateBudget: defaultStateBudget}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.metrics == nil {
		h.metrics = io.Discard
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.encoders.New = func() any { return &parquetEncoder{} }
	if h.zones == nil && cfg.ZoneLookup != "" {
		ctx, cancel := context.WithTimeout(ctx, zoneLoadTimeout)
		defer cancel()
		z, err := loadZoneLookup(ctx, cfg, d.S3)
		if err != nil {
			return nil, err
		}
		h.zones = z
		h.log.InfoContext(ctx, "zone lookup loaded", "source", cfg.ZoneLookup, "zones", z.Len())
	}
	if err := h.initShapes(ctx, cfg, d); err != nil {
		return nil, err
	}
	return h, nil
}

// Zones returns the zone lookup in use (nil without one).
func (h *Handler) Zones() *Zones { return h.zones }

func loadZoneLookup(ctx context.Context, cfg config.Config, store ObjectStore) (*Zones, error) {
	loc := cfg.ZoneLookup
	bucket, key := cfg.Bucket, loc
	switch {
	case strings.HasPrefix(loc, "s3://"):
		var ok bool
		bucket, key, ok = strings.Cut(strings.TrimPrefix(loc, "s3://"), "/")
		if !ok || bucket == "" || key == "" {
			return nil, fmt.Errorf("ZONE_LOOKUP %q: want s3://bucket/key", loc)
		}
	default:
		if _, err := os.Stat(loc); err == nil {
			b, err := os.ReadFile(loc)
			if err != nil {
				return nil, fmt.Errorf("reading zone lookup %s: %w", loc, err)
			}
			z, err := loadZonesBytes(b)
			if err != nil {
				return nil, fmt.Errorf("loading zone lookup %s: %w", loc, err)
			}
			return z, nil
		}
		if filepath.IsAbs(loc) || strings.HasPrefix(loc, "./") || strings.HasPrefix(loc, "../") {
			return nil, fmt.Errorf("zone lookup file %s does not exist", loc)
		}
	}
	out, err := store.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("getting zone lookup s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	z, err := LoadZones(out.Body)
	if err != nil {
		return nil, fmt.Errorf("loading zone lookup s3://%s/%s: %w", bucket, key, err)
	}
	return z, nil
}

// unit status.
const (
	statusValid uint8 = iota
	statusInvalid
	statusDuplicate
)

// unit is one user record of the batch.
type unit struct {
	k         int    // index of its Kinesis record in the batch
	sub       int    // index in its KPL aggregate (0 for a plain record)
	data      []byte // the user record (for a corrupt aggregate: the whole Kinesis record data)
	aggregate bool   // data is a corrupt aggregate, not a record
	parsed    bool   // data is a JSON object
	status    uint8
	date      string // output partition date
	t         trip
	d         derived
	rej       []Rejection
}

// batch is one invocation's worth of records.
type batch struct {
	ev       *events.KinesisTimeWindowEvent
	shard    string
	from     int    // records before it are below the ledger's high-water mark: done before
	firstSeq string // the sequence number of record from: the name of the batch's objects
	units    []unit // of the records from b.from on
}

// Handle processes one batch; see the package documentation for outputs. On the first S3 write
// failure it stops and reports the sequence number of the first Kinesis record whose outputs are not
// durably written (batchItemFailures, never together with an error); see commit for the proof that a
// retry from there writes no row twice. A failed zone_stats write on the final invoke of a window is
// returned as an error (Lambda retries the final invoke until it succeeds).
func (h *Handler) Handle(ctx context.Context, ev events.KinesisTimeWindowEvent) (events.KinesisTimeWindowEventResponse, error) {
	now := h.now()
	m := obs.NewMetrics(h.cfg.MetricsNamespace, map[string]string{"Function": "process"})
	m.SetClock(h.now)
	resp := events.KinesisTimeWindowEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}
	resp.State = map[string]string{}

	b := &batch{ev: &ev, shard: shardID(&ev)}
	defer h.releaseUnits(b)
	n := len(ev.Records)
	m.Add("RecordsIn", obs.Count, float64(n))
	if lag, ok := batchLag(&ev, now); ok {
		m.Set("BatchLagMs", obs.Milliseconds, float64(lag.Milliseconds()))
	}

	var res commitResult
	if n > 0 {
		res = h.writeBatch(ctx, b, now)
	}
	cut := res.cut
	m.Add("UserRecords", obs.Count, float64(len(b.units)))
	m.Add("BytesWritten", obs.Bytes, float64(res.bytes))
	m.Add("ObjectsWritten", obs.Count, float64(res.objects))
	m.Add("ParquetObjectsWritten", obs.Count, float64(res.parquet))
	m.Add("WriteFailures", obs.Count, float64(res.failures))
	if res.residual > 0 {
		m.Add("ResidualObjects", obs.Count, float64(res.residual))
	}
	if b.from > 0 {
		m.Add("RecordsRedelivered", obs.Count, float64(b.from))
	}
	if ls := res.ledger; ls != nil && ls.emptied+ls.trimmed > 0 {
		m.Add("EarlierObjectsEmptied", obs.Count, float64(ls.emptied))
		m.Add("EarlierObjectsTrimmed", obs.Count, float64(ls.trimmed))
	}
	if cut < n {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: ev.Records[cut].Kinesis.SequenceNumber})
		m.Add("RecordsFailed", obs.Count, float64(n-cut))
	}

	// Counters over the committed prefix (what a retry will not see again).
	var valid, invalid, dups, located int
	for i := range b.units {
		u := &b.units[i]
		if u.k >= cut {
			break
		}
		switch u.status {
		case statusValid:
			valid++
			located += u.d.located()
			for _, f := range u.d.flags {
				m.Add("TripsFlagged_"+f, obs.Count, 1)
			}
		case statusInvalid:
			invalid++
			seen := map[string]bool{}
			for _, r := range u.rej {
				if !seen[r.Rule] {
					seen[r.Rule] = true
					m.Add("TripsInvalid_"+r.Rule, obs.Count, 1)
				}
			}
		case statusDuplicate:
			dups++
		}
	}
	m.Add("TripsValid", obs.Count, float64(valid))
	if located > 0 {
		m.Add("LocationsFromCoordinates", obs.Count, float64(located)) // zones.go
	}
	m.Add("TripsInvalid", obs.Count, float64(invalid))
	m.Add("DuplicatesDropped", obs.Count, float64(dups))

	attrs := []any{"shard_id", b.shard, "records", n, "user_records", len(b.units), "valid", valid,
		"invalid", invalid, "duplicates", dups, "bytes", res.bytes, "objects", res.objects}
	if n > 0 {
		attrs = append(attrs, "first_seq", ev.Records[0].Kinesis.SequenceNumber, "last_seq", ev.Records[n-1].Kinesis.SequenceNumber)
	}
	if b.from > 0 {
		attrs = append(attrs, "redelivered", b.from)
	}
	if ls := res.ledger; ls != nil && ls.emptied+ls.trimmed > 0 {
		attrs = append(attrs, "earlier_objects_emptied", ls.emptied, "earlier_objects_trimmed", ls.trimmed)
	}
	if cut < n {
		attrs = append(attrs, "failed_seq", ev.Records[cut].Kinesis.SequenceNumber, "error", errors.Join(res.errs...).Error())
	}

	var retErr error
	if windowed(&ev) {
		state, werr := h.window(ctx, b, cut, m, &attrs)
		if werr != nil {
			// Only on the final invoke, and only when every record was committed: report an error and
			// no batchItemFailures, so Lambda retries the final invoke with the same state.
			retErr = werr
			resp = events.KinesisTimeWindowEventResponse{}
		} else {
			resp.State = state
		}
	}

	level := slog.LevelInfo
	if cut < n || retErr != nil {
		level = slog.LevelWarn
	}
	h.log.Log(ctx, level, "process batch", attrs...)
	if err := m.Write(h.metrics); err != nil {
		h.log.WarnContext(ctx, "writing metrics", "error", err.Error())
	}
	if retErr != nil {
		return events.KinesisTimeWindowEventResponse{}, retErr
	}
	return resp, nil
}

func windowed(ev *events.KinesisTimeWindowEvent) bool {
	return !ev.Window.Start.IsZero() || !ev.Window.End.IsZero()
}

// shardID is the event's shardId, else the prefix of the first record's eventID ("shardId-…:seq").
func shardID(ev *events.KinesisTimeWindowEvent) string {
	if ev.ShardID != "" {
		return ev.ShardID
	}
	if len(ev.Records) > 0 {
		if s, _, ok := strings.Cut(ev.Records[0].EventID, ":"); ok && s != "" {
			return s
		}
	}
	return "unknown-shard"
}

func batchLag(ev *events.KinesisTimeWindowEvent, now time.Time) (time.Duration, bool) {
	var oldest time.Time
	for i := range ev.Records {
		t := ev.Records[i].Kinesis.ApproximateArrivalTimestamp.Time
		if t.IsZero() {
			continue
		}
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		return 0, false
	}
	lag := now.Sub(oldest)
	if lag < 0 {
		lag = 0
	}
	return lag, true
}

// writeBatch reads the shard's ledger, prepares the records that are not below its high-water mark
// and commits their outputs. Without the ledger nothing is written: the whole batch is reported.
func (h *Handler) writeBatch(ctx context.Context, b *batch, now time.Time) commitResult {
	rctx, _, cancel := writeContexts(ctx)
	ls, err := h.readLedger(rctx, b)
	cancel()
	if err != nil {
		return commitResult{cut: 0, failures: 1, errs: []error{err}}
	}
	h.prepare(b, now)
	return h.commit(ctx, b, h.plan(b), ls)
}

// takeUnits returns n zero units, from the pool when a slice there is large enough.
func (h *Handler) takeUnits(n int) []unit {
	if p, ok := h.units.Get().(*[]unit); ok {
		if cap(*p) >= n {
			return (*p)[:n]
		}
		h.units.Put(p)
	}
	return make([]unit, n)
}

// releaseUnits clears b's units (they point into the event) and keeps the slice for the next batch.
func (h *Handler) releaseUnits(b *batch) {
	if cap(b.units) == 0 {
		return
	}
	clear(b.units) // units past len were never written: they are zero
	u := b.units[:cap(b.units)]
	b.units = nil
	h.units.Put(&u)
}

// prepare de-aggregates, parses, drops duplicates and validates every user record of the batch from
// b.from on. De-aggregation, parsing and validation run on every CPU (forChunks); de-duplication
// (the first copy in batch order is kept) and the zone look-ups run in batch order after them.
func (h *Handler) prepare(b *batch, now time.Time) {
	recs := b.ev.Records[b.from:]
	// De-aggregate first into small headers, then allocate the (large) units once.
	type deaggregated struct {
		urs []kpl.UserRecord
		err error
		agg bool
	}
	parts := make([]deaggregated, len(recs))
	forChunks(len(recs), 4, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			kr := &recs[i].Kinesis
			if parts[i].agg = kpl.IsAggregated(kr.Data); parts[i].agg {
				parts[i].urs, parts[i].err = kpl.Deaggregate(kr.Data, kr.PartitionKey, "")
			}
		}
	})
	n := 0
	for _, p := range parts {
		n += max(1, len(p.urs))
	}
	// Allocated once (or taken from an earlier invocation) and filled in place: a unit is large (its
	// parsed trip), too large to copy.
	b.units = h.takeUnits(n)
	j := 0
	for i, p := range parts {
		k := b.from + i
		switch {
		case !p.agg:
			u := &b.units[j]
			u.k, u.data = k, recs[i].Kinesis.Data
			j++
		case p.err != nil:
			// De-aggregation is a pure function of the bytes: retrying cannot help, so a corrupt
			// aggregate is a data problem. It is quarantined whole (base64) and counted, never dropped.
			u := &b.units[j]
			u.k, u.data, u.aggregate, u.status, u.date = k, recs[i].Kinesis.Data, true, statusInvalid, "unknown"
			u.rej = []Rejection{{Rule: RuleCorruptAggregate, Detail: p.err.Error()}}
			j++
		default:
			for sub := range p.urs {
				u := &b.units[j]
				u.k, u.sub, u.data = k, sub, p.urs[sub].Data
				j++
			}
		}
	}
	b.units = b.units[:j] // an aggregate may hold no user record
	forChunks(len(b.units), 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			u := &b.units[i]
			if u.aggregate {
				continue
			}
			if err := parseTrip(u.data, &u.t); err != nil {
				u.status, u.date = statusInvalid, "unknown"
				u.rej = []Rejection{{Rule: RuleMalformedJSON, Detail: err.Error()}}
				continue
			}
			u.parsed = true
			u.rej = validate(&u.t, now, &u.d)
		}
	})
	seen := make(map[string]struct{}, len(b.units))
	for i := range b.units {
		u := &b.units[i]
		if !u.parsed {
			continue
		}
		if id := u.t.recordID; id.ok && id.v != "" {
			if _, dup := seen[id.v]; dup {
				// A later copy: not validated (what its validation found is dropped with it).
				u.status, u.rej, u.d = statusDuplicate, nil, derived{}
				continue
			}
			seen[id.v] = struct{}{}
		}
		if len(u.rej) > 0 {
			u.status = statusInvalid
			u.date = "unknown"
			if p := u.t.pickup; p.ok && p.year >= MinPickupYear && p.year <= now.Year() {
				u.date = p.date
			}
			continue
		}
		u.status, u.date = statusValid, u.t.pickup.date
	}
	h.locateAll(b.units) // zones.go
}
