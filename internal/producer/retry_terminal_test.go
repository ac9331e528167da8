package producer

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

func TestIsTerminal(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"deadline", ErrDeadline, false},
		{"cancelled", fmt.Errorf("putting: %w", context.Canceled), false},
		{"retries exhausted", fmt.Errorf("%w: still failing", ErrRetriesExhausted), false},
		{"entry rejected (KMS throttling)", fmt.Errorf("%w: KMSThrottlingException", ErrEntryRejected), false},
		{"throttled request", &types.ProvisionedThroughputExceededException{Message: nil}, false},
		{"server error", &smithy.GenericAPIError{Code: "InternalFailure", Fault: smithy.FaultServer}, false},
		{"record too large", ErrRecordTooLarge, true},
		{"bad partition key", ErrInvalidPartitionKey, true},
		{"access denied", &smithy.GenericAPIError{Code: "AccessDeniedException", Fault: smithy.FaultClient}, true},
		{"stream not found", &types.ResourceNotFoundException{}, true},
	} {
		if got := IsTerminal(tt.err); got != tt.want {
			t.Errorf("%s: IsTerminal(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
	if IsTerminal(errors.New("some unknown failure")) != true {
		t.Error("an unknown error should count as terminal (classify's default)")
	}
}
