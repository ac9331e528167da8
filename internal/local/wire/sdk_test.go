package wire

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/taxistream/taxistream/internal/kinesislimit"
	"github.com/taxistream/taxistream/internal/local/bucket"
	"github.com/taxistream/taxistream/internal/local/stream"
)

// sdkConfig is an aws.Config for the server: static test credentials, no retries (so every error the
// server sends is seen).
func sdkConfig(s *served) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(s.url),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

// ignoreSDK ignores what differs between an output decoded by the SDK and one returned in process.
var ignoreSDK = cmp.Options{
	cmpopts.IgnoreUnexported(
		kinesis.ListShardsOutput{}, kinesis.DescribeStreamOutput{}, kinesis.DescribeStreamSummaryOutput{},
		ktypes.Shard{}, ktypes.HashKeyRange{}, ktypes.SequenceNumberRange{}, ktypes.StreamDescription{},
		ktypes.StreamDescriptionSummary{}, ktypes.StreamModeDetails{}, ktypes.EnhancedMetrics{}, ktypes.Record{},
		kinesis.GetRecordsOutput{}, ktypes.ChildShard{},
	),
	cmpopts.IgnoreFields(kinesis.ListShardsOutput{}, "ResultMetadata"),
	cmpopts.IgnoreFields(kinesis.DescribeStreamOutput{}, "ResultMetadata"),
	cmpopts.IgnoreFields(kinesis.DescribeStreamSummaryOutput{}, "ResultMetadata"),
	cmpopts.IgnoreFields(kinesis.GetRecordsOutput{}, "ResultMetadata", "NextShardIterator"),
	cmpopts.EquateApproxTime(time.Millisecond),
}

// TestKinesisGoSDK: the Go SDK's own deserializers read every member of what the stream answers in
// process, and its error types come back as the stream's.
func TestKinesisGoSDK(t *testing.T) {
	ctx := context.Background()
	s := serve(t, stream.Config{ShardCount: 4, LimitsOff: true})
	kc := kinesis.NewFromConfig(sdkConfig(s))
	name := aws.String(s.stream.Name())

	t.Run("describe and list", func(t *testing.T) {
		for what, pair := range map[string][2]func() (any, error){
			"ListShards": {
				func() (any, error) {
					return kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: name, MaxResults: aws.Int32(3)})
				},
				func() (any, error) {
					return s.stream.ListShards(ctx, &kinesis.ListShardsInput{StreamName: name, MaxResults: aws.Int32(3)})
				},
			},
			"DescribeStream": {
				func() (any, error) { return kc.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: name}) },
				func() (any, error) {
					return s.stream.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: name})
				},
			},
			"DescribeStreamSummary": {
				func() (any, error) {
					return kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String(s.stream.ARN())})
				},
				func() (any, error) {
					return s.stream.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String(s.stream.ARN())})
				},
			},
		} {
			wire, err := pair[0]()
			if err != nil {
				t.Fatalf("%s over the wire: %v", what, err)
			}
			direct, err := pair[1]()
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(direct, wire, ignoreSDK); d != "" {
				t.Errorf("%s (-in process +over the wire):\n%s", what, d)
			}
		}
	})

	t.Run("put and get", func(t *testing.T) {
		var entries []ktypes.PutRecordsRequestEntry
		for i := range 50 {
			entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%d", i)), Data: []byte(fmt.Sprintf("\x00data %d\xff", i))})
		}
		entries[7].ExplicitHashKey = aws.String("0")
		out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: name, Records: entries})
		if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 || len(out.Records) != 50 {
			t.Fatalf("PutRecords: %+v, %v", out, err)
		}
		if got := aws.ToString(out.Records[7].ShardId); got != stream.ShardID(0) {
			t.Errorf("ExplicitHashKey 0 went to %s, want %s", got, stream.ShardID(0))
		}
		one, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("single"), Data: []byte("one")})
		if err != nil {
			t.Fatal(err)
		}
		// Read every shard over the wire and in process: the same records.
		ts := time.Now().Add(-time.Hour)
		for i := range 4 {
			it := func(c interface {
				GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
			}) *string {
				o, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: name, ShardId: aws.String(stream.ShardID(i)),
					ShardIteratorType: ktypes.ShardIteratorTypeAtTimestamp, Timestamp: &ts})
				if err != nil {
					t.Fatal(err)
				}
				return o.ShardIterator
			}
			wire, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it(kc)})
			if err != nil {
				t.Fatal(err)
			}
			direct, err := s.stream.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it(s.stream)})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(direct, wire, ignoreSDK); d != "" {
				t.Errorf("GetRecords of shard %d (-in process +over the wire):\n%s", i, d)
			}
			if len(wire.Records) == 0 {
				t.Errorf("shard %d: no records", i)
			}
		}
		if !strings.HasPrefix(aws.ToString(one.SequenceNumber), "4959") || one.EncryptionType != ktypes.EncryptionTypeNone {
			t.Errorf("PutRecord output %+v", one)
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("nope")})
		var rnf *ktypes.ResourceNotFoundException
		if !errors.As(err, &rnf) {
			t.Errorf("unknown stream: %v, want ResourceNotFoundException", err)
		}
		_, err = kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("garbage")})
		var ia *ktypes.InvalidArgumentException
		if !errors.As(err, &ia) {
			t.Errorf("forged iterator: %v, want InvalidArgumentException", err)
		}
		_, err = kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: name, Records: make([]ktypes.PutRecordsRequestEntry, 501)})
		if err == nil {
			t.Error("501 entries accepted")
		}
	})
}

// TestKinesisWireThrottlesReads: GetRecords over the wire is subject to the shard's read limit of five
// calls a second (the clock stands still, so all calls fall in one second).
func TestKinesisWireThrottlesReads(t *testing.T) {
	ctx := context.Background()
	frozen := time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)
	s := serve(t, stream.Config{Now: func() time.Time { return frozen }})
	kc := kinesis.NewFromConfig(sdkConfig(s))
	it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(s.stream.Name()), ShardId: aws.String(stream.ShardID(0)), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for range kinesislimit.ShardReadCallsPerSecond + 1 {
		_, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		code := "ok"
		var ae smithy.APIError
		if errors.As(err, &ae) {
			code = ae.ErrorCode()
		} else if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, code)
	}
	want := []string{"ok", "ok", "ok", "ok", "ok", "ProvisionedThroughputExceededException"}
	if d := cmp.Diff(want, codes); d != "" {
		t.Errorf("GetRecords outcomes (-want +got):\n%s", d)
	}
	// And PutRecord is throttled with the request's error once the shard has taken 1,000 records.
	entries := make([]ktypes.PutRecordsRequestEntry, 500)
	for i := range entries {
		entries[i] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: []byte("x")}
	}
	for range 2 {
		if out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(s.stream.Name()), Records: entries}); err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("PutRecords under the limit: %v", err)
		}
	}
	_, err = kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(s.stream.Name()), PartitionKey: aws.String("k"), Data: []byte("x")})
	var pte *ktypes.ProvisionedThroughputExceededException
	if !errors.As(err, &pte) {
		t.Errorf("PutRecord over the limit: %v, want ProvisionedThroughputExceededException", err)
	}
}

// virtualHostClient is an S3 client that addresses the bucket virtual-host style
// (http://<bucket>.localhost:<port>/<key>), with every connection dialled to the server; the hosts it
// sends requests to are recorded.
func virtualHostClient(s *served, mu *sync.Mutex, hosts *[]string) *s3.Client {
	_, port, _ := net.SplitHostPort(s.addr)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, s.addr)
	}}
	cfg := sdkConfig(s)
	cfg.BaseEndpoint = aws.String("http://localhost:" + port)
	cfg.HTTPClient = &http.Client{Transport: hostRecorder{tr, mu, hosts}}
	return s3.NewFromConfig(cfg)
}

type hostRecorder struct {
	rt    http.RoundTripper
	mu    *sync.Mutex
	hosts *[]string
}

func (h hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	*h.hosts = append(*h.hosts, r.URL.Host)
	h.mu.Unlock()
	return h.rt.RoundTrip(r)
}

// TestS3GoSDK: the Go SDK in both addressing styles, and the bucket's notifications for what arrives
// over the wire (PUT, CompleteMultipartUpload, COPY), which the local cloud's trigger turns into
// IngestFunction invocations.
func TestS3GoSDK(t *testing.T) {
	ctx := context.Background()
	s := serve(t, stream.Config{})
	var mu sync.Mutex
	var events []bucket.ObjectCreated
	s.bucket.OnCreate(func(ev bucket.ObjectCreated) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
	})
	var hosts []string
	var hmu sync.Mutex
	pathCfg := sdkConfig(s)
	path := s3.NewFromConfig(pathCfg, func(o *s3.Options) { o.UsePathStyle = true })
	vhost := virtualHostClient(s, &hmu, &hosts)

	for name, c := range map[string]*s3.Client{"path style": path, "virtual-host style": vhost} {
		t.Run(name, func(t *testing.T) {
			key := "raw/" + strings.ReplaceAll(name, " ", "_") + "/a b+c.csv"
			body := []byte("vendor_id,total_amount\n1,9.5\n")
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
				t.Fatal(err)
			}
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Range: aws.String("bytes=10-")})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if string(got) != string(body[10:]) || aws.ToString(out.ContentRange) != fmt.Sprintf("bytes 10-%d/%d", len(body)-1, len(body)) {
				t.Errorf("ranged GET: %q, %s", got, aws.ToString(out.ContentRange))
			}
			full, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), ChecksumMode: s3types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(full.Body) // the SDK verifies the CRC32 as it reads
			full.Body.Close()
			crc := crc32.ChecksumIEEE(body)
			if err != nil || string(got) != string(body) || aws.ToString(full.ChecksumCRC32) != base64.StdEncoding.EncodeToString([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)}) {
				t.Errorf("whole GET with checksums: %q, CRC32 %q, %v", got, aws.ToString(full.ChecksumCRC32), err)
			}
			list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: aws.String("raw/" + strings.ReplaceAll(name, " ", "_") + "/")})
			if err != nil || len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != key {
				t.Errorf("list: %+v, %v", list, err)
			}
			_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String("raw/missing.csv")})
			var nsk *s3types.NoSuchKey
			if !errors.As(err, &nsk) {
				t.Errorf("missing key: %v, want NoSuchKey", err)
			}
		})
	}
	hmu.Lock()
	sawVhost := false
	for _, h := range hosts {
		sawVhost = sawVhost || strings.HasPrefix(h, testBucket+".localhost:")
	}
	hmu.Unlock()
	if !sawVhost {
		t.Errorf("no request came virtual-host style; hosts %q", hosts)
	}

	// A multipart upload and a copy, then the events the bucket reported.
	part := bytes.Repeat([]byte("0123456789abcdef"), MinPartSize/16)
	key := "raw/multi.csv"
	up, err := path.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	var parts []s3types.CompletedPart
	for i, p := range [][]byte{part, []byte("last")} {
		o, err := path.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(testBucket), Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s3types.CompletedPart{ETag: o.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	done, err := path.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(testBucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		t.Fatal(err)
	}
	whole := md5.Sum(append(append([]byte{}, part...), "last"...))
	if got := aws.ToString(done.ETag); got != `"`+hex.EncodeToString(whole[:])+`"` {
		t.Errorf("completed ETag %s, want the MD5 of the object", got)
	}
	if _, err := path.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(testBucket), Key: aws.String("raw/copied.csv"), CopySource: aws.String(testBucket + "/" + key)}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, ev := range events {
		got = append(got, ev.EventName+" "+ev.Key)
	}
	want := []string{
		bucket.EventPut + " raw/path_style/a b+c.csv",
		bucket.EventPut + " raw/virtual-host_style/a b+c.csv",
		bucket.EventCompleteMultipartUpload + " raw/multi.csv",
		bucket.EventCopy + " raw/copied.csv",
	}
	if d := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); d != "" {
		t.Errorf("bucket events (-want +got):\n%s", d)
	}
}
