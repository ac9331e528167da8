// Command process is ProcessFunction (DESIGN.md, process contract): the Kinesis-triggered consumer.
// Wiring only; the logic is internal/process. JSON logs go to stderr, EMF metric lines to stdout
// (as in functions/ingest).
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/obs"
	"github.com/taxistream/taxistream/internal/process"
)

func main() {
	cfg, err := config.Load(os.Getenv, config.Process)
	log := obs.NewFormatLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		log.Error("loading config", "error", err.Error())
		os.Exit(1)
	}
	ctx := context.Background()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("loading aws config", "error", err.Error())
		os.Exit(1)
	}
	h, err := process.New(ctx, cfg, process.Deps{S3: s3.NewFromConfig(awsCfg), Log: log, Metrics: os.Stdout})
	if err != nil {
		log.Error("starting process function", "error", err.Error())
		os.Exit(1)
	}
	// h is a lambda.Handler: its Invoke decodes the event itself, faster than the runtime's
	// reflection-based encoding/json (Handle does the work either way).
	lambda.Start(h)
}
