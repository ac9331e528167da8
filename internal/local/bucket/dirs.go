package bucket

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"sync"
)

// Per-object costs. Every path the bucket touches goes through an os.Root, which resolves each path
// component on its own (an openat per folder, symlinks refused), so a key four folders deep costs five
// or six system calls per file operation, and a put used to make some sixty. The bucket therefore
// keeps the folders it works in open (folder) and does each file operation as one call relative to
// its folder; a put is: create a hidden temporary file next to the object, write it, fstat, close,
// rename it within the folder, write the sidecar in place (under the write lock, so no reader of this
// process sees it half written; a torn sidecar after a crash is ignored and the ETag recomputed). The
// sidecars of the objects seen are also kept in memory (metas), checked against the file's size and
// mtime on every use, so a read does not parse JSON from disk.
//
// Temporary files are named ".tmp-…": hidden names are never objects (keyPath writes a leading '.' as
// %2E), so listing and scanning skip them. One left behind by a crash is ignored for good.

// maxOpenFolders bounds the folders kept open (file descriptors); beyond it a folder is opened for
// one operation and closed.
const maxOpenFolders = 512

// maxMetas bounds the sidecars kept in memory; beyond it the cache starts over.
const maxMetas = 200_000

type folders struct {
	mu      sync.Mutex
	open    map[string]*os.Root
	retired []*os.Root // folders removed while open: closed with the bucket (an operation may still use one)
}

// folder returns the folder d (slash path relative to the bucket folder; "." is the bucket folder),
// creating it and its parents when create is set, and a release func to call when done. A folder that
// does not exist (and create is false) is fs.ErrNotExist.
func (b *Bucket) folder(d string, create bool) (*os.Root, func(), error) {
	if d == "." || d == "" {
		return b.root, func() {}, nil
	}
	b.dirs.mu.Lock()
	r := b.dirs.open[d]
	b.dirs.mu.Unlock()
	if r != nil {
		return r, func() {}, nil
	}
	var err error
	if create {
		r, err = b.create(d)
	} else {
		r, err = b.root.OpenRoot(d)
	}
	if err != nil {
		if isNotDir(err) {
			err = fs.ErrNotExist
		}
		return nil, nil, err
	}
	b.dirs.mu.Lock()
	defer b.dirs.mu.Unlock()
	if cur := b.dirs.open[d]; cur != nil {
		r.Close()
		return cur, func() {}, nil
	}
	if len(b.dirs.open) >= maxOpenFolders {
		return r, func() { r.Close() }, nil
	}
	b.dirs.open[d] = r
	return r, func() {}, nil
}

// create makes folder d (and any missing parent) and opens it. When its parent exists, as it mostly
// does (a new pickup_date= folder under processed/trips/, and its sidecar folder), that is one mkdirat
// and one openat relative to the open parent, instead of os.Root.MkdirAll's walk from the bucket
// folder (an open, a mkdirat and a close per component). The mkdirat itself stays the dear part (a new
// folder costs 0.1–0.5 ms of kernel time on this project's VMs): the walk was a small share of it.
func (b *Bucket) create(d string) (*os.Root, error) {
	parent, name := path.Split(d)
	if p, release, err := b.folder(path.Clean(parent), false); err == nil {
		err = p.Mkdir(name, 0o755)
		if err == nil || errors.Is(err, fs.ErrExist) {
			r, err := p.OpenRoot(name)
			release()
			if err == nil {
				return r, nil
			}
		} else {
			release()
		}
	}
	// A missing parent, a parent removed while open, or a file in the way: the walk from the bucket
	// folder creates what is missing or reports what is in the way.
	if err := b.root.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	return b.root.OpenRoot(d)
}

// forget drops folder d from the open folders (it was removed, or an operation found it gone).
func (b *Bucket) forget(d string) {
	b.dirs.mu.Lock()
	defer b.dirs.mu.Unlock()
	if r := b.dirs.open[d]; r != nil {
		delete(b.dirs.open, d)
		b.dirs.retired = append(b.dirs.retired, r)
	}
}

func (b *Bucket) closeFolders() {
	b.dirs.mu.Lock()
	defer b.dirs.mu.Unlock()
	for _, r := range b.dirs.open {
		r.Close()
	}
	for _, r := range b.dirs.retired {
		r.Close()
	}
	b.dirs.open, b.dirs.retired = map[string]*os.Root{}, nil
}

// inFolder runs op on the file name in folder dir of p. When an open folder turns out to be gone
// (removed by hand, or pruned), it is forgotten and op runs once more on the folder opened afresh.
func (b *Bucket) inFolder(p string, create bool, op func(r *os.Root, name string) error) error {
	dir, name := path.Split(p)
	dir = path.Clean(dir)
	for try := 0; ; try++ {
		r, release, err := b.folder(dir, create)
		if err != nil {
			return err
		}
		err = op(r, name)
		release()
		if try == 0 && dir != "." && errors.Is(err, fs.ErrNotExist) && b.stale(dir, r) {
			b.forget(dir)
			continue
		}
		return err
	}
}

// stale reports whether the open folder r is no longer the folder at dir (removed or replaced).
func (b *Bucket) stale(dir string, r *os.Root) bool {
	if r == b.root {
		return false
	}
	a, err := r.Stat(".")
	if err != nil {
		return true
	}
	c, err := b.root.Lstat(dir)
	return err != nil || !os.SameFile(a, c)
}

// cachedMeta returns the in-memory sidecar of p, if it describes fi.
func (b *Bucket) cachedMeta(p string, fi fs.FileInfo) (meta, bool) {
	b.metaMu.Lock()
	defer b.metaMu.Unlock()
	m, ok := b.metas[p]
	return m, ok && m.describes(fi)
}

func (b *Bucket) remember(p string, m meta) {
	b.metaMu.Lock()
	defer b.metaMu.Unlock()
	if len(b.metas) >= maxMetas {
		b.metas = map[string]meta{}
	}
	b.metas[p] = m
}

func (b *Bucket) unremember(p string) {
	b.metaMu.Lock()
	defer b.metaMu.Unlock()
	delete(b.metas, p)
}
