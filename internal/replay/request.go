package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/uuid"
)

// RawPrefix is the only part of the bucket a replay may read: the pipeline's input (DESIGN.md, bucket prefixes).
const RawPrefix = "raw/"

// maxKeyLen is S3's limit on an object key: 1,024 bytes of UTF-8.
const maxKeyLen = 1024

// ErrBadRequest wraps every problem with a replay request; nothing was handed off.
var ErrBadRequest = errors.New("bad replay request")

// Request is ReplayFunction's input (request.schema.json). Every field is optional: {} replays all of raw/.
type Request struct {
	// Prefix selects the objects: a key prefix under raw/ ("" means raw/).
	Prefix string `json:"prefix,omitempty"`
	// StartAfter starts the listing after this key (exclusive), as ListObjectsV2's StartAfter.
	StartAfter string `json:"start_after,omitempty"`
	// MaxObjects bounds the objects handed off by the whole replay (continuations included); 0 = all.
	MaxObjects int `json:"max_objects,omitempty"`
	// DryRun lists and counts what would be handed off, invoking nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// ReplayID names the replay in the ingest manifests (state/replay/<replay_id>/...) and logs; generated
	// when empty. Handing an object off twice with one replay id ingests it once.
	ReplayID string `json:"replay_id,omitempty"`
	// Continuation is set by ReplayFunction on the requests it sends itself: 1 for the first continuation.
	Continuation int `json:"continuation,omitempty"`
}

var (
	replayIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	knownFields     = "prefix, start_after, max_objects, dry_run, replay_id, continuation"
)

// DecodeRequest parses raw strictly: unknown fields, trailing data and wrong types are errors naming the
// problem; an empty or null payload is {}. It applies the defaults (prefix raw/, generated replay id) and
// validates. Every error wraps ErrBadRequest.
func DecodeRequest(ctx context.Context, raw []byte, now time.Time) (Request, error) {
	var req Request
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) != 0 && !bytes.Equal(trimmed, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return Request{}, fmt.Errorf("%w: %s", ErrBadRequest, describeJSONError(err))
		}
		if _, err := dec.Token(); err != io.EOF {
			return Request{}, fmt.Errorf("%w: trailing data after the JSON object", ErrBadRequest)
		}
	}
	if req.Prefix == "" {
		req.Prefix = RawPrefix
	}
	if req.ReplayID == "" {
		req.ReplayID = newReplayID(ctx, now)
	}
	if err := req.validate(); err != nil {
		return Request{}, err
	}
	return req, nil
}

func describeJSONError(err error) string {
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Sprintf("unknown field %s (known fields: %s)", field, knownFields)
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return "want a JSON object, got JSON " + typeErr.Value
		}
		return fmt.Sprintf("field %q: want %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", syntaxErr.Offset, err)
	}
	return "decoding: " + err.Error()
}

func (r Request) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := checkKey("prefix", r.Prefix); err != nil {
		errs = append(errs, err)
	} else if !strings.HasPrefix(r.Prefix, RawPrefix) {
		bad("prefix %q is outside %s: a replay reads only the pipeline's input (e.g. %q)", r.Prefix, RawPrefix, RawPrefix+"2019/")
	}
	if r.StartAfter != "" {
		if err := checkKey("start_after", r.StartAfter); err != nil {
			errs = append(errs, err)
		}
	}
	if r.MaxObjects < 0 {
		bad("max_objects %d: want 0 (all) or more", r.MaxObjects)
	}
	if r.Continuation < 0 {
		bad("continuation %d: want 0 or more", r.Continuation)
	}
	if !replayIDPattern.MatchString(r.ReplayID) {
		bad("replay_id %q: want 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit", r.ReplayID)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrBadRequest, errors.Join(errs...))
}

// checkKey refuses what cannot be a key of the bucket's layout: a URL, a leading slash, "." or ".."
// segments, empty segments, backslashes, control characters, invalid UTF-8, more than 1,024 bytes.
func checkKey(field, k string) error {
	switch {
	case strings.Contains(k, "://"):
		return fmt.Errorf("%s %q: want a key prefix in the function's bucket such as %q, not a URL", field, k, RawPrefix)
	case !utf8.ValidString(k):
		return fmt.Errorf("%s %q: invalid UTF-8", field, k)
	case len(k) > maxKeyLen:
		return fmt.Errorf("%s: %d bytes, S3 keys have at most %d", field, len(k), maxKeyLen)
	case strings.HasPrefix(k, "/"):
		return fmt.Errorf("%s %q: must not start with /", field, k)
	case strings.ContainsAny(k, "\\"):
		return fmt.Errorf("%s %q: must not contain a backslash", field, k)
	}
	for _, c := range k {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s %q: must not contain control characters", field, k)
		}
	}
	segs := strings.Split(k, "/")
	for i, s := range segs {
		last := i == len(segs)-1
		if s == "." || s == ".." {
			return fmt.Errorf("%s %q: must not contain %q segments", field, k, s)
		}
		if s == "" && !last {
			return fmt.Errorf("%s %q: must not contain empty segments (//)", field, k)
		}
	}
	return nil
}

// newReplayID names a replay that came without one. In Lambda it derives from the invocation's request
// id, which Lambda keeps when it retries an asynchronous invocation: a retried replay then has the same
// id and ingestion skips what the first attempt handed off. Elsewhere it is time-based plus random.
func newReplayID(ctx context.Context, now time.Time) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		id := "replay-" + lc.AwsRequestID
		if replayIDPattern.MatchString(id) {
			return id
		}
	}
	return "replay-" + now.UTC().Format("20060102T150405Z") + "-" + uuid.NewString()[:8]
}
