package samtemplate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/taxistream/taxistream/internal/testenv"
)

// samSchema compiles the official SAM schema (../shared/schemas/sam.schema.json, draft-04) and returns
// a function validating an instance against one of its definitions ("" for the whole template).
func samSchema(t *testing.T) func(definition string, instance any) error {
	t.Helper()
	path := testenv.SharedFile(t, "schemas/sam.schema.json")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.UseRegexpEngine(compileRegexp)
	const url = "file:///sam.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	cache := map[string]*jsonschema.Schema{}
	return func(definition string, instance any) error {
		loc := url
		if definition != "" {
			loc += "#/definitions/" + definition
		}
		sch, ok := cache[loc]
		if !ok {
			var err error
			if sch, err = c.Compile(loc); err != nil {
				return fmt.Errorf("compiling %s: %w", loc, err)
			}
			cache[loc] = sch
		}
		return sch.Validate(jsonInstance(t, placeholders(instance)))
	}
}

// negativeLookahead is the one pattern of the SAM schema Go's regexp cannot compile:
// "^(?!AWS::Serverless::).+$" (any resource type that is not a SAM one).
var negativeLookahead = regexp.MustCompile(`^\^\(\?!([^()]*)\)\.\+\$$`)

type notPrefixed struct{ pattern, prefix string }

func (n notPrefixed) MatchString(s string) bool { return s != "" && !strings.HasPrefix(s, n.prefix) }
func (n notPrefixed) String() string            { return n.pattern }

func compileRegexp(s string) (jsonschema.Regexp, error) {
	if re, err := regexp.Compile(s); err == nil {
		return re, nil
	}
	if m := negativeLookahead.FindStringSubmatch(s); m != nil {
		return notPrefixed{s, strings.ReplaceAll(m[1], `\`, "")}, nil
	}
	return nil, fmt.Errorf("pattern %q: not supported by Go's regexp", s)
}

// placeholders replaces every intrinsic function by a placeholder string, as cfn-lint does: the SAM
// schema types the values CloudFormation resolves, and (PassThroughProp aside) expects strings where our
// template uses intrinsics (Bucket, Role, FunctionName, ...).
func placeholders(v any) any {
	if name, _, ok := Intrinsic(v); ok && name != "Condition" {
		return "{" + name + "}"
	}
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = placeholders(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = placeholders(e)
		}
		return l
	}
	return v
}

func jsonInstance(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// samDefinition is the SAM schema's definition of a resource type, e.g. AWS::Serverless::Function.
func samDefinition(typ string) string {
	return "samtranslator__internal__schema_source__aws_serverless_" + strings.ToLower(strings.TrimPrefix(typ, "AWS::Serverless::")) + "__Resource"
}

// samErrors validates the template's Globals, every AWS::Serverless::* resource and the whole template.
func samErrors(validate func(string, any) error, tpl *Template) []string {
	var errs []string
	if g, ok := tpl.Doc["Globals"]; ok {
		if err := validate("__main____Globals", g); err != nil {
			errs = append(errs, fmt.Sprintf("Globals: %v", err))
		}
	}
	n := 0
	for _, id := range tpl.ResourceIDs("") {
		res := tpl.Section("Resources")[id].(map[string]any)
		typ, _ := res["Type"].(string)
		if !strings.HasPrefix(typ, "AWS::Serverless::") {
			continue
		}
		n++
		if err := validate(samDefinition(typ), res); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", id, err))
		}
	}
	if n == 0 {
		errs = append(errs, "no AWS::Serverless::* resource validated")
	}
	if err := validate("", tpl.Doc); err != nil {
		errs = append(errs, fmt.Sprintf("template: %v", err))
	}
	return errs
}

func TestSAMSchema(t *testing.T) {
	validate := samSchema(t)
	for _, e := range samErrors(validate, loadStack(t)) {
		t.Error(e)
	}
}

// TestSAMSchemaCatches shows the schema check failing on mistakes the other checks would not name.
func TestSAMSchemaCatches(t *testing.T) {
	validate := samSchema(t)
	base := loadStack(t)
	const trips = "Resources.ProcessFunction.Properties.Events.Trips."
	tests := []struct {
		name   string
		change func(map[string]any)
		want   string
	}{
		{"misspelled ESM property", set(trips+"Properties.BisectBatchOnFunctionErrors", true), "BisectBatchOnFunctionErrors"},
		{"unknown function property", set("Resources.IngestFunction.Properties.Runtimes", "provided.al2023"), "Runtimes"},
		{"unknown Globals property", set("Globals.Function.Concurrency", 5), "Concurrency"},
		{"unknown event type", set(trips+"Type", "KinesisStream"), "ProcessFunction"},
		{"S3 event without bucket", del("Resources.IngestFunction.Properties.Events.RawCsv.Properties.Bucket"), "Bucket"},
		{"bad tracing mode", set("Resources.ReplayFunction.Properties.Tracing", "On"), "ReplayFunction"},
		{"resource without Type", del("Resources.ReplayFunction.Type"), "template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broken := base.Clone()
			tt.change(broken.Doc)
			errs := samErrors(validate, broken)
			if len(errs) == 0 {
				t.Fatalf("the SAM schema accepts the broken template")
			}
			if !strings.Contains(strings.Join(errs, "\n"), tt.want) {
				t.Errorf("errors do not mention %q: %q", tt.want, errs)
			}
		})
	}
}

// cfnResources parses the AWS::* (non-SAM) resources with goformation's typed resources, which reject
// unknown properties and mistyped values. goformation does not know newer SAM function properties and
// drops Kinesis event properties, so the SAM resources are left to the SAM schema. (encoding/json matches
// property names case-insensitively, so a wrongly cased name passes here.)
func cfnResources(tpl *Template) (*cloudformation.Template, error) {
	doc := map[string]any{}
	for _, k := range []string{"AWSTemplateFormatVersion", "Parameters", "Conditions", "Mappings"} {
		if v, ok := tpl.Doc[k]; ok {
			doc[k] = deepCopy(v)
		}
	}
	res := map[string]any{}
	known := cloudformation.AllResources()
	var unknown []string
	for id, r := range tpl.Section("Resources") {
		typ, _ := dig(r, "Type").(string)
		if strings.HasPrefix(typ, "AWS::Serverless::") {
			continue
		}
		if _, ok := known[typ]; !ok {
			unknown = append(unknown, fmt.Sprintf("%s: unknown resource type %q", id, typ))
			continue
		}
		res[id] = deepCopy(r)
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%s", strings.Join(unknown, "; "))
	}
	doc["Resources"] = res
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return goformation.ParseJSON(b)
}

func TestCloudFormationResources(t *testing.T) {
	cfn, err := cfnResources(loadStack(t))
	if err != nil {
		t.Fatalf("goformation: %v", err)
	}
	s, err := cfn.GetKinesisStreamWithName("Stream")
	if err != nil {
		t.Fatal(err)
	}
	if s.StreamEncryption == nil || s.StreamEncryption.EncryptionType != "KMS" {
		t.Errorf("typed stream encryption %+v, want KMS", s.StreamEncryption)
	}
	if s.RetentionPeriodHours == nil || *s.RetentionPeriodHours != 24 {
		t.Errorf("typed RetentionPeriodHours %v, want 24 (the parameter's default)", s.RetentionPeriodHours)
	}
	ds, err := cfn.GetKinesisFirehoseDeliveryStreamWithName("DeliveryStream")
	if err != nil {
		t.Fatal(err)
	}
	if ds.ExtendedS3DestinationConfiguration == nil || ds.ExtendedS3DestinationConfiguration.ErrorOutputPrefix == nil {
		t.Errorf("typed delivery stream has no ErrorOutputPrefix")
	}
	if ds.KinesisStreamSourceConfiguration == nil {
		t.Errorf("typed delivery stream has no KinesisStreamSourceConfiguration")
	}
	b, err := cfn.GetS3BucketWithName("Bucket")
	if err != nil {
		t.Fatal(err)
	}
	if b.PublicAccessBlockConfiguration == nil || b.PublicAccessBlockConfiguration.BlockPublicPolicy == nil || !*b.PublicAccessBlockConfiguration.BlockPublicPolicy {
		t.Errorf("typed bucket does not block public policies")
	}
	if _, err := cfn.GetSQSQueueWithName("FailureQueue"); err != nil {
		t.Error(err)
	}
}

func TestCloudFormationResourcesCatch(t *testing.T) {
	base := loadStack(t)
	tests := []struct {
		name   string
		change func(map[string]any)
		want   string
	}{
		{"misspelled stream property", set("Resources.Stream.Properties.ShardCounts", 1), "ShardCounts"},
		{"misspelled firehose property", set("Resources.DeliveryStream.Properties.ExtendedS3DestinationConfiguration.ErrorOutputPrefx", "x/"), "ErrorOutputPrefx"},
		{"misspelled bucket property", set("Resources.Bucket.Properties.PublicAccessBlockConfiguration.BlockPublicAcl", true), "BlockPublicAcl"},
		{"buffering as text", set("Resources.DeliveryStream.Properties.ExtendedS3DestinationConfiguration.BufferingHints.SizeInMBs", "lots"), "SizeInMBs"},
		{"queue SSE as text", set("Resources.FailureQueue.Properties.SqsManagedSseEnabled", "yes"), "SqsManagedSseEnabled"},
		{"unknown resource type", set("Resources.FailureQueue.Type", "AWS::SQS::Queues"), "AWS::SQS::Queues"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broken := base.Clone()
			tt.change(broken.Doc)
			_, err := cfnResources(broken)
			if err == nil {
				t.Fatal("goformation accepts the broken template")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}
