package testpeers

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

type readerRow struct {
	ID   string    `parquet:"record_id"`
	At   time.Time `parquet:"ts,timestamp(microsecond:utc)"`
	N    *int64    `parquet:"n,optional"`
	Fare float64   `parquet:"fare"`
}

func writeParquet(t *testing.T, path string, rows []readerRow) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[readerRow](&buf)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// breakPaths rewrites a file's footer with every column chunk's path_in_schema empty, as
// parquet-go v0.32.0 wrote every file after the first of a reused writer.
func breakPaths(t *testing.T, body []byte) []byte {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(body[len(body)-8:]))
	var md format.FileMetaData
	if err := thrift.Unmarshal(&thrift.CompactProtocol{}, body[len(body)-8-n:len(body)-8], &md); err != nil {
		t.Fatal(err)
	}
	for g := range md.RowGroups {
		for i := range md.RowGroups[g].Columns {
			md.RowGroups[g].Columns[i].MetaData.PathInSchema = []string{""}
		}
	}
	footer, err := thrift.Marshal(&thrift.CompactProtocol{}, &md)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte{}, body[:len(body)-8-n]...)
	out = append(out, footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	return append(out, "PAR1"...)
}

// TestReaders checks the harness against files whose content is known: both readers read a good file
// (types, rows, an instant as UTC), and both notice a footer whose path_in_schema is empty — so the
// checks built on them can fail.
func TestReaders(t *testing.T) {
	dir := t.TempDir()
	n := int64(7)
	at := time.Date(2019, 1, 15, 13, 0, 0, 0, time.UTC)
	good := filepath.Join(dir, "good.parquet")
	body := writeParquet(t, good, []readerRow{{"a", at, &n, 1.5}, {"b", at.Add(time.Hour), nil, 2}})
	bad := filepath.Join(dir, "bad.parquet")
	if err := os.WriteFile(bad, breakPaths(t, body), 0o644); err != nil {
		t.Fatal(err)
	}

	res := DuckDB(t, "SELECT count(*), min(ts), typeof(min(ts)), sum(fare) FROM read_parquet("+SQLString(good)+")")[0]
	if got := res.Rows[0]; jsonString(got[0]) != "2" || got[1] != "2019-01-15 13:00:00+00" || got[2] != "TIMESTAMP WITH TIME ZONE" || jsonString(got[3]) != "3.5" {
		t.Errorf("DuckDB read %v (%v), want 2 rows from 2019-01-15 13:00 UTC, fare 3.5", got, res.Types)
	}

	h := Hyparquet(t, []string{good}, "record_id", []string{"a"})
	if len(h.Files) != 1 || h.Files[0].RowsRead != 2 || len(h.Files[0].ChunkProblems) != 0 {
		t.Errorf("hyparquet files %+v", h.Files)
	}
	if len(h.Rows) != 1 || h.Rows[0]["ts"] != "2019-01-15T13:00:00.000Z" || h.Rows[0]["n"] != "7" || h.Rows[0]["fare"] != 1.5 {
		t.Errorf("hyparquet row a = %v", h.Rows)
	}
	if h.Types["n"]["bigint"] != 1 || h.Types["n"]["null"] != 1 || h.Types["ts"]["Date"] != 2 {
		t.Errorf("hyparquet value types %v", h.Types)
	}

	// The broken footer: hyparquet refuses the file, or reads it and reports the chunks.
	var out struct {
		HyparquetResult
		Error string `json:"error"`
	}
	runReader(t, "hyparquet-read.mjs", "hyparquet", map[string]any{"files": []string{bad}}, &out)
	switch {
	case out.Error != "":
		t.Logf("hyparquet refuses the broken footer: %s", out.Error)
	case len(out.Files) == 1 && len(out.Files[0].ChunkProblems) == 4 && strings.Contains(out.Files[0].ChunkProblems[0], `path_in_schema ""`):
		t.Logf("hyparquet reports the broken footer: %v", out.Files[0].ChunkProblems)
	default:
		t.Errorf("hyparquet neither refused nor reported empty path_in_schema: %+v", out)
	}
}
