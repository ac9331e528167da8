// Package config reads the functions' environment once, at start-up, and reports every problem at once.
package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Function names the function whose settings are being loaded; it decides what is required.
type Function string

// The functions of the stack.
const (
	Ingest  Function = "ingest"
	Process Function = "process"
	Replay  Function = "replay"
	Compact Function = "compact"
)

// Config is every setting of every function; template.yaml sets them (Globals and per function).
type Config struct {
	Bucket            string        // BUCKET_NAME (all)
	Stream            string        // STREAM_NAME (ingest): stream name or ARN
	PartitionKeyField string        // PARTITION_KEY_FIELD (ingest), default pu_location_id; "random" for random keys
	Aggregate         bool          // KPL_AGGREGATION (ingest), default true
	ShardRouting      string        // SHARD_ROUTING (ingest): balanced (default) or key; see producer.Routing
	DeadlineMargin    time.Duration // DEADLINE_MARGIN (ingest, replay), default 30s
	MaxContinuations  int           // MAX_CONTINUATIONS (ingest, replay), default 200
	FunctionName      string        // AWS_LAMBDA_FUNCTION_NAME (set by Lambda): the function itself, for continuations
	IngestFunction    string        // INGEST_FUNCTION_NAME (replay)
	MaxInFlight       int           // REPLAY_MAX_IN_FLIGHT (replay), default 4: ingest invocations started per replay invocation at once
	ZoneLookup        string        // ZONE_LOOKUP (process): "s3://bucket/key", a key in BUCKET_NAME, or a file path; "" for none
	SweepGrace        time.Duration // SWEEP_GRACE (ingest), default 15m: a released object is left to Lambda's own retries this long before the sweeper resumes it; also the first backoff
	SweepMaxAttempts  int           // SWEEP_MAX_ATTEMPTS (ingest), default 5: sweeper attempts on one object before it is marked failed
	ZoneShapes        string        // ZONE_SHAPES (process): TLC's taxi_zones.zip or a GeoJSON, located like ZONE_LOOKUP; "" for none
	CompactTargetMB   int           // COMPACT_TARGET_FILE_MB (compact), default 128: size of the files a compaction writes
	MetricsNamespace  string        // METRICS_NAMESPACE, default taxistream
	LogLevel          string        // AWS_LAMBDA_LOG_LEVEL (LoggingConfig), else LOG_LEVEL, default INFO
	LogFormat         string        // AWS_LAMBDA_LOG_FORMAT (LoggingConfig): JSON (the default here) or Text
}

// Load reads the settings of fn from getenv (os.Getenv in main) and returns every problem joined. It is
// the one place that checks settings: the handlers' New take its Config as valid.
func Load(getenv func(string) string, fn Function) (Config, error) {
	var errs []error
	c := Config{
		Bucket:            strings.TrimSpace(getenv("BUCKET_NAME")),
		Stream:            strings.TrimSpace(getenv("STREAM_NAME")),
		PartitionKeyField: orDefault(getenv("PARTITION_KEY_FIELD"), "pu_location_id"),
		ShardRouting:      orDefault(getenv("SHARD_ROUTING"), "balanced"),
		FunctionName:      strings.TrimSpace(getenv("AWS_LAMBDA_FUNCTION_NAME")),
		IngestFunction:    strings.TrimSpace(getenv("INGEST_FUNCTION_NAME")),
		ZoneLookup:        strings.TrimSpace(getenv("ZONE_LOOKUP")),
		ZoneShapes:        strings.TrimSpace(getenv("ZONE_SHAPES")),
		MetricsNamespace:  orDefault(getenv("METRICS_NAMESPACE"), "taxistream"),
		LogLevel:          orDefault(getenv("AWS_LAMBDA_LOG_LEVEL"), orDefault(getenv("LOG_LEVEL"), "INFO")),
		LogFormat:         orDefault(getenv("AWS_LAMBDA_LOG_FORMAT"), "JSON"),
	}
	var err error
	if c.Aggregate, err = parseBool(getenv, "KPL_AGGREGATION", true); err != nil {
		errs = append(errs, err)
	}
	if c.DeadlineMargin, err = parseDuration(getenv, "DEADLINE_MARGIN", 30*time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.MaxContinuations, err = parseInt(getenv, "MAX_CONTINUATIONS", 200, 0); err != nil {
		errs = append(errs, err)
	}
	if c.MaxInFlight, err = parseInt(getenv, "REPLAY_MAX_IN_FLIGHT", 4, 1); err != nil {
		errs = append(errs, err)
	}
	if c.SweepGrace, err = parseDuration(getenv, "SWEEP_GRACE", 15*time.Minute); err != nil {
		errs = append(errs, err)
	}
	if c.SweepMaxAttempts, err = parseInt(getenv, "SWEEP_MAX_ATTEMPTS", 5, 0); err != nil {
		errs = append(errs, err)
	}
	if c.ShardRouting != "balanced" && c.ShardRouting != "key" {
		errs = append(errs, fmt.Errorf("SHARD_ROUTING=%q: want balanced or key", c.ShardRouting))
	}
	if c.CompactTargetMB, err = parseInt(getenv, "COMPACT_TARGET_FILE_MB", 128, 1); err != nil {
		errs = append(errs, err)
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("BUCKET_NAME is required"))
	}
	// Ingest, replay and compact invoke themselves with a continuation: they need their own name (Lambda sets it).
	if (fn == Ingest || fn == Replay || fn == Compact) && c.FunctionName == "" {
		errs = append(errs, errors.New("AWS_LAMBDA_FUNCTION_NAME is required (continuations invoke the function itself)"))
	}
	switch fn {
	case Ingest:
		if c.Stream == "" {
			errs = append(errs, errors.New("STREAM_NAME is required"))
		}
	case Replay:
		if c.IngestFunction == "" {
			errs = append(errs, errors.New("INGEST_FUNCTION_NAME is required"))
		}
	case Process, Compact:
	default:
		errs = append(errs, fmt.Errorf("unknown function %q", fn))
	}
	return c, errors.Join(errs...)
}

func orDefault(v, def string) string {
	if v = strings.TrimSpace(v); v == "" {
		return def
	}
	return v
}

func parseBool(getenv func(string) string, name string, def bool) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

func parseDuration(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return def, fmt.Errorf("%s=%q: want a non-negative Go duration such as 30s", name, v)
	}
	return d, nil
}

func parseInt(getenv func(string) string, name string, def, min int) (int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		return def, fmt.Errorf("%s=%q: want an integer >= %d", name, v, min)
	}
	return n, nil
}
