package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/s3object"
)

// Manifest statuses.
const (
	StatusRunning = "running"
	StatusDone    = "done"
	StatusFailed  = "failed"
)

// Key prefixes in the bucket (DESIGN.md, bucket prefixes).
const (
	rawPrefix      = "raw/"
	statePrefix    = "state/"
	rejectedPrefix = "rejected/"
)

// Manifest is the state of one object version, stored as JSON at ManifestKey. It is written only by its
// owner, with If-None-Match: * (first claim) or If-Match: <etag> (every later write, and takeovers), so
// two invocations can never both own one object version.
type Manifest struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	Version   string `json:"version"` // object version id, or its ETag when the bucket is not versioned
	VersionID string `json:"version_id,omitempty"`
	ETag      string `json:"etag,omitempty"`
	Size      int64  `json:"size,omitempty"`
	ReplayID  string `json:"replay_id,omitempty"`
	Format    string `json:"format"`

	Status string `json:"status"`           // running | done | failed
	Reason string `json:"reason,omitempty"` // why it failed (or the last error of a released run)
	// Warnings say what is surprising about a file that converted without error (convert.Warnings):
	// empty, a header and no rows, no TLC column (converted as a generic CSV). Set when it is done.
	Warnings []string `json:"warnings,omitempty"`
	// Owner is the request id of the invocation that owns the object until LeaseUntil. An owner that hands
	// over (continuation) or gives up (error to be retried) releases the lease by setting it to its own
	// last update time; a running manifest whose lease has expired may be taken over with If-Match.
	Owner      string    `json:"owner"`
	LeaseUntil time.Time `json:"lease_until"`
	Claims     int       `json:"claims"` // number of invocations that owned it

	Counts Counts `json:"counts"`
	// Continuations is the number of hand-overs so far (the owner is continuation number Continuations).
	Continuations int                 `json:"continuations"`
	Checkpoint    *convert.Checkpoint `json:"checkpoint,omitempty"` // next unread row; nil = start
	// RejectedParts is the number of committed parts under RejectedPrefix (part-000000.jsonl, ...).
	RejectedParts  int    `json:"rejected_parts"`
	RejectedPrefix string `json:"rejected_prefix"`

	// Sweeps counts the sweeper's attempts to resume the object after it was found stuck (an expired
	// lease); NextSweepAt is when the sweeper may try again (exponential backoff).
	Sweeps      int       `json:"sweeps,omitempty"`
	NextSweepAt time.Time `json:"next_sweep_at,omitzero"`

	StartedAt  time.Time `json:"started_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	BusyMillis int64     `json:"busy_ms"` // time spent in invocations, summed
}

// Counts are cumulative over every invocation of the object. Once the object is done,
// RowsRead == RecordsSent + Rejected + Failed.
type Counts struct {
	RowsRead       int64 `json:"rows_read"`
	RecordsSent    int64 `json:"records_sent"`
	Rejected       int64 `json:"rejected"`
	Failed         int64 `json:"failed"` // rows whose fate is unknown because a terminal error aborted the object
	KinesisRecords int64 `json:"kinesis_records"`
	Bytes          int64 `json:"bytes"`
	Retries        int64 `json:"retries"`
	Throttled      int64 `json:"throttled"`
	// PossibleDuplicates are records that may be in the stream more than once: resent after a
	// PutRecords whose outcome was unknown (timeout, 5xx), or handed to the producer after the last
	// checkpoint of an invocation that released the object (the retry resumes at the checkpoint and
	// sends them again). Consumers drop the copies by record_id.
	PossibleDuplicates int64 `json:"possible_duplicates"`
}

// objectRef identifies one object version and where its state lives.
type objectRef struct {
	Bucket    string
	Key       string
	VersionID string // "" when the bucket is not versioned
	ETag      string // unquoted
	Size      int64
	ReplayID  string
}

// version is the object identity used in record ids and state keys: the version id, else the ETag.
func (o objectRef) version() string {
	if o.VersionID != "" && o.VersionID != "null" {
		return o.VersionID
	}
	return o.ETag
}

// ManifestKey is where the manifest of an object version lives:
// state/ingest/<key>/<version>.json, or state/replay/<replay_id>/<key>/<version>.json for a replay.
func ManifestKey(key, version, replayID string) string {
	if replayID != "" {
		return statePrefix + "replay/" + replayID + "/" + key + "/" + version + ".json"
	}
	return statePrefix + "ingest/" + key + "/" + version + ".json"
}

// RejectedKey is where part n of the rejected rows of an object version lives:
// rejected/<key>/<version>/part-NNNNNN.jsonl, or rejected/<key>/<version>/replay-<replay_id>/part-NNNNNN.jsonl.
func RejectedKey(key, version, replayID string, part int) string {
	return rejectedDir(key, version, replayID) + fmt.Sprintf("part-%06d.jsonl", part)
}

func rejectedDir(key, version, replayID string) string {
	d := rejectedPrefix + key + "/" + version + "/"
	if replayID != "" {
		d += "replay-" + replayID + "/"
	}
	return d
}

func (o objectRef) manifestKey() string { return ManifestKey(o.Key, o.version(), o.ReplayID) }

// errLostOwnership means a conditional write of the manifest failed: another invocation owns it now.
var errLostOwnership = errors.New("lost ownership of the manifest")

// loadManifest reads a manifest; found is false when there is none.
func (h *Handler) loadManifest(ctx context.Context, key string) (m Manifest, etag string, found bool, err error) {
	out, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		if s3object.IsNotFound(err) {
			return Manifest{}, "", false, nil
		}
		return Manifest{}, "", false, fmt.Errorf("getting manifest s3://%s/%s: %w", h.cfg.Bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxManifestBytes+1))
	if err != nil {
		return Manifest{}, "", false, fmt.Errorf("reading manifest s3://%s/%s: %w", h.cfg.Bucket, key, err)
	}
	if len(b) > maxManifestBytes {
		return Manifest{}, "", false, fmt.Errorf("manifest s3://%s/%s is larger than %d bytes", h.cfg.Bucket, key, maxManifestBytes)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, "", false, fmt.Errorf("decoding manifest s3://%s/%s: %w", h.cfg.Bucket, key, err)
	}
	return m, aws.ToString(out.ETag), true, nil
}

// maxManifestBytes bounds what is read of a manifest. Manifests are small, except that a checkpoint
// keeps the file's header line, which may be up to convert.MaxRowBytes and grows up to 6× when escaped
// in JSON (\u00XX): the bound covers that, so any manifest written can be read back.
const maxManifestBytes = 6*convert.MaxRowBytes + 1<<20

// putManifest writes m conditionally: ifMatch "" means If-None-Match: * (create), else If-Match: ifMatch.
// It returns the new ETag, or errLostOwnership when the condition failed.
func (h *Handler) putManifest(ctx context.Context, key string, m *Manifest, ifMatch string) (string, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding manifest: %w", err)
	}
	b = append(b, '\n')
	in := &s3.PutObjectInput{
		Bucket:      aws.String(h.cfg.Bucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(b),
		ContentType: aws.String("application/json"),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := h.s3.PutObject(ctx, in)
	if err != nil {
		if s3object.IsPreconditionFailed(err) {
			return "", errLostOwnership
		}
		return "", fmt.Errorf("putting manifest s3://%s/%s: %w", h.cfg.Bucket, key, err)
	}
	etag := aws.ToString(out.ETag)
	if etag == "" {
		return "", fmt.Errorf("putting manifest s3://%s/%s: no ETag in the response (conditional writes need it)", h.cfg.Bucket, key)
	}
	return etag, nil
}

func unquoteETag(etag string) string { return strings.Trim(etag, `"`) }

// formatName names a format for manifests and logs.
func formatName(f convert.Format) string {
	switch f {
	case convert.FormatCSV:
		return "csv"
	case convert.FormatGzipCSV:
		return "csv.gz"
	case convert.FormatParquet:
		return "parquet"
	}
	return "unknown"
}
