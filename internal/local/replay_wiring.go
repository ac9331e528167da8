package local

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/replay"
)

// newReplay builds ReplayFunction's handler on the local bucket (or the function's faulty view of it)
// and the local Lambda runtime, which it invokes IngestFunction through.
func newReplay(ctx context.Context, cfg config.Config, c *Cloud, s3 replay.Lister, log *slog.Logger) (lambda.Handler, error) {
	h, err := replay.New(ctx, cfg, replay.Deps{S3: s3, Lambda: c.Lambda, Log: log, Metrics: c.logs})
	if err != nil {
		return nil, err
	}
	return lambda.NewHandler(h.Handle), nil
}
