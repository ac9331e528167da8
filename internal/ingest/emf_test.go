package ingest

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestEMFGolden pins the EMF line of an invocation (fake converter, frozen clock). -update rewrites it.
func TestEMFGolden(t *testing.T) {
	tests := []struct {
		name string
		run  func(e *env) error
	}{
		{"emf-done", func(e *env) error {
			_, err := e.handle(ctx("req-golden"), e.putObject("raw/yellow.csv", tlcCSV(30, 4)))
			return err
		}},
		{"emf-duplicate", func(e *env) error {
			ev := e.putObject("raw/yellow.csv", tlcCSV(3))
			if _, err := e.handle(ctx("req-first"), ev); err != nil {
				return err
			}
			e.emf.Reset()
			_, err := e.handle(ctx("req-golden"), ev)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.clock.t = time.Date(2024, 5, 14, 9, 31, 7, 0, time.UTC) // frozen (step 0)
			if err := tt.run(e); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, e.emf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), e.emf.String()); diff != "" {
				t.Errorf("EMF line (-want +got):\n%s", diff)
			}
		})
	}
}

func ctx(requestID string) context.Context {
	return lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: requestID})
}
