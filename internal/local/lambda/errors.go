package lambda

import (
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/uuid"
)

// apiError wraps err the way the SDK returns a Lambda service error, so callers classify it with
// errors.As (*types.TooManyRequestsException, smithy.APIError, interface{ HTTPStatusCode() int }).
func apiError(status int, err error) error {
	return &smithy.OperationError{
		ServiceID:     "Lambda",
		OperationName: "Invoke",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
				Err:      err,
			},
			RequestID: uuid.NewString(),
		},
	}
}

func ptr[T any](v T) *T { return &v }
