package bucket

import (
	"path"
	"strings"
	"testing"
)

func TestKeyPathMapping(t *testing.T) {
	for key, want := range map[string]string{
		"raw/a b+c.csv":        "raw/a b+c.csv",
		"raw/.hidden":          "raw/%2Ehidden",
		"raw/100%.csv":         "raw/100%25.csv",
		`raw/a\b:c`:            "raw/a%5Cb%3Ac",
		"raw/":                 "raw/%",
		"a//b":                 "a/%/b",
		"raw/%2e%2e/x":         "raw/%252e%252e/x",
		"raw/日本.csv":           "raw/日本.csv",
		".meta/raw/x.csv.json": "%2Emeta/raw/x.csv.json",
	} {
		got, err := keyPath(key)
		if err != nil || got != want {
			t.Errorf("keyPath(%q) = %q, %v; want %q", key, got, err, want)
		}
		if back, ok := pathKey(got); !ok || back != key {
			t.Errorf("pathKey(%q) = %q, %v; want %q", got, back, ok, key)
		}
	}
	for _, p := range []string{".meta/x.json", "raw/.x.part", "raw/50%", "raw/%zz", "raw/%2e", "raw/%2ex"} {
		if k, ok := pathKey(p); ok {
			t.Errorf("pathKey(%q) = %q, want refused", p, k)
		}
	}
}

// FuzzKeyPath checks that no key maps to a path outside the folder or into its own .meta/.tmp, and
// that the mapping is reversible.
func FuzzKeyPath(f *testing.F) {
	for _, s := range []string{"raw/a b+c.csv", "../x", "raw/../../etc", "/abs", "a//b", ".meta/x", "%2e%2e", "raw/", `..\..`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		p, err := keyPath(key)
		if err != nil {
			return
		}
		if path.IsAbs(p) || path.Clean(p) != p {
			t.Fatalf("keyPath(%q) = %q is not a clean relative path", key, p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".") || strings.ContainsAny(seg, "\x00\\") {
				t.Fatalf("keyPath(%q) = %q has unsafe segment %q", key, p, seg)
			}
		}
		if back, ok := pathKey(p); !ok || back != key {
			t.Fatalf("pathKey(keyPath(%q)) = %q, %v", key, back, ok)
		}
	})
}
