package local

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/taxistream/taxistream/internal/ingest"
)

// RunCounts are the objects this run worked on: manifests updated since it started (new objects, and
// objects of earlier runs it resumed; their counts are the objects' totals).
type RunCounts struct {
	Since         time.Time `json:"since"`
	Objects       int       `json:"objects"`
	ObjectsDone   int       `json:"objects_done"`
	ObjectsFailed int       `json:"objects_failed"`
	RowsRead      int64     `json:"rows_read"`
	RecordsSent   int64     `json:"records_sent"`
	Rejected      int64     `json:"rejected"`
}

// ObjectState is an object whose manifest is still running: interrupted (its lease released at its
// checkpoint), or stuck after errors, with what the sweeper will do next.
type ObjectState struct {
	Key      string `json:"key"`
	Version  string `json:"version"`
	ReplayID string `json:"replay_id,omitempty"`
	RowsRead int64  `json:"rows_read"`
	// Reason is the last error of a released invocation, if any.
	Reason string `json:"reason,omitempty"`
	// Sweeps is how often the sweeper resumed it so far; NextSweepAt is when it may try again.
	Sweeps      int       `json:"sweeps"`
	NextSweepAt time.Time `json:"next_sweep_at,omitzero"`
	LeaseUntil  time.Time `json:"lease_until"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// summarizeRun fills ThisRun, InFlight and Warnings from the manifests (ingest and replay).
func (c *Cloud) summarizeRun(ctx context.Context, s *Summary) error {
	s.ThisRun = RunCounts{Since: c.startedAt.UTC().Truncate(time.Millisecond)}
	manifest := func(key string, body []byte) error {
		if !strings.HasSuffix(key, ".json") {
			return nil
		}
		var m ingest.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			return fmt.Errorf("reading manifest %s: %w", key, err)
		}
		if m.ReplayID == "" && !m.UpdatedAt.Before(c.startedAt) {
			r := &s.ThisRun
			r.Objects++
			switch m.Status {
			case ingest.StatusDone:
				r.ObjectsDone++
			case ingest.StatusFailed:
				r.ObjectsFailed++
			}
			r.RowsRead += m.Counts.RowsRead
			r.RecordsSent += m.Counts.RecordsSent
			r.Rejected += m.Counts.Rejected
		}
		if m.Status == ingest.StatusRunning {
			s.InFlight = append(s.InFlight, ObjectState{
				Key: m.Key, Version: m.Version, ReplayID: m.ReplayID, RowsRead: m.Counts.RowsRead, Reason: m.Reason,
				Sweeps: m.Sweeps, NextSweepAt: m.NextSweepAt, LeaseUntil: m.LeaseUntil, UpdatedAt: m.UpdatedAt,
			})
		}
		for _, w := range m.Warnings {
			s.Warnings = append(s.Warnings, m.Key+": "+w)
		}
		return nil
	}
	err := each(ctx, c.Bucket, c.Bucket.Name(), "state/ingest/", manifest)
	if err == nil {
		err = each(ctx, c.Bucket, c.Bucket.Name(), "state/replay/", manifest)
	}
	sort.Slice(s.InFlight, func(i, j int) bool { return s.InFlight[i].Key < s.InFlight[j].Key })
	sort.Strings(s.Warnings)
	return err
}
