package local

import (
	"errors"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/taxistream/taxistream/internal/config"
)

// newReplay builds ReplayFunction's handler (wired once internal/replay lands).
func newReplay(cfg config.Config, c *Cloud, log *slog.Logger) (lambda.Handler, error) {
	return lambda.NewHandler(func() error { return errors.New("replay: not built yet") }), nil
}
