package firehose

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// spool is a buffer kept in a file (Config.SpoolDir).
type spool struct {
	f   *os.File
	w   *bufio.Writer
	n   int64
	err error // the first write error, reported by reader
}

func openSpool(dir, name string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the buffer file: %w", err)
	}
	// Written at offsets from 0 (not the file's position), so that reset starts over.
	return &spool{f: f, w: bufio.NewWriterSize(io.NewOffsetWriter(f, 0), 256<<10)}, nil
}

func (s *spool) write(p []byte) {
	if _, err := s.w.Write(p); err != nil && s.err == nil {
		s.err = err
	}
	s.n += int64(len(p))
}

// spoolWriter writes to a spool; a failed write is kept for reader to report.
type spoolWriter struct{ s *spool }

func (w spoolWriter) Write(p []byte) (int, error) {
	w.s.write(p)
	return len(p), nil
}

// reader returns the buffered bytes; a write that failed makes it fail (the records are read from the
// stream again: nothing is delivered half).
func (s *spool) reader() (io.Reader, error) {
	if err := s.w.Flush(); err != nil && s.err == nil {
		s.err = err
	}
	if s.err != nil {
		return nil, fmt.Errorf("writing the buffer file %s: %w", s.f.Name(), s.err)
	}
	return io.NewSectionReader(s.f, 0, s.n), nil
}

func (s *spool) reset() error {
	s.w.Reset(io.NewOffsetWriter(s.f, 0))
	s.n, s.err = 0, nil
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("emptying the buffer file: %w", err)
	}
	return nil
}

func (s *spool) close() {
	if s != nil {
		s.f.Close()
	}
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Close releases the buffer files. The delivery stream must not be used after.
func (f *Firehose) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.main.spool.close()
	f.errs.spool.close()
	return nil
}
