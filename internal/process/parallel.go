package process

import (
	"bytes"
	"context"
	"runtime"
	"sync"
)

// A batch's CPU work is spread over the function's CPUs: de-aggregation (the MD5 of every
// aggregate), parsing and validation of the user records, and the encoding of its output files.
// What must stay sequential stays so: de-duplication by record_id (the first copy in batch order
// wins), the zone look-ups, and every S3 write, in the order and with the failure handling of commit.
// On one CPU (and for small batches) everything runs on the calling goroutine, as before. No goroutine
// outlives the call that started it (Lambda freezes the process between invocations).

// maxParallelism bounds the goroutines of one batch.
const maxParallelism = 4

// parallelism is how many goroutines work on a batch.
func parallelism() int { return max(1, min(runtime.GOMAXPROCS(0), maxParallelism)) }

// forChunks calls fn on consecutive chunks [lo, hi) that cover [0, n), each of at least minChunk
// items (but the last), on up to parallelism() goroutines, and returns when every call has returned.
func forChunks(n, minChunk int, fn func(lo, hi int)) {
	workers := min(parallelism(), (n+minChunk-1)/max(1, minChunk))
	if workers <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	// A few chunks per worker even out chunks of uneven cost.
	chunk := max(minChunk, (n+4*workers-1)/(4*workers))
	var (
		next int
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				lo := next
				next = min(n, next+chunk)
				mu.Unlock()
				if lo >= n {
					return
				}
				fn(lo, min(n, lo+chunk))
			}
		})
	}
	wg.Wait()
}

// encoded is one output file encoded ahead of its write.
type encoded struct {
	body        []byte
	contentType string
	err         error
	done        chan struct{}
}

// preEncoder encodes a batch's files (every unit of each: the content of the first write of each
// file) on background goroutines, in file order and at most lookahead files ahead of the writes, so
// that encoding overlaps the writes and uses every CPU. get waits for one file; stop ends the
// goroutines (and must be called).
type preEncoder struct {
	files   []encoded
	tokens  chan struct{} // one per file encoded but not yet taken
	stopped chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// preEncodeLookahead is how many files may wait encoded per goroutine.
const preEncodeLookahead = 2

// preEncode starts encoding files; nil when it is not worth goroutines (one CPU, one file).
func (h *Handler) preEncode(ctx context.Context, b *batch, files []*outFile) *preEncoder {
	workers := min(parallelism(), len(files))
	if workers <= 1 {
		return nil
	}
	p := &preEncoder{
		files:   make([]encoded, len(files)),
		tokens:  make(chan struct{}, workers*preEncodeLookahead),
		stopped: make(chan struct{}),
	}
	for i := range p.files {
		p.files[i].done = make(chan struct{})
	}
	var (
		mu   sync.Mutex
		next int
	)
	for range workers {
		p.wg.Go(func() {
			enc := h.encoders.Get().(*parquetEncoder)
			defer h.encoders.Put(enc)
			for {
				select {
				case p.tokens <- struct{}{}:
				case <-p.stopped:
					return
				case <-ctx.Done():
					return
				}
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(files) {
					return
				}
				e := &p.files[i]
				body, contentType, err := h.encodeFile(b, files[i].kind, files[i].units, enc)
				// The encoder's buffer is reused for the next file: the body is kept as a copy.
				e.body, e.contentType, e.err = bytes.Clone(body), contentType, err
				close(e.done)
			}
		})
	}
	return p
}

// get returns file i's encoding; ok is false when the encoders stopped first (the context ended).
func (p *preEncoder) get(ctx context.Context, i int) (*encoded, bool) {
	e := &p.files[i]
	select {
	case <-e.done:
	case <-ctx.Done():
		return nil, false
	}
	<-p.tokens // room for one more
	return e, true
}

// stop ends the goroutines and waits for them.
func (p *preEncoder) stop() {
	if p == nil {
		return
	}
	p.once.Do(func() { close(p.stopped) })
	p.wg.Wait()
}
