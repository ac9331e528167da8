package bucket

import (
	"encoding/hex"
	"net/http"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/uuid"
)

// Error codes of the S3 errors that the SDK does not model as types (it returns them as
// *smithy.GenericAPIError with this ErrorCode()).
const (
	CodePreconditionFailed         = "PreconditionFailed"         // 412 on a failed If-Match / If-None-Match
	CodeConditionalRequestConflict = "ConditionalRequestConflict" // 409; never returned here (writes are serialised)
	CodeNotModified                = "NotModified"                // 304 on GET with a matching If-None-Match
	CodeInvalidRange               = "InvalidRange"               // 416
	CodeNotImplemented             = "NotImplemented"             // 501, e.g. If-None-Match other than "*" on PUT
	CodeBadDigest                  = "BadDigest"                  // 400, Content-MD5 mismatch
	CodeInvalidArgument            = "InvalidArgument"            // 400
	CodeKeyTooLong                 = "KeyTooLongError"            // 400
)

// apiError wraps err the way the SDK returns a service error, so callers classify it with errors.As
// into *types.NoSuchKey, smithy.APIError (ErrorCode()) or interface{ HTTPStatusCode() int }:
//
//	*smithy.OperationError{ServiceID: "S3"} → *awshttp.ResponseError (status, request id) → err
func apiError(op string, status int, err error) error {
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: op,
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
				Err:      err,
			},
			RequestID: requestID(),
		},
	}
}

func generic(code, msg string) *smithy.GenericAPIError {
	return &smithy.GenericAPIError{Code: code, Message: msg, Fault: smithy.FaultClient}
}

func noSuchKey(op string) error {
	return apiError(op, http.StatusNotFound, &types.NoSuchKey{Message: ptr("The specified key does not exist.")})
}

func noSuchBucket(op, name string) error {
	return apiError(op, http.StatusNotFound, &types.NoSuchBucket{Message: ptr("The specified bucket does not exist: " + name)})
}

func preconditionFailed(op string) error {
	return apiError(op, http.StatusPreconditionFailed,
		generic(CodePreconditionFailed, "At least one of the pre-conditions you specified did not hold"))
}

func invalidKey(op string, err error) error {
	code := CodeInvalidArgument
	if strings.Contains(err.Error(), "longer than") {
		code = CodeKeyTooLong
	}
	return apiError(op, http.StatusBadRequest, &invalidKeyError{generic(code, err.Error()), err})
}

// invalidKeyError is an InvalidArgument API error that also unwraps to ErrInvalidKey.
type invalidKeyError struct {
	*smithy.GenericAPIError
	cause error
}

func (e *invalidKeyError) Unwrap() error { return e.cause }

// requestID looks like S3's x-amz-request-id: 16 upper-case hex digits (of a random UUID).
func requestID() string {
	id := uuid.New()
	return strings.ToUpper(hex.EncodeToString(id[:8]))
}

func ptr[T any](v T) *T { return &v }
