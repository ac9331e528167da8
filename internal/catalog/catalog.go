// Package catalog reads the AWS Glue Data Catalog tables that template.yaml declares over the bucket
// (processed/trips, processed/zone_stats, quarantine/ and the Firehose archive/), maps Parquet and Go
// types to Glue's (Hive) types, and builds DuckDB views from a table's definition alone — columns and
// types, SerDe, location and partition projection — so that tests read the local bucket the way
// Athena reads the deployed one. The tests of this package are the one source of truth check: a Glue
// column that drifts from what the functions write fails them.
package catalog

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/taxistream/taxistream/internal/samtemplate"
)

// Column is a Glue column: its name and Glue (Hive DDL) type, e.g. "bigint", "struct<rule:string>".
type Column struct {
	Name string
	Type string
}

// Table is an AWS::Glue::Table of the template, evaluated.
type Table struct {
	LogicalID       string
	Database        string
	Name            string
	Location        string // s3://bucket/prefix/
	Columns         []Column
	PartitionKeys   []Column
	Parameters      map[string]string // table properties: classification, projection.*, storage.location.template
	SerDe           string            // SerializationLibrary
	SerDeParameters map[string]string
	InputFormat     string
	OutputFormat    string
}

// SerDes the tables use.
const (
	ParquetSerDe = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
	JSONSerDe    = "org.openx.data.jsonserde.JsonSerDe"
)

// Tables evaluates every AWS::Glue::Table of the template (parameters at their defaults, names as r
// resolves them) and returns them by table name.
func Tables(tpl *samtemplate.Template, r samtemplate.Resolver) (map[string]Table, error) {
	out := map[string]Table{}
	var errs []error
	for _, id := range tpl.ResourceIDs("AWS::Glue::Table") {
		res, _ := tpl.Resource(id)
		v, err := tpl.Evaluate(res.Properties, nil, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		t, err := tableOf(id, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		out[t.Name] = t
	}
	return out, errors.Join(errs...)
}

func tableOf(id string, v any) (Table, error) {
	p, _ := v.(map[string]any)
	ti, _ := p["TableInput"].(map[string]any)
	sd, _ := ti["StorageDescriptor"].(map[string]any)
	serde, _ := sd["SerdeInfo"].(map[string]any)
	t := Table{
		LogicalID: id, Database: str(p["DatabaseName"]), Name: str(ti["Name"]), Location: str(sd["Location"]),
		Parameters: strMap(ti["Parameters"]), SerDe: str(serde["SerializationLibrary"]),
		SerDeParameters: strMap(serde["Parameters"]), InputFormat: str(sd["InputFormat"]), OutputFormat: str(sd["OutputFormat"]),
	}
	var err error
	if t.Columns, err = columns(sd["Columns"]); err != nil {
		return t, fmt.Errorf("columns: %w", err)
	}
	if t.PartitionKeys, err = columns(ti["PartitionKeys"]); err != nil {
		return t, fmt.Errorf("partition keys: %w", err)
	}
	if t.Name == "" || t.Location == "" || len(t.Columns) == 0 {
		return t, errors.New("a table needs TableInput.Name, StorageDescriptor.Location and Columns")
	}
	return t, nil
}

func columns(v any) ([]Column, error) {
	var out []Column
	l, _ := v.([]any)
	for i, c := range l {
		m, _ := c.(map[string]any)
		col := Column{Name: str(m["Name"]), Type: str(m["Type"])}
		if col.Name == "" || col.Type == "" {
			return nil, fmt.Errorf("column %d has no Name or Type", i)
		}
		out = append(out, col)
	}
	return out, nil
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func strMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := make(map[string]string, len(m))
	for k, x := range m {
		out[k] = str(x)
	}
	return out
}

// GlueType is the Glue type under which Athena reads a Parquet leaf column: by its logical type first
// (STRING → string, INT(32) → int, INT(64) → bigint, TIMESTAMP → timestamp, DATE → date,
// DECIMAL(p,s) → decimal(p,s)), else by its physical type.
func GlueType(n parquet.Node) (string, error) {
	if !n.Leaf() {
		return "", errors.New("not a leaf column")
	}
	if n.Repeated() {
		return "", errors.New("repeated columns are not mapped")
	}
	t := n.Type()
	if lt := t.LogicalType(); lt != nil && lt.Value != nil {
		switch v := lt.Value.(type) {
		case *format.StringType, *format.EnumType, *format.JsonType:
			return "string", nil
		case *format.IntType:
			switch bits := v.BitWidth; {
			case bits <= 8:
				return "tinyint", nil
			case bits <= 16:
				return "smallint", nil
			case bits <= 32:
				return "int", nil
			default:
				return "bigint", nil
			}
		case *format.TimestampType:
			return "timestamp", nil
		case *format.DateType:
			return "date", nil
		case *format.DecimalType:
			return fmt.Sprintf("decimal(%d,%d)", v.Precision, v.Scale), nil
		}
		return "", fmt.Errorf("logical type %s is not mapped", lt)
	}
	switch t.Kind() {
	case parquet.Boolean:
		return "boolean", nil
	case parquet.Int32:
		return "int", nil
	case parquet.Int64:
		return "bigint", nil
	case parquet.Float:
		return "float", nil
	case parquet.Double:
		return "double", nil
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return "binary", nil
	}
	return "", fmt.Errorf("physical type %s is not mapped", t.Kind())
}

// ParquetColumns lists the columns of a flat Parquet schema, in file order, with their Glue types.
func ParquetColumns(s *parquet.Schema) ([]Column, error) {
	var out []Column
	var errs []error
	for _, f := range s.Fields() {
		typ, err := GlueType(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("column %s: %w", f.Name(), err))
			continue
		}
		out = append(out, Column{Name: f.Name(), Type: typ})
	}
	return out, errors.Join(errs...)
}

// JSONColumns lists the members of the JSON form of a Go struct (json tags, in field order) with the
// Glue type an openx JsonSerDe table reads them as. Times are strings (RFC 3339 text).
func JSONColumns(v any) ([]Column, error) {
	rt := reflect.TypeOf(v)
	for rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	if rt.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct", rt)
	}
	var out []Column
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		typ, err := jsonGlueType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", rt.Name(), f.Name, err)
		}
		out = append(out, Column{Name: name, Type: typ})
	}
	return out, nil
}

var timeType = reflect.TypeOf(time.Time{})

func jsonGlueType(t reflect.Type) (string, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return "string", nil
	}
	switch t.Kind() {
	case reflect.String:
		return "string", nil
	case reflect.Bool:
		return "boolean", nil
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16:
		return "int", nil
	case reflect.Int, reflect.Int64, reflect.Uint32:
		return "bigint", nil
	case reflect.Float32, reflect.Float64:
		return "double", nil
	case reflect.Slice:
		el, err := jsonGlueType(t.Elem())
		if err != nil {
			return "", err
		}
		return "array<" + el + ">", nil
	case reflect.Struct:
		cols, err := JSONColumns(reflect.New(t).Elem().Interface())
		if err != nil {
			return "", err
		}
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = c.Name + ":" + c.Type
		}
		return "struct<" + strings.Join(parts, ",") + ">", nil
	}
	return "", fmt.Errorf("type %s is not mapped", t)
}
