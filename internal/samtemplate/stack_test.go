package samtemplate

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/testenv"
)

func loadStack(t *testing.T) *Template {
	t.Helper()
	tpl, err := Load(filepath.Join(testenv.Root(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// TestStackTemplate checks template.yaml against every point of the stack's contract.
func TestStackTemplate(t *testing.T) {
	files := readStackFiles(t)
	if len(files.configEnv) < 8 {
		t.Fatalf("found %d environment variables in internal/config (%v); the scan is broken", len(files.configEnv), files.configEnv)
	}
	for _, p := range problems(loadStack(t), files) {
		t.Error(p)
	}
}

// TestBrokenTemplates changes one thing of template.yaml at a time: each mistake must be reported.
func TestBrokenTemplates(t *testing.T) {
	base := loadStack(t)
	files := readStackFiles(t)
	const (
		ingest  = "Resources.IngestFunction.Properties."
		process = "Resources.ProcessFunction.Properties."
		replay  = "Resources.ReplayFunction.Properties."
		trips   = process + "Events.Trips.Properties."
		archive = "Resources.DeliveryStream.Properties.ExtendedS3DestinationConfiguration."
		produce = ingest + "Policies.0.Statement.4." // the Produce statement
		globals = "Globals.Function."
	)
	tests := []struct {
		name   string
		change func(d map[string]any)
		want   string // a part of the expected problem
	}{
		{"runtime typo", set(globals+"Runtime", "provided.al2023023"), "Runtime provided.al2023023"},
		{"old runtime on one function", set(replay+"Runtime", "go1.x"), "ReplayFunction: Runtime go1.x"},
		{"x86_64 globally", set(globals+"Architectures", []any{"x86_64"}), "Architectures [x86_64]"},
		{"x86_64 on a function (SAM appends it to Globals)", set(process+"Architectures", []any{"x86_64"}), "ProcessFunction: Architectures [arm64 x86_64]"},
		{"handler", set(globals+"Handler", "main"), "Handler main"},
		{"no makefile build", del("Resources.ReplayFunction.Metadata"), "ReplayFunction: Metadata.BuildMethod"},
		{"function without a Makefile target", func(d map[string]any) {
			f := deepCopy(dig(d, "Resources", "ReplayFunction")).(map[string]any)
			d["Resources"].(map[string]any)["ExtraFunction"] = f
		}, "no build-ExtraFunction target"},
		{"text logs", set(globals+"LoggingConfig.LogFormat", "Text"), "LogFormat Text"},
		{"log level not a parameter", set(globals+"LoggingConfig.ApplicationLogLevel", "DEBUG"), "ApplicationLogLevel DEBUG"},
		{"env var missing", del(ingest + "Environment.Variables.STREAM_NAME"), "STREAM_NAME is missing"},
		{"env var unknown", set(process+"Environment.Variables.ZONE_LOOKUP_KEY", "x"), "ZONE_LOOKUP_KEY is not one internal/config reads"},
		{"env var of no function", del(replay + "Environment.Variables.REPLAY_MAX_IN_FLIGHT"), "REPLAY_MAX_IN_FLIGHT"},
		{"bucket name by Ref (circular)", set(globals+"Environment.Variables.BUCKET_NAME", map[string]any{"Ref": "Bucket"}), "IngestFunction refers to the Bucket resource"},
		{"wrong INGEST_FUNCTION_NAME", set(replay+"Environment.Variables.INGEST_FUNCTION_NAME", "ingest"), "INGEST_FUNCTION_NAME"},
		{"missing ReportBatchItemFailures", del(trips + "FunctionResponseTypes"), "ReportBatchItemFailures"},
		{"infinite retries", set(trips+"MaximumRetryAttempts", -1), "MaximumRetryAttempts -1"},
		{"no maximum record age", del(trips + "MaximumRecordAgeInSeconds"), "MaximumRecordAgeInSeconds -1"},
		{"no bisect", set(trips+"BisectBatchOnFunctionError", false), "BisectBatchOnFunctionError"},
		{"LATEST", set(trips+"StartingPosition", "LATEST"), "StartingPosition LATEST"},
		{"no on-failure destination", del(trips + "DestinationConfig"), "on-failure destination"},
		{"parallelization", set(trips+"ParallelizationFactor", 10), "ParallelizationFactor 10"},
		{"no tumbling window", del(trips + "TumblingWindowInSeconds"), "TumblingWindowInSeconds"},
		{"batch size constant", set(trips+"BatchSize", 10), "BatchSize"},
		{"batch size parameter too large", set("Parameters.BatchSize.Default", 20000), "BatchSize=20000: above MaxValue"},
		{"disabled mapping", set(trips+"Enabled", false), "disabled"},
		{"consumer on another stream", set(trips+"Stream", "arn:aws:kinesis:us-east-1:1:stream/x"), "want !GetAtt Stream.Arn"},
		{"no own role for the consumer", del(process + "Role"), "AWSLambdaKinesisExecutionRole"},
		{"missing ErrorOutputPrefix", del(archive + "ErrorOutputPrefix"), "ErrorOutputPrefix"},
		{"ErrorOutputPrefix without error type", set(archive+"ErrorOutputPrefix", "archive-errors/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/"), "error-output-type"},
		{"prefix without hour", set(archive+"Prefix", "archive/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/"), "lacks !{timestamp:HH}"},
		{"archive uncompressed", set(archive+"CompressionFormat", "UNCOMPRESSED"), "CompressionFormat UNCOMPRESSED"},
		{"no buffering hints", del(archive + "BufferingHints"), "BufferingHints"},
		{"firehose direct put", set("Resources.DeliveryStream.Properties.DeliveryStreamType", "DirectPut"), "KinesisStreamAsSource"},
		{"firehose without DependsOn", del("Resources.DeliveryStream.DependsOn"), "DependsOn"},
		{"Action *", set(produce+"Action", "*"), `wildcard action "*"`},
		{"kinesis:*", set(produce+"Action", []any{"kinesis:*"}), `wildcard action "kinesis:*"`},
		{"Resource *", set(produce+"Resource", "*"), `Resource "*"`},
		{"producer reads too", set(produce+"Action", []any{"kinesis:PutRecords", "kinesis:PutRecord", "kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:GetRecords"}), "want exactly"},
		{"producer lacks ListShards", set(produce+"Action", []any{"kinesis:PutRecords", "kinesis:PutRecord", "kinesis:DescribeStreamSummary"}), "want exactly"},
		{"KinesisCrudPolicy", appendTo(ingest+"Policies", map[string]any{"KinesisCrudPolicy": map[string]any{"StreamName": map[string]any{"Ref": "Stream"}}}), "SAM policy template"},
		{"managed policy", appendTo(replay+"Policies", "AmazonS3FullAccess"), "managed policy"},
		{"bucket Ref in ingest policy", set(ingest+"Policies.0.Statement.0.Resource", map[string]any{"Fn::Sub": "${Bucket.Arn}/raw/*"}), "refers to the Bucket resource"},
		{"bucket GetAtt in process role", set("Resources.ProcessRole.Properties.Policies.0.PolicyDocument.Statement.1.Resource", map[string]any{"Fn::GetAtt": []any{"Bucket", "Arn"}}), "refers to the Bucket resource"},
		{"consumer writes the stream", set("Resources.ProcessRole.Properties.Policies.0.PolicyDocument.Statement.0.Action", []any{"kinesis:GetRecords", "kinesis:PutRecords"}), "kinesis:PutRecords is not a consumer's"},
		{"compact invokes anything", set("Resources.CompactFunction.Properties.Policies.0.Statement.2.Resource", map[string]any{"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"}), "CompactFunction: lambda:InvokeFunction on"},
		{"compact terminates its continuations", set("Resources.CompactFunction.Properties.RecursiveLoop", "Terminate"), "CompactFunction: RecursiveLoop Terminate"},
		{"compact without its target size", del("Resources.CompactFunction.Properties.Environment.Variables.COMPACT_TARGET_FILE_MB"), "COMPACT_TARGET_FILE_MB"},
		{"replay invokes anything", set(replay+"Policies.0.Statement.1.Resource", map[string]any{"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"}), "lambda:InvokeFunction on"},
		{"no self-invocation for continuations", del(ingest + "Policies.0.Statement.5"), "cannot invoke itself"},
		{"recursive loop terminated", set(ingest+"RecursiveLoop", "Terminate"), "RecursiveLoop Terminate"},
		{"sweeper disabled", set(ingest+"Events.Sweep.Properties.Enabled", false), "Sweep is disabled"},
		{"sweeper sends another event", set(ingest+"Events.Sweep.Properties.Input", `{"taxistream":"continuation"}`), `want {"taxistream":"sweep"}`},
		{"sweeper without a schedule", set(ingest+"Events.Sweep.Properties.Schedule", "every 15 minutes"), "want rate(...) or cron(...)"},
		{"one suffix missing", del(ingest + "Events.RawParquet"), "notified 0 times"},
		{"overlapping suffix", set(ingest+"Events.RawGz", map[string]any{"Type": "S3", "Properties": map[string]any{
			"Bucket": map[string]any{"Ref": "Bucket"}, "Events": "s3:ObjectCreated:*",
			"Filter": map[string]any{"S3Key": map[string]any{"Rules": []any{map[string]any{"Name": "prefix", "Value": "raw/"}, map[string]any{"Name": "suffix", "Value": ".gz"}}}}}}),
			"overlap"},
		{"two suffixes in one filter", appendTo(ingest+"Events.RawCsv.Properties.Filter.S3Key.Rules", map[string]any{"Name": "suffix", "Value": ".txt"}), "one prefix and one suffix rule"},
		{"no prefix rule", set(ingest+"Events.RawCsv.Properties.Filter.S3Key.Rules", []any{map[string]any{"Name": "suffix", "Value": ".csv"}}), `prefix "", want raw/`},
		{"removal events", set(ingest+"Events.RawCsv.Properties.Events", "s3:ObjectRemoved:*"), "ObjectRemoved"},
		{"public bucket", set("Resources.Bucket.Properties.PublicAccessBlockConfiguration.RestrictPublicBuckets", false), "RestrictPublicBuckets"},
		{"no encryption", del("Resources.Bucket.Properties.BucketEncryption"), "SSEAlgorithm"},
		{"TLS not enforced", del("Resources.BucketPolicy.Properties.PolicyDocument.Statement.0.Condition"), "aws:SecureTransport"},
		{"bucket name not deterministic", del("Resources.Bucket.Properties.BucketName"), "BucketName"},
		{"stream unencrypted", del("Resources.Stream.Properties.StreamEncryption"), "StreamEncryption"},
		{"shard count fixed", set("Resources.Stream.Properties.ShardCount", 4), "ShardCount parameter"},
		{"two shards by default", set("Parameters.ShardCount.Default", 2), "ShardCount default is 2"},
		{"no on-demand mode", set("Parameters.StreamMode.AllowedValues", []any{"PROVISIONED"}), "StreamMode allows"},
		{"queue unencrypted", del("Resources.FailureQueue.Properties.SqsManagedSseEnabled"), "server-side encryption"},
		{"no iterator age alarm", del("Resources.ProcessIteratorAgeAlarm"), "IteratorAge"},
		{"queue alarm on another metric", set("Resources.FailureQueueAlarm.Properties.MetricName", "NumberOfMessagesSent"), "ApproximateNumberOfMessagesVisible"},
		{"output missing", del("Outputs.StreamArn"), "output StreamArn is missing"},
		{"output names the wrong thing", set("Outputs.FailureQueueUrl.Value", map[string]any{"Ref": "Stream"}), "output FailureQueueUrl does not name FailureQueue"},
		{"no transform", del("Transform"), "Transform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broken := base.Clone()
			tt.change(broken.Doc)
			got := problems(broken, files)
			for _, p := range got {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %q", tt.want, got)
		})
	}
}

// set returns a change that sets the value at a dotted path (list indexes as numbers), creating maps.
func set(path string, v any) func(map[string]any) {
	return func(d map[string]any) {
		parent, last := walk(d, path)
		switch p := parent.(type) {
		case map[string]any:
			p[last] = v
		case []any:
			i, _ := strconv.Atoi(last)
			p[i] = v
		}
	}
}

// del returns a change that removes the value at a dotted path.
func del(path string) func(map[string]any) {
	return func(d map[string]any) {
		parent, last := walk(d, path)
		switch p := parent.(type) {
		case map[string]any:
			if _, ok := p[last]; !ok {
				panic("del: nothing at " + path)
			}
			delete(p, last)
		case []any:
			// Lists are shared by their parent: rebuild the parent's list without the element.
			i, _ := strconv.Atoi(last)
			gp, key := walk(d, path[:strings.LastIndex(path, ".")])
			gp.(map[string]any)[key] = append(append([]any{}, p[:i]...), p[i+1:]...)
		}
	}
}

// appendTo returns a change that appends v to the list at path.
func appendTo(path string, v any) func(map[string]any) {
	return func(d map[string]any) {
		parent, last := walk(d, path)
		m := parent.(map[string]any)
		m[last] = append(anyList(m[last]), v)
	}
}

func walk(d map[string]any, path string) (parent any, last string) {
	keys := strings.Split(path, ".")
	var cur any = d
	for _, k := range keys[:len(keys)-1] {
		switch x := cur.(type) {
		case map[string]any:
			next, ok := x[k]
			if !ok {
				next = map[string]any{}
				x[k] = next
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(x) {
				panic(fmt.Sprintf("walk %s: bad index %s", path, k))
			}
			cur = x[i]
		default:
			panic(fmt.Sprintf("walk %s: %s is not a container", path, k))
		}
	}
	return cur, keys[len(keys)-1]
}
