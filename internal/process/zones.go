package process

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taxistream/taxistream/internal/config"
	"github.com/taxistream/taxistream/internal/geo"
)

// Zone is one row of the TLC taxi zone lookup (LocationID → Borough, Zone, service_zone).
type Zone struct {
	ID          int
	Borough     string
	Name        string
	ServiceZone string
}

// Zones is the taxi zone lookup, loaded once per cold start.
type Zones struct {
	byID  map[int32]*Zone
	dense []*Zone // byID for ids 0..len-1 (every TLC id), indexed without hashing: two look-ups per trip
}

// maxDenseID bounds Zones.dense.
const maxDenseID = 4096

// Len returns the number of zones.
func (z *Zones) Len() int {
	if z == nil {
		return 0
	}
	return len(z.byID)
}

// Lookup returns the zone of a location id; ok is false without a lookup or for an unknown id.
func (z *Zones) Lookup(id int32) (Zone, bool) {
	if z == nil {
		return Zone{}, false
	}
	p, ok := z.byID[id]
	if !ok {
		return Zone{}, false
	}
	return *p, true
}

func (z *Zones) lookup(id optI) *Zone {
	if z == nil || !id.ok {
		return nil
	}
	if uint32(id.v) < uint32(len(z.dense)) {
		return z.dense[id.v]
	}
	return z.byID[id.v]
}

// LoadZones reads a taxi zone lookup CSV: a header naming LocationID, Borough, Zone and service_zone
// in any case and order (quoted or not, BOM and spaces trimmed), then one row per zone, LF or CRLF.
// Both the 2017 file (264/265 "Unknown"/"NV"/"NA") and the current one load; the values are kept as
// written.
func LoadZones(r io.Reader) (*Zones, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading zone lookup header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		col[h] = i
	}
	idx := func(name string) (int, error) {
		i, ok := col[name]
		if !ok {
			return 0, fmt.Errorf("zone lookup header %q has no %q column", strings.Join(header, ","), name)
		}
		return i, nil
	}
	var errs []error
	iID, err := idx("locationid")
	errs = append(errs, err)
	iB, err := idx("borough")
	errs = append(errs, err)
	iZ, err := idx("zone")
	errs = append(errs, err)
	iS, err := idx("service_zone")
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	z := &Zones{byID: make(map[int32]*Zone, 270)}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading zone lookup: %w", err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		line, _ := cr.FieldPos(0)
		if len(rec) <= max(iID, iB, iZ, iS) {
			return nil, fmt.Errorf("zone lookup line %d: %d fields, want at least %d", line, len(rec), max(iID, iB, iZ, iS)+1)
		}
		id, err := strconv.ParseInt(strings.TrimSpace(rec[iID]), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("zone lookup line %d: location id %q: %w", line, rec[iID], err)
		}
		if _, dup := z.byID[int32(id)]; dup {
			return nil, fmt.Errorf("zone lookup line %d: location id %d repeats", line, id)
		}
		z.byID[int32(id)] = &Zone{
			ID:          int(id),
			Borough:     strings.TrimSpace(rec[iB]),
			Name:        strings.TrimSpace(rec[iZ]),
			ServiceZone: strings.TrimSpace(rec[iS]),
		}
	}
	if len(z.byID) == 0 {
		return nil, errors.New("zone lookup has no rows")
	}
	for id, zone := range z.byID {
		if id >= 0 && id < maxDenseID {
			if int(id) >= len(z.dense) {
				z.dense = append(z.dense, make([]*Zone, int(id)+1-len(z.dense))...)
			}
			z.dense[id] = zone
		}
	}
	return z, nil
}

// loadZonesBytes is LoadZones over a byte slice (S3 objects and files are small: ~12 KB).
func loadZonesBytes(b []byte) (*Zones, error) { return LoadZones(bytes.NewReader(b)) }

// Where pu_location_id / do_location_id came from (columns pu_location_source, do_location_source).
const (
	// SourceReported: the record carried the id (PULocationID/DOLocationID, 2016-07 onwards).
	SourceReported = "reported"
	// SourceCoordinates: the id was found from the record's longitude/latitude in the zone shapes; a
	// point outside every zone gets the lookup's "outside of NYC" id (OutsideID).
	SourceCoordinates = "coordinates"
	// SourceNone: no id — neither reported nor locatable (no shapes configured, coordinates missing,
	// 0, or not a valid longitude/latitude).
	SourceNone = "none"
)

// location sources as stored in derived (index into sourceNames).
const (
	srcNone uint8 = iota
	srcReported
	srcCoordinates
)

var sourceNames = [...]string{srcNone: SourceNone, srcReported: SourceReported, srcCoordinates: SourceCoordinates}

// DefaultOutsideID is the "outside of NYC" LocationID when the zone lookup does not say which it is
// (TLC's lookups: 265, "Outside of NYC" in the current file, "NA" in 2017's).
const DefaultOutsideID = 265

// OutsideID returns the LocationID that stands for "outside of NYC" in the lookup: the row whose zone or
// service zone reads "Outside of NYC" (any case), else DefaultOutsideID.
func (z *Zones) OutsideID() int32 {
	if z != nil {
		best := int32(-1)
		for id, zone := range z.byID {
			if strings.EqualFold(zone.Name, "Outside of NYC") || strings.EqualFold(zone.ServiceZone, "Outside of NYC") {
				if best < 0 || id < best {
					best = id
				}
			}
		}
		if best >= 0 {
			return best
		}
	}
	return DefaultOutsideID
}

// maxShapesBytes bounds the zone shapes object read at cold start (TLC's taxi_zones.zip is 1 MB).
const maxShapesBytes = 256 << 20

// initShapes sets the zone shapes (d.Shapes, else loaded from cfg.ZoneShapes) and the outside id.
func (h *Handler) initShapes(ctx context.Context, cfg config.Config, d Deps) error {
	h.shapes = d.Shapes
	h.outsideID = h.zones.OutsideID()
	if h.shapes != nil || cfg.ZoneShapes == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, zoneLoadTimeout)
	defer cancel()
	b, where, err := getReference(ctx, cfg.Bucket, cfg.ZoneShapes, "ZONE_SHAPES", h.s3)
	if err != nil {
		return err
	}
	m, err := geo.Load(b)
	if err != nil {
		return fmt.Errorf("loading zone shapes %s: %w", where, err)
	}
	h.shapes = m
	h.log.InfoContext(ctx, "zone shapes loaded", "source", where, "zones", m.Len(), "format", m.Source,
		"renumbered", strings.Join(m.Renumbered, " "), "outside_id", h.outsideID)
	return nil
}

// getReference reads a reference object: "s3://bucket/key", a file path that exists, or else a key in
// bucket. name is the setting's name for messages.
func getReference(ctx context.Context, bucket, loc, name string, store ObjectStore) ([]byte, string, error) {
	key := loc
	switch {
	case strings.HasPrefix(loc, "s3://"):
		var ok bool
		bucket, key, ok = strings.Cut(strings.TrimPrefix(loc, "s3://"), "/")
		if !ok || bucket == "" || key == "" {
			return nil, loc, fmt.Errorf("%s %q: want s3://bucket/key", name, loc)
		}
	default:
		if _, err := os.Stat(loc); err == nil {
			b, err := os.ReadFile(loc)
			if err != nil {
				return nil, loc, fmt.Errorf("reading %s: %w", loc, err)
			}
			return b, loc, nil
		}
		if filepath.IsAbs(loc) || strings.HasPrefix(loc, "./") || strings.HasPrefix(loc, "../") {
			return nil, loc, fmt.Errorf("%s file %s does not exist", name, loc)
		}
	}
	where := "s3://" + bucket + "/" + key
	out, err := store.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, where, fmt.Errorf("getting %s: %w", where, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxShapesBytes+1))
	if err != nil {
		return nil, where, fmt.Errorf("reading %s: %w", where, err)
	}
	if len(b) > maxShapesBytes {
		return nil, where, fmt.Errorf("%s is larger than %d bytes", where, maxShapesBytes)
	}
	return b, where, nil
}

// locateAll locates the valid trips of a batch (locate), in one pass after parsing: the lookups then
// run back to back and find the zone index's busy parts (Manhattan, the airports) in the CPU's cache,
// instead of after each trip's parsing has pushed them out (docs/zones.md, "Cost").
func (h *Handler) locateAll(units []unit) {
	for i := range units {
		if u := &units[i]; u.status == statusValid {
			h.locate(u)
		}
	}
}

// locate sets the pickup and dropoff ids of a valid trip that has none from its coordinates, and
// records where each id came from. The rule (docs/zones.md): a reported id is kept; else, with zone
// shapes, usable coordinates give the zone holding them, or the lookup's "outside of NYC" id when no
// zone does; else there is no id. Coordinates are unusable when missing, 0 (TLC's placeholder), or not
// a longitude/latitude.
func (h *Handler) locate(u *unit) {
	u.d.puSource = h.resolve(&u.t.puLocation, u.t.pickupLongitude, u.t.pickupLatitude)
	u.d.doSource = h.resolve(&u.t.doLocation, u.t.dropoffLongitude, u.t.dropoffLatitude)
}

// located counts the trip's pickup and dropoff ids found from coordinates (metric LocationsFromCoordinates).
func (d *derived) located() int {
	n := 0
	if d.puSource == srcCoordinates {
		n++
	}
	if d.doSource == srcCoordinates {
		n++
	}
	return n
}

func (h *Handler) resolve(id *optI, lon, lat optF) uint8 {
	if id.ok {
		return srcReported
	}
	if h.shapes == nil || !lon.ok || !lat.ok || !geo.Usable(lon.v, lat.v) {
		return srcNone
	}
	z, ok := h.shapes.Locate(lon.v, lat.v)
	if !ok {
		z = h.outsideID
	}
	*id = optI{v: z, ok: true}
	return srcCoordinates
}
