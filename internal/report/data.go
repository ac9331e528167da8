package report

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
)

// dataAcc accumulates the data section from the processed trips.
type dataAcc struct {
	files     int
	trips     int64
	byDate    map[string]int64
	byHour    [24]int64
	byZone    map[int32]*zoneCount
	byBorough map[string]int64
	named     int64 // trips with a pickup zone name (the zone lookup was set)
	byPayment map[string]int64
	byTaxi    map[string]int64

	fare, tip, distance, speed sample
}

// The distributions' histogram bins: width and top (values above go into one last bin).
var distBins = map[string][2]float64{"fare": {5, 100}, "tip": {1, 20}, "distance": {1, 30}, "speed": {2, 60}}

type zoneCount struct {
	id            int32
	name, borough string
	trips         int64
}

func newDataAcc() dataAcc {
	return dataAcc{
		byDate: map[string]int64{}, byZone: map[int32]*zoneCount{}, byBorough: map[string]int64{},
		byPayment: map[string]int64{}, byTaxi: map[string]int64{},
		fare: newSample(distBins["fare"][0], distBins["fare"][1]), tip: newSample(distBins["tip"][0], distBins["tip"][1]),
		distance: newSample(distBins["distance"][0], distBins["distance"][1]), speed: newSample(distBins["speed"][0], distBins["speed"][1]),
	}
}

// paymentNames are the TLC data dictionary's payment_type codes.
var paymentNames = map[int32]string{
	0: "flex fare", 1: "credit card", 2: "cash", 3: "no charge", 4: "dispute", 5: "unknown", 6: "voided trip",
}

func paymentName(p int32, ok bool) string {
	if !ok {
		return "not given"
	}
	if n, ok := paymentNames[p]; ok {
		return n
	}
	return "code " + strconv.Itoa(int(p))
}

func (d *dataAcc) add(r *tripCols, date string) {
	d.trips++
	if date == "" {
		date = "unknown"
	}
	d.byDate[date]++
	if r.PickupHour >= 0 && r.PickupHour < 24 {
		d.byHour[r.PickupHour]++
	}
	if r.hasPU {
		z := d.byZone[r.PULocationID]
		if z == nil {
			z = &zoneCount{id: r.PULocationID}
			d.byZone[r.PULocationID] = z
		}
		z.trips++
		if r.PUZone != "" {
			z.name = r.PUZone
		}
		if r.PUBorough != "" {
			z.borough = r.PUBorough
		}
	}
	if r.PUBorough != "" {
		d.byBorough[r.PUBorough]++
		d.named++
	}
	d.byPayment[paymentName(r.PaymentType, r.hasPayment)]++
	d.byTaxi[r.TaxiType]++
	if r.hasFare {
		d.fare.add(r.Fare)
	}
	if r.hasTip {
		d.tip.add(r.Tip)
	}
	if r.hasDistance {
		d.distance.add(r.Distance)
	}
	if r.hasSpeed {
		d.speed.add(r.Speed)
	}
}

// Data is the data section: what the processed trips hold.
type Data struct {
	Trips      int64
	Files      int
	Dates      int
	FirstDate  string
	LastDate   string
	ZoneNames  bool // the zone lookup was set: names next to ids
	Charts     []Chart
	Quantiles  []NamedQuantiles
	TopZones   []ZoneRow
	ZonesTotal int
}

// NamedQuantiles is one distribution's summary line.
type NamedQuantiles struct {
	Name, Unit string
	Quantiles
}

// ZoneRow is one of the top pickup zones.
type ZoneRow struct {
	ID            int32
	Name, Borough string
	Trips         int64
	Share         float64 // of all trips, percent
}

type kv struct {
	k string
	v int64
}

func sortedByCount(m map[string]int64) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	slices.SortFunc(out, func(a, b kv) int {
		if c := cmp.Compare(b.v, a.v); c != 0 {
			return c
		}
		return cmp.Compare(a.k, b.k)
	})
	return out
}

func (d *dataAcc) section() Data {
	out := Data{Trips: d.trips, Files: d.files, Dates: len(d.byDate), ZoneNames: d.named > 0, ZonesTotal: len(d.byZone)}
	if d.trips == 0 {
		return out
	}
	dates := make([]string, 0, len(d.byDate))
	for k := range d.byDate {
		dates = append(dates, k)
	}
	slices.Sort(dates)
	out.FirstDate, out.LastDate = dates[0], dates[len(dates)-1]
	vals := make([]float64, len(dates))
	for i, k := range dates {
		vals[i] = float64(d.byDate[k])
	}
	out.Charts = append(out.Charts, Chart{
		Title: "Trips per pickup date",
		Note:  fmt.Sprintf("%d dates from %s to %s (New York time; the pickup_date partitions)", len(dates), dates[0], dates[len(dates)-1]),
		SVG:   BarChart{ID: "trips-per-date", XLabel: "pickup date", YLabel: "trips", Labels: dates, Series: []BarSeries{{Name: "trips", Values: vals}}}.SVG(),
	})
	hours := make([]string, 24)
	hv := make([]float64, 24)
	for h := range 24 {
		hours[h] = strconv.Itoa(h)
		hv[h] = float64(d.byHour[h])
	}
	out.Charts = append(out.Charts, Chart{
		Title: "Trips per hour of day",
		Note:  "pickup hour, New York wall clock",
		SVG:   BarChart{ID: "trips-per-hour", XLabel: "pickup hour", YLabel: "trips", Labels: hours, Series: []BarSeries{{Name: "trips", Values: hv}}}.SVG(),
	})

	zones := make([]*zoneCount, 0, len(d.byZone))
	for _, z := range d.byZone {
		zones = append(zones, z)
	}
	slices.SortFunc(zones, func(a, b *zoneCount) int {
		if c := cmp.Compare(b.trips, a.trips); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	zones = zones[:min(len(zones), 12)]
	var zl []string
	var zv []float64
	for _, z := range zones {
		label := fmt.Sprintf("zone %d", z.id)
		if z.name != "" {
			label = fmt.Sprintf("%s (%d)", z.name, z.id)
		}
		zl = append(zl, label)
		zv = append(zv, float64(z.trips))
		out.TopZones = append(out.TopZones, ZoneRow{ID: z.id, Name: z.name, Borough: z.borough, Trips: z.trips, Share: 100 * float64(z.trips) / float64(d.trips)})
	}
	zoneNote := fmt.Sprintf("top %d of %d pickup zones", len(zones), len(d.byZone))
	if !out.ZoneNames {
		zoneNote += "; no zone names: the zone lookup was not set (taxistream local --zones taxi_zone_lookup.csv, or the ZoneLookupKey parameter)"
	}
	if len(zones) > 0 {
		out.Charts = append(out.Charts, Chart{
			Title: "Top pickup zones", Note: zoneNote,
			SVG: BarChart{ID: "top-zones", XLabel: "trips", YLabel: "pickup zone", Labels: zl, Horizontal: true, Series: []BarSeries{{Name: "trips", Values: zv}}}.SVG(),
		})
	}
	if out.ZoneNames {
		bl, bv := labelsValues(sortedByCount(d.byBorough))
		out.Charts = append(out.Charts, Chart{
			Title: "Pickups per borough", Note: fmt.Sprintf("%d of %d trips have a pickup borough", d.named, d.trips),
			SVG: BarChart{ID: "boroughs", XLabel: "trips", YLabel: "borough", Labels: bl, Horizontal: true, Series: []BarSeries{{Name: "trips", Color: palette[3], Values: bv}}}.SVG(),
		})
	}
	pl, pv := labelsValues(sortedByCount(d.byPayment))
	out.Charts = append(out.Charts, Chart{
		Title: "Payment types", Note: "payment_type, named as in the TLC data dictionary",
		SVG: BarChart{ID: "payment-types", XLabel: "trips", YLabel: "payment type", Labels: pl, Horizontal: true, Series: []BarSeries{{Name: "trips", Color: palette[1], Values: pv}}}.SVG(),
	})
	tl, tv := labelsValues(sortedByCount(d.byTaxi))
	out.Charts = append(out.Charts, Chart{
		Title: "Trips per taxi type",
		SVG:   BarChart{ID: "taxi-types", XLabel: "trips", YLabel: "taxi type", Labels: tl, Horizontal: true, Series: []BarSeries{{Name: "trips", Color: palette[2], Values: tv}}}.SVG(),
	})
	dists := []struct {
		id, title, unit, axis string
		vs                    *sample
		prefix                string
	}{
		{"fare", "Fare", "$", "fare amount ($; base passenger fare for fhvhv)", &d.fare, "$"},
		{"tip", "Tip", "$", "tip amount ($)", &d.tip, "$"},
		{"distance", "Distance", "mi", "trip distance (miles)", &d.distance, ""},
		{"speed", "Average speed", "mph", "average speed (mph)", &d.speed, ""},
	}
	for i, x := range dists {
		if x.vs.n == 0 {
			continue
		}
		labels, counts := x.vs.bins.labels(x.prefix)
		q := x.vs.quantiles()
		out.Quantiles = append(out.Quantiles, NamedQuantiles{Name: x.title, Unit: x.unit, Quantiles: q})
		out.Charts = append(out.Charts, Chart{
			Title: x.title + " distribution",
			Note:  fmt.Sprintf("%s trips with a value; median %s, p95 %s, max %s", fmtCount(float64(q.N)), fmtVal(q.P50, x.unit), fmtVal(q.P95, x.unit), fmtVal(q.Max, x.unit)),
			SVG:   BarChart{ID: "dist-" + x.id, XLabel: x.axis, YLabel: "trips", Labels: labels, Series: []BarSeries{{Name: "trips", Color: palette[(i+4)%len(palette)], Values: counts}}}.SVG(),
		})
	}
	return out
}

func labelsValues(kvs []kv) ([]string, []float64) {
	l := make([]string, len(kvs))
	v := make([]float64, len(kvs))
	for i, x := range kvs {
		l[i], v[i] = x.k, float64(x.v)
	}
	return l, v
}

func fmtVal(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	if unit == "$" {
		return "$" + s
	}
	return s + " " + unit
}
