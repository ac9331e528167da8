package convert

import (
	"fmt"
	"strings"
)

// Warnings says what is surprising about a whole file that converted without error: it had no bytes,
// no rows or no row that converted, or none of its columns is a TLC trip column (it was converted as a
// generic CSV: its records have taxi_type null, and ProcessFunction quarantines them). size is the object's size in bytes, -1
// when unknown. Ingest writes them into the object's manifest; `taxistream convert` prints them.
func Warnings(cp Checkpoint, st Stats, size int64) []string {
	var w []string
	switch {
	case size == 0:
		w = append(w, "empty file (0 bytes): no rows")
	case len(cp.Header) == 0 && st.RowsRead == 0:
		w = append(w, "no header and no rows")
	case st.RowsRead == 0:
		w = append(w, "a header and no rows")
	case st.Records == 0:
		w = append(w, fmt.Sprintf("no row converted: all %d rows rejected (see the reasons)", st.RowsRead))
	}
	if len(cp.Header) > 0 && cp.TaxiType == "" {
		head := cp.Header
		if len(head) > 6 {
			head = head[:6]
		}
		w = append(w, fmt.Sprintf("no TLC trip column recognised in the header (%s%s): converted as a generic CSV; records have taxi_type null and the consumer quarantines them",
			strings.Join(quoteAll(head), ", "), map[bool]string{true: ", ...", false: ""}[len(cp.Header) > 6]))
	}
	return w
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
