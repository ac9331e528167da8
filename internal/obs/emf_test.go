package obs

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestMetricsWriteGolden(t *testing.T) {
	tests := []struct {
		name string
		fill func(m *Metrics)
	}{
		{"ingest", func(m *Metrics) {
			m.Add("RowsRead", Count, 10)
			m.Add("RowsRead", Count, 5)
			m.Set("Rejected", Count, 1)
			m.Add("BytesRead", Bytes, 2048)
			m.Property("key", "raw/a b.csv")
		}},
		{"empty", func(m *Metrics) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics("taxistream", map[string]string{"Function": "ingest"})
			m.SetClock(func() time.Time { return time.Unix(1700000000, 0) })
			tt.fill(m)
			var buf bytes.Buffer
			if err := m.Write(&buf); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), buf.String()); diff != "" {
				t.Errorf("EMF line mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]string{"": "INFO", "debug": "DEBUG", "TRACE": "DEBUG", "WARN": "WARN", "fatal": "ERROR", "bogus": "INFO"} {
		if got := ParseLevel(in).String(); got != want {
			t.Errorf("ParseLevel(%q) = %s, want %s", in, got, want)
		}
	}
}
