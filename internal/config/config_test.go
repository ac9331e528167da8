package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(map[string]string{"BUCKET_NAME": "b", "STREAM_NAME": "s", "AWS_LAMBDA_FUNCTION_NAME": "f"}), Ingest)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Aggregate || c.PartitionKeyField != "pu_location_id" || c.ShardRouting != "balanced" || c.DeadlineMargin != 30*time.Second || c.MaxInFlight != 4 || c.LogLevel != "INFO" {
		t.Errorf("defaults wrong: %+v", c)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := Load(env(map[string]string{"KPL_AGGREGATION": "maybe", "DEADLINE_MARGIN": "soon", "REPLAY_MAX_IN_FLIGHT": "0", "SHARD_ROUTING": "random"}), Replay)
	if err == nil {
		t.Fatal("got nil error, want one listing every problem")
	}
	for _, want := range []string{"BUCKET_NAME", "INGEST_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_NAME", "KPL_AGGREGATION", "DEADLINE_MARGIN", "REPLAY_MAX_IN_FLIGHT", "SHARD_ROUTING"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestLoadLogLevelPrefersLambda(t *testing.T) {
	c, err := Load(env(map[string]string{"BUCKET_NAME": "b", "AWS_LAMBDA_LOG_LEVEL": "DEBUG", "LOG_LEVEL": "WARN"}), Process)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "DEBUG" {
		t.Errorf("LogLevel = %q, want DEBUG", c.LogLevel)
	}
}

func TestLoadZoneShapes(t *testing.T) {
	c, err := Load(env(map[string]string{"BUCKET_NAME": "b", "ZONE_LOOKUP": "reference/taxi_zone_lookup.csv", "ZONE_SHAPES": " s3://other/taxi_zones.zip "}), Process)
	if err != nil {
		t.Fatal(err)
	}
	if c.ZoneShapes != "s3://other/taxi_zones.zip" || c.ZoneLookup != "reference/taxi_zone_lookup.csv" {
		t.Errorf("ZoneShapes %q, ZoneLookup %q", c.ZoneShapes, c.ZoneLookup)
	}
	if c, _ := Load(env(map[string]string{"BUCKET_NAME": "b"}), Process); c.ZoneShapes != "" {
		t.Errorf("ZoneShapes %q without ZONE_SHAPES, want empty", c.ZoneShapes)
	}
}
