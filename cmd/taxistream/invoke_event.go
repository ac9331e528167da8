package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/taxistream/taxistream/internal/local"
)

// localizeEvent adapts an event written for AWS (events/*.json) to the local cloud. For every object an
// S3 event record or a taxistream event (continuation, replay hand-off) names:
//   - with object != "", the file is uploaded to the object's key without an S3 notification;
//   - with rewrite, a bucket name other than the local bucket's is replaced by it, and the object's ETag
//     and size by those of the local object (IngestFunction pins its reads to the event's ETag, so a
//     sample event's ETag would never match).
//
// Every change is noted on w. Other events (Kinesis, replay requests) pass through unchanged.
func localizeEvent(ctx context.Context, cloud *local.Cloud, payload []byte, object string, rewrite bool, w io.Writer) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		if object != "" {
			return nil, fmt.Errorf("%w: --object needs an S3 or taxistream event: decoding the event: %v", errUsage, err)
		}
		return payload, nil // not an object: nothing to adapt, the function says what it thinks of it
	}
	name := cloud.Bucket.Name()
	var refs []objectRef
	if recs, ok := ev["Records"].([]any); ok {
		for i, r := range recs {
			rec, _ := r.(map[string]any)
			s3m, _ := rec["s3"].(map[string]any)
			b, _ := s3m["bucket"].(map[string]any)
			o, _ := s3m["object"].(map[string]any)
			if b == nil || o == nil {
				continue
			}
			enc, _ := o["key"].(string)
			key, err := url.QueryUnescape(enc)
			if err != nil {
				return nil, fmt.Errorf("record %d: object key %q is not form-encoded as S3 writes it: %w", i, enc, err)
			}
			refs = append(refs, objectRef{where: fmt.Sprintf("record %d", i), key: key, bucket: b, bucketField: "name", object: o, etagField: "eTag"})
		}
	} else if _, ok := ev["taxistream"]; ok {
		key, _ := ev["key"].(string)
		refs = append(refs, objectRef{where: "event", key: key, bucket: ev, bucketField: "bucket", object: ev, etagField: "etag"})
	}
	if len(refs) == 0 {
		if object != "" {
			return nil, fmt.Errorf("%w: --object: the event names no object (want an S3 event or a taxistream continuation/replay event)", errUsage)
		}
		return payload, nil
	}
	for _, r := range refs {
		if rewrite {
			if got, _ := r.bucket[r.bucketField].(string); got != name {
				r.bucket[r.bucketField] = name
				if _, ok := r.bucket["arn"]; ok {
					r.bucket["arn"] = "arn:aws:s3:::" + name
				}
				fmt.Fprintf(w, "note: %s: bucket %q rewritten to the local bucket %q\n", r.where, got, name)
			}
		}
		if object != "" {
			f, err := os.Open(object)
			if err != nil {
				return nil, err
			}
			out, err := cloud.PutObjectQuietly(ctx, r.key, f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("uploading %s to %s: %w", object, r.key, err)
			}
			fmt.Fprintf(w, "note: uploaded %s to s3://%s/%s (ETag %s), without an S3 notification\n", object, name, r.key, aws.ToString(out.ETag))
		}
		if !rewrite {
			continue
		}
		hd, err := cloud.Bucket.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(name), Key: aws.String(r.key)})
		var nf *s3types.NotFound
		if errors.As(err, &nf) {
			fmt.Fprintf(w, "note: %s: there is no object %q in the local bucket; give --object FILE to upload one\n", r.where, r.key)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("heading %s: %w", r.key, err)
		}
		etag := strings.Trim(aws.ToString(hd.ETag), `"`)
		if got, _ := r.object[r.etagField].(string); got != etag {
			r.object[r.etagField] = etag
			fmt.Fprintf(w, "note: %s: ETag %q rewritten to the local object's %q\n", r.where, got, etag)
		}
		size := aws.ToInt64(hd.ContentLength)
		if got, _ := r.object["size"].(json.Number); got.String() != fmt.Sprint(size) {
			r.object["size"] = size
		}
	}
	return json.Marshal(ev)
}

// objectRef is one object an event names, with the JSON objects holding its bucket name and ETag.
type objectRef struct {
	where, key  string
	bucket      map[string]any
	bucketField string
	object      map[string]any
	etagField   string
}
