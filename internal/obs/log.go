// Package obs holds the logging and metrics conventions of every function: JSON log/slog lines and
// CloudWatch Embedded Metric Format (EMF) lines.
package obs

import (
	"io"
	"log/slog"
	"strings"
)

// NewLogger returns a JSON slog logger writing to w. level is a Lambda log level name
// (TRACE, DEBUG, INFO, WARN, ERROR, FATAL; case-insensitive); unknown or empty means INFO.
// On Lambda, AWS_LAMBDA_LOG_LEVEL (set by LoggingConfig.ApplicationLogLevel) is the level to pass.
func NewLogger(w io.Writer, level string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: ParseLevel(level)}))
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
