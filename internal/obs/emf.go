package obs

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Lambda's log-level filtering (LoggingConfig with LogFormat JSON and an ApplicationLogLevel) reads the
// "level" key of each JSON line a function writes and drops the lines below the configured level; a
// line without a valid "level", or without a valid RFC 3339 "timestamp", counts as INFO. An EMF line
// dropped that way takes its metrics with it, so every line carries both keys, with the level INFO or
// the application log level when that is stricter (WARN, ERROR, FATAL): it passes any filter.
// https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html

// lambdaLogLevel is the application log level Lambda filters this process's output at (set by Lambda
// from LoggingConfig.ApplicationLogLevel; empty outside Lambda and when not filtering).
var lambdaLogLevel = os.Getenv("AWS_LAMBDA_LOG_LEVEL")

// Keys of the EMF line besides the metrics, dimensions and properties.
const (
	levelKey     = "level"
	timestampKey = "timestamp"
)

// EMFLevel is the "level" an EMF line carries when Lambda filters at the application log level
// configured: INFO, or the configured level when it is stricter.
func EMFLevel(configured string) string {
	switch strings.ToUpper(strings.TrimSpace(configured)) {
	case "WARN", "WARNING":
		return "WARN"
	case "ERROR":
		return "ERROR"
	case "FATAL":
		return "FATAL"
	}
	return "INFO"
}

// Unit is a CloudWatch metric unit.
type Unit string

// Units used by taxistream.
const (
	Count        Unit = "Count"
	Bytes        Unit = "Bytes"
	Milliseconds Unit = "Milliseconds"
	Seconds      Unit = "Seconds"
	CountPerSec  Unit = "Count/Second"
	BytesPerSec  Unit = "Bytes/Second"
	Percent      Unit = "Percent"
	NoUnit       Unit = "None"
)

// Metrics collects the metrics of one invocation and writes them as one CloudWatch Embedded Metric
// Format line (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
// It is safe for concurrent use.
type Metrics struct {
	mu         sync.Mutex
	namespace  string
	dimensions map[string]string
	values     map[string]float64
	units      map[string]Unit
	properties map[string]any
	level      string
	now        func() time.Time
}

// NewMetrics returns an empty metric set with the given namespace and dimensions (e.g. {"Function": "ingest"}).
func NewMetrics(namespace string, dimensions map[string]string) *Metrics {
	return &Metrics{
		namespace:  namespace,
		dimensions: dimensions,
		values:     map[string]float64{},
		units:      map[string]Unit{},
		properties: map[string]any{},
		level:      EMFLevel(lambdaLogLevel),
		now:        time.Now,
	}
}

// SetClock replaces the clock (tests).
func (m *Metrics) SetClock(now func() time.Time) { m.now = now }

// SetLogLevel sets the application log level the line must pass (default: AWS_LAMBDA_LOG_LEVEL).
func (m *Metrics) SetLogLevel(configured string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.level = EMFLevel(configured)
}

// Add adds v to the metric name.
func (m *Metrics) Add(name string, unit Unit, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.values[name] += v
	m.units[name] = unit
}

// Set sets the metric name to v.
func (m *Metrics) Set(name string, unit Unit, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.values[name] = v
	m.units[name] = unit
}

// Property adds a non-metric field to the line (searchable in CloudWatch Logs Insights).
func (m *Metrics) Property(key string, v any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.properties[key] = v
}

// Value returns the current value of a metric (tests and summaries).
func (m *Metrics) Value(name string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.values[name]
}

// Write writes the EMF line to w (followed by '\n'). Nothing is written when no metric was set. A
// metric, dimension or property named "level", "timestamp" or "_aws" is an error (the line needs them).
func (m *Metrics) Write(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.values) == 0 {
		return nil
	}
	for _, k := range []string{levelKey, timestampKey, "_aws"} {
		_, metric := m.values[k]
		_, dim := m.dimensions[k]
		_, prop := m.properties[k]
		if metric || dim || prop {
			return fmt.Errorf("writing EMF line: %q is a reserved key", k)
		}
	}
	names := make([]string, 0, len(m.values))
	for n := range m.values {
		names = append(names, n)
	}
	sort.Strings(names)
	type metricDef struct {
		Name string `json:"Name"`
		Unit Unit   `json:"Unit"`
	}
	defs := make([]metricDef, 0, len(names))
	for _, n := range names {
		defs = append(defs, metricDef{Name: n, Unit: m.units[n]})
	}
	dimKeys := make([]string, 0, len(m.dimensions))
	for k := range m.dimensions {
		dimKeys = append(dimKeys, k)
	}
	sort.Strings(dimKeys)
	line := map[string]any{}
	for k, v := range m.properties {
		line[k] = v
	}
	for k, v := range m.dimensions {
		line[k] = v
	}
	for _, n := range names {
		line[n] = m.values[n]
	}
	now := m.now()
	line[levelKey] = m.level
	line[timestampKey] = now.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	line["_aws"] = map[string]any{
		"Timestamp": now.UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  m.namespace,
			"Dimensions": [][]string{dimKeys},
			"Metrics":    defs,
		}},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}
