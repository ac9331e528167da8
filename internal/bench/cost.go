package bench

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/taxistream/taxistream/internal/kinesislimit"
	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/samtemplate"
)

// Cost model (issue 17 goal 5): what one month of yellow trips costs to stream, from the CPU time the
// ingest and consumer sections measured, at the template's memory settings. Lambda gives a function
// CPU in proportion to its memory (a full vCPU at 1,769 MB), so a CPU-bound invocation lasts its CPU
// seconds divided by that share; IngestFunction also cannot write faster than the stream takes, so it
// lasts at least bytes ÷ (shards × 1 MiB/s). Prices are AWS's public list prices in us-east-1 as of
// 2026 (arm64 Lambda, provisioned Kinesis): change them here when they change.
const (
	// MonthTrips is one month of yellow taxi trips: TLC's yellow_tripdata_2019-01 has 7,667,792 rows.
	MonthTrips = 7_667_792
	// lambdaMBPerVCPU is the memory at which Lambda gives a function one full vCPU.
	lambdaMBPerVCPU = 1769
	// Prices, USD.
	priceLambdaGBSecond = 0.0000133334 // arm64, per GB-second
	priceLambdaRequest  = 0.20 / 1e6   // per invocation
	priceShardHour      = 0.015        // provisioned shard-hour
	pricePutUnit        = 0.014 / 1e6  // PUT payload unit (25 KB of a record, rounded up per record)
	putUnitBytes        = 25 * 1024
	hoursPerMonth       = 730
)

// CostSection is the cost of one month of yellow trips, per function and for the stream.
type CostSection struct {
	Skipped string `json:"skipped,omitempty"`
	Note    string `json:"note,omitempty"`

	IngestMemoryMB  int `json:"ingest_memory_mb"`
	ProcessMemoryMB int `json:"process_memory_mb"`

	// Measured: CPU seconds per million rows (IngestFunction, pacing lifted) and per million trips
	// (ProcessFunction, one core), and what the stream receives per million rows.
	IngestCPUPerM   float64 `json:"ingest_cpu_s_per_million"`
	ProcessCPUPerM  float64 `json:"process_cpu_s_per_million"`
	BytesPerM       float64 `json:"stream_bytes_per_million"`
	KinesisRecsPerM float64 `json:"kinesis_records_per_million"`

	// GB-seconds per million trips.
	ProcessGBsPerM   float64 `json:"process_gb_s_per_million"`
	IngestCPUGBsPerM float64 `json:"ingest_cpu_bound_gb_s_per_million"` // if the stream were never the limit

	Month []CostMonth `json:"month"` // one month of yellow trips, by shard count
}

// CostMonth is one month of yellow trips through a stream of Shards provisioned shards.
type CostMonth struct {
	Shards          int     `json:"shards"`
	IngestSeconds   float64 `json:"ingest_s"` // IngestFunction's duration for the month's file
	IngestGBs       float64 `json:"ingest_gb_s"`
	ProcessGBs      float64 `json:"process_gb_s"`
	LambdaUSD       float64 `json:"lambda_usd"`
	ShardHoursUSD   float64 `json:"shard_hours_usd"` // the shards for the whole month
	PutUnitsUSD     float64 `json:"put_units_usd"`
	StreamShare     float64 `json:"stream_share"` // of the month's total
	TotalUSD        float64 `json:"total_usd"`
	IngestGBsPerM   float64 `json:"ingest_gb_s_per_million"`
	IngestBoundByIO bool    `json:"ingest_bound_by_stream"`
}

func costOf(r *Results, opts *Options) *CostSection {
	c := &CostSection{}
	if r.Ingest == nil || len(r.Ingest.Runs) == 0 || r.Consumer == nil || r.Consumer.Skipped != "" || r.Consumer.TripsPerCPU <= 0 {
		c.Skipped = skipf(opts, "needs the ingest and consumer sections in the same run")
		return c
	}
	tpl, err := samtemplate.Load(filepath.Join(opts.RepoDir, "template.yaml"))
	var settings *samtemplate.Settings
	if err == nil {
		settings, err = tpl.ResolveWith(nil, samtemplate.Resolver{StackName: "taxistream", Region: "us-east-1", AccountID: "000000000000", Partition: "aws"})
	}
	if err != nil {
		c.Skipped = skipf(opts, "reading the template's memory settings: %v", err)
		return c
	}
	c.IngestMemoryMB = settings.Functions[local.IngestFunction].MemoryMB
	c.ProcessMemoryMB = settings.Functions[local.ProcessFunction].MemoryMB
	in := r.Ingest.Runs[0]
	if in.RowsRead == 0 || in.KinesisBytes == 0 {
		c.Skipped = skipf(opts, "the ingest section measured no rows")
		return c
	}
	perM := 1e6 / float64(in.RowsRead)
	c.IngestCPUPerM = in.CPU * perM
	c.BytesPerM = float64(in.KinesisBytes) * perM
	c.KinesisRecsPerM = float64(in.KinesisRecords) * perM
	c.ProcessCPUPerM = 1e6 / r.Consumer.TripsPerCPU

	gbs := func(cpu float64, mb int) float64 { // CPU-bound GB-seconds
		share := min(1, float64(mb)/lambdaMBPerVCPU)
		return cpu / share * float64(mb) / 1024
	}
	c.ProcessGBsPerM = gbs(c.ProcessCPUPerM, c.ProcessMemoryMB)
	c.IngestCPUGBsPerM = gbs(c.IngestCPUPerM, c.IngestMemoryMB)
	monthM := MonthTrips / 1e6
	recordBytes := c.BytesPerM / max(c.KinesisRecsPerM, 1)
	for _, shards := range []int{1, 2, 4, 8, 16} {
		m := CostMonth{Shards: shards}
		cpuSeconds := c.IngestCPUPerM * monthM / min(1, float64(c.IngestMemoryMB)/lambdaMBPerVCPU)
		ioSeconds := c.BytesPerM * monthM / (float64(shards) * kinesislimit.ShardWriteBytesPerSecond)
		m.IngestSeconds = max(cpuSeconds, ioSeconds)
		m.IngestBoundByIO = ioSeconds > cpuSeconds
		m.IngestGBs = m.IngestSeconds * float64(c.IngestMemoryMB) / 1024
		m.IngestGBsPerM = m.IngestGBs / monthM
		m.ProcessGBs = c.ProcessGBsPerM * monthM
		invocations := monthM*1e6/13_000 + math.Ceil(m.IngestSeconds/870) // ~13,000 trips per ProcessFunction batch; ingest continuations
		m.LambdaUSD = (m.IngestGBs+m.ProcessGBs)*priceLambdaGBSecond + invocations*priceLambdaRequest
		m.ShardHoursUSD = float64(shards) * hoursPerMonth * priceShardHour
		m.PutUnitsUSD = c.KinesisRecsPerM * monthM * math.Ceil(recordBytes/putUnitBytes) * pricePutUnit
		m.TotalUSD = m.LambdaUSD + m.ShardHoursUSD + m.PutUnitsUSD
		m.StreamShare = (m.ShardHoursUSD + m.PutUnitsUSD) / m.TotalUSD
		c.Month = append(c.Month, m)
	}
	c.Note = fmt.Sprintf("one month = %d yellow trips (TLC yellow_tripdata_2019-01); CPU measured on this machine's cores (%s), "+
		"taken as equal to a Lambda arm64 vCPU; Lambda CPU share = memory ÷ %d MB; list prices us-east-1 (arm64 $%.10f per GB-s, "+
		"$0.20 per million requests; Kinesis $%.3f per shard-hour, $0.014 per million 25 KB PUT payload units); Firehose and S3 not included",
		MonthTrips, r.Machine.CPUModel, lambdaMBPerVCPU, priceLambdaGBSecond, priceShardHour)
	return c
}

// usd formats dollars with cents, or with four significant digits below a dollar.
func usd(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("$%.2f", v)
	}
	return fmt.Sprintf("$%.4g", v)
}

func (c *CostSection) lines() [][2]string {
	if c.Skipped != "" {
		return [][2]string{{"skipped", c.Skipped}}
	}
	out := [][2]string{
		{"measured", fmt.Sprintf("IngestFunction %.2f CPU s per million rows (%.0f MB to the stream, %.0f Kinesis records); ProcessFunction %.2f CPU s per million trips",
			c.IngestCPUPerM, c.BytesPerM/1e6, c.KinesisRecsPerM, c.ProcessCPUPerM)},
		{"GB-seconds per million trips", fmt.Sprintf("ProcessFunction (%d MB) %.1f; IngestFunction (%d MB) %.1f if CPU-bound, but the stream bounds it (below)",
			c.ProcessMemoryMB, c.ProcessGBsPerM, c.IngestMemoryMB, c.IngestCPUGBsPerM)},
	}
	for _, m := range c.Month {
		bound := "CPU"
		if m.IngestBoundByIO {
			bound = "the stream"
		}
		out = append(out, [2]string{fmt.Sprintf("month, %d shard(s)", m.Shards), fmt.Sprintf(
			"IngestFunction %.0f s (bound by %s) = %.0f GB-s (%.1f per million trips), ProcessFunction %.0f GB-s; Lambda %s, stream %s (shard-hours %s, PUT units %s) = %.1f %% of %s",
			m.IngestSeconds, bound, m.IngestGBs, m.IngestGBsPerM, m.ProcessGBs, usd(m.LambdaUSD), usd(m.ShardHoursUSD+m.PutUnitsUSD), usd(m.ShardHoursUSD), usd(m.PutUnitsUSD),
			100*m.StreamShare, usd(m.TotalUSD))})
	}
	out = append(out, [2]string{"assumptions", strings.ReplaceAll(c.Note, "\t", " ")})
	return out
}
