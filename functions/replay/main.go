// Command replay is ReplayFunction (DESIGN.md, replay contract): it hands every object of a prefix of
// raw/ to IngestFunction with a replay id. Wiring only; the logic is internal/replay. JSON logs go to
// stderr, EMF metric lines to stdout (as in functions/ingest).
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/obs"
	"github.com/taxistream/taxistream/internal/replay"
)

func main() {
	cfg, err := config.Load(os.Getenv, config.Replay)
	log := obs.NewFormatLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		log.Error("loading config", "error", err.Error())
		os.Exit(1)
	}
	ctx := context.Background()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("loading AWS config", "error", err.Error())
		os.Exit(1)
	}
	h, err := replay.New(ctx, cfg, replay.Deps{
		S3:      s3.NewFromConfig(awsCfg),
		Lambda:  awslambda.NewFromConfig(awsCfg),
		Log:     log,
		Metrics: os.Stdout,
	})
	if err != nil {
		log.Error("building handler", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h)
}
