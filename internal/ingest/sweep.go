package ingest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The sweeper gives every object a way to finish without a person. An object whose invocations all
// ended without finishing it (timeouts, crashes, transient errors that outlasted Lambda's two
// asynchronous retries) stays "running" with an expired lease. A scheduled invocation of
// IngestFunction ({"taxistream":"sweep"}) finds those through their in-flight markers and hands each to
// a new invocation at its checkpoint (a continuation event), at most SWEEP_MAX_ATTEMPTS times with
// exponential backoff starting at SWEEP_GRACE; after that it marks the object failed with the reason.

// inflightPrefix holds one empty marker per object version whose manifest is not finished:
// state/inflight/<manifest key without "state/">. The sweeper lists only these, never every manifest.
const inflightPrefix = statePrefix + "inflight/"

// maxSweepBackoff caps the wait between two attempts on one object.
const maxSweepBackoff = 6 * time.Hour

func inflightKey(manifestKey string) string {
	return inflightPrefix + strings.TrimPrefix(manifestKey, statePrefix)
}

func manifestKeyOfMarker(marker string) string {
	return statePrefix + strings.TrimPrefix(marker, inflightPrefix)
}

// markInflight writes the in-flight marker of a manifest about to be created.
func (h *Handler) markInflight(ctx context.Context, manifestKey string) error {
	k := inflightKey(manifestKey)
	_, err := h.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.cfg.Bucket), Key: aws.String(k), Body: bytes.NewReader(nil)})
	if err != nil {
		return fmt.Errorf("putting in-flight marker s3://%s/%s: %w", h.cfg.Bucket, k, err)
	}
	return nil
}

// unmarkInflight removes the marker of a finished manifest. A failure is logged and left to the
// sweeper, which removes markers of finished manifests: the manifest, not the marker, is the truth.
func (h *Handler) unmarkInflight(ctx context.Context, manifestKey string) {
	k := inflightKey(manifestKey)
	if _, err := h.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(h.cfg.Bucket), Key: aws.String(k)}); err != nil {
		h.log.WarnContext(ctx, "deleting in-flight marker failed; the sweeper removes it later", "key", k, "error", err.Error())
	}
}

// sweepBackoff is the wait after attempt n (1-based): grace, 2×grace, 4×grace, ... capped.
func sweepBackoff(grace time.Duration, n int) time.Duration {
	d := grace
	for i := 1; i < n && d < maxSweepBackoff; i++ {
		d *= 2
	}
	return min(max(d, time.Second), maxSweepBackoff)
}

// sweep runs one pass of the sweeper. idle (the caller knows no invocation is running) treats every
// lease as stale and waits for neither the grace nor the backoff; attempts count all the same. It returns
// one ObjectResult per object it acted on or that waits; an error only when listing fails (the next
// scheduled sweep retries).
func (inv *invocation) sweep(ctx context.Context, idle bool) (Result, error) {
	h := inv.h
	var res Result
	pages := s3.NewListObjectsV2Paginator(h.s3, &s3.ListObjectsV2Input{Bucket: aws.String(h.cfg.Bucket), Prefix: aws.String(inflightPrefix)})
	for pages.HasMorePages() {
		if inv.stopping(ctx) {
			h.log.InfoContext(ctx, "sweep stopped before its deadline; the next sweep goes on")
			break
		}
		page, err := pages.NextPage(ctx)
		if err != nil {
			return res, fmt.Errorf("listing s3://%s/%s: %w", h.cfg.Bucket, inflightPrefix, err)
		}
		for _, obj := range page.Contents {
			if inv.stopping(ctx) {
				break
			}
			r, act := inv.sweepOne(ctx, aws.ToString(obj.Key), idle)
			if act {
				res.Objects = append(res.Objects, r)
			}
		}
	}
	for _, o := range res.Objects {
		switch o.Outcome {
		case OutcomeResumed:
			inv.swept.resumed++
		case OutcomeFailed:
			inv.swept.failed++
		case OutcomeWaiting:
			inv.swept.waiting++
		}
	}
	return res, nil
}

// sweepOne looks at the manifest of one marker; act is false when there was nothing to report.
func (inv *invocation) sweepOne(ctx context.Context, marker string, idle bool) (ObjectResult, bool) {
	h := inv.h
	key := manifestKeyOfMarker(marker)
	m, etag, found, err := h.loadManifest(ctx, key)
	if err != nil {
		h.log.WarnContext(ctx, "sweep: reading manifest failed; the next sweep retries", "manifest", key, "error", err.Error())
		return ObjectResult{}, false
	}
	if !found || m.Status != StatusRunning {
		// A finished object whose marker deletion failed, or a claim that never created its manifest.
		// A claim in progress creates the manifest right after the marker: leave young markers alone.
		if found || h.now().Sub(inv.markerTime(ctx, marker)) > h.cfg.SweepGrace {
			h.unmarkInflight(ctx, key)
		}
		return ObjectResult{}, false
	}
	now := h.now()
	res := ObjectResult{Bucket: m.Bucket, Key: m.Key, Version: m.Version, Manifest: key, Continuation: m.Continuations}
	if !idle {
		switch {
		case now.Before(m.LeaseUntil):
			return res, false // owned by a live invocation
		case now.Sub(m.UpdatedAt) < h.cfg.SweepGrace:
			return res, false // released moments ago: Lambda's own retry is due
		case now.Before(m.NextSweepAt):
			res.Outcome, res.Reason = OutcomeWaiting, fmt.Sprintf("stuck; attempt %d of %d at %s; last error: %s",
				m.Sweeps+1, h.cfg.SweepMaxAttempts, m.NextSweepAt.UTC().Format(time.RFC3339), lastError(m))
			return res, true
		}
	}
	if m.Sweeps >= h.cfg.SweepMaxAttempts {
		reason := fmt.Sprintf("stuck: not finished after %d sweeper attempts (SWEEP_MAX_ATTEMPTS); last error: %s; the checkpoint is kept: replay the object to finish it",
			m.Sweeps, lastError(m))
		m.Status, m.Reason, m.FinishedAt, m.UpdatedAt = StatusFailed, reason, now, now
		if _, err := h.putManifest(ctx, key, &m, etag); err != nil {
			h.log.WarnContext(ctx, "sweep: marking the object failed did not land; the next sweep retries", "manifest", key, "error", err.Error())
			return ObjectResult{}, false
		}
		h.unmarkInflight(ctx, key)
		h.log.WarnContext(ctx, "object failed", "bucket", m.Bucket, "key", m.Key, "version", m.Version, "reason", reason)
		res.Outcome, res.Reason = OutcomeFailed, reason
		return res, true
	}
	m.Sweeps++
	m.NextSweepAt = now.Add(sweepBackoff(h.cfg.SweepGrace, m.Sweeps))
	if idle {
		m.LeaseUntil = now // the owner is known dead: release its lease so the hand-over can claim it
	}
	// The attempt is recorded before the hand-off (If-Match: a manifest written meanwhile by a live
	// invocation is not ours to touch), so a hand-off that is lost still counts against the bound.
	if _, err := h.putManifest(ctx, key, &m, etag); err != nil {
		h.log.InfoContext(ctx, "sweep: manifest changed meanwhile; leaving it", "manifest", key, "error", err.Error())
		return ObjectResult{}, false
	}
	ev := Event{Kind: KindContinuation, Bucket: m.Bucket, Key: m.Key, VersionID: m.VersionID, ETag: m.ETag, Size: m.Size,
		ReplayID: m.ReplayID, Continuation: m.Continuations}
	if err := h.invokeSelf(ctx, ev); err != nil {
		h.log.WarnContext(ctx, "sweep: handing the object over failed; the next sweep retries", "manifest", key, "error", err.Error())
		res.Outcome, res.Reason = OutcomeWaiting, "hand-over failed: "+err.Error()
		return res, true
	}
	res.Outcome = OutcomeResumed
	res.Reason = fmt.Sprintf("stuck since %s; attempt %d of %d; last error: %s", m.UpdatedAt.UTC().Format(time.RFC3339), m.Sweeps, h.cfg.SweepMaxAttempts, lastError(m))
	h.log.InfoContext(ctx, "sweep: resuming a stuck object at its checkpoint", "bucket", m.Bucket, "key", m.Key, "version", m.Version,
		"manifest", key, "attempt", m.Sweeps, "idle", idle, "last_error", lastError(m))
	return res, true
}

// markerTime is when a marker was written (its LastModified), or the zero time when unknown.
func (inv *invocation) markerTime(ctx context.Context, marker string) time.Time {
	out, err := inv.h.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(inv.h.cfg.Bucket), Key: aws.String(marker)})
	if err != nil || out.LastModified == nil {
		return time.Time{}
	}
	return *out.LastModified
}

func lastError(m Manifest) string {
	if m.Reason == "" {
		return "none recorded (the invocation ended without reporting one: a timeout or a crash)"
	}
	return m.Reason
}
