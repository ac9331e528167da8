package convert

import (
	"encoding/hex"
	"strconv"
)

// RecordIDPrefix returns the first half of the record_id of every record converted from src: 16 hex
// digits of SHA-256 over the source's bucket, key and version. With RecordIDRow it tells which row of
// which object a record came from (the run report uses it to name the source of a quarantined trip).
func RecordIDPrefix(src Source) string {
	seed := sourceSeed(src)
	return hex.EncodeToString(seed[:8])
}

// RecordIDRow returns the 1-based data row number in a record_id (its last 16 hex digits).
func RecordIDRow(id string) (int64, bool) {
	if len(id) != 32 {
		return 0, false
	}
	n, err := strconv.ParseUint(id[16:], 16, 64)
	if err != nil || n > 1<<62 {
		return 0, false
	}
	return int64(n), true
}
