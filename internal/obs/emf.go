package obs

import (
	"encoding/json"
	"io"
	"sort"
	"sync"
	"time"
)

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
		now:        time.Now,
	}
}

// SetClock replaces the clock (tests).
func (m *Metrics) SetClock(now func() time.Time) { m.now = now }

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

// Write writes the EMF line to w (followed by '\n'). Nothing is written when no metric was set.
func (m *Metrics) Write(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.values) == 0 {
		return nil
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
	line["_aws"] = map[string]any{
		"Timestamp": m.now().UnixMilli(),
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
