package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/google/uuid"

	"github.com/taxistream/taxistream/internal/local/stream"
)

// streamAPI is the part of the Kinesis API the server serves, with *kinesis.Client's signatures: every
// request is one call of the local stream, so its limits and errors are the ones clients see.
type streamAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	DescribeStream(ctx context.Context, in *kinesis.DescribeStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	PutRecord(ctx context.Context, in *kinesis.PutRecordInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

var _ streamAPI = (*kinesis.Client)(nil)

// localStream is the local stream: the API plus its name (for ListStreams).
type localStream interface {
	streamAPI
	Name() string
	ARN() string
}

var _ localStream = (*stream.Stream)(nil)

const (
	// kinesisTargetPrefix is the X-Amz-Target prefix of Kinesis Data Streams' JSON 1.1 protocol.
	kinesisTargetPrefix = "Kinesis_20131202."
	// maxKinesisBody bounds a request body: a PutRecords of 5 MiB is about 6.7 MiB of base64 in JSON.
	maxKinesisBody  = 12 << 20
	jsonContentType = "application/x-amz-json-1.1"
)

// kinesisOp decodes one operation's input, calls the stream and returns the output to encode.
type kinesisOp func(ctx context.Context, st localStream, body []byte) (any, error)

// kinesisOps are the operations served, by X-Amz-Target operation name.
var kinesisOps = map[string]kinesisOp{
	"ListStreams":           listStreams,
	"ListShards":            call(localStream.ListShards, nil),
	"DescribeStreamSummary": call(localStream.DescribeStreamSummary, nil),
	"DescribeStream":        call(localStream.DescribeStream, nil),
	"GetShardIterator": call(localStream.GetShardIterator, func(in *kinesis.GetShardIteratorInput) error {
		if in.ShardId == nil {
			return required("shardId")
		}
		if in.ShardIteratorType == "" {
			return required("shardIteratorType")
		}
		return nil
	}),
	"GetRecords": call(localStream.GetRecords, func(in *kinesis.GetRecordsInput) error {
		if in.ShardIterator == nil {
			return required("shardIterator")
		}
		return nil
	}),
	"PutRecord": call(localStream.PutRecord, func(in *kinesis.PutRecordInput) error {
		if in.Data == nil {
			return required("data")
		}
		if in.PartitionKey == nil {
			return required("partitionKey")
		}
		return nil
	}),
	"PutRecords": call(localStream.PutRecords, func(in *kinesis.PutRecordsInput) error {
		if in.Records == nil {
			return required("records")
		}
		for i, r := range in.Records {
			if r.Data == nil {
				return required(fmt.Sprintf("records.%d.member.data", i+1))
			}
		}
		return nil
	}),
}

// call builds an operation from a stream method (a method expression of localStream) and a check of
// the input's required members.
func call[In, Out any](method func(localStream, context.Context, *In, ...func(*kinesis.Options)) (*Out, error), check func(*In) error) kinesisOp {
	return func(ctx context.Context, st localStream, body []byte) (any, error) {
		in := new(In)
		if err := decodeJSON(body, in); err != nil {
			return nil, err
		}
		if check != nil {
			if err := check(in); err != nil {
				return nil, err
			}
		}
		return method(st, ctx, in)
	}
}

func required(member string) error {
	return &types.ValidationException{Message: aws.String(fmt.Sprintf("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", member))}
}

// listStreams lists the one stream (ListStreams is not part of *stream.Stream: it has only itself).
func listStreams(ctx context.Context, st localStream, body []byte) (any, error) {
	var in kinesis.ListStreamsInput
	if err := decodeJSON(body, &in); err != nil {
		return nil, err
	}
	if in.Limit != nil && (*in.Limit < 1 || *in.Limit > 10000) {
		return nil, &types.ValidationException{Message: aws.String(fmt.Sprintf("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 10000", *in.Limit))}
	}
	sum, err := st.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(st.Name())})
	if err != nil {
		return nil, err
	}
	out := &kinesis.ListStreamsOutput{StreamNames: []string{}, StreamSummaries: []types.StreamSummary{}, HasMoreStreams: aws.Bool(false)}
	if start := aws.ToString(in.ExclusiveStartStreamName); start == "" || start < st.Name() {
		d := sum.StreamDescriptionSummary
		out.StreamNames = append(out.StreamNames, st.Name())
		out.StreamSummaries = append(out.StreamSummaries, types.StreamSummary{
			StreamName: d.StreamName, StreamARN: d.StreamARN, StreamStatus: d.StreamStatus,
			StreamModeDetails: d.StreamModeDetails, StreamCreationTimestamp: d.StreamCreationTimestamp,
		})
	}
	return out, nil
}

// serveKinesis handles a Kinesis JSON 1.1 request.
func (s *Server) serveKinesis(w http.ResponseWriter, r *http.Request, target string, cred credential, authErr *authError) {
	if authErr == nil && cred.v2 {
		authErr = &authError{authUnsupported, "Kinesis requires Signature Version 4 (AWS4-HMAC-SHA256)"}
	}
	if authErr != nil {
		code := "IncompleteSignatureException"
		switch authErr.kind {
		case authMissing:
			code, authErr.msg = "MissingAuthenticationTokenException", "Missing Authentication Token"
		case authSkewed, authExpired:
			code = "InvalidSignatureException"
		}
		writeKinesisError(w, http.StatusBadRequest, code, authErr.msg)
		return
	}
	if r.Method != http.MethodPost {
		writeKinesisError(w, http.StatusBadRequest, "UnknownOperationException", "Kinesis operations are POST requests")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); strings.Contains(mt, "cbor") {
		writeKinesisError(w, http.StatusBadRequest, "SerializationException",
			"taxistream's local Kinesis speaks JSON 1.1 only, not CBOR: turn CBOR off in the client (Java SDK and KCL: AWS_CBOR_DISABLE=true or -Dcom.amazonaws.sdk.disableCbor)")
		return
	}
	opName, ok := strings.CutPrefix(target, kinesisTargetPrefix)
	op := kinesisOps[opName]
	if !ok || op == nil {
		writeKinesisError(w, http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf(
			"operation %q is not served by taxistream's local Kinesis (it serves %s to the stream of template.yaml)", target, strings.Join(servedOps(), ", ")))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxKinesisBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeKinesisError(w, http.StatusRequestEntityTooLarge, "InvalidArgumentException", fmt.Sprintf("request body over %d bytes", maxKinesisBody))
			return
		}
		writeKinesisError(w, http.StatusBadRequest, "SerializationException", "reading the request body: "+err.Error())
		return
	}
	out, err := op(r.Context(), s.stream, body)
	if err != nil {
		s.kinesisError(w, r, opName, err)
		return
	}
	enc, err := marshalAWSJSON(out)
	if err != nil {
		s.kinesisError(w, r, opName, err)
		return
	}
	setKinesisHeaders(w)
	w.WriteHeader(http.StatusOK)
	w.Write(enc)
}

func servedOps() []string {
	ops := make([]string, 0, len(kinesisOps))
	for k := range kinesisOps {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	return ops
}

func setKinesisHeaders(w http.ResponseWriter) {
	id := uuid.NewString()
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("x-amzn-RequestId", id)
	w.Header().Set("x-amz-id-2", requestID())
}

// kinesisError writes the stream's error as Kinesis does: 400 for client faults, 500 for
// InternalFailure, 503 for ServiceUnavailable, with {"__type": code, "message": text}.
func (s *Server) kinesisError(w http.ResponseWriter, r *http.Request, op string, err error) {
	var se *serializationError
	var te *stream.TimeoutError
	var ae smithy.APIError
	switch {
	case errors.As(err, &se):
		writeKinesisError(w, http.StatusBadRequest, "SerializationException", se.Error())
	case errors.As(err, &te):
		// The stream stored the records and "lost" the response: the client sees a server error and
		// retries, as after a timeout (so it may write the records twice, as on AWS).
		writeKinesisError(w, http.StatusInternalServerError, "InternalFailure", "the request was processed but its response was lost (injected store-then-fail fault)")
	case errors.As(err, &ae):
		status := http.StatusBadRequest
		if ae.ErrorFault() == smithy.FaultServer {
			status = http.StatusInternalServerError
			if ae.ErrorCode() == "ServiceUnavailable" {
				status = http.StatusServiceUnavailable
			}
		}
		writeKinesisError(w, status, ae.ErrorCode(), ae.ErrorMessage())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeKinesisError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the request was cancelled")
	default:
		s.log.ErrorContext(r.Context(), "kinesis request failed", "op", op, "error", err)
		writeKinesisError(w, http.StatusInternalServerError, "InternalFailure", err.Error())
	}
}

func writeKinesisError(w http.ResponseWriter, status int, code, msg string) {
	setKinesisHeaders(w)
	w.Header().Set("x-amzn-ErrorType", code)
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	w.Write(b)
}
