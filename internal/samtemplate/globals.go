package samtemplate

import "fmt"

// FunctionProperties returns the properties of the AWS::Serverless::Function id merged with the
// template's Globals.Function as SAM merges them: a value of the function replaces a scalar or an
// intrinsic function of Globals, maps are merged key by key (recursively), and lists are concatenated,
// Globals first (so Globals [arm64] plus a function's [x86_64] is [arm64, x86_64], as SAM would deploy it).
func (t *Template) FunctionProperties(id string) (map[string]any, error) {
	r, ok := t.Resource(id)
	if !ok {
		return nil, fmt.Errorf("no resource %s", id)
	}
	if r.Type != "AWS::Serverless::Function" {
		return nil, fmt.Errorf("%s is %s, not AWS::Serverless::Function", id, r.Type)
	}
	globals, _ := t.Section("Globals")["Function"].(map[string]any)
	merged, _ := mergeGlobals(deepCopy(globals), deepCopy(r.Properties)).(map[string]any)
	if merged == nil {
		merged = map[string]any{}
	}
	return merged, nil
}

type token int

const (
	primitive token = iota
	mapping
	list
)

func tokenOf(v any) token {
	switch v.(type) {
	case map[string]any:
		if _, _, ok := Intrinsic(v); ok {
			return primitive
		}
		return mapping
	case []any:
		return list
	}
	return primitive
}

func mergeGlobals(global, local any) any {
	if global == nil {
		return local
	}
	if local == nil {
		return global
	}
	tg, tl := tokenOf(global), tokenOf(local)
	if tg != tl || tl == primitive {
		return local
	}
	if tl == list {
		return append(append([]any{}, global.([]any)...), local.([]any)...)
	}
	g, l := global.(map[string]any), local.(map[string]any)
	out := make(map[string]any, len(g)+len(l))
	for k, v := range g {
		out[k] = v
	}
	for k, v := range l {
		out[k] = mergeGlobals(g[k], v)
	}
	return out
}
