package catalog

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/taxistream/taxistream/internal/process"
	"github.com/taxistream/taxistream/internal/samtemplate"
	"github.com/taxistream/taxistream/internal/testenv"
	"github.com/taxistream/taxistream/internal/tlc"
)

var printYAML = flag.Bool("yaml", false, "print the Columns blocks template.yaml should have")

func loadTables(t *testing.T) map[string]Table {
	t.Helper()
	tpl, err := samtemplate.Load(filepath.Join(testenv.Root(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := Tables(tpl, samtemplate.Resolver{})
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// tripsColumns is what ProcessFunction writes: process.TripRow's Parquet schema, in file order.
func tripsColumns(t *testing.T) []Column {
	t.Helper()
	cols, err := ParquetColumns(parquet.SchemaOf(process.TripRow{}))
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

// recordColumns are the canonical record fields of docs/record-contract.md (tlc.Fields) with the Glue
// type of their JSON type: what Firehose archives. With asText every field is a string (quarantine:
// the records that failed validation may hold anything).
func recordColumns(asText bool) []Column {
	cols := []Column{{"record_id", "string"}, {"taxi_type", "string"}}
	typ := func(k tlc.Kind) string {
		if asText {
			return "string"
		}
		switch k {
		case tlc.KindInt, tlc.KindVendor, tlc.KindPayment:
			return "int"
		case tlc.KindNumber:
			return "double"
		}
		return "string" // datetimes (RFC 3339 text with the New York offset), strings, flags
	}
	for _, f := range tlc.Fields {
		cols = append(cols, Column{f.Name, typ(f.Kind)})
		switch f.Kind {
		case tlc.KindVendor:
			cols = append(cols, Column{tlc.VendorCode, "string"})
		case tlc.KindPayment:
			cols = append(cols, Column{tlc.PaymentCode, "string"})
		}
	}
	return cols
}

// quarantineColumns: the record as text plus what ProcessFunction adds to a quarantine line.
func quarantineColumns(t *testing.T) []Column {
	t.Helper()
	rej, err := JSONColumns(struct {
		R []process.Rejection `json:"rejections"`
	}{})
	if err != nil {
		t.Fatal(err)
	}
	return append(recordColumns(true), rej[0],
		Column{"kinesis", "struct<shard_id:string,sequence_number:string,sub_sequence_number:int,partition_key:string,approximate_arrival_timestamp:string>"},
		Column{"raw", "string"}, Column{"raw_base64", "string"})
}

func zoneStatsColumns(t *testing.T) []Column {
	t.Helper()
	cols, err := ParquetColumns(parquet.SchemaOf(process.ZoneStat{}))
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

func yamlColumns(cols []Column) string {
	var b strings.Builder
	for _, c := range cols {
		fmt.Fprintf(&b, "            - {Name: %s, Type: '%s'}\n", c.Name, c.Type)
	}
	return b.String()
}

// TestTablesMatchWhatTheFunctionsWrite is the one-source-of-truth check: every Glue column, its order
// and its type derive from the Go types that write the data (process.TripRow's Parquet schema, the
// record contract's fields, process.ZoneStat's Parquet schema and the quarantine line). A column added, removed,
// renamed, moved or retyped on either side fails it; -yaml prints the blocks to paste.
func TestTablesMatchWhatTheFunctionsWrite(t *testing.T) {
	tables := loadTables(t)
	want := map[string][]Column{
		"trips":      tripsColumns(t),
		"zone_stats": zoneStatsColumns(t),
		"archive":    recordColumns(false),
		"quarantine": quarantineColumns(t),
	}
	for name, cols := range want {
		if *printYAML {
			fmt.Printf("# %s\n%s", name, yamlColumns(cols))
		}
		tab, ok := tables[name]
		if !ok {
			t.Errorf("template.yaml has no Glue table %s", name)
			continue
		}
		if diff := cmp.Diff(cols, tab.Columns); diff != "" {
			t.Errorf("Glue table %s: columns differ from what is written (-written +glue):\n%s\nthe block to paste (go test ./internal/catalog -run %s -yaml):\n%s",
				name, diff, t.Name(), yamlColumns(cols))
		}
	}
	if len(tables) != len(want) {
		t.Errorf("tables %v, want %d", keys(tables), len(want))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTripsTableSchemaFromFile checks the Glue trips table against the footer of a file
// ProcessFunction's encoder... through the Parquet schema of TripRow and GlueType: each logical type.
func TestGlueType(t *testing.T) {
	type row struct {
		S   string  `parquet:"s"`
		I32 int32   `parquet:"i32"`
		I64 *int64  `parquet:"i64,optional"`
		F   float64 `parquet:"f"`
		B   bool    `parquet:"b"`
		TS  int64   `parquet:"ts,timestamp(microsecond:utc)"`
		D   int32   `parquet:"d,date"`
		Dec int64   `parquet:"dec,decimal(2:10)"`
		Raw []byte  `parquet:"raw"`
		F32 float32 `parquet:"f32"`
		OS  *string `parquet:"os,optional"`
	}
	cols, err := ParquetColumns(parquet.SchemaOf(row{}))
	if err != nil {
		t.Fatal(err)
	}
	want := []Column{{"s", "string"}, {"i32", "int"}, {"i64", "bigint"}, {"f", "double"}, {"b", "boolean"},
		{"ts", "timestamp"}, {"d", "date"}, {"dec", "decimal(10,2)"}, {"raw", "binary"}, {"f32", "float"}, {"os", "string"}}
	if diff := cmp.Diff(want, cols); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
