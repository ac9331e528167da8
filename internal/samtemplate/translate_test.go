package samtemplate

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCfnLint runs cfn-lint (what `sam validate --lint` runs; `make lint` too) on template.yaml: no
// error, no warning, no informational finding.
func TestCfnLint(t *testing.T) {
	t.Parallel()
	for _, m := range lintResult(t, "template.yaml") {
		t.Errorf("cfn-lint: %s", m)
	}
}

// TestSAMTranslation transforms template.yaml with the official SAM translator, CodeUri set the way
// `sam package` sets it, and checks what CloudFormation would be asked to create. The checks walk the
// template's own functions and events, so functions and events added later are checked the same way.
func TestSAMTranslation(t *testing.T) {
	t.Parallel()
	out := translatedStack(t)
	tpl := loadStack(t)
	res, _ := out["Resources"].(map[string]any)
	if _, ok := out["Transform"]; ok {
		t.Errorf("the translated template still has a Transform")
	}
	byType := map[string][]string{}
	for id, r := range res {
		typ, _ := dig(r, "Type").(string)
		if strings.HasPrefix(typ, "AWS::Serverless::") {
			t.Errorf("%s is still %s after the transform", id, typ)
		}
		byType[typ] = append(byType[typ], id)
	}
	for _, ids := range byType {
		sort.Strings(ids)
	}
	// Nothing the template does not ask for: SAM would attach AWSLambdaKinesisExecutionRole (Resource
	// "*") to a Kinesis-triggered function without a role of its own.
	for _, forbidden := range []string{"AWSLambdaKinesisExecutionRole", "AWSLambdaSQSQueueExecutionRole", "AWSLambdaRole"} {
		if refersToText(out, forbidden) {
			t.Errorf("the translated template uses the managed policy %s", forbidden)
		}
	}

	for _, fn := range tpl.ResourceIDs("AWS::Serverless::Function") {
		t.Run(fn, func(t *testing.T) {
			props, err := tpl.FunctionProperties(fn)
			if err != nil {
				t.Fatal(err)
			}
			checkTranslatedFunction(t, res, fn, props)
			checkTranslatedRole(t, res, fn, props)
			checkTranslatedEvents(t, res, fn, props)
			checkTranslatedAsync(t, res, fn, props)
		})
	}

	// The values this stack depends on, spelled out (the generic checks above compare with the template).
	esm := dig(res, "ProcessFunctionTrips", "Properties")
	for k, want := range map[string]any{
		"EventSourceArn":             map[string]any{"Fn::GetAtt": []any{"Stream", "Arn"}},
		"FunctionName":               map[string]any{"Ref": "ProcessFunction"},
		"StartingPosition":           "TRIM_HORIZON",
		"FunctionResponseTypes":      []any{"ReportBatchItemFailures"},
		"BisectBatchOnFunctionError": true,
		"ParallelizationFactor":      float64(1),
		"DestinationConfig":          map[string]any{"OnFailure": map[string]any{"Destination": map[string]any{"Fn::GetAtt": []any{"FailureQueue", "Arn"}}}},
	} {
		if diff := cmp.Diff(want, dig(esm, k)); diff != "" {
			t.Errorf("ProcessFunctionTrips %s (-want +got):\n%s", k, diff)
		}
	}
	if r, _ := dig(esm, "MaximumRetryAttempts").(float64); r < 0 || r > 10 {
		t.Errorf("ProcessFunctionTrips MaximumRetryAttempts %v, want bounded", dig(esm, "MaximumRetryAttempts"))
	}
	if got := dig(res, "ProcessFunction", "Properties", "Role"); !reflect.DeepEqual(got, map[string]any{"Fn::GetAtt": []any{"ProcessRole", "Arn"}}) {
		t.Errorf("ProcessFunction Role %v, want its own ProcessRole", got)
	}
	if _, ok := res["ProcessFunctionRole"]; ok {
		t.Errorf("SAM generated ProcessFunctionRole although ProcessFunction has its own role")
	}
	var suffixes []string
	for _, c := range anyList(dig(res, "Bucket", "Properties", "NotificationConfiguration", "LambdaConfigurations")) {
		if !reflect.DeepEqual(dig(c, "Function"), map[string]any{"Fn::GetAtt": []any{"IngestFunction", "Arn"}}) {
			continue // another function's trigger: checked with its events above
		}
		if dig(c, "Event") != "s3:ObjectCreated:*" {
			t.Errorf("bucket notification %v, want ObjectCreated to IngestFunction", c)
		}
		prefix, suffix := "", ""
		for _, r := range anyList(dig(c, "Filter", "S3Key", "Rules")) {
			switch dig(r, "Name") {
			case "prefix":
				prefix, _ = dig(r, "Value").(string)
			case "suffix":
				suffix, _ = dig(r, "Value").(string)
			}
		}
		if prefix != "raw/" {
			t.Errorf("bucket notification %v: prefix %q, want raw/", c, prefix)
		}
		suffixes = append(suffixes, suffix)
	}
	sort.Strings(suffixes)
	if !slices.Equal(suffixes, wantSuffixes) {
		t.Errorf("bucket notifications for suffixes %q, want %q", suffixes, wantSuffixes)
	}
	for _, fn := range []string{"IngestFunction", "ReplayFunction"} {
		if got := dig(res, fn+"EventInvokeConfig", "Properties", "DestinationConfig", "OnFailure", "Destination"); !reflect.DeepEqual(got, map[string]any{"Fn::GetAtt": []any{"FailureQueue", "Arn"}}) {
			t.Errorf("%sEventInvokeConfig on-failure destination %v, want the FailureQueue ARN", fn, got)
		}
	}
	// The bucket keeps what the template says beside the notifications SAM adds.
	bucket, _ := res["Bucket"].(map[string]any)
	if bucket["DeletionPolicy"] != "RetainExceptOnCreate" || bucket["UpdateReplacePolicy"] != "Retain" {
		t.Errorf("Bucket DeletionPolicy %v UpdateReplacePolicy %v after the transform, want RetainExceptOnCreate and Retain",
			bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"])
	}
}

func checkTranslatedFunction(t *testing.T, res map[string]any, fn string, props map[string]any) {
	t.Helper()
	f, _ := res[fn].(map[string]any)
	if f["Type"] != "AWS::Lambda::Function" {
		t.Fatalf("%s is %v after the transform, want AWS::Lambda::Function", fn, f["Type"])
	}
	p, _ := f["Properties"].(map[string]any)
	if want := map[string]any{"S3Bucket": codeBucket, "S3Key": codeKey}; !reflect.DeepEqual(p["Code"], want) {
		t.Errorf("Code %v, want %v (from CodeUri %s)", p["Code"], want, codeURI)
	}
	// Every property SAM passes through reaches the function with the value the template (Globals
	// merged) gives it: nothing dropped, nothing changed.
	for _, k := range []string{"Runtime", "Handler", "Architectures", "Timeout", "MemorySize", "LoggingConfig",
		"FunctionName", "Description", "RecursiveLoop", "ReservedConcurrentExecutions", "Environment"} {
		want, ok := props[k]
		if !ok {
			continue
		}
		if diff := cmp.Diff(jsonNumbers(want), p[k]); diff != "" {
			t.Errorf("%s (-template +translated):\n%s", k, diff)
		}
	}
}

// checkTranslatedRole checks the execution role: the template's own (Role) or the one SAM generates,
// which trusts Lambda only and holds the template's inline policies and nothing broader than
// AWSLambdaBasicExecutionRole (logs).
func checkTranslatedRole(t *testing.T, res map[string]any, fn string, props map[string]any) {
	t.Helper()
	role := dig(res, fn, "Properties", "Role")
	if r, ok := props["Role"]; ok {
		if !reflect.DeepEqual(role, r) {
			t.Errorf("Role %v, want the template's %v", role, r)
		}
		return
	}
	want := map[string]any{"Fn::GetAtt": []any{fn + "Role", "Arn"}}
	if !reflect.DeepEqual(role, want) {
		t.Fatalf("Role %v, want the generated %sRole", role, fn)
	}
	r := dig(res, fn+"Role", "Properties")
	trust := statements(dig(r, "AssumeRolePolicyDocument"))
	if len(trust) != 1 || !reflect.DeepEqual(dig(trust[0], "Principal", "Service"), []any{"lambda.amazonaws.com"}) ||
		!reflect.DeepEqual(anyStrings(trust[0]["Action"]), []string{"sts:AssumeRole"}) {
		t.Errorf("%sRole trust policy %v, want lambda.amazonaws.com only", fn, trust)
	}
	if got := anyStrings(dig(r, "ManagedPolicyArns")); !slices.Equal(got, []string{"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}) &&
		!refersToText(dig(r, "ManagedPolicyArns"), "AWSLambdaBasicExecutionRole") {
		t.Errorf("%sRole managed policies %v, want AWSLambdaBasicExecutionRole only", fn, got)
	}
	// The template's inline policies arrive verbatim, as <fn>RolePolicy<i>.
	docs := map[string]any{}
	for _, p := range anyList(dig(r, "Policies")) {
		name, _ := dig(p, "PolicyName").(string)
		docs[name] = dig(p, "PolicyDocument")
	}
	for i, pol := range anyList(props["Policies"]) {
		name := fmt.Sprintf("%sRolePolicy%d", fn, i)
		if diff := cmp.Diff(jsonNumbers(pol), docs[name]); diff != "" {
			t.Errorf("policy %s (-template +translated):\n%s", name, diff)
		}
		delete(docs, name)
	}
	// What SAM adds besides: one policy per async destination (checked in checkTranslatedAsync).
	for name, doc := range docs {
		if !strings.HasPrefix(name, fn+"EventInvokeConfig") {
			t.Errorf("%sRole has a policy %s the template does not give: %v", fn, name, doc)
		}
		for _, s := range statements(doc) {
			for _, r := range anyList(s["Resource"]) {
				if r == "*" {
					t.Errorf("%sRole policy %s grants %v on *", fn, name, s["Action"])
				}
			}
		}
	}
}

// checkTranslatedEvents checks that each event source became what it says: a Kinesis event an event
// source mapping with exactly the event's properties, an S3 event a notification of the bucket with a
// permission for S3 to invoke the function.
func checkTranslatedEvents(t *testing.T, res map[string]any, fn string, props map[string]any) {
	t.Helper()
	events, _ := props["Events"].(map[string]any)
	for _, name := range sortedKeys(events) {
		ev, _ := events[name].(map[string]any)
		ep, _ := ev["Properties"].(map[string]any)
		switch ev["Type"] {
		case "Kinesis", "SQS", "DynamoDB":
			id := fn + name
			esm, _ := res[id].(map[string]any)
			if esm["Type"] != "AWS::Lambda::EventSourceMapping" {
				t.Errorf("event %s: no AWS::Lambda::EventSourceMapping %s", name, id)
				continue
			}
			want := map[string]any{"FunctionName": map[string]any{"Ref": fn}}
			for k, v := range ep {
				switch k {
				case "Stream", "Queue":
					want["EventSourceArn"] = v
				case "DestinationConfig":
					// Type (SQS, SNS, ...) is SAM's, for the policy it generates; the mapping takes the ARN.
					d := deepCopy(v)
					if m, ok := dig(d, "OnFailure").(map[string]any); ok {
						delete(m, "Type")
					}
					want[k] = d
				default:
					want[k] = v
				}
			}
			if diff := cmp.Diff(jsonNumbers(want), esm["Properties"]); diff != "" {
				t.Errorf("event source mapping %s (-event +translated):\n%s", id, diff)
			}
		case "S3":
			bucket := dig(ep, "Bucket", "Ref")
			b, _ := bucket.(string)
			want := map[string]any{
				"Event":    ep["Events"],
				"Filter":   ep["Filter"],
				"Function": map[string]any{"Fn::GetAtt": []any{fn, "Arn"}},
			}
			found := false
			for _, c := range anyList(dig(res, b, "Properties", "NotificationConfiguration", "LambdaConfigurations")) {
				if cmp.Equal(jsonNumbers(want), c) {
					found = true
				}
			}
			if !found {
				t.Errorf("event %s: bucket %s has no notification %v", name, b, want)
			}
			perm := fn + name + "Permission"
			wantPerm := map[string]any{"Action": "lambda:InvokeFunction", "FunctionName": map[string]any{"Ref": fn},
				"Principal": "s3.amazonaws.com", "SourceAccount": map[string]any{"Ref": "AWS::AccountId"}}
			if diff := cmp.Diff(wantPerm, dig(res, perm, "Properties")); diff != "" {
				t.Errorf("permission %s (-want +translated):\n%s", perm, diff)
			}
			// S3 checks it may invoke the function when the notification is put: the bucket waits for it.
			if !slices.Contains(anyStrings(dig(res, b, "DependsOn")), perm) {
				t.Errorf("bucket %s DependsOn %v, want %s", b, dig(res, b, "DependsOn"), perm)
			}
		}
	}
}

// checkTranslatedAsync checks EventInvokeConfig: Lambda's retry and age limits and the on-failure
// destination, and the permission SAM grants the role to send there.
func checkTranslatedAsync(t *testing.T, res map[string]any, fn string, props map[string]any) {
	t.Helper()
	ic, ok := props["EventInvokeConfig"].(map[string]any)
	id := fn + "EventInvokeConfig"
	if !ok {
		if _, exists := res[id]; exists {
			t.Errorf("%s exists but the template sets no EventInvokeConfig", id)
		}
		return
	}
	want := map[string]any{"FunctionName": map[string]any{"Ref": fn}, "Qualifier": "$LATEST"}
	for _, k := range []string{"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} {
		if v, ok := ic[k]; ok {
			want[k] = v
		}
	}
	dests := map[string]any{}
	for _, when := range []string{"OnFailure", "OnSuccess"} {
		d, ok := dig(ic, "DestinationConfig", when).(map[string]any)
		if !ok {
			continue
		}
		dests[when] = d
		want["DestinationConfig"] = mergeMaps(want["DestinationConfig"], map[string]any{when: map[string]any{"Destination": d["Destination"]}})
	}
	if diff := cmp.Diff(jsonNumbers(want), dig(res, id, "Properties")); diff != "" {
		t.Errorf("%s (-template +translated):\n%s", id, diff)
	}
	if _, own := props["Role"]; own {
		return // the template's own role must grant it; the template tests check that
	}
	for when, d := range dests {
		if dig(d, "Type") != "SQS" {
			continue
		}
		granted := false
		for _, p := range anyList(dig(res, fn+"Role", "Properties", "Policies")) {
			for _, s := range statements(dig(p, "PolicyDocument")) {
				if s["Effect"] == "Allow" && slices.Contains(anyStrings(s["Action"]), "sqs:SendMessage") &&
					slices.ContainsFunc(anyList(s["Resource"]), func(r any) bool { return reflect.DeepEqual(r, dig(d, "Destination")) }) {
					granted = true
				}
			}
		}
		if !granted {
			t.Errorf("%sRole may not sqs:SendMessage to its %s destination %v", fn, when, dig(d, "Destination"))
		}
	}
}

func mergeMaps(a any, b map[string]any) map[string]any {
	out := map[string]any{}
	if m, ok := a.(map[string]any); ok {
		for k, v := range m {
			out[k] = v
		}
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// jsonNumbers converts the YAML integers of a template value to float64, as JSON decoding gives them.
func jsonNumbers(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = jsonNumbers(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = jsonNumbers(e)
		}
		return l
	}
	return v
}

// refersToText reports whether any string in v contains s.
func refersToText(v any, s string) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, s)
	case map[string]any:
		for k, e := range x {
			if strings.Contains(k, s) || refersToText(e, s) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if refersToText(e, s) {
				return true
			}
		}
	}
	return false
}
