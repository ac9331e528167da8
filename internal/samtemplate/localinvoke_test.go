package samtemplate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"

	"github.com/taxistream/taxistream/internal/testenv"
)

// The deployed stack events/ and events/env.json describe: samconfig.toml's stack in the account and
// region of the events (AWS's documentation account).
const (
	exampleAccount = "123456789012"
	exampleRegion  = "us-east-1"
)

// samLocalResolver resolves intrinsic functions the way `sam local invoke` does (SAM CLI's
// IntrinsicsSymbolTable, DEFAULT_PSEUDO_PARAM_VALUES): stack "local", account 123456789012, region
// AWS_REGION or us-east-1 (us-east-1 here), a resource's Ref is its logical id, any Arn is a Lambda
// function ARN named after the function (or the logical id), and what it cannot resolve becomes "".
// SAM CLI's --parameter-overrides cannot change the pseudo parameters (keys are [A-Za-z0-9"']+).
func samLocalResolver() Resolver {
	return Resolver{StackName: "local", AccountID: "123456789012", Region: "us-east-1", Partition: "aws",
		Ref: func(r Resource) (string, bool) { return r.LogicalID, true },
		GetAtt: func(r Resource, attr string) (string, bool) {
			if attr != "Arn" {
				return "", true
			}
			name := r.LogicalID
			if n, ok := r.Properties["FunctionName"].(string); ok {
				name = n
			}
			return "arn:aws:lambda:us-east-1:123456789012:function:" + name, true
		}}
}

// samLocalEnv is the environment `sam local invoke fn` gives the function: the template's variables
// (Globals merged) resolved by samLocalResolver with the parameter overrides, then the env-vars file's
// "Parameters" and then its entry for fn, each for variables the template declares only (SAM CLI
// ignores the others). A value SAM cannot resolve (an intrinsic left over) is "".
func samLocalEnv(t *testing.T, tpl *Template, fn string, params map[string]string, envFile map[string]map[string]string) map[string]string {
	t.Helper()
	e, err := newEvaluator(tpl, params, samLocalResolver())
	if err != nil {
		t.Fatalf("sam local parameters: %v", err)
	}
	props, err := tpl.FunctionProperties(fn)
	if err != nil {
		t.Fatal(err)
	}
	vars, _ := dig(props, "Environment", "Variables").(map[string]any)
	env := make(map[string]string, len(vars))
	for k, v := range vars {
		ev, err := e.eval(v)
		switch x := ev.(type) {
		case bool:
			env[k] = fmt.Sprint(x)
		case map[string]any, []any, noValue, nil:
			env[k] = ""
		default:
			env[k] = scalarString(x)
		}
		if err != nil {
			env[k] = ""
		}
	}
	for _, scope := range []string{"Parameters", fn} {
		for k, v := range envFile[scope] {
			if _, declared := env[k]; declared {
				env[k] = v
			}
		}
	}
	return env
}

// samconfig is the part of samconfig.toml `sam deploy` and `sam local invoke` read.
type samconfig struct {
	Default map[string]struct {
		Parameters map[string]any `toml:"parameters"`
	} `toml:"default"`
}

func readSamconfig(t *testing.T) samconfig {
	t.Helper()
	var c samconfig
	if _, err := toml.DecodeFile(filepath.Join(testenv.Root(t), "samconfig.toml"), &c); err != nil {
		t.Fatalf("samconfig.toml: %v", err)
	}
	return c
}

func (c samconfig) param(command, key string) any {
	if v, ok := c.Default[command].Parameters[key]; ok {
		return v
	}
	return c.Default["global"].Parameters[key]
}

// overridePair is SAM CLI's "Key=Value" form of --parameter-overrides (CfnParameterOverridesType):
// values may be double- or single-quoted, with backslash escapes.
var overridePair = regexp.MustCompile(`(?:^|\s)([A-Za-z0-9"']+)=("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|(?:\\.|[^\s"\\])+)`)

// parameterOverrides reads parameter_overrides as SAM CLI does: one string of pairs, or a list of them.
func parameterOverrides(t *testing.T, v any) map[string]string {
	t.Helper()
	var parts []string
	switch x := v.(type) {
	case nil:
		return map[string]string{}
	case string:
		parts = []string{x}
	case []any:
		for _, e := range x {
			parts = append(parts, fmt.Sprint(e))
		}
	default:
		t.Fatalf("parameter_overrides %v is neither a string nor a list", v)
	}
	out := map[string]string{}
	for _, p := range parts {
		rest := overridePair.ReplaceAllStringFunc(p, func(m string) string {
			sm := overridePair.FindStringSubmatch(m)
			val := sm[2]
			if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
				val = val[1 : len(val)-1]
			}
			out[sm[1]] = strings.NewReplacer(`\ `, " ", `\"`, `"`, `\'`, "'").Replace(val)
			return ""
		})
		if strings.TrimSpace(rest) != "" {
			t.Errorf("parameter_overrides %q: %q is not Key=Value", p, strings.TrimSpace(rest))
		}
	}
	return out
}

// TestSAMLocalInvoke resolves template.yaml the way `sam local invoke` does, with samconfig.toml's
// [default.local_invoke.parameters] and the env-vars file it names, and checks that every function then
// gets the environment the deployed stack gives it, and that the events in events/ and the Makefile's
// invoke targets agree with that stack.
func TestSAMLocalInvoke(t *testing.T) {
	root := testenv.Root(t)
	tpl := loadStack(t)
	cfg := readSamconfig(t)
	stack, _ := cfg.param("deploy", "stack_name").(string)
	if stack == "" {
		t.Fatal("samconfig.toml names no stack_name for deploy")
	}
	deployParams := parameterOverrides(t, cfg.param("deploy", "parameter_overrides"))
	localParams := parameterOverrides(t, cfg.param("local_invoke", "parameter_overrides"))
	// The local parameters are the deployed ones (LogLevel aside), so parameter-derived variables agree.
	for k, v := range deployParams {
		if k != "LogLevel" && localParams[k] != v {
			t.Errorf("local_invoke parameter %s=%q, deploy has %q", k, localParams[k], v)
		}
	}
	for k := range localParams {
		if _, ok := deployParams[k]; !ok && k != "LogLevel" {
			t.Errorf("local_invoke overrides %s, deploy does not", k)
		}
	}
	envVars, _ := cfg.param("local_invoke", "env_vars").(string)
	if envVars != "events/env.json" {
		t.Fatalf("samconfig.toml local_invoke env_vars %q, want events/env.json", envVars)
	}
	envFile := readEnvFile(t, filepath.Join(root, envVars))

	fns := tpl.ResourceIDs("AWS::Serverless::Function")
	declared := map[string]bool{}
	for _, fn := range fns {
		for k := range samLocalEnv(t, tpl, fn, localParams, nil) {
			declared[fn+"/"+k], declared["Parameters/"+k] = true, true
		}
	}
	for scope, vars := range envFile {
		if scope != "Parameters" && !slices.Contains(fns, scope) {
			t.Errorf("%s: %q is no function of the template (SAM CLI ignores it)", envVars, scope)
		}
		for k := range vars {
			if !declared[scope+"/"+k] {
				t.Errorf("%s: %s.%s is not a variable the template declares (SAM CLI ignores it)", envVars, scope, k)
			}
		}
	}

	// Without the file, sam local names resources that do not exist (what the issue saw).
	bare := samLocalEnv(t, tpl, "IngestFunction", localParams, nil)
	if bare["BUCKET_NAME"] != "local-123456789012-us-east-1" || bare["STREAM_NAME"] != "Stream" {
		t.Errorf("sam local without an env file: BUCKET_NAME %q, STREAM_NAME %q; the model of sam local is off",
			bare["BUCKET_NAME"], bare["STREAM_NAME"])
	}

	// The deployed stack, with the stream name CloudFormation generated in the example (the events' ARN).
	kin := readEvent(t, filepath.Join(root, "events", "kinesis.json"))
	arn, _ := dig(kin, "Records", "0", "eventSourceARN").(string)
	streamName := arn[strings.LastIndex(arn, "/")+1:]
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(stack) + `-Stream-[A-Za-z0-9]{12}$`).MatchString(streamName) {
		t.Errorf("events/kinesis.json names the stream %q, not a name CloudFormation generates for %s's Stream", streamName, stack)
	}
	dep, err := tpl.ResolveWith(deployParams, Resolver{StackName: stack, AccountID: exampleAccount, Region: exampleRegion,
		Ref: func(r Resource) (string, bool) {
			if r.Type == "AWS::Kinesis::Stream" && r.Properties["Name"] == nil {
				return streamName, true
			}
			return "", false
		},
		GetAtt: func(r Resource, attr string) (string, bool) {
			if r.Type == "AWS::Kinesis::Stream" && r.Properties["Name"] == nil && attr == "Arn" {
				return "arn:aws:kinesis:" + exampleRegion + ":" + exampleAccount + ":stream/" + streamName, true
			}
			return "", false
		}})
	if err != nil {
		t.Fatalf("resolving the deployed stack: %v", err)
	}
	for _, fn := range fns {
		got := samLocalEnv(t, tpl, fn, localParams, envFile)
		if diff := cmp.Diff(dep.Functions[fn].Env, got); diff != "" {
			t.Errorf("%s under sam local invoke with %s (-deployed +local):\n%s", fn, envVars, diff)
		}
	}

	// Every event agrees with the deployed stack, and says which function it is for.
	files, err := filepath.Glob(filepath.Join(root, "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	eventFunction := map[string]string{}
	for _, f := range files {
		rel := "events/" + filepath.Base(f)
		if rel == envVars {
			continue
		}
		eventFunction[rel] = checkEventAgrees(t, rel, readEvent(t, f), dep, stack)
	}

	// The Makefile's invoke targets: one per function, with its event and the env-vars file.
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^invoke-(\w+): EVENT \?= (\S+)$`).FindAllStringSubmatch(string(mk), -1) {
		defaults[m[1]] = m[2]
	}
	if m := regexp.MustCompile(`(?m)^SAM_ENV_VARS \?= (\S+)$`).FindStringSubmatch(string(mk)); m == nil || m[1] != envVars {
		t.Errorf("Makefile: SAM_ENV_VARS defaults to %v, samconfig.toml names %s", m, envVars)
	}
	recipes := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^invoke-(\w+):.*\n\tsam local invoke (\w+) --event \$\(EVENT\) --env-vars \$\(SAM_ENV_VARS\)$`).FindAllStringSubmatch(string(mk), -1) {
		if m[1] != m[2] {
			t.Errorf("make invoke-%s invokes %s", m[1], m[2])
		}
		recipes[m[1]] = m[2]
	}
	// A target for every function that has an event in events/ (a function added without one, e.g. a
	// scheduled one, needs none).
	hasEvent := map[string]bool{}
	for _, fn := range eventFunction {
		hasEvent[fn] = true
	}
	for _, fn := range fns {
		ev, ok := defaults[fn]
		if _, hasRecipe := recipes[fn]; !ok || !hasRecipe {
			if hasEvent[fn] || ok || hasRecipe {
				t.Errorf("Makefile: no invoke-%s target running sam local invoke %s --event $(EVENT) --env-vars $(SAM_ENV_VARS) with a default EVENT", fn, fn)
			} else {
				t.Logf("%s has no event in events/ and no invoke target", fn)
			}
			continue
		}
		if got, known := eventFunction[ev]; !known {
			t.Errorf("make invoke-%s: %s is not an event in events/", fn, ev)
		} else if got != fn {
			t.Errorf("make invoke-%s: %s is an event for %s", fn, ev, got)
		}
	}
}

func readEnvFile(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]map[string]string // SAM CLI wants {scope: {VAR: "string"}}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("%s: %v (want {\"Parameters\"|<function>: {VAR: \"value\"}})", path, err)
	}
	return env
}

func readEvent(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// checkEventAgrees checks that an event of events/ names the deployed stack's resources and would reach
// a function of the template; it returns that function's logical id.
func checkEventAgrees(t *testing.T, name string, ev map[string]any, s *Settings, stack string) string {
	t.Helper()
	fail := func(format string, args ...any) { t.Errorf(name+": "+format, args...) }
	// The functions an S3 notification of key would reach.
	s3Targets := func(bucket, eventName, key string) []string {
		var out []string
		for _, id := range sortedKeys(anyMap(s.Functions)) {
			for _, e := range s.Functions[id].S3Events {
				if e.Bucket == bucket && e.Matches(eventName, key) {
					out = append(out, id)
				}
			}
		}
		return slices.Compact(out)
	}
	one := func(what string, ids []string) string {
		if len(ids) != 1 {
			fail("%s reaches functions %v, want exactly one", what, ids)
			return ""
		}
		return ids[0]
	}
	switch {
	case ev["Records"] != nil:
		var fn string
		for i, r := range anyList(ev["Records"]) {
			if dig(r, "awsRegion") != s.Region {
				fail("record %d: awsRegion %v, want %s", i, dig(r, "awsRegion"), s.Region)
			}
			switch dig(r, "eventSource") {
			case "aws:s3":
				bucket, _ := dig(r, "s3", "bucket", "name").(string)
				if bucket != s.Bucket.Name || dig(r, "s3", "bucket", "arn") != s.Bucket.ARN {
					fail("record %d: bucket %q (%v), want the stack's %s", i, bucket, dig(r, "s3", "bucket", "arn"), s.Bucket.Name)
				}
				key, err := urlDecodeKey(fmt.Sprint(dig(r, "s3", "object", "key")))
				if err != nil {
					fail("record %d: %v", i, err)
				}
				fn = one(fmt.Sprintf("record %d (%s)", i, key), s3Targets(bucket, fmt.Sprint(dig(r, "eventName")), key))
			case "aws:kinesis":
				arn := dig(r, "eventSourceARN")
				if arn != s.Stream.ARN {
					fail("record %d: eventSourceARN %v, want the stack's stream %s", i, arn, s.Stream.ARN)
				}
				var ids []string
				for _, id := range sortedKeys(anyMap(s.Functions)) {
					for _, k := range s.Functions[id].KinesisEvents {
						if k.StreamARN == arn {
							ids = append(ids, id)
						}
					}
				}
				fn = one(fmt.Sprintf("record %d", i), ids)
				// The role of the mapping's function, as CloudFormation names a role without a name.
				role, _ := dig(r, "invokeIdentityArn").(string)
				if !strings.HasPrefix(role, "arn:aws:iam::"+s.AccountID+":role/"+stack+"-") {
					fail("record %d: invokeIdentityArn %q is not a role of stack %s in %s", i, role, stack, s.AccountID)
				}
			default:
				fail("record %d: event source %v", i, dig(r, "eventSource"))
			}
		}
		if arn, ok := ev["eventSourceARN"]; ok && arn != s.Stream.ARN { // a tumbling-window event
			fail("eventSourceARN %v, want %s", arn, s.Stream.ARN)
		}
		return fn
	case ev["taxistream"] != nil: // IngestFunction's own continuation and replay events
		bucket, _ := ev["bucket"].(string)
		key, _ := ev["key"].(string)
		if bucket != s.Bucket.Name {
			fail("bucket %q, want the stack's %s", bucket, s.Bucket.Name)
		}
		return one("key "+key, s3Targets(bucket, "ObjectCreated:Put", key))
	case ev["prefix"] != nil: // ReplayFunction's request: it hands objects under the prefix to ingestion
		prefix, _ := ev["prefix"].(string)
		for _, id := range sortedKeys(anyMap(s.Functions)) {
			if _, replays := s.Functions[id].Env["REPLAY_MAX_IN_FLIGHT"]; replays {
				ingest := ""
				for iid, f := range s.Functions {
					if f.Name == s.Functions[id].Env["INGEST_FUNCTION_NAME"] {
						ingest = iid
					}
				}
				for _, e := range s.Functions[ingest].S3Events {
					if strings.HasPrefix(prefix, e.Prefix) {
						return id
					}
				}
				fail("prefix %q is outside the ingestion triggers of %s", prefix, ingest)
				return id
			}
		}
		fail("no function takes replay requests (REPLAY_MAX_IN_FLIGHT)")
	case ev["detail-type"] == "Scheduled Event", ev["from"] != nil || ev["to"] != nil: // CompactFunction's schedule and requests
		if ev["detail-type"] != nil && (ev["account"] != s.AccountID || ev["region"] != s.Region) {
			fail("account %v, region %v, want the stack's %s, %s", ev["account"], ev["region"], s.AccountID, s.Region)
		}
		for _, id := range sortedKeys(anyMap(s.Functions)) {
			if _, compacts := s.Functions[id].Env["COMPACT_TARGET_FILE_MB"]; compacts {
				return id
			}
		}
		fail("no function compacts (COMPACT_TARGET_FILE_MB)")
	default:
		fail("not an event of any function of the stack")
	}
	return ""
}

// urlDecodeKey decodes an S3 event key as aws-lambda-go's URLDecodedKey does (form encoding).
func urlDecodeKey(k string) (string, error) {
	return url.QueryUnescape(k)
}
