package replay

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/taxistream/taxistream/internal/testpeers"
)

// The handler with the real SDK S3 client, listing gofakes3 over HTTP (paginator, StartAfter, prefix,
// keys that need escaping), and a recording Lambda fake.
func TestReplayAgainstGofakes3(t *testing.T) {
	fake := testpeers.StartS3(t)
	fake.CreateBucket(t, testBucket)
	var want []string
	for i := range 50 {
		k := fmt.Sprintf("raw/2019/yellow tripdata+%02d.csv", i) // space and plus: escaped on the wire
		etag := fake.Put(t, testBucket, k, []byte(fmt.Sprintf("col\n%d\n", i)))
		if etag == "" {
			t.Fatalf("no ETag for %s", k)
		}
		want = append(want, k)
	}
	fake.Put(t, testBucket, "raw/2019/README.md", []byte("not data"))
	fake.Put(t, testBucket, "raw/2020/green.csv", []byte("x"))
	fake.Put(t, testBucket, "state/ingest/x.json", []byte("{}"))

	rec := &recorder{}
	cfg := testConfig()
	cfg.DeadlineMargin = time.Second
	h, err := New(context.Background(), cfg, Deps{
		S3: fake.Client,
		Lambda: &fakeLambda{invoke: func(_ context.Context, in *lambda.InvokeInput) (*lambda.InvokeOutput, error) {
			rec.record(t, in)
			return &lambda.InvokeOutput{StatusCode: 202}, nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.pageSize = 7
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	resp, err := h.Handle(ctx, []byte(`{"prefix":"raw/2019/","replay_id":"r-s3"}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Objects != 50 || resp.Skipped != 1 || !resp.Complete || resp.LastKey != want[49] {
		t.Errorf("response %+v, want 50 objects, 1 skipped, complete, last key %s", resp, want[49])
	}
	got := rec.keysHandedOff()
	for _, k := range want {
		if got[k] != 1 {
			t.Errorf("%s handed off %d times, want once", k, got[k])
		}
	}
	for _, ev := range rec.handOffs {
		if len(ev.ETag) != 32 || ev.Size < 4 {
			t.Errorf("hand-off %+v: want the object's unquoted MD5 ETag and size", ev)
			break
		}
	}
	var lists int
	for _, r := range fake.Requests("/" + testBucket) {
		if r.Query.Get("list-type") == "2" {
			lists++
		}
	}
	if lists != 8 { // 51 keys under raw/2019/, 7 a page
		t.Errorf("%d ListObjectsV2 requests, want 8", lists)
	}

	// Resuming after a key, as a continuation does.
	rec2 := &recorder{}
	h.lambda = &fakeLambda{invoke: func(_ context.Context, in *lambda.InvokeInput) (*lambda.InvokeOutput, error) {
		rec2.record(t, in)
		return &lambda.InvokeOutput{StatusCode: 202}, nil
	}}
	resp, err = h.Handle(ctx, []byte(`{"start_after":"`+want[44]+`","replay_id":"r-s3"}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Objects != 6 { // 45..49 and raw/2020/green.csv
		t.Errorf("after %s: %d objects, want 6", want[44], resp.Objects)
	}
	got = rec2.keysHandedOff()
	for _, k := range append(want[45:], "raw/2020/green.csv") {
		if got[k] != 1 {
			t.Errorf("after %s: %s handed off %d times, want once", want[44], k, got[k])
		}
	}
}
