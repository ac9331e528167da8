package wire

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"github.com/johannesboyne/gofakes3"

	"github.com/taxistream/taxistream/internal/local/bucket"
)

// S3 multipart upload limits.
const (
	// MinPartSize is the smallest part S3 accepts, except for the last part of an upload (5 MiB).
	MinPartSize = 5 << 20
	// MaxPartSize is the largest part (5 GiB).
	MaxPartSize = 5 << 30
)

// multipart is gofakes3's MultipartBackend with the parts on disk (<dir>/<upload id>/<part number>), so
// a large upload does not sit in memory. CompleteMultipartUpload streams the parts, in order, into one
// PutObject of the bucket, reported to the ObjectCreated hooks as ObjectCreated:CompleteMultipartUpload.
// Uploads live as long as the server: Shutdown drops those not completed.
type multipart struct {
	dir   string
	store objectStore
	now   func() time.Time

	mu      sync.Mutex
	uploads map[gofakes3.UploadID]*upload
}

type upload struct {
	id        gofakes3.UploadID
	bucket    string
	key       string
	meta      map[string]string
	initiated time.Time
	parts     map[int]part
	busy      bool // being completed
}

type part struct {
	etag     string // quoted MD5 of the part
	size     int64
	modified time.Time
}

var _ gofakes3.MultipartBackend = (*multipart)(nil)

func newMultipart(dir string, store objectStore, now func() time.Time) *multipart {
	return &multipart{dir: dir, store: store, now: now, uploads: map[gofakes3.UploadID]*upload{}}
}

func (m *multipart) partPath(id gofakes3.UploadID, n int) string {
	return filepath.Join(m.dir, string(id), strconv.Itoa(n))
}

// CreateMultipartUpload starts an upload. The key is checked as the bucket checks keys.
func (m *multipart) CreateMultipartUpload(bucketName, key string, meta map[string]string) (gofakes3.UploadID, error) {
	if _, err := m.store.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucketName), Key: aws.String(key)}); err != nil {
		if gerr := s3Error(err, bucketName, key); !gofakes3.HasErrorCode(gerr, gofakes3.ErrNoSuchKey) {
			return "", gerr
		}
	}
	id := gofakes3.UploadID(strings.ReplaceAll(uuid.NewString(), "-", ""))
	if err := os.MkdirAll(filepath.Join(m.dir, string(id)), 0o755); err != nil {
		return "", gofakes3.ErrorMessage(gofakes3.ErrInternal, err.Error())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.uploads[id] = &upload{id: id, bucket: bucketName, key: key, meta: meta, initiated: m.now().UTC(), parts: map[int]part{}}
	return id, nil
}

// get returns the upload id of bucket/key; callers hold mu.
func (m *multipart) get(bucketName, key string, id gofakes3.UploadID) (*upload, error) {
	u, ok := m.uploads[id]
	if !ok || u.bucket != bucketName || u.key != key || u.busy {
		return nil, gofakes3.ErrorMessage(gofakes3.ErrNoSuchUpload, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
	}
	return u, nil
}

// UploadPart stores one part (replacing an earlier part of the same number) and returns its ETag.
func (m *multipart) UploadPart(bucketName, key string, id gofakes3.UploadID, n int, contentLength int64, input io.Reader) (string, error) {
	if n < 1 || n > gofakes3.MaxUploadPartNumber {
		return "", gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument, "Part number must be an integer between 1 and %d, inclusive", gofakes3.MaxUploadPartNumber)
	}
	if contentLength > MaxPartSize {
		return "", gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "EntityTooLarge: a part is at most 5 GiB")
	}
	m.mu.Lock()
	_, err := m.get(bucketName, key, id)
	m.mu.Unlock()
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Join(m.dir, string(id)), ".part-*")
	if err != nil {
		return "", gofakes3.ErrorMessage(gofakes3.ErrNoSuchUpload, "The specified upload does not exist (aborted while its part was being uploaded).")
	}
	h := md5.New()
	size, err := io.Copy(io.MultiWriter(f, h), input)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && contentLength >= 0 && size != contentLength {
		err = gofakes3.ErrIncompleteBody
	}
	if err != nil {
		os.Remove(f.Name())
		return "", s3Error(err, bucketName, key)
	}
	etag := `"` + hex.EncodeToString(h.Sum(nil)) + `"`
	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := m.get(bucketName, key, id)
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	if err := os.Rename(f.Name(), m.partPath(id, n)); err != nil {
		os.Remove(f.Name())
		return "", gofakes3.ErrorMessage(gofakes3.ErrInternal, err.Error())
	}
	u.parts[n] = part{etag: etag, size: size, modified: m.now().UTC()}
	return etag, nil
}

// ListParts lists the parts uploaded so far, after marker, at most limit.
func (m *multipart) ListParts(bucketName, key string, id gofakes3.UploadID, marker int, limit int64) (*gofakes3.ListMultipartUploadPartsResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := m.get(bucketName, key, id)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = gofakes3.DefaultMaxUploadParts
	}
	res := &gofakes3.ListMultipartUploadPartsResult{Bucket: bucketName, Key: key, UploadID: id, PartNumberMarker: marker, MaxParts: limit, StorageClass: gofakes3.StorageStandard}
	for _, n := range sortedParts(u.parts) {
		if n <= marker {
			continue
		}
		if int64(len(res.Parts)) == limit {
			res.IsTruncated = true
			break
		}
		p := u.parts[n]
		res.Parts = append(res.Parts, gofakes3.ListMultipartUploadPartItem{PartNumber: n, ETag: p.etag, Size: p.size, LastModified: gofakes3.NewContentTime(p.modified)})
		res.NextPartNumberMarker = n
	}
	return res, nil
}

func sortedParts(parts map[int]part) []int {
	ns := make([]int, 0, len(parts))
	for n := range parts {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	return ns
}

// ListMultipartUploads lists the uploads in progress whose keys start with the prefix, in key order
// then initiation order, after the marker, at most limit (no delimiter roll-up).
func (m *multipart) ListMultipartUploads(bucketName string, marker *gofakes3.UploadListMarker, prefix gofakes3.Prefix, limit int64) (*gofakes3.ListMultipartUploadsResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if limit <= 0 {
		limit = gofakes3.DefaultMaxUploads
	}
	res := &gofakes3.ListMultipartUploadsResult{Bucket: bucketName, Prefix: prefix.Prefix, MaxUploads: limit}
	var all []*upload
	for _, u := range m.uploads {
		if u.bucket == bucketName && !u.busy && strings.HasPrefix(u.key, prefix.Prefix) {
			all = append(all, u)
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].key != all[j].key {
			return all[i].key < all[j].key
		}
		if !all[i].initiated.Equal(all[j].initiated) {
			return all[i].initiated.Before(all[j].initiated)
		}
		return all[i].id < all[j].id
	})
	if marker != nil {
		res.KeyMarker, res.UploadIDMarker = marker.Object, marker.UploadID
	}
	for _, u := range all {
		if marker != nil && marker.Object != "" && (u.key < marker.Object || (u.key == marker.Object && (marker.UploadID == "" || u.id <= marker.UploadID))) {
			continue
		}
		if int64(len(res.Uploads)) == limit {
			res.IsTruncated = true
			break
		}
		res.Uploads = append(res.Uploads, gofakes3.ListMultipartUploadItem{Key: u.key, UploadID: u.id, StorageClass: gofakes3.StorageStandard, Initiated: gofakes3.NewContentTime(u.initiated)})
		res.NextKeyMarker, res.NextUploadIDMarker = u.key, u.id
	}
	if !res.IsTruncated {
		res.NextKeyMarker, res.NextUploadIDMarker = "", ""
	}
	return res, nil
}

// AbortMultipartUpload drops an upload and its parts.
func (m *multipart) AbortMultipartUpload(bucketName, key string, id gofakes3.UploadID) error {
	m.mu.Lock()
	_, err := m.get(bucketName, key, id)
	if err == nil {
		delete(m.uploads, id)
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(m.dir, string(id)))
}

// CompleteMultipartUpload checks the part list as S3 does (ascending part numbers, each part uploaded
// with that ETag, every part but the last at least 5 MiB) and writes the object from the parts. The
// object's ETag is the bucket's (the MD5 of its bytes), not S3's "<MD5 of the part MD5s>-<parts>".
func (m *multipart) CompleteMultipartUpload(bucketName, key string, id gofakes3.UploadID, in *gofakes3.CompleteMultipartUploadRequest) (gofakes3.VersionID, string, error) {
	m.mu.Lock()
	u, err := m.get(bucketName, key, id)
	if err != nil {
		m.mu.Unlock()
		return "", "", err
	}
	if err := checkParts(u, in.Parts); err != nil {
		m.mu.Unlock()
		return "", "", err
	}
	u.busy = true // neither listed, completed twice, nor aborted while it is written
	m.mu.Unlock()

	files := make([]io.Reader, 0, len(in.Parts))
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, p := range in.Parts {
		f, err := os.Open(m.partPath(id, p.PartNumber))
		if err != nil {
			m.release(u)
			return "", "", gofakes3.ErrorMessage(gofakes3.ErrInternal, err.Error())
		}
		files = append(files, f)
		closers = append(closers, f)
	}
	ctx := bucket.WithEvent(context.Background(), bucket.EventCompleteMultipartUpload)
	out, err := m.store.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucketName), Key: aws.String(key), Body: io.MultiReader(files...),
		ContentType: contentType(u.meta), Metadata: userMetadata(u.meta),
	})
	if err != nil {
		m.release(u)
		return "", "", s3Error(err, bucketName, key)
	}
	m.mu.Lock()
	delete(m.uploads, id)
	m.mu.Unlock()
	for _, c := range closers {
		c.Close()
	}
	closers = nil
	os.RemoveAll(filepath.Join(m.dir, string(id)))
	return "", aws.ToString(out.ETag), nil
}

func (m *multipart) release(u *upload) {
	m.mu.Lock()
	u.busy = false
	m.mu.Unlock()
}

func checkParts(u *upload, parts []gofakes3.CompletedPart) error {
	if len(parts) == 0 {
		return gofakes3.ErrorMessage(gofakes3.ErrMalformedXML, "The XML you provided was not well-formed or did not validate against our published schema: a CompleteMultipartUpload needs at least one part")
	}
	for i := 1; i < len(parts); i++ {
		if parts[i].PartNumber <= parts[i-1].PartNumber {
			return gofakes3.ErrorMessage(gofakes3.ErrInvalidPartOrder, "The list of parts was not in ascending order. Parts must be ordered by part number.")
		}
	}
	for i, p := range parts {
		have, ok := u.parts[p.PartNumber]
		if !ok || strings.Trim(have.etag, `"`) != strings.Trim(strings.TrimSpace(p.ETag), `"`) {
			return gofakes3.ErrorMessagef(gofakes3.ErrInvalidPart, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag (part %d).", p.PartNumber)
		}
		if i < len(parts)-1 && have.size < MinPartSize {
			// S3's code is EntityTooSmall (400); gofakes3 knows no such code, so InvalidPart (400) carries it.
			return gofakes3.ErrorMessagef(gofakes3.ErrInvalidPart, "EntityTooSmall: Your proposed upload is smaller than the minimum allowed size: part %d is %d bytes; every part but the last must be at least %d bytes (5 MiB).", p.PartNumber, have.size, MinPartSize)
		}
	}
	return nil
}

// close drops the uploads in progress (and the folder, when it was made for the server).
func (m *multipart) close(removeDir bool) error {
	m.mu.Lock()
	ids := make([]gofakes3.UploadID, 0, len(m.uploads))
	for id := range m.uploads {
		ids = append(ids, id)
	}
	m.uploads = map[gofakes3.UploadID]*upload{}
	m.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := os.RemoveAll(filepath.Join(m.dir, string(id))); err != nil {
			errs = append(errs, err)
		}
	}
	if removeDir {
		if err := os.RemoveAll(m.dir); err != nil {
			errs = append(errs, fmt.Errorf("removing the upload folder: %w", err))
		}
	}
	return errors.Join(errs...)
}
