package local

import (
	"bufio"
	"bytes"
	"container/heap"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// idSet is where the summary keeps the record ids it reads (archive, trips, quarantine, on-failure
// records) to compare them, in bounded memory whatever the number of rows: each id becomes a 16-byte
// key (a record_id is 32 hex digits, decoded; any other id its MD5), entries are buffered, sorted and
// spilled to a temporary file as a run when the buffer is full, and groups merges the runs: it calls
// its function once per distinct id with that id's entries, sorted by kind and aux.
type idSet struct {
	dir  string // where runs are written; "" = os.TempDir()
	max  int    // entries buffered before a spill
	buf  []idEntry
	runs []*os.File
	n    int64
}

// idEntry is one sighting of an id: where (kind) and a value that goes with it (aux: the stream
// record of a trip row).
type idEntry struct {
	key  [16]byte
	kind uint8
	aux  uint64
}

const idEntryBytes = 16 + 1 + 8

// defaultIDBuffer bounds the memory of an idSet: 512 Ki entries of 32 bytes (16 MiB).
const defaultIDBuffer = 512 << 10

func newIDSet(dir string) *idSet { return &idSet{dir: dir, max: defaultIDBuffer} }

func idKey(id string) [16]byte {
	var k [16]byte
	if len(id) == 32 {
		if _, err := hex.Decode(k[:], []byte(id)); err == nil {
			return k
		}
	}
	return md5.Sum([]byte(id))
}

func compareEntries(a, b idEntry) int {
	if c := bytes.Compare(a.key[:], b.key[:]); c != 0 {
		return c
	}
	if a.kind != b.kind {
		return int(a.kind) - int(b.kind)
	}
	switch {
	case a.aux < b.aux:
		return -1
	case a.aux > b.aux:
		return 1
	}
	return 0
}

func (s *idSet) add(id string, kind uint8, aux uint64) error {
	if s.buf == nil {
		s.buf = make([]idEntry, 0, min(s.max, 4096))
	}
	s.buf = append(s.buf, idEntry{key: idKey(id), kind: kind, aux: aux})
	s.n++
	if len(s.buf) >= s.max {
		return s.spill()
	}
	return nil
}

// spill writes the buffer, sorted, as a run.
func (s *idSet) spill() error {
	if len(s.buf) == 0 {
		return nil
	}
	slices.SortFunc(s.buf, compareEntries)
	f, err := os.CreateTemp(s.dir, "summary-ids-*.run")
	if err != nil {
		return fmt.Errorf("spilling record ids: %w", err)
	}
	_ = os.Remove(f.Name()) // gone when closed, whatever happens
	s.runs = append(s.runs, f)
	w := bufio.NewWriterSize(f, 1<<20)
	var b [idEntryBytes]byte
	for _, e := range s.buf {
		encodeEntry(b[:], e)
		if _, err := w.Write(b[:]); err != nil {
			return fmt.Errorf("spilling record ids: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("spilling record ids: %w", err)
	}
	s.buf = s.buf[:0]
	return nil
}

func encodeEntry(b []byte, e idEntry) {
	copy(b, e.key[:])
	b[16] = e.kind
	binary.BigEndian.PutUint64(b[17:], e.aux)
}

func decodeEntry(b []byte) idEntry {
	var e idEntry
	copy(e.key[:], b)
	e.kind = b[16]
	e.aux = binary.BigEndian.Uint64(b[17:])
	return e
}

// source is one sorted sequence of entries: a run on disk or the buffer.
type idSource struct {
	r    *bufio.Reader
	mem  []idEntry
	head idEntry
	b    [idEntryBytes]byte
}

func (src *idSource) next() (bool, error) {
	if src.r == nil {
		if len(src.mem) == 0 {
			return false, nil
		}
		src.head, src.mem = src.mem[0], src.mem[1:]
		return true, nil
	}
	if _, err := io.ReadFull(src.r, src.b[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, fmt.Errorf("reading spilled record ids: %w", err)
	}
	src.head = decodeEntry(src.b[:])
	return true, nil
}

type idHeap []*idSource

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return compareEntries(h[i].head, h[j].head) < 0 }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(*idSource)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// groups merges everything added and calls fn once per distinct id, in key order, with its entries
// sorted (the slice is reused: fn must not keep it). The set is spent afterwards.
func (s *idSet) groups(fn func(g []idEntry)) error {
	defer s.close()
	slices.SortFunc(s.buf, compareEntries)
	h := idHeap{}
	add := func(src *idSource) error {
		ok, err := src.next()
		if ok {
			h = append(h, src)
		}
		return err
	}
	if err := add(&idSource{mem: s.buf}); err != nil {
		return err
	}
	for _, f := range s.runs {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("reading spilled record ids: %w", err)
		}
		if err := add(&idSource{r: bufio.NewReaderSize(f, 64<<10)}); err != nil {
			return err
		}
	}
	heap.Init(&h)
	var g []idEntry
	for h.Len() > 0 {
		src := h[0]
		e := src.head
		if len(g) > 0 && g[0].key != e.key {
			fn(g)
			g = g[:0]
		}
		g = append(g, e)
		ok, err := src.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	if len(g) > 0 {
		fn(g)
	}
	return nil
}

func (s *idSet) close() {
	for _, f := range s.runs {
		f.Close()
	}
	s.runs, s.buf = nil, nil
}
