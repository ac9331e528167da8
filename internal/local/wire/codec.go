package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"time"
)

// The AWS JSON 1.1 protocol, for the SDK's own Kinesis input and output types: members by their Go field
// names (which are the API's member names), blobs as base64, timestamps as epoch seconds (with
// fractions), absent members omitted. Decoding uses encoding/json (timestamps converted first);
// encoding walks the output with reflection, so every member the SDK type has is written.

// serializationError is a request body that is not the operation's JSON: Kinesis's SerializationException.
type serializationError struct{ msg string }

func (e *serializationError) Error() string { return e.msg }

// timestampMembers are the timestamp members of the inputs served (GetShardIterator.Timestamp,
// ListShards.StreamCreationTimestamp and ShardFilter.Timestamp).
var timestampMembers = map[string]bool{"Timestamp": true, "StreamCreationTimestamp": true}

// decodeJSON decodes a request body into an SDK input struct.
func decodeJSON(body []byte, into any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if hasTimes(reflect.TypeOf(into)) {
		var tree any
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&tree); err != nil {
			return &serializationError{"decoding the request: " + err.Error()}
		}
		if err := epochToRFC3339(tree); err != nil {
			return err
		}
		var err error
		if body, err = json.Marshal(tree); err != nil {
			return &serializationError{"re-encoding the request: " + err.Error()}
		}
	}
	if err := json.Unmarshal(body, into); err != nil {
		return &serializationError{"decoding the request: " + err.Error()}
	}
	return nil
}

// epochToRFC3339 rewrites the timestamp members of a decoded JSON tree from epoch seconds to RFC 3339,
// which time.Time decodes.
func epochToRFC3339(v any) error {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if n, ok := x.(json.Number); ok && timestampMembers[k] {
				f, err := n.Float64()
				if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
					return &serializationError{fmt.Sprintf("member %s: %q is not a timestamp in epoch seconds", k, n)}
				}
				sec, frac := math.Modf(f)
				t[k] = time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC().Format(time.RFC3339Nano)
				continue
			}
			if err := epochToRFC3339(x); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range t {
			if err := epochToRFC3339(x); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	timeType    = reflect.TypeOf(time.Time{})
	hasTimesMu  sync.Mutex
	hasTimesMap = map[reflect.Type]bool{}
)

// hasTimes reports whether values of t hold a time.Time anywhere.
func hasTimes(t reflect.Type) bool {
	hasTimesMu.Lock()
	defer hasTimesMu.Unlock()
	return hasTimesLocked(t, map[reflect.Type]bool{})
}

func hasTimesLocked(t reflect.Type, seen map[reflect.Type]bool) bool {
	if v, ok := hasTimesMap[t]; ok {
		return v
	}
	if seen[t] {
		return false
	}
	seen[t] = true
	r := false
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		r = hasTimesLocked(t.Elem(), seen)
	case reflect.Struct:
		if t == timeType {
			r = true
			break
		}
		for i := 0; i < t.NumField() && !r; i++ {
			if f := t.Field(i); f.IsExported() {
				r = hasTimesLocked(f.Type, seen)
			}
		}
	}
	hasTimesMap[t] = r
	return r
}

// marshalAWSJSON encodes an SDK output struct in the JSON protocol's shape.
func marshalAWSJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := encodeValue(&b, reflect.ValueOf(v)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// omitted reports whether a member is absent: a nil pointer, slice, map or interface, or an empty enum
// (the SDK's optional members are pointers; its enums are strings whose zero value means "not set").
func omitted(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return v.IsNil()
	case reflect.String:
		return v.Len() == 0
	}
	return false
}

func encodeValue(b *bytes.Buffer, v reflect.Value) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		return encodeValue(b, v.Elem())
	case reflect.Struct:
		if v.Type() == timeType {
			t := v.Interface().(time.Time)
			b.WriteString(strconv.FormatFloat(float64(t.UnixMilli())/1e3, 'f', -1, 64))
			return nil
		}
		b.WriteByte('{')
		first := true
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			// ResultMetadata is the SDK's, not a member; unexported fields are the SDK's markers.
			if !f.IsExported() || f.Anonymous || f.Name == "ResultMetadata" || omitted(v.Field(i)) {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			name, _ := json.Marshal(f.Name)
			b.Write(name)
			b.WriteByte(':')
			if err := encodeValue(b, v.Field(i)); err != nil {
				return fmt.Errorf("encoding member %s: %w", f.Name, err)
			}
		}
		b.WriteByte('}')
		return nil
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b.WriteByte('"')
			b.WriteString(base64.StdEncoding.EncodeToString(v.Bytes()))
			b.WriteByte('"')
			return nil
		}
		b.WriteByte('[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := encodeValue(b, v.Index(i)); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("map with %s keys", v.Type().Key())
		}
		keys := v.MapKeys()
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = k.String()
		}
		sort.Strings(names)
		b.WriteByte('{')
		for i, n := range names {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(n)
			b.Write(k)
			b.WriteByte(':')
			if err := encodeValue(b, v.MapIndex(reflect.ValueOf(n).Convert(v.Type().Key()))); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		enc, err := json.Marshal(v.Interface())
		if err != nil {
			return err
		}
		b.Write(enc)
		return nil
	}
	return fmt.Errorf("cannot encode a %s", v.Type())
}
