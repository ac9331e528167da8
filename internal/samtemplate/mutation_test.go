package samtemplate

import (
	"reflect"
	"strings"
	"testing"
)

// catcher is what must notice a mutation of template.yaml.
type catcher string

const (
	byTemplateTest catcher = "template test" // problems() in check_test.go (TestStackTemplate)
	byCfnLint      catcher = "cfn-lint"      // a cfn-lint rule id (E3030, ...)
	byTranslator   catcher = "SAM translator"
)

// mutation changes one value of template.yaml; want is a part of the problem the catcher must report
// (for cfn-lint, the rule id).
type mutation struct {
	name   string
	change func(d map[string]any)
	by     catcher
	want   string
}

const (
	alarm       = "Resources.ProcessIteratorAgeAlarm.Properties."
	queueAlarm  = "Resources.FailureQueueAlarm.Properties."
	ingestProps = "Resources.IngestFunction.Properties."
	ingestPol   = ingestProps + "Policies.0.Statement."
	replayProps = "Resources.ReplayFunction.Properties."
	tripsProps  = "Resources.ProcessFunction.Properties.Events.Trips.Properties."
)

var queueURL = map[string]any{"Ref": "FailureQueue"} // a queue's Ref is its URL, not its ARN

// mutations are value errors that deploy, or fail only at deploy time, unless a check catches them: each
// must be caught by the catcher named. TestBrokenTemplates holds more, for the template tests alone.
var mutations = []mutation{
	// The review's list (issue 14).
	{"ObjectOwnership not an S3 value", set("Resources.Bucket.Properties.OwnershipControls.Rules.0.ObjectOwnership", "BucketOwnerEnforce"), byCfnLint, "E3030: 'BucketOwnerEnforce' is not one of"},
	{"ObjectOwnership ObjectWriter (ACLs back on)", set("Resources.Bucket.Properties.OwnershipControls.Rules.0.ObjectOwnership", "ObjectWriter"), byTemplateTest, "ObjectOwnership ObjectWriter"},
	{"alarm ComparisonOperator", set(alarm+"ComparisonOperator", "GreaterThan"), byCfnLint, "E3030: 'GreaterThan' is not one of"},
	{"alarm Statistic", set(alarm+"Statistic", "Max"), byCfnLint, "E3030: 'Max' is not one of"},
	{"alarm TreatMissingData", set(queueAlarm+"TreatMissingData", "notbreaching"), byCfnLint, "E3030: 'notbreaching' is not one of"},
	{"alarm Period 45", set(queueAlarm+"Period", 45), byCfnLint, "E3615: 45 is not one of [10, 30, 60] or a multiple of 60"},
	{"SQS retention 1209601", set("Resources.FailureQueue.Properties.MessageRetentionPeriod", 1209601), byCfnLint, "E3034: 1209601 is greater than the maximum"},
	{"MaximumEventAgeInSeconds 86400", set(ingestProps+"EventInvokeConfig.MaximumEventAgeInSeconds", 86400), byCfnLint, "E3034: 86400 is greater than the maximum"},
	{"SystemLogLevel warning", set("Globals.Function.LoggingConfig.SystemLogLevel", "warning"), byCfnLint, "E3030: 'warning' is not one of"},
	{"misspelled service principal (consumer role)", set("Resources.ProcessRole.Properties.AssumeRolePolicyDocument.Statement.0.Principal.Service", "lamda.amazonaws.com"), byTemplateTest, `"lamda.amazonaws.com", not one of`},
	{"misspelled service principal (Firehose role)", set("Resources.DeliveryStreamRole.Properties.AssumeRolePolicyDocument.Statement.0.Principal.Service", "firehose.amazonaws.co"), byTemplateTest, `"firehose.amazonaws.co", not one of`},
	{"async destination a queue URL (IngestFunction)", set(ingestProps+"EventInvokeConfig.DestinationConfig.OnFailure.Destination", queueURL), byTemplateTest, "IngestFunction: async on-failure destination"},
	{"async destination a queue URL (ReplayFunction)", set(replayProps+"EventInvokeConfig.DestinationConfig.OnFailure.Destination", queueURL), byTemplateTest, "ReplayFunction: async on-failure destination"},
	{"mapping destination a queue URL", set(tripsProps+"DestinationConfig.OnFailure.Destination", queueURL), byTemplateTest, "on-failure destination"},

	// Redeploy safety, versioning, least privilege, TLS (issues 14 and 15).
	{"DeletionPolicy Retain (a failed first deploy strands the bucket name)", set("Resources.Bucket.DeletionPolicy", "Retain"), byTemplateTest, `DeletionPolicy "Retain"`},
	{"DeletionPolicy not a policy", set("Resources.Bucket.DeletionPolicy", "RetainOnCreate"), byCfnLint, "E3035: 'RetainOnCreate' is not one of"},
	{"no UpdateReplacePolicy", del("Resources.Bucket.UpdateReplacePolicy"), byTemplateTest, "UpdateReplacePolicy"},
	{"no s3:GetObjectVersion (versioned buckets)", set(ingestPol+"0.Action", "s3:GetObject"), byTemplateTest, "no s3:GetObjectVersion"},
	{"IAM action misspelled", set(ingestPol+"0.Action", []any{"s3:GetObject", "s3:GetObjectVersions"}), byTemplateTest, "no s3:GetObjectVersion"},
	{"ListBucket on the whole bucket", del(ingestPol + "3.Condition"), byTemplateTest, "s3:ListBucket without an s3:prefix condition"},
	{"failure queue accepts plain HTTP", set("Resources.FailureQueuePolicy.Properties.PolicyDocument.Statement.0.Condition.Bool.aws:SecureTransport", "flase"), byTemplateTest, "FailureQueue: no queue policy"},
	{"failure queue policy gone", del("Resources.FailureQueuePolicy"), byTemplateTest, "FailureQueue: no queue policy"},
	{"versioning not from its parameter", set("Resources.Bucket.Properties.VersioningConfiguration", map[string]any{"Status": "Enabled"}), byTemplateTest, "VersioningConfiguration"},
	{"versioning status not an S3 value", set("Resources.Bucket.Properties.VersioningConfiguration", map[string]any{"Status": "On"}), byCfnLint, "E3030: 'On' is not one of"},
	{"parameter default outside its allowed values", set("Parameters.BucketVersioning.Default", "On"), byCfnLint, "E2015: Default should be a value within AllowedValues"},

	// What only the SAM translator knows (sam deploy would fail in the transform).
	{"S3 event on a bucket outside the template", set(ingestProps+"Events.RawCsv.Properties.Bucket", "some-other-bucket"), byTranslator, "S3 events must reference an S3 bucket in the same template"},
	{"async destination type misspelled", set(ingestProps+"EventInvokeConfig.DestinationConfig.OnFailure.Type", "SQSS"), byTranslator, "'Type: SQSS' must be one of"},
	{"mapping destination type not SAM's", set(tripsProps+"DestinationConfig.OnFailure.Type", "Queue"), byTranslator, "The only valid values for 'Type'"},
	{"Kinesis event without StartingPosition", del(tripsProps + "StartingPosition"), byTranslator, "Missing required property 'StartingPosition'"},
	{"Globals property misspelled", set("Globals.Function.Runtimee", "provided.al2023"), byTranslator, "'Runtimee' is not a supported property of 'Function'"},
	{"event type misspelled", set("Resources.ProcessFunction.Properties.Events.Trips.Type", "Kinesiss"), byTranslator, "Event Type is: Kinesiss"},

	// Values no tool checks but ours.
	{"mapping on the stream's name, not its ARN", set(tripsProps+"Stream", map[string]any{"Ref": "Stream"}), byTemplateTest, "want !GetAtt Stream.Arn"},
	{"stream ARN a literal name", set(tripsProps+"Stream", "taxistream-trips"), byCfnLint, "E3031: 'taxistream-trips' does not match"},
}

// TestMutationsCaught applies each mutation to template.yaml alone and checks that its catcher reports
// it: the template tests in-process, cfn-lint over all its mutations in one run, the translator over all
// of its own in another (lintBatch and translateBatch, shared with TestCfnLint and TestSAMTranslation).
func TestMutationsCaught(t *testing.T) {
	t.Parallel()
	files := readStackFiles(t)
	base := loadStack(t)
	seen := map[string]bool{}
	for _, m := range mutations {
		if seen[m.name] {
			t.Fatalf("two mutations are named %q", m.name)
		}
		seen[m.name] = true
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			doc := mutated(base, m)
			if reflect.DeepEqual(doc.Doc, base.Doc) {
				t.Fatalf("the mutation changes nothing")
			}
			var got []string
			switch m.by {
			case byTemplateTest:
				got = problems(doc, files)
			case byCfnLint:
				for _, lm := range lintResult(t, m.name) {
					got = append(got, lm.Rule+": "+lm.Message)
				}
			case byTranslator:
				if tr := translationOf(t, m.name); tr.Error != "" {
					got = []string{tr.Error}
				}
			}
			for _, p := range got {
				if strings.Contains(p, m.want) {
					return
				}
			}
			t.Errorf("%s does not report %q; it reports %q", m.by, m.want, got)
		})
	}
}
