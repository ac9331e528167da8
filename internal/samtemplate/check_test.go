package samtemplate

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/testenv"
)

// The stack's contract (DESIGN.md, "AWS resources"), checked by problems below.
var (
	wantFunctions = []string{"CompactFunction", "IngestFunction", "ProcessFunction", "ReplayFunction"}
	// producerActions is exactly what a producer needs (DESIGN.md): no KinesisCrudPolicy.
	producerActions = []string{"kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:PutRecord", "kinesis:PutRecords"}
	// consumerActions is what the Kinesis event source mapping may use (Lambda developer guide).
	consumerActions = []string{"kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
		"kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:SubscribeToShard"}
	wantSuffixes = []string{".csv", ".csv.gz", ".parquet"}
	// wantEnv is what each function must get (a subset of the variables internal/config reads).
	wantEnv = map[string][]string{
		"IngestFunction":  {"BUCKET_NAME", "DEADLINE_MARGIN", "KPL_AGGREGATION", "MAX_CONTINUATIONS", "METRICS_NAMESPACE", "PARTITION_KEY_FIELD", "STREAM_NAME"},
		"ProcessFunction": {"BUCKET_NAME", "METRICS_NAMESPACE", "ZONE_LOOKUP"},
		"ReplayFunction":  {"BUCKET_NAME", "DEADLINE_MARGIN", "INGEST_FUNCTION_NAME", "MAX_CONTINUATIONS", "METRICS_NAMESPACE", "REPLAY_MAX_IN_FLIGHT"},
		"CompactFunction": {"BUCKET_NAME", "COMPACT_TARGET_FILE_MB", "DEADLINE_MARGIN", "MAX_CONTINUATIONS", "METRICS_NAMESPACE"},
	}
	deterministicBucketName = "${AWS::StackName}-${AWS::AccountId}-${AWS::Region}"
)

// stackFiles is what problems reads besides the template.
type stackFiles struct {
	makefile  string   // the Makefile's text
	configEnv []string // the environment variables internal/config reads (set by Lambda ones excluded)
}

func readStackFiles(t *testing.T) stackFiles {
	t.Helper()
	root := testenv.Root(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(root, "internal", "config", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	return stackFiles{makefile: string(mk), configEnv: configEnvVars(string(cfg))}
}

// configEnvVars finds the quoted SCREAMING_SNAKE names in config.go, without the ones Lambda sets
// (AWS_LAMBDA_*) and the LOG_LEVEL fallback (LoggingConfig sets AWS_LAMBDA_LOG_LEVEL).
func configEnvVars(src string) []string {
	re := regexp.MustCompile(`"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"`)
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		n := m[1]
		if strings.HasPrefix(n, "AWS_LAMBDA_") || n == "LOG_LEVEL" {
			continue
		}
		seen[n] = true
	}
	return sortedSet(seen)
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// problems lists every way tpl breaks the stack's contract; an empty list means the template is right.
func problems(tpl *Template, files stackFiles) []string {
	c := &checker{t: tpl, files: files}
	c.transform()
	c.parameters()
	c.functions()
	c.bucket()
	c.stream()
	c.firehose()
	c.queueAndAlarms()
	c.iam()
	c.outputs()
	c.resolved()
	return c.out
}

type checker struct {
	t     *Template
	files stackFiles
	out   []string
}

func (c *checker) addf(format string, args ...any) {
	c.out = append(c.out, fmt.Sprintf(format, args...))
}

func (c *checker) transform() {
	if c.t.Doc["Transform"] != "AWS::Serverless-2016-10-31" {
		c.addf("Transform is %v, want AWS::Serverless-2016-10-31", c.t.Doc["Transform"])
	}
}

func (c *checker) parameters() {
	params := c.t.Section("Parameters")
	for _, p := range []string{"ShardCount", "StreamMode", "RetentionHours", "FirehoseBufferSizeMB",
		"FirehoseBufferIntervalSeconds", "TumblingWindowSeconds", "LogLevel", "PartitionKeyField", "KplAggregation",
		"ZoneLookupKey", "BatchSize", "ShardRouting"} {
		if _, ok := params[p]; !ok {
			c.addf("parameter %s is missing", p)
		}
	}
	if d, _ := params["ShardCount"].(map[string]any); scalarString(d["Default"]) != "1" {
		c.addf("ShardCount default is %v, want 1", d["Default"])
	}
	if d, _ := params["StreamMode"].(map[string]any); !sameStrings(anyStrings(d["AllowedValues"]), []string{"ON_DEMAND", "PROVISIONED"}) {
		c.addf("StreamMode allows %v, want PROVISIONED and ON_DEMAND", d["AllowedValues"])
	}
	if d, _ := params["KplAggregation"].(map[string]any); !sameStrings(anyStrings(d["AllowedValues"]), []string{"false", "true"}) {
		c.addf("KplAggregation allows %v, want true and false", d["AllowedValues"])
	}
	if d, _ := params["ShardRouting"].(map[string]any); !sameStrings(anyStrings(d["AllowedValues"]), []string{"balanced", "key"}) || scalarString(d["Default"]) != "balanced" {
		c.addf("ShardRouting allows %v (default %v), want balanced (default) and key", d["AllowedValues"], d["Default"])
	}
}

func (c *checker) functions() {
	ids := c.t.ResourceIDs("AWS::Serverless::Function")
	if !slices.Equal(ids, wantFunctions) {
		c.addf("functions are %v, want %v", ids, wantFunctions)
	}
	for _, id := range ids {
		p, err := c.t.FunctionProperties(id)
		if err != nil {
			c.addf("%s: %v", id, err)
			continue
		}
		r, _ := c.t.Resource(id)
		if p["Runtime"] != "provided.al2023" {
			c.addf("%s: Runtime %v, want provided.al2023", id, p["Runtime"])
		}
		if a := anyStrings(p["Architectures"]); !slices.Equal(a, []string{"arm64"}) {
			c.addf("%s: Architectures %v, want [arm64]", id, a)
		}
		if p["Handler"] != "bootstrap" {
			c.addf("%s: Handler %v, want bootstrap", id, p["Handler"])
		}
		if r.Metadata["BuildMethod"] != "makefile" {
			c.addf("%s: Metadata.BuildMethod %v, want makefile", id, r.Metadata["BuildMethod"])
		}
		if !regexp.MustCompile(`(?m)^build-` + regexp.QuoteMeta(id) + `:`).MatchString(c.files.makefile) {
			c.addf("%s: the Makefile has no build-%s target (SAM's makefile builder calls it)", id, id)
		}
		lc, _ := p["LoggingConfig"].(map[string]any)
		if lc["LogFormat"] != "JSON" {
			c.addf("%s: LoggingConfig.LogFormat %v, want JSON", id, lc["LogFormat"])
		}
		if !reflect.DeepEqual(lc["ApplicationLogLevel"], map[string]any{"Ref": "LogLevel"}) {
			c.addf("%s: LoggingConfig.ApplicationLogLevel %v, want !Ref LogLevel", id, lc["ApplicationLogLevel"])
		}
		fn, _ := p["FunctionName"].(map[string]any)
		if _, ok := fn["Fn::Sub"]; !ok && (id == "IngestFunction" || id == "ReplayFunction" || id == "CompactFunction") {
			c.addf("%s: FunctionName %v, want a deterministic !Sub name (its own policy names it)", id, p["FunctionName"])
		}
		if id == "IngestFunction" {
			// The bucket's notification depends on IngestFunction; IngestFunction may name the bucket only
			// in its S3 events, never elsewhere (policies, environment): that is a circular dependency.
			rest := deepCopy(p).(map[string]any)
			delete(rest, "Events")
			if refersTo(rest, "Bucket") {
				c.addf("IngestFunction refers to the Bucket resource outside its S3 events (circular dependency)")
			}
		}
	}
	c.s3Events()
	c.kinesisEvents()
	proc, _ := c.t.FunctionProperties("ProcessFunction")
	role, _ := proc["Role"].(map[string]any)
	att, _ := role["Fn::GetAtt"].([]any)
	if len(att) != 2 || att[1] != "Arn" {
		c.addf("ProcessFunction: Role %v, want !GetAtt <its own AWS::IAM::Role>.Arn (else SAM attaches AWSLambdaKinesisExecutionRole, Resource *)", proc["Role"])
	} else if r, ok := c.t.Resource(fmt.Sprint(att[0])); !ok || r.Type != "AWS::IAM::Role" {
		c.addf("ProcessFunction: Role %v is not an AWS::IAM::Role of the template", att[0])
	}
	if _, ok := proc["Policies"]; ok {
		c.addf("ProcessFunction: Policies next to Role (SAM ignores them)")
	}
	for _, id := range []string{"IngestFunction", "ReplayFunction", "CompactFunction"} {
		p, _ := c.t.FunctionProperties(id)
		if p["RecursiveLoop"] != "Allow" {
			c.addf("%s: RecursiveLoop %v, want Allow (it continues itself, bounded by MAX_CONTINUATIONS)", id, p["RecursiveLoop"])
		}
	}
}

// sweepEvent checks IngestFunction's sweeper schedule: an enabled rate or cron schedule whose Input is
// the sweep event the handler accepts.
func (c *checker) sweepEvent(ev map[string]any) {
	props, _ := ev["Properties"].(map[string]any)
	if ev["Type"] != "Schedule" {
		c.addf("IngestFunction: event Sweep is %v, want Schedule", ev["Type"])
		return
	}
	if sch, _ := props["Schedule"].(string); !strings.HasPrefix(sch, "rate(") && !strings.HasPrefix(sch, "cron(") {
		c.addf("IngestFunction: event Sweep: Schedule %v, want rate(...) or cron(...)", props["Schedule"])
	}
	if en, ok := props["Enabled"].(bool); ok && !en {
		c.addf("IngestFunction: event Sweep is disabled: stuck objects would never finish")
	}
	if props["Input"] != `{"taxistream":"sweep"}` {
		c.addf(`IngestFunction: event Sweep: Input %v, want {"taxistream":"sweep"}`, props["Input"])
	}
}

func (c *checker) s3Events() {
	p, _ := c.t.FunctionProperties("IngestFunction")
	events, _ := p["Events"].(map[string]any)
	var got []S3Event
	for _, name := range sortedKeys(events) {
		ev, _ := events[name].(map[string]any)
		if name == "Sweep" {
			c.sweepEvent(ev)
			continue
		}
		if ev["Type"] != "S3" {
			c.addf("IngestFunction: event %s is %v, want S3 (or the Sweep schedule)", name, ev["Type"])
			continue
		}
		props, _ := ev["Properties"].(map[string]any)
		if !reflect.DeepEqual(props["Bucket"], map[string]any{"Ref": "Bucket"}) {
			c.addf("IngestFunction: event %s: Bucket %v, want !Ref Bucket", name, props["Bucket"])
		}
		e, err := s3Event(name, props)
		if err != nil {
			c.addf("IngestFunction: %v", err)
			continue
		}
		if !slices.Equal(e.Events, []string{"s3:ObjectCreated:*"}) {
			c.addf("IngestFunction: event %s: Events %v, want [s3:ObjectCreated:*]", name, e.Events)
		}
		if e.Prefix != "raw/" {
			c.addf("IngestFunction: event %s: prefix %q, want raw/", name, e.Prefix)
		}
		got = append(got, e)
	}
	var suffixes []string
	for _, e := range got {
		suffixes = append(suffixes, e.Suffix)
	}
	sort.Strings(suffixes)
	if !slices.Equal(suffixes, wantSuffixes) {
		c.addf("IngestFunction: S3 suffix rules %q, want %q", suffixes, wantSuffixes)
	}
	// S3 rejects two configurations for the same event type whose prefixes and suffixes both overlap.
	for i := range got {
		for j := i + 1; j < len(got); j++ {
			a, b := got[i], got[j]
			if overlaps(a.Prefix, b.Prefix, strings.HasPrefix) && overlaps(a.Suffix, b.Suffix, strings.HasSuffix) {
				c.addf("IngestFunction: events %s and %s overlap (S3 rejects the configuration)", a.Name, b.Name)
			}
		}
	}
	// Every raw file type is notified exactly once; nothing the pipeline writes is.
	for key, want := range map[string]int{
		"raw/2019/yellow tripdata+sample.csv":      1,
		"raw/2019/yellow_tripdata_2019-01.csv.gz":  1,
		"raw/2024/yellow_tripdata_2024-01.parquet": 1,
		"raw/notes.txt":                                       0,
		"archive/2024/05/14/09/x.csv":                         0,
		"rejected/raw/2019/a.csv":                             0,
		"state/raw/2019/a.csv.gz":                             0,
		"processed/trips/pickup_date=2019-01-01/part.parquet": 0,
	} {
		n := 0
		for _, e := range got {
			if e.Matches("ObjectCreated:Put", key) {
				n++
			}
		}
		if n != want {
			c.addf("IngestFunction: an upload of %q is notified %d times, want %d", key, n, want)
		}
	}
}

func overlaps(a, b string, has func(s, x string) bool) bool { return has(a, b) || has(b, a) }

func (c *checker) kinesisEvents() {
	p, _ := c.t.FunctionProperties("ProcessFunction")
	events, _ := p["Events"].(map[string]any)
	if len(events) != 1 {
		c.addf("ProcessFunction: %d events, want one Kinesis event", len(events))
	}
	for name, v := range events {
		ev, _ := v.(map[string]any)
		if ev["Type"] != "Kinesis" {
			c.addf("ProcessFunction: event %s is %v, want Kinesis", name, ev["Type"])
			continue
		}
		props, _ := ev["Properties"].(map[string]any)
		if !reflect.DeepEqual(props["Stream"], map[string]any{"Fn::GetAtt": []any{"Stream", "Arn"}}) {
			c.addf("ProcessFunction: Stream %v, want !GetAtt Stream.Arn", props["Stream"])
		}
		for prop, want := range map[string]any{
			"BatchSize":                      map[string]any{"Ref": "BatchSize"},
			"MaximumBatchingWindowInSeconds": map[string]any{"Ref": "MaximumBatchingWindowSeconds"},
			"TumblingWindowInSeconds":        map[string]any{"Ref": "TumblingWindowSeconds"},
		} {
			if !reflect.DeepEqual(props[prop], want) {
				c.addf("ProcessFunction: %s %v, want %v", prop, props[prop], want)
			}
		}
	}
	// The values (with the parameters' defaults) are checked in resolved.
}

func (c *checker) bucket() {
	b, ok := c.t.Resource("Bucket")
	if !ok || b.Type != "AWS::S3::Bucket" {
		c.addf("no AWS::S3::Bucket named Bucket")
		return
	}
	if !reflect.DeepEqual(b.Properties["BucketName"], map[string]any{"Fn::Sub": deterministicBucketName}) {
		c.addf("Bucket: BucketName %v, want !Sub '%s'", b.Properties["BucketName"], deterministicBucketName)
	}
	enc := dig(b.Properties, "BucketEncryption", "ServerSideEncryptionConfiguration", "0", "ServerSideEncryptionByDefault", "SSEAlgorithm")
	if enc != "AES256" && enc != "aws:kms" && enc != "aws:kms:dsse" {
		c.addf("Bucket: SSEAlgorithm %v, want AES256 or aws:kms", enc)
	}
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if v := dig(b.Properties, "PublicAccessBlockConfiguration", k); v != true {
			c.addf("Bucket: PublicAccessBlockConfiguration.%s %v, want true", k, v)
		}
	}
	// ACLs off: every object belongs to the bucket owner, whoever uploads it.
	if v := dig(b.Properties, "OwnershipControls", "Rules", "0", "ObjectOwnership"); v != "BucketOwnerEnforced" {
		c.addf("Bucket: ObjectOwnership %v, want BucketOwnerEnforced", v)
	}
	// Redeploy-safe: the data outlives the stack, but a failed first create (rollback) removes the new
	// bucket, else the next deploy under the same stack name fails on the existing bucket name.
	if b.DeletionPolicy != "RetainExceptOnCreate" {
		c.addf("Bucket: DeletionPolicy %q, want RetainExceptOnCreate", b.DeletionPolicy)
	}
	if b.UpdateReplacePolicy != "Retain" {
		c.addf("Bucket: UpdateReplacePolicy %q, want Retain", b.UpdateReplacePolicy)
	}
	if v := b.Properties["VersioningConfiguration"]; v != nil && !refersTo(v, "BucketVersioning") {
		c.addf("Bucket: VersioningConfiguration %v, want it from the BucketVersioning parameter", v)
	}
	noncurrent := false
	for _, r := range anyList(dig(b.Properties, "LifecycleConfiguration", "Rules")) {
		if dig(r, "Status") == "Enabled" && dig(r, "NoncurrentVersionExpiration", "NoncurrentDays") != nil {
			noncurrent = true
		}
	}
	if !noncurrent {
		c.addf("Bucket: no lifecycle rule expiring noncurrent versions (checkpoints rewrite manifests)")
	}
	tls := false
	for _, id := range c.t.ResourceIDs("AWS::S3::BucketPolicy") {
		bp, _ := c.t.Resource(id)
		if !reflect.DeepEqual(bp.Properties["Bucket"], map[string]any{"Ref": "Bucket"}) {
			continue
		}
		for _, s := range statements(dig(bp.Properties, "PolicyDocument")) {
			cond := dig(s, "Condition", "Bool", "aws:SecureTransport")
			if s["Effect"] == "Deny" && (cond == "false" || cond == false) && s["Principal"] == "*" &&
				slices.Contains(anyStrings(s["Action"]), "s3:*") && len(anyList(s["Resource"])) == 2 {
				tls = true
			}
		}
	}
	if !tls {
		c.addf("Bucket: no bucket policy denying s3:* on the bucket and its objects when aws:SecureTransport is false")
	}
}

func (c *checker) stream() {
	s, ok := c.t.Resource("Stream")
	if !ok || s.Type != "AWS::Kinesis::Stream" {
		c.addf("no AWS::Kinesis::Stream named Stream")
		return
	}
	if dig(s.Properties, "StreamEncryption", "EncryptionType") != "KMS" || dig(s.Properties, "StreamEncryption", "KeyId") != "alias/aws/kinesis" {
		c.addf("Stream: StreamEncryption %v, want KMS with alias/aws/kinesis", s.Properties["StreamEncryption"])
	}
	if !reflect.DeepEqual(dig(s.Properties, "StreamModeDetails", "StreamMode"), map[string]any{"Ref": "StreamMode"}) {
		c.addf("Stream: StreamModeDetails.StreamMode %v, want !Ref StreamMode", dig(s.Properties, "StreamModeDetails"))
	}
	if !refersTo(s.Properties["ShardCount"], "ShardCount") {
		c.addf("Stream: ShardCount %v does not use the ShardCount parameter", s.Properties["ShardCount"])
	}
}

func (c *checker) firehose() {
	ids := c.t.ResourceIDs("AWS::KinesisFirehose::DeliveryStream")
	if len(ids) != 1 {
		c.addf("%d delivery streams, want 1", len(ids))
		return
	}
	r, _ := c.t.Resource(ids[0])
	p := r.Properties
	if p["DeliveryStreamType"] != "KinesisStreamAsSource" {
		c.addf("Firehose: DeliveryStreamType %v, want KinesisStreamAsSource", p["DeliveryStreamType"])
	}
	if !reflect.DeepEqual(dig(p, "KinesisStreamSourceConfiguration", "KinesisStreamARN"), map[string]any{"Fn::GetAtt": []any{"Stream", "Arn"}}) {
		c.addf("Firehose: KinesisStreamSourceConfiguration.KinesisStreamARN %v, want !GetAtt Stream.Arn", dig(p, "KinesisStreamSourceConfiguration"))
	}
	dst, _ := p["ExtendedS3DestinationConfiguration"].(map[string]any)
	if dst == nil {
		c.addf("Firehose: no ExtendedS3DestinationConfiguration")
		return
	}
	prefix, _ := dst["Prefix"].(string)
	if !strings.HasPrefix(prefix, "archive/") {
		c.addf("Firehose: Prefix %q, want archive/...", prefix)
	}
	errPrefix, _ := dst["ErrorOutputPrefix"].(string)
	if !strings.HasPrefix(errPrefix, "archive-errors/") || !strings.Contains(errPrefix, "!{firehose:error-output-type}") {
		c.addf("Firehose: ErrorOutputPrefix %q, want archive-errors/ with !{firehose:error-output-type} (required once Prefix has expressions)", errPrefix)
	}
	for _, x := range []string{"!{timestamp:yyyy}", "!{timestamp:MM}", "!{timestamp:dd}", "!{timestamp:HH}"} {
		if !strings.Contains(prefix, x) {
			c.addf("Firehose: Prefix %q lacks %s", prefix, x)
		}
		if !strings.Contains(errPrefix, x) {
			c.addf("Firehose: ErrorOutputPrefix %q lacks %s", errPrefix, x)
		}
	}
	if dst["CompressionFormat"] != "GZIP" {
		c.addf("Firehose: CompressionFormat %v, want GZIP", dst["CompressionFormat"])
	}
	if !reflect.DeepEqual(dig(dst, "BufferingHints", "SizeInMBs"), map[string]any{"Ref": "FirehoseBufferSizeMB"}) ||
		!reflect.DeepEqual(dig(dst, "BufferingHints", "IntervalInSeconds"), map[string]any{"Ref": "FirehoseBufferIntervalSeconds"}) {
		c.addf("Firehose: BufferingHints %v, want the FirehoseBuffer* parameters", dst["BufferingHints"])
	}
	// Its own role, and DependsOn the policy giving that role its permissions.
	roleAtt, _ := dig(p, "KinesisStreamSourceConfiguration", "RoleARN").(map[string]any)
	att, _ := roleAtt["Fn::GetAtt"].([]any)
	if len(att) != 2 {
		c.addf("Firehose: RoleARN %v, want !GetAtt <role>.Arn", roleAtt)
		return
	}
	role := fmt.Sprint(att[0])
	if !reflect.DeepEqual(dst["RoleARN"], roleAtt) {
		c.addf("Firehose: the destination's RoleARN differs from the source's")
	}
	ok := false
	for _, dep := range r.DependsOn {
		pol, found := c.t.Resource(dep)
		if found && (pol.Type == "AWS::IAM::Policy" || pol.Type == "AWS::IAM::RolePolicy") && refersTo(pol.Properties, role) {
			ok = true
		}
	}
	if !ok {
		c.addf("Firehose: DependsOn %v, want the IAM policy of its role %s (Firehose checks it on creation)", r.DependsOn, role)
	}
}

func (c *checker) queueAndAlarms() {
	q, ok := c.t.Resource("FailureQueue")
	if !ok || q.Type != "AWS::SQS::Queue" {
		c.addf("no AWS::SQS::Queue named FailureQueue")
	} else if q.Properties["SqsManagedSseEnabled"] != true && q.Properties["KmsMasterKeyId"] == nil {
		c.addf("FailureQueue: no server-side encryption")
	}
	tls := false
	for _, id := range c.t.ResourceIDs("AWS::SQS::QueuePolicy") {
		qp, _ := c.t.Resource(id)
		if !slices.ContainsFunc(anyList(qp.Properties["Queues"]), func(v any) bool { return reflect.DeepEqual(v, map[string]any{"Ref": "FailureQueue"}) }) {
			continue
		}
		for _, s := range statements(dig(qp.Properties, "PolicyDocument")) {
			cond := dig(s, "Condition", "Bool", "aws:SecureTransport")
			if s["Effect"] == "Deny" && (cond == "false" || cond == false) && s["Principal"] == "*" &&
				slices.Contains(anyStrings(s["Action"]), "sqs:*") &&
				reflect.DeepEqual(s["Resource"], map[string]any{"Fn::GetAtt": []any{"FailureQueue", "Arn"}}) {
				tls = true
			}
		}
	}
	if !tls {
		c.addf("FailureQueue: no queue policy denying sqs:* when aws:SecureTransport is false")
	}
	var iterator, queue bool
	for _, id := range c.t.ResourceIDs("AWS::CloudWatch::Alarm") {
		a, _ := c.t.Resource(id)
		p := a.Properties
		dims := anyList(p["Dimensions"])
		switch {
		case p["Namespace"] == "AWS/Lambda" && p["MetricName"] == "IteratorAge" && len(dims) == 1 &&
			dig(dims[0], "Name") == "FunctionName" && reflect.DeepEqual(dig(dims[0], "Value"), map[string]any{"Ref": "ProcessFunction"}):
			iterator = true
		case p["Namespace"] == "AWS/SQS" && p["MetricName"] == "ApproximateNumberOfMessagesVisible" && len(dims) == 1 &&
			dig(dims[0], "Name") == "QueueName" && reflect.DeepEqual(dig(dims[0], "Value"), map[string]any{"Fn::GetAtt": []any{"FailureQueue", "QueueName"}}):
			queue = true
		}
	}
	if !iterator {
		c.addf("no alarm on ProcessFunction's IteratorAge (AWS/Lambda)")
	}
	if !queue {
		c.addf("no alarm on FailureQueue's ApproximateNumberOfMessagesVisible (AWS/SQS)")
	}
}

// policyDoc is a policy document with where it is and whom it serves.
type policyDoc struct {
	where    string
	function string // the function it grants, "" for none
	doc      any
}

func (c *checker) policyDocs() []policyDoc {
	var docs []policyDoc
	roleOf := map[string]string{} // role logical id -> function
	for _, id := range c.t.ResourceIDs("AWS::Serverless::Function") {
		p, _ := c.t.FunctionProperties(id)
		if att, ok := dig(p, "Role", "Fn::GetAtt").([]any); ok && len(att) == 2 {
			roleOf[fmt.Sprint(att[0])] = id
		}
		for i, pol := range anyList(p["Policies"]) {
			where := fmt.Sprintf("%s.Policies[%d]", id, i)
			m, isMap := pol.(map[string]any)
			if !isMap || m["Statement"] == nil {
				c.addf("%s: %v is a managed policy or SAM policy template, want an inline least-privilege statement list", where, pol)
				continue
			}
			docs = append(docs, policyDoc{where, id, m})
		}
		if p["Policies"] != nil && reflect.TypeOf(p["Policies"]).Kind() != reflect.Slice {
			c.addf("%s.Policies is %v, want a list of inline policies", id, p["Policies"])
		}
	}
	for _, id := range c.t.ResourceIDs("AWS::IAM::Role") {
		r, _ := c.t.Resource(id)
		if arns := anyList(r.Properties["ManagedPolicyArns"]); len(arns) > 0 {
			c.addf("%s: ManagedPolicyArns %v, want inline least-privilege policies", id, arns)
		}
		for i, pol := range anyList(r.Properties["Policies"]) {
			docs = append(docs, policyDoc{fmt.Sprintf("%s.Policies[%d]", id, i), roleOf[id], dig(pol, "PolicyDocument")})
		}
	}
	for _, typ := range []string{"AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"} {
		for _, id := range c.t.ResourceIDs(typ) {
			r, _ := c.t.Resource(id)
			fn := ""
			for role, f := range roleOf {
				if refersTo(r.Properties["Roles"], role) || refersTo(r.Properties["RoleName"], role) {
					fn = f
				}
			}
			docs = append(docs, policyDoc{id, fn, r.Properties["PolicyDocument"]})
		}
	}
	return docs
}

// servicePrincipals are the AWS service principals a role of this stack may trust (a misspelled one,
// "lamda.amazonaws.com", deploys and then cannot be assumed: cfn-lint does not notice).
var servicePrincipals = []string{"lambda.amazonaws.com", "firehose.amazonaws.com", "scheduler.amazonaws.com",
	"events.amazonaws.com", "glue.amazonaws.com", "states.amazonaws.com", "athena.amazonaws.com"}

func (c *checker) iam() {
	for _, id := range c.t.ResourceIDs("AWS::IAM::Role") {
		r, _ := c.t.Resource(id)
		for _, s := range statements(r.Properties["AssumeRolePolicyDocument"]) {
			for _, p := range anyStrings(dig(s, "Principal", "Service")) {
				if !slices.Contains(servicePrincipals, p) {
					c.addf("%s: trusts service principal %q, not one of %v", id, p, servicePrincipals)
				}
			}
		}
	}
	granted := map[string]map[string][]any{} // function -> action -> resources
	for _, d := range c.policyDocs() {
		for i, s := range statements(d.doc) {
			where := fmt.Sprintf("%s statement %d", d.where, i)
			if _, ok := s["NotAction"]; ok {
				c.addf("%s: NotAction grants everything else", where)
			}
			if s["Effect"] != "Allow" {
				continue
			}
			actions := anyStrings(s["Action"])
			for _, a := range actions {
				if strings.Contains(a, "*") {
					c.addf("%s: wildcard action %q", where, a)
				}
			}
			resources := anyList(s["Resource"])
			for _, r := range resources {
				if r == "*" {
					c.addf("%s: Resource \"*\"", where)
				}
			}
			if d.function == "" {
				continue // Firehose's role: its S3 destination lists the bucket as AWS documents it
			}
			// Listing is limited to the prefixes the function works on (a prefix-scoped grant still makes
			// a missing key under them a 404, which the functions rely on).
			if slices.Contains(actions, "s3:ListBucket") {
				if p := anyStrings(dig(s, "Condition", "StringLike", "s3:prefix")); len(p) == 0 || slices.Contains(p, "*") {
					c.addf("%s: s3:ListBucket without an s3:prefix condition (StringLike)", where)
				}
			}
			if refersTo(s, "Bucket") {
				c.addf("%s: a policy of %s refers to the Bucket resource; name it with !Sub '%s' (circular dependency through the S3 trigger)", where, d.function, deterministicBucketName)
			}
			if granted[d.function] == nil {
				granted[d.function] = map[string][]any{}
			}
			for _, a := range actions {
				granted[d.function][a] = append(granted[d.function][a], resources...)
			}
		}
	}
	streamArn := map[string]any{"Fn::GetAtt": []any{"Stream", "Arn"}}
	kinesisOf := func(fn string) []string {
		var out []string
		for a, rs := range granted[fn] {
			if strings.HasPrefix(a, "kinesis:") {
				out = append(out, a)
				for _, r := range rs {
					if !reflect.DeepEqual(r, streamArn) {
						c.addf("%s: %s on %v, want the stream ARN only", fn, a, r)
					}
				}
			}
		}
		sort.Strings(out)
		return out
	}
	// In a versioned bucket the notification names a version and ingest reads that one.
	for _, a := range []string{"s3:GetObject", "s3:GetObjectVersion"} {
		if !slices.ContainsFunc(granted["IngestFunction"][a], func(r any) bool { return strings.HasSuffix(fmt.Sprint(dig(r, "Fn::Sub")), "/raw/*") }) {
			c.addf("IngestFunction: no %s on raw/*", a)
		}
	}
	if got := kinesisOf("IngestFunction"); !slices.Equal(got, producerActions) {
		c.addf("IngestFunction: kinesis actions %v, want exactly %v", got, producerActions)
	}
	for _, a := range kinesisOf("ProcessFunction") {
		if !slices.Contains(consumerActions, a) {
			c.addf("ProcessFunction: kinesis action %s is not a consumer's", a)
		}
	}
	if got := kinesisOf("ReplayFunction"); len(got) > 0 {
		c.addf("ReplayFunction: kinesis actions %v, want none (it hands objects to IngestFunction)", got)
	}
	ingestSelf := map[string]any{"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-ingest"}
	replaySelf := map[string]any{"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-replay"}
	compactSelf := map[string]any{"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-compact"}
	ingestArn := map[string]any{"Fn::GetAtt": []any{"IngestFunction", "Arn"}}
	for fn, allowed := range map[string][]any{
		"IngestFunction":  {ingestSelf},
		"ReplayFunction":  {ingestArn, replaySelf},
		"ProcessFunction": nil,
		"CompactFunction": {compactSelf},
	} {
		for _, r := range granted[fn]["lambda:InvokeFunction"] {
			if !slices.ContainsFunc(allowed, func(a any) bool { return reflect.DeepEqual(a, r) }) {
				c.addf("%s: lambda:InvokeFunction on %v, want only %v", fn, r, allowed)
			}
		}
	}
	if len(granted["IngestFunction"]["lambda:InvokeFunction"]) == 0 {
		c.addf("IngestFunction: cannot invoke itself (continuations)")
	}
	if len(granted["CompactFunction"]["lambda:InvokeFunction"]) == 0 {
		c.addf("CompactFunction: cannot invoke itself (continuations)")
	}
	if got := kinesisOf("CompactFunction"); len(got) > 0 {
		c.addf("CompactFunction: kinesis actions %v, want none", got)
	}
	if len(granted["ReplayFunction"]["lambda:InvokeFunction"]) == 0 {
		c.addf("ReplayFunction: cannot invoke IngestFunction")
	}
	if len(granted["ProcessFunction"]["sqs:SendMessage"]) == 0 {
		c.addf("ProcessFunction: no sqs:SendMessage for its on-failure destination")
	}
}

func (c *checker) outputs() {
	outs := c.t.Section("Outputs")
	for _, want := range []string{"BucketName", "RawUploadURI", "StreamName", "StreamArn", "DeliveryStreamName",
		"IngestFunctionName", "ProcessFunctionName", "ReplayFunctionName", "CompactFunctionName", "FailureQueueUrl"} {
		if _, ok := outs[want]; !ok {
			c.addf("output %s is missing", want)
		}
	}
	for name, target := range map[string]string{"BucketName": "Bucket", "RawUploadURI": "Bucket", "StreamName": "Stream",
		"StreamArn": "Stream", "DeliveryStreamName": "DeliveryStream", "IngestFunctionName": "IngestFunction",
		"ProcessFunctionName": "ProcessFunction", "ReplayFunctionName": "ReplayFunction", "CompactFunctionName": "CompactFunction",
		"FailureQueueUrl": "FailureQueue"} {
		if o, ok := outs[name]; ok && !refersTo(dig(o, "Value"), target) {
			c.addf("output %s does not name %s", name, target)
		}
	}
	if v, _ := dig(outs, "RawUploadURI", "Value", "Fn::Sub").(string); !strings.HasSuffix(v, "/raw/") {
		c.addf("output RawUploadURI %q, want s3://.../raw/", v)
	}
}

// resolved checks the values the deployed stack gets with the parameters' defaults.
func (c *checker) resolved() {
	s, err := c.t.Resolve(nil)
	if err != nil {
		c.addf("resolving the template: %v", err)
		return
	}
	known := map[string]bool{}
	for _, v := range c.files.configEnv {
		known[v] = true
	}
	all := map[string]bool{}
	for id, want := range wantEnv {
		f := s.Functions[id]
		for _, v := range want {
			if _, ok := f.Env[v]; !ok {
				c.addf("%s: environment variable %s is missing", id, v)
			}
		}
		for v := range f.Env {
			all[v] = true
			if !known[v] {
				c.addf("%s: environment variable %s is not one internal/config reads", id, v)
			}
		}
		if got := f.Env["BUCKET_NAME"]; got != s.Bucket.Name {
			c.addf("%s: BUCKET_NAME %q, want the bucket's name %q", id, got, s.Bucket.Name)
		}
	}
	if got := sortedSet(all); !slices.Equal(got, c.files.configEnv) {
		c.addf("the functions' environment %v, want every variable internal/config reads %v", got, c.files.configEnv)
	}
	if got := s.Functions["ReplayFunction"].Env["INGEST_FUNCTION_NAME"]; got != s.Functions["IngestFunction"].Name {
		c.addf("ReplayFunction: INGEST_FUNCTION_NAME %q, want IngestFunction's name", got)
	}
	if got := s.Functions["IngestFunction"].Env["STREAM_NAME"]; got != s.Stream.Name && got != s.Stream.ARN {
		c.addf("IngestFunction: STREAM_NAME %q, want the stream", got)
	}
	for _, id := range []string{"IngestFunction", "ReplayFunction", "CompactFunction"} {
		if f := s.Functions[id]; f.TimeoutSeconds < 60 || f.TimeoutSeconds > 900 {
			c.addf("%s: Timeout %d s, want 60..900 (it checkpoints before its deadline)", id, f.TimeoutSeconds)
		}
	}
	// An async destination is an ARN (a queue's Ref is its URL: Lambda rejects it at deploy time).
	for _, id := range sortedKeys(anyMap(s.Functions)) {
		if d := s.Functions[id].Async.OnFailure; d != "" && d != s.Queues["FailureQueue"].ARN {
			c.addf("%s: async on-failure destination %q, want the FailureQueue ARN %q", id, d, s.Queues["FailureQueue"].ARN)
		}
	}
	for _, id := range []string{"IngestFunction", "ReplayFunction"} {
		if s.Functions[id].Async.OnFailure == "" {
			c.addf("%s: no async on-failure destination", id)
		}
	}
	proc := s.Functions["ProcessFunction"]
	if len(proc.KinesisEvents) != 1 {
		return
	}
	k := proc.KinesisEvents[0]
	q := s.Queues["FailureQueue"]
	checks := []struct {
		ok   bool
		what string
	}{
		{k.StreamARN == s.Stream.ARN, fmt.Sprintf("Stream %s, want %s", k.StreamARN, s.Stream.ARN)},
		{k.StartingPosition == "TRIM_HORIZON", fmt.Sprintf("StartingPosition %s, want TRIM_HORIZON", k.StartingPosition)},
		{k.BatchSize >= 1 && k.BatchSize <= 10000, fmt.Sprintf("BatchSize %d, want 1..10000", k.BatchSize)},
		{k.MaximumBatchingWindowInSeconds >= 0 && k.MaximumBatchingWindowInSeconds <= 300, fmt.Sprintf("MaximumBatchingWindowInSeconds %d, want 0..300", k.MaximumBatchingWindowInSeconds)},
		{k.ReportsBatchItemFailures(), fmt.Sprintf("FunctionResponseTypes %v, want ReportBatchItemFailures (else partial batch responses are ignored)", k.FunctionResponseTypes)},
		{k.BisectBatchOnFunctionError, "BisectBatchOnFunctionError false, want true"},
		{k.MaximumRetryAttempts >= 0 && k.MaximumRetryAttempts <= 10, fmt.Sprintf("MaximumRetryAttempts %d, want bounded (0..10; -1 retries until the record expires)", k.MaximumRetryAttempts)},
		{k.MaximumRecordAgeInSeconds >= 60 && k.MaximumRecordAgeInSeconds <= s.Stream.RetentionHours*3600, fmt.Sprintf("MaximumRecordAgeInSeconds %d, want bounded (60..retention)", k.MaximumRecordAgeInSeconds)},
		{k.TumblingWindowInSeconds >= 1 && k.TumblingWindowInSeconds <= 900, fmt.Sprintf("TumblingWindowInSeconds %d, want 1..900", k.TumblingWindowInSeconds)},
		{k.ParallelizationFactor == 1, fmt.Sprintf("ParallelizationFactor %d, want 1 (in order per shard)", k.ParallelizationFactor)},
		{k.OnFailureDestination != "" && k.OnFailureDestination == q.ARN, fmt.Sprintf("on-failure destination %q, want FailureQueue %q", k.OnFailureDestination, q.ARN)},
		{k.OnFailureType == "SQS" || k.OnFailureType == "", fmt.Sprintf("on-failure type %q, want SQS", k.OnFailureType)},
		{k.Enabled, "the event source mapping is disabled"},
		{proc.TimeoutSeconds >= 1 && proc.TimeoutSeconds <= 900, fmt.Sprintf("Timeout %d", proc.TimeoutSeconds)},
	}
	for _, x := range checks {
		if !x.ok {
			c.addf("ProcessFunction: Kinesis event: %s", x.what)
		}
	}
	if s.Stream.ShardCount != 1 || s.Stream.Mode != "PROVISIONED" {
		c.addf("Stream: %s with %d shards by default, want PROVISIONED with 1", s.Stream.Mode, s.Stream.ShardCount)
	}
}

// refersTo reports whether v names the resource or parameter id through Ref, Fn::GetAtt or Fn::Sub.
func refersTo(v any, id string) bool {
	switch x := v.(type) {
	case map[string]any:
		if name, arg, ok := Intrinsic(x); ok {
			switch name {
			case "Ref":
				if arg == id {
					return true
				}
			case "Fn::GetAtt":
				if l, ok := arg.([]any); ok && len(l) > 0 && l[0] == id {
					return true
				}
			case "Fn::Sub":
				s, _ := arg.(string)
				if l, ok := arg.([]any); ok && len(l) == 2 {
					s, _ = l[0].(string)
					if refersTo(l[1], id) {
						return true
					}
				}
				for _, m := range subVar.FindAllStringSubmatch(s, -1) {
					if n, _, _ := strings.Cut(m[1], "."); n == id {
						return true
					}
				}
				return false
			}
		}
		for _, e := range x {
			if refersTo(e, id) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if refersTo(e, id) {
				return true
			}
		}
	}
	return false
}

// statements returns the statements of a policy document, the branches of Fn::If included.
func statements(doc any) []map[string]any {
	var out []map[string]any
	var add func(v any)
	add = func(v any) {
		if name, arg, ok := Intrinsic(v); ok && name == "Fn::If" {
			if l, ok := arg.([]any); ok && len(l) == 3 {
				add(l[1])
				add(l[2])
			}
			return
		}
		if m, ok := v.(map[string]any); ok {
			out = append(out, m)
		}
	}
	for _, s := range anyList(dig(doc, "Statement")) {
		add(s)
	}
	return out
}

// dig follows keys (list indexes as decimal strings) into v; nil when a step is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// anyList is v as a list: a scalar or map is a list of one.
func anyList(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	}
	return []any{v}
}

func anyStrings(v any) []string {
	var out []string
	for _, e := range anyList(v) {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}
