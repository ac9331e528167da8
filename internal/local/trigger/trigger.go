// Package trigger is the local cloud's S3 → Lambda notification: it receives the local bucket's
// ObjectCreated events, applies the bucket's notification rules (the template's S3 event filters) and
// invokes the target function asynchronously with the S3 event JSON, built exactly as S3 builds it.
//
// Retries of a failing function are the Lambda runtime's business (S3 invokes asynchronously, so Lambda's
// async retry policy applies); the trigger only counts deliveries the runtime refused.
package trigger

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/taxistream/taxistream/internal/local/bucket"
)

// invoker is the Lambda API the trigger calls; *lambda.Client and the local runtime both fit.
type invoker interface {
	Invoke(context.Context, *awslambda.InvokeInput, ...func(*awslambda.Options)) (*awslambda.InvokeOutput, error)
}

var _ invoker = (*awslambda.Client)(nil)

// Rule is one notification configuration of the bucket, as a SAM S3 event declares it:
//
//	Events: s3:ObjectCreated:*
//	Filter: {S3Key: {Rules: [{Name: prefix, Value: raw/}, {Name: suffix, Value: .csv}]}}
type Rule struct {
	ID       string   // configurationId in the event; "<Function>-<index>" when empty
	Function string   // the function to invoke (name or ARN)
	Events   []string // e.g. "s3:ObjectCreated:*", "s3:ObjectCreated:Put"
	Prefix   string   // the key must start with Prefix (case-sensitive)
	Suffix   string   // ... and end with Suffix (case-sensitive)
}

// Config configures a Trigger.
type Config struct {
	Bucket  string // the bucket's name
	Region  string // "us-east-1" when empty
	OwnerID string // the bucket owner's canonical id (ownerIdentity.principalId); "LOCALOWNER" when empty
	// PrincipalID is the requester (userIdentity.principalId); "AWS:LOCAL" when empty.
	PrincipalID string
	// SourceIP is requestParameters.sourceIPAddress; "127.0.0.1" when empty.
	SourceIP string
	Rules    []Rule
	Logger   *slog.Logger // slog.Default() when nil
}

// Stats are the trigger's counters.
type Stats struct {
	Received int64 // ObjectCreated events received from the bucket
	Matched  int64 // (event, rule) pairs that matched
	Skipped  int64 // events that matched no rule
	Invoked  int64 // asynchronous invokes accepted
	Failed   int64 // invokes refused (payload too large, function missing, ...)
}

// Trigger delivers bucket events to functions. Handle is its bucket hook.
type Trigger struct {
	cfg   Config
	log   *slog.Logger
	inv   invoker
	stats struct{ received, matched, skipped, invoked, failed atomic.Int64 }
}

// New validates the rules like S3 does (S3 refuses two rules whose prefixes overlap, whose suffixes
// overlap and whose event types overlap, since an object would then match both) and returns a trigger
// that invokes through inv.
func New(cfg Config, inv invoker) (*Trigger, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("configuring s3 trigger: no bucket name")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.OwnerID == "" {
		cfg.OwnerID = "LOCALOWNER"
	}
	if cfg.PrincipalID == "" {
		cfg.PrincipalID = "AWS:LOCAL"
	}
	if cfg.SourceIP == "" {
		cfg.SourceIP = "127.0.0.1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Rules = append([]Rule(nil), cfg.Rules...)
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if r.Function == "" {
			return nil, fmt.Errorf("configuring s3 trigger: rule %d has no function", i)
		}
		if len(r.Events) == 0 {
			return nil, fmt.Errorf("configuring s3 trigger: rule %d has no events", i)
		}
		for _, e := range r.Events {
			if !strings.HasPrefix(e, "s3:") {
				return nil, fmt.Errorf("configuring s3 trigger: rule %d: event %q does not start with \"s3:\"", i, e)
			}
		}
		if r.ID == "" {
			r.ID = fmt.Sprintf("%s-%d", r.Function, i)
		}
	}
	for i := range cfg.Rules {
		for j := i + 1; j < len(cfg.Rules); j++ {
			a, b := cfg.Rules[i], cfg.Rules[j]
			if overlapPrefix(a.Prefix, b.Prefix) && overlapSuffix(a.Suffix, b.Suffix) && overlapEvents(a.Events, b.Events) {
				return nil, fmt.Errorf("configuring s3 trigger: rules %q and %q: configuration is ambiguously defined, cannot have overlapping suffixes in two rules if the prefixes are overlapping for the same event type", a.ID, b.ID)
			}
		}
	}
	return &Trigger{cfg: cfg, log: cfg.Logger, inv: inv}, nil
}

func overlapPrefix(a, b string) bool { return strings.HasPrefix(a, b) || strings.HasPrefix(b, a) }
func overlapSuffix(a, b string) bool { return strings.HasSuffix(a, b) || strings.HasSuffix(b, a) }

func overlapEvents(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if eventMatches(x, strings.TrimPrefix(y, "s3:")) || eventMatches(y, strings.TrimPrefix(x, "s3:")) {
				return true
			}
		}
	}
	return false
}

// eventMatches reports whether the configured event type (e.g. "s3:ObjectCreated:*") covers the
// event name of a notification (e.g. "ObjectCreated:Put").
func eventMatches(configured, name string) bool {
	c := strings.TrimPrefix(configured, "s3:")
	if base, ok := strings.CutSuffix(c, ":*"); ok {
		return strings.HasPrefix(name, base+":")
	}
	return c == name
}

// Matches returns the rules that apply to an event named name for key.
func (t *Trigger) Matches(name, key string) []Rule {
	var out []Rule
	for _, r := range t.cfg.Rules {
		if !strings.HasPrefix(key, r.Prefix) || !strings.HasSuffix(key, r.Suffix) {
			continue
		}
		for _, e := range r.Events {
			if eventMatches(e, name) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// Handle is the bucket hook (bucket.OnCreate(t.Handle)): it invokes every matching rule's function
// asynchronously with the event. Events of another bucket are ignored.
func (t *Trigger) Handle(ev bucket.ObjectCreated) {
	t.stats.received.Add(1)
	if ev.Bucket != t.cfg.Bucket {
		t.stats.skipped.Add(1)
		return
	}
	rules := t.Matches(ev.EventName, ev.Key)
	if len(rules) == 0 {
		t.stats.skipped.Add(1)
		return
	}
	for _, r := range rules {
		t.stats.matched.Add(1)
		payload, err := t.Event(r.ID, ev)
		if err != nil {
			t.stats.failed.Add(1)
			t.log.Error("building s3 event", "bucket", ev.Bucket, "key", ev.Key, "error", err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = t.inv.Invoke(ctx, &awslambda.InvokeInput{
			FunctionName:   &r.Function,
			InvocationType: types.InvocationTypeEvent,
			Payload:        payload,
		})
		cancel()
		if err != nil {
			t.stats.failed.Add(1)
			t.log.Error("invoking function for s3 event", "function", r.Function, "bucket", ev.Bucket, "key", ev.Key, "error", err)
			continue
		}
		t.stats.invoked.Add(1)
		t.log.Debug("s3 event delivered", "function", r.Function, "bucket", ev.Bucket, "key", ev.Key, "sequencer", ev.Sequencer)
	}
}

// Stats returns the trigger's counters.
func (t *Trigger) Stats() Stats {
	return Stats{
		Received: t.stats.received.Load(), Matched: t.stats.matched.Load(), Skipped: t.stats.skipped.Load(),
		Invoked: t.stats.invoked.Load(), Failed: t.stats.failed.Load(),
	}
}
