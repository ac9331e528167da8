package samtemplate

// Evaluate evaluates a part of the template (a resource's Properties, an output's Value) the way
// Resolve does: parameters take their defaults and overrides, conditions are decided, and intrinsic
// functions (Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Split, Fn::If, ...) become their values as the
// Resolver names things. internal/catalog reads the Glue tables with it.
func (t *Template) Evaluate(v any, overrides map[string]string, r Resolver) (any, error) {
	e, err := newEvaluator(t, overrides, r)
	if err != nil {
		return nil, err
	}
	return e.eval(v)
}
