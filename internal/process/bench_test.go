package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/gen"
	"github.com/taxistream/taxistream/internal/kpl"
)

// BenchmarkProcess measures one batch of 10,000 trips (5 % invalid), plain or KPL-aggregated, through
// de-aggregate (MD5 verified) + parse + de-duplicate + validate + enrich + Parquet and gzip encoding into an in-memory S3.
// Reported: trips/s (one goroutine, so per core) and allocated bytes per batch (B/op).
func BenchmarkProcess(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchmarkProcess(b, 1) })
	b.Run("kpl20", func(b *testing.B) { benchmarkProcess(b, 20) })
}

// benchmarkProcess sends the 10,000 trips as KPL aggregates of perAggregate user records (1: plain).
func benchmarkProcess(b *testing.B, perAggregate int) {
	const n = 10000
	datas := make([][]byte, n)
	for i := range datas {
		day, hour := 10+i%3, i%24
		extra := fmt.Sprintf(`"record_id":"bench-%08d","pickup_datetime":"2019-01-%02dT%02d:05:00-05:00","dropoff_datetime":"2019-01-%02dT%02d:17:30-05:00","pu_location_id":%d,"do_location_id":%d,"trip_distance":%.2f`,
			i, day, hour, day, hour, 1+i%265, 1+(i*7)%265, float64(i%90)/10)
		if i%20 == 0 {
			extra += `,"passenger_count":12`
		}
		datas[i] = yellowWith(extra)
	}
	var recs []events.KinesisEventRecord
	for i := 0; i < n; i += perAggregate {
		if perAggregate == 1 {
			recs = append(recs, kinesisRecord(i, datas[i]))
			continue
		}
		var urs []kpl.UserRecord
		for _, d := range datas[i:min(n, i+perAggregate)] {
			urs = append(urs, kpl.UserRecord{PartitionKey: "pk", Data: d})
		}
		recs = append(recs, kinesisRecord(i, kpl.Aggregate(urs)))
	}
	ev := eventOf(recs)
	store := newFakeS3()
	h, err := New(context.Background(), config.Config{Bucket: "bucket", MetricsNamespace: "taxistream"}, Deps{
		S3: store, Log: slog.New(slog.DiscardHandler), Metrics: io.Discard,
		Now: func() time.Time { return testNow }, Zones: testZones(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := h.Handle(context.Background(), ev)
		if err != nil || len(resp.BatchItemFailures) > 0 {
			b.Fatal(resp, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "trips/s")
}

// BenchmarkProcessMonth is one batch shaped like those of a local run of a month's file: 9,600
// generated yellow 2019-01 trips (pickups all over the month, as in TLC's files), converted as
// IngestFunction does and KPL-aggregated into ~64 KiB aggregates, so that the batch writes one Parquet
// object per pickup date (~31 objects of ~300 trips): the per-object costs weigh as they do in a run.
func BenchmarkProcessMonth(b *testing.B) {
	const n = 9600
	var csv bytes.Buffer
	if _, err := gen.Write(&csv, gen.Options{Taxi: "yellow", Layout: 2019, Month: 1, Rows: n, Seed: 2019}); err != nil {
		b.Fatal(err)
	}
	rr, err := convert.NewCSVReader(&csv, convert.Options{Source: convert.Source{Bucket: "bench", Key: "raw/yellow_tripdata_2019-01.csv", Version: "v1"}})
	if err != nil {
		b.Fatal(err)
	}
	var (
		recs []events.KinesisEventRecord
		agg  kpl.Aggregator
	)
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		ur := kpl.UserRecord{PartitionKey: rr.Value("pu_location_id"), Data: bytes.Clone(rec.JSON)}
		if agg.Len() > 0 && agg.SizeWith(ur) > 64<<10 {
			recs = append(recs, kinesisRecord(len(recs), agg.Bytes()))
			agg.Reset()
		}
		agg.Add(ur)
	}
	recs = append(recs, kinesisRecord(len(recs), agg.Bytes()))
	ev := eventOf(recs)
	store := newFakeS3()
	h, err := New(context.Background(), config.Config{Bucket: "bucket", MetricsNamespace: "taxistream"}, Deps{
		S3: store, Log: slog.New(slog.DiscardHandler), Metrics: io.Discard,
		Now: func() time.Time { return testNow }, Zones: testZones(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := h.Handle(context.Background(), ev)
		if err != nil || len(resp.BatchItemFailures) > 0 {
			b.Fatal(resp, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "trips/s")
	b.ReportMetric(float64(len(store.keys("processed/trips/"))), "objects")
}
