package samtemplate

import (
	"fmt"
	"path"
	"path/filepath"
	"reflect"

	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/testenv"
)

// motoUnsupported lists the resource types moto 5.2.1's CloudFormation does not create: it logs "No Moto
// CloudFormation support for <type>", skips the resource and leaves Refs to it unresolved (an output
// naming only such a resource is missing from the stack). Every other resource must be created, so a
// new resource of an unsupported type fails TestMotoDeployment until it is added here with its reason.
// Types not in the template yet are listed ahead for the resources announced (sweeper schedule, Glue
// catalogue, Athena workgroup and queries); checked against moto 5.2.1's model map.
var motoUnsupported = map[string]string{
	"AWS::S3::BucketPolicy":                "the TLS-only bucket policy: the template tests check it",
	"AWS::SQS::QueuePolicy":                "the TLS-only queue policy: the template tests check it",
	"AWS::KinesisFirehose::DeliveryStream": "the archive: the template tests and the local cloud's Firehose check it",
	"AWS::Lambda::EventInvokeConfig":       "async retries and destinations: TestSAMTranslation checks them",
	"AWS::CloudWatch::Alarm":               "the alarms: the template tests check them",
	"AWS::Scheduler::Schedule":             "not in the template (CompactFunction's schedule is an AWS::Events::Rule, which moto creates)",
	"AWS::Glue::Database":                  "the catalogue: internal/catalog's tests check its tables against the written data and read a local run through them with DuckDB",
	"AWS::Glue::Table":                     "the catalogue: internal/catalog's tests check its tables against the written data and read a local run through them with DuckDB",
	"AWS::Athena::WorkGroup":               "the Athena workgroup: cfn-lint and the translator check it",
	"AWS::Athena::NamedQuery":              "the saved queries: internal/catalog's test runs each one on DuckDB over the local tables",
}

// motoIgnores are properties moto accepts and does not apply, so the deployment cannot check them
// (the template tests and the translator test do): S3 notifications, versioning, lifecycle, ownership
// and public access block; Kinesis StreamEncryption; Lambda Architectures and LoggingConfig.

const (
	motoStack   = "taxistream"
	motoAccount = "123456789012" // moto's default account
	motoRegion  = "us-east-1"
)

// motoDeployment is what samcheck.py deploy reports.
type motoDeployment struct {
	Status       string `json:"status"`
	StatusReason string `json:"status_reason"`
	WaitError    string `json:"wait_error"`
	Outputs      map[string]string
	Resources    []struct {
		LogicalID  string         `json:"logical_id"`
		Type       string         `json:"type"`
		PhysicalID string         `json:"physical_id"`
		Status     string         `json:"status"`
		Described  map[string]any `json:"described"`
	} `json:"resources"`
	NotCreated []struct {
		LogicalID       string `json:"logical_id"`
		Type            string `json:"type"`
		Condition       string `json:"condition"`
		SupportedByMoto bool   `json:"supported_by_moto"`
	} `json:"not_created"`
	FailedEvents []map[string]any `json:"failed_events"`
}

// TestMotoDeployment creates the translated stack on moto_server's CloudFormation (started on a loopback
// port for this test and stopped after it): CREATE_COMPLETE, every resource created (or of a type moto
// does not support, listed in motoUnsupported), every output present, and the values moto resolved
// (functions' environment, the event source mapping, stream, queue, bucket, outputs) equal to what
// internal/samtemplate resolves from template.yaml for the same names — the local cloud reads the
// template through that code.
func TestMotoDeployment(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t, motoModules...)
	endpoint := startMoto(t, py) // starts while the translator runs
	doc := translatedStack(t)
	file := writeJSON(t, filepath.Join(t.TempDir(), "packaged.json"), doc)
	var d motoDeployment
	samcheck(t, py, &d, "deploy", "--endpoint", endpoint, "--stack", motoStack, "--code-uri", codeURI, file)

	if d.Status != "CREATE_COMPLETE" || d.WaitError != "" || len(d.FailedEvents) > 0 {
		t.Fatalf("stack %s (%s), waiter %q, failed events %v", d.Status, d.StatusReason, d.WaitError, d.FailedEvents)
	}
	out := &Template{Doc: doc}
	e, err := newEvaluator(out, nil, Resolver{StackName: motoStack, AccountID: motoAccount, Region: motoRegion})
	if err != nil {
		t.Fatal(err)
	}
	skipped := map[string]string{} // logical id -> type, resources moto did not create
	for _, nc := range d.NotCreated {
		if nc.Condition != "" {
			if on, err := e.condition(nc.Condition); err == nil && !on {
				continue // CloudFormation would not create it either
			}
		}
		why, listed := motoUnsupported[nc.Type]
		switch {
		case nc.SupportedByMoto:
			t.Errorf("moto did not create %s (%s) although it supports the type", nc.LogicalID, nc.Type)
		case !listed:
			t.Errorf("moto does not support %s (%s): add the type to motoUnsupported with how else it is checked", nc.Type, nc.LogicalID)
		default:
			t.Logf("not created by moto (unsupported): %s %s — %s", nc.Type, nc.LogicalID, why)
		}
		skipped[nc.LogicalID] = nc.Type
	}
	created := map[string]int{}
	for i, r := range d.Resources {
		created[r.LogicalID] = i
		if r.Status != "CREATE_COMPLETE" {
			t.Errorf("%s (%s): %s", r.LogicalID, r.Type, r.Status)
		}
		if e, ok := r.Described["describe_error"]; ok {
			t.Errorf("%s (%s): describing it: %v", r.LogicalID, r.Type, e)
		}
		if _, unsupported := motoUnsupported[r.Type]; unsupported {
			t.Logf("moto now creates %s (%s): it can leave motoUnsupported", r.Type, r.LogicalID)
		}
	}

	// The names moto gave the resources, for resolving template.yaml the same way.
	phys := func(id string) (map[string]any, string, bool) {
		i, ok := created[id]
		if !ok {
			return nil, "", false
		}
		return d.Resources[i].Described, d.Resources[i].PhysicalID, true
	}
	resolver := Resolver{StackName: motoStack, AccountID: motoAccount, Region: motoRegion,
		Ref: func(r Resource) (string, bool) {
			_, id, ok := phys(r.LogicalID)
			return id, ok
		},
		GetAtt: func(r Resource, attr string) (string, bool) {
			desc, id, ok := phys(r.LogicalID)
			if !ok {
				return "", false
			}
			switch attr {
			case "Arn":
				arn, ok := desc["arn"].(string)
				return arn, ok
			case "QueueName":
				return path.Base(id), true
			case "QueueUrl":
				return id, r.Type == "AWS::SQS::Queue"
			}
			return "", false
		}}

	// Outputs: present unless they name a resource moto did not create; equal to our evaluation.
	ev, err := newEvaluator(loadStack(t), nil, resolver)
	if err != nil {
		t.Fatal(err)
	}
	outputs := out.Section("Outputs")
	for _, name := range sortedKeys(outputs) {
		o, _ := outputs[name].(map[string]any)
		if c, ok := o["Condition"].(string); ok {
			if on, err := e.condition(c); err == nil && !on {
				continue
			}
		}
		var unresolvable []string
		for id := range skipped {
			if refersTo(o["Value"], id) {
				unresolvable = append(unresolvable, id)
			}
		}
		got, present := d.Outputs[name]
		if len(unresolvable) > 0 {
			t.Logf("output %s names %v, which moto did not create: not checkable here (present: %v)", name, unresolvable, present)
			continue
		}
		if !present || got == "" || strings.Contains(got, "${") {
			t.Errorf("output %s is %q (present %v)", name, got, present)
			continue
		}
		want, err := ev.evalString(o["Value"])
		if err != nil {
			t.Errorf("output %s: evaluating it here: %v", name, err)
		} else if got != want {
			t.Errorf("output %s: moto %q, internal/samtemplate %q", name, got, want)
		}
	}

	s, err := loadStack(t).ResolveWith(nil, resolver)
	if err != nil {
		t.Fatalf("resolving template.yaml with moto's names: %v", err)
	}
	checkMotoFunctions(t, s, phys)
	checkMotoResources(t, loadStack(t), ev, s, phys)
}

type physFunc func(id string) (described map[string]any, physicalID string, ok bool)

func checkMotoFunctions(t *testing.T, s *Settings, phys physFunc) {
	t.Helper()
	for _, id := range sortedKeys(anyMap(s.Functions)) {
		f := s.Functions[id]
		desc, name, ok := phys(id)
		if !ok {
			t.Errorf("function %s was not created", id)
			continue
		}
		if name != f.Name {
			t.Errorf("function %s is named %q by moto, %q here", id, name, f.Name)
		}
		env := map[string]string{}
		for k, v := range anyMapOf(desc["environment"]) {
			env[k] = scalarString(jsonInt(v))
		}
		if !reflect.DeepEqual(env, f.Env) {
			t.Errorf("function %s environment:\n moto %v\n here %v", id, env, f.Env)
		}
		for _, c := range []struct {
			what      string
			moto, our any
		}{
			{"Runtime", desc["runtime"], f.Runtime},
			{"Handler", desc["handler"], f.Handler},
			{"Timeout", jsonInt(desc["timeout"]), f.TimeoutSeconds},
			{"MemorySize", jsonInt(desc["memory_size"]), f.MemoryMB},
		} {
			if fmt.Sprint(c.moto) != fmt.Sprint(c.our) {
				t.Errorf("function %s %s: moto %v, here %v", id, c.what, c.moto, c.our)
			}
		}
		for _, k := range f.KinesisEvents {
			m, _, ok := phys(id + k.Name)
			if !ok {
				t.Errorf("event source mapping %s%s was not created", id, k.Name)
				continue
			}
			want := map[string]any{
				"EventSourceArn": k.StreamARN, "StartingPosition": k.StartingPosition, "BatchSize": k.BatchSize,
				"MaximumBatchingWindowInSeconds": k.MaximumBatchingWindowInSeconds, "ParallelizationFactor": k.ParallelizationFactor,
				"MaximumRetryAttempts": k.MaximumRetryAttempts, "MaximumRecordAgeInSeconds": k.MaximumRecordAgeInSeconds,
				"BisectBatchOnFunctionError": k.BisectBatchOnFunctionError, "TumblingWindowInSeconds": k.TumblingWindowInSeconds,
				"FunctionResponseTypes": k.FunctionResponseTypes, "OnFailure": k.OnFailureDestination, "FunctionArn": f.ARN,
			}
			got := map[string]any{"OnFailure": dig(m, "DestinationConfig", "OnFailure", "Destination")}
			for key := range want {
				if v, ok := m[key]; ok {
					got[key] = v
				}
			}
			for key, w := range want {
				g, ok := got[key]
				if !ok {
					t.Logf("event source mapping %s%s: moto does not report %s", id, k.Name, key)
					continue
				}
				if fmt.Sprint(jsonInt(g)) != fmt.Sprint(w) {
					t.Errorf("event source mapping %s%s %s: moto %v, here %v", id, k.Name, key, g, w)
				}
			}
		}
	}
}

// checkMotoResources compares the stream, queues and bucket moto created with the template's values.
func checkMotoResources(t *testing.T, tpl *Template, ev *evaluator, s *Settings, phys physFunc) {
	t.Helper()
	if desc, name, ok := phys(s.Stream.LogicalID); !ok {
		t.Errorf("stream %s was not created", s.Stream.LogicalID)
	} else {
		want := map[string]any{"name": s.Stream.Name, "arn": s.Stream.ARN, "shards": s.Stream.ShardCount,
			"retention_hours": s.Stream.RetentionHours, "mode": s.Stream.Mode}
		for k, w := range want {
			if fmt.Sprint(jsonInt(desc[k])) != fmt.Sprint(w) {
				t.Errorf("stream %s %s: moto %v, here %v", name, k, desc[k], w)
			}
		}
	}
	// Queue attributes the template sets, as SQS reports them (strings).
	for _, id := range tpl.ResourceIDs("AWS::SQS::Queue") {
		desc, url, ok := phys(id)
		if !ok {
			t.Errorf("queue %s was not created", id)
			continue
		}
		r, _ := tpl.Resource(id)
		props, err := ev.evalMap(r.Properties)
		if err != nil {
			t.Fatal(err)
		}
		attrs := anyMapOf(desc["attributes"])
		for _, k := range sortedKeys(props) {
			if k == "QueueName" || k == "Tags" || k == "RedrivePolicy" {
				continue
			}
			if got, want := fmt.Sprint(attrs[k]), scalarString(props[k]); got != want {
				t.Errorf("queue %s %s: moto %q, template %q", url, k, got, want)
			}
		}
		if q := s.Queues[id]; q.ARN != desc["arn"] || q.URL != url {
			t.Errorf("queue %s: moto %v %s, here %s %s", id, desc["arn"], url, q.ARN, q.URL)
		}
	}
	if desc, name, ok := phys(s.Bucket.LogicalID); !ok {
		t.Errorf("bucket %s was not created", s.Bucket.LogicalID)
	} else {
		r, _ := tpl.Resource(s.Bucket.LogicalID)
		want := dig(r.Properties, "BucketEncryption", "ServerSideEncryptionConfiguration", "0", "ServerSideEncryptionByDefault", "SSEAlgorithm")
		got := dig(desc["encryption"], "Rules", "0", "ApplyServerSideEncryptionByDefault", "SSEAlgorithm")
		if name != s.Bucket.Name || got != want {
			t.Errorf("bucket %s (here %s): encryption %v, template %v", name, s.Bucket.Name, got, want)
		}
	}
}

// jsonInt turns a JSON number that is an integer into an int (moto reports some as numbers, some as
// strings; Settings has ints).
func jsonInt(v any) any {
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		return int(f)
	}
	return v
}

func anyMapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// anyMap turns a map of any value type into map[string]any for sortedKeys.
func anyMap[V any](m map[string]V) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
