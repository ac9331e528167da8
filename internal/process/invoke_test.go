package process

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/taxistream/taxistream/internal/kpl"
	"github.com/taxistream/taxistream/internal/testenv"
)

// runtimeDecode is what lambda.Start(h.Handle) does with a payload (aws-lambda-go reflectHandler).
func runtimeDecode(payload []byte) (events.KinesisTimeWindowEvent, error) {
	var ev events.KinesisTimeWindowEvent
	err := json.NewDecoder(bytes.NewReader(payload)).Decode(&ev)
	return ev, err
}

// runtimeEncode is how lambda.Start(h.Handle) encodes a response.
func runtimeEncode(t testing.TB, resp events.KinesisTimeWindowEventResponse) []byte {
	t.Helper()
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// projectEvents returns the project's Kinesis sample events, plus a windowed event of KPL aggregates
// as the event source mapping sends it.
func projectEvents(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	root := testenv.Root(t)
	for _, name := range []string{"kinesis.json", "kinesis-window.json"} {
		b, err := os.ReadFile(filepath.Join(root, "events", name))
		if err != nil {
			t.Fatal(err) // an in-repo fixture: missing is a failure
		}
		out[name] = b
	}
	var recs []events.KinesisEventRecord
	for i := 0; i < 60; i += 20 {
		var urs []kpl.UserRecord
		for j := i; j < i+20; j++ {
			extra := fmt.Sprintf(`"record_id":"inv-%04d","pu_location_id":%d`, j, 1+j%265)
			if j%7 == 0 {
				extra += `,"passenger_count":12` // invalid: quarantined
			}
			urs = append(urs, kpl.UserRecord{PartitionKey: "pk", Data: yellowWith(extra)})
		}
		recs = append(recs, kinesisRecord(i, kpl.Aggregate(urs)))
	}
	recs = append(recs, kinesisRecord(60, []byte(`not json`)), kinesisRecord(61, []byte{0xF3, 0x89, 0x9A, 0xC2, 1, 2, 3}))
	ev := windowEvent(recs, map[string]string{}, true)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	out["generated-window"] = b
	return out
}

// checkDecode asserts that decodeEvent gives what the runtime's decoder gives: the same event or the
// same error.
func checkDecode(t *testing.T, payload []byte) {
	t.Helper()
	want, wantErr := runtimeDecode(payload)
	var buf []byte
	var got events.KinesisTimeWindowEvent
	gotErr := decodeEvent(payload, &got, &buf)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || reflect.TypeOf(gotErr) != reflect.TypeOf(wantErr) {
		t.Fatalf("payload %.200q: error %T %v, want %T %v", payload, gotErr, gotErr, wantErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("payload %.200q: event differs from encoding/json's (-want +got):\n%s", payload, cmp.Diff(want, got))
	}
}

func TestDecodeEventFastPath(t *testing.T) {
	for name, payload := range projectEvents(t) {
		t.Run(name, func(t *testing.T) {
			checkDecode(t, payload)
			var ev events.KinesisTimeWindowEvent
			d := eventDecoder{b: payload}
			if !d.event(&ev) || !d.decodeData(&ev) {
				t.Errorf("the fast path declined %s at byte %d", name, d.i)
			}
			if len(ev.Records) == 0 || len(ev.Records[0].Kinesis.Data) == 0 {
				t.Errorf("no records decoded: %+v", ev)
			}
		})
	}
}

// TestDecodeEventSameAsRuntime covers payloads the fast path declines or rejects: each must give the
// runtime decoder's result, error included.
func TestDecodeEventSameAsRuntime(t *testing.T) {
	rec := func(kinesis string) string {
		return `{"Records":[{"eventID":"shardId-000000000000:1","kinesis":{` + kinesis + `}}]}`
	}
	tests := map[string]string{
		"empty":                   ``,
		"spaces":                  "  \n",
		"null":                    `null`,
		"array":                   `[]`,
		"string":                  `"x"`,
		"truncated":               `{"Records":[{"kinesis":{"data":"eyJ`,
		"syntax error late":       `{"Records":[],"shardId":"s" x}`,
		"trailing garbage":        `{"Records":[],"shardId":"s"} trailing {`,
		"two values":              `{"shardId":"a"}{"shardId":"b"}`,
		"leading space":           " \t{\"shardId\":\"a\"}",
		"empty object":            `{}`,
		"records null":            `{"Records":null}`,
		"records empty":           `{"Records":[]}`,
		"record null":             `{"Records":[null]}`,
		"record empty":            `{"Records":[{}]}`,
		"lower-case key":          `{"records":[{"kinesis":{"data":"eyJ9"}}]}`,
		"upper-case field":        rec(`"DATA":"eyJ9"`),
		"unknown key":             `{"Records":[],"extra":{"a":[1,2,{"b":null}]}}`,
		"repeated key":            `{"shardId":"a","shardId":"b"}`,
		"repeated records":        `{"Records":[{"eventID":"a"}],"Records":[{"eventName":"b"}]}`,
		"data":                    rec(`"data":"eyJhIjoxfQ=="`),
		"data empty":              rec(`"data":""`),
		"data null":               rec(`"data":null`),
		"data bad base64":         rec(`"data":"eyJhIjoxfQ="`),
		"data bad character":      rec(`"data":"ey*hIjoxfQ=="`),
		"data escaped newline":    rec(`"data":"eyJh\nIjoxfQ=="`),
		"data escaped slash":      rec(`"data":"eyJh\/IjoxfQ=="`),
		"data unicode escape":     rec(`"data":"\u0065yJhIjoxfQ=="`),
		"data raw newline":        rec("\"data\":\"eyJh\nIjoxfQ==\""),
		"data raw tab":            rec("\"data\":\"eyJh\tIjoxfQ==\""),
		"data number":             rec(`"data":12`),
		"data unterminated":       rec(`"data":"eyJhIjoxfQ==`),
		"timestamp":               rec(`"approximateArrivalTimestamp":1547557560.123`),
		"timestamp integer":       rec(`"approximateArrivalTimestamp":1547557560`),
		"timestamp exponent":      rec(`"approximateArrivalTimestamp":1.5475575601234E9`),
		"timestamp negative":      rec(`"approximateArrivalTimestamp":-1.5`),
		"timestamp huge":          rec(`"approximateArrivalTimestamp":1e400`),
		"timestamp string":        rec(`"approximateArrivalTimestamp":"1547557560"`),
		"timestamp null":          rec(`"approximateArrivalTimestamp":null`),
		"timestamp leading zero":  rec(`"approximateArrivalTimestamp":01`),
		"timestamp bare minus":    rec(`"approximateArrivalTimestamp":-`),
		"timestamp bad fraction":  rec(`"approximateArrivalTimestamp":1.`),
		"sequence number escaped": rec(`"sequenceNumber":"49\u00390"`),
		"partition key non-ASCII": rec(`"partitionKey":"Zürich"`),
		"partition key bad UTF-8": rec("\"partitionKey\":\"a\xffb\""),
		"partition key number":    rec(`"partitionKey":132`),
		"encryption type":         rec(`"encryptionType":"KMS"`),
		"string null":             `{"shardId":null}`,
		"window":                  `{"window":{"start":"2025-06-01T12:00:00Z","end":"2025-06-01T12:05:00+02:00"}}`,
		"window bad time":         `{"window":{"start":"2025-06-01 12:00:00"}}`,
		"window null":             `{"window":null}`,
		"window start null":       `{"window":{"start":null}}`,
		"state":                   `{"state":{"a":"1","b":"2","a":"3"}}`,
		"state empty":             `{"state":{}}`,
		"state null":              `{"state":null}`,
		"state number":            `{"state":{"a":1}}`,
		"flags":                   `{"isFinalInvokeForWindow":true,"isWindowTerminatedEarly":false}`,
		"flag string":             `{"isFinalInvokeForWindow":"true"}`,
		"flag truthy":             `{"isFinalInvokeForWindow":truex}`,
		"flag null":               `{"isFinalInvokeForWindow":null}`,
	}
	for name, payload := range tests {
		t.Run(name, func(t *testing.T) { checkDecode(t, []byte(payload)) })
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, b := range projectEvents(f) {
		if len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"Records":[{"kinesis":{"data":"eyJhIjoxfQ==","approximateArrivalTimestamp":1.5}}],"state":{"a":"b"}}`))
	f.Add([]byte(`{"window":{"start":"2025-06-01T12:00:00Z"},"isFinalInvokeForWindow":true}`))
	f.Fuzz(func(t *testing.T, payload []byte) { checkDecode(t, payload) })
}

// TestInvokeSameAsHandle runs each event through Handle (decoded by the runtime's decoder) and through
// Invoke on separate handlers: the responses must be byte-identical and the outputs equal.
func TestInvokeSameAsHandle(t *testing.T) {
	for name, payload := range projectEvents(t) {
		t.Run(name, func(t *testing.T) {
			storeA, storeB := newFakeS3(), newFakeS3()
			ha, _, metricsA := newTestHandler(t, storeA, testZones(t))
			hb, _, metricsB := newTestHandler(t, storeB, testZones(t))

			ev, err := runtimeDecode(payload)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := ha.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			want := runtimeEncode(t, resp)
			got, err := hb.Invoke(context.Background(), payload)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("response\n got %s\nwant %s", got, want)
			}
			if len(storeA.objects) == 0 {
				t.Fatal("Handle wrote nothing")
			}
			if diff := cmp.Diff(storeA.objects, storeB.objects); diff != "" {
				t.Errorf("outputs differ (-Handle +Invoke):\n%s", diff)
			}
			// Files are written several at once: the same calls, in any order.
			if diff := cmp.Diff(storeA.puts, storeB.puts, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("PutObject calls differ (-Handle +Invoke):\n%s", diff)
			}
			if metricsA.String() != metricsB.String() {
				t.Errorf("metrics differ:\nHandle %s\nInvoke %s", metricsA, metricsB)
			}
		})
	}
}

// TestInvokeReusesDataBuffer checks that a second invocation (which reuses the decoded-data buffer)
// is not affected by the first: each gives what a fresh handler gives.
func TestInvokeReusesDataBuffer(t *testing.T) {
	evs := projectEvents(t)
	names := []string{"generated-window", "kinesis.json", "generated-window"}
	store := newFakeS3()
	h, _, _ := newTestHandler(t, store, testZones(t))
	for i, name := range names {
		payload, ok := evs[name]
		if !ok {
			continue
		}
		// The same handler, with an empty bucket: otherwise its ledger would skip the third
		// invocation's records as a redelivery of the first's.
		store.mu.Lock()
		clear(store.objects)
		clear(store.etags)
		store.mu.Unlock()
		fresh := newFakeS3()
		hf, _, _ := newTestHandler(t, fresh, testZones(t))
		want, err := hf.Invoke(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		got, err := h.Invoke(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("invoke %d (%s): response %s, want %s", i, name, got, want)
		}
		for k, b := range fresh.objects {
			got, ok := store.objects[k]
			switch {
			case !ok:
				t.Errorf("invoke %d (%s): %s missing", i, name, k)
			case strings.HasSuffix(k, ".parquet"):
				// A reused Parquet writer does not give the same bytes as a fresh one (page and
				// dictionary layout), so compare the rows.
				if diff := cmp.Diff(readTrips(t, b), readTrips(t, got)); diff != "" {
					t.Errorf("invoke %d (%s): %s rows differ from a fresh handler's (-fresh +reused):\n%s", i, name, k, diff)
				}
			case !bytes.Equal(got, b):
				t.Errorf("invoke %d (%s): %s differs from a fresh handler's", i, name, k)
			}
		}
	}
}

func TestInvokeMalformedPayload(t *testing.T) {
	for _, payload := range []string{``, `{"Records":[{"kinesis":{"data":"eyJhIjoxfQ="}}]}`, `{"Records":`, `[1]`} {
		store := newFakeS3()
		h, _, _ := newTestHandler(t, store, testZones(t))
		out, err := h.Invoke(context.Background(), []byte(payload))
		_, want := runtimeDecode([]byte(payload))
		if err == nil || out != nil {
			t.Errorf("Invoke(%q) = %q, %v; want an error", payload, out, err)
			continue
		}
		if err.Error() != want.Error() {
			t.Errorf("Invoke(%q) error %q, want the runtime's %q", payload, err, want)
		}
		if len(store.puts) != 0 {
			t.Errorf("Invoke(%q) wrote %v", payload, store.puts)
		}
		if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("Invoke(%q): empty error", payload)
		}
	}
}
