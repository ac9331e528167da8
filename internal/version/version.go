// Package version tells which build of taxistream is running: the module version and the VCS
// revision the Go toolchain stamps into every binary (debug.ReadBuildInfo). It is the one place the
// CLI's --version, log lines and the Parquet footer's created_by get it from.
package version

import (
	"runtime/debug"
	"sync"
)

// Info is what the build knows about itself. Fields are empty when the toolchain did not record them
// (a `go run` of a dirty tree has no module version, a build outside a repository no revision).
type Info struct {
	Module   string // module path, e.g. github.com/taxistream/taxistream
	Version  string // module version, "(devel)" for a build from a work tree
	Revision string // vcs.revision, the full commit hash
	Time     string // vcs.time, RFC 3339
	Modified bool   // vcs.modified: the work tree had uncommitted changes
	Go       string // the Go toolchain, e.g. go1.26.8
}

var (
	once sync.Once
	info Info
)

// Get returns the running binary's build information (computed once).
func Get() Info {
	once.Do(func() {
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		info = fromBuildInfo(bi)
	})
	return info
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Module: bi.Main.Path, Version: bi.Main.Version, Go: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// Short is the one-word form used in footers and logs: the module version when it is a release,
// otherwise the first 12 characters of the revision (with "+dirty" for a modified tree), otherwise
// "devel".
func (in Info) Short() string {
	if in.Version != "" && in.Version != "(devel)" {
		return in.Version
	}
	if in.Revision != "" {
		rev := in.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if in.Modified {
			rev += "+dirty"
		}
		return rev
	}
	return "devel"
}
