package process

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
	byID map[int32]*Zone
}

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
	return z, nil
}

// loadZonesBytes is LoadZones over a byte slice (S3 objects and files are small: ~12 KB).
func loadZonesBytes(b []byte) (*Zones, error) { return LoadZones(bytes.NewReader(b)) }
