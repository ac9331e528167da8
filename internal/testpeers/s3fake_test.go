package testpeers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
)

// httpStatus returns the HTTP status of an SDK error, 0 when it has none.
const bucket = "taxistream-test"

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func TestS3ListPaginator(t *testing.T) {
	s := StartS3(t)
	s.CreateBucket(t, bucket)
	var want []string
	for i := range 50 {
		k := fmt.Sprintf("raw/2019/f%02d.csv", i)
		s.Put(t, bucket, k, []byte("x"))
		want = append(want, k)
	}
	s.Put(t, bucket, "state/other", []byte("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	list := func(startAfter string) (keys []string, pages int) {
		p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{
			Bucket: aws.String(bucket), Prefix: aws.String("raw/"), StartAfter: aws.String(startAfter), MaxKeys: aws.Int32(7),
		})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("listing: %v", err)
			}
			pages++
			for _, o := range out.Contents {
				keys = append(keys, aws.ToString(o.Key))
			}
		}
		return keys, pages
	}
	got, pages := list("")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if pages != 8 {
		t.Errorf("got %d pages, want 8 (50 keys, 7 a page)", pages)
	}
	got, _ = list("raw/2019/f44.csv")
	if diff := cmp.Diff(want[45:], got); diff != "" {
		t.Errorf("keys after raw/2019/f44.csv (-want +got):\n%s", diff)
	}
	if n := len(s.Requests("/" + bucket)); n == 0 {
		t.Error("Requests recorded nothing")
	}
}

func TestS3RangedGet(t *testing.T) {
	s := StartS3(t)
	s.CreateBucket(t, bucket)
	s.Put(t, bucket, "raw/a b+c.csv", []byte("0123456789abcdef"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		rng, want, contentRange string
		status                  int // for errors
	}{
		{rng: "bytes=5-9", want: "56789", contentRange: "bytes 5-9/16"},
		{rng: "bytes=10-", want: "abcdef", contentRange: "bytes 10-15/16"},
		{rng: "bytes=-3", want: "def", contentRange: "bytes 13-15/16"},
		{rng: "bytes=14-100", want: "ef", contentRange: "bytes 14-15/16"},
		{rng: "bytes=0-1,4-5", status: 501},
		{rng: "bytes=20-", status: 416},
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("raw/a b+c.csv"), Range: aws.String(tt.rng)})
			if tt.status != 0 {
				if got := httpStatus(err); got != tt.status {
					t.Fatalf("GetObject Range %s: err = %v (status %d), want status %d", tt.rng, err, got, tt.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetObject Range %s: %v", tt.rng, err)
			}
			defer out.Body.Close()
			b, _ := io.ReadAll(out.Body)
			if string(b) != tt.want || aws.ToString(out.ContentRange) != tt.contentRange {
				t.Errorf("Range %s: got %q (%s), want %q (%s)", tt.rng, b, aws.ToString(out.ContentRange), tt.want, tt.contentRange)
			}
		})
	}
	var ranged int
	for _, r := range s.Requests("/" + bucket + "/raw/a b+c.csv") {
		if r.Method == "GET" && r.Header.Get("Range") != "" {
			ranged++
		}
	}
	if ranged != len(tests) {
		t.Errorf("recorded %d ranged GETs, want %d", ranged, len(tests))
	}
}

func TestS3ConditionalWrites(t *testing.T) {
	s := StartS3(t)
	s.CreateBucket(t, bucket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	put := func(key, body string, in func(*s3.PutObjectInput)) (string, error) {
		p := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
		in(p)
		out, err := s.Client.PutObject(ctx, p)
		if err != nil {
			return "", err
		}
		return aws.ToString(out.ETag), nil
	}
	ifNoneMatch := func(p *s3.PutObjectInput) { p.IfNoneMatch = aws.String("*") }
	ifMatch := func(etag string) func(*s3.PutObjectInput) {
		return func(p *s3.PutObjectInput) { p.IfMatch = aws.String(etag) }
	}

	etag1, err := put("state/m.json", "v1", ifNoneMatch)
	if err != nil {
		t.Fatalf("If-None-Match: * on a new key: %v", err)
	}
	if _, err := put("state/m.json", "v2", ifNoneMatch); httpStatus(err) != 412 {
		t.Errorf("If-None-Match: * on an existing key: err = %v, want 412", err)
	}
	if _, err := put("state/m.json", "v2", ifMatch(`"0123"`)); httpStatus(err) != 412 {
		t.Errorf("If-Match with a stale ETag: err = %v, want 412", err)
	}
	if _, err := put("state/missing.json", "v2", ifMatch(etag1)); httpStatus(err) != 412 {
		t.Errorf("If-Match on a missing key: err = %v, want 412", err)
	}
	etag2, err := put("state/m.json", "v2", ifMatch(etag1))
	if err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
	if got := string(s.Get(t, bucket, "state/m.json")); got != "v2" {
		t.Errorf("body = %q, want v2", got)
	}

	t.Run("one of concurrent If-None-Match writers wins", func(t *testing.T) {
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { _, errs[i] = put("state/race.json", fmt.Sprint(i), ifNoneMatch) })
		}
		wg.Wait()
		var won, lost int
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case httpStatus(err) == 412:
				lost++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if won != 1 || lost != n-1 {
			t.Errorf("won %d, lost %d; want 1 and %d", won, lost, n-1)
		}
	})

	// What gofakes3 v1.2.0 does NOT check (real S3 answers 412 to each): these pin the gap, so an
	// upgrade that closes it shows up here.
	t.Run("unsupported conditions are ignored", func(t *testing.T) {
		out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("state/m.json"), IfMatch: aws.String(`"0123"`)})
		if err != nil {
			t.Errorf("GetObject If-Match stale: %v; gofakes3 v1.2.0 ignores it (has it learned it? update s3fake.go)", err)
		} else {
			out.Body.Close()
		}
		_, err = s.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("state/m.json"), IfMatch: aws.String(`"0123"`)})
		if err != nil {
			t.Errorf("DeleteObject If-Match stale: %v; gofakes3 v1.2.0 ignores it (has it learned it? update s3fake.go)", err)
		}
	})

	// If-None-Match on GET is supported: 304 for the current ETag.
	_, err = s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("state/race.json"), IfNoneMatch: aws.String(etag2)})
	if err != nil {
		t.Errorf("GetObject If-None-Match with another ETag: %v", err)
	}
}
