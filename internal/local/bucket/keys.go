package bucket

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyLength is S3's limit on an object key: 1,024 bytes of UTF-8.
const MaxKeyLength = 1024

// maxSegmentLength is the longest file name most file systems accept (ext4, APFS, NTFS: 255 bytes).
const maxSegmentLength = 255

// ErrInvalidKey is wrapped by every key refused by the local bucket (see keyPath).
var ErrInvalidKey = errors.New("invalid object key")

// ErrKeyConflict is wrapped by a write refused because the key and another key would be a file and a
// folder of the same name on disk ("state/a" and "state/a/b"), which S3 allows and a folder cannot hold.
var ErrKeyConflict = errors.New("key conflicts with another key on disk")

// keyPath maps an S3 key to a slash-separated path relative to the bucket folder.
//
// The mapping, one key segment (text between '/') at a time:
//   - the key must be valid UTF-8, 1–1,024 bytes, without NUL, must not start with '/', and no segment
//     may be "." or ".." — such keys are refused with ErrInvalidKey (S3 accepts some of them; a folder on
//     disk cannot hold them safely);
//   - '%', '\\', ':', '*', '?', '"', '<', '>', '|' and control characters are written as %XX (upper-case
//     hex), so a file name never holds a path separator of any OS and every mapped name is reversible;
//   - a leading '.' is written as %2E, so no object is a hidden file and the bucket's own ".meta" and
//     ".tmp" folders can never be addressed by a key;
//   - an empty segment ("raw/" or "a//b") is written as "%" alone (an escaped '%' is always "%25");
//   - everything else — spaces, '+', '=', non-ASCII letters — is kept, so "raw/a b+c.csv" is the file
//     raw/a b+c.csv that a user sees and can copy.
//
// Because no mapped segment can be "..", empty, or contain a separator, the path cannot leave the folder;
// the bucket additionally opens every file through an os.Root, which refuses symlinks that point out.
func keyPath(key string) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	segs := strings.Split(key, "/")
	for i, s := range segs {
		e := escapeSegment(s)
		if len(e) > maxSegmentLength {
			return "", fmt.Errorf("%w %q: segment %q is longer than %d bytes on disk", ErrInvalidKey, key, s, maxSegmentLength)
		}
		segs[i] = e
	}
	return strings.Join(segs, "/"), nil
}

func validKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	case len(key) > MaxKeyLength:
		return fmt.Errorf("%w: key is %d bytes, longer than %d", ErrInvalidKey, len(key), MaxKeyLength)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidKey, key)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w %q: contains NUL", ErrInvalidKey, key)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w %q: absolute path", ErrInvalidKey, key)
	}
	for _, s := range strings.Split(key, "/") {
		if s == "." || s == ".." {
			return fmt.Errorf("%w %q: contains a %q segment that would leave the bucket folder", ErrInvalidKey, key, s)
		}
	}
	return nil
}

func mustEscape(c byte) bool {
	if c < 0x20 || c == 0x7f {
		return true
	}
	switch c {
	case '%', '\\', ':', '*', '?', '"', '<', '>', '|':
		return true
	}
	return false
}

func escapeSegment(s string) string {
	if s == "" {
		return "%"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEscape(c) || (i == 0 && c == '.') {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// pathKey is the inverse of keyPath. It reports false for a path that keyPath cannot have produced
// (a hidden file, a stray '%', a name that is not valid UTF-8), which the bucket then ignores.
func pathKey(p string) (string, bool) {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		k, ok := unescapeSegment(s)
		if !ok {
			return "", false
		}
		segs[i] = k
	}
	key := strings.Join(segs, "/")
	if validKey(key) != nil {
		return "", false
	}
	if back, err := keyPath(key); err != nil || back != p {
		return "", false
	}
	return key, true
}

func unescapeSegment(s string) (string, bool) {
	if s == "%" {
		return "", true
	}
	if s == "" || s[0] == '.' {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		h, ok1 := unhex(s[i+1])
		l, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(h<<4 | l)
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
