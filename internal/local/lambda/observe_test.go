package lambda

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// TestObserverSeesEveryExecution: a success, a function error, a timeout, and an asynchronous event
// retried under the same request id.
func TestObserverSeesEveryExecution(t *testing.T) {
	var mu sync.Mutex
	var seen []Invocation
	r := newRuntime(t, Config{Observer: func(i Invocation) {
		mu.Lock()
		defer mu.Unlock()
		i.Payload = append([]byte(nil), i.Payload...)
		seen = append(seen, i)
	}})
	register(t, r, "ok", Function{Handler: handlerFunc(func(context.Context, []byte) ([]byte, error) { return []byte(`{}`), nil })})
	register(t, r, "bad", Function{Handler: handlerFunc(func(context.Context, []byte) ([]byte, error) { return nil, errors.New("boom") }),
		MaximumRetryAttempts: ptr(1)})
	register(t, r, "slow", Function{Timeout: 20 * time.Millisecond, Handler: handlerFunc(func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})})
	ctx := context.Background()
	for _, name := range []string{"ok", "bad", "slow"} {
		if _, err := r.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(`{"n":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("bad"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"async":1}`)}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if err := r.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 5 {
		t.Fatalf("%d executions observed, want 5 (ok, bad, slow, and the async event twice): %+v", len(seen), seen)
	}
	byFn := map[string][]Invocation{}
	for _, i := range seen {
		if i.RequestID == "" || i.End.Before(i.Start) {
			t.Errorf("invocation %+v", i)
		}
		byFn[i.Function] = append(byFn[i.Function], i)
	}
	if i := byFn["ok"]; len(i) != 1 || i[0].ErrorType != "" || string(i[0].Payload) != `{"n":1}` {
		t.Errorf("ok: %+v", i)
	}
	if i := byFn["slow"]; len(i) != 1 || i[0].ErrorType != "Sandbox.Timedout" {
		t.Errorf("slow: %+v", i)
	}
	bad := byFn["bad"]
	if len(bad) != 3 || bad[0].ErrorType == "" || bad[1].RequestID != bad[2].RequestID || bad[0].RequestID == bad[1].RequestID {
		t.Errorf("bad: %+v; want one sync execution and the async event twice under one request id", bad)
	}
}
