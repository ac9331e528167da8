package esm

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
)

// TestObserverSeesEveryBatch: a partial failure, its retry, a function error and the batch that
// follows, with sizes, outcomes, retry flags and iterator ages from the injected clock.
func TestObserverSeesEveryBatch(t *testing.T) {
	e := setup(t, 1, Config{})
	var seen []Batch
	e.start(t, Config{BatchSize: 10, FunctionResponseTypes: []string{ReportBatchItemFailures}, MaximumRetryAttempts: Infinite,
		Observer: func(b Batch) { seen = append(seen, b) }})
	e.put(t, "r", 10)
	e.c.Advance(3 * time.Second) // the records are 3 s old when read
	calls := 0
	e.f.handle = func(ev events.KinesisTimeWindowEvent) (any, error) {
		calls++
		switch calls {
		case 1:
			return failOn(e.seqs[6])(ev)
		case 2:
			return nil, errors.New("boom")
		}
		return failOn()(ev)
	}
	e.poll(t, 3)
	type row struct {
		Records int
		Outcome string
		Retry   bool
		Age     time.Duration
	}
	var got []row
	for _, b := range seen {
		if b.Shard != "shardId-000000000000" || b.End.Before(b.Start) {
			t.Errorf("batch %+v", b)
		}
		got = append(got, row{b.Records, b.Outcome, b.Retry, b.IteratorAge})
	}
	want := []row{{10, OutcomePartial, false, 3 * time.Second}, {4, OutcomeFunctionError, true, 3 * time.Second}, {4, OutcomeOK, true, 3 * time.Second}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("observed batches (-want +got):\n%s", diff)
	}
}
