package compact

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/s3object"
)

// Key layout.
const (
	// TripsPrefix is where ProcessFunction writes the trips, one folder per pickup date.
	TripsPrefix = "processed/trips/"
	// PartitionKey is the Hive partition column of TripsPrefix.
	PartitionKey = "pickup_date"
	// PlanPrefix holds one plan manifest per partition while a compaction of it is in progress.
	PlanPrefix = "state/compact/trips/"
	// targetTag starts the name of every file a compaction writes.
	targetTag = "compacted-"
)

// Plan statuses. A plan manifest exists only while its compaction is unfinished: it is deleted at the
// end of a compaction and of a rollback.
const (
	// StatusPlanned: sources listed, targets being written. Recovery rolls back: the targets are
	// deleted (the sources are all still there).
	StatusPlanned = "planned"
	// StatusWritten: every target is written (the commit point). Recovery rolls forward: the sources
	// are deleted.
	StatusWritten = "written"
)

// planVersion is the manifest format version.
const planVersion = 1

// Plan is the manifest of one compaction of one partition: state/compact/trips/pickup_date=D.json.
type Plan struct {
	Version    int       `json:"version"`
	ID         string    `json:"plan_id"`
	RunID      string    `json:"run_id"`
	Partition  string    `json:"partition"` // e.g. 2019-01-31
	Status     string    `json:"status"`
	Created    time.Time `json:"created"`
	LeaseUntil time.Time `json:"lease_until"` // no other run touches the plan before (unless it takes over)
	Sources    []Object  `json:"sources"`
	// Exclusions are the partition's compacted files left as they are: a source row equal to one of
	// theirs is dropped (it is a duplicate).
	Exclusions []Object `json:"exclusions,omitempty"`
	// TargetPrefix starts the key of every target of the plan: a rollback deletes whatever is under it.
	TargetPrefix string   `json:"target_prefix"`
	Targets      []Object `json:"targets,omitempty"` // when written
	RowsIn       int64    `json:"rows_in,omitempty"`
	RowsOut      int64    `json:"rows_out,omitempty"`
	Duplicates   int64    `json:"duplicates,omitempty"`
}

// Object is an S3 object version by key and ETag (quoted as S3 returns it).
type Object struct {
	Key  string `json:"key"`
	ETag string `json:"etag"`
	Size int64  `json:"size"`
	Rows int64  `json:"rows,omitempty"` // targets only
}

// PlanKey is the manifest key of a partition (a pickup date, YYYY-MM-DD).
func PlanKey(date string) string { return PlanPrefix + PartitionKey + "=" + date + ".json" }

// PartitionPrefix is the key prefix of a partition's objects.
func PartitionPrefix(date string) string { return TripsPrefix + PartitionKey + "=" + date + "/" }

// dateOfPlanKey returns the partition of a manifest key.
func dateOfPlanKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, PlanPrefix+PartitionKey+"=")
	if !ok {
		return "", false
	}
	d, ok := strings.CutSuffix(rest, ".json")
	return d, ok && validDate(d)
}

// dateOfKey returns the partition of an object key under TripsPrefix.
func dateOfKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, TripsPrefix+PartitionKey+"=")
	if !ok {
		return "", false
	}
	d, _, ok := strings.Cut(rest, "/")
	return d, ok && validDate(d)
}

func validDate(d string) bool {
	_, err := time.Parse(time.DateOnly, d)
	return err == nil && len(d) == len(time.DateOnly)
}

// targetKey is the key of the n-th (1-based) target of a plan.
func (p *Plan) targetKey(n int) string { return fmt.Sprintf("%s%04d.parquet", p.TargetPrefix, n) }

// manifests reads and writes plan manifests with conditional writes.
type manifests struct {
	store  ObjectStore
	bucket string
}

// get returns the plan of a partition and its ETag; nil when there is none.
func (m manifests) get(ctx context.Context, date string) (*Plan, string, error) {
	key := PlanKey(date)
	out, err := m.store.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(m.bucket), Key: aws.String(key)})
	if s3object.IsNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("getting plan s3://%s/%s: %w", m.bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", fmt.Errorf("reading plan s3://%s/%s: %w", m.bucket, key, err)
	}
	var p Plan
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, "", fmt.Errorf("decoding plan s3://%s/%s: %w", m.bucket, key, err)
	}
	if p.Version != planVersion || p.Partition != date || (p.Status != StatusPlanned && p.Status != StatusWritten) {
		return nil, "", fmt.Errorf("plan s3://%s/%s: version %d, partition %q, status %q: not a plan this compactor knows",
			m.bucket, key, p.Version, p.Partition, p.Status)
	}
	return &p, aws.ToString(out.ETag), nil
}

// put writes p. With etag "" the manifest must not exist (If-None-Match: *), else it must have that
// ETag (If-Match). It returns the new ETag. A failed condition is reported by isPreconditionFailed.
func (m manifests) put(ctx context.Context, p *Plan, etag string) (string, error) {
	body, err := json.MarshalIndent(p, "", " ")
	if err != nil {
		return "", err
	}
	key := PlanKey(p.Partition)
	in := &s3.PutObjectInput{
		Bucket: aws.String(m.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("application/json"),
	}
	if etag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(etag)
	}
	out, err := m.store.PutObject(ctx, in)
	if err != nil {
		return "", fmt.Errorf("putting plan s3://%s/%s: %w", m.bucket, key, err)
	}
	if aws.ToString(out.ETag) == "" {
		return "", fmt.Errorf("putting plan s3://%s/%s: no ETag in the response (conditional writes need it)", m.bucket, key)
	}
	return aws.ToString(out.ETag), nil
}

// remove deletes the manifest if it still has etag.
func (m manifests) remove(ctx context.Context, date, etag string) error {
	key := PlanKey(date)
	_, err := m.store.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(m.bucket), Key: aws.String(key), IfMatch: aws.String(etag)})
	if err != nil && !s3object.IsNotFound(err) {
		return fmt.Errorf("deleting plan s3://%s/%s: %w", m.bucket, key, err)
	}
	return nil
}
