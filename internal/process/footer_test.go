package process

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// checkFooter decodes a Parquet file's footer (the thrift FileMetaData) and its page headers
// itself and checks what engines rely on: every column chunk's path_in_schema names the schema leaf
// at its position (parquet-mr, Spark and Trino look chunks up by it), its type matches that leaf, its
// encodings list every page's encoding, its page values add up to the row count, and created_by
// carries the build's version. It returns the row count.
func checkFooter(t testing.TB, name string, body []byte) int64 {
	t.Helper()
	if len(body) < 12 || string(body[:4]) != "PAR1" || string(body[len(body)-4:]) != "PAR1" {
		t.Fatalf("%s: not a Parquet file (magic bytes)", name)
	}
	n := int(binary.LittleEndian.Uint32(body[len(body)-8:]))
	if n <= 0 || n > len(body)-12 {
		t.Fatalf("%s: footer length %d out of range", name, n)
	}
	var md format.FileMetaData
	if err := thrift.Unmarshal(&thrift.CompactProtocol{}, body[len(body)-8-n:len(body)-8], &md); err != nil {
		t.Fatalf("%s: decoding the footer: %v", name, err)
	}
	if want := CreatedBy(); md.CreatedBy != want {
		t.Errorf("%s: created_by %q, want %q", name, md.CreatedBy, want)
	}
	// The schema is flat: a root, then one leaf per column.
	if len(md.Schema) < 2 || md.Schema[0].NumChildren.V != int32(len(md.Schema)-1) {
		t.Fatalf("%s: schema %d elements, root with %d children: not flat", name, len(md.Schema), md.Schema[0].NumChildren.V)
	}
	leaves := md.Schema[1:]
	var rows int64
	for g, rg := range md.RowGroups {
		rows += rg.NumRows
		if len(rg.Columns) != len(leaves) {
			t.Fatalf("%s: row group %d has %d column chunks for %d columns", name, g, len(rg.Columns), len(leaves))
		}
		for i, cc := range rg.Columns {
			leaf, cm := leaves[i], cc.MetaData
			where := fmt.Sprintf("%s: row group %d, column chunk %d (%s)", name, g, i, leaf.Name)
			if !slices.Equal([]string(cm.PathInSchema), []string{leaf.Name}) {
				t.Errorf("%s: path_in_schema %q, want [%q]", where, []string(cm.PathInSchema), leaf.Name)
			}
			if cm.Type != leaf.Type.V {
				t.Errorf("%s: type %v, want the schema's %v", where, cm.Type, leaf.Type.V)
			}
			if cm.Codec != format.Snappy {
				t.Errorf("%s: codec %v, want SNAPPY", where, cm.Codec)
			}
			if cm.NumValues != rg.NumRows {
				t.Errorf("%s: %d values for %d rows", where, cm.NumValues, rg.NumRows)
			}
			if len(cm.Encoding) == 0 {
				t.Errorf("%s: no encodings listed", where)
			}
			checkPages(t, where, body, cm)
		}
	}
	if rows != md.NumRows {
		t.Errorf("%s: row groups hold %d rows, footer says %d", name, rows, md.NumRows)
	}
	return md.NumRows
}

// checkPages walks a column chunk's pages: each page's encoding must be in the chunk's list, and the
// data pages must hold the chunk's values.
func checkPages(t testing.TB, where string, body []byte, cm format.ColumnMetaData) {
	t.Helper()
	off := cm.DataPageOffset
	if cm.DictionaryPageOffset > 0 && cm.DictionaryPageOffset < off {
		off = cm.DictionaryPageOffset
	}
	end := off + cm.TotalCompressedSize
	if off < 4 || end > int64(len(body)) {
		t.Errorf("%s: pages [%d, %d) outside the file", where, off, end)
		return
	}
	listed := func(e format.Encoding) bool { return slices.Contains([]format.Encoding(cm.Encoding), e) }
	var values int64
	for off < end {
		r := (&thrift.CompactProtocol{}).NewReaderFromBytes(body[off:end])
		var h format.PageHeader
		if err := thrift.NewDecoder(r).Decode(&h); err != nil {
			t.Errorf("%s: page header at %d: %v", where, off, err)
			return
		}
		switch {
		case h.DataPageHeader.Valid:
			values += int64(h.DataPageHeader.V.NumValues)
			if e := h.DataPageHeader.V.Encoding; !listed(e) {
				t.Errorf("%s: a data page is %v, not in the chunk's encodings %v", where, e, cm.Encoding)
			}
		case h.DataPageHeaderV2.Valid:
			values += int64(h.DataPageHeaderV2.V.NumValues)
			if e := h.DataPageHeaderV2.V.Encoding; !listed(e) {
				t.Errorf("%s: a data page is %v, not in the chunk's encodings %v", where, e, cm.Encoding)
			}
		case h.DictionaryPageHeader.Valid:
			if e := h.DictionaryPageHeader.V.Encoding; !listed(e) {
				t.Errorf("%s: the dictionary page is %v, not in the chunk's encodings %v", where, e, cm.Encoding)
			}
		}
		off += int64(r.BytesRead()) + int64(h.CompressedPageSize)
	}
	if off != end {
		t.Errorf("%s: pages end at %d, the chunk at %d", where, off, end)
	}
	if values != cm.NumValues {
		t.Errorf("%s: pages hold %d values, the chunk says %d", where, values, cm.NumValues)
	}
}

// TestFootersOfReusedWriter is the regression test of the empty path_in_schema: ProcessFunction
// reuses one Parquet writer for every object of a batch (and across batches, through its pool), and
// parquet-go v0.32.0 cleared the column paths and encodings in the footer of every file but the first
// a writer produced. Three batches of trips over five pickup dates go through Handle, the function's
// own code path; every object's footer must be whole.
func TestFootersOfReusedWriter(t *testing.T) {
	store := newFakeS3()
	h, _, _ := newTestHandler(t, store, testZones(t))
	i := 0
	for batch := range 3 {
		var recs []events.KinesisEventRecord
		for j := range 20 {
			day := 10 + j%5
			data := yellowWith(fmt.Sprintf(`"record_id":"r%d","pickup_datetime":"2019-01-%02dT08:%02d:00-05:00","dropoff_datetime":"2019-01-%02dT09:00:00-05:00","pu_location_id":%d`,
				i, day, j, day, 1+i%265))
			recs = append(recs, kinesisRecord(i, data))
			i++
		}
		resp, err := h.Handle(context.Background(), eventOf(recs))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("batch %d: %+v, %v", batch, resp, err)
		}
	}
	keys := store.keys(TripsPrefix)
	if len(keys) != 15 {
		t.Fatalf("%d trip objects, want 15 (3 batches × 5 dates): %v", len(keys), keys)
	}
	var rows int64
	for _, k := range keys {
		rows += checkFooter(t, k, store.objects[k])
	}
	if rows != 60 {
		t.Errorf("%d rows in the footers, want 60", rows)
	}
}

// TestCreatedBy: the footer names the build, in the form parquet-mr parses.
func TestCreatedBy(t *testing.T) {
	got := CreatedBy()
	if !strings.HasPrefix(got, "taxistream version ") || strings.Contains(got, "process(build") {
		t.Errorf("CreatedBy() = %q, want \"taxistream version <version> [(build <revision>)]\"", got)
	}
}
