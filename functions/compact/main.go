// Command compact is CompactFunction: on its EventBridge schedule (or a manual invoke with a date range)
// it merges the small Parquet objects of each processed/trips/pickup_date= partition into large sorted
// files without duplicates. Wiring only; the logic is internal/compact. JSON logs go to stderr, EMF
// metric lines to stdout (as in functions/ingest).
package main

import (
	"context"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/compact"
	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/obs"
)

func main() {
	cfg, err := config.Load(os.Getenv, config.Compact)
	log := obs.NewFormatLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		log.Error("loading config", "error", err.Error())
		os.Exit(1)
	}
	// The merge is memory-bounded by design; a soft limit below the function's memory makes the
	// garbage collector work harder instead of the function running out of memory.
	if mb, err := strconv.Atoi(os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")); err == nil && mb > 0 {
		debug.SetMemoryLimit(int64(mb) << 20 * 8 / 10)
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Error("loading AWS config", "error", err.Error())
		os.Exit(1)
	}
	h, err := compact.New(context.Background(), cfg, compact.Deps{
		S3:      s3.NewFromConfig(awsCfg),
		Lambda:  awslambda.NewFromConfig(awsCfg),
		Log:     log,
		Metrics: os.Stdout,
	})
	if err != nil {
		log.Error("building handler", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
