// Package obs holds the logging and metrics conventions of every function: JSON log/slog lines and
// CloudWatch Embedded Metric Format (EMF) lines.
package obs

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Lambda's names for the keys of a structured log line (what the Lambda JSON log format writes for the
// platform's own lines, and what CloudWatch Logs Insights queries of Lambda logs use).
const (
	KeyTimestamp = "timestamp"
	KeyMessage   = "message"
	KeyRequestID = "requestId"
)

// NewLogger returns a JSON logger writing to w: NewFormatLogger(w, level, "JSON").
func NewLogger(w io.Writer, level string) *slog.Logger { return NewFormatLogger(w, level, "JSON") }

// NewFormatLogger returns the functions' slog logger writing to w, in Lambda's shape:
//
//   - format is AWS_LAMBDA_LOG_FORMAT (the template's LoggingConfig.LogFormat): "Text" (any case)
//     writes slog's key=value lines, anything else JSON lines;
//   - the keys are Lambda's: timestamp, level, message (not slog's time and msg);
//   - every record logged with a context of an invocation (lambdacontext.FromContext) carries the
//     invocation's request id as requestId, so all the lines of one invocation can be found together;
//   - level is a Lambda log level name (AWS_LAMBDA_LOG_LEVEL, see ParseLevel).
func NewFormatLogger(w io.Writer, level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: ParseLevel(level), ReplaceAttr: lambdaKeys}
	var h slog.Handler
	if strings.EqualFold(strings.TrimSpace(format), "text") {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(requestIDHandler{h})
}

// lambdaKeys renames slog's top-level time and msg keys to Lambda's.
func lambdaKeys(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		a.Key = KeyTimestamp
	case slog.MessageKey:
		a.Key = KeyMessage
	}
	return a
}

// requestIDHandler adds the request id of the invocation in the record's context.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		r.AddAttrs(slog.String(KeyRequestID, lc.AwsRequestID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// ParseLevel maps a Lambda log level name to a slog level.
func ParseLevel(s string) slog.Level {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug
	case "WARN", "WARNING":
		return slog.LevelWarn
	case "ERROR", "FATAL":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
