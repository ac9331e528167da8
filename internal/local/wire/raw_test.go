package wire

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/local/stream"
)

// Requests built by hand, for what the clients at hand do not send over plain HTTP (aws-chunked bodies)
// and for the error shapes of malformed requests.

const fakeSignature = "0000000000000000000000000000000000000000000000000000000000000000"

// sign gives a request the shape of a SigV4 signature for service, dated now.
func sign(r *http.Request, service string) {
	now := time.Now().UTC()
	r.Header.Set("X-Amz-Date", now.Format(amzDateFormat))
	r.Header.Set("Authorization", fmt.Sprintf("AWS4-HMAC-SHA256 Credential=test/%s/us-east-1/%s/aws4_request, SignedHeaders=host;x-amz-date, Signature=%s",
		now.Format("20060102"), service, fakeSignature))
}

type rawResponse struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, r *http.Request) rawResponse {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{resp.StatusCode, resp.Header, string(b)}
}

// chunked frames data as aws-chunked with chunks of size n, signed (chunk-signature) or not, followed by
// the trailers given ("name:value").
func chunked(data []byte, n int, signed bool, trailers ...string) []byte {
	var b bytes.Buffer
	ext := func() string {
		if signed {
			return ";chunk-signature=" + fakeSignature
		}
		return ""
	}
	for len(data) > 0 {
		c := data[:min(n, len(data))]
		data = data[len(c):]
		fmt.Fprintf(&b, "%x%s\r\n", len(c), ext())
		b.Write(c)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "0%s\r\n", ext())
	for _, t := range trailers {
		b.WriteString(t + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func checksumOf(h interface {
	io.Writer
	Sum([]byte) []byte
}, data []byte) string {
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestAWSChunkedBodies(t *testing.T) {
	s := serve(t, stream.Config{})
	data := bytes.Repeat([]byte("a"), 66560) // the SigV4 streaming example of the S3 documentation
	data[100] = 'b'
	crc := checksumOf(crc32.NewIEEE(), data)
	crcC := checksumOf(crc32.New(crc32.MakeTable(crc32.Castagnoli)), data)
	for _, tc := range []struct {
		name     string
		body     []byte
		decoded  int
		sha      string
		trailer  string
		status   int
		code     string
		stored   bool
		encoding string
	}{
		{name: "signed", body: chunked(data, 65536, true), decoded: len(data), sha: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", status: 200, stored: true},
		{name: "unsigned with a CRC32 trailer", body: chunked(data, 8192, false, "x-amz-checksum-crc32:"+crc), decoded: len(data),
			sha: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer: "x-amz-checksum-crc32", status: 200, stored: true},
		{name: "signed with a CRC32C trailer", body: chunked(data, 8192, true, "x-amz-checksum-crc32c:"+crcC, "x-amz-trailer-signature:"+fakeSignature), decoded: len(data),
			sha: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", trailer: "x-amz-checksum-crc32c", status: 200, stored: true, encoding: "aws-chunked,gzip"},
		{name: "a wrong CRC32 trailer", body: chunked(data, 8192, false, "x-amz-checksum-crc32:AAAAAA=="), decoded: len(data),
			sha: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer: "x-amz-checksum-crc32", status: 400, code: "BadDigest"},
		{name: "a trailer announced but missing", body: chunked(data, 8192, false), decoded: len(data),
			sha: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer: "x-amz-checksum-crc32", status: 400, code: "InvalidArgument"},
		{name: "cut inside a chunk", body: chunked(data, 65536, true)[:30000], decoded: len(data), sha: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", status: 400, code: "IncompleteBody"},
		{name: "decoded length differs", body: chunked(data, 65536, true), decoded: len(data) + 1, sha: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", status: 400, code: "IncompleteBody"},
		{name: "size not hexadecimal", body: []byte("zz\r\nabc\r\n0\r\n\r\n"), decoded: 3, sha: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", status: 400, code: "IncompleteBody"},
		{name: "no CRLF after a chunk", body: []byte("3\r\nabcX\r\n0\r\n\r\n"), decoded: 3, sha: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", status: 400, code: "IncompleteBody"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "chunked/" + strings.ReplaceAll(tc.name, " ", "-")
			r, _ := http.NewRequest(http.MethodPut, s.url+"/"+testBucket+"/"+key, bytes.NewReader(tc.body))
			sign(r, "s3")
			r.Header.Set("X-Amz-Content-Sha256", tc.sha)
			enc := tc.encoding
			if enc == "" {
				enc = "aws-chunked"
			}
			r.Header.Set("Content-Encoding", enc)
			r.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(tc.decoded))
			if tc.trailer != "" {
				r.Header.Set("X-Amz-Trailer", tc.trailer)
			}
			resp := do(t, r)
			if resp.status != tc.status || (tc.code != "" && !strings.Contains(resp.body, "<Code>"+tc.code+"</Code>")) {
				t.Fatalf("status %d, body %s; want %d %s", resp.status, resp.body, tc.status, tc.code)
			}
			out, err := s.bucket.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
			if !tc.stored {
				if err == nil {
					out.Body.Close()
					t.Fatal("a body that failed was stored")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if !bytes.Equal(got, data) {
				t.Errorf("stored %d bytes, want the %d decoded", len(got), len(data))
			}
			if ce := aws.ToString(out.ContentType); ce == "" {
				t.Error("no content type")
			}
		})
	}
}

func TestChecksumHeaders(t *testing.T) {
	s := serve(t, stream.Config{})
	data := []byte("123456789")
	sha := sha256.Sum256(data)
	for _, tc := range []struct {
		header, value string
		status        int
	}{
		{"x-amz-checksum-crc32", checksumOf(crc32.NewIEEE(), data), 200},
		{"x-amz-checksum-crc32c", checksumOf(crc32.New(crc32.MakeTable(crc32.Castagnoli)), data), 200},
		// CRC-64/NVME check value of "123456789": 0xae8b14860a799888.
		{"x-amz-checksum-crc64nvme", base64.StdEncoding.EncodeToString([]byte{0xae, 0x8b, 0x14, 0x86, 0x0a, 0x79, 0x98, 0x88}), 200},
		{"x-amz-checksum-crc64nvme", checksumOf(crc64.New(crc64.MakeTable(crc64.ISO)), data), 400},
		{"x-amz-checksum-sha256", base64.StdEncoding.EncodeToString(sha[:]), 200},
		{"x-amz-checksum-sha1", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", 400},
		{"x-amz-content-sha256", hex.EncodeToString(sha[:]), 200},
		{"x-amz-content-sha256", strings.Repeat("0", 64), 400},
		{"content-md5", "not base64!", 400},
	} {
		t.Run(tc.header+" "+tc.value, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPut, s.url+"/"+testBucket+"/sums/x", bytes.NewReader(data))
			sign(r, "s3")
			r.Header.Set(tc.header, tc.value)
			resp := do(t, r)
			if resp.status != tc.status {
				t.Errorf("status %d, want %d: %s", resp.status, tc.status, resp.body)
			}
		})
	}
}

func TestMalformedRequests(t *testing.T) {
	s := serve(t, stream.Config{})
	kinesisReq := func(target, body string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, s.url+"/", strings.NewReader(body))
		r.Header.Set("Content-Type", jsonContentType)
		r.Header.Set("X-Amz-Target", target)
		sign(r, "kinesis")
		return r
	}
	s3Get := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, s.url+"/"+testBucket+"/x", nil)
		return r
	}
	past := time.Now().Add(-time.Hour).UTC()
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"S3 unsigned", s3Get, 403, "AccessDenied"},
		{"S3 basic auth", func() *http.Request { r := s3Get(); r.SetBasicAuth("u", "p"); return r }, 400, "InvalidRequest"},
		{"S3 SigV4 without signature", func() *http.Request {
			r := s3Get()
			r.Header.Set("X-Amz-Date", time.Now().UTC().Format(amzDateFormat))
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/s3/aws4_request, SignedHeaders=host")
			return r
		}, 400, "AuthorizationHeaderMalformed"},
		{"S3 an hour old", func() *http.Request {
			r := s3Get()
			sign(r, "s3")
			r.Header.Set("X-Amz-Date", past.Format(amzDateFormat))
			return r
		}, 403, "RequestTimeTooSkewed"},
		{"S3 expired presigned URL", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, s.url+"/"+testBucket+"/x?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F"+past.Format("20060102")+"%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date="+past.Format(amzDateFormat)+"&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature="+fakeSignature, nil)
			return r
		}, 403, "AccessDenied"},
		{"S3 SigV2 signed, missing key", func() *http.Request {
			r := s3Get()
			r.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
			r.Header.Set("Authorization", "AWS test:c2lnbmF0dXJl")
			return r
		}, 404, "NoSuchKey"},
		{"Kinesis unsigned", func() *http.Request {
			r := kinesisReq("Kinesis_20131202.ListShards", "{}")
			r.Header.Del("Authorization")
			return r
		}, 400, "MissingAuthenticationTokenException"},
		{"Kinesis SigV2", func() *http.Request {
			r := kinesisReq("Kinesis_20131202.ListShards", "{}")
			r.Header.Set("Authorization", "AWS test:c2ln")
			return r
		}, 400, "IncompleteSignatureException"},
		{"Kinesis unknown operation", func() *http.Request { return kinesisReq("Kinesis_20131202.CreateStream", `{"StreamName":"x"}`) }, 400, "UnknownOperationException"},
		{"Kinesis another service's target", func() *http.Request { return kinesisReq("Firehose_20150804.PutRecord", `{}`) }, 400, "UnknownOperationException"},
		{"Kinesis not JSON", func() *http.Request { return kinesisReq("Kinesis_20131202.ListShards", `{"StreamName":`) }, 400, "SerializationException"},
		{"Kinesis wrong type", func() *http.Request { return kinesisReq("Kinesis_20131202.ListShards", `{"MaxResults":"x"}`) }, 400, "SerializationException"},
		{"Kinesis blob not base64", func() *http.Request {
			return kinesisReq("Kinesis_20131202.PutRecord", `{"StreamName":"taxistream-stream","PartitionKey":"k","Data":"!!"}`)
		}, 400, "SerializationException"},
		{"Kinesis missing member", func() *http.Request {
			return kinesisReq("Kinesis_20131202.GetShardIterator", `{"StreamName":"taxistream-stream","ShardIteratorType":"LATEST"}`)
		}, 400, "ValidationException"},
		{"Kinesis bad timestamp", func() *http.Request {
			return kinesisReq("Kinesis_20131202.GetShardIterator", `{"StreamName":"taxistream-stream","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":"yesterday"}`)
		}, 400, "SerializationException"},
		{"Kinesis CBOR", func() *http.Request {
			r := kinesisReq("Kinesis_20131202.ListShards", "\xa0")
			r.Header.Set("Content-Type", "application/x-amz-cbor-1.1")
			return r
		}, 400, "SerializationException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, tc.req())
			if resp.status != tc.status {
				t.Errorf("status %d, want %d: %s", resp.status, tc.status, resp.body)
			}
			if strings.HasPrefix(tc.name, "Kinesis") {
				var e struct {
					Type    string `json:"__type"`
					Message string `json:"message"`
				}
				if err := json.Unmarshal([]byte(resp.body), &e); err != nil || e.Type != tc.code || e.Message == "" {
					t.Errorf("body %s, want __type %s with a message", resp.body, tc.code)
				}
				return
			}
			if !strings.Contains(resp.body, "<Code>"+tc.code+"</Code>") {
				t.Errorf("body %s, want code %s", resp.body, tc.code)
			}
		})
	}
	t.Run("S3 sub-resource not implemented", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodGet, s.url+"/"+testBucket+"/x?tagging", nil)
		sign(r, "s3")
		if resp := do(t, r); resp.status != http.StatusNotImplemented || !strings.Contains(resp.body, "<Code>NotImplemented</Code>") {
			t.Errorf("GET ?tagging: %d %s", resp.status, resp.body)
		}
	})
	t.Run("S3 key and prefix of another key", func(t *testing.T) {
		for i, key := range []string{"state/a", "state/a/b"} {
			r, _ := http.NewRequest(http.MethodPut, s.url+"/"+testBucket+"/"+key, strings.NewReader("x"))
			sign(r, "s3")
			resp := do(t, r)
			if want := []int{200, 400}[i]; resp.status != want {
				t.Errorf("PUT %s: %d %s, want %d", key, resp.status, resp.body, want)
			}
			if i == 1 && !strings.Contains(resp.body, "<Code>InvalidArgument</Code>") {
				t.Errorf("PUT under an object: %s, want InvalidArgument (a folder on disk cannot hold both)", resp.body)
			}
		}
	})
	t.Run("another service", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodPost, s.url+"/2015-03-31/functions/f/invocations", strings.NewReader("{}"))
		sign(r, "lambda")
		if resp := do(t, r); resp.status != http.StatusNotImplemented || !strings.Contains(resp.body, "S3 and Kinesis") {
			t.Errorf("lambda request: %d %s", resp.status, resp.body)
		}
	})
}

// TestAWSTimestamps: the JSON protocol's timestamps are epoch seconds, in and out.
func TestAWSTimestamps(t *testing.T) {
	var in struct {
		Timestamp *time.Time
		Nested    struct{ StreamCreationTimestamp *time.Time }
	}
	if err := decodeJSON([]byte(`{"Timestamp": 1700000000.5, "Nested": {"StreamCreationTimestamp": 1700000000}}`), &in); err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1700000000, 500e6).UTC(); !in.Timestamp.Equal(want) || !in.Nested.StreamCreationTimestamp.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("decoded %v, %v", in.Timestamp, in.Nested.StreamCreationTimestamp)
	}
	type rec struct {
		When     *time.Time
		Data     []byte
		Absent   *string
		Enum     ktypeString
		Count    *int64
		Nil      []string
		Empty    []string
		internal int
	}
	when := time.Unix(1700000000, 123e6)
	b, err := marshalAWSJSON(&rec{When: &when, Data: []byte{0, 255}, Count: aws.Int64(0), Empty: []string{}, internal: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"When":1700000000.123,"Data":"AP8=","Count":0,"Empty":[]}`; got != want {
		t.Errorf("encoded %s, want %s", got, want)
	}
}

type ktypeString string
