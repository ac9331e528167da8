// Package kpl implements the Kinesis Producer Library aggregated record format: magic F3 89 9A C2,
// a protobuf AggregatedRecord, and an MD5 trailer.
package kpl

import "errors"

// ErrCorrupt reports an aggregated record whose MD5 or protobuf does not check out.
var ErrCorrupt = errors.New("corrupt kpl aggregated record")

// UserRecord is one record inside (or outside) an aggregate.
type UserRecord struct {
	PartitionKey    string
	ExplicitHashKey string // "" when none
	Data            []byte
}

// Aggregator builds one aggregated record. The zero value is ready to use.
type Aggregator struct{}

// Deaggregate returns the user records of data. A record without the magic prefix is returned as a
// single user record with partitionKey. An aggregate whose MD5 or protobuf is wrong is ErrCorrupt.
func Deaggregate(data []byte, partitionKey, explicitHashKey string) ([]UserRecord, error) {
	return nil, errors.New("not implemented")
}
