package kpl

import (
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// SubRecord is one user record of a Kinesis record, with the position a consumer checkpoints: the
// Kinesis record's sequence number and the user record's index inside it.
type SubRecord struct {
	UserRecord
	// SequenceNumber is the sequence number of the enclosing Kinesis record.
	SequenceNumber string
	// SubSequenceNumber is the index of the user record inside the aggregate (0 for a record that
	// was not aggregated).
	SubSequenceNumber int64
	// Aggregated is true when the Kinesis record was a KPL aggregate.
	Aggregated bool
	// ApproximateArrivalTimestamp is the arrival time of the enclosing Kinesis record.
	ApproximateArrivalTimestamp time.Time
}

// DeaggregateEventRecord returns the user records of a Lambda Kinesis event record. A corrupt
// aggregate is an error wrapping ErrCorrupt that names the sequence number.
func DeaggregateEventRecord(r events.KinesisEventRecord) ([]SubRecord, error) {
	k := r.Kinesis
	return subRecords(k.Data, k.PartitionKey, k.SequenceNumber, k.ApproximateArrivalTimestamp.Time)
}

// DeaggregateRecord returns the user records of a record read with GetRecords (SDK types.Record).
func DeaggregateRecord(r types.Record) ([]SubRecord, error) {
	var pk, seq string
	var at time.Time
	if r.PartitionKey != nil {
		pk = *r.PartitionKey
	}
	if r.SequenceNumber != nil {
		seq = *r.SequenceNumber
	}
	if r.ApproximateArrivalTimestamp != nil {
		at = *r.ApproximateArrivalTimestamp
	}
	return subRecords(r.Data, pk, seq, at)
}

// DeaggregateRecords de-aggregates GetRecords output in order. It stops at the first corrupt
// aggregate and returns the user records before it with the error.
func DeaggregateRecords(recs []types.Record) ([]SubRecord, error) {
	var out []SubRecord
	for _, r := range recs {
		subs, err := DeaggregateRecord(r)
		if err != nil {
			return out, err
		}
		out = append(out, subs...)
	}
	return out, nil
}

func subRecords(data []byte, pk, seq string, at time.Time) ([]SubRecord, error) {
	users, err := Deaggregate(data, pk, "")
	if err != nil {
		return nil, fmt.Errorf("de-aggregating sequence number %s: %w", seq, err)
	}
	agg := IsAggregated(data)
	out := make([]SubRecord, len(users))
	for i, u := range users {
		out[i] = SubRecord{
			UserRecord:                  u,
			SequenceNumber:              seq,
			SubSequenceNumber:           int64(i),
			Aggregated:                  agg,
			ApproximateArrivalTimestamp: at,
		}
	}
	return out, nil
}
