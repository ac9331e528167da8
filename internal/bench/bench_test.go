package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/testenv"
)

// childEnv makes the test binary act as the benchmark's child process (see TestMain).
const childEnv = "TAXISTREAM_BENCH_CHILD"

// TestMain lets the tests re-execute the test binary as a child, the way the CLI re-executes itself.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := ChildMain(context.Background(), os.Args[1:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestQuickRun runs the quick path of every section that needs nothing outside the module and checks
// that the JSON has sane fields. No timing assertions: the machine is shared.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmark's quick path (about 15 s); skipped with -short")
	}
	var log bytes.Buffer
	res, err := Run(context.Background(), Options{
		Quick:              true,
		SaturationDuration: time.Second,
		ConsumerTrips:      5000,
		Sections:           []string{SectionConversion, SectionSaturation, SectionIngest, SectionConsumer, SectionCost},
		TempDir:            t.TempDir(),
		RepoDir:            testenv.Root(t),
		Python:             "-", // the baseline is external
		Child:              []string{os.Args[0]},
		ChildEnv:           []string{childEnv + "=1"},
		Log:                &log,
	})
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, log.String())
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Machine struct {
			CPUs      int    `json:"cpus"`
			GoVersion string `json:"go_version"`
		} `json:"machine"`
		Conversion struct {
			Bytes  int64  `json:"bytes"`
			Rows   int64  `json:"rows"`
			PySkip string `json:"python_skipped"`
			Go     struct {
				MBps       float64 `json:"mb_per_s"`
				RowsPerSec float64 `json:"rows_per_s"`
				PeakRSS    int64   `json:"peak_rss_bytes"`
			} `json:"go"`
			GoRuns []json.RawMessage `json:"go_runs"`
		} `json:"conversion"`
		Saturation struct {
			Aggregated *SaturationResult `json:"aggregated"`
			Plain      *SaturationResult `json:"plain"`
		} `json:"saturation"`
		Ingest struct {
			Runs []IngestRun `json:"runs"`
		} `json:"ingest"`
		Consumer ConsumerResult `json:"consumer"`
		Targets  []Target       `json:"targets"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}

	if got.Machine.CPUs < 1 || !strings.HasPrefix(got.Machine.GoVersion, "go") {
		t.Errorf("machine = %+v, want CPUs and a Go version", got.Machine)
	}

	c := got.Conversion
	if c.Bytes < 1e6 || c.Rows < 1000 {
		t.Errorf("conversion input = %d bytes, %d rows; want about 2 MB", c.Bytes, c.Rows)
	}
	if c.Go.MBps <= 0 || c.Go.RowsPerSec <= 0 || c.Go.PeakRSS <= 0 {
		t.Errorf("conversion go = %+v, want positive throughput and RSS", c.Go)
	}
	if len(c.GoRuns) != 1 || c.PySkip == "" {
		t.Errorf("conversion: %d go runs, python skip %q; want 1 run and a reason for the skipped baseline", len(c.GoRuns), c.PySkip)
	}

	for _, s := range []*SaturationResult{got.Saturation.Aggregated, got.Saturation.Plain} {
		if s == nil {
			t.Fatal("saturation: a variant is missing")
		}
		if s.Seconds != 1 || s.Entries < 0 || s.ThrottledShare < 0 || s.ThrottledShare > 1 || s.Producer.UserRecords <= 0 {
			t.Errorf("saturation %+v: want 1 s measured, records written and a throttled share in [0, 1]", s)
		}
		// The stream enforces its limits: nothing stored can exceed them (whole windows are measured).
		if s.ByteShare > 1 || s.RecordShare > 1 {
			t.Errorf("saturation aggregate=%v: %.3f of the byte limit, %.3f of the record limit; the stream stored more than its limits", s.Aggregate, s.ByteShare, s.RecordShare)
		}
	}
	if a, p := got.Saturation.Aggregated, got.Saturation.Plain; a.Entries <= 0 || a.TripsPerSec <= p.TripsPerSec {
		t.Errorf("saturation: aggregated %.0f trips/s <= plain %.0f trips/s; aggregation should carry many trips per Kinesis record", a.TripsPerSec, p.TripsPerSec)
	}

	if len(got.Ingest.Runs) != 1 {
		t.Fatalf("ingest runs = %d, want 1", len(got.Ingest.Runs))
	}
	in := got.Ingest.Runs[0]
	if in.RowsRead != c.Rows || in.RecordsSent+in.Rejected != in.RowsRead || in.KinesisRecords <= 0 || in.PeakRSS <= 0 || in.RowsPerSec <= 0 ||
		in.ConvertPeakRSS <= 0 || in.DiscardPeakRSS <= 0 || in.DiscardRowsPerSec <= 0 {
		t.Errorf("ingest = %+v; want every generated row (%d) read, sent or rejected, Kinesis records and RSS", in, c.Rows)
	}

	co := got.Consumer
	if co.Skipped != "" || co.Trips < 5000 || co.Invokes <= 0 || co.OutputBytes <= 0 || co.TripsPerSec <= 0 || co.TripsPerCPU <= 0 {
		t.Errorf("consumer = %+v; want trips processed, invokes and Parquet written", co)
	}

	// The cost model, from this run's ingest and consumer: the template's memory, positive figures, and
	// IngestFunction bound by one shard's 1 MiB/s (a month's records take far longer to write than to
	// convert), the stream's shard-hours dominating a month.
	cs := res.Cost
	if cs == nil || cs.Skipped != "" || cs.IngestMemoryMB <= 0 || cs.ProcessMemoryMB <= 0 || cs.IngestCPUPerM <= 0 || cs.ProcessGBsPerM <= 0 || len(cs.Month) == 0 {
		t.Fatalf("cost = %+v", cs)
	}
	if m := cs.Month[0]; m.Shards != 1 || !m.IngestBoundByIO || m.StreamShare <= 0.5 || m.StreamShare > 1 ||
		math.Abs(m.IngestSeconds-cs.BytesPerM*MonthTrips/1e6/(1<<20)) > 1e-6*m.IngestSeconds {
		t.Errorf("cost, one shard: %+v", m)
	}

	names := map[string]string{}
	for _, tg := range got.Targets {
		names[tg.Name] = tg.Status
	}
	for _, n := range []string{"conversion vs workshop baseline", "one shard, aggregated", "flat memory, 1 GiB object, conversion path", "consumer per core", "bootstrap INIT"} {
		if _, ok := names[n]; !ok {
			t.Errorf("target %q missing from %v", n, names)
		}
	}
	if names["conversion vs workshop baseline"] != StatusNotMeasured || names["bootstrap INIT"] != StatusNotMeasured {
		t.Errorf("targets of skipped measurements = %v, want %q", names, StatusNotMeasured)
	}

	var table bytes.Buffer
	if err := WriteTable(&table, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"conversion", "shard", "ingest", "consumer", "TARGET"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestSectionsSkipWithReason checks that sections whose prerequisites are missing are skipped with a
// reason instead of failing the run.
func TestSectionsSkipWithReason(t *testing.T) {
	var log bytes.Buffer
	dir := t.TempDir()
	res, err := Run(context.Background(), Options{
		Quick:    true,
		Sections: []string{SectionConversion, SectionIngest, SectionConsumer, SectionColdStart},
		TempDir:  dir, RepoDir: dir, RIE: dir + "/no-rie",
		Log: &log, // no Child
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Conversion.Skipped == "" || res.Ingest.Skipped == "" || res.Consumer.Skipped == "" || res.ColdStart.Skipped == "" {
		t.Errorf("skips = %q, %q, %q, %q; want a reason for each", res.Conversion.Skipped, res.Ingest.Skipped, res.Consumer.Skipped, res.ColdStart.Skipped)
	}
	for _, f := range res.ColdStart.Functions {
		if f.Skipped == "" || len(f.InitMillis) != 0 {
			t.Errorf("cold start %s = %+v, want skipped", f.Function, f)
		}
	}
	if !strings.Contains(log.String(), "skipped:") {
		t.Errorf("log does not say what was skipped:\n%s", log.String())
	}
}

// TestQuickLocal runs the local (limits off) and shards (limits on) sections' quick path: whole local
// runs in child processes that reconcile, with per-shard shares that add up.
func TestQuickLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs whole local clouds (about 30 s); skipped with -short")
	}
	var log bytes.Buffer
	res, err := Run(context.Background(), Options{
		Quick: true, Sections: []string{SectionLocal, SectionShards}, Routings: []string{"balanced"},
		TempDir: t.TempDir(), RepoDir: testenv.Root(t),
		Child: []string{os.Args[0]}, ChildEnv: []string{childEnv + "=1"}, Log: &log,
	})
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, log.String())
	}
	if res.Local == nil || len(res.Local.Runs) != 3 || res.Shards == nil || len(res.Shards.Runs) != 1 {
		t.Fatalf("local %+v, shards %+v", res.Local, res.Shards)
	}
	for _, r := range append(res.Local.Runs, res.Shards.Runs...) {
		if !r.Reconciled || r.Rows <= 0 || r.Pipeline <= 0 || r.CPUPipeline <= 0 || r.StreamBytes <= 0 || r.Ingest <= 0 {
			t.Errorf("%s: %+v", r.Label, r)
		}
		var sum float64
		for _, s := range r.ShardShares {
			sum += s
		}
		if len(r.ShardShares) != r.Shards || math.Abs(sum-1) > 1e-9 {
			t.Errorf("%s: shard shares %v for %d shards", r.Label, r.ShardShares, r.Shards)
		}
	}
	if sh := res.Shards.Runs[0]; sh.LimitsOff || sh.UniformBound <= 0 || sh.Shards != 2 {
		t.Errorf("shards run %+v: want limits on, 2 shards, a uniform bound", sh)
	}
}

func TestUnknownSection(t *testing.T) {
	if _, err := Run(context.Background(), Options{Sections: []string{"warp"}, TempDir: t.TempDir()}); err == nil {
		t.Error("Run with an unknown section: got nil error")
	}
}

func TestInitReportParsing(t *testing.T) {
	log := "INIT START(type: on-demand, phase: init)\nINIT RTDONE(status: success)\nINIT REPORT(durationMs: 24.635000)\n" +
		"REPORT RequestId: x\tInit Duration: 0.05 ms\tDuration: 28.31 ms\n"
	m := initReportRE.FindStringSubmatch(log)
	if m == nil || m[1] != "24.635000" || !initOKRE.MatchString(log) {
		t.Errorf("parsing the emulator log: got %q, want 24.635000", m)
	}
}
