package stream

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/s2"
)

// Where a shard's records live: a shardLog is an append-only sequence of segments, each a file under
// Config.Dir/<shard id>/ (or a byte slice when the stream is not durable), holding framed records:
//
//	length uint32 LE | CRC-32C of the body uint32 LE | body
//	body: counter uint64 LE | arrival Unix ms int64 LE | key length uint16 LE | key | data
//	      or, when bit 15 of the key length is set (compressed):
//	      counter | arrival | key length | data length uint32 LE | key | data as a Snappy block
//
// In a file, the data of a record of compressMin bytes or more is stored compressed when that saves
// an eighth or more (KPL aggregates of JSON lines: a fifth of their size). Writing a file's pages is
// the dearest part of a put on the VMs this runs on (each new page of the page cache), and so is reading
// them back for each consumer; Snappy costs ~1 ns per byte to write and less to read. Key lengths are at
// most 1,024 bytes (256 characters), so the flag bit is free; a binary of before this format stops at
// such a frame as corrupt instead of reading it wrongly.
//
// Only a sparse index (every indexEvery records or indexBytes bytes, and the first record of every
// segment) is held in memory, so what a shard retains costs disk, not memory. A segment file is named after the absolute
// position of its first record. Records below the trim point (start) are gone for readers; a segment
// is deleted once all its records are.

const (
	frameHeader = 8  // length + CRC
	bodyFixed   = 18 // counter + arrival + key length
	// compressedFlag marks a compressed frame in the key length; rawLenBytes is the data length
	// field that follows the fixed part in such a frame.
	compressedFlag = 1 << 15
	rawLenBytes    = 4
	// compressMin is the smallest data a file-backed log compresses.
	compressMin = 512
	// indexEvery is how many records apart the in-memory index entries are at most; indexBytes how
	// many bytes of records (so a seek reads little whatever the records' size).
	indexEvery    = 32
	indexBytes    = 256 << 10
	segmentSuffix = ".seg"
)

// diskSegmentBytes and memSegmentBytes are the sizes at which a new segment is started (variables
// for the tests).
var (
	diskSegmentBytes int64 = 32 << 20
	memSegmentBytes  int64 = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is one run of consecutive records.
type segment struct {
	first int // absolute position of its first record
	count int
	size  int64
	path  string   // "" in memory
	f     *os.File // open for reading (and writing, for the last segment)
	mem   []byte
}

func (g *segment) open() error {
	if g.path == "" || g.f != nil {
		return nil
	}
	f, err := os.OpenFile(g.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", g.path, err)
	}
	g.f = f
	return nil
}

// reader reads the segment from off on.
func (g *segment) reader(off int64) (io.Reader, error) {
	if g.path == "" {
		return bytes.NewReader(g.mem[off:g.size]), nil
	}
	if err := g.open(); err != nil {
		return nil, err
	}
	return io.NewSectionReader(g.f, off, g.size-off), nil
}

func (g *segment) write(p []byte) error {
	if g.path == "" {
		g.mem = append(g.mem[:g.size], p...)
		g.size += int64(len(p))
		return nil
	}
	if err := g.open(); err != nil {
		return err
	}
	if _, err := g.f.WriteAt(p, g.size); err != nil {
		_ = g.f.Truncate(g.size) // best effort: the next write overwrites what is left anyway
		return fmt.Errorf("writing %s: %w", g.path, err)
	}
	g.size += int64(len(p))
	return nil
}

func (g *segment) close() {
	if g.f != nil {
		g.f.Close()
		g.f = nil
	}
}

func (g *segment) remove() error {
	g.close()
	g.mem = nil
	if g.path == "" {
		return nil
	}
	if err := os.Remove(g.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

type indexEntry struct {
	pos     int
	counter uint64
	arrival int64 // Unix ms
	seg     *segment
	off     int64
}

// logRecord is one record as read back.
type logRecord struct {
	counter uint64
	arrival int64 // Unix ms
	key     string
	data    []byte
	size    int // data + key bytes
}

type pendingRecord struct {
	off     int
	counter uint64
	arrival int64
	size    int // data + key bytes, uncompressed
}

type shardLog struct {
	dir      string // "" keeps the segments in memory
	segBytes int64
	segs     []*segment
	index    []indexEntry

	start, end   int   // retained positions [start, end)
	bytes        int64 // data + key bytes of the retained records
	startArrival int64 // arrival of the record at start (valid when start < end)
	lastCounter  uint64

	pend     []byte // records of the request being written, framed
	pendRecs []pendingRecord
	zbuf     []byte // scratch for compressing
}

func newShardLog(dir string) *shardLog {
	l := &shardLog{dir: dir, segBytes: memSegmentBytes}
	if dir != "" {
		l.segBytes = diskSegmentBytes
	}
	return l
}

func (l *shardLog) len() int { return l.end - l.start }

// add frames a record into the pending write; commit makes it part of the log.
func (l *shardLog) add(counter uint64, arrival int64, key string, data []byte) {
	stored, flag, extra := data, uint16(0), 0
	if l.dir != "" && len(data) >= compressMin {
		if need := s2.MaxEncodedLen(len(data)); cap(l.zbuf) < need {
			l.zbuf = make([]byte, need)
		}
		if z := s2.EncodeSnappy(l.zbuf[:cap(l.zbuf)], data); len(z) <= len(data)-len(data)/8 {
			stored, flag, extra = z, compressedFlag, rawLenBytes
		}
	}
	n := bodyFixed + extra + len(key) + len(stored)
	off := len(l.pend)
	l.pend = append(l.pend, make([]byte, frameHeader+n)...)
	b := l.pend[off:]
	binary.LittleEndian.PutUint32(b[0:], uint32(n))
	body := b[frameHeader:]
	binary.LittleEndian.PutUint64(body[0:], counter)
	binary.LittleEndian.PutUint64(body[8:], uint64(arrival))
	binary.LittleEndian.PutUint16(body[16:], uint16(len(key))|flag)
	if flag != 0 {
		binary.LittleEndian.PutUint32(body[bodyFixed:], uint32(len(data)))
	}
	copy(body[bodyFixed+extra:], key)
	copy(body[bodyFixed+extra+len(key):], stored)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(body, castagnoli))
	l.pendRecs = append(l.pendRecs, pendingRecord{off: off, counter: counter, arrival: arrival, size: len(key) + len(data)})
}

// frameKey decodes a frame's key length field: the key length, whether the data is compressed, and
// the bytes between the fixed part and the key (the data length field of a compressed frame).
func frameKey(field uint16) (klen int, compressed bool, extra int) {
	if field&compressedFlag != 0 {
		return int(field &^ compressedFlag), true, rawLenBytes
	}
	return int(field), false, 0
}

// commit writes the pending records (in one write, into one segment) and indexes them. On error
// nothing of them is part of the log.
func (l *shardLog) commit() error {
	defer l.discard()
	if len(l.pendRecs) == 0 {
		return nil
	}
	var g *segment
	if n := len(l.segs); n > 0 && (l.segs[n-1].size == 0 || l.segs[n-1].size+int64(len(l.pend)) <= l.segBytes) {
		g = l.segs[n-1]
	} else {
		g = &segment{first: l.end}
		if l.dir != "" {
			if err := os.MkdirAll(l.dir, 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", l.dir, err)
			}
			g.path = filepath.Join(l.dir, fmt.Sprintf("%020d%s", g.first, segmentSuffix))
			f, err := os.OpenFile(g.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				return fmt.Errorf("creating %s: %w", g.path, err)
			}
			g.f = f
		}
		// The segment before stays open for readers.
		l.segs = append(l.segs, g)
	}
	base := g.size
	if err := g.write(l.pend); err != nil {
		return err
	}
	if l.start == l.end {
		l.startArrival = l.pendRecs[0].arrival
	}
	for i, r := range l.pendRecs {
		pos := l.end + i
		if off := base + int64(r.off); l.needIndex(pos, g, off) {
			l.index = append(l.index, indexEntry{pos: pos, counter: r.counter, arrival: r.arrival, seg: g, off: off})
		}
		l.bytes += int64(r.size)
		l.lastCounter = r.counter
	}
	g.count += len(l.pendRecs)
	l.end += len(l.pendRecs)
	return nil
}

// needIndex reports whether the record at pos, at off in segment g, gets an index entry: the first of
// a segment, and then every indexEvery records or indexBytes bytes.
func (l *shardLog) needIndex(pos int, g *segment, off int64) bool {
	if len(l.index) == 0 {
		return true
	}
	last := l.index[len(l.index)-1]
	return last.seg != g || pos-last.pos >= indexEvery || off-last.off >= indexBytes
}

// discard drops the pending records.
func (l *shardLog) discard() {
	l.pend = l.pend[:0]
	l.pendRecs = l.pendRecs[:0]
	if cap(l.pend) > 8<<20 {
		l.pend = nil
	}
}

// logReader reads consecutive records from a position on.
type logReader struct {
	l    *shardLog
	seg  int // index in l.segs
	off  int64
	pos  int
	br   *bufio.Reader
	hdr  [frameHeader + bodyFixed + rawLenBytes]byte
	zbuf []byte // compressed data read
}

// readerAt returns a reader at an index entry.
func (l *shardLog) readerAt(e indexEntry) *logReader {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].first > e.pos }) - 1
	return &logReader{l: l, seg: i, off: e.off, pos: e.pos}
}

// seek returns a reader positioned at pos (start ≤ pos ≤ end).
func (l *shardLog) seek(pos int) (*logReader, error) {
	i := sort.Search(len(l.index), func(i int) bool { return l.index[i].pos > pos }) - 1
	if i < 0 {
		return nil, fmt.Errorf("position %d is before the log's first segment", pos)
	}
	r := l.readerAt(l.index[i])
	for r.pos < pos {
		if _, err := r.next(false); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// next reads the record at r.pos and moves on; withData false skips the key and data.
func (r *logReader) next(withData bool) (logRecord, error) {
	l := r.l
	if r.pos >= l.end {
		return logRecord{}, io.EOF
	}
	for r.br == nil {
		g := l.segs[r.seg]
		if r.off >= g.size {
			if r.seg+1 >= len(l.segs) {
				return logRecord{}, fmt.Errorf("record %d: past the last segment", r.pos)
			}
			r.seg, r.off = r.seg+1, 0
			continue
		}
		src, err := g.reader(r.off)
		if err != nil {
			return logRecord{}, err
		}
		r.br = bufio.NewReaderSize(src, 64<<10)
	}
	if _, err := io.ReadFull(r.br, r.hdr[:frameHeader+bodyFixed]); err != nil {
		return logRecord{}, fmt.Errorf("reading record %d: %w", r.pos, err)
	}
	n := int(binary.LittleEndian.Uint32(r.hdr[0:]))
	body := r.hdr[frameHeader:]
	rec := logRecord{
		counter: binary.LittleEndian.Uint64(body[0:]),
		arrival: int64(binary.LittleEndian.Uint64(body[8:])),
	}
	klen, compressed, extra := frameKey(binary.LittleEndian.Uint16(body[16:]))
	rest := n - bodyFixed - extra // key + stored data
	if rest < klen {
		return logRecord{}, fmt.Errorf("reading record %d: corrupt frame", r.pos)
	}
	rawLen := rest - klen
	if compressed {
		if _, err := io.ReadFull(r.br, body[bodyFixed:bodyFixed+rawLenBytes]); err != nil {
			return logRecord{}, fmt.Errorf("reading record %d: %w", r.pos, err)
		}
		rawLen = int(binary.LittleEndian.Uint32(body[bodyFixed:]))
	}
	rec.size = klen + rawLen
	switch {
	case withData && compressed:
		if cap(r.zbuf) < rest {
			r.zbuf = make([]byte, rest)
		}
		z := r.zbuf[:rest]
		if _, err := io.ReadFull(r.br, z); err != nil {
			return logRecord{}, fmt.Errorf("reading record %d: %w", r.pos, err)
		}
		buf := make([]byte, klen+rawLen)
		copy(buf, z[:klen])
		if m, err := s2.DecodedLen(z[klen:]); err != nil || m != rawLen {
			return logRecord{}, fmt.Errorf("reading record %d: corrupt compressed data", r.pos)
		}
		if _, err := s2.Decode(buf[klen:], z[klen:]); err != nil {
			return logRecord{}, fmt.Errorf("reading record %d: %w", r.pos, err)
		}
		rec.key, rec.data = string(buf[:klen]), buf[klen:]
	case withData:
		buf := make([]byte, rest)
		if _, err := io.ReadFull(r.br, buf); err != nil {
			return logRecord{}, fmt.Errorf("reading record %d: %w", r.pos, err)
		}
		rec.key, rec.data = string(buf[:klen]), buf[klen:]
	case rest > r.br.Buffered():
		r.br = nil // skip it without reading it: the next read starts a reader after it
	default:
		if _, err := r.br.Discard(rest); err != nil {
			return logRecord{}, fmt.Errorf("reading record %d: %w", r.pos, err)
		}
	}
	r.off += int64(frameHeader + n)
	r.pos++
	if r.off >= l.segs[r.seg].size {
		r.br = nil // the next record is in the next segment
	}
	return rec, nil
}

// find returns the position of the first retained record for which after(rec) is false, scanning from
// the last index entry for which before(entry) holds. before and after must be monotonic in position.
func (l *shardLog) find(before func(indexEntry) bool, after func(logRecord) bool) (int, error) {
	if l.start == l.end {
		return l.end, nil
	}
	i := sort.Search(len(l.index), func(i int) bool { return !before(l.index[i]) }) - 1
	if i < 0 {
		i = 0
	}
	r := l.readerAt(l.index[i])
	for r.pos < l.end {
		pos := r.pos
		rec, err := r.next(false)
		if err != nil {
			return 0, err
		}
		if pos >= l.start && !after(rec) {
			return pos, nil
		}
	}
	return l.end, nil
}

// trimWhile drops retained records from the start while drop(rec) holds, and the segments left
// empty. It returns how many records it dropped.
func (l *shardLog) trimWhile(drop func(logRecord) bool) (int, error) {
	if l.start == l.end {
		return 0, nil
	}
	r, err := l.seek(l.start)
	if err != nil {
		return 0, err
	}
	n := 0
	for l.start < l.end {
		rec, err := r.next(false)
		if err != nil {
			return n, err
		}
		if !drop(rec) {
			l.startArrival = rec.arrival
			break
		}
		l.start++
		l.bytes -= int64(rec.size)
		n++
	}
	return n, l.dropSegments()
}

// dropSegments removes the segments whose records are all trimmed (never the last one, which takes
// the next writes) and their index entries.
func (l *shardLog) dropSegments() error {
	k := 0
	for k < len(l.segs)-1 && l.segs[k].first+l.segs[k].count <= l.start {
		k++
	}
	if k == 0 {
		return nil
	}
	var errs []error
	for _, g := range l.segs[:k] {
		if err := g.remove(); err != nil {
			errs = append(errs, err)
		}
	}
	l.segs = append([]*segment(nil), l.segs[k:]...)
	first := l.segs[0].first
	j := sort.Search(len(l.index), func(i int) bool { return l.index[i].pos >= first })
	l.index = append([]indexEntry(nil), l.index[j:]...)
	return errors.Join(errs...)
}

func (l *shardLog) close() {
	for _, g := range l.segs {
		g.close()
	}
}

// openShardLog reads the segments under dir back: every record's header (the index, the counters,
// the bytes); the last segment's records are checked against their CRC and a torn or corrupt tail
// (a write cut short by a crash) is cut off.
func openShardLog(dir string) (*shardLog, error) {
	l := newShardLog(dir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), segmentSuffix) && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for i, name := range names {
		first, err := strconv.Atoi(strings.TrimSuffix(name, segmentSuffix))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %s is not a segment name", dir, name)
		}
		if i == 0 {
			l.start, l.end = first, first
		} else if first != l.end {
			return nil, fmt.Errorf("reading %s: segment %s does not follow record %d (a segment is missing)", dir, name, l.end-1)
		}
		g := &segment{first: first, path: filepath.Join(dir, name)}
		if err := l.scan(g, i == len(names)-1); err != nil {
			l.close()
			return nil, err
		}
		if g.count == 0 && i < len(names)-1 {
			l.close()
			return nil, fmt.Errorf("reading %s: segment %s is empty", dir, name)
		}
		l.segs = append(l.segs, g)
	}
	return l, nil
}

// scan indexes one segment file; last says it may end in a torn write, which is cut off.
func (l *shardLog) scan(g *segment, last bool) error {
	if err := g.open(); err != nil {
		return err
	}
	fi, err := g.f.Stat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", g.path, err)
	}
	size := fi.Size()
	br := bufio.NewReaderSize(io.NewSectionReader(g.f, 0, size), 1<<20)
	var hdr [frameHeader + bodyFixed]byte
	var body []byte
	off := int64(0)
	for off < size {
		good := false
		var rec logRecord
		var n int
		if _, err := io.ReadFull(br, hdr[:]); err == nil {
			n = int(binary.LittleEndian.Uint32(hdr[0:]))
			b := hdr[frameHeader:]
			rec = logRecord{counter: binary.LittleEndian.Uint64(b[0:]), arrival: int64(binary.LittleEndian.Uint64(b[8:]))}
			klen, compressed, extra := frameKey(binary.LittleEndian.Uint16(b[16:]))
			rec.size = n - bodyFixed - extra
			if n >= bodyFixed+extra+klen && off+int64(frameHeader+n) <= size && (l.lastCounter == 0 || rec.counter > l.lastCounter) {
				switch {
				case last: // checked whole
					body = append(body[:0], b...)
					body = append(body, make([]byte, n-bodyFixed)...)
					if _, err := io.ReadFull(br, body[bodyFixed:]); err == nil {
						good = crc32.Checksum(body, castagnoli) == binary.LittleEndian.Uint32(hdr[4:])
					}
					if good && compressed {
						rec.size = klen + int(binary.LittleEndian.Uint32(body[bodyFixed:]))
					}
				case compressed: // its data length, and past the rest
					var lenb [rawLenBytes]byte
					if _, err := io.ReadFull(br, lenb[:]); err == nil {
						rec.size = klen + int(binary.LittleEndian.Uint32(lenb[:]))
						_, err = br.Discard(n - bodyFixed - rawLenBytes)
						good = err == nil
					}
				default:
					_, err := br.Discard(n - bodyFixed)
					good = err == nil
				}
			}
		}
		if !good {
			if !last {
				return fmt.Errorf("reading %s: corrupt record at byte %d", g.path, off)
			}
			// A write the crash cut short: it was never acknowledged.
			if err := g.f.Truncate(off); err != nil {
				return fmt.Errorf("cutting the torn tail of %s: %w", g.path, err)
			}
			break
		}
		pos := l.end
		if l.needIndex(pos, g, off) {
			l.index = append(l.index, indexEntry{pos: pos, counter: rec.counter, arrival: rec.arrival, seg: g, off: off})
		}
		if l.start == l.end {
			l.startArrival = rec.arrival
		}
		l.bytes += int64(rec.size)
		l.lastCounter = rec.counter
		l.end++
		g.count++
		off += int64(frameHeader + n)
	}
	g.size = off
	return nil
}
