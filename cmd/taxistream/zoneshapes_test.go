package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/process"
	"github.com/taxistream/taxistream/internal/testenv"
)

func TestZoneShapesFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--zone-shapes", "zones/taxi_zones.zip"}, "ABS/zones/taxi_zones.zip"},
		{[]string{"--zone-shapes", "a.zip", "--env", "process:ZONE_SHAPES=s3://b/k.zip"}, "s3://b/k.zip"},
		{nil, ""},
	} {
		fs := flag.NewFlagSet("local", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var lf localFlags
		lf.register(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		opts, err := lf.options()
		if err != nil {
			t.Fatal(err)
		}
		wd, _ := os.Getwd()
		want := strings.Replace(c.want, "ABS", wd, 1)
		if got := opts.Env[local.ProcessFunction]["ZONE_SHAPES"]; got != want {
			t.Errorf("%v: ZONE_SHAPES = %q, want %q", c.args, got, want)
		}
	}
}

// TestLocalZoneShapes runs `taxistream local --zone-shapes taxi_zones.zip --zones lookup.csv` on the real
// 2015 sample (coordinates, no zone ids): the processed trips carry zones found from the coordinates.
func TestLocalZoneShapes(t *testing.T) {
	t.Parallel()
	tlc := testenv.TLCDir(t)
	dir := t.TempDir()
	sample := filepath.Join(dir, "yellow_tripdata_2015-01.csv")
	b, err := os.ReadFile(filepath.Join(tlc, "samples", "yellow_tripdata_2015-01_head.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sample, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"local", "--limits-off", "--quiet",
		"--zone-shapes", filepath.Join(tlc, "zones", "taxi_zones.zip"), "--zones", filepath.Join(tlc, "zones", "taxi_zone_lookup_2024.csv"),
		"--dir", filepath.Join(dir, "cloud"), "--template", filepath.Join(testenv.Root(t), "template.yaml"), sample},
		strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	sources := map[string]int{}
	manhattan := 0
	err = filepath.WalkDir(filepath.Join(dir, "cloud", "bucket", "processed", "trips"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		rows, err := parquet.ReadFile[process.TripRow](path)
		if err != nil {
			return err
		}
		for _, r := range rows {
			sources[r.PUSource]++
			if r.PUBorough != nil && *r.PUBorough == "Manhattan" {
				manhattan++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sources[process.SourceCoordinates] < 1900 || manhattan < 1500 {
		t.Errorf("pickup sources %v, %d in Manhattan: want the sample's trips located from their coordinates", sources, manhattan)
	}
}
