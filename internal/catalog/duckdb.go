package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// DuckDBView returns "CREATE VIEW <name> AS SELECT ..." reading the table's files under root, the local
// folder that stands for the bucket (s3://<bucket>/ is root/). Everything comes from the definition:
// the files are found from the location and, with partition projection, from
// storage.location.template (each ${key} a path pattern); partition values are cut out of each file's
// path with that template, the way Athena's projection maps locations to values; every column is read
// by its name (for the openx JSON SerDe, by its mapping.<column> key) and cast to the DuckDB type of
// its Glue type. Unpartitioned tables read their location's sub-folders too, as Athena does.
func (t Table) DuckDBView(root string) (string, error) {
	loc, ok := strings.CutPrefix(t.Location, "s3://")
	if !ok {
		return "", fmt.Errorf("table %s: location %q is not s3://", t.Name, t.Location)
	}
	_, prefix, _ := strings.Cut(loc, "/")
	root = strings.TrimSuffix(root, "/")
	dir := root + "/" + strings.TrimSuffix(prefix, "/")

	glob, pathRE := dir+"/**", ""
	var partCols []string
	if len(t.PartitionKeys) > 0 {
		if t.Parameters["projection.enabled"] != "true" {
			return "", fmt.Errorf("table %s: partitioned without partition projection (it would need a crawler or MSCK REPAIR)", t.Name)
		}
		tmpl := t.Parameters["storage.location.template"]
		if tmpl == "" {
			tmpl = strings.TrimSuffix(t.Location, "/")
			for _, k := range t.PartitionKeys {
				tmpl += "/" + k.Name + "=${" + k.Name + "}"
			}
		}
		bucketPrefix := t.Location[:len("s3://")+strings.Index(loc, "/")+1]
		rest, ok := strings.CutPrefix(tmpl, bucketPrefix)
		if !ok {
			return "", fmt.Errorf("table %s: storage.location.template %q is not in the table's bucket", t.Name, tmpl)
		}
		rest = strings.TrimSuffix(rest, "/")
		g, re := rest, regexp.QuoteMeta(root+"/"+rest)
		for _, k := range t.PartitionKeys {
			ph := "${" + k.Name + "}"
			if !strings.Contains(rest, ph) {
				return "", fmt.Errorf("table %s: storage.location.template %q lacks %s", t.Name, tmpl, ph)
			}
			segs := projectedSegments(t.Parameters, k.Name)
			g = strings.Replace(g, ph, strings.TrimSuffix(strings.Repeat("*/", segs), "/"), 1)
			re = strings.Replace(re, regexp.QuoteMeta(ph), "("+strings.TrimSuffix(strings.Repeat("[^/]+/", segs), "/")+")", 1)
		}
		glob, pathRE = root+"/"+g+"/*", "^"+re+"/"
		for i, k := range t.PartitionKeys {
			typ, err := duckType(k.Type)
			if err != nil {
				return "", fmt.Errorf("table %s: partition key %s: %w", t.Name, k.Name, err)
			}
			// The local bucket stores a key's reserved characters percent-encoded in its file names
			// (internal/local/bucket): the value is the decoded path segment, as the S3 key has it.
			partCols = append(partCols, fmt.Sprintf("CAST(url_decode(regexp_extract(filename, %s, %d)) AS %s) AS %s", sqlString(pathRE), i+1, typ, ident(k.Name)))
		}
	}

	var cols, reads []string
	for _, c := range t.Columns {
		typ, err := duckType(c.Type)
		if err != nil {
			return "", fmt.Errorf("table %s: column %s: %w", t.Name, c.Name, err)
		}
		key := c.Name
		if m, ok := t.SerDeParameters["mapping."+c.Name]; ok {
			key = m
		}
		cols = append(cols, fmt.Sprintf("CAST(%s AS %s) AS %s", ident(key), typ, ident(c.Name)))
		reads = append(reads, fmt.Sprintf("%s: %s", sqlString(key), sqlString(typ)))
	}
	var from string
	switch t.SerDe {
	case ParquetSerDe:
		from = fmt.Sprintf("read_parquet(%s, filename = true, union_by_name = true)", sqlString(glob))
	case JSONSerDe:
		from = fmt.Sprintf("read_json(%s, format = 'newline_delimited', filename = true, columns = {%s})", sqlString(glob), strings.Join(reads, ", "))
	default:
		return "", fmt.Errorf("table %s: SerDe %q has no DuckDB reader here", t.Name, t.SerDe)
	}
	return fmt.Sprintf("CREATE VIEW %s AS SELECT %s FROM %s", ident(t.Name), strings.Join(append(cols, partCols...), ", "), from), nil
}

// projectedSegments is how many path segments a projected value spans: a date format such as
// yyyy/MM/dd/HH spans four.
func projectedSegments(params map[string]string, key string) int {
	if params["projection."+key+".type"] == "date" {
		return strings.Count(params["projection."+key+".format"], "/") + 1
	}
	return 1
}

// duckType maps a Glue (Hive) type to DuckDB's.
func duckType(glue string) (string, error) {
	g := strings.ToLower(strings.TrimSpace(glue))
	switch g {
	case "string":
		return "VARCHAR", nil
	case "tinyint":
		return "TINYINT", nil
	case "smallint":
		return "SMALLINT", nil
	case "int", "integer":
		return "INTEGER", nil
	case "bigint":
		return "BIGINT", nil
	case "float":
		return "FLOAT", nil
	case "double":
		return "DOUBLE", nil
	case "boolean":
		return "BOOLEAN", nil
	case "timestamp":
		// Athena's timestamp is a UTC instant without a zone; the Parquet columns are UTC-adjusted.
		return "TIMESTAMP", nil
	case "date":
		return "DATE", nil
	case "binary":
		return "BLOB", nil
	}
	switch {
	case strings.HasPrefix(g, "decimal("), strings.HasPrefix(g, "varchar("), strings.HasPrefix(g, "char("):
		if strings.HasPrefix(g, "decimal(") {
			return strings.ToUpper(g), nil
		}
		return "VARCHAR", nil
	case strings.HasPrefix(g, "array<") && strings.HasSuffix(g, ">"):
		el, err := duckType(g[len("array<") : len(g)-1])
		if err != nil {
			return "", err
		}
		return el + "[]", nil
	case strings.HasPrefix(g, "struct<") && strings.HasSuffix(g, ">"):
		fields, err := splitTop(g[len("struct<") : len(g)-1])
		if err != nil {
			return "", err
		}
		var parts []string
		for _, f := range fields {
			name, typ, ok := strings.Cut(f, ":")
			if !ok {
				return "", fmt.Errorf("struct field %q has no type", f)
			}
			dt, err := duckType(typ)
			if err != nil {
				return "", err
			}
			parts = append(parts, ident(name)+" "+dt)
		}
		return "STRUCT(" + strings.Join(parts, ", ") + ")", nil
	}
	return "", fmt.Errorf("glue type %q is not mapped", glue)
}

// splitTop splits a comma-separated list at the commas outside <...>.
func splitTop(s string) ([]string, error) {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '<':
			depth++
		case '>':
			depth--
			if depth < 0 {
				return nil, errors.New("unbalanced <>")
			}
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, errors.New("unbalanced <>")
	}
	return append(out, s[start:]), nil
}

func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
