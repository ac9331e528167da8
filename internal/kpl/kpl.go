// Package kpl implements the Kinesis Producer Library aggregated record format: magic F3 89 9A C2,
// a protobuf AggregatedRecord, and an MD5 trailer.
//
// The format (awslabs/amazon-kinesis-producer, aggregation-format.md):
//
//	magic (4 bytes) | protobuf AggregatedRecord | MD5 of the protobuf bytes (16 bytes)
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// The Aggregator writes exactly what the KPL and the official Node module (aws-kinesis-agg) write:
// tables in first-seen order, every record with its own partition key index, required fields always
// present, no tags.
package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrCorrupt reports an aggregated record whose MD5 or protobuf does not check out.
var ErrCorrupt = errors.New("corrupt kpl aggregated record")

// Magic is the prefix of every aggregated record (F3 89 9A C2), a constant so no caller can change it.
const Magic = "\xF3\x89\x9A\xC2"

const (
	magicLen  = 4        // len(Magic)
	digestLen = md5.Size // MD5 trailer
	// Overhead is the size of an empty aggregate: magic and MD5 trailer around an empty protobuf.
	Overhead = magicLen + digestLen
)

// Protobuf field numbers of AggregatedRecord and Record.
const (
	fieldPartitionKeyTable    protowire.Number = 1
	fieldExplicitHashKeyTable protowire.Number = 2
	fieldRecords              protowire.Number = 3

	fieldPartitionKeyIndex    protowire.Number = 1
	fieldExplicitHashKeyIndex protowire.Number = 2
	fieldData                 protowire.Number = 3
)

// UserRecord is one record inside (or outside) an aggregate.
type UserRecord struct {
	PartitionKey    string
	ExplicitHashKey string // "" when none
	Data            []byte
}

type aggRecord struct {
	pkIndex  uint64
	ehkIndex uint64 // valid when hasEHK
	hasEHK   bool
	data     []byte
}

// Aggregator builds one aggregated record. The zero value is ready to use. It keeps references to
// the data of the records added (no copy) until Reset.
type Aggregator struct {
	pkIndex  map[string]uint64
	pks      []string
	ehkIndex map[string]uint64
	ehks     []string
	records  []aggRecord
	body     int // size of the protobuf AggregatedRecord so far
}

// Len returns the number of user records added.
func (a *Aggregator) Len() int { return len(a.records) }

// Size returns the size of the aggregated record that Bytes would return now.
func (a *Aggregator) Size() int { return Overhead + a.body }

// SizeWith returns the size of the aggregated record if r were added: magic, protobuf (with the
// varints of every length and index, and r's keys if they are new to the tables) and MD5.
func (a *Aggregator) SizeWith(r UserRecord) int {
	return Overhead + a.body + a.growth(r)
}

// growth returns how much the protobuf grows when r is added.
func (a *Aggregator) growth(r UserRecord) int {
	n := 0
	pkIdx, ok := a.pkIndex[r.PartitionKey]
	if !ok {
		pkIdx = uint64(len(a.pks))
		n += protowire.SizeTag(fieldPartitionKeyTable) + protowire.SizeBytes(len(r.PartitionKey))
	}
	inner := protowire.SizeTag(fieldPartitionKeyIndex) + protowire.SizeVarint(pkIdx)
	if r.ExplicitHashKey != "" {
		ehkIdx, ok := a.ehkIndex[r.ExplicitHashKey]
		if !ok {
			ehkIdx = uint64(len(a.ehks))
			n += protowire.SizeTag(fieldExplicitHashKeyTable) + protowire.SizeBytes(len(r.ExplicitHashKey))
		}
		inner += protowire.SizeTag(fieldExplicitHashKeyIndex) + protowire.SizeVarint(ehkIdx)
	}
	inner += protowire.SizeTag(fieldData) + protowire.SizeBytes(len(r.Data))
	return n + protowire.SizeTag(fieldRecords) + protowire.SizeBytes(inner)
}

// Add adds r (its Data is referenced, not copied).
func (a *Aggregator) Add(r UserRecord) {
	a.body += a.growth(r)
	if a.pkIndex == nil {
		a.pkIndex = make(map[string]uint64)
	}
	idx, ok := a.pkIndex[r.PartitionKey]
	if !ok {
		idx = uint64(len(a.pks))
		a.pkIndex[r.PartitionKey] = idx
		a.pks = append(a.pks, r.PartitionKey)
	}
	rec := aggRecord{pkIndex: idx, data: r.Data}
	if r.ExplicitHashKey != "" {
		if a.ehkIndex == nil {
			a.ehkIndex = make(map[string]uint64)
		}
		e, ok := a.ehkIndex[r.ExplicitHashKey]
		if !ok {
			e = uint64(len(a.ehks))
			a.ehkIndex[r.ExplicitHashKey] = e
			a.ehks = append(a.ehks, r.ExplicitHashKey)
		}
		rec.ehkIndex, rec.hasEHK = e, true
	}
	a.records = append(a.records, rec)
}

// Bytes returns the aggregated record: magic, protobuf, MD5.
func (a *Aggregator) Bytes() []byte {
	return a.AppendTo(make([]byte, 0, a.Size()))
}

// AppendTo appends the aggregated record to dst.
func (a *Aggregator) AppendTo(dst []byte) []byte {
	dst = append(dst, Magic...)
	start := len(dst)
	for _, pk := range a.pks {
		dst = protowire.AppendTag(dst, fieldPartitionKeyTable, protowire.BytesType)
		dst = protowire.AppendString(dst, pk)
	}
	for _, ehk := range a.ehks {
		dst = protowire.AppendTag(dst, fieldExplicitHashKeyTable, protowire.BytesType)
		dst = protowire.AppendString(dst, ehk)
	}
	for _, r := range a.records {
		inner := protowire.SizeTag(fieldPartitionKeyIndex) + protowire.SizeVarint(r.pkIndex)
		if r.hasEHK {
			inner += protowire.SizeTag(fieldExplicitHashKeyIndex) + protowire.SizeVarint(r.ehkIndex)
		}
		inner += protowire.SizeTag(fieldData) + protowire.SizeBytes(len(r.data))
		dst = protowire.AppendTag(dst, fieldRecords, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(inner))
		dst = protowire.AppendTag(dst, fieldPartitionKeyIndex, protowire.VarintType)
		dst = protowire.AppendVarint(dst, r.pkIndex)
		if r.hasEHK {
			dst = protowire.AppendTag(dst, fieldExplicitHashKeyIndex, protowire.VarintType)
			dst = protowire.AppendVarint(dst, r.ehkIndex)
		}
		dst = protowire.AppendTag(dst, fieldData, protowire.BytesType)
		dst = protowire.AppendBytes(dst, r.data)
	}
	sum := md5.Sum(dst[start:])
	return append(dst, sum[:]...)
}

// Reset empties the aggregator, keeping its allocated memory.
func (a *Aggregator) Reset() {
	clear(a.pkIndex)
	clear(a.ehkIndex)
	a.pks = a.pks[:0]
	a.ehks = a.ehks[:0]
	clear(a.records) // drop the data references
	a.records = a.records[:0]
	a.body = 0
}

// Aggregate returns the aggregated record holding recs.
func Aggregate(recs []UserRecord) []byte {
	var a Aggregator
	for _, r := range recs {
		a.Add(r)
	}
	return a.Bytes()
}

// IsAggregated reports whether data starts with the KPL magic and is long enough for the trailer.
func IsAggregated(data []byte) bool {
	return len(data) >= Overhead && string(data[:magicLen]) == Magic
}

// Deaggregate returns the user records of data. A record without the magic prefix is returned as a
// single user record with partitionKey. An aggregate whose MD5 or protobuf is wrong is ErrCorrupt.
// The Data of the records returned point into data (no copy).
func Deaggregate(data []byte, partitionKey, explicitHashKey string) ([]UserRecord, error) {
	if !IsAggregated(data) {
		return []UserRecord{{PartitionKey: partitionKey, ExplicitHashKey: explicitHashKey, Data: data}}, nil
	}
	body := data[magicLen : len(data)-digestLen]
	sum := md5.Sum(body)
	if !bytes.Equal(sum[:], data[len(data)-digestLen:]) {
		return nil, fmt.Errorf("%w: md5 mismatch", ErrCorrupt)
	}
	var (
		pks, ehks []string
		raw       [][]byte
	)
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return nil, corrupt("aggregated record tag", n)
		}
		body = body[n:]
		switch {
		case num == fieldPartitionKeyTable && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, corrupt("partition key table", n)
			}
			pks = append(pks, string(v))
			body = body[n:]
		case num == fieldExplicitHashKeyTable && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, corrupt("explicit hash key table", n)
			}
			ehks = append(ehks, string(v))
			body = body[n:]
		case num == fieldRecords && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, corrupt("record", n)
			}
			raw = append(raw, v)
			body = body[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, body)
			if n < 0 {
				return nil, corrupt("unknown field", n)
			}
			body = body[n:]
		}
	}
	out := make([]UserRecord, 0, len(raw))
	for i, r := range raw {
		u, err := decodeRecord(r, pks, ehks)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
		}
		out = append(out, u)
	}
	return out, nil
}

func corrupt(what string, n int) error {
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, protowire.ParseError(n))
}

// decodeRecord decodes one protobuf Record against the key tables.
func decodeRecord(b []byte, pks, ehks []string) (UserRecord, error) {
	var (
		u              UserRecord
		hasPK, hasData bool
		pkIdx, ehkIdx  uint64
		hasEHK         bool
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return u, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == fieldPartitionKeyIndex && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return u, protowire.ParseError(n)
			}
			pkIdx, hasPK = v, true
			b = b[n:]
		case num == fieldExplicitHashKeyIndex && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return u, protowire.ParseError(n)
			}
			ehkIdx, hasEHK = v, true
			b = b[n:]
		case num == fieldData && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return u, protowire.ParseError(n)
			}
			u.Data, hasData = v, true
			b = b[n:]
		default: // tags (4) and unknown fields
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return u, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	if !hasPK {
		return u, errors.New("missing partition_key_index")
	}
	if !hasData {
		return u, errors.New("missing data")
	}
	if pkIdx >= uint64(len(pks)) {
		return u, fmt.Errorf("partition_key_index %d outside a table of %d", pkIdx, len(pks))
	}
	u.PartitionKey = pks[pkIdx]
	if hasEHK {
		if ehkIdx >= uint64(len(ehks)) {
			return u, fmt.Errorf("explicit_hash_key_index %d outside a table of %d", ehkIdx, len(ehks))
		}
		u.ExplicitHashKey = ehks[ehkIdx]
	}
	if u.Data == nil {
		u.Data = []byte{}
	}
	return u, nil
}
