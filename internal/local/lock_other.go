//go:build !unix

package local

// lockDir is a no-op where flock is not available: run one local cloud per folder.
func lockDir(dir string) (unlock func(), err error) { return func() {}, nil }
