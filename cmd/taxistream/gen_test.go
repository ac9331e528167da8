package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenTakesWhatTheNameSays: a TLC-style -o name decides taxi type, year and month unless a flag says
// otherwise; the stderr line says what was generated.
func TestGenTakesWhatTheNameSays(t *testing.T) {
	tests := []struct {
		name       string
		file       string
		flags      []string
		wantHeader string // first column of the header
		wantMonth  string // yyyy-mm of the pickups
		wantErr    string // stderr content
	}{
		{"fhvhv month from the name", "fhvhv_tripdata_2022-03.csv", nil, "hvfhs_license_num", "2022-03", "fhvhv trips of 2022-03"},
		{"green from the name", "green_tripdata_2015-07.csv", nil, "VendorID", "2015-07", "green trips of 2015-07"},
		{"a flag wins, with a note", "yellow_tripdata_2019-05.csv", []string{"-month", "6"}, "VendorID", "2019-06", "says month 5, the flags say 6"},
		{"another name: the flags", "trips.csv", []string{"-taxi", "yellow", "-year", "2019", "-month", "2"}, "VendorID", "2019-02", "yellow trips of 2019-02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), tt.file)
			var stdout, stderr bytes.Buffer
			args := append([]string{"gen", "-rows", "5", "-o", out}, tt.flags...)
			if code := run(context.Background(), args, nil, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := csv.NewReader(f).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 6 || rows[0][0] != tt.wantHeader {
				t.Fatalf("%d rows, header %v; want 6 rows and a header starting %s", len(rows), rows[0], tt.wantHeader)
			}
			col := -1
			for i, h := range rows[0] {
				if strings.Contains(strings.ToLower(h), "pickup_datetime") {
					col = i
				}
			}
			if col < 0 {
				t.Fatalf("no pickup column in %v", rows[0])
			}
			for _, r := range rows[1:] {
				if !strings.HasPrefix(r[col], tt.wantMonth) {
					t.Errorf("pickup %s, want a time in %s", r[col], tt.wantMonth)
				}
			}
		})
	}
	t.Run("parquet name refused", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"gen", "-o", filepath.Join(t.TempDir(), "x.parquet")}, nil, &stdout, &stderr); code != 2 {
			t.Errorf("exit %d, want 2 (usage)", code)
		}
		if !strings.Contains(stderr.String(), "gen writes CSV") {
			t.Errorf("stderr %q", stderr.String())
		}
	})
}
