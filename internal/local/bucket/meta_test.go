package bucket

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
)

// testNoXattr makes the tests' buckets keep metadata in sidecar files (Options.NoXattr).
var testNoXattr bool

// TestMain runs every test of the package twice: with metadata in extended attributes (where the file
// system takes them) and with sidecar files, the two ways a bucket keeps it.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		fmt.Println("bucket: the tests again, with metadata in sidecar files (Options.NoXattr)")
		testNoXattr = true
		code = m.Run()
	}
	os.Exit(code)
}

func openBucket(dir string) (*Bucket, error) {
	return OpenWithOptions(dir, testBucket, Options{NoXattr: testNoXattr})
}

// TestMetadataInAttribute: where the file system takes extended attributes (Linux: the test's temp
// folder), a put leaves no sidecar file and no folder under .meta/, the object's own file carries the
// metadata, and it survives a reopen; with NoXattr the sidecar files hold it.
func TestMetadataInAttribute(t *testing.T) {
	b, dir := newBucket(t)
	if !testNoXattr && !b.xattr {
		if runtime.GOOS == "linux" {
			t.Fatalf("the file system of %s takes no extended attributes", dir)
		}
		t.Skipf("extended attributes are used on Linux only (GOOS %s)", runtime.GOOS)
	}
	ctx := context.Background()
	_, err := b.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(testBucket), Key: aws.String("processed/trips/pickup_date=2019-01-01/x.parquet"),
		Body: strings.NewReader("PAR1"), ContentType: aws.String("application/vnd.apache.parquet"),
		Metadata: map[string]string{"Run": "7"},
	})
	if err != nil {
		t.Fatal(err)
	}
	sidecars := filesUnder(t, filepath.Join(dir, metaDir))
	if testNoXattr {
		if d := cmp.Diff([]string{"processed/trips/pickup_date=2019-01-01/x.parquet.json"}, sidecars); d != "" {
			t.Errorf("sidecar files (-want +got):\n%s", d)
		}
	} else {
		if len(sidecars) != 0 {
			t.Errorf("sidecar files with metadata in attributes: %v", sidecars)
		}
		if entries, _ := os.ReadDir(filepath.Join(dir, metaDir)); len(entries) != 0 {
			t.Errorf("folders under .meta/: %v", entries)
		}
		f, err := os.Open(filepath.Join(dir, "processed/trips/pickup_date=2019-01-01/x.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		data, err := getXattr(f)
		f.Close()
		if err != nil || !strings.Contains(string(data), `"content_type":"application/vnd.apache.parquet"`) {
			t.Errorf("attribute %s = %s, %v", metaXattr, data, err)
		}
	}
	b.Close()
	b2, err := openBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	out, err := b2.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String("processed/trips/pickup_date=2019-01-01/x.parquet")})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.ContentType); got != "application/vnd.apache.parquet" || out.Metadata["run"] != "7" {
		t.Errorf("after reopening: ContentType %q, Metadata %v", got, out.Metadata)
	}
}

// TestReadsSidecarsWrittenBefore: a folder written with sidecar files (by an earlier version, or
// where attributes are not taken) keeps its metadata when opened by a bucket that uses attributes,
// and a new version of an object then carries its own.
func TestReadsSidecarsWrittenBefore(t *testing.T) {
	if testNoXattr {
		t.Skip("the attribute side of the pair: runs in the first pass")
	}
	dir := filepath.Join(t.TempDir(), "bucket")
	old, err := OpenWithOptions(dir, testBucket, Options{NoXattr: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "state/m.json"
	if _, err := old.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: strings.NewReader("{}"),
		ContentType: aws.String("application/json"), Metadata: map[string]string{"Owner": "a"}}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	b, err := Open(dir, testBucket)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	head := func() *s3.HeadObjectOutput {
		t.Helper()
		out, err := b.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := head(); aws.ToString(out.ContentType) != "application/json" || out.Metadata["owner"] != "a" {
		t.Errorf("sidecar written before: ContentType %q, Metadata %v", aws.ToString(out.ContentType), out.Metadata)
	}
	if _, err := b.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: strings.NewReader(`{"v":2}`),
		ContentType: aws.String("text/plain"), Metadata: map[string]string{"Owner": "b"}}); err != nil {
		t.Fatal(err)
	}
	b.metas = map[string]meta{} // read from disk, not from memory
	if out := head(); aws.ToString(out.ContentType) != "text/plain" || out.Metadata["owner"] != "b" || aws.ToInt64(out.ContentLength) != 7 {
		t.Errorf("new version: ContentType %q, Metadata %v, size %d", aws.ToString(out.ContentType), out.Metadata, aws.ToInt64(out.ContentLength))
	}
}
