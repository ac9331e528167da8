package obs

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/samtemplate"
	"github.com/taxistream/taxistream/internal/testenv"
)

// emitted scans the handlers' sources for the EMF metrics each function emits: the Function dimension
// its package passes to NewMetrics, and the literal names given to Add and Set.
func emitted(t *testing.T) map[string]map[string]bool {
	t.Helper()
	fnRE := regexp.MustCompile(`"Function":\s*"([a-z]+)"`)
	nameRE := regexp.MustCompile(`\.(?:Add|Set)\("([A-Za-z][A-Za-z0-9_]*)"`)
	out := map[string]map[string]bool{}
	for _, pkg := range []string{"ingest", "process", "replay", "compact"} {
		files, err := filepath.Glob(filepath.Join(testenv.Root(t), "internal", pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		fn, names := "", map[string]bool{}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if m := fnRE.FindSubmatch(src); m != nil {
				fn = string(m[1])
			}
			for _, m := range nameRE.FindAllSubmatch(src, -1) {
				names[string(m[1])] = true
			}
		}
		if fn == "" || len(names) < 3 {
			t.Fatalf("internal/%s: found Function %q and %d metric names; the scan is broken", pkg, fn, len(names))
		}
		out[fn] = names
	}
	return out
}

type widget struct {
	Type       string `json:"type"`
	X, Y       int
	Width      int `json:"width"`
	Height     int `json:"height"`
	Properties struct {
		Title   string  `json:"title"`
		Metrics [][]any `json:"metrics"`
		Alarms  []string
	} `json:"properties"`
}

// metricRef is one metric of a widget.
type metricRef struct {
	namespace, name string
	dims            map[string]string
}

func dashboard(t *testing.T) (*samtemplate.Template, []widget, *samtemplate.Settings) {
	t.Helper()
	tpl, err := samtemplate.Load(filepath.Join(testenv.Root(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := tpl.Resource("Dashboard")
	if !ok || r.Type != "AWS::CloudWatch::Dashboard" {
		t.Fatal("template.yaml has no AWS::CloudWatch::Dashboard named Dashboard")
	}
	body, err := tpl.Evaluate(r.Properties["DashboardBody"], nil, samtemplate.Resolver{})
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Widgets []widget `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(fmt.Sprint(body)), &d); err != nil {
		t.Fatalf("DashboardBody is not JSON: %v", err)
	}
	s, err := tpl.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	return tpl, d.Widgets, s
}

func metricsOf(t *testing.T, w widget) []metricRef {
	t.Helper()
	var out []metricRef
	for _, m := range w.Properties.Metrics {
		var parts []string
		for _, x := range m {
			if s, ok := x.(string); ok {
				parts = append(parts, s)
			}
		}
		if len(parts) < 2 || len(parts)%2 != 0 {
			t.Errorf("widget %q: metric %v: want namespace, name and dimension pairs", w.Properties.Title, m)
			continue
		}
		ref := metricRef{namespace: parts[0], name: parts[1], dims: map[string]string{}}
		for i := 2; i < len(parts); i += 2 {
			ref.dims[parts[i]] = parts[i+1]
		}
		out = append(out, ref)
	}
	return out
}

// TestDashboardShowsWhatIsEmitted: every custom metric on the dashboard is one a function emits (EMF,
// with its Function dimension); every AWS metric names a resource of the stack by the right
// dimension; the alarm widget shows every alarm; and the metrics the pipeline is watched by are all there.
func TestDashboardShowsWhatIsEmitted(t *testing.T) {
	tpl, widgets, s := dashboard(t)
	emits := emitted(t)
	ns := s.Parameters["MetricsNamespace"]
	awsDims := map[string]string{"AWS/Lambda": "FunctionName", "AWS/Kinesis": "StreamName", "AWS/SQS": "QueueName", "AWS/Firehose": "DeliveryStreamName"}
	names := map[string]bool{} // the resources the stack names, by their physical names
	for _, f := range s.Functions {
		names[f.Name] = true
	}
	names[s.Stream.Name] = true
	names[s.Firehose.Name] = true
	for _, q := range s.Queues {
		names[q.Name] = true
	}
	shown := map[string]bool{}
	var alarms []string
	for _, w := range widgets {
		if w.Width <= 0 || w.Height <= 0 || w.X+w.Width > 24 {
			t.Errorf("widget %q: position %d,%d size %dx%d outside the 24-column grid", w.Properties.Title, w.X, w.Y, w.Width, w.Height)
		}
		alarms = append(alarms, w.Properties.Alarms...)
		for _, m := range metricsOf(t, w) {
			shown[m.namespace+" "+m.name] = true
			switch m.namespace {
			case ns:
				fn := m.dims["Function"]
				if len(m.dims) != 1 || !emits[fn][m.name] {
					t.Errorf("widget %q: %s %s %v is not an EMF metric any function emits with that Function dimension", w.Properties.Title, m.namespace, m.name, m.dims)
				}
			default:
				dim, ok := awsDims[m.namespace]
				if !ok || len(m.dims) != 1 || !names[m.dims[dim]] {
					t.Errorf("widget %q: %s %s %v does not name a resource of the stack by %s", w.Properties.Title, m.namespace, m.name, m.dims, dim)
				}
			}
		}
	}
	var want []string
	for _, id := range tpl.ResourceIDs("AWS::CloudWatch::Alarm") {
		// An alarm without AlarmName gets a name CloudFormation makes up; the resolver's default
		// physical name (<stack>-<logical id>) stands for it.
		want = append(want, "arn:aws:cloudwatch:us-east-1:000000000000:alarm:taxistream-"+id)
	}
	sort.Strings(alarms)
	if len(want) == 0 || !slices.Equal(alarms, want) {
		t.Errorf("alarm widget shows %v, want every alarm of the template %v", alarms, want)
	}
	// What the pipeline is watched by (issue 16).
	for _, m := range []string{
		ns + " RowsRead", ns + " RecordsSent", ns + " RowsRejected", ns + " Throttled", ns + " Retries",
		"AWS/Kinesis PutRecords.Latency", "AWS/Lambda IteratorAge", ns + " TripsValid", ns + " TripsInvalid",
		ns + " ParquetObjectsWritten", ns + " CompactionRuns", "AWS/Lambda Errors", "AWS/SQS ApproximateNumberOfMessagesVisible",
	} {
		if !shown[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
}
