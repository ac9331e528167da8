package samtemplate

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Resolver decides what the template's Refs and GetAtts name when it is resolved outside CloudFormation.
// Zero fields take the defaults of the local cloud: stack "taxistream", region "us-east-1", account
// "000000000000", partition "aws"; a resource's Ref is its name property (BucketName, Name,
// FunctionName, ...) when it has one, else "<stack>-<LogicalId>"; Arn attributes are built from those
// names the way AWS builds them.
type Resolver struct {
	StackName string
	Region    string
	AccountID string
	Partition string
	// Ref, when set, names a resource before the defaults are tried (ok false falls back to them).
	Ref func(r Resource) (value string, ok bool)
	// GetAtt, when set, gives a resource attribute before the defaults are tried.
	GetAtt func(r Resource, attribute string) (value string, ok bool)
}

// noValue is what AWS::NoValue evaluates to: the property or list element disappears.
type noValue struct{}

type evaluator struct {
	t        *Template
	r        Resolver
	params   map[string]string
	conds    map[string]bool
	visiting map[string]bool
}

func newEvaluator(t *Template, overrides map[string]string, r Resolver) (*evaluator, error) {
	if r.StackName == "" {
		r.StackName = "taxistream"
	}
	if r.Region == "" {
		r.Region = "us-east-1"
	}
	if r.AccountID == "" {
		r.AccountID = "000000000000"
	}
	if r.Partition == "" {
		r.Partition = "aws"
	}
	e := &evaluator{t: t, r: r, conds: map[string]bool{}, visiting: map[string]bool{}}
	params, err := parameterValues(t, overrides)
	if err != nil {
		return nil, err
	}
	e.params = params
	return e, nil
}

// parameterValues applies overrides to the parameters' defaults and checks every value against its
// declaration (type, AllowedValues, AllowedPattern, lengths, bounds), returning every problem at once.
func parameterValues(t *Template, overrides map[string]string) (map[string]string, error) {
	decls := t.Section("Parameters")
	var errs []error
	for name := range overrides {
		if _, ok := decls[name]; !ok {
			errs = append(errs, fmt.Errorf("parameter override %s: no such parameter", name))
		}
	}
	values := make(map[string]string, len(decls))
	names := make([]string, 0, len(decls))
	for name := range decls {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d, _ := decls[name].(map[string]any)
		v, ok := overrides[name]
		if !ok {
			def, has := d["Default"]
			if !has {
				errs = append(errs, fmt.Errorf("parameter %s: no default and no override", name))
				continue
			}
			v = scalarString(def)
		}
		if err := checkParameter(name, d, v); err != nil {
			errs = append(errs, err)
		}
		values[name] = v
	}
	return values, errors.Join(errs...)
}

func checkParameter(name string, d map[string]any, v string) error {
	if allowed, ok := d["AllowedValues"].([]any); ok {
		found := false
		for _, a := range allowed {
			if scalarString(a) == v {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("parameter %s=%q: not one of the allowed values %v", name, v, allowed)
		}
	}
	if d["Type"] == "Number" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("parameter %s=%q: not a number", name, v)
		}
		if lo, ok := number(d["MinValue"]); ok && n < lo {
			return fmt.Errorf("parameter %s=%v: below MinValue %v", name, v, lo)
		}
		if hi, ok := number(d["MaxValue"]); ok && n > hi {
			return fmt.Errorf("parameter %s=%v: above MaxValue %v", name, v, hi)
		}
	}
	if p, ok := d["AllowedPattern"].(string); ok {
		re, err := regexp.Compile("^(?:" + p + ")$")
		if err != nil {
			return fmt.Errorf("parameter %s: AllowedPattern: %w", name, err)
		}
		if !re.MatchString(v) {
			return fmt.Errorf("parameter %s=%q: does not match %s", name, v, p)
		}
	}
	if n, ok := number(d["MinLength"]); ok && float64(len(v)) < n {
		return fmt.Errorf("parameter %s=%q: shorter than MinLength %v", name, v, n)
	}
	if n, ok := number(d["MaxLength"]); ok && float64(len(v)) > n {
		return fmt.Errorf("parameter %s=%q: longer than MaxLength %v", name, v, n)
	}
	return nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// eval evaluates the intrinsic functions in v. AWS::NoValue yields noValue{} at the top and removes
// map entries and list elements below it.
func (e *evaluator) eval(v any) (any, error) {
	if name, arg, ok := Intrinsic(v); ok {
		return e.intrinsic(name, arg)
	}
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, el := range x {
			ev, err := e.eval(el)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if _, drop := ev.(noValue); !drop {
				m[k] = ev
			}
		}
		return m, nil
	case []any:
		l := make([]any, 0, len(x))
		for i, el := range x {
			ev, err := e.eval(el)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if _, drop := ev.(noValue); !drop {
				l = append(l, ev)
			}
		}
		return l, nil
	}
	return v, nil
}

func (e *evaluator) intrinsic(name string, arg any) (any, error) {
	switch name {
	case "Ref":
		s, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("evaluating Ref: argument %v is not a name", arg)
		}
		return e.ref(s)
	case "Fn::GetAtt":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt: argument %v is not [resource, attribute]", arg)
		}
		id, _ := l[0].(string)
		attr, err := e.evalString(l[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::GetAtt: %w", err)
		}
		return e.getAtt(id, attr)
	case "Fn::Sub":
		return e.sub(arg)
	case "Fn::If":
		l, ok := arg.([]any)
		if !ok || len(l) != 3 {
			return nil, fmt.Errorf("Fn::If: argument is not [condition, then, else]")
		}
		c, _ := l[0].(string)
		b, err := e.condition(c)
		if err != nil {
			return nil, err
		}
		if b {
			return e.eval(l[1])
		}
		return e.eval(l[2])
	case "Condition":
		c, _ := arg.(string)
		return e.condition(c)
	case "Fn::Equals":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return nil, fmt.Errorf("Fn::Equals: argument is not [a, b]")
		}
		a, err := e.evalString(l[0])
		if err != nil {
			return nil, err
		}
		b, err := e.evalString(l[1])
		if err != nil {
			return nil, err
		}
		return a == b, nil
	case "Fn::Not", "Fn::And", "Fn::Or":
		l, ok := arg.([]any)
		if !ok || len(l) == 0 || (name == "Fn::Not" && len(l) != 1) {
			return nil, fmt.Errorf("%s: bad argument %v", name, arg)
		}
		acc := name == "Fn::And"
		for _, x := range l {
			v, err := e.eval(x)
			if err != nil {
				return nil, err
			}
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("%s: %v is not a condition", name, x)
			}
			switch name {
			case "Fn::Not":
				return !b, nil
			case "Fn::And":
				acc = acc && b
			default:
				acc = acc || b
			}
		}
		return acc, nil
	case "Fn::Join":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return nil, fmt.Errorf("Fn::Join: argument is not [delimiter, list]")
		}
		sep, _ := l[0].(string)
		parts, err := e.evalStrings(l[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::Join: %w", err)
		}
		return strings.Join(parts, sep), nil
	case "Fn::Split":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return nil, fmt.Errorf("Fn::Split: argument is not [delimiter, string]")
		}
		sep, _ := l[0].(string)
		s, err := e.evalString(l[1])
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(s, sep) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::Select":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return nil, fmt.Errorf("Fn::Select: argument is not [index, list]")
		}
		is, err := e.evalString(l[0])
		if err != nil {
			return nil, err
		}
		i, err := strconv.Atoi(is)
		if err != nil {
			return nil, fmt.Errorf("Fn::Select: index %q", is)
		}
		lv, err := e.eval(l[1])
		if err != nil {
			return nil, err
		}
		list, ok := lv.([]any)
		if !ok || i < 0 || i >= len(list) {
			return nil, fmt.Errorf("Fn::Select: index %d out of range", i)
		}
		return list[i], nil
	case "Fn::FindInMap":
		l, ok := arg.([]any)
		if !ok || len(l) != 3 {
			return nil, fmt.Errorf("Fn::FindInMap: argument is not [map, key, key]")
		}
		var keys [3]string
		for i := range keys {
			s, err := e.evalString(l[i])
			if err != nil {
				return nil, err
			}
			keys[i] = s
		}
		m1, _ := e.t.Section("Mappings")[keys[0]].(map[string]any)
		m2, _ := m1[keys[1]].(map[string]any)
		v, ok := m2[keys[2]]
		if !ok {
			return nil, fmt.Errorf("Fn::FindInMap: %v not found", keys)
		}
		return e.eval(v)
	case "Fn::Base64":
		s, err := e.evalString(arg)
		if err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	}
	return nil, fmt.Errorf("%s is not supported outside CloudFormation", name)
}

func (e *evaluator) evalString(v any) (string, error) {
	ev, err := e.eval(v)
	if err != nil {
		return "", err
	}
	switch ev.(type) {
	case map[string]any, []any, noValue:
		return "", fmt.Errorf("%v is not a scalar", v)
	}
	return scalarString(ev), nil
}

func (e *evaluator) evalStrings(v any) ([]string, error) {
	ev, err := e.eval(v)
	if err != nil {
		return nil, err
	}
	switch x := ev.(type) {
	case nil, noValue:
		return nil, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, el := range x {
			switch el.(type) {
			case map[string]any, []any:
				return nil, fmt.Errorf("%v is not a scalar", el)
			}
			out = append(out, scalarString(el))
		}
		return out, nil
	case map[string]any:
		return nil, fmt.Errorf("%v is not a list", v)
	}
	return []string{scalarString(ev)}, nil // a single string where a list is allowed (S3 Events)
}

func (e *evaluator) condition(name string) (bool, error) {
	if b, ok := e.conds[name]; ok {
		return b, nil
	}
	key := "condition " + name
	if e.visiting[key] {
		return false, fmt.Errorf("condition %s refers to itself", name)
	}
	expr, ok := e.t.Section("Conditions")[name]
	if !ok {
		return false, fmt.Errorf("no condition %s", name)
	}
	e.visiting[key] = true
	defer delete(e.visiting, key)
	v, err := e.eval(expr)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("condition %s is not a boolean", name)
	}
	e.conds[name] = b
	return b, nil
}

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

func (e *evaluator) sub(arg any) (any, error) {
	var tmpl string
	vars := map[string]any{}
	switch x := arg.(type) {
	case string:
		tmpl = x
	case []any:
		if len(x) != 2 {
			return nil, errors.New("Fn::Sub: argument is not [string, variables]")
		}
		tmpl, _ = x[0].(string)
		vars, _ = x[1].(map[string]any)
	default:
		return nil, errors.New("Fn::Sub: bad argument")
	}
	var firstErr error
	out := subVar.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") { // ${!Literal} is the text ${Literal}
			return "${" + name[1:] + "}"
		}
		var s string
		var err error
		if v, ok := vars[name]; ok {
			s, err = e.evalString(v)
		} else if id, attr, dotted := strings.Cut(name, "."); dotted {
			var v any
			if v, err = e.getAtt(id, attr); err == nil {
				s = scalarString(v)
			}
		} else {
			var v any
			if v, err = e.ref(name); err == nil {
				s = scalarString(v)
			}
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("Fn::Sub %q: %w", tmpl, err)
		}
		return s
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func (e *evaluator) ref(name string) (any, error) {
	switch name {
	case "AWS::StackName":
		return e.r.StackName, nil
	case "AWS::Region":
		return e.r.Region, nil
	case "AWS::AccountId":
		return e.r.AccountID, nil
	case "AWS::Partition":
		return e.r.Partition, nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	case "AWS::StackId":
		return fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/00000000-0000-0000-0000-000000000000",
			e.r.Partition, e.r.Region, e.r.AccountID, e.r.StackName), nil
	case "AWS::NoValue":
		return noValue{}, nil
	}
	if v, ok := e.params[name]; ok {
		return v, nil
	}
	r, ok := e.t.Resource(name)
	if !ok {
		return nil, fmt.Errorf("resolving Ref %s: no such parameter or resource", name)
	}
	if e.r.Ref != nil {
		if v, ok := e.r.Ref(r); ok {
			return v, nil
		}
	}
	n, err := e.physicalName(r)
	if err != nil {
		return nil, err
	}
	if r.Type == "AWS::SQS::Queue" { // a queue's Ref is its URL
		return fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", e.r.Region, e.r.AccountID, n), nil
	}
	return n, nil
}

// nameProperty is the property that names a resource of each type the template uses.
var nameProperty = map[string]string{
	"AWS::S3::Bucket":                      "BucketName",
	"AWS::Kinesis::Stream":                 "Name",
	"AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
	"AWS::Serverless::Function":            "FunctionName",
	"AWS::Lambda::Function":                "FunctionName",
	"AWS::SQS::Queue":                      "QueueName",
	"AWS::IAM::Role":                       "RoleName",
}

// physicalName is a resource's name: its name property evaluated, else "<stack>-<LogicalId>"
// (lower case for buckets).
func (e *evaluator) physicalName(r Resource) (string, error) {
	key := "resource " + r.LogicalID
	if e.visiting[key] {
		return "", fmt.Errorf("the name of %s refers to itself", r.LogicalID)
	}
	e.visiting[key] = true
	defer delete(e.visiting, key)
	if p, ok := nameProperty[r.Type]; ok {
		if v, ok := r.Properties[p]; ok {
			s, err := e.evalString(v)
			if err != nil {
				return "", fmt.Errorf("%s.%s: %w", r.LogicalID, p, err)
			}
			return s, nil
		}
	}
	n := e.r.StackName + "-" + r.LogicalID
	if r.Type == "AWS::S3::Bucket" {
		n = strings.ToLower(n)
	}
	return n, nil
}

func (e *evaluator) getAtt(id, attr string) (any, error) {
	r, ok := e.t.Resource(id)
	if !ok {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: no such resource", id, attr)
	}
	if e.r.GetAtt != nil {
		if v, ok := e.r.GetAtt(r, attr); ok {
			return v, nil
		}
	}
	n, err := e.physicalName(r)
	if err != nil {
		return nil, err
	}
	p, region, acct := e.r.Partition, e.r.Region, e.r.AccountID
	switch r.Type + "." + attr {
	case "AWS::S3::Bucket.Arn":
		return fmt.Sprintf("arn:%s:s3:::%s", p, n), nil
	case "AWS::Kinesis::Stream.Arn":
		return fmt.Sprintf("arn:%s:kinesis:%s:%s:stream/%s", p, region, acct, n), nil
	case "AWS::KinesisFirehose::DeliveryStream.Arn":
		return fmt.Sprintf("arn:%s:firehose:%s:%s:deliverystream/%s", p, region, acct, n), nil
	case "AWS::Serverless::Function.Arn", "AWS::Lambda::Function.Arn":
		return fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", p, region, acct, n), nil
	case "AWS::SQS::Queue.Arn":
		return fmt.Sprintf("arn:%s:sqs:%s:%s:%s", p, region, acct, n), nil
	case "AWS::SQS::Queue.QueueName":
		return n, nil
	case "AWS::SQS::Queue.QueueUrl":
		return fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", region, acct, n), nil
	case "AWS::IAM::Role.Arn":
		return fmt.Sprintf("arn:%s:iam::%s:role/%s", p, acct, n), nil
	}
	return nil, fmt.Errorf("Fn::GetAtt %s.%s: attribute of %s not known locally", id, attr, r.Type)
}
