package wire

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/johannesboyne/gofakes3"

	"github.com/taxistream/taxistream/internal/local/bucket"
)

// objectStore is the bucket the server serves: *bucket.Bucket, with *s3.Client's method signatures.
type objectStore interface {
	Name() string
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, optFns ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
}

var _ objectStore = (*bucket.Bucket)(nil)

// backend is gofakes3's Backend over the local bucket: one bucket, unversioned. gofakes3's Backend has
// no context; calls use context.Background() (a client that goes away fails the body read instead).
type backend struct {
	store   objectStore
	name    string
	created time.Time
}

var _ gofakes3.Backend = (*backend)(nil)

// ListBuckets lists the one bucket.
func (b *backend) ListBuckets() ([]gofakes3.BucketInfo, error) {
	return []gofakes3.BucketInfo{{Name: b.name, CreationDate: gofakes3.NewContentTime(b.created)}}, nil
}

// BucketExists is true for the local bucket only.
func (b *backend) BucketExists(name string) (bool, error) { return name == b.name, nil }

// CreateBucket succeeds for the local bucket's own name (in us-east-1 S3 answers 200 to the owner) and
// refuses any other: the local cloud's bucket comes from template.yaml.
func (b *backend) CreateBucket(name string) error {
	if name == b.name {
		return nil
	}
	return gofakes3.ErrorMessagef(gofakes3.ErrNotImplemented, "the local cloud serves one bucket, %s, named by template.yaml; it cannot create %s", b.name, name)
}

// DeleteBucket refuses: the pipeline needs its bucket.
func (b *backend) DeleteBucket(name string) error {
	if name != b.name {
		return gofakes3.BucketNotFound(name)
	}
	return gofakes3.ErrorMessagef(gofakes3.ErrNotImplemented, "the local cloud does not delete its bucket %s (empty it with `aws s3 rm --recursive`, or stop the local cloud and remove its folder)", name)
}

// ForceDeleteBucket refuses, as DeleteBucket.
func (b *backend) ForceDeleteBucket(name string) error { return b.DeleteBucket(name) }

// ListBucket lists keys with the bucket's ListObjectsV2. gofakes3 hands over the last key or common
// prefix of the previous page (the continuation token, decoded) or StartAfter as page.Marker. When the
// marker is a common prefix of this listing, every key under it was rolled up into it already, so the
// listing resumes after all of them (S3 never returns a common prefix at or before the marker).
func (b *backend) ListBucket(name string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	p, d := "", ""
	if prefix != nil {
		if prefix.HasPrefix {
			p = prefix.Prefix
		}
		if prefix.HasDelimiter {
			d = prefix.Delimiter
		}
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(name), Prefix: aws.String(p)}
	if d != "" {
		in.Delimiter = aws.String(d)
	}
	if page.MaxKeys > 0 {
		in.MaxKeys = aws.Int32(int32(min(page.MaxKeys, bucket.MaxListKeys)))
	}
	if page.HasMarker && page.Marker != "" {
		after := page.Marker
		if d != "" && isRollup(after, p, d) {
			after += "\xff" // after every key under the prefix: no UTF-8 key holds the byte 0xFF
		}
		in.StartAfter = aws.String(after)
	}
	out, err := b.store.ListObjectsV2(context.Background(), in)
	if err != nil {
		return nil, s3Error(err, name, "")
	}
	list := gofakes3.NewObjectList()
	last := ""
	for _, o := range out.Contents {
		list.Add(&gofakes3.Content{
			Key: aws.ToString(o.Key), LastModified: gofakes3.NewContentTime(aws.ToTime(o.LastModified)),
			ETag: aws.ToString(o.ETag), Size: aws.ToInt64(o.Size), StorageClass: gofakes3.StorageStandard,
		})
		last = max(last, aws.ToString(o.Key))
	}
	for _, cp := range out.CommonPrefixes {
		list.AddPrefix(aws.ToString(cp.Prefix))
		last = max(last, aws.ToString(cp.Prefix))
	}
	if aws.ToBool(out.IsTruncated) {
		list.IsTruncated = true
		list.NextMarker = last
	}
	return list, nil
}

// isRollup reports whether marker is a common prefix a listing of prefix with delimiter d returns.
func isRollup(marker, prefix, d string) bool {
	rest, ok := strings.CutPrefix(marker, prefix)
	if !ok {
		return false
	}
	i := strings.Index(rest, d)
	return i >= 0 && i+len(d) == len(rest)
}

// GetObject returns an object, or the range asked for.
func (b *backend) GetObject(bucketName, key string, rr *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(bucketName), Key: aws.String(key)}
	if rr != nil {
		switch {
		case rr.FromEnd:
			in.Range = aws.String(fmt.Sprintf("bytes=-%d", rr.End))
		case rr.End == gofakes3.RangeNoEnd:
			in.Range = aws.String(fmt.Sprintf("bytes=%d-", rr.Start))
		default:
			in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", rr.Start, rr.End))
		}
	}
	out, err := b.store.GetObject(context.Background(), in)
	if err != nil {
		return nil, s3Error(err, bucketName, key)
	}
	obj := &gofakes3.Object{
		Name: key, Metadata: objectHeaders(out.ContentType, out.LastModified, out.Metadata),
		Size: aws.ToInt64(out.ContentLength), Contents: out.Body, Hash: etagHash(aws.ToString(out.ETag)),
	}
	if cr := aws.ToString(out.ContentRange); cr != "" {
		start, end, size, ok := parseContentRange(cr)
		if !ok {
			out.Body.Close()
			return nil, fmt.Errorf("reading s3://%s/%s: unexpected Content-Range %q", bucketName, key, cr)
		}
		obj.Size = size
		obj.Range = &gofakes3.ObjectRange{Start: start, Length: end - start + 1}
	}
	return obj, nil
}

// parseContentRange parses "bytes a-b/size".
func parseContentRange(s string) (start, end, size int64, ok bool) {
	spec, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, total, _ := strings.Cut(spec, "/")
	a, bs, _ := strings.Cut(rng, "-")
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(bs, 10, 64)
	size, err3 = strconv.ParseInt(total, 10, 64)
	return start, end, size, err1 == nil && err2 == nil && err3 == nil
}

// HeadObject returns an object's metadata.
func (b *backend) HeadObject(bucketName, key string) (*gofakes3.Object, error) {
	out, err := b.store.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucketName), Key: aws.String(key)})
	if err != nil {
		return nil, s3Error(err, bucketName, key)
	}
	return &gofakes3.Object{
		Name: key, Metadata: objectHeaders(out.ContentType, out.LastModified, out.Metadata),
		Size: aws.ToInt64(out.ContentLength), Contents: io.NopCloser(strings.NewReader("")), Hash: etagHash(aws.ToString(out.ETag)),
	}, nil
}

// objectInfo is what a GET/HEAD precondition is checked against.
type objectInfo struct {
	etag         string
	lastModified time.Time
}

func headObject(ctx context.Context, store objectStore, bucketName, key string) (objectInfo, error) {
	out, err := store.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucketName), Key: aws.String(key)})
	if err != nil {
		return objectInfo{}, err
	}
	return objectInfo{etag: aws.ToString(out.ETag), lastModified: aws.ToTime(out.LastModified)}, nil
}

// objectHeaders are the response headers gofakes3 writes for an object (it writes Metadata as headers).
func objectHeaders(contentType *string, lastModified *time.Time, meta map[string]string) map[string]string {
	h := map[string]string{"Content-Type": aws.ToString(contentType)}
	if lastModified != nil {
		h["Last-Modified"] = httpTime(*lastModified)
	}
	for k, v := range meta {
		h[http.CanonicalHeaderKey("X-Amz-Meta-"+k)] = v
	}
	return h
}

func etagHash(etag string) []byte {
	b, err := hex.DecodeString(strings.Trim(etag, `"`))
	if err != nil {
		return nil
	}
	return b
}

// userMetadata picks the x-amz-meta-* headers of gofakes3's metadata map, names lower-cased without the
// prefix (the SDK's Metadata map).
func userMetadata(meta map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range meta {
		if name, ok := cutPrefixFold(k, "X-Amz-Meta-"); ok && name != "" {
			out[strings.ToLower(name)] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func contentType(meta map[string]string) *string {
	if ct := meta["Content-Type"]; ct != "" {
		return aws.String(ct)
	}
	return nil
}

// PutObject streams the body into the bucket, which fires the ObjectCreated hooks (the S3 trigger).
func (b *backend) PutObject(bucketName, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	in := &s3.PutObjectInput{
		Bucket: aws.String(bucketName), Key: aws.String(key), Body: input,
		ContentType: contentType(meta), Metadata: userMetadata(meta),
	}
	if cond != nil {
		in.IfMatch, in.IfNoneMatch = cond.IfMatch, cond.IfNoneMatch
	}
	if _, err := b.store.PutObject(context.Background(), in); err != nil {
		return gofakes3.PutObjectResult{}, s3Error(err, bucketName, key)
	}
	return gofakes3.PutObjectResult{}, nil
}

// DeleteObject deletes an object; a missing one is not an error, as on S3.
func (b *backend) DeleteObject(bucketName, key string) (gofakes3.ObjectDeleteResult, error) {
	if _, err := b.store.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucketName), Key: aws.String(key)}); err != nil {
		return gofakes3.ObjectDeleteResult{}, s3Error(err, bucketName, key)
	}
	return gofakes3.ObjectDeleteResult{}, nil
}

// DeleteMulti deletes each key and reports each outcome, as DeleteObjects does.
func (b *backend) DeleteMulti(bucketName string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	var res gofakes3.MultiDeleteResult
	for _, k := range keys {
		if _, err := b.DeleteObject(bucketName, k); err != nil {
			er := gofakes3.ErrorResultFromError(err)
			er.Key = k
			res.Error = append(res.Error, er)
			continue
		}
		res.Deleted = append(res.Deleted, gofakes3.ObjectID{Key: k})
	}
	return res, nil
}

// replaceMetadataHeader carries, from the front of the server to CopyObject, the names of the user
// metadata a CopyObject with x-amz-metadata-directive: REPLACE sends itself (see serveS3).
const replaceMetadataHeader = "X-Amz-Taxistream-Replace-Metadata"

// CopyObject copies within the bucket. gofakes3 passes the request's headers merged with the source's
// metadata; x-amz-metadata-directive and x-amz-copy-source-if-match are honoured by the bucket.
func (b *backend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	in := &s3.CopyObjectInput{
		Bucket: aws.String(dstBucket), Key: aws.String(dstKey),
		CopySource: aws.String(srcBucket + "/" + url.PathEscape(srcKey)),
	}
	if strings.EqualFold(meta["X-Amz-Metadata-Directive"], string(types.MetadataDirectiveReplace)) {
		in.MetadataDirective = types.MetadataDirectiveReplace
		in.ContentType = contentType(meta)
		// gofakes3 merged the source's metadata into meta; REPLACE keeps only the request's own.
		own := map[string]bool{}
		for _, n := range strings.Split(meta[replaceMetadataHeader], ",") {
			own[n] = true
		}
		for k, v := range userMetadata(meta) {
			if own[k] {
				if in.Metadata == nil {
					in.Metadata = map[string]string{}
				}
				in.Metadata[k] = v
			}
		}
	}
	if v := meta["X-Amz-Copy-Source-If-Match"]; v != "" {
		in.CopySourceIfMatch = aws.String(v)
	}
	out, err := b.store.CopyObject(context.Background(), in)
	if err != nil {
		return gofakes3.CopyObjectResult{}, s3Error(err, dstBucket, dstKey)
	}
	r := out.CopyObjectResult
	return gofakes3.CopyObjectResult{ETag: aws.ToString(r.ETag), LastModified: gofakes3.NewContentTime(aws.ToTime(r.LastModified))}, nil
}

// s3Error turns the bucket's errors (the SDK's error types) into gofakes3's, which it writes as S3's
// XML error documents with S3's status codes. gofakes3 recognises its error types by a type switch, so
// they are returned unwrapped.
func s3Error(err error, bucketName, key string) error {
	var ge gofakes3.Error
	if errors.As(err, &ge) {
		return ge // from the body: BadDigest, IncompleteBody ...
	}
	if errors.Is(err, bucket.ErrKeyConflict) {
		return gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, err.Error())
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return gofakes3.ErrorMessage(gofakes3.ErrInternal, err.Error())
	}
	msg := ae.ErrorMessage()
	switch ae.ErrorCode() {
	case "NoSuchKey", "NotFound":
		return gofakes3.KeyNotFound(key)
	case "NoSuchBucket":
		return gofakes3.BucketNotFound(bucketName)
	case bucket.CodePreconditionFailed:
		return gofakes3.ErrorMessage(gofakes3.ErrPreconditionFailed, msg)
	case bucket.CodeNotModified:
		return gofakes3.ErrNotModified
	case bucket.CodeInvalidRange:
		return gofakes3.ErrorMessage(gofakes3.ErrInvalidRange, msg)
	case bucket.CodeNotImplemented:
		return gofakes3.ErrorMessage(gofakes3.ErrNotImplemented, msg)
	case bucket.CodeBadDigest:
		return gofakes3.ErrorMessage(gofakes3.ErrBadDigest, msg)
	case bucket.CodeKeyTooLong:
		return gofakes3.ResourceError(gofakes3.ErrKeyTooLong, key)
	case bucket.CodeInvalidArgument:
		return gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, msg)
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() < http.StatusInternalServerError {
		return gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, ae.ErrorCode()+": "+msg)
	}
	return gofakes3.ErrorMessage(gofakes3.ErrInternal, ae.ErrorCode()+": "+msg)
}
