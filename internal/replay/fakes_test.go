package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/ingest"
)

const (
	testBucket = "taxistream-test"
	ingestFn   = "stack-ingest"
	replayFn   = "stack-replay"
)

// fakeS3 lists with a func field.
type fakeS3 struct {
	list func(ctx context.Context, in *s3.ListObjectsV2Input) (*s3.ListObjectsV2Output, error)
}

func (f *fakeS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return f.list(ctx, in)
}

// fakeLambda invokes with a func field.
type fakeLambda struct {
	invoke func(ctx context.Context, in *lambda.InvokeInput) (*lambda.InvokeOutput, error)
}

func (f *fakeLambda) Invoke(ctx context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	return f.invoke(ctx, in)
}

// object is a listed object of the fake bucket.
type object struct {
	key  string
	size int64
}

// bucketObjects returns n ingestible objects raw/2019/yellow_tripdata_2019-NNN.csv (size 100+i) and, when
// withJunk, non-ingestible keys among them.
func bucketObjects(n int, withJunk bool) []object {
	var objs []object
	for i := range n {
		ext := []string{".csv", ".csv.gz", ".parquet"}[i%3]
		objs = append(objs, object{fmt.Sprintf("raw/2019/yellow_tripdata_2019-%03d%s", i, ext), int64(100 + i)})
	}
	if withJunk {
		objs = append(objs,
			object{"raw/2019/", 0},
			object{"raw/2019/README.md", 10},
			object{"raw/2019/yellow_tripdata_2019-010.json", 10},
			object{"raw/2019/yellow_tripdata_2019-020.csv.bak", 10},
			object{"raw/2019/zz_notes.txt", 10},
		)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].key < objs[j].key })
	return objs
}

// listing implements ListObjectsV2 over objs (sorted): Prefix, StartAfter, ContinuationToken, MaxKeys.
func listing(objs []object, calls *int) func(context.Context, *s3.ListObjectsV2Input) (*s3.ListObjectsV2Output, error) {
	var mu sync.Mutex
	return func(_ context.Context, in *s3.ListObjectsV2Input) (*s3.ListObjectsV2Output, error) {
		mu.Lock()
		if calls != nil {
			*calls++
		}
		mu.Unlock()
		if aws.ToString(in.Bucket) != testBucket {
			return nil, fmt.Errorf("listing bucket %q", aws.ToString(in.Bucket))
		}
		after := aws.ToString(in.StartAfter)
		if tok := aws.ToString(in.ContinuationToken); tok != "" {
			after = tok
		}
		max := int(aws.ToInt32(in.MaxKeys))
		if max == 0 {
			max = 1000
		}
		out := &s3.ListObjectsV2Output{}
		for _, o := range objs {
			if !strings.HasPrefix(o.key, aws.ToString(in.Prefix)) || o.key <= after {
				continue
			}
			if len(out.Contents) == max {
				out.IsTruncated = aws.Bool(true)
				out.NextContinuationToken = out.Contents[len(out.Contents)-1].Key
				break
			}
			out.Contents = append(out.Contents, s3types.Object{
				Key: aws.String(o.key), Size: aws.Int64(o.size), ETag: aws.String(`"etag-` + o.key[len(o.key)-8:] + `"`),
			})
		}
		out.KeyCount = aws.Int32(int32(len(out.Contents)))
		return out, nil
	}
}

// clock is a fake clock that tests advance.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder records the Invoke calls of a fakeLambda, split into hand-offs and continuations.
type recorder struct {
	mu            sync.Mutex
	handOffs      []ingest.Event
	continuations []Request
	inputs        []*lambda.InvokeInput
}

func (r *recorder) record(t *testing.T, in *lambda.InvokeInput) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inputs = append(r.inputs, in)
	switch aws.ToString(in.FunctionName) {
	case ingestFn:
		var ev ingest.Event
		if err := json.Unmarshal(in.Payload, &ev); err != nil {
			t.Errorf("hand-off payload %s: %v", in.Payload, err)
		}
		r.handOffs = append(r.handOffs, ev)
	case replayFn:
		var req Request
		if err := json.Unmarshal(in.Payload, &req); err != nil {
			t.Errorf("continuation payload %s: %v", in.Payload, err)
		}
		r.continuations = append(r.continuations, req)
	default:
		t.Errorf("invoke of unexpected function %q", aws.ToString(in.FunctionName))
	}
}

// keysHandedOff counts the hand-offs per key.
func (r *recorder) keysHandedOff() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, ev := range r.handOffs {
		m[ev.Key]++
	}
	return m
}

func testConfig() config.Config {
	return config.Config{
		Bucket:           testBucket,
		IngestFunction:   ingestFn,
		FunctionName:     replayFn,
		MaxInFlight:      4,
		DeadlineMargin:   30 * time.Second,
		MaxContinuations: 200,
		MetricsNamespace: "taxistream",
	}
}
