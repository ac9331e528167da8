package ingest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/taxistream/taxistream/internal/producer"
)

// fakeS3 is an in-memory bucket with ranged GETs and conditional PUTs (If-None-Match: *, If-Match).
// onGet and onPut run before each call (failure injection, barriers).
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string]fakeObject // "bucket/key"
	n       int
	ranges  []string // Range of every GET of a non-state key
	onGet   func(in *s3.GetObjectInput) error
	onPut   func(in *s3.PutObjectInput) error
	// onList and onDelete run (under the lock) before each ListObjectsV2 and DeleteObject.
	onList   func(in *s3.ListObjectsV2Input) error
	onDelete func(in *s3.DeleteObjectInput) error
	// afterGet runs after a GET has read the bucket, before it returns (to line up racing readers).
	afterGet func(in *s3.GetObjectInput)
}

type fakeObject struct {
	data []byte
	etag string // quoted
	mod  time.Time
}

func newFakeS3() *fakeS3 { return &fakeS3{objects: map[string]fakeObject{}} }

var errPrecondition = &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}

func (f *fakeS3) put(bucket, key string, data []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	sum := md5.Sum(append(data, byte(f.n)))
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	f.objects[bucket+"/"+key] = fakeObject{data: append([]byte(nil), data...), etag: etag, mod: time.Now()}
	return etag
}

func (f *fakeS3) get(bucket, key string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objects[bucket+"/"+key]
	return o.data, ok
}

func (f *fakeS3) keys(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks []string
	for k := range f.objects {
		if _, key, _ := strings.Cut(k, "/"); strings.HasPrefix(key, prefix) {
			ks = append(ks, key)
		}
	}
	return ks
}

func (f *fakeS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if f.onGet != nil {
		if err := f.onGet(in); err != nil {
			return nil, err
		}
	}
	out, err := f.getObject(in)
	if f.afterGet != nil {
		f.afterGet(in)
	}
	return out, err
}

func (f *fakeS3) getObject(in *s3.GetObjectInput) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := aws.ToString(in.Key)
	o, ok := f.objects[aws.ToString(in.Bucket)+"/"+key]
	if !ok {
		return nil, &types.NoSuchKey{Message: aws.String("no such key " + key)}
	}
	if in.IfMatch != nil && *in.IfMatch != o.etag {
		return nil, errPrecondition
	}
	if !strings.HasPrefix(key, statePrefix) {
		f.ranges = append(f.ranges, aws.ToString(in.Range))
	}
	data := o.data
	if r := aws.ToString(in.Range); r != "" {
		spec, ok := strings.CutPrefix(r, "bytes=")
		if !ok {
			return nil, fmt.Errorf("bad range %q", r)
		}
		a, b, _ := strings.Cut(spec, "-")
		start, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad range %q", r)
		}
		end := int64(len(data)) - 1
		if b != "" {
			if end, err = strconv.ParseInt(b, 10, 64); err != nil {
				return nil, fmt.Errorf("bad range %q", r)
			}
			end = min(end, int64(len(data))-1)
		}
		if start >= int64(len(data)) {
			return nil, &smithy.GenericAPIError{Code: "InvalidRange", Message: "The requested range is not satisfiable"}
		}
		data = data[start : end+1]
	}
	return &s3.GetObjectOutput{
		Body:          io.NopCloser(bytes.NewReader(data)),
		ContentLength: aws.Int64(int64(len(data))),
		ETag:          aws.String(o.etag),
	}, nil
}

func (f *fakeS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.onPut != nil {
		if err := f.onPut(in); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	k := aws.ToString(in.Bucket) + "/" + aws.ToString(in.Key)
	o, exists := f.objects[k]
	switch {
	case aws.ToString(in.IfNoneMatch) == "*" && exists:
		f.mu.Unlock()
		return nil, errPrecondition
	case in.IfMatch != nil && (!exists || o.etag != *in.IfMatch):
		f.mu.Unlock()
		return nil, errPrecondition
	}
	f.mu.Unlock()
	etag := f.put(aws.ToString(in.Bucket), aws.ToString(in.Key), data)
	return &s3.PutObjectOutput{ETag: aws.String(etag)}, nil
}

func (f *fakeS3) HeadObject(ctx context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objects[aws.ToString(in.Bucket)+"/"+aws.ToString(in.Key)]
	if !ok {
		return nil, &types.NotFound{}
	}
	if in.IfMatch != nil && *in.IfMatch != o.etag {
		return nil, errPrecondition
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(int64(len(o.data))), ETag: aws.String(o.etag), LastModified: aws.Time(o.mod)}, nil
}

// ListObjectsV2 lists keys in order, at most MaxKeys (default 1,000) a page.
func (f *fakeS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onList != nil {
		if err := f.onList(in); err != nil {
			return nil, err
		}
	}
	bucket, prefix := aws.ToString(in.Bucket), aws.ToString(in.Prefix)
	after := aws.ToString(in.ContinuationToken)
	var keys []string
	for k := range f.objects {
		if b, key, _ := strings.Cut(k, "/"); b == bucket && strings.HasPrefix(key, prefix) && key > after {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	limit := int(aws.ToInt32(in.MaxKeys))
	if limit <= 0 {
		limit = 1000
	}
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(len(keys) > limit)}
	if len(keys) > limit {
		keys = keys[:limit]
		out.NextContinuationToken = aws.String(keys[limit-1])
	}
	for _, k := range keys {
		o := f.objects[bucket+"/"+k]
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), ETag: aws.String(o.etag), Size: aws.Int64(int64(len(o.data))), LastModified: aws.Time(o.mod)})
	}
	out.KeyCount = aws.Int32(int32(len(out.Contents)))
	return out, nil
}

// DeleteObject removes a key (no error when it does not exist, like S3).
func (f *fakeS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onDelete != nil {
		if err := f.onDelete(in); err != nil {
			return nil, err
		}
	}
	delete(f.objects, aws.ToString(in.Bucket)+"/"+aws.ToString(in.Key))
	return &s3.DeleteObjectOutput{}, nil
}

// fakeInvoker records the async self-invocations; invoke (when set) decides the result.
type fakeInvoker struct {
	mu     sync.Mutex
	events []Event
	invoke func(in *lambda.InvokeInput) error
}

func (f *fakeInvoker) Invoke(ctx context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	if in.InvocationType != "Event" {
		return nil, fmt.Errorf("invocation type %q, want Event", in.InvocationType)
	}
	if f.invoke != nil {
		if err := f.invoke(in); err != nil {
			return nil, err
		}
	}
	var ev Event
	if err := json.Unmarshal(in.Payload, &ev); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
	return &lambda.InvokeOutput{StatusCode: 202}, nil
}

func (f *fakeInvoker) take() []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	evs := f.events
	f.events = nil
	return evs
}

// sink is "the stream" of the fake producer: every entry that a Flush reported as written.
type sink struct {
	mu      sync.Mutex
	entries []producer.Entry
}

func (s *sink) add(e producer.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Data = append([]byte(nil), e.Data...)
	s.entries = append(s.entries, e)
}

func (s *sink) data() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.entries))
	for i, e := range s.entries {
		out[i] = string(e.Data)
	}
	return out
}

// fakeProducer buffers entries and "writes" them to a sink on Flush. Entries larger than maxRecord
// fail for good (like a record over the stream's limit); flushErr (when set) fails a Flush.
type fakeProducer struct {
	sink      *sink
	buf       []producer.Entry
	maxRecord int
	flushErr  func() error
	putErr    func(e producer.Entry) error
	stats     producer.Stats
}

func (p *fakeProducer) Put(ctx context.Context, e producer.Entry) error {
	if p.putErr != nil {
		if err := p.putErr(e); err != nil {
			return err
		}
	}
	e.Data = append([]byte(nil), e.Data...)
	p.buf = append(p.buf, e)
	return nil
}

func (p *fakeProducer) Flush(ctx context.Context) ([]producer.Failure, error) {
	if p.flushErr != nil {
		if err := p.flushErr(); err != nil {
			return nil, err
		}
	}
	var fails []producer.Failure
	for _, e := range p.buf {
		if p.maxRecord > 0 && len(e.Data)+len(e.PartitionKey) > p.maxRecord {
			fails = append(fails, producer.Failure{Tag: e.Tag, Reason: "record_too_large",
				Err: fmt.Errorf("record of %d bytes exceeds the stream's limit of %d", len(e.Data)+len(e.PartitionKey), p.maxRecord)})
			continue
		}
		p.sink.add(e)
		p.stats.UserRecords++
		p.stats.KinesisRecords++
		p.stats.Bytes += int64(len(e.Data))
	}
	p.stats.Requests++
	p.buf = p.buf[:0]
	return fails, nil
}

func (p *fakeProducer) Stats() producer.Stats { return p.stats }

// fakeKinesis is a one-shard stream for the real producer. putRecords (when set) answers instead of
// storing everything; stored collects the data of every entry the fake accepted.
type fakeKinesis struct {
	mu         sync.Mutex
	stored     [][]byte
	calls      int
	putRecords func(call int, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error)
}

func (k *fakeKinesis) store(e kinesistypes.PutRecordsRequestEntry) kinesistypes.PutRecordsResultEntry {
	k.stored = append(k.stored, append([]byte(nil), e.Data...))
	return kinesistypes.PutRecordsResultEntry{ShardId: aws.String("shardId-000000000000"), SequenceNumber: aws.String(strconv.Itoa(len(k.stored)))}
}

func (k *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if k.putRecords != nil {
		return k.putRecords(k.calls, in)
	}
	out := &kinesis.PutRecordsOutput{}
	for _, e := range in.Records {
		out.Records = append(out.Records, k.store(e))
	}
	return out, nil
}

func (k *fakeKinesis) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []kinesistypes.Shard{{
		ShardId:             aws.String("shardId-000000000000"),
		HashKeyRange:        &kinesistypes.HashKeyRange{StartingHashKey: aws.String("0"), EndingHashKey: aws.String("340282366920938463463374607431768211455")},
		SequenceNumberRange: &kinesistypes.SequenceNumberRange{StartingSequenceNumber: aws.String("1")},
	}}}, nil
}

func (k *fakeKinesis) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &kinesistypes.StreamDescriptionSummary{
		StreamName: aws.String("trips"), StreamARN: aws.String("arn:aws:kinesis:us-east-1:123456789012:stream/trips"),
		StreamStatus: kinesistypes.StreamStatusActive, OpenShardCount: aws.Int32(1),
	}}, nil
}

var errBoom = errors.New("boom")
