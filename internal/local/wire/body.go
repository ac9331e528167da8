package wire

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

// Request bodies of S3 writes. Clients may send them aws-chunked (SigV4 streaming: "STREAMING-AWS4-
// HMAC-SHA256-PAYLOAD", "...-TRAILER", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), and may send integrity
// checks: Content-MD5, x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256} as a header or as a trailer
// of the chunked body, and the hex SHA-256 of the payload in x-amz-content-sha256. prepareBody decodes
// the body and verifies every check at its end: a mismatch fails the read, so the object or part is not
// stored (the bucket and the multipart backend discard a write whose body fails) and the client gets
// BadDigest.

// maxChunkLine bounds the length of one chunk header or trailer line.
const maxChunkLine = 4096

// prepareBody replaces r.Body with the decoded, verified payload. It reports the S3 error for a request
// whose framing is wrong before any byte is read.
func prepareBody(r *http.Request) (status int, code, msg string, ok bool) {
	sha := r.Header.Get("X-Amz-Content-Sha256")
	chunked := strings.HasPrefix(sha, "STREAMING-") || hasToken(r.Header.Get("Content-Encoding"), "aws-chunked")
	var cr *chunkedReader
	if chunked {
		n, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
		if err != nil || n < 0 {
			return http.StatusLengthRequired, string(gofakes3.ErrMissingContentLength), "an aws-chunked body needs x-amz-decoded-content-length", false
		}
		cr = newChunkedReader(r.Body, n)
		r.Body = readCloser{cr, r.Body}
		r.ContentLength = n
		r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
		r.Header.Del("X-Amz-Decoded-Content-Length")
		if enc := dropToken(r.Header.Get("Content-Encoding"), "aws-chunked"); enc != "" {
			r.Header.Set("Content-Encoding", enc)
		} else {
			r.Header.Del("Content-Encoding")
		}
		// gofakes3 would decode a signed streaming body once more.
		r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	}

	var checks []check
	if v, present := r.Header["Content-Md5"]; present {
		want, err := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.Join(v, "")))
		if err != nil || len(want) != md5.Size {
			return http.StatusBadRequest, string(gofakes3.ErrInvalidDigest), "The Content-MD5 you specified is not valid.", false
		}
		checks = append(checks, check{name: "Content-MD5", h: md5.New(), want: func() (string, bool) { return string(want), true },
			encode: func(b []byte) string { return string(b) },
			fail:   gofakes3.ErrorMessage(gofakes3.ErrBadDigest, "The Content-MD5 you specified did not match what we received.")})
		r.Header.Del("Content-Md5") // verified here; gofakes3 would verify it again
	}
	if !chunked && hex64.MatchString(sha) {
		want := sha
		checks = append(checks, check{name: "x-amz-content-sha256", h: sha256.New(), want: func() (string, bool) { return want, true },
			encode: hex.EncodeToString,
			fail: gofakes3.ErrorMessage(gofakes3.ErrBadDigest,
				"XAmzContentSHA256Mismatch: The provided 'x-amz-content-sha256' header does not match what was computed.")})
	}
	trailers := map[string]bool{}
	for _, t := range strings.Split(r.Header.Get("X-Amz-Trailer"), ",") {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			trailers[t] = true
		}
	}
	if len(trailers) > 0 && cr == nil {
		return http.StatusBadRequest, string(gofakes3.ErrInvalidArgument), "x-amz-trailer needs an aws-chunked body", false
	}
	for _, alg := range checksumAlgorithms {
		header := "x-amz-checksum-" + alg.name
		if v := r.Header.Get(header); v != "" {
			checks = append(checks, alg.check(header, func() (string, bool) { return v, true }))
		} else if trailers[header] {
			checks = append(checks, alg.check(header, func() (string, bool) { return cr.trailer(header) }))
		}
	}
	if len(checks) > 0 {
		r.Body = readCloser{&verifyingReader{r: r.Body, checks: checks}, r.Body}
	}
	return 0, "", "", true
}

type readCloser struct {
	io.Reader
	io.Closer
}

func hasToken(list, token string) bool {
	for _, t := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

func dropToken(list, token string) string {
	var keep []string
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t != "" && !strings.EqualFold(t, token) {
			keep = append(keep, t)
		}
	}
	return strings.Join(keep, ",")
}

// checksumAlgorithm is one of S3's additional checksums: the value is the base64 of the big-endian
// digest.
type checksumAlgorithm struct {
	name, upper string
	new         func() hash.Hash
}

// crc64NVME is the CRC-64/NVME table (reflected polynomial 0x9a6c9329ac4bc9b5, S3's CRC64NVME).
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

var checksumAlgorithms = []checksumAlgorithm{
	{"crc32", "CRC32", func() hash.Hash { return crc32.NewIEEE() }},
	{"crc32c", "CRC32C", func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }},
	{"crc64nvme", "CRC64NVME", func() hash.Hash { return crc64.New(crc64NVME) }},
	{"sha1", "SHA1", sha1.New},
	{"sha256", "SHA256", sha256.New},
}

func (a checksumAlgorithm) check(header string, want func() (string, bool)) check {
	return check{name: header, h: a.new(), want: want, encode: base64.StdEncoding.EncodeToString,
		fail: gofakes3.ErrorMessage(gofakes3.ErrBadDigest, fmt.Sprintf("The %s you specified did not match the calculated checksum.", a.upper))}
}

// check is one integrity check of a body.
type check struct {
	name   string
	h      hash.Hash
	want   func() (string, bool) // the expected value, known at the end of the body at the latest
	encode func([]byte) string
	fail   error
}

// verifyingReader hashes what it reads and, at the end, compares every check: the end of the body is
// reported only when all of them hold.
type verifyingReader struct {
	r      io.Reader
	checks []check
	err    error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	for _, c := range v.checks {
		c.h.Write(p[:n])
	}
	if err == io.EOF {
		for _, c := range v.checks {
			want, ok := c.want()
			if !ok {
				v.err = gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "MalformedTrailerError: the body has no "+c.name+" trailer though x-amz-trailer names it")
				return n, v.err
			}
			if c.encode(c.h.Sum(nil)) != strings.TrimSpace(want) {
				v.err = c.fail
				return n, v.err
			}
		}
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

// chunkedReader decodes an aws-chunked body:
//
//	<hex size>[;chunk-signature=<sig>]\r\n<size bytes>\r\n ... 0[;chunk-signature=<sig>]\r\n
//	[<trailer name>:<value>\r\n ...]\r\n
//
// Chunk and trailer signatures are not verified (any credentials are accepted). A body that ends early,
// is framed wrongly, or whose length differs from x-amz-decoded-content-length fails with IncompleteBody.
type chunkedReader struct {
	br       *bufio.Reader
	decoded  int64 // x-amz-decoded-content-length
	read     int64
	remain   int64 // bytes left in the current chunk
	started  bool  // a chunk was read: a CRLF precedes the next header
	done     bool
	err      error
	trailers map[string]string
}

func newChunkedReader(r io.Reader, decodedLength int64) *chunkedReader {
	return &chunkedReader{br: bufio.NewReaderSize(r, 64<<10), decoded: decodedLength}
}

func (c *chunkedReader) fail(format string, args ...any) error {
	c.err = gofakes3.ErrorMessage(gofakes3.ErrIncompleteBody, "malformed aws-chunked body: "+fmt.Sprintf(format, args...))
	return c.err
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.remain == 0 {
		if c.done {
			return 0, io.EOF
		}
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.br.Read(p)
	c.remain -= int64(n)
	c.read += int64(n)
	if err == io.EOF {
		return n, c.fail("the body ends inside a chunk")
	}
	if err != nil {
		c.err = err
	}
	return n, err
}

// next reads the next chunk header, or the final chunk and the trailers.
func (c *chunkedReader) next() error {
	if c.started {
		var crlf [2]byte
		if _, err := io.ReadFull(c.br, crlf[:]); err != nil || crlf != [2]byte{'\r', '\n'} {
			return c.fail("a chunk is not followed by CRLF")
		}
	}
	c.started = true
	line, err := c.line()
	if errors.Is(err, io.EOF) {
		return c.fail("the body ends before its final chunk")
	}
	if err != nil {
		return err
	}
	sizeText, _, _ := strings.Cut(line, ";")
	size, perr := strconv.ParseInt(strings.TrimSpace(sizeText), 16, 64)
	if perr != nil || size < 0 {
		return c.fail("chunk size %q is not hexadecimal", sizeText)
	}
	if size > c.decoded-c.read {
		return c.fail("the chunks hold more than x-amz-decoded-content-length (%d) bytes", c.decoded)
	}
	if size > 0 {
		c.remain = size
		return nil
	}
	// The final chunk: trailers until an empty line (or the end of the body).
	for {
		line, err := c.line()
		if errors.Is(err, io.EOF) || (err == nil && line == "") {
			break
		}
		if err != nil {
			return err
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return c.fail("trailer %q has no colon", line)
		}
		if c.trailers == nil {
			c.trailers = map[string]string{}
		}
		c.trailers[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if c.read != c.decoded {
		return c.fail("%d bytes decoded, x-amz-decoded-content-length says %d", c.read, c.decoded)
	}
	c.done = true
	return nil
}

// line reads one CRLF-terminated line; io.EOF only at the very end of the body.
func (c *chunkedReader) line() (string, error) {
	var b bytes.Buffer
	for {
		frag, err := c.br.ReadSlice('\n')
		b.Write(frag)
		if b.Len() > maxChunkLine {
			return "", c.fail("a chunk header or trailer line is longer than %d bytes", maxChunkLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && b.Len() == 0 {
			return "", io.EOF
		}
		if err != nil {
			return "", c.fail("the body ends inside a chunk header")
		}
		s := b.String()
		if !strings.HasSuffix(s, "\r\n") {
			return "", c.fail("a chunk header or trailer line does not end with CRLF")
		}
		return strings.TrimSuffix(s, "\r\n"), nil
	}
}

// trailer returns a trailer's value once the body has been read to its end.
func (c *chunkedReader) trailer(name string) (string, bool) {
	v, ok := c.trailers[strings.ToLower(name)]
	return v, ok
}
