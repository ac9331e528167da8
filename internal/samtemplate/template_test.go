package samtemplate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseShortForms(t *testing.T) {
	src := `
Resources:
  R:
    Type: AWS::X::Y
    Properties:
      A: !Ref P
      B: !Sub '${AWS::StackName}-x'
      C: !GetAtt Stream.Arn
      D: !GetAtt [Db, Endpoint.Address]
      E: !If [Cond, !Ref AWS::NoValue, [1, 2]]
      F: !Select [0, !Split [',', 'a,b']]
      G: !Sub
        - '${X}-y'
        - X: !Ref P
      H: !Join ['', [a, !Ref P]]
      I: 5
      J: 'true'
      K: true
      L: 1.5
      M: ~
Conditions:
  Cond: !And [!Equals [!Ref P, x], !Not [!Condition Other]]
`
	tpl, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"A": map[string]any{"Ref": "P"},
		"B": map[string]any{"Fn::Sub": "${AWS::StackName}-x"},
		"C": map[string]any{"Fn::GetAtt": []any{"Stream", "Arn"}},
		"D": map[string]any{"Fn::GetAtt": []any{"Db", "Endpoint.Address"}},
		"E": map[string]any{"Fn::If": []any{"Cond", map[string]any{"Ref": "AWS::NoValue"}, []any{1, 2}}},
		"F": map[string]any{"Fn::Select": []any{0, map[string]any{"Fn::Split": []any{",", "a,b"}}}},
		"G": map[string]any{"Fn::Sub": []any{"${X}-y", map[string]any{"X": map[string]any{"Ref": "P"}}}},
		"H": map[string]any{"Fn::Join": []any{"", []any{"a", map[string]any{"Ref": "P"}}}},
		"I": 5, "J": "true", "K": true, "L": 1.5, "M": nil,
	}
	r, _ := tpl.Resource("R")
	if diff := cmp.Diff(want, r.Properties); diff != "" {
		t.Errorf("properties (-want +got):\n%s", diff)
	}
	wantCond := map[string]any{"Fn::And": []any{
		map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "P"}, "x"}},
		map[string]any{"Fn::Not": []any{map[string]any{"Condition": "Other"}}},
	}}
	if diff := cmp.Diff(wantCond, tpl.Section("Conditions")["Cond"]); diff != "" {
		t.Errorf("condition (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"duplicate key", "Resources:\n  A: {Type: X}\n  A: {Type: Y}\n", "duplicate key"},
		{"unknown tag", "Resources:\n  A: !Reff B\n", "unknown tag !Reff"},
		{"GetAtt without attribute", "Resources:\n  A: !GetAtt B\n", "not Resource.Attribute"},
		{"merge key", "x: &a {k: 1}\nResources:\n  <<: *a\n", "merge keys"},
		{"no resources", "Parameters: {}\n", "no Resources"},
		{"not a mapping", "- a\n", "not a mapping"},
		{"bad YAML", "Resources: [\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFunctionPropertiesMergeGlobals(t *testing.T) {
	src := `
Globals:
  Function:
    Runtime: provided.al2023
    Architectures: [arm64]
    Timeout: 30
    Layers: [a]
    Environment:
      Variables: {A: '1', B: !Ref P}
    Tags: !Ref T
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 60
      Layers: [b]
      Environment:
        Variables: {B: '2', C: '3'}
      Tags: {k: v}
  Q:
    Type: AWS::SQS::Queue
`
	tpl, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.FunctionProperties("F")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Runtime":       "provided.al2023",
		"Architectures": []any{"arm64"},
		"Timeout":       60,
		"Layers":        []any{"a", "b"},
		"Environment":   map[string]any{"Variables": map[string]any{"A": "1", "B": "2", "C": "3"}},
		"Tags":          map[string]any{"k": "v"}, // an intrinsic in Globals is replaced, not merged
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
	if _, err := tpl.FunctionProperties("Q"); err == nil {
		t.Error("FunctionProperties of a queue: no error")
	}
	if _, err := tpl.FunctionProperties("Nope"); err == nil {
		t.Error("FunctionProperties of a missing resource: no error")
	}
}

func TestResolveStack(t *testing.T) {
	tpl := loadStack(t)
	s, err := tpl.ResolveWith(map[string]string{
		"StreamMode": "ON_DEMAND", "ZoneLookupKey": "reference/taxi_zone_lookup.csv", "TumblingWindowSeconds": "60",
		"FirehoseBufferSizeMB": "1", "FirehoseBufferIntervalSeconds": "0", "IngestReservedConcurrency": "3",
	}, Resolver{StackName: "demo", Region: "eu-west-1", AccountID: "111122223333"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Bucket.Name != "demo-111122223333-eu-west-1" {
		t.Errorf("bucket %q", s.Bucket.Name)
	}
	if s.Stream.Mode != "ON_DEMAND" || s.Stream.ShardCount != 0 {
		t.Errorf("stream %s with %d shards, want ON_DEMAND without ShardCount", s.Stream.Mode, s.Stream.ShardCount)
	}
	if s.Stream.ARN != "arn:aws:kinesis:eu-west-1:111122223333:stream/"+s.Stream.Name {
		t.Errorf("stream ARN %q", s.Stream.ARN)
	}
	if s.Firehose.BufferSizeMB != 1 || s.Firehose.BufferIntervalSeconds != 0 || s.Firehose.Bucket != s.Bucket.Name || s.Firehose.SourceStreamARN != s.Stream.ARN {
		t.Errorf("firehose %+v", s.Firehose)
	}
	p := s.Functions["ProcessFunction"]
	if p.Env["ZONE_LOOKUP"] != "reference/taxi_zone_lookup.csv" || p.KinesisEvents[0].TumblingWindowInSeconds != 60 {
		t.Errorf("process env %v, window %d", p.Env, p.KinesisEvents[0].TumblingWindowInSeconds)
	}
	in := s.Functions["IngestFunction"]
	if in.Name != "demo-ingest" || in.ReservedConcurrency == nil || *in.ReservedConcurrency != 3 {
		t.Errorf("ingest %s reserved %v", in.Name, in.ReservedConcurrency)
	}
	if got := s.Functions["ReplayFunction"].Env["INGEST_FUNCTION_NAME"]; got != "demo-ingest" {
		t.Errorf("INGEST_FUNCTION_NAME %q", got)
	}
	if q := s.Queues["FailureQueue"]; p.KinesisEvents[0].OnFailureDestination != q.ARN || !strings.HasPrefix(q.URL, "https://sqs.eu-west-1.amazonaws.com/111122223333/") {
		t.Errorf("queue %+v, destination %q", q, p.KinesisEvents[0].OnFailureDestination)
	}

	// A resolver can name resources as the local cloud does.
	s, err = tpl.ResolveWith(nil, Resolver{
		Ref: func(r Resource) (string, bool) {
			return "local-" + strings.ToLower(r.LogicalID), r.Type == "AWS::Kinesis::Stream"
		},
		GetAtt: func(r Resource, attr string) (string, bool) {
			return "arn:local:" + r.LogicalID, r.Type == "AWS::Kinesis::Stream" && attr == "Arn"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Stream.Name != "local-stream" || s.Functions["IngestFunction"].Env["STREAM_NAME"] != "local-stream" ||
		s.Functions["ProcessFunction"].KinesisEvents[0].StreamARN != "arn:local:Stream" {
		t.Errorf("resolver not used: stream %+v", s.Stream)
	}
}

func TestResolveBadOverrides(t *testing.T) {
	tpl := loadStack(t)
	tests := []struct {
		name      string
		overrides map[string]string
		want      string
	}{
		{"unknown", map[string]string{"Shards": "2"}, "no such parameter"},
		{"not allowed", map[string]string{"StreamMode": "FAST"}, "allowed values"},
		{"not a number", map[string]string{"ShardCount": "two"}, "not a number"},
		{"below minimum", map[string]string{"ShardCount": "0"}, "below MinValue"},
		{"pattern", map[string]string{"DeadlineMargin": "30"}, "does not match"},
		{"too short", map[string]string{"PartitionKeyField": ""}, "MinLength"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tpl.Resolve(tt.overrides)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Resolve error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestEvalIntrinsics(t *testing.T) {
	src := `
Parameters:
  P: {Type: String, Default: x}
  N: {Type: Number, Default: 3}
Mappings:
  M: {k1: {k2: found}}
Conditions:
  IsX: !Equals [!Ref P, x]
  Both: !And [!Condition IsX, !Not [!Equals [!Ref N, 4]]]
Resources:
  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !Sub '${P}-q'}}
`
	tpl, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEvaluator(tpl, nil, Resolver{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"literal in Sub", map[string]any{"Fn::Sub": "${!Literal}-${P}"}, "${Literal}-x"},
		{"Sub with variables", map[string]any{"Fn::Sub": []any{"${A}/${Q.Arn}", map[string]any{"A": map[string]any{"Ref": "N"}}}}, "3/arn:aws:sqs:us-east-1:000000000000:x-q"},
		{"queue Ref is its URL", map[string]any{"Ref": "Q"}, "https://sqs.us-east-1.amazonaws.com/000000000000/x-q"},
		{"If with NoValue drops the key", map[string]any{"a": map[string]any{"Fn::If": []any{"Both", map[string]any{"Ref": "AWS::NoValue"}, 1}}}, map[string]any{}},
		{"If else", map[string]any{"Fn::If": []any{"IsX", "yes", "no"}}, "yes"},
		{"Join", map[string]any{"Fn::Join": []any{"-", []any{"a", map[string]any{"Ref": "P"}}}}, "a-x"},
		{"Select Split", map[string]any{"Fn::Select": []any{1, map[string]any{"Fn::Split": []any{",", "a,b,c"}}}}, "b"},
		{"FindInMap", map[string]any{"Fn::FindInMap": []any{"M", "k1", "k2"}}, "found"},
		{"list drops NoValue", []any{"a", map[string]any{"Ref": "AWS::NoValue"}}, []any{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.eval(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []any{
		map[string]any{"Ref": "Missing"},
		map[string]any{"Fn::GetAtt": []any{"Q", "Nope"}},
		map[string]any{"Fn::ImportValue": "x"},
		map[string]any{"Fn::If": []any{"NoSuchCondition", 1, 2}},
	} {
		if _, err := e.eval(bad); err == nil {
			t.Errorf("eval %v: no error", bad)
		}
	}
}

func TestS3EventMatches(t *testing.T) {
	e := S3Event{Events: []string{"s3:ObjectCreated:*"}, Prefix: "raw/", Suffix: ".csv"}
	tests := []struct {
		event, key string
		want       bool
	}{
		{"ObjectCreated:Put", "raw/a.csv", true},
		{"s3:ObjectCreated:CompleteMultipartUpload", "raw/x/y.csv", true},
		{"ObjectCreated:Copy", "raw/a.csv.gz", false},
		{"ObjectRemoved:Delete", "raw/a.csv", false},
		{"ObjectCreated:Put", "archive/a.csv", false},
		{"ObjectCreated:Put", "raw/a.CSV", false}, // S3 filters are case-sensitive
	}
	for _, tt := range tests {
		if got := e.Matches(tt.event, tt.key); got != tt.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", tt.event, tt.key, got, tt.want)
		}
	}
	exact := S3Event{Events: []string{"s3:ObjectCreated:Put"}}
	if exact.Matches("ObjectCreated:Copy", "k") || !exact.Matches("ObjectCreated:Put", "k") {
		t.Error("an exact event type matches wrongly")
	}
}

func TestKinesisEventDefaults(t *testing.T) {
	k, err := kinesisEvent("E", map[string]any{"Stream": "arn:aws:kinesis:us-east-1:1:stream/s", "StartingPosition": "LATEST"})
	if err != nil {
		t.Fatal(err)
	}
	want := KinesisEvent{Name: "E", StreamARN: "arn:aws:kinesis:us-east-1:1:stream/s", StreamName: "s", Enabled: true,
		StartingPosition: "LATEST", BatchSize: 100, MaximumRetryAttempts: -1, MaximumRecordAgeInSeconds: -1, ParallelizationFactor: 1}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if k.ReportsBatchItemFailures() {
		t.Error("ReportsBatchItemFailures without FunctionResponseTypes")
	}
	if _, err := kinesisEvent("E", map[string]any{"BatchSize": "many"}); err == nil {
		t.Error("BatchSize many: no error")
	}
}
