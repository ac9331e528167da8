package bucket

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
)

const testBucket = "local-bucket"

// objectAPI is the part of *s3.Client the bucket stands in for.
type objectAPI interface {
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	CopyObject(context.Context, *s3.CopyObjectInput, ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
}

var (
	_ objectAPI = (*s3.Client)(nil)
	_ objectAPI = (*Bucket)(nil)
	// The paginator accepts the bucket, so callers can list with it.
	_ s3.ListObjectsV2APIClient = (*Bucket)(nil)
)

func newBucket(t *testing.T) (*Bucket, string) {
	t.Helper()
	parent := t.TempDir()
	dir := filepath.Join(parent, "bucket")
	b, err := openBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, dir
}

func put(t *testing.T, b *Bucket, key, body string) *s3.PutObjectOutput {
	t.Helper()
	out, err := b.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("PutObject(%q): %v", key, err)
	}
	return out
}

func get(t *testing.T, b *Bucket, key string) string {
	t.Helper()
	out, err := b.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject(%q): %v", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func listAll(t *testing.T, b *Bucket, in *s3.ListObjectsV2Input) (keys, prefixes []string, pages int) {
	t.Helper()
	in.Bucket = aws.String(testBucket)
	p := s3.NewListObjectsV2Paginator(b, in)
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if got, want := int(aws.ToInt32(out.KeyCount)), len(out.Contents)+len(out.CommonPrefixes); got != want {
			t.Errorf("KeyCount = %d, want %d", got, want)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		for _, cp := range out.CommonPrefixes {
			prefixes = append(prefixes, aws.ToString(cp.Prefix))
		}
	}
	return keys, prefixes, pages
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// filesUnder lists every regular file under dir, relative and slash-separated.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestRefusesKeysThatEscapeTheFolder(t *testing.T) {
	b, dir := newBucket(t)
	parent := filepath.Dir(dir)
	for name, key := range map[string]string{
		"empty":          "",
		"dot dot":        "../x",
		"nested dot dot": "raw/../../etc/passwd",
		"trailing dots":  "raw/..",
		"dot segment":    "raw/./x.csv",
		"absolute":       "/etc/passwd",
		"NUL":            "raw/a\x00b.csv",
		"too long":       strings.Repeat("k", MaxKeyLength+1),
		"invalid UTF-8":  "raw/\xff.csv",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := b.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: strings.NewReader("x")})
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("PutObject(%q) error = %v, want ErrInvalidKey", key, err)
			}
			if code := apiCode(err); code != CodeInvalidArgument && code != CodeKeyTooLong {
				t.Errorf("error code = %q, want an S3 400 code", code)
			}
			if got := httpStatus(err); got != 400 {
				t.Errorf("HTTP status = %d, want 400", got)
			}
			_, err = b.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("GetObject(%q) error = %v, want ErrInvalidKey", key, err)
			}
		})
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("files outside the bucket folder: %v", entries)
	}
	if got := filesUnder(t, dir); len(got) != 0 {
		t.Errorf("files written for refused keys: %v", got)
	}
}

func TestEncodedTricksStayInside(t *testing.T) {
	b, dir := newBucket(t)
	keys := []string{
		"raw/%2e%2e/%2e%2e/etc/passwd",
		`raw/..\..\x.csv`,
		"raw/..%2F..%2Fx.csv",
		".meta/raw/x.csv.json",
		".tmp/x",
		"..%00",
		"...",
	}
	for _, k := range keys {
		put(t, b, k, "body of "+k)
	}
	for _, k := range keys {
		if got := get(t, b, k); got != "body of "+k {
			t.Errorf("GetObject(%q) = %q", k, got)
		}
	}
	got, _, _ := listAll(t, b, &s3.ListObjectsV2Input{})
	want := append([]string(nil), keys...)
	sort.Strings(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("listed keys (-want +got):\n%s", d)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("files outside the bucket folder: %v", entries)
	}
	for _, f := range filesUnder(t, dir) {
		if strings.HasPrefix(f, ".meta/") || strings.HasPrefix(f, ".tmp/") {
			if !strings.HasSuffix(f, ".json") {
				t.Errorf("object data inside the bucket's own folders: %s", f)
			}
		}
	}
}

func TestKeysRoundTrip(t *testing.T) {
	b, dir := newBucket(t)
	keys := []string{
		"raw/a b+c.csv",
		"raw/ünïcødé/日本語 データ.csv",
		"raw/year=2024/month=01/x;y,z@&$'().csv",
		"raw/100%.csv",
		"raw/.hidden",
		`raw/x:y*?"<>|.csv`,
		"raw/",
		"a//b",
		"raw/tab\tnewline\n.csv",
	}
	for _, k := range keys {
		put(t, b, k, k)
	}
	for _, k := range keys {
		if got := get(t, b, k); got != k {
			t.Errorf("GetObject(%q) = %q", k, got)
		}
	}
	got, _, _ := listAll(t, b, &s3.ListObjectsV2Input{})
	want := append([]string(nil), keys...)
	sort.Strings(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("listed keys (-want +got):\n%s", d)
	}
	// A plain key is the same file a user sees on disk.
	if data, err := os.ReadFile(filepath.Join(dir, "raw", "a b+c.csv")); err != nil || string(data) != "raw/a b+c.csv" {
		t.Errorf("raw/a b+c.csv on disk = %q, %v", data, err)
	}
}

func TestSymlinksAreNotFollowedOut(t *testing.T) {
	b, dir := newBucket(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "raw"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "raw", "evil")); err != nil {
		t.Skip("symlinks not supported here:", err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "raw", "link.csv")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"raw/evil/secret", "raw/link.csv"} {
		out, err := b.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(k)})
		if err == nil {
			data, _ := io.ReadAll(out.Body)
			t.Errorf("GetObject(%q) = %q, want an error", k, data)
		}
	}
	// Writing through the symlinked folder must not land outside either.
	b.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String("raw/evil/new"), Body: strings.NewReader("x")})
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Error("PutObject wrote through a symlink out of the bucket folder")
	}
	keys, _, _ := listAll(t, b, &s3.ListObjectsV2Input{})
	for _, k := range keys {
		if strings.HasPrefix(k, "raw/evil") || k == "raw/link.csv" {
			t.Errorf("listed symlinked key %q", k)
		}
	}
}

func TestRangedGet(t *testing.T) {
	b, _ := newBucket(t)
	const body = "0123456789abcdefghij" // 20 bytes
	put(t, b, "raw/r.csv", body)
	tests := []struct {
		rng          string
		want         string
		contentRange string // "" when the whole object is returned
	}{
		{"bytes=0-4", "01234", "bytes 0-4/20"},
		{"bytes=5-5", "5", "bytes 5-5/20"},
		{"bytes=15-100", "fghij", "bytes 15-19/20"},
		{"bytes=10-", "abcdefghij", "bytes 10-19/20"},
		{"bytes=19-", "j", "bytes 19-19/20"},
		{"bytes=-3", "hij", "bytes 17-19/20"},
		{"bytes=-50", body, "bytes 0-19/20"},
		{"bytes=5-2", body, ""},     // invalid: ignored
		{"bytes=0-1,4-5", body, ""}, // multiple ranges: ignored
		{"items=0-1", body, ""},     // not bytes: ignored
		{"bytes=abc-def", body, ""}, // malformed: ignored
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			out, err := b.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String("raw/r.csv"), Range: aws.String(tt.rng)})
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if string(data) != tt.want {
				t.Errorf("body = %q, want %q", data, tt.want)
			}
			if got := aws.ToInt64(out.ContentLength); got != int64(len(tt.want)) {
				t.Errorf("ContentLength = %d, want %d", got, len(tt.want))
			}
			if got := aws.ToString(out.ContentRange); got != tt.contentRange {
				t.Errorf("ContentRange = %q, want %q", got, tt.contentRange)
			}
		})
	}
	for _, rng := range []string{"bytes=20-", "bytes=25-30", "bytes=-0"} {
		_, err := b.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String("raw/r.csv"), Range: aws.String(rng)})
		if apiCode(err) != CodeInvalidRange || httpStatus(err) != 416 {
			t.Errorf("Range %s: error = %v, want 416 InvalidRange", rng, err)
		}
	}
}

func TestETagIsQuotedMD5(t *testing.T) {
	b, dir := newBucket(t)
	body := strings.Repeat("taxi,trip\n", 1000)
	sum := md5.Sum([]byte(body))
	want := `"` + hex.EncodeToString(sum[:]) + `"`
	if got := aws.ToString(put(t, b, "raw/e.csv", body).ETag); got != want {
		t.Errorf("PutObject ETag = %s, want %s", got, want)
	}
	head, err := b.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String("raw/e.csv")})
	if err != nil || aws.ToString(head.ETag) != want || aws.ToInt64(head.ContentLength) != int64(len(body)) {
		t.Errorf("HeadObject = %v %v, %v", aws.ToString(head.ETag), aws.ToInt64(head.ContentLength), err)
	}
	// A file dropped in by hand gets the same ETag.
	if err := os.WriteFile(filepath.Join(dir, "raw", "dropped.csv"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := b.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: aws.String("raw/d")})
	if err != nil || len(out.Contents) != 1 || aws.ToString(out.Contents[0].ETag) != want || aws.ToInt64(out.Contents[0].Size) != int64(len(body)) {
		t.Fatalf("listing a dropped file = %+v, %v", out, err)
	}
	// Overwriting the file by hand is a new version with a new ETag.
	if err := os.WriteFile(filepath.Join(dir, "raw", "dropped.csv"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum2 := md5.Sum([]byte("changed"))
	head, err = b.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String("raw/dropped.csv")})
	if err != nil || aws.ToString(head.ETag) != `"`+hex.EncodeToString(sum2[:])+`"` {
		t.Errorf("ETag after overwrite = %v, %v", aws.ToString(head.ETag), err)
	}
}

func TestMetadataSurvivesReopen(t *testing.T) {
	b, dir := newBucket(t)
	_, err := b.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(testBucket), Key: aws.String("state/m.json"), Body: strings.NewReader("{}"),
		ContentType: aws.String("application/json"), Metadata: map[string]string{"Owner": "ingest-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	b2, err := openBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	out, err := b2.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String("state/m.json")})
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if d := cmp.Diff(map[string]string{"owner": "ingest-1"}, out.Metadata); d != "" {
		t.Errorf("Metadata (-want +got):\n%s", d)
	}
	if got := aws.ToString(out.ContentType); got != "application/json" {
		t.Errorf("ContentType = %q", got)
	}
	if out.VersionId != nil {
		t.Errorf("VersionId = %q, want nil (unversioned)", *out.VersionId)
	}
	if out.LastModified == nil || out.LastModified.IsZero() {
		t.Error("LastModified not set")
	}
}

func TestConditionalWrites(t *testing.T) {
	ctx := context.Background()
	b, _ := newBucket(t)
	putIf := func(key, body string, ifMatch, ifNoneMatch *string) (*s3.PutObjectOutput, error) {
		return b.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: strings.NewReader(body), IfMatch: ifMatch, IfNoneMatch: ifNoneMatch})
	}
	first, err := putIf("state/lock", "one", nil, aws.String("*"))
	if err != nil {
		t.Fatalf("first If-None-Match * = %v", err)
	}
	_, err = putIf("state/lock", "two", nil, aws.String("*"))
	if apiCode(err) != CodePreconditionFailed || httpStatus(err) != 412 {
		t.Fatalf("second If-None-Match * = %v, want 412 PreconditionFailed", err)
	}
	if got := get(t, b, "state/lock"); got != "one" {
		t.Errorf("object after refused write = %q, want one", got)
	}
	second, err := putIf("state/lock", "two", first.ETag, nil)
	if err != nil {
		t.Fatalf("If-Match current ETag = %v", err)
	}
	_, err = putIf("state/lock", "three", first.ETag, nil)
	if apiCode(err) != CodePreconditionFailed || httpStatus(err) != 412 {
		t.Fatalf("If-Match stale ETag = %v, want 412 PreconditionFailed", err)
	}
	// An unquoted ETag matches too.
	if _, err := putIf("state/lock", "three", aws.String(strings.Trim(*second.ETag, `"`)), nil); err != nil {
		t.Errorf("If-Match unquoted ETag = %v", err)
	}
	_, err = putIf("state/missing", "x", aws.String(`"abc"`), nil)
	var nsk *types.NoSuchKey
	if !errors.As(err, &nsk) || httpStatus(err) != 404 {
		t.Errorf("If-Match on a missing key = %v, want 404 NoSuchKey", err)
	}
	_, err = putIf("state/other", "x", nil, aws.String(`"abc"`))
	if apiCode(err) != CodeNotImplemented {
		t.Errorf("If-None-Match with an ETag = %v, want NotImplemented", err)
	}
	for _, f := range filesUnder(t, b.Dir()) {
		if strings.HasPrefix(path.Base(f), tmpPrefix) {
			t.Errorf("temporary file left behind: %s", f)
		}
	}
	// GET conditions.
	_, err = b.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String("state/lock"), IfMatch: first.ETag})
	if apiCode(err) != CodePreconditionFailed {
		t.Errorf("GET If-Match stale = %v, want PreconditionFailed", err)
	}
}

func TestConcurrentIfNoneMatchHasOneWinner(t *testing.T) {
	b, _ := newBucket(t)
	const n = 20
	var wg, ready sync.WaitGroup
	ready.Add(n)
	start := make(chan struct{})
	go func() { ready.Wait(); close(start) }()
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every body ends only when all writers have sent theirs, so the 20 commits race.
			body := io.MultiReader(strings.NewReader(fmt.Sprintf("writer %d", i)), barrier{&ready, start})
			_, errs[i] = b.PutObject(context.Background(), &s3.PutObjectInput{
				Bucket: aws.String(testBucket), Key: aws.String("state/owner"),
				Body: body, IfNoneMatch: aws.String("*"),
			})
		}()
	}
	wg.Wait()
	winners, winner := 0, -1
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			winner = i
		case apiCode(err) == CodePreconditionFailed || apiCode(err) == CodeConditionalRequestConflict:
		default:
			t.Errorf("writer %d: unexpected error %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d writers won, want exactly 1", winners)
	}
	if got := get(t, b, "state/owner"); got != fmt.Sprintf("writer %d", winner) {
		t.Errorf("object = %q, want the winner's body (writer %d)", got, winner)
	}
}

// barrier is a reader that, on its first read, reports ready and waits for start, then ends.
type barrier struct {
	ready *sync.WaitGroup
	start chan struct{}
}

func (b barrier) Read([]byte) (int, error) {
	b.ready.Done()
	<-b.start
	return 0, io.EOF
}

func TestList(t *testing.T) {
	b, _ := newBucket(t)
	keys := []string{
		"raw/2024/01/a.csv", "raw/2024/01/b.csv", "raw/2024/02/a.csv", "raw/2025/x.csv",
		"raw/top.csv", "raw/Z.csv", "raw/é.csv", "raw/~.csv", "raw/a.csv", "raw-other/x",
		"processed/trips/x.parquet", "raw/a", "raw/a-b",
	}
	for _, k := range keys {
		put(t, b, k, k)
	}
	byteOrder := func(ks []string) []string {
		out := append([]string(nil), ks...)
		sort.Strings(out) // Go compares strings byte-wise, like S3
		return out
	}
	var raw []string
	for _, k := range byteOrder(keys) {
		if strings.HasPrefix(k, "raw/") {
			raw = append(raw, k)
		}
	}
	t.Run("prefix, byte order", func(t *testing.T) {
		got, _, _ := listAll(t, b, &s3.ListObjectsV2Input{Prefix: aws.String("raw/")})
		if d := cmp.Diff(raw, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
		// Upper case before lower case before non-ASCII, "raw/a" before "raw/a-b" before "raw/a.csv".
		want := []string{"raw/2024/01/a.csv", "raw/2024/01/b.csv", "raw/2024/02/a.csv", "raw/2025/x.csv", "raw/Z.csv", "raw/a", "raw/a-b", "raw/a.csv", "raw/top.csv", "raw/~.csv", "raw/é.csv"}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("explicit order (-want +got):\n%s", d)
		}
	})
	t.Run("pages of 2 with continuation", func(t *testing.T) {
		got, _, pages := listAll(t, b, &s3.ListObjectsV2Input{Prefix: aws.String("raw/"), MaxKeys: aws.Int32(2)})
		if d := cmp.Diff(raw, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
		if want := (len(raw) + 1) / 2; pages != want {
			t.Errorf("pages = %d, want %d", pages, want)
		}
	})
	t.Run("start after", func(t *testing.T) {
		got, _, _ := listAll(t, b, &s3.ListObjectsV2Input{Prefix: aws.String("raw/"), StartAfter: aws.String("raw/a")})
		if d := cmp.Diff([]string{"raw/a-b", "raw/a.csv", "raw/top.csv", "raw/~.csv", "raw/é.csv"}, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})
	t.Run("delimiter", func(t *testing.T) {
		got, prefixes, _ := listAll(t, b, &s3.ListObjectsV2Input{Prefix: aws.String("raw/"), Delimiter: aws.String("/")})
		if d := cmp.Diff([]string{"raw/Z.csv", "raw/a", "raw/a-b", "raw/a.csv", "raw/top.csv", "raw/~.csv", "raw/é.csv"}, got); d != "" {
			t.Errorf("keys (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]string{"raw/2024/", "raw/2025/"}, prefixes); d != "" {
			t.Errorf("common prefixes (-want +got):\n%s", d)
		}
	})
	t.Run("delimiter, one per page", func(t *testing.T) {
		got, prefixes, pages := listAll(t, b, &s3.ListObjectsV2Input{Prefix: aws.String("raw/2024/"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)})
		if len(got) != 0 || pages != 2 {
			t.Errorf("keys %v in %d pages, want none in 2", got, pages)
		}
		if d := cmp.Diff([]string{"raw/2024/01/", "raw/2024/02/"}, prefixes); d != "" {
			t.Errorf("common prefixes (-want +got):\n%s", d)
		}
	})
	t.Run("top level", func(t *testing.T) {
		_, prefixes, _ := listAll(t, b, &s3.ListObjectsV2Input{Delimiter: aws.String("/")})
		if d := cmp.Diff([]string{"processed/", "raw-other/", "raw/"}, prefixes); d != "" {
			t.Errorf("common prefixes (-want +got):\n%s", d)
		}
	})
	t.Run("partial segment prefix", func(t *testing.T) {
		got, _, _ := listAll(t, b, &s3.ListObjectsV2Input{Prefix: aws.String("raw/a")})
		if d := cmp.Diff([]string{"raw/a", "raw/a-b", "raw/a.csv"}, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})
	t.Run("default max keys", func(t *testing.T) {
		out, err := b.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(testBucket)})
		if err != nil || aws.ToInt32(out.MaxKeys) != 1000 || aws.ToBool(out.IsTruncated) || int(aws.ToInt32(out.KeyCount)) != len(keys) {
			t.Errorf("MaxKeys %d IsTruncated %v KeyCount %d, %v", aws.ToInt32(out.MaxKeys), aws.ToBool(out.IsTruncated), aws.ToInt32(out.KeyCount), err)
		}
	})
}

func TestErrorsAreShapedLikeTheSDKs(t *testing.T) {
	ctx := context.Background()
	b, _ := newBucket(t)
	_, err := b.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String("nope")})
	var nsk *types.NoSuchKey
	if !errors.As(err, &nsk) || apiCode(err) != "NoSuchKey" || httpStatus(err) != 404 {
		t.Errorf("GetObject missing = %v, want NoSuchKey 404", err)
	}
	var oe *smithy.OperationError
	if !errors.As(err, &oe) || oe.Service() != "S3" || oe.Operation() != "GetObject" {
		t.Errorf("GetObject missing = %v, want an OperationError", err)
	}
	_, err = b.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String("nope")})
	var nf *types.NotFound
	if !errors.As(err, &nf) || httpStatus(err) != 404 {
		t.Errorf("HeadObject missing = %v, want NotFound 404", err)
	}
	_, err = b.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("other"), Key: aws.String("x")})
	var nsb *types.NoSuchBucket
	if !errors.As(err, &nsb) {
		t.Errorf("other bucket = %v, want NoSuchBucket", err)
	}
}

func TestDeleteAndCopy(t *testing.T) {
	ctx := context.Background()
	b, dir := newBucket(t)
	var events []ObjectCreated
	b.OnCreate(func(ev ObjectCreated) { events = append(events, ev) })
	put(t, b, "raw/deep/er/x.csv", "x")
	_, err := b.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(testBucket), Key: aws.String("raw/copy of x.csv"), CopySource: aws.String(testBucket + "/raw/deep/er/x.csv")})
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, b, "raw/copy of x.csv"); got != "x" {
		t.Errorf("copy = %q", got)
	}
	for _, k := range []string{"raw/deep/er/x.csv", "raw/deep/er/x.csv", "never/existed"} {
		if _, err := b.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(testBucket), Key: aws.String(k)}); err != nil {
			t.Errorf("DeleteObject(%q) = %v", k, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "raw", "deep")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty folders left after delete: %v", err)
	}
	if len(events) != 2 || events[0].EventName != EventPut || events[1].EventName != EventCopy || events[1].Key != "raw/copy of x.csv" {
		t.Fatalf("events = %+v", events)
	}
	if !(events[0].Sequencer < events[1].Sequencer) || len(events[0].Sequencer) != len(events[1].Sequencer) {
		t.Errorf("sequencers %s, %s not increasing", events[0].Sequencer, events[1].Sequencer)
	}
}

func TestOnCreateEvent(t *testing.T) {
	now := time.Date(2024, 3, 10, 7, 30, 0, 123456789, time.UTC)
	b, err := OpenWithOptions(filepath.Join(t.TempDir(), "b"), testBucket, Options{Now: func() time.Time { return now }, NoXattr: testNoXattr})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var events []ObjectCreated
	b.OnCreate(func(ev ObjectCreated) { events = append(events, ev) })
	out := put(t, b, "raw/a b+c.csv", "hello")
	put(t, b, "raw/a b+c.csv", "hello") // same clock: the sequencer still increases
	if len(events) != 2 {
		t.Fatalf("%d events, want 2", len(events))
	}
	want := ObjectCreated{Bucket: testBucket, Key: "raw/a b+c.csv", Size: 5, ETag: aws.ToString(out.ETag), EventName: EventPut, Time: now, Sequencer: events[0].Sequencer}
	if d := cmp.Diff(want, events[0]); d != "" {
		t.Errorf("event (-want +got):\n%s", d)
	}
	if !(events[0].Sequencer < events[1].Sequencer) {
		t.Errorf("sequencers %s, %s not increasing", events[0].Sequencer, events[1].Sequencer)
	}
	// A failed conditional write fires nothing.
	b.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String("raw/a b+c.csv"), Body: bytes.NewReader(nil), IfNoneMatch: aws.String("*")})
	if len(events) != 2 {
		t.Errorf("%d events after a refused write, want 2", len(events))
	}
}

func TestScanFiresOncePerStableNewFile(t *testing.T) {
	b, dir := newBucket(t)
	var events []ObjectCreated
	b.OnCreate(func(ev ObjectCreated) { events = append(events, ev) })
	scan := func() int {
		t.Helper()
		n, err := b.Scan("raw/")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	put(t, b, "raw/api.csv", "via the API") // fired by PutObject, never by Scan
	if len(events) != 1 {
		t.Fatalf("%d events after PutObject", len(events))
	}
	events = nil
	p := filepath.Join(dir, "raw", "drop 1.csv")
	if err := os.WriteFile(p, []byte("a,b\n1,"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := scan(); n != 0 {
		t.Fatalf("first scan fired %d, want 0 (size not yet stable)", n)
	}
	// Still being written: the size changes between scans.
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("2\n")
	f.Close()
	if n := scan(); n != 0 {
		t.Fatalf("scan after growth fired %d, want 0", n)
	}
	if n := scan(); n != 1 {
		t.Fatalf("scan of a stable file fired %d, want 1", n)
	}
	if n := scan(); n != 0 {
		t.Fatalf("rescan fired %d, want 0", n)
	}
	sum := md5.Sum([]byte("a,b\n1,2\n"))
	if len(events) != 1 || events[0].Key != "raw/drop 1.csv" || events[0].Size != 8 || events[0].ETag != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Fatalf("events = %+v", events)
	}
	// Hidden files (editors, partial copies) and files outside the prefix are ignored.
	os.WriteFile(filepath.Join(dir, "raw", ".drop.csv.part"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(dir, "archive"), 0o755)
	os.WriteFile(filepath.Join(dir, "archive", "x.gz"), []byte("x"), 0o644)
	scan()
	if n := scan(); n != 0 {
		t.Errorf("hidden or out-of-prefix files fired %d", n)
	}
	// A new version of the same file fires again, once.
	os.WriteFile(p, []byte("a,b\n1,2\n3,4\n"), 0o644)
	if a, b := scan(), scan(); a+b != 1 {
		t.Errorf("new version fired %d+%d, want 1", a, b)
	}
	// A new process (reopened bucket) does not report what was reported.
	b.Close()
	b2, err := openBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	b2.OnCreate(func(ev ObjectCreated) { events = append(events, ev) })
	before := len(events)
	b2.Scan("raw/")
	b2.Scan("raw/")
	if len(events) != before {
		t.Errorf("reopened bucket re-reported %d objects", len(events)-before)
	}
}

func TestKeyThatIsAlsoAPrefix(t *testing.T) {
	ctx := context.Background()
	b, _ := newBucket(t)
	put(t, b, "state/a", "object a")
	_, err := b.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String("state/a/b")})
	var nsk *types.NoSuchKey
	if !errors.As(err, &nsk) {
		t.Errorf("GetObject under an object = %v, want NoSuchKey", err)
	}
	// S3 can hold both "state/a" and "state/a/b"; a folder on disk cannot: refused with a clear error.
	_, err = b.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String("state/a/b"), Body: strings.NewReader("x")})
	if err == nil || !strings.Contains(err.Error(), "folder on disk") {
		t.Errorf("PutObject under an object = %v, want a clear refusal", err)
	}
	put(t, b, "state/c/d", "d")
	_, err = b.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String("state/c"), Body: strings.NewReader("x")})
	if err == nil || !strings.Contains(err.Error(), "folder on disk") {
		t.Errorf("PutObject of a prefix = %v, want a clear refusal", err)
	}
	if got := get(t, b, "state/a"); got != "object a" {
		t.Errorf("state/a = %q after refused writes", got)
	}
}
