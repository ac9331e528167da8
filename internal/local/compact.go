package local

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/compact"
	"github.com/taxistream/taxistream/internal/config"
)

// newCompact builds CompactFunction's handler on the local bucket (or the function's faulty view of it)
// and the local Lambda runtime, which its continuations go through.
func newCompact(ctx context.Context, cfg config.Config, c *Cloud, store any, log *slog.Logger) (lambda.Handler, error) {
	s3, ok := store.(compact.ObjectStore)
	if !ok {
		return nil, fmt.Errorf("the bucket of CompactFunction cannot delete objects (%T)", store)
	}
	h, err := compact.New(ctx, cfg, compact.Deps{S3: s3, Lambda: c.Lambda, Log: log, Metrics: c.logs})
	if err != nil {
		return nil, err
	}
	return lambda.NewHandler(h.Handle), nil
}

// CompactionSummary is what the compaction a local run ends with did. The file counts are listed from
// the bucket before and after; Result is the first invocation's (its continuations, if any, log theirs).
type CompactionSummary struct {
	FilesBefore int            `json:"files_before"` // Parquet objects under processed/trips/
	FilesAfter  int            `json:"files_after"`
	BytesBefore int64          `json:"bytes_before"` // their bytes
	BytesAfter  int64          `json:"bytes_after"`
	Partitions  int            `json:"partitions"`
	Seconds     float64        `json:"seconds"`
	Result      compact.Result `json:"result"`
	Continued   bool           `json:"continued"`
}

// Compact runs CompactFunction once over every partition, as its schedule does on AWS, through the
// local Lambda runtime (its timeout, its continuations), and waits until the pipeline is idle again.
// `taxistream local` calls it once the pipeline has drained.
func (c *Cloud) Compact(ctx context.Context, req compact.Request) (*CompactionSummary, error) {
	fn, ok := c.Settings.Functions[CompactFunction]
	if !ok {
		return nil, nil // a template without compaction
	}
	start := time.Now()
	before, bytesBefore, partitions, err := c.tripFiles(ctx)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	out, err := c.Lambda.Invoke(ctx, &awslambda.InvokeInput{
		FunctionName: aws.String(fn.Name), InvocationType: lambdatypes.InvocationTypeRequestResponse, Payload: payload,
	})
	if err != nil {
		return nil, fmt.Errorf("invoking %s: %w", fn.Name, err)
	}
	if out.FunctionError != nil {
		return nil, fmt.Errorf("%s: %s: %s", fn.Name, aws.ToString(out.FunctionError), out.Payload)
	}
	var resp compact.Response
	if err := json.Unmarshal(out.Payload, &resp); err != nil {
		return nil, fmt.Errorf("decoding the response of %s: %w", fn.Name, err)
	}
	if err := c.WaitIdle(ctx); err != nil {
		return nil, err
	}
	after, bytesAfter, _, err := c.tripFiles(ctx)
	if err != nil {
		return nil, err
	}
	return &CompactionSummary{FilesBefore: before, FilesAfter: after, BytesBefore: bytesBefore, BytesAfter: bytesAfter, Partitions: partitions,
		Seconds: time.Since(start).Seconds(), Result: resp.Result, Continued: resp.Continued}, nil
}

// tripFiles counts the Parquet objects, their bytes and the partitions under processed/trips/.
func (c *Cloud) tripFiles(ctx context.Context) (files int, size int64, partitions int, err error) {
	seen := map[string]bool{}
	pages := s3.NewListObjectsV2Paginator(c.Bucket, &s3.ListObjectsV2Input{Bucket: aws.String(c.Bucket.Name()), Prefix: aws.String(compact.TripsPrefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("listing %s: %w", compact.TripsPrefix, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if !strings.HasSuffix(k, ".parquet") {
				continue
			}
			files++
			size += aws.ToInt64(o.Size)
			if dir := path.Dir(k); !seen[dir] {
				seen[dir] = true
				partitions++
			}
		}
	}
	return files, size, partitions, nil
}
