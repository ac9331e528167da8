package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/convert"
)

// rejectPartBytes caps the rejected rows buffered in memory: a part is written when it is reached,
// otherwise at the next checkpoint.
const rejectPartBytes = 1 << 20

// RejectedRow is one line of a rejected/ part.
type RejectedRow struct {
	Line   int64  `json:"line"`
	Row    int64  `json:"row"`
	Column int    `json:"column"`
	Field  string `json:"field,omitempty"`
	Offset int64  `json:"offset"`
	Reason string `json:"reason"` // stable code: the converter's, or "producer:" + the producer's reason
	Detail string `json:"detail"`
	Raw    string `json:"raw"` // empty for rows the producer refused (the record is not kept)
}

// rejectWriter buffers rejected rows as JSON lines and writes them as numbered parts.
type rejectWriter struct {
	h    *Handler
	o    objectRef
	buf  bytes.Buffer
	next int // next part number
}

func (w *rejectWriter) addRowError(e *convert.RowError) {
	w.add(RejectedRow{Line: e.Line, Row: e.Row, Column: e.Column, Field: e.Field, Offset: e.Offset,
		Reason: e.Code, Detail: e.Detail, Raw: e.Raw})
}

func (w *rejectWriter) add(r RejectedRow) {
	b, err := json.Marshal(r)
	if err != nil { // only strings and numbers: cannot happen
		b = []byte(fmt.Sprintf(`{"line":%d,"row":%d,"reason":"unencodable"}`, r.Line, r.Row))
	}
	w.buf.Write(b)
	w.buf.WriteByte('\n')
}

func (w *rejectWriter) full() bool { return w.buf.Len() >= rejectPartBytes }

// flush writes the buffered rows as the next part (nothing when the buffer is empty).
func (w *rejectWriter) flush(ctx context.Context) error {
	if w.buf.Len() == 0 {
		return nil
	}
	key := RejectedKey(w.o.Key, w.o.version(), w.o.ReplayID, w.next)
	_, err := w.h.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(w.h.cfg.Bucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(w.buf.Bytes()),
		ContentType: aws.String("application/x-ndjson"),
	})
	if err != nil {
		return fmt.Errorf("putting rejected rows s3://%s/%s: %w", w.h.cfg.Bucket, key, err)
	}
	w.next++
	w.buf.Reset()
	return nil
}
