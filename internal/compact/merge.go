package compact

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"

	"github.com/taxistream/taxistream/internal/process"
	"github.com/taxistream/taxistream/internal/version"
)

// The merge is an external merge sort that never holds a partition in memory:
//
//  1. Runs. Source rows are appended to a columnar buffer (parquet.Buffer: a few hundred bytes a row);
//     when it reaches runBytes it is sorted by (pickup_datetime, record_id) and written to a temporary
//     Parquet file with small pages, a "run".
//  2. Merge. The runs are merged with a heap, runFanIn at a time (more runs take extra passes), and
//     rows whose record_id equals the previous row's are dropped: two copies of a record have the same
//     pickup time, so the sort key puts them next to each other.
//  3. Output. The final pass writes files of about targetBytes each, with row groups of at most
//     rowGroupRows rows whose compressed pages are buffered on disk, not in memory.
//
// Memory is therefore bounded by runBytes plus, while merging, runFanIn readers of one small page per
// column, whatever the size of the partition; disk holds the runs (about the partition's size) and
// one output file at a time.
//
// A plan whose rows all fit in one buffer (most partitions of a day's or an hour's trips) never
// touches the disk with runs: the sorted buffer is itself the only run, merged straight into the
// output. The buffer is sorted through a permutation of its sort keys (kept beside it as they are
// read), applied with at most one swap per row: a comparison sort that swaps the buffer's rows
// directly moves every column O(n log n) times.

// Sort and dedupe columns of processed/trips.
const (
	pickupColumn   = "pickup_datetime"
	recordIDColumn = "record_id"
)

// Defaults of the merge (Options can override them for tests and benchmarks).
const (
	defaultRunBytes     = 64 << 20  // in-memory run buffer (parquet.Buffer.Size)
	defaultRunFanIn     = 48        // runs merged at once
	defaultRowGroupRows = 1_000_000 // rows per row group of an output file (engines like ≥ 100k, ≤ ~1 M)
	runPageBytes        = 16 << 10  // page buffer of run files: what each merge reader holds per column
	readBatch           = 256       // rows read from a run or a source at a time
)

// tripSchema is the schema ProcessFunction writes (process.TripRow), the one every output file has.
var tripSchema = parquet.SchemaOf(process.TripRow{})

// snappyCodec is Parquet's SNAPPY codec: every engine reads it (hyparquet without plugins included).
var snappyCodec snappy.Codec

// ErrSchema means a source file has a column the compactor's schema does not know (written by a newer
// ProcessFunction): compacting it would drop data, so the partition is left alone.
var ErrSchema = errors.New("source schema not compatible")

type mergeConfig struct {
	tempDir      string
	runBytes     int64
	runFanIn     int
	rowGroupRows int64
	targetBytes  int64
}

// mergeStats counts what a merge did.
type mergeStats struct {
	duplicates int64 // rows dropped in intermediate passes because their record_id was already written
	runs       int   // sorted runs of the first phase
	passes     int   // merge passes (1 when the runs fit one fan-in)
}

// sorter builds sorted runs from source rows.
type sorter struct {
	cfg     mergeConfig
	buf     *parquet.Buffer
	runs    []string
	rowsIn  int64
	runSize int64 // bytes of the run files
	conv    map[string]parquet.Conversion

	// The sort keys of the buffer's rows, in buffer order: pickup time, and the record id as
	// ids[ends[i-1]:ends[i]].
	picks     []int64
	ids       []byte
	ends      []int
	pick, rid int
}

func newSorter(cfg mergeConfig) *sorter {
	return &sorter{
		cfg: cfg,
		buf: parquet.NewBuffer(tripSchema, parquet.SortingRowGroupConfig(parquet.SortingColumns(
			parquet.Ascending(pickupColumn), parquet.Ascending(recordIDColumn)))),
		conv: map[string]parquet.Conversion{},
		pick: columnIndex(pickupColumn), rid: columnIndex(recordIDColumn),
	}
}

// reset empties the sorter for a new plan (the buffer keeps its memory).
func (s *sorter) reset(cfg mergeConfig) {
	s.cfg = cfg
	s.buf.Reset()
	s.runs, s.rowsIn, s.runSize = nil, 0, 0
	s.picks, s.ids, s.ends = s.picks[:0], s.ids[:0], s.ends[:0]
}

// conversion returns how rows of a file with schema s become rows of tripSchema: nil when they
// already are, ErrSchema when s has a column tripSchema lacks or a column of another type.
func (s *sorter) conversion(fs *parquet.Schema) (parquet.Conversion, error) {
	if parquet.EqualNodes(tripSchema, fs) {
		return nil, nil
	}
	key := fs.String()
	if c, ok := s.conv[key]; ok {
		return c, nil
	}
	for _, path := range fs.Columns() {
		leaf, ok := tripSchema.Lookup(path...)
		if !ok {
			return nil, fmt.Errorf("%w: column %s is not in the schema of processed/trips", ErrSchema, joinPath(path))
		}
		src, _ := fs.Lookup(path...)
		if !parquet.EqualTypes(leaf.Node.Type(), src.Node.Type()) {
			return nil, fmt.Errorf("%w: column %s is %s, want %s", ErrSchema, joinPath(path), src.Node.Type(), leaf.Node.Type())
		}
	}
	c, err := parquet.Convert(tripSchema, fs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSchema, err)
	}
	s.conv[key] = c
	return c, nil
}

func joinPath(p []string) string {
	var b bytes.Buffer
	for i, s := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// add appends every row of one source file. name is for errors.
func (s *sorter) add(name string, r io.ReaderAt, size int64) error {
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("opening %s: %w", name, err)
	}
	conv, err := s.conversion(f.Schema())
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	rows := make([]parquet.Row, readBatch)
	for _, rg := range f.RowGroups() {
		n := rg.NumRows()
		if conv != nil {
			rg = parquet.ConvertRowGroup(rg, conv)
		}
		if err := s.copyRows(rg.Rows(), n, rows); err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
	}
	return nil
}

// copyRows appends the n rows of rr to the buffer.
func (s *sorter) copyRows(rr parquet.Rows, n int64, rows []parquet.Row) error {
	defer rr.Close()
	for n > 0 {
		// Never ask for more rows than are left: parquet-go (v0.32) reads every column again for
		// every row asked for past the end of a row group, which made reading a small file cost ten
		// times its rows.
		k, err := readRows(rr, rows, n)
		if k > 0 {
			for _, r := range rows[:k] {
				s.picks = append(s.picks, r[s.pick].Int64())
				s.ids = append(s.ids, r[s.rid].ByteArray()...)
				s.ends = append(s.ends, len(s.ids))
			}
			if _, werr := s.buf.WriteRows(rows[:k]); werr != nil {
				return werr
			}
			s.rowsIn += int64(k)
			n -= int64(k)
			if s.size() >= s.cfg.runBytes {
				if ferr := s.flush(); ferr != nil {
					return ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			if n > 0 {
				return fmt.Errorf("%d rows fewer than the row group's metadata says", n)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if k == 0 {
			return io.ErrNoProgress
		}
	}
	return nil
}

// readRows reads at most left rows into rows.
func readRows(rr parquet.Rows, rows []parquet.Row, left int64) (int, error) {
	return rr.ReadRows(rows[:min(int64(len(rows)), left)])
}

// size is the memory the buffered rows take: the buffer's and their sort keys'.
func (s *sorter) size() int64 {
	return s.buf.Size() + int64(len(s.ids)) + 16*int64(len(s.ends))
}

// sort sorts the buffer by (pickup_datetime, record_id), stably (of equal keys the row added first
// stays first), and forgets the keys.
func (s *sorter) sort() {
	n := len(s.picks)
	if n != int(s.buf.NumRows()) {
		// The keys were not all seen (cannot happen: every row goes through copyRows).
		sort.Stable(s.buf)
		s.picks, s.ids, s.ends = s.picks[:0], s.ids[:0], s.ends[:0]
		return
	}
	id := func(i int32) []byte {
		start := 0
		if i > 0 {
			start = s.ends[i-1]
		}
		return s.ids[start:s.ends[i]]
	}
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	slices.SortStableFunc(perm, func(a, b int32) int {
		if c := cmp.Compare(s.picks[a], s.picks[b]); c != 0 {
			return c
		}
		return bytes.Compare(id(a), id(b))
	})
	// Move row perm[k] to position k: pos[x] is where original row x is now, at[p] which original
	// row is at position p. Each step puts one row in its place with at most one swap.
	pos := make([]int32, n)
	at := make([]int32, n)
	for i := range pos {
		pos[i], at[i] = int32(i), int32(i)
	}
	for k, x := range perm {
		p := pos[x]
		if int(p) == k {
			continue
		}
		s.buf.Swap(k, int(p))
		y := at[k]
		at[k], at[p] = x, y
		pos[x], pos[y] = int32(k), p
	}
	s.picks, s.ids, s.ends = s.picks[:0], s.ids[:0], s.ends[:0]
}

// memoryRun sorts the buffer and returns it as the plan's only run, when nothing was written to disk
// (every row fit in the buffer); nil otherwise.
func (s *sorter) memoryRun() *parquet.Buffer {
	if len(s.runs) > 0 || s.buf.NumRows() == 0 {
		return nil
	}
	s.sort()
	return s.buf
}

// flush sorts the buffer and writes it as a run.
func (s *sorter) flush() error {
	if s.buf.NumRows() == 0 {
		return nil
	}
	s.sort()
	f, err := os.CreateTemp(s.cfg.tempDir, "run-*.parquet")
	if err != nil {
		return fmt.Errorf("creating a run file: %w", err)
	}
	name := f.Name()
	s.runs = append(s.runs, name)
	opts := []parquet.WriterOption{parquet.Compression(&snappyCodec), parquet.PageBufferSize(runPageBytes), parquet.DataPageStatistics(false)}
	if s.buf.Size() >= pagesOnDiskBytes {
		// A large run's compressed pages wait on disk until the row group is written (a temporary file
		// per column): the in-memory buffer is the only large allocation.
		opts = append(opts, parquet.ColumnPageBuffers(parquet.NewFileBufferPool(s.cfg.tempDir, "pages-*")))
	}
	w := parquet.NewGenericWriter[process.TripRow](f, opts...)
	if _, err := w.WriteRowGroup(s.buf); err != nil {
		f.Close()
		return fmt.Errorf("writing run %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		f.Close()
		return fmt.Errorf("writing run %s: %w", name, err)
	}
	if fi, err := f.Stat(); err == nil {
		s.runSize += fi.Size()
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing run %s: %w", name, err)
	}
	s.buf.Reset()
	return nil
}

// cursor reads one sorted run, or (exclude) the sort keys of a compacted file already in the
// partition: its rows are not merged, they only suppress equal rows of the sources.
type cursor struct {
	name    string
	closer  io.Closer
	exclude bool

	rows  parquet.Rows // full rows (runs)
	left  int64        // rows of rows not read yet
	batch []parquet.Row

	keys   *parquet.GenericReader[tripKey] // sort keys (exclusions)
	kbatch []tripKey
	kpick  []int64
	kid    [][]byte

	n, i int
	done bool
}

// tripKey is the sort key of a trip, read alone from a compacted file (two column chunks).
type tripKey struct {
	RecordID string    `parquet:"record_id"`
	Pickup   time.Time `parquet:"pickup_datetime,timestamp(microsecond:utc)"`
}

func openCursor(name string) (*cursor, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	pf, err := parquet.OpenFile(f, fi.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening run %s: %w", name, err)
	}
	rg := parquet.MultiRowGroup(pf.RowGroups()...)
	return &cursor{name: name, closer: f, batch: make([]parquet.Row, readBatch), rows: rg.Rows(), left: rg.NumRows()}, nil
}

// memoryCursor reads a sorted run held in memory.
func memoryCursor(rg parquet.RowGroup) *cursor {
	return &cursor{name: "the sorted buffer", batch: make([]parquet.Row, readBatch), rows: rg.Rows(), left: rg.NumRows()}
}

// openKeyCursor reads the sort keys of a compacted file (sorted by construction).
func openKeyCursor(name string, r io.ReaderAt, size int64, closer io.Closer) (*cursor, error) {
	pf, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true),
		parquet.ReadBufferSize(keyReadBuffer))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", name, err)
	}
	if _, ok := pf.Schema().Lookup(recordIDColumn); !ok {
		return nil, fmt.Errorf("%s has no %s column", name, recordIDColumn)
	}
	return &cursor{
		name: name, closer: closer, exclude: true,
		keys:   parquet.NewGenericRowGroupReader[tripKey](parquet.MultiRowGroup(pf.RowGroups()...)),
		kbatch: make([]tripKey, readBatch), kpick: make([]int64, readBatch), kid: make([][]byte, readBatch),
	}, nil
}

// keyReadBuffer is the read size of a compacted file's key columns (each read is one ranged GET).
const keyReadBuffer = 4 << 20

// fill reads the next batch; false at the end.
func (c *cursor) fill() (bool, error) {
	if c.done {
		return false, nil
	}
	var (
		n   int
		err error
	)
	if c.exclude {
		n, err = c.keys.Read(c.kbatch)
		for j := range n {
			c.kpick[j] = c.kbatch[j].Pickup.UnixMicro()
			c.kid[j] = append(c.kid[j][:0], c.kbatch[j].RecordID...)
		}
	} else {
		if c.left <= 0 {
			c.done = true
			return false, nil
		}
		n, err = readRows(c.rows, c.batch, c.left)
		c.left -= int64(n)
	}
	c.n, c.i = n, 0
	if errors.Is(err, io.EOF) {
		c.done = true
		err = nil
	}
	if err != nil {
		return false, err
	}
	if n == 0 {
		c.done = true
		return false, nil
	}
	return true, nil
}

func (c *cursor) key(pick, rid int) (int64, []byte) {
	if c.exclude {
		return c.kpick[c.i], c.kid[c.i]
	}
	r := c.batch[c.i]
	return r[pick].Int64(), r[rid].ByteArray()
}

func (c *cursor) close() {
	if c.rows != nil {
		c.rows.Close()
	}
	if c.keys != nil {
		c.keys.Close()
	}
	if c.closer != nil {
		c.closer.Close()
	}
}

// cursorHeap orders cursors by the sort key of their current row; on equal keys an exclusion comes
// first, so that the source rows equal to it are dropped.
type cursorHeap struct {
	cs        []*cursor
	pick, rid int
}

func (h *cursorHeap) Len() int { return len(h.cs) }
func (h *cursorHeap) Less(i, j int) bool {
	a, b := h.cs[i], h.cs[j]
	pa, ia := a.key(h.pick, h.rid)
	pb, ib := b.key(h.pick, h.rid)
	if pa != pb {
		return pa < pb
	}
	if c := bytes.Compare(ia, ib); c != 0 {
		return c < 0
	}
	return a.exclude && !b.exclude
}
func (h *cursorHeap) Swap(i, j int) { h.cs[i], h.cs[j] = h.cs[j], h.cs[i] }
func (h *cursorHeap) Push(x any)    { h.cs = append(h.cs, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	c := h.cs[len(h.cs)-1]
	h.cs = h.cs[:len(h.cs)-1]
	return c
}

// rowSink receives merged rows. The rows are only valid during the call.
type rowSink interface {
	writeRows(rows []parquet.Row) error
}

// mergeInto merges the sorted runs (files, and mem when not nil) into sink, dropping rows whose key
// equals the previous row's or an exclusion's. The exclusions are opened cursors (openKeyCursor);
// mergeInto closes them. It returns the rows written and dropped.
func mergeInto(ctx context.Context, runs []string, mem parquet.RowGroup, exclusions []*cursor, sink rowSink) (written, dropped int64, err error) {
	pick, rid := columnIndex(pickupColumn), columnIndex(recordIDColumn)
	h := &cursorHeap{pick: pick, rid: rid}
	defer func() {
		for _, c := range h.cs {
			c.close()
		}
	}()
	add := func(c *cursor) error {
		ok, err := c.fill()
		if err != nil || !ok {
			c.close()
			if err != nil {
				return fmt.Errorf("reading %s: %w", c.name, err)
			}
			return nil
		}
		h.cs = append(h.cs, c)
		return nil
	}
	for i, c := range exclusions {
		if err := add(c); err != nil {
			for _, rest := range exclusions[i+1:] {
				rest.close()
			}
			return 0, 0, err
		}
	}
	for _, name := range runs {
		c, err := openCursor(name)
		if err == nil {
			err = add(c)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if mem != nil {
		if err := add(memoryCursor(mem)); err != nil {
			return 0, 0, err
		}
	}
	heap.Init(h)
	out := make([]parquet.Row, 0, readBatch)
	var lastID []byte
	var lastPick int64
	have := false
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		if err := sink.writeRows(out); err != nil {
			return err
		}
		written += int64(len(out))
		out = out[:0]
		return ctx.Err()
	}
	for h.Len() > 0 {
		c := h.cs[0]
		p, id := c.key(pick, rid)
		switch {
		case have && len(id) > 0 && p == lastPick && bytes.Equal(id, lastID):
			// A row without a record_id (a file from before the record contract) is never a duplicate.
			if !c.exclude {
				dropped++
			}
		case c.exclude:
			lastPick, lastID, have = p, append(lastID[:0], id...), true
		default:
			out = append(out, c.batch[c.i])
			lastPick, lastID, have = p, append(lastID[:0], id...), true
			if len(out) == cap(out) {
				if err := flush(); err != nil {
					return written, dropped, err
				}
			}
		}
		c.i++
		if c.i < c.n {
			heap.Fix(h, 0)
			continue
		}
		// The rows in out may point into c's batch: write them before it is refilled.
		if err := flush(); err != nil {
			return written, dropped, err
		}
		ok, err := c.fill()
		if err != nil {
			return written, dropped, fmt.Errorf("reading %s: %w", c.name, err)
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
			c.close()
		}
	}
	return written, dropped, flush()
}

func columnIndex(name string) int {
	leaf, ok := tripSchema.Lookup(name)
	if !ok {
		panic("compact: the trips schema has no column " + name) // a programming error, caught by every test
	}
	return leaf.ColumnIndex
}

// runSink writes merged rows into a new run file (intermediate merge passes).
type runSink struct {
	f *os.File
	w *parquet.GenericWriter[process.TripRow]
}

func newRunSink(dir string) (*runSink, error) {
	f, err := os.CreateTemp(dir, "run-*.parquet")
	if err != nil {
		return nil, fmt.Errorf("creating a run file: %w", err)
	}
	return &runSink{f: f, w: parquet.NewGenericWriter[process.TripRow](f, parquet.Compression(&snappyCodec),
		parquet.PageBufferSize(runPageBytes), parquet.DataPageStatistics(false),
		parquet.ColumnPageBuffers(parquet.NewFileBufferPool(dir, "pages-*")))}, nil
}

func (r *runSink) writeRows(rows []parquet.Row) error {
	_, err := r.w.WriteRows(rows)
	return err
}

func (r *runSink) close() error {
	err := r.w.Close()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// reduceRuns merges runs fanIn at a time until at most fanIn remain. Merged runs are removed.
func reduceRuns(ctx context.Context, cfg mergeConfig, runs []string, st *mergeStats) ([]string, error) {
	for len(runs) > cfg.runFanIn {
		st.passes++
		var next []string
		for i := 0; i < len(runs); i += cfg.runFanIn {
			group := runs[i:min(i+cfg.runFanIn, len(runs))]
			if len(group) == 1 {
				next = append(next, group[0])
				continue
			}
			sink, err := newRunSink(cfg.tempDir)
			if err != nil {
				return nil, err
			}
			_, dropped, err := mergeInto(ctx, group, nil, nil, sink)
			cerr := sink.close()
			if err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(sink.f.Name())
				return nil, fmt.Errorf("merging runs: %w", err)
			}
			st.duplicates += dropped
			for _, g := range group {
				os.Remove(g)
			}
			next = append(next, sink.f.Name())
		}
		runs = next
	}
	return runs, nil
}

// output is one finished output file: on local disk (path), or in memory (body, valid during emit).
type output struct {
	path  string
	body  []byte
	size  int64
	rows  int64
	first int64 // pickup_datetime of its first and last rows, in microseconds
	last  int64
}

// fileSink writes merged rows into output files of about cfg.targetBytes, and hands each finished
// file to emit. A file is a sequence of row groups of at most cfg.rowGroupRows rows; the size of each
// row group is chosen from the bytes per row measured so far (the bytes actually written, not the
// writer's estimate, which for small files is several times too high), so that the file fills up to
// fillRatio of the target and then closes. Every file but the last is therefore close to the target;
// the last (the tail) may be small, and a later run merges it with what arrives next.
type fileSink struct {
	cfg      mergeConfig
	bigFiles bool    // write the file on disk and buffer its pages there (else all in memory)
	bpr      float64 // bytes per row: an estimate at first (the sources'), then measured
	emit     func(output) error
	pick     int

	f         *os.File // nil when the file is written in memory
	bw        *bufio.Writer
	mem       bytes.Buffer
	cw        *countingWriter
	w         *parquet.GenericWriter[process.TripRow]
	cur       output
	rgLeft    int64 // rows still to write into the current row group
	rowGroups int   // row groups written into the current file
	seq       int
}

// fillRatio is the share of the target a file is filled to (the rest is for the footer and for the
// error of the bytes-per-row estimate); a file with less than closeRatio of the target left closes.
const (
	fillRatio  = 0.97
	closeRatio = 0.05
)

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// footerPerRowGroup estimates the footer bytes of one row group (chunk metadata, column and offset
// indexes of every column): negligible for the row groups of a large file, most of a small one.
var footerPerRowGroup = 300 * len(tripSchema.Columns())

// nextRowGroup returns the rows of the next row group of the current file, 0 when the file is full.
func (s *fileSink) nextRowGroup() int64 {
	room := fillRatio*float64(s.cfg.targetBytes) - float64(s.cw.n) - float64((s.rowGroups+1)*footerPerRowGroup)
	if s.cur.rows > 0 && room < closeRatio*float64(s.cfg.targetBytes) {
		return 0
	}
	return max(1, min(s.cfg.rowGroupRows, int64(room/max(s.bpr, 1))))
}

func (s *fileSink) writeRows(rows []parquet.Row) error {
	for len(rows) > 0 {
		if s.w == nil {
			if err := s.open(); err != nil {
				return err
			}
		}
		n := min(int64(len(rows)), s.rgLeft)
		chunk := rows[:n]
		if _, err := s.w.WriteRows(chunk); err != nil {
			return fmt.Errorf("writing %s: %w", s.cur.path, err)
		}
		if s.cur.rows == 0 {
			s.cur.first = chunk[0][s.pick].Int64()
		}
		s.cur.last = chunk[n-1][s.pick].Int64()
		s.cur.rows += n
		s.rgLeft -= n
		rows = rows[n:]
		if s.rgLeft > 0 {
			continue
		}
		if err := s.w.Flush(); err != nil { // the row group is complete: write it
			return fmt.Errorf("writing %s: %w", s.cur.path, err)
		}
		s.rowGroups++
		s.bpr = float64(s.cw.n) / float64(s.cur.rows)
		if s.rgLeft = s.nextRowGroup(); s.rgLeft == 0 {
			if err := s.finish(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *fileSink) open() error {
	s.seq++
	s.cur, s.rowGroups = output{}, 0
	if s.bigFiles {
		f, err := os.CreateTemp(s.cfg.tempDir, fmt.Sprintf("out-%04d-*.parquet", s.seq))
		if err != nil {
			return fmt.Errorf("creating an output file: %w", err)
		}
		s.f, s.cur.path = f, f.Name()
		// The writer's own buffer is off so that the counter sees every byte as soon as a row group is
		// flushed; the buffering is ours, below the counter.
		s.bw = bufio.NewWriterSize(f, 1<<20)
		s.cw = &countingWriter{w: s.bw}
	} else {
		// A small file is written in memory (no temporary file): it is uploaded from there.
		s.mem.Reset()
		s.f, s.bw, s.cur.path = nil, nil, fmt.Sprintf("output %d (in memory)", s.seq)
		s.cw = &countingWriter{w: &s.mem}
	}
	// A fresh writer per file: parquet-go v0.32.0 loses the footer's path_in_schema when a writer is
	// Reset and reused (issue 12).
	opts := []parquet.WriterOption{
		parquet.Compression(&snappyCodec),
		parquet.WriteBufferSize(0),
		parquet.MaxRowsPerRowGroup(s.cfg.rowGroupRows),
		parquet.CreatedBy("taxistream", version.Get().Short(), "compact"),
		parquet.SortingWriterConfig(parquet.SortingColumns(parquet.Ascending(pickupColumn), parquet.Ascending(recordIDColumn))),
	}
	if s.bigFiles {
		// The compressed pages of a row group wait on disk, not in memory, until the row group is
		// written (one temporary file per column).
		opts = append(opts, parquet.ColumnPageBuffers(parquet.NewFileBufferPool(s.cfg.tempDir, "pages-*")))
	}
	s.w = parquet.NewGenericWriter[process.TripRow](s.cw, opts...)
	s.rgLeft = s.nextRowGroup()
	return nil
}

// finish closes the current file and emits it.
func (s *fileSink) finish() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	s.w = nil
	if s.f == nil { // in memory
		if err != nil {
			return fmt.Errorf("writing %s: %w", s.cur.path, err)
		}
		out := s.cur
		out.path, out.body, out.size = "", s.mem.Bytes(), int64(s.mem.Len())
		s.cur = output{}
		return s.emit(out)
	}
	if ferr := s.bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		os.Remove(s.cur.path)
		return fmt.Errorf("writing %s: %w", s.cur.path, err)
	}
	fi, err := os.Stat(s.cur.path)
	if err != nil {
		return err
	}
	s.cur.size = fi.Size()
	out := s.cur
	s.cur = output{}
	return s.emit(out)
}

// pagesOnDiskBytes is the expected output file size from which a row group's pages are buffered on
// disk rather than in memory.
const pagesOnDiskBytes = 16 << 20
