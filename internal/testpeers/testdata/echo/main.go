// Command echo is a minimal Lambda function for the Runtime Interface Emulator harness tests
// (internal/testpeers). It answers {"echo": <input echo>, "env": {NAME: value}, "function_name": ...}
// and fails with the message of "fail" when set.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type request struct {
	Echo    any      `json:"echo"`
	Env     []string `json:"env"`
	Fail    string   `json:"fail"`
	SleepMS int      `json:"sleep_ms"`
}

type response struct {
	Echo         any               `json:"echo"`
	Env          map[string]string `json:"env,omitempty"`
	FunctionName string            `json:"function_name"`
	HasDeadline  bool              `json:"has_deadline"`
	RequestID    string            `json:"request_id"`
}

func handle(ctx context.Context, req request) (response, error) {
	fmt.Println("echo: stdout line")
	fmt.Fprintln(os.Stderr, "echo: stderr line")
	if req.SleepMS > 0 {
		time.Sleep(time.Duration(req.SleepMS) * time.Millisecond)
	}
	if req.Fail != "" {
		return response{}, errors.New(req.Fail)
	}
	resp := response{Echo: req.Echo, FunctionName: lambdacontext.FunctionName, Env: map[string]string{}}
	_, resp.HasDeadline = ctx.Deadline()
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		resp.RequestID = lc.AwsRequestID
	}
	for _, name := range req.Env {
		resp.Env[name] = os.Getenv(name)
	}
	return resp, nil
}

func main() { lambda.Start(handle) }
