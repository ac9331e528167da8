// Package taxistream holds what the binaries carry of the repository's root: the SAM template, so that
// `taxistream local` works outside the repository (after `go install`) with the template it was built with.
package taxistream

import _ "embed"

// Template is template.yaml as it was when the binary was built.
//
//go:embed template.yaml
var Template []byte
