package samtemplate

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Settings is what the local cloud needs from the template, with parameters, conditions and intrinsic
// functions evaluated. Absent properties carry AWS's defaults (noted per field), so that the local
// services behave as the deployed ones would.
type Settings struct {
	StackName, Region, AccountID, Partition string

	Parameters map[string]string // every parameter's effective value (default or override)
	Bucket     Bucket
	Stream     Stream
	Firehose   *Firehose           // nil when the template has no delivery stream
	Queues     map[string]Queue    // by logical id
	Functions  map[string]Function // by logical id
}

// Bucket is the template's one S3 bucket.
type Bucket struct {
	LogicalID string
	Name      string
	ARN       string
}

// Stream is the template's one Kinesis data stream.
type Stream struct {
	LogicalID      string
	Name           string
	ARN            string
	Mode           string // PROVISIONED (default) or ON_DEMAND
	ShardCount     int    // 0 in ON_DEMAND mode
	RetentionHours int    // default 24
	EncryptionType string // KMS or NONE (default)
	KeyID          string // e.g. alias/aws/kinesis
}

// Firehose is a delivery stream with a Kinesis stream source and an (extended) S3 destination.
type Firehose struct {
	LogicalID             string
	Name                  string
	Type                  string // DeliveryStreamType, e.g. KinesisStreamAsSource
	SourceStreamARN       string
	BucketARN             string
	Bucket                string // bucket name from BucketARN
	Prefix                string // with its !{timestamp:...} expressions, unevaluated
	ErrorOutputPrefix     string // with !{firehose:error-output-type}
	CompressionFormat     string // default UNCOMPRESSED
	BufferSizeMB          int    // default 5
	BufferIntervalSeconds int    // default 300
}

// Queue is an SQS queue.
type Queue struct {
	LogicalID string
	Name      string
	URL       string
	ARN       string
}

// Function is an AWS::Serverless::Function with Globals merged in.
type Function struct {
	LogicalID           string
	Name                string // FunctionName, or the resolver's default
	ARN                 string
	Runtime             string
	Handler             string
	Architectures       []string // default [x86_64]
	CodeURI             string
	BuildMethod         string // Metadata.BuildMethod
	TimeoutSeconds      int    // default 3
	MemoryMB            int    // default 128
	ReservedConcurrency *int   // nil when not reserved
	RecursiveLoop       string // default Terminate
	LogFormat           string // LoggingConfig.LogFormat, default Text
	ApplicationLogLevel string // LoggingConfig.ApplicationLogLevel (AWS_LAMBDA_LOG_LEVEL)
	Env                 map[string]string
	Async               AsyncConfig
	S3Events            []S3Event
	KinesisEvents       []KinesisEvent
	ScheduleEvents      []ScheduleEvent
}

// ScheduleEvent is an EventBridge schedule (SAM event types Schedule and ScheduleV2): the function is
// invoked asynchronously with Input on the schedule.
type ScheduleEvent struct {
	Name     string // the event's key in Events
	Schedule string // rate(...) or cron(...)
	Input    string // the JSON the function receives; "" means EventBridge's scheduled-event JSON
	Enabled  bool   // Enabled (Schedule) or State ENABLED (ScheduleV2), default true
}

// AsyncConfig is how Lambda handles the function's asynchronous invocations (EventInvokeConfig).
type AsyncConfig struct {
	MaximumRetryAttempts     int    // default 2
	MaximumEventAgeInSeconds int    // default 21600
	OnFailure                string // destination ARN, "" for none
}

// S3Event is one S3 trigger: the bucket, its event types and key filter (one prefix and one suffix
// rule at most, as S3 allows).
type S3Event struct {
	Name   string // the event's key in Events
	Bucket string
	Events []string // e.g. s3:ObjectCreated:*
	Prefix string
	Suffix string
}

// Matches reports whether an S3 notification of eventName (as in a record: "ObjectCreated:Put", or
// "s3:ObjectCreated:Put") for the decoded key passes this trigger's event types and filter.
// The rules of our template use only characters S3 does not encode, so decoded keys compare as is.
func (e S3Event) Matches(eventName, key string) bool {
	name := strings.TrimPrefix(eventName, "s3:")
	typeOK := false
	for _, want := range e.Events {
		want = strings.TrimPrefix(want, "s3:")
		if w, ok := strings.CutSuffix(want, "*"); ok {
			typeOK = typeOK || strings.HasPrefix(name, w)
		} else {
			typeOK = typeOK || name == want
		}
	}
	return typeOK && strings.HasPrefix(key, e.Prefix) && strings.HasSuffix(key, e.Suffix)
}

// KinesisEvent is a Kinesis event source mapping. Defaults are Lambda's: BatchSize 100,
// MaximumRetryAttempts and MaximumRecordAgeInSeconds -1 (infinite), ParallelizationFactor 1,
// Enabled true.
type KinesisEvent struct {
	Name                           string
	StreamARN                      string
	StreamName                     string // from StreamARN
	Enabled                        bool
	StartingPosition               string
	BatchSize                      int
	MaximumBatchingWindowInSeconds int
	BisectBatchOnFunctionError     bool
	MaximumRetryAttempts           int
	MaximumRecordAgeInSeconds      int
	TumblingWindowInSeconds        int
	ParallelizationFactor          int
	FunctionResponseTypes          []string
	OnFailureType                  string // SQS, SNS or S3 ("" when the ARN alone is given)
	OnFailureDestination           string // ARN, "" for none
}

// ReportsBatchItemFailures reports whether the mapping reads partial batch responses; without it
// Lambda silently ignores them.
func (k KinesisEvent) ReportsBatchItemFailures() bool {
	for _, t := range k.FunctionResponseTypes {
		if t == "ReportBatchItemFailures" {
			return true
		}
	}
	return false
}

// Resolve evaluates the template with the given parameter overrides (as `sam deploy
// --parameter-overrides` takes them) and the local cloud's default names.
func (t *Template) Resolve(overrides map[string]string) (*Settings, error) {
	return t.ResolveWith(overrides, Resolver{})
}

// ResolveWith is Resolve with a Resolver deciding stack, account, region and the names behind Ref and
// Fn::GetAtt.
func (t *Template) ResolveWith(overrides map[string]string, r Resolver) (*Settings, error) {
	e, err := newEvaluator(t, overrides, r)
	if err != nil {
		return nil, err
	}
	s := &Settings{
		StackName: e.r.StackName, Region: e.r.Region, AccountID: e.r.AccountID, Partition: e.r.Partition,
		Parameters: e.params, Queues: map[string]Queue{}, Functions: map[string]Function{},
	}
	var errs []error
	if err := e.bucket(s); err != nil {
		errs = append(errs, err)
	}
	if err := e.stream(s); err != nil {
		errs = append(errs, err)
	}
	if err := e.firehose(s); err != nil {
		errs = append(errs, err)
	}
	for _, id := range t.ResourceIDs("AWS::SQS::Queue") {
		q, err := e.queue(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Queues[id] = q
	}
	for _, id := range t.ResourceIDs("AWS::Serverless::Function") {
		f, err := e.function(id)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		s.Functions[id] = f
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func (e *evaluator) one(typ string) (string, error) {
	ids := e.t.ResourceIDs(typ)
	if len(ids) != 1 {
		return "", fmt.Errorf("want one %s, the template has %d", typ, len(ids))
	}
	return ids[0], nil
}

func (e *evaluator) bucket(s *Settings) error {
	id, err := e.one("AWS::S3::Bucket")
	if err != nil {
		return err
	}
	name, err := e.ref(id)
	if err != nil {
		return err
	}
	arn, err := e.getAtt(id, "Arn")
	if err != nil {
		return err
	}
	s.Bucket = Bucket{LogicalID: id, Name: scalarString(name), ARN: scalarString(arn)}
	return nil
}

func (e *evaluator) stream(s *Settings) error {
	id, err := e.one("AWS::Kinesis::Stream")
	if err != nil {
		return err
	}
	r, _ := e.t.Resource(id)
	p, err := e.evalMap(r.Properties)
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	st := Stream{LogicalID: id, Mode: "PROVISIONED", RetentionHours: 24, EncryptionType: "NONE"}
	name, err := e.ref(id)
	if err != nil {
		return err
	}
	arn, err := e.getAtt(id, "Arn")
	if err != nil {
		return err
	}
	st.Name, st.ARN = scalarString(name), scalarString(arn)
	if m, ok := p["StreamModeDetails"].(map[string]any); ok {
		st.Mode = str(m["StreamMode"], st.Mode)
	}
	var errs []error
	st.ShardCount, err = integer(p["ShardCount"], 0)
	errs = append(errs, err)
	st.RetentionHours, err = integer(p["RetentionPeriodHours"], st.RetentionHours)
	errs = append(errs, err)
	if enc, ok := p["StreamEncryption"].(map[string]any); ok {
		st.EncryptionType = str(enc["EncryptionType"], st.EncryptionType)
		st.KeyID = str(enc["KeyId"], "")
	}
	if st.Mode == "PROVISIONED" && st.ShardCount < 1 {
		errs = append(errs, fmt.Errorf("%s: PROVISIONED stream without a ShardCount", id))
	}
	s.Stream = st
	return errors.Join(errs...)
}

func (e *evaluator) firehose(s *Settings) error {
	ids := e.t.ResourceIDs("AWS::KinesisFirehose::DeliveryStream")
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > 1 {
		return fmt.Errorf("want at most one delivery stream, the template has %d", len(ids))
	}
	id := ids[0]
	r, _ := e.t.Resource(id)
	p, err := e.evalMap(r.Properties)
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	name, err := e.ref(id)
	if err != nil {
		return err
	}
	f := &Firehose{LogicalID: id, Name: scalarString(name), Type: str(p["DeliveryStreamType"], "DirectPut"),
		CompressionFormat: "UNCOMPRESSED", BufferSizeMB: 5, BufferIntervalSeconds: 300}
	if src, ok := p["KinesisStreamSourceConfiguration"].(map[string]any); ok {
		f.SourceStreamARN = str(src["KinesisStreamARN"], "")
	}
	dst, ok := p["ExtendedS3DestinationConfiguration"].(map[string]any)
	if !ok {
		dst, ok = p["S3DestinationConfiguration"].(map[string]any)
	}
	if !ok {
		return fmt.Errorf("%s: no S3 destination", id)
	}
	f.BucketARN = str(dst["BucketARN"], "")
	f.Bucket = f.BucketARN[strings.LastIndex(f.BucketARN, ":")+1:]
	f.Prefix = str(dst["Prefix"], "")
	f.ErrorOutputPrefix = str(dst["ErrorOutputPrefix"], "")
	f.CompressionFormat = str(dst["CompressionFormat"], f.CompressionFormat)
	var errs []error
	if h, ok := dst["BufferingHints"].(map[string]any); ok {
		f.BufferSizeMB, err = integer(h["SizeInMBs"], f.BufferSizeMB)
		errs = append(errs, err)
		f.BufferIntervalSeconds, err = integer(h["IntervalInSeconds"], f.BufferIntervalSeconds)
		errs = append(errs, err)
	}
	s.Firehose = f
	return errors.Join(errs...)
}

func (e *evaluator) queue(id string) (Queue, error) {
	q := Queue{LogicalID: id}
	for _, x := range []struct {
		dst  *string
		attr string
	}{{&q.Name, "QueueName"}, {&q.URL, "QueueUrl"}, {&q.ARN, "Arn"}} {
		v, err := e.getAtt(id, x.attr)
		if err != nil {
			return q, err
		}
		*x.dst = scalarString(v)
	}
	return q, nil
}

func (e *evaluator) function(id string) (Function, error) {
	merged, err := e.t.FunctionProperties(id)
	if err != nil {
		return Function{}, err
	}
	// Policies and Role are not evaluated: the local cloud does not enforce IAM.
	delete(merged, "Policies")
	p, err := e.evalMap(merged)
	if err != nil {
		return Function{}, err
	}
	r, _ := e.t.Resource(id)
	f := Function{LogicalID: id, Env: map[string]string{}, Architectures: []string{"x86_64"}, RecursiveLoop: "Terminate",
		LogFormat: "Text", Async: AsyncConfig{MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 21600}}
	name, err := e.ref(id)
	if err != nil {
		return f, err
	}
	arn, err := e.getAtt(id, "Arn")
	if err != nil {
		return f, err
	}
	f.Name, f.ARN = scalarString(name), scalarString(arn)
	f.Runtime = str(p["Runtime"], "")
	f.Handler = str(p["Handler"], "")
	f.CodeURI = str(p["CodeUri"], "")
	f.BuildMethod = str(r.Metadata["BuildMethod"], "")
	f.RecursiveLoop = str(p["RecursiveLoop"], f.RecursiveLoop)
	if a, ok := p["Architectures"].([]any); ok {
		f.Architectures = strs(a)
	}
	var errs []error
	f.TimeoutSeconds, err = integer(p["Timeout"], 3)
	errs = append(errs, err)
	f.MemoryMB, err = integer(p["MemorySize"], 128)
	errs = append(errs, err)
	if v, ok := p["ReservedConcurrentExecutions"]; ok {
		n, err := integer(v, 0)
		errs = append(errs, err)
		f.ReservedConcurrency = &n
	}
	if lc, ok := p["LoggingConfig"].(map[string]any); ok {
		f.LogFormat = str(lc["LogFormat"], f.LogFormat)
		f.ApplicationLogLevel = str(lc["ApplicationLogLevel"], "")
	}
	if env, ok := p["Environment"].(map[string]any); ok {
		vars, _ := env["Variables"].(map[string]any)
		for k, v := range vars {
			f.Env[k] = scalarString(v)
		}
	}
	if ic, ok := p["EventInvokeConfig"].(map[string]any); ok {
		f.Async.MaximumRetryAttempts, err = integer(ic["MaximumRetryAttempts"], f.Async.MaximumRetryAttempts)
		errs = append(errs, err)
		f.Async.MaximumEventAgeInSeconds, err = integer(ic["MaximumEventAgeInSeconds"], f.Async.MaximumEventAgeInSeconds)
		errs = append(errs, err)
		_, f.Async.OnFailure = onFailure(ic["DestinationConfig"])
	}
	events, _ := p["Events"].(map[string]any)
	for _, name := range sortedKeys(events) {
		ev, _ := events[name].(map[string]any)
		props, _ := ev["Properties"].(map[string]any)
		switch ev["Type"] {
		case "S3":
			s3e, err := s3Event(name, props)
			errs = append(errs, err)
			f.S3Events = append(f.S3Events, s3e)
		case "Kinesis":
			ke, err := kinesisEvent(name, props)
			errs = append(errs, err)
			f.KinesisEvents = append(f.KinesisEvents, ke)
		case "Schedule", "ScheduleV2":
			se := ScheduleEvent{Name: name, Schedule: str(props["Schedule"], str(props["ScheduleExpression"], "")), Input: str(props["Input"], ""), Enabled: true}
			if b, ok := props["Enabled"].(bool); ok {
				se.Enabled = b
			}
			if st := str(props["State"], ""); st != "" {
				se.Enabled = st == "ENABLED"
			}
			if se.Schedule == "" {
				errs = append(errs, fmt.Errorf("event %s: a schedule without Schedule/ScheduleExpression", name))
			}
			f.ScheduleEvents = append(f.ScheduleEvents, se)
		}
	}
	return f, errors.Join(errs...)
}

func s3Event(name string, p map[string]any) (S3Event, error) {
	e := S3Event{Name: name, Bucket: str(p["Bucket"], "")}
	switch v := p["Events"].(type) {
	case string:
		e.Events = []string{v}
	case []any:
		e.Events = strs(v)
	}
	filter, _ := p["Filter"].(map[string]any)
	key, _ := filter["S3Key"].(map[string]any)
	rules, _ := key["Rules"].([]any)
	for _, r := range rules {
		m, _ := r.(map[string]any)
		n, v := str(m["Name"], ""), str(m["Value"], "")
		switch {
		case strings.EqualFold(n, "prefix") && e.Prefix == "":
			e.Prefix = v
		case strings.EqualFold(n, "suffix") && e.Suffix == "":
			e.Suffix = v
		default:
			return e, fmt.Errorf("event %s: filter rule %q=%q: one prefix and one suffix rule at most", name, n, v)
		}
	}
	return e, nil
}

func kinesisEvent(name string, p map[string]any) (KinesisEvent, error) {
	k := KinesisEvent{Name: name, StreamARN: str(p["Stream"], ""), StartingPosition: str(p["StartingPosition"], "")}
	k.StreamName = path.Base(k.StreamARN)
	var errs []error
	var err error
	k.Enabled, err = boolean(p["Enabled"], true)
	errs = append(errs, err)
	k.BisectBatchOnFunctionError, err = boolean(p["BisectBatchOnFunctionError"], false)
	errs = append(errs, err)
	for _, x := range []struct {
		dst  *int
		prop string
		def  int
	}{
		{&k.BatchSize, "BatchSize", 100},
		{&k.MaximumBatchingWindowInSeconds, "MaximumBatchingWindowInSeconds", 0},
		{&k.MaximumRetryAttempts, "MaximumRetryAttempts", -1},
		{&k.MaximumRecordAgeInSeconds, "MaximumRecordAgeInSeconds", -1},
		{&k.TumblingWindowInSeconds, "TumblingWindowInSeconds", 0},
		{&k.ParallelizationFactor, "ParallelizationFactor", 1},
	} {
		*x.dst, err = integer(p[x.prop], x.def)
		if err != nil {
			errs = append(errs, fmt.Errorf("event %s: %s: %w", name, x.prop, err))
		}
	}
	if l, ok := p["FunctionResponseTypes"].([]any); ok {
		k.FunctionResponseTypes = strs(l)
	}
	k.OnFailureType, k.OnFailureDestination = onFailure(p["DestinationConfig"])
	return k, errors.Join(errs...)
}

func onFailure(v any) (typ, destination string) {
	dc, _ := v.(map[string]any)
	of, _ := dc["OnFailure"].(map[string]any)
	return str(of["Type"], ""), str(of["Destination"], "")
}

func (e *evaluator) evalMap(m map[string]any) (map[string]any, error) {
	v, err := e.eval(m)
	if err != nil {
		return nil, err
	}
	out, _ := v.(map[string]any)
	return out, nil
}

func str(v any, def string) string {
	switch v.(type) {
	case nil, map[string]any, []any:
		return def
	}
	return scalarString(v)
}

func strs(l []any) []string {
	out := make([]string, 0, len(l))
	for _, v := range l {
		out = append(out, scalarString(v))
	}
	return out
}

func integer(v any, def int) (int, error) {
	switch x := v.(type) {
	case nil:
		return def, nil
	case int:
		return x, nil
	case float64:
		if x != float64(int(x)) {
			return def, fmt.Errorf("%v is not an integer", x)
		}
		return int(x), nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return def, fmt.Errorf("%q is not an integer", x)
		}
		return n, nil
	}
	return def, fmt.Errorf("%v is not an integer", v)
}

func boolean(v any, def bool) (bool, error) {
	switch x := v.(type) {
	case nil:
		return def, nil
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(x)
		if err != nil {
			return def, fmt.Errorf("%q is not a boolean", x)
		}
		return b, nil
	}
	return def, fmt.Errorf("%v is not a boolean", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
