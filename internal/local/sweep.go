package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/local/bucket"
)

// The local side of the sweeper (internal/ingest/sweep.go). The template's schedules run every
// Options.ScheduleEvery instead of their rate (a local run lasts minutes, not hours), SWEEP_GRACE is
// scaled to the local async retry delays, and the local cloud, which holds the folder's lock, knows that
// no other invocation can own a lease when it starts: it resumes what an earlier run left running at once.

// inflightPrefix is ingest's marker prefix: one empty object per unfinished object version.
const inflightPrefix = "state/inflight/"

// defaultScheduleEvery is how often the template's schedules run locally.
const defaultScheduleEvery = 5 * time.Second

// localSweepGrace is the local SWEEP_GRACE: Lambda's own async retries (1 s and 2 s locally) are over.
func localSweepGrace(delays []time.Duration) time.Duration {
	g := 2 * time.Second
	for _, d := range delays {
		g += d
	}
	return g
}

// inflight counts the in-flight markers: objects whose manifest is not finished.
func (c *Cloud) inflight(ctx context.Context) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(c.Bucket, &s3.ListObjectsV2Input{Bucket: aws.String(c.Bucket.Name()), Prefix: aws.String(inflightPrefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, err
		}
		n += len(page.Contents)
	}
	return n, nil
}

// Sweep invokes IngestFunction's sweeper synchronously and returns what it did. idle tells it that no
// ingest invocation is running (the cloud is idle or just started), so every lease is stale.
func (c *Cloud) Sweep(ctx context.Context, idle bool) (ingest.Result, error) {
	fn, ok := c.Settings.Functions[IngestFunction]
	if !ok {
		return ingest.Result{}, nil
	}
	payload, _ := json.Marshal(ingest.Event{Kind: ingest.KindSweep, Idle: idle})
	out, err := c.syncInvoker(fn.Name)(ctx, payload)
	if err != nil {
		return ingest.Result{}, fmt.Errorf("sweeping: %w", err)
	}
	var res ingest.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("sweeping: response %s: %w", out, err)
	}
	return res, nil
}

// Recovered is what Start found left running by an earlier run and handed over again.
func (c *Cloud) Recovered() []ingest.ObjectResult { return c.recovered }

// Renotified is the objects under the trigger's prefixes that Start notified again: objects with no
// manifest, whose notification an earlier run accepted but never ran (Lambda's queue of asynchronous
// events is in memory: a kill -9 or Ctrl-C drops it).
func (c *Cloud) Renotified() []bucket.ObjectCreated { return c.renotified }

// recover resumes at start-up what an earlier run of this folder left running (a kill -9, a crash, a
// Ctrl-C): objects in flight go to the sweeper, which hands them over at their checkpoint; objects
// never started are notified again.
func (c *Cloud) recover(ctx context.Context) error {
	n, err := c.inflight(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		res, err := c.Sweep(ctx, true)
		if err != nil {
			return err
		}
		c.recovered = res.Objects
	}
	return c.renotify(ctx)
}

// renotify sends the S3 notification again for every object the trigger would notify that has no
// ingest manifest. A duplicate notification is harmless (ingest is idempotent per object version).
func (c *Cloud) renotify(ctx context.Context) error {
	if c.Trigger == nil {
		return nil
	}
	prefixes := map[string]bool{}
	for _, fn := range c.Settings.Functions {
		if fn.Name != c.FunctionName(IngestFunction) {
			continue
		}
		for _, e := range fn.S3Events {
			prefixes[e.Prefix] = true
		}
	}
	for prefix := range prefixes {
		p := s3.NewListObjectsV2Paginator(c.Bucket, &s3.ListObjectsV2Input{Bucket: aws.String(c.Bucket.Name()), Prefix: aws.String(prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("listing %s: %w", prefix, err)
			}
			for _, o := range page.Contents {
				key, etag := aws.ToString(o.Key), strings.Trim(aws.ToString(o.ETag), `"`)
				if len(c.Trigger.Matches(bucket.EventPut, key)) == 0 {
					continue
				}
				_, err := c.Bucket.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.Bucket.Name()), Key: aws.String(ingest.ManifestKey(key, etag, ""))})
				if err == nil {
					continue
				}
				var nf *s3types.NotFound
				var nsk *s3types.NoSuchKey
				if !errors.As(err, &nf) && !errors.As(err, &nsk) {
					return fmt.Errorf("looking for the manifest of %s: %w", key, err)
				}
				now := time.Now().UTC()
				ev := bucket.ObjectCreated{
					Bucket: c.Bucket.Name(), Key: key, Size: aws.ToInt64(o.Size), ETag: etag, EventName: bucket.EventPut,
					Sequencer: fmt.Sprintf("%018X", now.UnixNano()), Time: now,
				}
				c.Trigger.Handle(ev)
				c.renotified = append(c.renotified, ev)
			}
		}
	}
	return nil
}

// runSchedules invokes IngestFunction's enabled schedules (the sweeper) asynchronously every interval,
// as EventBridge would on their rate, until ctx ends. CompactFunction's schedule is not run on a clock
// locally: compacting while ProcessFunction writes is safe but only churns a short run's files, so
// `taxistream local` compacts once, when the pipeline is idle (Compact).
func (c *Cloud) runSchedules(ctx context.Context, every time.Duration) {
	type job struct{ function, input string }
	var jobs []job
	for id, fn := range c.Settings.Functions {
		if id != IngestFunction {
			continue
		}
		for _, ev := range fn.ScheduleEvents {
			if ev.Enabled {
				jobs = append(jobs, job{fn.Name, ev.Input})
			}
		}
	}
	if len(jobs) == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, j := range jobs {
			input := j.input
			if input == "" {
				input = scheduledEvent(c.Settings.Region, c.Settings.AccountID, time.Now())
			}
			// An error is the runtime refusing the event (stopping): the next tick tries again.
			_, _ = c.Lambda.Invoke(ctx, &awslambda.InvokeInput{
				FunctionName: aws.String(j.function), InvocationType: lambdatypes.InvocationTypeEvent, Payload: []byte(input),
			})
		}
	}
}

// scheduledEvent is the JSON EventBridge sends for a schedule without Input.
func scheduledEvent(region, account string, now time.Time) string {
	b, _ := json.Marshal(map[string]any{
		"version": "0", "id": fmt.Sprintf("local-%d", now.UnixNano()), "detail-type": "Scheduled Event", "source": "aws.events",
		"account": account, "time": now.UTC().Format(time.RFC3339), "region": region, "resources": []string{}, "detail": map[string]any{},
	})
	return string(b)
}

// sweepUntilSettled runs the sweeper until no object is in flight, each pass after the pipeline went
// idle (so every lease is stale and no backoff is waited for): objects resumed finish or are released
// again, and after SWEEP_MAX_ATTEMPTS the sweeper fails them with the reason. It returns when nothing
// is in flight or ctx ends.
func (c *Cloud) sweepUntilSettled(ctx context.Context) error {
	// A pass that moves nothing (the sweeper's own writes fail, say) is tried a few times, then the run
	// ends: the summary names what is still in flight, and the next run (or the schedule) goes on.
	const maxIdlePasses = 5
	for idlePasses := 0; idlePasses < maxIdlePasses; {
		n, err := c.inflight(ctx)
		if err != nil {
			return fmt.Errorf("listing in-flight objects: %w", err)
		}
		if n == 0 {
			return nil
		}
		res, err := c.Sweep(ctx, !c.Busy())
		if err != nil {
			return err
		}
		acted := false
		for _, o := range res.Objects {
			acted = acted || o.Outcome == ingest.OutcomeResumed || o.Outcome == ingest.OutcomeFailed
		}
		if !acted {
			idlePasses++
			select { // waiting for a backoff, or for an object still owned by a live invocation
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		if err := c.WaitIdle(ctx); err != nil {
			return err
		}
	}
	return nil
}
