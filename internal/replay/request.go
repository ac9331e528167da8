package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/uuid"

	"github.com/taxistream/taxistream/internal/ingest"
)

// RawPrefix is the only part of the bucket a replay may read: the pipeline's input (DESIGN.md, bucket prefixes).
const RawPrefix = "raw/"

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

const knownFields = "prefix, start_after, max_objects, dry_run, replay_id, continuation"

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
	if err := ingest.CheckKey("prefix", r.Prefix); err != nil {
		errs = append(errs, err)
	} else if !strings.HasPrefix(r.Prefix, RawPrefix) {
		bad("prefix %q is outside %s: a replay reads only the pipeline's input (e.g. %q)", r.Prefix, RawPrefix, RawPrefix+"2019/")
	}
	if r.StartAfter != "" {
		if err := ingest.CheckKey("start_after", r.StartAfter); err != nil {
			errs = append(errs, err)
		}
	}
	if r.MaxObjects < 0 {
		bad("max_objects %d: want 0 (all) or more", r.MaxObjects)
	}
	if r.Continuation < 0 {
		bad("continuation %d: want 0 or more", r.Continuation)
	}
	if !ingest.ValidReplayID(r.ReplayID) {
		bad("replay_id %q: want %s", r.ReplayID, ingest.ReplayIDRule)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrBadRequest, errors.Join(errs...))
}

// newReplayID names a replay that came without one. In Lambda it derives from the invocation's request
// id, which Lambda keeps when it retries an asynchronous invocation: a retried replay then has the same
// id and ingestion skips what the first attempt handed off. Elsewhere it is time-based plus random.
func newReplayID(ctx context.Context, now time.Time) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		id := "replay-" + lc.AwsRequestID
		if ingest.ValidReplayID(id) {
			return id
		}
	}
	return "replay-" + now.UTC().Format("20060102T150405Z") + "-" + uuid.NewString()[:8]
}
