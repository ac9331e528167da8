package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
)

// serveS3 handles an S3 REST request: what gofakes3 does not do (signature shape, virtual-host-style
// addressing, aws-chunked bodies, checksums, GET/HEAD preconditions, S3's leniency with malformed
// ranges) is done here, then gofakes3 routes the request to the backend.
func (s *Server) serveS3(w http.ResponseWriter, r *http.Request, authErr *authError) {
	if authErr != nil {
		status, code := http.StatusForbidden, "AccessDenied"
		switch authErr.kind {
		case authUnsupported:
			status, code = http.StatusBadRequest, "InvalidRequest"
		case authMalformed:
			status, code = http.StatusBadRequest, "AuthorizationHeaderMalformed"
		case authSkewed:
			code = "RequestTimeTooSkewed"
		case authMissing:
			authErr.msg = "Access Denied"
		}
		writeS3Error(w, r, status, code, authErr.msg)
		return
	}
	s.virtualHost(r)
	if sub := unsupportedSubresource(r); sub != "" {
		// gofakes3 would route GET ?tagging like GET of the object itself.
		writeS3Error(w, r, http.StatusNotImplemented, string(gofakes3.ErrNotImplemented),
			"the local bucket does not implement the ?"+sub+" sub-resource (served: objects, listing, multipart uploads, copy, delete; no ACLs, tags, policies or bucket configuration)")
		return
	}
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		if status, code, msg, ok := prepareBody(r); !ok {
			writeS3Error(w, r, status, code, msg)
			return
		}
	}
	r.Header.Del(replaceMetadataHeader)
	if r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "" && strings.EqualFold(r.Header.Get("X-Amz-Metadata-Directive"), "REPLACE") {
		var names []string
		for k := range r.Header {
			if name, ok := cutPrefixFold(k, "X-Amz-Meta-"); ok {
				names = append(names, strings.ToLower(name))
			}
		}
		r.Header.Set(replaceMetadataHeader, strings.Join(names, ","))
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		normaliseRange(r)
		if bucket, key, ok := objectPath(r); ok && !subresource(r) {
			if s.preconditions(w, r, bucket, key) {
				return
			}
			s.fullObjectChecksum(w, r, bucket, key)
		}
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	listV2 := r.Method == http.MethodGet && bucket != "" && key == "" && r.URL.Query().Get("list-type") == "2"
	sw := &s3Writer{ResponseWriter: w, buffer: listV2}
	s.s3.ServeHTTP(sw, r)
	sw.finish()
}

// s3Writer corrects gofakes3's responses where they differ from S3's on the wire: user metadata headers
// are sent lower-case (x-amz-meta-origin, as S3 stores them; Go would send X-Amz-Meta-Origin, which
// clients hand back with that case), and a ListObjectsV2 result always has its KeyCount, also 0 (gofakes3
// omits a zero KeyCount; S3 does not and clients read it).
type s3Writer struct {
	http.ResponseWriter
	buffer  bool // a ListObjectsV2 response: held until finish
	status  int
	body    bytes.Buffer
	started bool
}

func (w *s3Writer) start(code int) {
	if w.started {
		return
	}
	w.started, w.status = true, code
	h := w.Header()
	for k, v := range h {
		if name, ok := cutPrefixFold(k, "X-Amz-Meta-"); ok {
			delete(h, k)
			h["x-amz-meta-"+strings.ToLower(name)] = v
		}
	}
	if !w.buffer {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *s3Writer) WriteHeader(code int) { w.start(code) }

func (w *s3Writer) Write(p []byte) (int, error) {
	w.start(http.StatusOK)
	if w.buffer {
		return w.body.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *s3Writer) finish() {
	w.start(http.StatusOK) // a HEAD or an empty 200 writes nothing: its headers are corrected here
	if !w.buffer {
		return
	}
	b := w.body.Bytes()
	if w.status == http.StatusOK && !bytes.Contains(b, []byte("<KeyCount>")) {
		if i := bytes.LastIndex(b, []byte("</ListBucketResult>")); i >= 0 {
			b = append(b[:i:i], append([]byte("<KeyCount>0</KeyCount>"), b[i:]...)...)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.ResponseWriter.WriteHeader(w.status)
	w.ResponseWriter.Write(b)
}

// virtualHostBases are the endpoint names under which "<bucket>.<base>" addresses a bucket, as SDKs
// build virtual-host-style URLs: localhost (bucket.localhost:4566), LocalStack's and AWS's names.
var virtualHostBases = []string{"localhost", "localstack.cloud", "amazonaws.com"}

// virtualHost rewrites a virtual-host-style request (Host: <bucket>.localhost:4566, path /<key>) to the
// path style gofakes3 routes (/<bucket>/<key>). A host that is an IP address, a single name, or not
// under a known base is path style. The local bucket's own name is recognised under any base.
func (s *Server) virtualHost(r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if net.ParseIP(host) != nil || !strings.Contains(host, ".") {
		return
	}
	bucket := ""
	if name := s.bucket.Name(); strings.HasPrefix(host, name+".") {
		bucket = name
	} else {
		first, rest, _ := strings.Cut(host, ".")
		for _, base := range virtualHostBases {
			if rest == base || strings.HasSuffix(rest, "."+base) {
				bucket = first
				break
			}
		}
		if strings.HasPrefix(rest, "s3.") || strings.HasPrefix(rest, "s3-") {
			bucket = first
		}
		if bucket == "s3" || strings.HasPrefix(bucket, "s3-") || bucket == "localhost" {
			bucket = "" // s3.amazonaws.com, s3.localhost.localstack.cloud: the endpoint itself
		}
	}
	if bucket == "" {
		return
	}
	r.URL.Path = "/" + bucket + r.URL.Path
	if r.URL.RawPath != "" {
		r.URL.RawPath = "/" + bucket + r.URL.RawPath
	}
}

// objectPath splits a path-style URL into bucket and key.
func objectPath(r *http.Request) (bucket, key string, ok bool) {
	bucket, key, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	return bucket, key, bucket != "" && key != ""
}

// subresource reports whether the query names a sub-resource (uploads, tagging, acl, versions ...)
// rather than the object itself.
func subresource(r *http.Request) bool {
	for k := range r.URL.Query() {
		switch {
		case k == "partNumber", strings.HasPrefix(k, "response-"), strings.HasPrefix(k, "X-Amz-"), strings.HasPrefix(k, "x-id"):
		default:
			return true
		}
	}
	return false
}

// s3Subresources are the sub-resources of S3's API that the local bucket does not implement (those it
// does — uploads, uploadId, delete, location, versioning, versions, versionId — gofakes3 routes).
var s3Subresources = []string{
	"accelerate", "acl", "analytics", "attributes", "cors", "encryption", "intelligent-tiering", "inventory",
	"legal-hold", "lifecycle", "logging", "metadataTable", "metrics", "notification", "object-lock",
	"ownershipControls", "policy", "policyStatus", "publicAccessBlock", "renameObject", "replication",
	"requestPayment", "restore", "retention", "select", "session", "tagging", "torrent", "website",
}

func unsupportedSubresource(r *http.Request) string {
	q := r.URL.Query()
	for _, sub := range s3Subresources {
		if q.Has(sub) {
			return sub
		}
	}
	return ""
}

var rangeSpec = regexp.MustCompile(`^bytes=(\d*)-(\d*)$`)

// normaliseRange drops a Range header S3 would ignore (malformed, several ranges, start after end), so
// the whole object is returned as S3 does; gofakes3 would answer 416 or 501 instead.
func normaliseRange(r *http.Request) {
	h := r.Header.Get("Range")
	if h == "" {
		return
	}
	m := rangeSpec.FindStringSubmatch(strings.TrimSpace(h))
	ok := m != nil && (m[1] != "" || m[2] != "")
	if ok && m[1] != "" && m[2] != "" {
		a, err1 := strconv.ParseInt(m[1], 10, 64)
		b, err2 := strconv.ParseInt(m[2], 10, 64)
		ok = err1 == nil && err2 == nil && a <= b
	}
	if !ok {
		r.Header.Del("Range")
	}
}

// preconditions evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since of a GET or
// HEAD as S3 does (If-Match that holds overrides If-Unmodified-Since; If-None-Match that fails overrides
// If-Modified-Since), writes the 412 or 304 and reports true when the request is answered. The headers
// are then removed, so gofakes3's partial handling of them does not apply twice.
func (s *Server) preconditions(w http.ResponseWriter, r *http.Request, bucket, key string) bool {
	ifMatch, ifNoneMatch := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
	ifUnmod, ifMod := r.Header.Get("If-Unmodified-Since"), r.Header.Get("If-Modified-Since")
	if ifMatch == "" && ifNoneMatch == "" && ifUnmod == "" && ifMod == "" {
		return false
	}
	for _, h := range []string{"If-Match", "If-None-Match", "If-Unmodified-Since", "If-Modified-Since"} {
		r.Header.Del(h)
	}
	obj, err := headObject(r.Context(), s.bucket, bucket, key)
	if err != nil {
		return false // gofakes3 answers NoSuchKey / NoSuchBucket
	}
	etag, lastModified := obj.etag, obj.lastModified
	failed := false
	if ifMatch != "" {
		failed = !etagListMatches(ifMatch, etag)
	} else if t, err := http.ParseTime(ifUnmod); ifUnmod != "" && err == nil {
		failed = lastModified.After(t)
	}
	if failed {
		writeS3Error(w, r, http.StatusPreconditionFailed, string(gofakes3.ErrPreconditionFailed), gofakes3.ErrPreconditionFailed.Message())
		return true
	}
	notModified := false
	if ifNoneMatch != "" {
		notModified = etagListMatches(ifNoneMatch, etag)
	} else if t, err := http.ParseTime(ifMod); ifMod != "" && err == nil {
		notModified = !lastModified.After(t)
	}
	if notModified {
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", lastModified.UTC().Format(http.TimeFormat))
		w.Header().Set("x-amz-request-id", requestID())
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	return false
}

// fullObjectChecksum answers a whole-object GET that asks for checksums (x-amz-checksum-mode: ENABLED,
// which the SDKs send by default) with the object's CRC32, so the client verifies what it reads, as S3
// lets it with the checksum it stores for every object. The bucket keeps no checksums: the object is
// read once more to compute it. (An object replaced between this read and the GET fails the client's
// check, which then retries.)
func (s *Server) fullObjectChecksum(w http.ResponseWriter, r *http.Request, bucketName, key string) {
	if r.Method != http.MethodGet || r.Header.Get("Range") != "" || !strings.EqualFold(r.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") {
		return
	}
	out, err := s.bucket.GetObject(r.Context(), &s3.GetObjectInput{Bucket: aws.String(bucketName), Key: aws.String(key)})
	if err != nil {
		return // gofakes3 answers the error
	}
	defer out.Body.Close()
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, out.Body); err != nil {
		return
	}
	w.Header().Set("x-amz-checksum-crc32", base64.StdEncoding.EncodeToString(h.Sum(nil)))
	w.Header().Set("x-amz-checksum-type", "FULL_OBJECT")
}

// etagListMatches reports whether an If-Match / If-None-Match value ("*", or a comma-separated list of
// quoted or bare ETags, possibly weak W/"...") names etag.
func etagListMatches(list, etag string) bool {
	want := strings.Trim(etag, `"`)
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		if e == "*" {
			return true
		}
		e = strings.TrimPrefix(e, "W/")
		if strings.Trim(e, `"`) == want {
			return true
		}
	}
	return false
}

// writeS3Error writes an S3 error document (gofakes3's ErrorResponse type, S3's XML shape). HEAD
// responses have no body, as on S3.
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	id := requestID()
	w.Header().Set("x-amz-request-id", id)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	body, err := xml.Marshal(&gofakes3.ErrorResponse{Code: gofakes3.ErrorCode(code), Message: msg, RequestID: id})
	if err != nil {
		return
	}
	w.Write([]byte(xml.Header))
	w.Write(body)
}

// httpTime formats t as an HTTP date (Last-Modified).
func httpTime(t time.Time) string { return t.UTC().Format(http.TimeFormat) }
