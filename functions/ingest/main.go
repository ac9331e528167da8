// Command ingest is IngestFunction (DESIGN.md, ingest contract): S3 object → Kinesis stream.
// Wiring only; the logic is internal/ingest. JSON logs go to stderr, EMF metric lines to stdout
// (Lambda sends both to CloudWatch Logs; keeping them apart keeps `sam local invoke` output readable).
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/ingest"
	"github.com/taxistream/taxistream/internal/obs"
	"github.com/taxistream/taxistream/internal/producer"
)

func main() {
	cfg, err := config.Load(os.Getenv, config.Ingest)
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
	h, err := ingest.New(ctx, cfg, ingest.Deps{
		S3:      s3.NewFromConfig(awsCfg),
		Kinesis: kinesis.NewFromConfig(awsCfg, producer.ClientOptions()),
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
