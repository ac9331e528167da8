package local

import (
	"context"
	"strings"
)

// BucketReader is the part of the S3 API SummarizeBucket reads with; *s3.Client and the local
// *bucket.Bucket fit it.
type BucketReader = lister

// failureCheck is the end of the reconciliation line about the failure destinations.
const failureCheck = "batches or events in the failure destinations"

// SummarizeBucket is Summarize for any bucket reachable with the S3 API: a deployed stack's bucket, or
// the local bucket of an earlier run (`taxistream report`). archive and consumer say whether the stack
// has the Firehose and the consumer. failureRecords is the number of on-failure records; a negative
// value means the failure destinations could not be read (a deployed stack's SQS queue), and the
// reconciliation says so instead of checking it. The stream records that on-failure records name are
// not read back (the stream is gone): Summarize, during the run, does that.
func SummarizeBucket(ctx context.Context, b BucketReader, bucketName string, archive, consumer bool, failureRecords int) (Summary, error) {
	s, err := summarize(ctx, b, bucketName, "", archive, consumer, nil) // record ids spilled to the system temp folder
	if err != nil {
		return s, err
	}
	s.FailureRecords = max(failureRecords, 0)
	s.reconcile(archive, consumer)
	if failureRecords < 0 {
		for i, l := range s.Reconciliation {
			if strings.HasSuffix(l, failureCheck) {
				s.Reconciliation[i] = "not checked: the failure destinations (the stack's failure queue) are not in the bucket"
			}
		}
		s.Reconciled = true
		for _, l := range s.Reconciliation {
			if strings.HasPrefix(l, "MISMATCH") {
				s.Reconciled = false
			}
		}
	}
	return s, nil
}
