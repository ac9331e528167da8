// Package samtemplate reads template.yaml, the AWS SAM template of the stack, so that the local cloud runs
// with the settings the deployed stack has (shards, Firehose prefixes and buffering, the functions'
// environment, the S3 trigger's filters, the Kinesis event source mapping) and cannot drift from it.
//
// The YAML is decoded keeping CloudFormation's short-form tags: !Ref, !Sub, !GetAtt, !If, ... become their
// long form ({"Ref": ...}, {"Fn::Sub": ...}, {"Fn::GetAtt": [...]}), so a Template is the JSON document
// CloudFormation itself would see. Resolve evaluates what the local cloud needs.
package samtemplate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Template is a parsed SAM template. Doc is the whole document in long form: maps are map[string]any,
// lists []any, scalars string, int, float64, bool or nil, and intrinsic functions single-key maps.
type Template struct {
	Path string
	Doc  map[string]any
}

// Resource is one entry of the Resources section.
type Resource struct {
	LogicalID  string
	Type       string
	Properties map[string]any
	Metadata   map[string]any
	DependsOn  []string
	Condition  string
	// DeletionPolicy and UpdateReplacePolicy as written ("" when absent: CloudFormation deletes).
	DeletionPolicy      string
	UpdateReplacePolicy string
}

// Load reads and parses the template at path.
func Load(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading template: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	t.Path = path
	return t, nil
}

// Parse parses a template from YAML (or JSON, which is YAML).
func Parse(data []byte) (*Template, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, err
	}
	v, err := convert(&root)
	if err != nil {
		return nil, err
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("the template is not a mapping")
	}
	if _, ok := doc["Resources"].(map[string]any); !ok {
		return nil, errors.New("the template has no Resources mapping")
	}
	return &Template{Doc: doc}, nil
}

// Clone returns a deep copy, e.g. to change a template in a test without touching the original.
func (t *Template) Clone() *Template {
	return &Template{Path: t.Path, Doc: deepCopy(t.Doc).(map[string]any)}
}

// Section returns a top-level mapping such as "Parameters", "Conditions", "Globals" or "Outputs"
// (nil when absent).
func (t *Template) Section(name string) map[string]any {
	m, _ := t.Doc[name].(map[string]any)
	return m
}

// ResourceIDs returns the logical ids of the resources of type typ ("" for all), sorted.
func (t *Template) ResourceIDs(typ string) []string {
	var ids []string
	for id, r := range t.Section("Resources") {
		m, _ := r.(map[string]any)
		if typ == "" || m["Type"] == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Resource returns the resource with the given logical id.
func (t *Template) Resource(id string) (Resource, bool) {
	m, ok := t.Section("Resources")[id].(map[string]any)
	if !ok {
		return Resource{}, false
	}
	r := Resource{LogicalID: id}
	r.Type, _ = m["Type"].(string)
	r.Properties, _ = m["Properties"].(map[string]any)
	r.Metadata, _ = m["Metadata"].(map[string]any)
	r.Condition, _ = m["Condition"].(string)
	r.DeletionPolicy, _ = m["DeletionPolicy"].(string)
	r.UpdateReplacePolicy, _ = m["UpdateReplacePolicy"].(string)
	switch d := m["DependsOn"].(type) {
	case string:
		r.DependsOn = []string{d}
	case []any:
		for _, x := range d {
			if s, ok := x.(string); ok {
				r.DependsOn = append(r.DependsOn, s)
			}
		}
	}
	return r, true
}

// shortForms maps CloudFormation's YAML short-form tags to the long form's key.
var shortForms = map[string]string{
	"!Ref":          "Ref",
	"!Condition":    "Condition",
	"!Sub":          "Fn::Sub",
	"!GetAtt":       "Fn::GetAtt",
	"!If":           "Fn::If",
	"!Equals":       "Fn::Equals",
	"!Not":          "Fn::Not",
	"!And":          "Fn::And",
	"!Or":           "Fn::Or",
	"!Select":       "Fn::Select",
	"!Join":         "Fn::Join",
	"!Split":        "Fn::Split",
	"!FindInMap":    "Fn::FindInMap",
	"!Base64":       "Fn::Base64",
	"!Cidr":         "Fn::Cidr",
	"!GetAZs":       "Fn::GetAZs",
	"!ImportValue":  "Fn::ImportValue",
	"!Transform":    "Fn::Transform",
	"!ToJsonString": "Fn::ToJsonString",
	"!Length":       "Fn::Length",
}

// convert turns a YAML node into the long-form document, rejecting what CloudFormation would not read
// the same way (duplicate keys, merge keys, unknown tags).
func convert(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return nil, errors.New("empty document")
		}
		return convert(n.Content[0])
	case yaml.AliasNode:
		return convert(n.Alias)
	}
	if fn, ok := shortForms[n.Tag]; ok {
		return convertIntrinsic(n, fn)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, vn := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping key is not a scalar", k.Line)
			}
			if k.Tag == "!!merge" {
				return nil, fmt.Errorf("line %d: YAML merge keys (<<) are not supported by CloudFormation", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			v, err := convert(vn)
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := convert(c)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

func convertIntrinsic(n *yaml.Node, fn string) (any, error) {
	var arg any
	switch n.Kind {
	case yaml.ScalarNode:
		arg = n.Value
		if fn == "Fn::GetAtt" {
			// !GetAtt Resource.Attribute; the attribute may itself contain dots (Endpoint.Address).
			id, attr, ok := strings.Cut(n.Value, ".")
			if !ok {
				return nil, fmt.Errorf("line %d: !GetAtt %q is not Resource.Attribute", n.Line, n.Value)
			}
			arg = []any{id, attr}
		}
	case yaml.SequenceNode, yaml.MappingNode:
		c := *n
		c.Tag = ""
		if n.Kind == yaml.SequenceNode {
			c.Tag = "!!seq"
		} else {
			c.Tag = "!!map"
		}
		v, err := convert(&c)
		if err != nil {
			return nil, err
		}
		arg = v
	default:
		return nil, fmt.Errorf("line %d: bad argument of %s", n.Line, n.Tag)
	}
	return map[string]any{fn: arg}, nil
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	}
	return v
}

// Intrinsic reports whether v is an intrinsic function ({"Ref": ...} or {"Fn::...": ...}) and returns its
// name and argument.
func Intrinsic(v any) (name string, arg any, ok bool) {
	m, isMap := v.(map[string]any)
	if !isMap || len(m) != 1 {
		return "", nil, false
	}
	for k, a := range m {
		if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
			return k, a, true
		}
	}
	return "", nil, false
}
