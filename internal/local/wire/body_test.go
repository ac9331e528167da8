package wire

import (
	"bytes"
	"io"
	"net/http/httptest"
	"testing"
	"testing/iotest"
	"time"
)

func TestChunkedReaderRoundTrip(t *testing.T) {
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, n := range []int{1, 7, 8192, 65536, 200_000} {
		for _, signed := range []bool{false, true} {
			body := chunked(data, n, signed, "x-amz-checksum-crc32:abc=")
			for name, r := range map[string]io.Reader{
				"whole":    bytes.NewReader(body),
				"one byte": iotest.OneByteReader(bytes.NewReader(body)),
				"half":     iotest.HalfReader(bytes.NewReader(body)),
			} {
				cr := newChunkedReader(r, int64(len(data)))
				got, err := io.ReadAll(cr)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("chunks of %d, signed %v, %s reads: %d bytes, %v", n, signed, name, len(got), err)
				}
				if v, ok := cr.trailer("X-Amz-Checksum-CRC32"); !ok || v != "abc=" {
					t.Errorf("trailer %q %v", v, ok)
				}
			}
		}
	}
	// An empty body: only the final chunk.
	got, err := io.ReadAll(newChunkedReader(bytes.NewReader(chunked(nil, 10, true)), 0))
	if err != nil || len(got) != 0 {
		t.Errorf("empty body: %q, %v", got, err)
	}
}

// FuzzChunkedReader: whatever the body, the reader neither panics nor returns more than the declared
// length, and it reports the end only after exactly the declared length.
func FuzzChunkedReader(f *testing.F) {
	f.Add(chunked([]byte("hello world"), 4, true), int64(11))
	f.Add(chunked([]byte("hello world"), 4, false, "x-amz-checksum-crc32:AAAAAA=="), int64(11))
	f.Add([]byte("5\r\nabc"), int64(5))
	f.Add([]byte("ffffffffffffffff\r\n"), int64(1))
	f.Fuzz(func(t *testing.T, body []byte, declared int64) {
		if declared < 0 {
			declared = -declared
		}
		cr := newChunkedReader(bytes.NewReader(body), declared)
		got, err := io.ReadAll(io.LimitReader(cr, declared+1))
		if int64(len(got)) > declared {
			t.Fatalf("read %d bytes of a body declared %d", len(got), declared)
		}
		if err == nil && int64(len(got)) != declared {
			t.Fatalf("clean end after %d bytes of a body declared %d", len(got), declared)
		}
	})
}

func TestParseAuth(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	v4 := "AWS4-HMAC-SHA256 Credential=AKID/20250601/eu-west-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + fakeSignature
	for _, tc := range []struct {
		name    string
		header  map[string]string
		query   string
		kind    authKind
		service string
	}{
		{"sigv4", map[string]string{"Authorization": v4, "X-Amz-Date": "20250601T115500Z"}, "", 0, "kinesis"},
		{"sigv4 with Date", map[string]string{"Authorization": v4, "Date": "Sun, 01 Jun 2025 12:10:00 GMT"}, "", 0, "kinesis"},
		{"sigv4a", map[string]string{"Authorization": "AWS4-ECDSA-P256-SHA256 Credential=AKID/20250601/s3/aws4_request, SignedHeaders=host, Signature=3045022100ab", "X-Amz-Date": "20250601T120000Z"}, "", 0, "s3"},
		{"no date", map[string]string{"Authorization": v4}, "", authNoDate, "kinesis"},
		{"skewed", map[string]string{"Authorization": v4, "X-Amz-Date": "20250601T113000Z"}, "", authSkewed, "kinesis"},
		{"bad scope", map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/2025/us-east-1/s3, SignedHeaders=host, Signature=" + fakeSignature, "X-Amz-Date": "20250601T120000Z"}, "", authMalformed, ""},
		{"short signature", map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20250601/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc", "X-Amz-Date": "20250601T120000Z"}, "", authMalformed, "s3"},
		{"bearer", map[string]string{"Authorization": "Bearer xyz"}, "", authUnsupported, ""},
		{"none", nil, "", authMissing, ""},
		{"presigned", nil, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20250601%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250601T115000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=" + fakeSignature, 0, "s3"},
		{"presigned, expired", nil, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20250601%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250601T110000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=" + fakeSignature, authExpired, "s3"},
		{"presigned, no expiry", nil, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20250601%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250601T110000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=" + fakeSignature, authMalformed, "s3"},
		{"presigned v2", nil, "AWSAccessKeyId=AKID&Signature=abc%3D&Expires=1748780000", 0, "s3"},
		{"presigned v2, expired", nil, "AWSAccessKeyId=AKID&Signature=abc%3D&Expires=1748770000", authExpired, "s3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://127.0.0.1/b/k?"+tc.query, nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			cred, err := parseAuth(r, now)
			var kind authKind
			if err != nil {
				kind = err.kind
				if err.msg == "" {
					t.Error("an error without a message")
				}
			}
			if kind != tc.kind || cred.service != tc.service {
				t.Errorf("kind %d service %q (%v), want kind %d service %q", kind, cred.service, err, tc.kind, tc.service)
			}
		})
	}
}

func TestEtagListMatches(t *testing.T) {
	etag := `"9e107d9d372bb6826bd81d3542a419d6"`
	for list, want := range map[string]bool{
		`*`:                                    true,
		etag:                                   true,
		`9e107d9d372bb6826bd81d3542a419d6`:     true,
		`W/"9e107d9d372bb6826bd81d3542a419d6"`: true,
		`"aaa", ` + etag:                       true,
		`"aaa", "bbb"`:                         false,
		``:                                     false,
	} {
		if got := etagListMatches(list, etag); got != want {
			t.Errorf("etagListMatches(%q) = %v, want %v", list, got, want)
		}
	}
}

func TestIsRollup(t *testing.T) {
	for _, tc := range []struct {
		marker, prefix, delim string
		want                  bool
	}{
		{"raw/2024/", "raw/", "/", true},
		{"raw/2024/x.csv", "raw/", "/", false},
		{"raw/2024/01/", "raw/", "/", false},
		{"raw/", "", "/", true},
		{"other/a/", "raw/", "/", false},
		{"a--", "", "--", true},
	} {
		if got := isRollup(tc.marker, tc.prefix, tc.delim); got != tc.want {
			t.Errorf("isRollup(%q, %q, %q) = %v, want %v", tc.marker, tc.prefix, tc.delim, got, tc.want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:4566": true, "[::1]:4566": true, "localhost:4566": true,
		"0.0.0.0:4566": false, ":4566": false, "192.168.1.10:4566": false, "nonsense": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
