package bucket

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// check validates the bucket name and key of a request and returns the key's path in the folder.
func (b *Bucket) check(op string, bucket, key *string) (string, error) {
	if bucket == nil || *bucket != b.name {
		name := ""
		if bucket != nil {
			name = *bucket
		}
		return "", noSuchBucket(op, name)
	}
	if key == nil {
		return "", invalidKey(op, fmt.Errorf("%w: no key", ErrInvalidKey))
	}
	p, err := keyPath(*key)
	if err != nil {
		return "", invalidKey(op, err)
	}
	return p, nil
}

// GetObject returns an object's bytes, or the range asked for with Range ("bytes=a-b", "bytes=a-",
// "bytes=-n"). A range that starts at or after the end is a 416 InvalidRange; a malformed or multi-part
// range is ignored (the whole object is returned), as S3 does. If-Match and If-None-Match are honoured.
func (b *Bucket) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	const op = "GetObject"
	p, err := b.check(op, in.Bucket, in.Key)
	if err != nil {
		return nil, err
	}
	if in.VersionId != nil && *in.VersionId != "null" {
		return nil, apiError(op, http.StatusBadRequest, generic(CodeInvalidArgument, "Invalid version id specified"))
	}
	b.mu.RLock()
	m, err := b.stat(p)
	var f *os.File
	if err == nil {
		f, err = b.open(p)
	}
	b.mu.RUnlock()
	if errors.Is(err, errNotFound) {
		return nil, noSuchKey(op)
	}
	if err != nil {
		return nil, fmt.Errorf("getting s3://%s/%s: %w", b.name, *in.Key, err)
	}
	if err := getPreconditions(op, in.IfMatch, in.IfNoneMatch, m.ETag); err != nil {
		f.Close()
		return nil, err
	}
	out := &s3.GetObjectOutput{
		AcceptRanges:  ptr("bytes"),
		ContentLength: ptr(m.Size),
		ContentType:   ptr(m.ContentType),
		ETag:          ptr(m.ETag),
		LastModified:  ptr(m.LastModified.Truncate(time.Second)),
		Metadata:      cloneMap(m.Metadata),
		Body:          f,
	}
	if in.Range != nil {
		start, end, ok := parseRange(*in.Range, m.Size)
		if ok && start < 0 {
			f.Close()
			return nil, apiError(op, http.StatusRequestedRangeNotSatisfiable,
				generic(CodeInvalidRange, "The requested range is not satisfiable"))
		}
		if ok {
			out.Body = readCloser{io.NewSectionReader(f, start, end-start+1), f}
			out.ContentLength = ptr(end - start + 1)
			out.ContentRange = ptr(fmt.Sprintf("bytes %d-%d/%d", start, end, m.Size))
		}
	}
	return out, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// parseRange parses a single HTTP byte range against an object of size bytes. ok is false when the
// header must be ignored; start < 0 means the range is not satisfiable (416).
func parseRange(h string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false
		}
		if n == 0 || size == 0 {
			return -1, 0, true
		}
		return max(size-n, 0), size - 1, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 {
		return 0, 0, false
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || e < s {
			return 0, 0, false
		}
	}
	if s >= size {
		return -1, 0, true
	}
	return s, min(e, size-1), true
}

func getPreconditions(op string, ifMatch, ifNoneMatch *string, etag string) error {
	if ifMatch != nil && *ifMatch != "*" && !sameETag(*ifMatch, etag) {
		return preconditionFailed(op)
	}
	if ifNoneMatch != nil && (*ifNoneMatch == "*" || sameETag(*ifNoneMatch, etag)) {
		return apiError(op, http.StatusNotModified, generic(CodeNotModified, "Not Modified"))
	}
	return nil
}

// HeadObject returns an object's metadata. A missing object is *types.NotFound, as the SDK reports a
// 404 to HEAD (which has no body to carry NoSuchKey).
func (b *Bucket) HeadObject(ctx context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	const op = "HeadObject"
	p, err := b.check(op, in.Bucket, in.Key)
	if err != nil {
		return nil, err
	}
	b.mu.RLock()
	m, err := b.stat(p)
	b.mu.RUnlock()
	if errors.Is(err, errNotFound) {
		return nil, apiError(op, http.StatusNotFound, &types.NotFound{Message: ptr("Not Found")})
	}
	if err != nil {
		return nil, fmt.Errorf("heading s3://%s/%s: %w", b.name, *in.Key, err)
	}
	if err := getPreconditions(op, in.IfMatch, in.IfNoneMatch, m.ETag); err != nil {
		return nil, err
	}
	return &s3.HeadObjectOutput{
		AcceptRanges:  ptr("bytes"),
		ContentLength: ptr(m.Size),
		ContentType:   ptr(m.ContentType),
		ETag:          ptr(m.ETag),
		LastModified:  ptr(m.LastModified.Truncate(time.Second)),
		Metadata:      cloneMap(m.Metadata),
	}, nil
}

// PutObject streams Body to a temporary file, then renames it into place. The ETag is the MD5 of the
// bytes, quoted. Conditional writes follow S3: If-None-Match "*" fails with 412 PreconditionFailed when
// the key exists (other values: 501 NotImplemented); If-Match fails with 412 when the ETag differs and
// with 404 NoSuchKey when there is no object. The check and the rename are atomic among goroutines.
func (b *Bucket) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	const op = "PutObject"
	p, err := b.check(op, in.Bucket, in.Key)
	if err != nil {
		return nil, err
	}
	if err := checkWriteConditions(op, in.IfNoneMatch); err != nil {
		return nil, err
	}
	body := in.Body
	if body == nil {
		body = bytes.NewReader(nil)
	}
	tmp, err := b.spool(ctx, p, body)
	if err != nil {
		return nil, fmt.Errorf("putting s3://%s/%s: %w", b.name, *in.Key, err)
	}
	sum, size := tmp.sum, tmp.size
	if in.ContentMD5 != nil {
		want, err := base64.StdEncoding.DecodeString(*in.ContentMD5)
		if err != nil || !bytes.Equal(want, sum) {
			tmp.remove()
			return nil, apiError(op, http.StatusBadRequest, generic(CodeBadDigest, "The Content-MD5 you specified did not match what we received."))
		}
	}
	ct := defaultContentType
	if in.ContentType != nil && *in.ContentType != "" {
		ct = *in.ContentType
	}
	ev, err := b.commit(op, p, tmp, meta{
		ETag:        quote(hex.EncodeToString(sum)),
		Size:        size,
		ContentType: ct,
		Metadata:    lowerKeys(in.Metadata),
	}, in.IfMatch, in.IfNoneMatch, eventOf(ctx), *in.Key)
	if err != nil {
		return nil, err
	}
	b.fire(ev)
	return &s3.PutObjectOutput{ETag: ptr(ev.ETag), Size: ptr(size)}, nil
}

func checkWriteConditions(op string, ifNoneMatch *string) error {
	if ifNoneMatch != nil && *ifNoneMatch != "*" {
		return apiError(op, http.StatusNotImplemented,
			generic(CodeNotImplemented, "A header you provided implies functionality that is not implemented"))
	}
	return nil
}

// upload is a temporary file holding an object's new bytes, in the folder of its key.
type upload struct {
	b     *Bucket
	dir   string // the folder (slash path)
	root  *os.Root
	done  func()   // releases root
	name  string   // of the temporary file in root
	f     *os.File // the temporary file, open until commit or remove
	sum   []byte   // MD5
	size  int64
	mtime int64 // ns; a rename keeps it
}

// remove deletes the temporary file and releases its folder.
func (u *upload) remove() {
	u.discard()
	u.done()
}

// discard closes and deletes the temporary file.
func (u *upload) discard() {
	u.close()
	u.root.Remove(u.name)
}

// close closes the temporary file (once).
func (u *upload) close() error {
	if u.f == nil {
		return nil
	}
	err := u.f.Close()
	u.f = nil
	return err
}

// spool copies r into a new temporary file next to p (its folder created if needed) and returns it
// with its MD5, size and mtime.
func (b *Bucket) spool(ctx context.Context, p string, r io.Reader) (*upload, error) {
	dir := path.Dir(p)
	u := &upload{b: b, dir: dir}
	var f *os.File
	for try := 0; ; try++ {
		root, done, err := b.folder(dir, true)
		if err != nil {
			return nil, fmt.Errorf("%w: a parent of the key is an object, which a folder on disk cannot hold: %w", ErrKeyConflict, err)
		}
		f, u.name, err = tempFile(root)
		if err == nil {
			u.root, u.done = root, done
			break
		}
		done()
		if try == 0 && errors.Is(err, fs.ErrNotExist) {
			b.forget(dir) // the open folder was removed: open it afresh
			continue
		}
		return nil, err
	}
	u.f = f // kept open: commit sets the metadata attribute on it before the rename
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	var fi fs.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if err != nil {
		u.remove()
		return nil, err
	}
	u.sum, u.size, u.mtime = h.Sum(nil), n, fi.ModTime().UnixNano()
	return u, nil
}

// open opens the object file at p for reading.
func (b *Bucket) open(p string) (f *os.File, err error) {
	err = b.inFolder(p, false, func(r *os.Root, name string) (err error) {
		f, err = r.Open(name)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		err = errNotFound
	}
	return f, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// commit checks the write preconditions against the current version of p and, if they hold, renames
// the upload into place and writes the sidecar, all under the write lock. It returns the event to fire.
func (b *Bucket) commit(op, p string, u *upload, m meta, ifMatch, ifNoneMatch *string, event, key string) (ObjectCreated, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer u.done()
	if ifMatch != nil || ifNoneMatch != nil {
		cur, err := b.stat(p)
		exists := err == nil
		if err != nil && !errors.Is(err, errNotFound) {
			u.discard()
			return ObjectCreated{}, fmt.Errorf("putting s3://%s/%s: %w", b.name, key, err)
		}
		switch {
		case ifNoneMatch != nil && exists:
			u.discard()
			return ObjectCreated{}, preconditionFailed(op)
		case ifMatch != nil && !exists:
			u.discard()
			return ObjectCreated{}, noSuchKey(op)
		case ifMatch != nil && *ifMatch != "*" && !sameETag(*ifMatch, cur.ETag):
			u.discard()
			return ObjectCreated{}, preconditionFailed(op)
		}
	}
	now := b.now()
	m.MTimeNS = u.mtime
	m.LastModified = now.UTC().Truncate(time.Millisecond)
	m.Notified = true
	data, err := json.Marshal(m)
	if err != nil {
		u.discard()
		return ObjectCreated{}, fmt.Errorf("putting s3://%s/%s: writing metadata: %w", b.name, key, err)
	}
	// The attribute goes on the temporary file, still open: the object and its metadata appear
	// together at the rename, and the file is not opened again for it.
	attr := b.xattr && setXattr(u.f, data) == nil
	if err := u.close(); err != nil {
		u.root.Remove(u.name)
		return ObjectCreated{}, fmt.Errorf("putting s3://%s/%s: %w", b.name, key, err)
	}
	if err := u.root.Rename(u.name, path.Base(p)); err != nil {
		u.root.Remove(u.name)
		return ObjectCreated{}, fmt.Errorf("putting s3://%s/%s: %w: the key is also a prefix of other keys, which a folder on disk cannot hold: %w", b.name, key, ErrKeyConflict, err)
	}
	if attr {
		b.remember(p, m)
	} else if err := b.writeSidecar(p, m); err != nil {
		return ObjectCreated{}, fmt.Errorf("putting s3://%s/%s: writing metadata: %w", b.name, key, err)
	}
	return ObjectCreated{
		Bucket: b.name, Key: key, Size: m.Size, ETag: m.ETag, EventName: event,
		Sequencer: b.nextSequencer(now), Time: now.UTC(),
	}, nil
}

// DeleteObject removes an object; deleting a missing key succeeds, as on S3. If-Match is honoured.
func (b *Bucket) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	const op = "DeleteObject"
	p, err := b.check(op, in.Bucket, in.Key)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, err := b.stat(p)
	if errors.Is(err, errNotFound) {
		if in.IfMatch != nil {
			return nil, noSuchKey(op)
		}
		return &s3.DeleteObjectOutput{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deleting s3://%s/%s: %w", b.name, *in.Key, err)
	}
	if in.IfMatch != nil && *in.IfMatch != "*" && !sameETag(*in.IfMatch, cur.ETag) {
		return nil, preconditionFailed(op)
	}
	if err := b.inFolder(p, false, func(r *os.Root, name string) error { return r.Remove(name) }); err != nil {
		return nil, fmt.Errorf("deleting s3://%s/%s: %w", b.name, *in.Key, err)
	}
	b.inFolder(sidecarPath(p), false, func(r *os.Root, name string) error { return r.Remove(name) })
	b.unremember(p)
	b.pruneDirs(path.Dir(p))
	b.pruneDirs(path.Dir(sidecarPath(p)))
	return &s3.DeleteObjectOutput{}, nil
}

// pruneDirs removes dir and its parents while they are empty (S3 has no folders to leave behind).
// Callers hold mu for writing.
func (b *Bucket) pruneDirs(dir string) {
	for dir != "." && dir != metaDir && dir != "/" && dir != "" {
		if b.root.Remove(dir) != nil {
			return
		}
		b.forget(dir)
		dir = path.Dir(dir)
	}
}

// CopyObject copies an object within the bucket. CopySource is "bucket/key" with the key URL-encoded
// (as the SDK requires). Metadata is copied unless MetadataDirective is REPLACE. If-Match and
// If-None-Match apply to the destination, as for PutObject.
func (b *Bucket) CopyObject(ctx context.Context, in *s3.CopyObjectInput, _ ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	const op = "CopyObject"
	p, err := b.check(op, in.Bucket, in.Key)
	if err != nil {
		return nil, err
	}
	if err := checkWriteConditions(op, in.IfNoneMatch); err != nil {
		return nil, err
	}
	if in.CopySource == nil {
		return nil, apiError(op, http.StatusBadRequest, generic(CodeInvalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"))
	}
	src, _, _ := strings.Cut(strings.TrimPrefix(*in.CopySource, "/"), "?")
	srcBucket, encKey, ok := strings.Cut(src, "/")
	if !ok {
		return nil, apiError(op, http.StatusBadRequest, generic(CodeInvalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"))
	}
	srcKey, err := url.PathUnescape(encKey)
	if err != nil {
		return nil, apiError(op, http.StatusBadRequest, generic(CodeInvalidArgument, "Invalid copy source encoding"))
	}
	sp, err := b.check(op, &srcBucket, &srcKey)
	if err != nil {
		return nil, err
	}
	b.mu.RLock()
	sm, err := b.stat(sp)
	var f *os.File
	if err == nil {
		f, err = b.open(sp)
	}
	b.mu.RUnlock()
	if errors.Is(err, errNotFound) {
		return nil, noSuchKey(op)
	}
	if err != nil {
		return nil, fmt.Errorf("copying s3://%s/%s: %w", b.name, srcKey, err)
	}
	if in.CopySourceIfMatch != nil && !sameETag(*in.CopySourceIfMatch, sm.ETag) {
		f.Close()
		return nil, preconditionFailed(op)
	}
	tmp, err := b.spool(ctx, p, f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("copying s3://%s/%s: %w", b.name, srcKey, err)
	}
	m := meta{ETag: quote(hex.EncodeToString(tmp.sum)), Size: tmp.size, ContentType: sm.ContentType, Metadata: sm.Metadata}
	if in.MetadataDirective == types.MetadataDirectiveReplace {
		m.Metadata = lowerKeys(in.Metadata)
		if in.ContentType != nil {
			m.ContentType = *in.ContentType
		}
	}
	ev, err := b.commit(op, p, tmp, m, in.IfMatch, in.IfNoneMatch, EventCopy, *in.Key)
	if err != nil {
		return nil, err
	}
	b.fire(ev)
	return &s3.CopyObjectOutput{CopyObjectResult: &types.CopyObjectResult{ETag: ptr(ev.ETag), LastModified: ptr(ev.Time.Truncate(time.Millisecond))}}, nil
}

// lowerKeys returns user metadata with lower-case names, as S3 returns them.
func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
