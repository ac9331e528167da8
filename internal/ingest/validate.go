package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// MaxKeyBytes is S3's limit on an object key: 1,024 bytes of UTF-8.
const MaxKeyBytes = 1024

// maxVersionChars bounds a version id or ETag taken from an event. S3 version ids are 32 characters
// (base64-like: other S3 implementations, gofakes3 for one, use "/" too); a multipart ETag is 32 hex
// digits, a dash and a part count.
const maxVersionChars = 128

var (
	replayIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	// versionPattern is what a version id or an (unquoted) ETag may hold: it becomes part of the
	// pipeline's own keys (state/, rejected/), so a slash only between segments that are neither
	// empty, "." nor ".." (validVersion).
	versionPattern = regexp.MustCompile(`^[A-Za-z0-9._+=/-]+$`)
)

// ReplayIDRule describes a valid replay id, for error messages.
const ReplayIDRule = "1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit"

// ValidReplayID reports whether id can name a replay: it becomes a segment of state/replay/<id>/ and
// rejected/.../replay-<id>/.
func ValidReplayID(id string) bool { return replayIDPattern.MatchString(id) }

// CheckKey refuses what cannot be a key of the bucket's layout: a URL, a leading slash, "." or ".."
// segments, empty segments, backslashes, control characters, invalid UTF-8, more than 1,024 bytes.
// field names the key in the message ("key", "prefix", ...).
func CheckKey(field, k string) error {
	switch {
	case strings.Contains(k, "://"):
		return fmt.Errorf("%s %q: want a key in the function's bucket such as %q, not a URL", field, k, rawPrefix+"2019/")
	case !utf8.ValidString(k):
		return fmt.Errorf("%s %q: invalid UTF-8", field, k)
	case len(k) > MaxKeyBytes:
		return fmt.Errorf("%s: %d bytes, S3 keys have at most %d", field, len(k), MaxKeyBytes)
	case strings.HasPrefix(k, "/"):
		return fmt.Errorf("%s %q: must not start with /", field, k)
	case strings.Contains(k, "\\"):
		return fmt.Errorf("%s %q: must not contain a backslash", field, k)
	}
	for _, c := range k {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s %q: must not contain control characters", field, k)
		}
	}
	segs := strings.Split(k, "/")
	for i, s := range segs {
		if s == "." || s == ".." {
			return fmt.Errorf("%s %q: must not contain %q segments", field, k, s)
		}
		if s == "" && i != len(segs)-1 {
			return fmt.Errorf("%s %q: must not contain empty segments (//)", field, k)
		}
	}
	return nil
}

// checkObject refuses an object whose key or version the pipeline cannot name its own state after: the
// key must pass CheckKey, the version must be a plain token, and the longest key derived from them (the
// manifest or a rejected part, replay included) must fit S3's 1,024 bytes. Such an object is skipped
// with the returned reason instead of failing every retry on a write S3 refuses.
func checkObject(o objectRef) error {
	if err := CheckKey("key", o.Key); err != nil {
		return err
	}
	for _, v := range []struct{ name, val string }{{"version_id", o.VersionID}, {"etag", o.ETag}} {
		if v.val == "" {
			continue
		}
		if !validVersion(v.val) {
			return fmt.Errorf("%s %q: want at most %d characters of A-Z a-z 0-9 . _ + = - /, with no empty, \".\" or \"..\" segment between slashes", v.name, v.val, maxVersionChars)
		}
	}
	if o.ReplayID != "" && !ValidReplayID(o.ReplayID) {
		return fmt.Errorf("replay_id %q: want %s", o.ReplayID, ReplayIDRule)
	}
	longest := max(len(inflightKey(o.manifestKey())), len(RejectedKey(o.Key, o.version(), o.ReplayID, 999999)))
	if longest > MaxKeyBytes {
		return fmt.Errorf("key is %d bytes: the pipeline's state keys for it would be %d bytes, over S3's %d; use a key of at most %d bytes",
			len(o.Key), longest, MaxKeyBytes, len(o.Key)-(longest-MaxKeyBytes))
	}
	return nil
}

// validVersion reports whether a version id or ETag can be part of the pipeline's keys.
func validVersion(v string) bool {
	if len(v) > maxVersionChars || !versionPattern.MatchString(v) {
		return false
	}
	for _, seg := range strings.Split(v, "/") {
		if strings.Trim(seg, ".") == "" {
			return false
		}
	}
	return true
}

// validate checks a taxistream event (continuation or replay) before anything is read or written.
func (ev Event) validate(maxContinuations int) error {
	var errs []error
	switch ev.Kind {
	case KindContinuation, KindReplay:
	case KindSweep:
		if ev != (Event{Kind: KindSweep, Idle: ev.Idle}) {
			return errors.New(`a sweep event has no other field than "idle"`)
		}
		return nil
	default:
		errs = append(errs, fmt.Errorf("unknown taxistream event kind %q (want %q, %q or %q)", ev.Kind, KindContinuation, KindReplay, KindSweep))
	}
	if ev.Idle {
		errs = append(errs, errors.New(`"idle" belongs to sweep events only`))
	}
	if ev.Kind == KindReplay && ev.ReplayID == "" {
		errs = append(errs, errors.New("replay event without replay_id"))
	}
	if ev.Bucket == "" {
		errs = append(errs, errors.New("bucket is empty"))
	}
	if ev.Key == "" {
		errs = append(errs, errors.New("key is empty"))
	}
	if ev.Size < 0 {
		errs = append(errs, fmt.Errorf("size %d: want 0 or more", ev.Size))
	}
	if ev.Continuation < 0 || ev.Continuation > maxContinuations {
		errs = append(errs, fmt.Errorf("continuation %d: want 0 to %d (MAX_CONTINUATIONS)", ev.Continuation, maxContinuations))
	}
	return errors.Join(errs...)
}

// decodeStrict decodes exactly one JSON value from raw into v: trailing data after it is an error (the
// Lambda runtime's own decoder would silently drop it). unknown fields are errors when strict is set.
func decodeStrict(raw []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
