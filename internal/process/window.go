package process

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Tumbling-window state (Lambda carries it between the invokes of one window, per shard; strings only,
// at most 1 MB, or Lambda terminates the window early).
//
// Encoding, one entry per pickup zone and taxi type:
//
//	"<pu_location_id>:<t>" → "<trips>,<distance in 1/100 mi>,<fare ¢>,<total ¢>,<tip ¢>,<duration s>"
//
// where t is y, g, f or h (yellow, green, fhv, fhvhv) and pu_location_id 0 stands for "not given".
// Sums are integers (cents, hundredths of a mile, seconds) so they add up exactly across invokes.
// Meta entries: "_v" (encoding version), "_first" (first sequence number counted in this state).
// When the encoded state would exceed stateBudget, the finest granularity (taxi type) is dropped:
// entries become "<pu_location_id>" and "_collapsed" is "1" (metric WindowStateCollapsed). The
// coarsest state is at most 266 short entries (~15 KB), far below the limit.
const (
	stateVersion = "1"
	// defaultStateBudget is the largest encoded state kept at full granularity: a quarter of Lambda's
	// 1 MB tumbling-window state limit per shard.
	defaultStateBudget = 256 << 10
	keyVersion         = "_v"
	keyFirstSeq        = "_first"
	keyCollapsed       = "_collapsed"
)

type zoneKey struct {
	loc int32
	typ byte // 'y', 'g', 'f', 'h'; 0 once collapsed
}

type zoneAgg struct {
	trips, distance, fare, total, tip, duration int64
}

type windowState struct {
	zones     map[zoneKey]*zoneAgg
	firstSeq  string
	collapsed bool
}

func typeCode(taxiType string) byte {
	switch taxiType {
	case "yellow":
		return 'y'
	case "green":
		return 'g'
	case "fhv":
		return 'f'
	case "fhvhv":
		return 'h'
	}
	return 0
}

func typeName(c byte) string {
	switch c {
	case 'y':
		return "yellow"
	case 'g':
		return "green"
	case 'f':
		return "fhv"
	case 'h':
		return "fhvhv"
	}
	return "all"
}

// decodeState reads the state Lambda passed in; entries it cannot read are counted and dropped.
func decodeState(m map[string]string) (*windowState, int) {
	ws := &windowState{zones: make(map[zoneKey]*zoneAgg, len(m))}
	bad := 0
	ws.collapsed = m[keyCollapsed] == "1"
	ws.firstSeq = m[keyFirstSeq]
	for k, v := range m {
		if strings.HasPrefix(k, "_") {
			continue
		}
		key, ok := parseZoneKey(k)
		if !ok {
			bad++
			continue
		}
		var a zoneAgg
		parts := strings.Split(v, ",")
		if len(parts) != 6 {
			bad++
			continue
		}
		vals := [6]*int64{&a.trips, &a.distance, &a.fare, &a.total, &a.tip, &a.duration}
		okAll := true
		for i, p := range parts {
			n, err := strconv.ParseInt(p, 10, 64)
			if err != nil {
				okAll = false
				break
			}
			*vals[i] = n
		}
		if !okAll {
			bad++
			continue
		}
		if ws.collapsed {
			key.typ = 0
		}
		ws.agg(key).addAgg(a)
	}
	return ws, bad
}

func parseZoneKey(k string) (zoneKey, bool) {
	locText, typText, hasType := strings.Cut(k, ":")
	n, err := strconv.ParseInt(locText, 10, 32)
	if err != nil || n < 0 {
		return zoneKey{}, false
	}
	key := zoneKey{loc: int32(n)}
	if hasType {
		if len(typText) != 1 || typeName(typText[0]) == "all" {
			return zoneKey{}, false
		}
		key.typ = typText[0]
	}
	return key, true
}

func (ws *windowState) agg(k zoneKey) *zoneAgg {
	if ws.collapsed {
		k.typ = 0
	}
	a := ws.zones[k]
	if a == nil {
		a = &zoneAgg{}
		ws.zones[k] = a
	}
	return a
}

func (a *zoneAgg) addAgg(b zoneAgg) {
	a.trips += b.trips
	a.distance += b.distance
	a.fare += b.fare
	a.total += b.total
	a.tip += b.tip
	a.duration += b.duration
}

func hundredths(o optF) int64 {
	if !o.ok || math.IsNaN(o.v) || math.IsInf(o.v, 0) {
		return 0
	}
	return int64(math.Round(o.v * 100))
}

// add counts one valid trip.
func (ws *windowState) add(u *unit, seq string) {
	if ws.firstSeq == "" {
		ws.firstSeq = seq
	}
	loc := int32(0)
	if u.t.puLocation.ok {
		loc = u.t.puLocation.v
	}
	fare, tip := u.t.fareAmount, u.t.tipAmount
	if !fare.ok {
		fare, tip = u.t.basePassengerFare, u.t.tips
	}
	a := ws.agg(zoneKey{loc: loc, typ: typeCode(u.t.taxiType.v)})
	a.trips++
	a.distance += hundredths(u.d.distance)
	a.fare += hundredths(fare)
	a.total += hundredths(u.t.totalAmount)
	a.tip += hundredths(tip)
	a.duration += u.d.durationS
}

// collapse drops the taxi-type granularity.
func (ws *windowState) collapse() {
	old := ws.zones
	ws.zones = make(map[zoneKey]*zoneAgg, len(old))
	ws.collapsed = true
	for k, a := range old {
		ws.agg(zoneKey{loc: k.loc}).addAgg(*a)
	}
}

// encode returns the state for the response and its size in bytes as JSON (keys, values, quotes).
func (ws *windowState) encode() (map[string]string, int) {
	m := make(map[string]string, len(ws.zones)+3)
	m[keyVersion] = stateVersion
	if ws.firstSeq != "" {
		m[keyFirstSeq] = ws.firstSeq
	}
	if ws.collapsed {
		m[keyCollapsed] = "1"
	}
	var b []byte
	for k, a := range ws.zones {
		key := strconv.Itoa(int(k.loc))
		if k.typ != 0 {
			key += ":" + string(k.typ)
		}
		b = b[:0]
		for i, n := range [6]int64{a.trips, a.distance, a.fare, a.total, a.tip, a.duration} {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, n, 10)
		}
		m[key] = string(b)
	}
	size := 2
	for k, v := range m {
		size += len(k) + len(v) + 6 // "k":"v",
	}
	return m, size
}

// ZoneStat is one row of processed/zone_stats/window_start=<RFC 3339>/<shardId>.parquet: the trips
// of one pickup zone (and taxi type) that arrived in the window. window_start is not a column of the
// file: it is the Hive partition (like pickup_date for the trips; Spark refuses a data column that
// repeats a partition column); window_end is.
type ZoneStat struct {
	WindowStart  time.Time `parquet:"-"`
	WindowEnd    time.Time `parquet:"window_end,timestamp(microsecond:utc)"`
	ShardID      string    `parquet:"shard_id,dict"`
	PULocationID int32     `parquet:"pu_location_id"` // 0: not given
	TaxiType     string    `parquet:"taxi_type,dict"` // "all" when the state had to drop the taxi type
	Borough      *string   `parquet:"pu_borough,optional,dict"`
	Zone         *string   `parquet:"pu_zone,optional,dict"`
	ServiceZone  *string   `parquet:"pu_service_zone,optional,dict"`
	Trips        int64     `parquet:"trips"`
	TripDistance float64   `parquet:"trip_distance"` // miles
	FareAmount   float64   `parquet:"fare_amount"`
	TotalAmount  float64   `parquet:"total_amount"`
	TipAmount    float64   `parquet:"tip_amount"`
	DurationS    int64     `parquet:"duration_s"`
}

// zoneStats renders the state as a Parquet file, sorted by zone and taxi type.
func (ws *windowState) zoneStats(start, end time.Time, shard string, zones *Zones) ([]byte, int, error) {
	keys := make([]zoneKey, 0, len(ws.zones))
	for k := range ws.zones {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b zoneKey) int {
		if a.loc != b.loc {
			return int(a.loc) - int(b.loc)
		}
		return int(a.typ) - int(b.typ)
	})
	rows := make([]ZoneStat, 0, len(keys))
	for _, k := range keys {
		a := ws.zones[k]
		s := ZoneStat{
			WindowStart: start.UTC(), WindowEnd: end.UTC(), ShardID: shard,
			PULocationID: k.loc, TaxiType: typeName(k.typ),
			Trips: a.trips, TripDistance: float64(a.distance) / 100, FareAmount: float64(a.fare) / 100,
			TotalAmount: float64(a.total) / 100, TipAmount: float64(a.tip) / 100, DurationS: a.duration,
		}
		if z := zones.lookup(optI{v: k.loc, ok: true}); z != nil {
			s.Borough, s.Zone, s.ServiceZone = &z.Borough, &z.Name, &z.ServiceZone
		}
		rows = append(rows, s)
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[ZoneStat](&buf, parquet.Compression(&snappyFast), &parquet.WriterConfig{CreatedBy: CreatedBy()})
	if _, err := w.Write(rows); err != nil {
		return nil, 0, fmt.Errorf("encoding zone stats: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, 0, fmt.Errorf("encoding zone stats: %w", err)
	}
	return buf.Bytes(), len(keys), nil
}
