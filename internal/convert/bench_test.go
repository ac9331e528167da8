package convert

import (
	"bytes"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/gen"
)

func genCSV(tb testing.TB, taxi string, layout int, rows int64) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := gen.Write(&buf, gen.Options{Taxi: taxi, Layout: layout, Rows: rows, Seed: 7}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func benchCSV(b *testing.B, taxi string, layout int) {
	data := genCSV(b, taxi, layout, 50000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var rows int64
	for b.Loop() {
		rr, err := NewCSVReader(bytes.NewReader(data), Options{Source: Source{Bucket: "b", Key: "k"}})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := rr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows++
		}
	}
	// The machine is shared: CPU time of this process tells the per-core speed better than wall time.
	cpu := (cpuTime() - cpu0).Seconds()
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(len(data))*float64(b.N)/1e6/cpu, "MB/cpu-s")
}

// cpuTime is the user+system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCSVYellow2019 is the headline number (docs/performance-convert.md).
func BenchmarkCSVYellow2019(b *testing.B) { benchCSV(b, "yellow", 2019) }
func BenchmarkCSVYellow2009(b *testing.B) { benchCSV(b, "yellow", 2009) }
func BenchmarkCSVGreen2015(b *testing.B)  { benchCSV(b, "green", 2015) }
func BenchmarkCSVFHVHV2019(b *testing.B)  { benchCSV(b, "fhvhv", 2019) }
