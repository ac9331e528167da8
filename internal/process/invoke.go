package process

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// Invoke implements lambda.Handler: lambda.Start(h) passes it the raw event payload, skipping the
// runtime's reflection-based encoding/json decode. That decode cost more CPU than the rest of the
// function (docs/performance.md): an event of 100 KPL aggregates is ~9 MB of JSON, nearly all of it
// base64 in "data", which encoding/json validates byte by byte, copies, and decodes into a fresh
// slice per record.
//
// Invoke behaves exactly like lambda.Start(h.Handle): the event is decoded into the same
// events.KinesisTimeWindowEvent (a fast path for the shape Lambda sends, and otherwise — any key,
// type, escape or syntax the fast path does not take — encoding/json's Decoder, the runtime's own
// decoder, so the same value or the same error), Handle runs, and the response is encoded as the
// runtime encodes it (json.Encoder, SetEscapeHTML(false), a trailing newline).
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	buf := dataBufs.Get().(*dataBuf)
	defer func() {
		buf.b = buf.b[:0]
		dataBufs.Put(buf)
	}()
	var ev events.KinesisTimeWindowEvent
	if err := decodeEvent(payload, &ev, &buf.b); err != nil {
		return nil, err
	}
	resp, err := h.Handle(ctx, ev)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// dataBuf holds the decoded "data" of one event's records; the records' Data slices point into it
// for the duration of one Invoke (Handle keeps no reference to them: outputs are encoded copies).
type dataBuf struct{ b []byte }

var dataBufs = sync.Pool{New: func() any { return &dataBuf{} }}

// decodeEvent decodes a Lambda Kinesis (time window) event as lambda.Start does: the first JSON value
// of payload, trailing bytes ignored. Record data is decoded into *buf (grown as needed).
func decodeEvent(payload []byte, ev *events.KinesisTimeWindowEvent, buf *[]byte) error {
	d := eventDecoder{b: payload, buf: *buf}
	ok := d.event(ev) && d.decodeData(ev)
	*buf = d.buf
	if ok {
		return nil
	}
	*ev = events.KinesisTimeWindowEvent{}
	return json.NewDecoder(bytes.NewReader(payload)).Decode(ev)
}

// eventDecoder is the fast path of decodeEvent: a strict reader of the event's fixed shape. Every
// method returns false for anything it does not handle exactly as encoding/json would (unknown or
// repeated keys, keys that differ in case, null, escapes in strings, invalid UTF-8, a wrong JSON
// type, a syntax error); decodeEvent then decodes the payload again with encoding/json.
type eventDecoder struct {
	b   []byte
	i   int
	buf []byte
	rec int // index of the record being read
	// pending holds the records' base64 "data" found by the parse, decoded after it on every CPU
	// (decodeData): a batch's data is megabytes, and this decode was a serial part of every invocation.
	pending []pendingData
}

// pendingData is a record's base64 data and the room reserved for it in buf.
type pendingData struct {
	rec      int
	src, dst []byte
}

func (d *eventDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// eat skips whitespace and then c.
func (d *eventDecoder) eat(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// peek skips whitespace and returns the next byte (0 at the end).
func (d *eventDecoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// rawString reads a string without escapes and returns its content (valid UTF-8).
func (d *eventDecoder) rawString() ([]byte, bool) {
	s, _, simple, ok := d.stringToken()
	return s, ok && simple
}

// stringToken reads a string. simple reports that it has no escapes and is valid UTF-8, so its
// content is its value; else token (quotes included) is for encoding/json to decode.
func (d *eventDecoder) stringToken() (content, token []byte, simple, ok bool) {
	if !d.eat('"') {
		return nil, nil, false, false
	}
	start, ascii, esc := d.i, true, false
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			return s, d.b[start-1 : d.i], !esc && (ascii || utf8.Valid(s)), true
		case c == '\\':
			esc = true
			d.i++ // the escaped byte; encoding/json checks the escape itself
		case c < 0x20:
			return nil, nil, false, false
		case c >= 0x80:
			ascii = false
		}
		d.i++
	}
	return nil, nil, false, false
}

// str reads a string value; escapes and invalid UTF-8 are decoded by encoding/json itself.
func (d *eventDecoder) str(dst *string) bool {
	s, token, simple, ok := d.stringToken()
	switch {
	case !ok:
		return false
	case simple:
		*dst = string(s)
		return true
	default:
		return json.Unmarshal(token, dst) == nil
	}
}

func (d *eventDecoder) boolean(dst *bool) bool {
	d.ws()
	rest := d.b[d.i:]
	switch {
	case bytes.HasPrefix(rest, []byte("true")):
		*dst = true
		d.i += 4
	case bytes.HasPrefix(rest, []byte("false")):
		*dst = false
		d.i += 5
	default:
		return false
	}
	return true
}

// number reads a JSON number (RFC 8259 grammar) and returns its text.
func (d *eventDecoder) number() ([]byte, bool) {
	d.ws()
	start := d.i
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case digits() == 0:
		return nil, false
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	return d.b[start:d.i], true
}

// object reads an object whose keys are each in keys (exact case) at most once, calling field for
// each; field reads the value.
func (d *eventDecoder) object(keys []string, field func(k int) bool) bool {
	if !d.eat('{') {
		return false
	}
	if d.eat('}') {
		return true
	}
	var seen uint64
	for {
		key, ok := d.rawString()
		if !ok || !d.eat(':') {
			return false
		}
		k := -1
		for j, name := range keys {
			if string(key) == name {
				k = j
				break
			}
		}
		if k < 0 || seen&(1<<k) != 0 || !field(k) {
			return false
		}
		seen |= 1 << k
		if d.eat(',') {
			continue
		}
		return d.eat('}')
	}
}

var (
	eventKeys   = []string{"Records", "window", "state", "shardId", "eventSourceARN", "isFinalInvokeForWindow", "isWindowTerminatedEarly"}
	windowKeys  = []string{"start", "end"}
	recordKeys  = []string{"kinesis", "eventSource", "eventVersion", "eventID", "eventName", "invokeIdentityArn", "awsRegion", "eventSourceARN"}
	kinesisKeys = []string{"kinesisSchemaVersion", "partitionKey", "sequenceNumber", "data", "approximateArrivalTimestamp", "encryptionType"}
)

func (d *eventDecoder) event(ev *events.KinesisTimeWindowEvent) bool {
	return d.object(eventKeys, func(k int) bool {
		switch k {
		case 0:
			return d.records(&ev.Records)
		case 1:
			return d.object(windowKeys, func(k int) bool {
				if k == 0 {
					return d.rfc3339(&ev.Window.Start)
				}
				return d.rfc3339(&ev.Window.End)
			})
		case 2:
			return d.state(&ev.State)
		case 3:
			return d.str(&ev.ShardID)
		case 4:
			return d.str(&ev.EventSourceARN)
		case 5:
			return d.boolean(&ev.IsFinalInvokeForWindow)
		default:
			return d.boolean(&ev.IsWindowTerminatedEarly)
		}
	})
}

func (d *eventDecoder) records(dst *[]events.KinesisEventRecord) bool {
	if !d.eat('[') {
		return false
	}
	recs := make([]events.KinesisEventRecord, 0, 128)
	if !d.eat(']') {
		for {
			recs = append(recs, events.KinesisEventRecord{})
			d.rec = len(recs) - 1
			if !d.record(&recs[len(recs)-1]) {
				return false
			}
			if d.eat(',') {
				continue
			}
			if !d.eat(']') {
				return false
			}
			break
		}
	}
	*dst = recs
	return true
}

func (d *eventDecoder) record(r *events.KinesisEventRecord) bool {
	return d.object(recordKeys, func(k int) bool {
		switch k {
		case 0:
			return d.kinesis(&r.Kinesis)
		case 1:
			return d.str(&r.EventSource)
		case 2:
			return d.str(&r.EventVersion)
		case 3:
			return d.str(&r.EventID)
		case 4:
			return d.str(&r.EventName)
		case 5:
			return d.str(&r.InvokeIdentityArn)
		case 6:
			return d.str(&r.AwsRegion)
		default:
			return d.str(&r.EventSourceArn)
		}
	})
}

func (d *eventDecoder) kinesis(r *events.KinesisRecord) bool {
	return d.object(kinesisKeys, func(k int) bool {
		switch k {
		case 0:
			return d.str(&r.KinesisSchemaVersion)
		case 1:
			return d.str(&r.PartitionKey)
		case 2:
			return d.str(&r.SequenceNumber)
		case 3:
			return d.data(&r.Data)
		case 4:
			// The type's own UnmarshalJSON, as encoding/json calls it.
			n, ok := d.number()
			return ok && r.ApproximateArrivalTimestamp.UnmarshalJSON(n) == nil
		default:
			return d.str(&r.EncryptionType)
		}
	})
}

// data reserves room for a base64 string's decoding in d.buf and leaves the decoding to decodeData.
// encoding/json decodes a []byte from the string's (unescaped) content with base64.StdEncoding, which
// skips '\r' and '\n'; JSON strings cannot hold them unescaped, and escapes are left to encoding/json,
// so a string holding either, or a backslash, or anything else outside the base64 alphabet, is not
// taken here (decodeData fails on it, and decodeEvent falls back to encoding/json).
func (d *eventDecoder) data(dst *[]byte) bool {
	if !d.eat('"') {
		return false
	}
	n := bytes.IndexByte(d.b[d.i:], '"')
	if n < 0 {
		return false
	}
	src := d.b[d.i : d.i+n]
	if bytes.IndexByte(src, '\n') >= 0 || bytes.IndexByte(src, '\r') >= 0 {
		return false
	}
	need := base64.StdEncoding.DecodedLen(len(src))
	if cap(d.buf)-len(d.buf) < need {
		// A new array; the room already reserved keeps the old one alive.
		d.buf = make([]byte, 0, max(2*cap(d.buf), need+64<<10))
	}
	at := len(d.buf)
	d.buf = d.buf[:at+need]
	d.pending = append(d.pending, pendingData{rec: d.rec, src: src, dst: d.buf[at : at+need : at+need]})
	*dst = []byte{} // set by decodeData
	d.i += n + 1
	return true
}

// decodeData decodes the data the parse found into the room reserved for it, on every CPU, and points
// each record's Data at its decoding. It reports false if any is not valid base64.
func (d *eventDecoder) decodeData(ev *events.KinesisTimeWindowEvent) bool {
	var bad atomic.Bool
	forChunks(len(d.pending), 8, func(lo, hi int) {
		for _, p := range d.pending[lo:hi] {
			m, err := base64.StdEncoding.Decode(p.dst, p.src)
			if err != nil {
				bad.Store(true)
				return
			}
			if m > 0 { // "" stays an empty slice, not nil, as encoding/json decodes it
				ev.Records[p.rec].Kinesis.Data = p.dst[:m:m]
			}
		}
	})
	return !bad.Load()
}

func (d *eventDecoder) rfc3339(dst *events.RFC3339EpochTime) bool {
	d.ws()
	start := d.i
	if _, ok := d.rawString(); !ok {
		return false
	}
	// The type's own UnmarshalJSON, as encoding/json calls it.
	return dst.UnmarshalJSON(d.b[start:d.i]) == nil
}

func (d *eventDecoder) state(dst *map[string]string) bool {
	switch d.peek() {
	case 'n':
		if !bytes.HasPrefix(d.b[d.i:], []byte("null")) {
			return false
		}
		d.i += 4
		*dst = nil // as encoding/json: null sets a map to nil
		return true
	case '{':
		d.i++
	default:
		return false
	}
	m := map[string]string{}
	if !d.eat('}') {
		for {
			var k, v string
			if !d.str(&k) || !d.eat(':') || !d.str(&v) {
				return false
			}
			m[k] = v // a repeated key: the last wins, as in encoding/json
			if d.eat(',') {
				continue
			}
			if !d.eat('}') {
				return false
			}
			break
		}
	}
	*dst = m
	return true
}
