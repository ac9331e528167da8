package gen

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// tlcName is TLC's file naming: <taxi>_tripdata_<yyyy>-<mm>.<ext>, e.g. fhvhv_tripdata_2022-03.csv.
var tlcName = regexp.MustCompile(`^(yellow|green|fhv|fhvhv)_tripdata_(\d{4})-(\d{2})(?:\..*)?$`)

// Named is what a TLC-style file name says about its content.
type Named struct {
	Taxi  string
	Year  int
	Month int
}

// FromName reads the taxi type, year and month from a TLC-style file name (any directory, any
// extension, case-insensitive); ok is false for other names or an impossible month.
func FromName(path string) (n Named, ok bool) {
	m := tlcName.FindStringSubmatch(strings.ToLower(filepath.Base(path)))
	if m == nil {
		return Named{}, false
	}
	year, _ := strconv.Atoi(m[2])
	month, _ := strconv.Atoi(m[3])
	if month < 1 || month > 12 {
		return Named{}, false
	}
	return Named{Taxi: m[1], Year: year, Month: month}, true
}
