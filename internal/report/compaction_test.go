package report

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/taxistream/taxistream/internal/local"
)

// TestCompactionFromTheSummary: a local run that compacted shows the files and bytes of
// processed/trips/ before and after on the page; a summary without compaction shows none.
func TestCompactionFromTheSummary(t *testing.T) {
	sum := local.Summary{Compaction: &local.CompactionSummary{FilesBefore: 1200, FilesAfter: 123, BytesBefore: 21_000_000, BytesAfter: 6_500_000}}
	b, _ := fixture(t)
	r, err := Build(context.Background(), Input{Bucket: b, BucketName: "stack-bucket", Location: "run", Summary: &sum})
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Outputs.Compaction; c == nil || c.FilesBefore != 1200 || c.FilesAfter != 123 || c.BytesAfter != 6_500_000 {
		t.Fatalf("compaction %+v", r.Outputs.Compaction)
	}
	var page bytes.Buffer
	if err := r.Render(&page); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), "Compaction: 1,200 → 123 files") {
		t.Errorf("the page does not show the compaction:\n%s", page.String())
	}
	r, err = Build(context.Background(), Input{Bucket: b, BucketName: "stack-bucket", Location: "run", Summary: &local.Summary{}})
	if err != nil {
		t.Fatal(err)
	}
	page.Reset()
	if err := r.Render(&page); err != nil {
		t.Fatal(err)
	}
	if r.Outputs.Compaction != nil || !strings.Contains(page.String(), `data-note="compaction"`) {
		t.Error("a run without compaction shows one")
	}
}
