package bucket

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Scan looks for objects under prefix that were written into the folder directly (a user copying files
// into .taxistream/bucket/raw/) and fires the OnCreate hooks once per new version. A file is reported only
// when two consecutive scans saw the same size and modification time, so a file still being copied is
// not reported half-written; its ETag is then computed and recorded, marked as notified, and the hooks get
// an EventPut event. Versions written through PutObject/CopyObject were reported when written and are
// never reported again, even by a later process (the sidecar remembers it). Scan returns how many
// objects it reported.
func (b *Bucket) Scan(prefix string) (int, error) {
	b.scanMu.Lock()
	defer b.scanMu.Unlock()
	files, err := b.files(prefix)
	if err != nil {
		return 0, fmt.Errorf("scanning s3://%s/%s: %w", b.name, prefix, err)
	}
	seen := make(map[string]bool, len(files))
	fired := 0
	for _, f := range files {
		seen[f.key] = true
		st := stampOf(f.fi)
		if m, ok := b.readSidecar(f.path); ok && m.Notified && m.describes(f.fi) {
			delete(b.pending, f.key)
			continue
		}
		if prev, ok := b.pending[f.key]; !ok || prev != st {
			b.pending[f.key] = st
			continue
		}
		delete(b.pending, f.key)
		ev, ok, err := b.markNotified(f, st)
		if err != nil {
			return fired, fmt.Errorf("scanning s3://%s/%s: %w", b.name, f.key, err)
		}
		if ok {
			b.fire(ev)
			fired++
		}
	}
	for k := range b.pending {
		if !seen[k] {
			delete(b.pending, k)
		}
	}
	return fired, nil
}

// markNotified records that the version of f with stamp st is reported, unless the file changed since
// the walk (then the next scans start over). It reports false when there is nothing to fire.
func (b *Bucket) markNotified(f file, st stamp) (ObjectCreated, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.stat(f.path)
	if errors.Is(err, errNotFound) {
		return ObjectCreated{}, false, nil
	}
	if err != nil {
		return ObjectCreated{}, false, err
	}
	if m.Size != st.size || m.MTimeNS != st.mtime || m.Notified {
		return ObjectCreated{}, false, nil
	}
	m.Notified = true
	if err := b.writeSidecar(f.path, m); err != nil {
		return ObjectCreated{}, false, err
	}
	now := b.now()
	return ObjectCreated{
		Bucket: b.name, Key: f.key, Size: m.Size, ETag: m.ETag, EventName: EventPut,
		Sequencer: b.nextSequencer(now), Time: now.UTC(),
	}, true, nil
}

// Watch calls Scan(prefix) every interval until ctx is done, which it then returns. Scan errors (a file
// unreadable for a moment) are passed to onErr, if not nil, and the watch goes on.
func (b *Bucket) Watch(ctx context.Context, prefix string, interval time.Duration, onErr func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := b.Scan(prefix); err != nil && onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
