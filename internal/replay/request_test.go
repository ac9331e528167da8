package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/taxistream/taxistream/internal/testenv"
)

var t0 = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

// requestCases are decoded by DecodeRequest and validated against request.schema.json: both must agree.
var requestCases = []struct {
	name    string
	raw     string
	want    Request // ReplayID "" = generated, not compared
	wantErr string  // substring of the error
}{
	{name: "empty object", raw: `{}`, want: Request{Prefix: "raw/"}},
	{name: "empty prefix", raw: `{"prefix": ""}`, want: Request{Prefix: "raw/"}},
	{name: "full", raw: `{"prefix":"raw/2019/","start_after":"raw/2019/a.csv","max_objects":3,"dry_run":true,"replay_id":"r-1"}`,
		want: Request{Prefix: "raw/2019/", StartAfter: "raw/2019/a.csv", MaxObjects: 3, DryRun: true, ReplayID: "r-1"}},
	{name: "continuation", raw: `{"replay_id":"r-1","continuation":2}`, want: Request{Prefix: "raw/", ReplayID: "r-1", Continuation: 2}},
	{name: "partial file name prefix", raw: `{"prefix":"raw/2019/yellow_tripdata_2019-0"}`, want: Request{Prefix: "raw/2019/yellow_tripdata_2019-0"}},
	{name: "unknown field", raw: `{"prefx":"raw/"}`, wantErr: `unknown field "prefx" (known fields: prefix, start_after`},
	{name: "camel case field", raw: `{"startAfter":"raw/a"}`, wantErr: `unknown field "startAfter"`},
	{name: "wrong type", raw: `{"max_objects":"10"}`, wantErr: `field "max_objects": want int, got JSON string`},
	{name: "fractional count", raw: `{"max_objects":1.5}`, wantErr: `field "max_objects": want int`},
	{name: "negative max_objects", raw: `{"max_objects":-1}`, wantErr: "max_objects -1"},
	{name: "not an object", raw: `["raw/"]`, wantErr: "want a JSON object, got JSON array"},
	{name: "prefix outside raw", raw: `{"prefix":"state/"}`, wantErr: `prefix "state/" is outside raw/`},
	{name: "prefix raw without slash", raw: `{"prefix":"raw"}`, wantErr: `prefix "raw" is outside raw/`},
	{name: "prefix rawdata", raw: `{"prefix":"rawdata/"}`, wantErr: `is outside raw/`},
	{name: "prefix escapes raw", raw: `{"prefix":"raw/../state/"}`, wantErr: `must not contain ".." segments`},
	{name: "prefix dotdot first", raw: `{"prefix":"../raw/"}`, wantErr: `must not contain ".." segments`},
	{name: "prefix dot segment", raw: `{"prefix":"raw/./2019/"}`, wantErr: `must not contain "." segments`},
	{name: "prefix empty segment", raw: `{"prefix":"raw//2019/"}`, wantErr: "empty segments"},
	{name: "prefix leading slash", raw: `{"prefix":"/raw/"}`, wantErr: "must not start with /"},
	{name: "prefix url", raw: `{"prefix":"s3://bucket/raw/"}`, wantErr: "not a URL"},
	{name: "prefix control char", raw: `{"prefix":"raw/a\nb"}`, wantErr: "control characters"},
	{name: "prefix backslash", raw: `{"prefix":"raw\\2019"}`, wantErr: "backslash"},
	{name: "start_after escapes", raw: `{"start_after":"raw/../x"}`, wantErr: `start_after "raw/../x"`},
	{name: "bad replay id", raw: `{"replay_id":"a/b"}`, wantErr: `replay_id "a/b"`},
	{name: "negative continuation", raw: `{"continuation":-1}`, wantErr: "continuation -1"},
}

func TestDecodeRequest(t *testing.T) {
	for _, tt := range requestCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest(context.Background(), []byte(tt.raw), t0)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeRequest(%s) error = %v, want one containing %q", tt.raw, err, tt.wantErr)
				}
				if !errors.Is(err, ErrBadRequest) {
					t.Errorf("error %v does not wrap ErrBadRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeRequest(%s): %v", tt.raw, err)
			}
			if tt.want.ReplayID == "" {
				if !strings.HasPrefix(got.ReplayID, "replay-20261125T200000Z-") {
					t.Errorf("generated replay_id = %q, want replay-20261125T200000Z-<random>", got.ReplayID)
				}
				got.ReplayID = ""
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeRequest(%s) (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestDecodeRequestEdges(t *testing.T) {
	for _, raw := range []string{"", "  ", "null"} {
		got, err := DecodeRequest(context.Background(), []byte(raw), t0)
		if err != nil || got.Prefix != RawPrefix {
			t.Errorf("DecodeRequest(%q) = %+v, %v; want the defaults", raw, got, err)
		}
	}
	if _, err := DecodeRequest(context.Background(), []byte(`{} {}`), t0); err == nil || !strings.Contains(err.Error(), "trailing data") {
		t.Errorf("two objects: error = %v, want trailing data", err)
	}
	a, _ := DecodeRequest(context.Background(), []byte(`{}`), t0)
	b, _ := DecodeRequest(context.Background(), []byte(`{}`), t0)
	if a.ReplayID == b.ReplayID {
		t.Errorf("two generated replay ids are equal: %s", a.ReplayID)
	}
	// In Lambda the id derives from the request id, which Lambda keeps across async retries.
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "3f1c-9a"})
	for range 2 {
		got, err := DecodeRequest(ctx, []byte(`{}`), t0)
		if err != nil || got.ReplayID != "replay-3f1c-9a" {
			t.Errorf("replay id in Lambda = %q, %v; want replay-3f1c-9a", got.ReplayID, err)
		}
	}
}

func compileSchema(t *testing.T) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	b, err := os.ReadFile("request.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("request.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("request.schema.json")
	if err != nil {
		t.Fatalf("compiling request.schema.json: %v", err)
	}
	return sch, doc.(map[string]any)
}

func TestRequestSchema(t *testing.T) {
	sch, doc := compileSchema(t)
	validate := func(raw []byte) error {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		return sch.Validate(v)
	}

	t.Run("examples", func(t *testing.T) {
		examples, _ := doc["examples"].([]any)
		if len(examples) < 3 {
			t.Fatalf("the schema has %d examples, want several", len(examples))
		}
		for i, ex := range examples {
			raw, _ := json.Marshal(ex)
			if err := validate(raw); err != nil {
				t.Errorf("example %d %s: %v", i, raw, err)
			}
			if _, err := DecodeRequest(context.Background(), raw, t0); err != nil {
				t.Errorf("example %d %s: DecodeRequest: %v", i, raw, err)
			}
		}
	})

	t.Run("events/replay.json", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(testenv.Root(t), "events", "replay.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(raw); err != nil {
			t.Errorf("events/replay.json: %v", err)
		}
		if _, err := DecodeRequest(context.Background(), raw, t0); err != nil {
			t.Errorf("events/replay.json: DecodeRequest: %v", err)
		}
	})

	// The schema documents what the decoder does: every case is accepted by both or refused by both.
	t.Run("agrees with DecodeRequest", func(t *testing.T) {
		for _, tt := range requestCases {
			serr := validate([]byte(tt.raw))
			if (serr == nil) != (tt.wantErr == "") {
				t.Errorf("%s: %s: schema says %v, DecodeRequest wants error %q", tt.name, tt.raw, serr, tt.wantErr)
			}
		}
	})

	t.Run("documents every field", func(t *testing.T) {
		props, _ := doc["properties"].(map[string]any)
		var names []string
		for n := range props {
			names = append(names, n)
		}
		fields := regexp.MustCompile(`json:"([a-z_]+)`).FindAllStringSubmatch(requestTags(), -1)
		if len(fields) != len(props) {
			t.Errorf("schema properties %v, Request has %d JSON fields", names, len(fields))
		}
		for _, f := range fields {
			if _, ok := props[f[1]]; !ok {
				t.Errorf("Request field %q is not in request.schema.json", f[1])
			}
			if !strings.Contains(knownFields, f[1]) {
				t.Errorf("Request field %q is not in the unknown-field message", f[1])
			}
		}
	})
}

// requestTags returns the struct tags of Request, one a line.
func requestTags() string {
	var b strings.Builder
	rt := reflect.TypeOf(Request{})
	for i := range rt.NumField() {
		b.WriteString(string(rt.Field(i).Tag))
		b.WriteByte('\n')
	}
	return b.String()
}
