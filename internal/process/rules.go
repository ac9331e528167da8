package process

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Severity says what a failed rule does to a trip.
type Severity string

const (
	// Reject sends the trip to quarantine/ with the rule and a detail.
	Reject Severity = "reject"
	// Flag keeps the trip in processed/trips/ and names the rule in its quality_flags column.
	Flag Severity = "flag"
)

// Rule names: stable identifiers that appear in quarantine lines ("_rejections"[].rule), in the
// quality_flags column and in metric names (TripsInvalid_<rule>, TripsFlagged_<rule>).
const (
	RuleMalformedJSON       = "malformed_json"
	RuleCorruptAggregate    = "corrupt_aggregate"
	RuleFieldTypes          = "field_types"
	RuleRecordID            = "record_id_present"
	RuleTaxiType            = "taxi_type_known"
	RulePickupPresent       = "pickup_present"
	RuleDropoffPresent      = "dropoff_present"
	RulePickupYear          = "pickup_year_plausible"
	RulePickupBeforeDropoff = "pickup_before_dropoff"
	RuleDuration            = "duration_plausible"
	RuleSpeed               = "speed_plausible"
	RuleDistance            = "distance_non_negative"
	RuleAmounts             = "amounts_non_negative"
	RulePassengers          = "passenger_count_range"
	RuleLocation            = "location_id_range"
	RuleTotal               = "total_consistent"
)

// Thresholds of the rules.
const (
	MinPickupYear      = 2009           // first year of TLC trip records
	MaxTripDuration    = 24 * time.Hour // longest plausible trip (duration_plausible)
	MaxSpeedMph        = 100.0          // fastest plausible average speed, miles per hour (speed_plausible)
	MaxPassengers      = 9              // passenger_count_range is 0..MaxPassengers (0 = not entered by the driver)
	MinLocationID      = 1              // location_id_range: 1..263 are zones,
	MaxLocationID      = 265            // 264 and 265 are "unknown" / "outside of NYC"
	TotalTolerance     = 0.05           // total_consistent: |total − sum(parts)| ≤ this many dollars
	maxRejectionDetail = 200
)

// Rule documents one validation rule. Rules lists them in the order they are checked; RULES.md is
// the same table for readers (a test keeps the two in step).
type Rule struct {
	Name     string
	Severity Severity
	Applies  string // taxi types or records the rule looks at
	Check    string // what passes
}

// Rules is the validation rule table.
//
//	rule                    severity  applies to                  passes when
//	malformed_json          reject    every user record           the data is one JSON object
//	corrupt_aggregate       reject    KPL aggregated records      magic, protobuf and MD5 check out (the whole aggregate is quarantined)
//	field_types             reject    known fields                each known field has its contract JSON type (numbers, integers, strings, RFC 3339)
//	record_id_present       reject    all                         record_id is a non-empty string
//	taxi_type_known         reject    all                         taxi_type is yellow, green, fhv or fhvhv
//	pickup_present          reject    all                         pickup_datetime is present
//	dropoff_present         reject    yellow, green, fhvhv        dropoff_datetime is present (FHV files of 2015–16 have none)
//	pickup_year_plausible   reject    all                         2009 ≤ pickup year ≤ the current year (New York wall clock)
//	pickup_before_dropoff   reject    trips with both times       dropoff ≥ pickup
//	duration_plausible      reject    trips with both times       0 s < dropoff − pickup ≤ 24 h
//	speed_plausible         reject    trips with a duration       distance / duration ≤ 100 mph
//	distance_non_negative   reject    trip_distance, trip_miles   ≥ 0 when present
//	amounts_non_negative    reject    every money field           ≥ 0 when present (TLC reversals of voided/disputed trips are negative: they land in quarantine)
//	passenger_count_range   reject    passenger_count             0..9 when present
//	location_id_range       reject    pu/do_location_id           1..265 when present
//	total_consistent        flag      yellow, green               |total − sum of present parts| ≤ $0.05; only when fare and total are present
var Rules = []Rule{
	{RuleMalformedJSON, Reject, "every user record", "the data is one JSON object"},
	{RuleCorruptAggregate, Reject, "KPL aggregated records", "magic, protobuf and MD5 check out"},
	{RuleFieldTypes, Reject, "known fields", "each known field has its contract JSON type"},
	{RuleRecordID, Reject, "all", "record_id is a non-empty string"},
	{RuleTaxiType, Reject, "all", "taxi_type is yellow, green, fhv or fhvhv"},
	{RulePickupPresent, Reject, "all", "pickup_datetime is present"},
	{RuleDropoffPresent, Reject, "yellow, green, fhvhv", "dropoff_datetime is present"},
	{RulePickupYear, Reject, "all", fmt.Sprintf("%d ≤ pickup year ≤ current year", MinPickupYear)},
	{RulePickupBeforeDropoff, Reject, "trips with both times", "dropoff ≥ pickup"},
	{RuleDuration, Reject, "trips with both times", "0 s < duration ≤ 24 h"},
	{RuleSpeed, Reject, "trips with a duration", "average speed ≤ 100 mph"},
	{RuleDistance, Reject, "trip_distance, trip_miles", "≥ 0 when present"},
	{RuleAmounts, Reject, "money fields", "≥ 0 when present"},
	{RulePassengers, Reject, "passenger_count", "0..9 when present"},
	{RuleLocation, Reject, "pu_location_id, do_location_id", "1..265 when present"},
	{RuleTotal, Flag, "yellow, green", "|total − sum of present parts| ≤ 0.05 when fare and total are present"},
}

// Rejection is one failed rule of a record, as written in its quarantine line.
type Rejection struct {
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
}

// derived are the enrichment values computed while validating.
type derived struct {
	durationS   int64
	hasDuration bool
	speedMph    float64
	hasSpeed    bool
	tipShare    float64
	hasTipShare bool
	distance    optF
	flags       []string
	puSource    uint8 // srcNone, srcReported, srcCoordinates (zones.go)
	doSource    uint8
}

// validate checks t against Rules (except the two that are decided before parsing) and computes the
// derived values. It returns the rejections (nil when the trip is valid).
func validate(t *trip, now time.Time, d *derived) []Rejection {
	var rej []Rejection
	add := func(rule, format string, args ...any) {
		detail := fmt.Sprintf(format, args...)
		if len(detail) > maxRejectionDetail {
			detail = detail[:maxRejectionDetail]
		}
		rej = append(rej, Rejection{Rule: rule, Detail: detail})
	}
	if len(t.badFields) > 0 {
		add(RuleFieldTypes, "wrong JSON type or unparseable value: %s", strings.Join(t.badFields, ", "))
	}
	if !t.recordID.ok || t.recordID.v == "" {
		add(RuleRecordID, "record_id is missing or empty")
	}
	typ := t.taxiType.v
	switch typ {
	case "yellow", "green", "fhv", "fhvhv":
	default:
		if t.taxiType.ok {
			add(RuleTaxiType, "taxi_type %q is not yellow, green, fhv or fhvhv", typ)
		} else {
			add(RuleTaxiType, "taxi_type is missing")
		}
	}
	if !t.pickup.isSet {
		add(RulePickupPresent, "pickup_datetime is missing")
	}
	if !t.dropoff.isSet && (typ == "yellow" || typ == "green" || typ == "fhvhv") {
		add(RuleDropoffPresent, "dropoff_datetime is missing")
	}
	if t.pickup.ok {
		if maxY := now.Year(); t.pickup.year < MinPickupYear || t.pickup.year > maxY {
			add(RulePickupYear, "pickup year %d is outside %d..%d", t.pickup.year, MinPickupYear, maxY)
		}
	}

	d.distance = t.tripDistance
	if !d.distance.ok {
		d.distance = t.tripMiles
	}
	if t.pickup.ok && t.dropoff.ok {
		dur := t.dropoff.t.Sub(t.pickup.t)
		switch {
		case dur < 0:
			add(RulePickupBeforeDropoff, "dropoff %s is %s before pickup", t.dropoff.t.Format(time.RFC3339), -dur)
		case dur == 0 || dur > MaxTripDuration:
			add(RuleDuration, "duration %s is not in (0s, %s]", dur, MaxTripDuration)
		default:
			d.durationS, d.hasDuration = int64(dur/time.Second), true
			if d.distance.ok && d.distance.v >= 0 {
				d.speedMph, d.hasSpeed = d.distance.v/dur.Hours(), true
				if d.speedMph > MaxSpeedMph {
					add(RuleSpeed, "average speed %.1f mph (%.2f mi in %s) exceeds %.0f mph", d.speedMph, d.distance.v, dur, MaxSpeedMph)
				}
			}
		}
	}
	if t.tripDistance.ok && t.tripDistance.v < 0 {
		add(RuleDistance, "trip_distance %g is negative", t.tripDistance.v)
	}
	if t.tripMiles.ok && t.tripMiles.v < 0 {
		add(RuleDistance, "trip_miles %g is negative", t.tripMiles.v)
	}
	var negs []string
	for _, m := range t.money() {
		if m.o.ok && m.o.v < 0 {
			negs = append(negs, fmt.Sprintf("%s=%g", m.name, m.o.v))
		}
	}
	if len(negs) > 0 {
		add(RuleAmounts, "negative amounts: %s", strings.Join(negs, ", "))
	}
	if t.passengerCount.ok && (t.passengerCount.v < 0 || t.passengerCount.v > MaxPassengers) {
		add(RulePassengers, "passenger_count %d is outside 0..%d", t.passengerCount.v, MaxPassengers)
	}
	if t.puLocation.ok && (t.puLocation.v < MinLocationID || t.puLocation.v > MaxLocationID) {
		add(RuleLocation, "pu_location_id %d is outside %d..%d", t.puLocation.v, MinLocationID, MaxLocationID)
	}
	if t.doLocation.ok && (t.doLocation.v < MinLocationID || t.doLocation.v > MaxLocationID) {
		add(RuleLocation, "do_location_id %d is outside %d..%d", t.doLocation.v, MinLocationID, MaxLocationID)
	}

	if (typ == "yellow" || typ == "green") && t.fareAmount.ok && t.totalAmount.ok {
		sum := t.fareAmount.v
		for _, p := range [...]*optF{&t.extra, &t.mtaTax, &t.tipAmount, &t.tollsAmount, &t.improvementSurcharge,
			&t.congestionSurcharge, &t.airportFee, &t.cbdCongestionFee, &t.ehailFee} {
			if p.ok {
				sum += p.v
			}
		}
		if math.Abs(t.totalAmount.v-sum) > TotalTolerance+1e-9 {
			d.flags = append(d.flags, RuleTotal)
		}
	}

	fare, tip := t.fareAmount, t.tipAmount
	if typ == "fhvhv" || !fare.ok {
		fare, tip = t.basePassengerFare, t.tips
	}
	if fare.ok && fare.v > 0 && tip.ok {
		d.tipShare, d.hasTipShare = tip.v/fare.v, true
	}
	return rej
}

type moneyField struct {
	name string
	o    *optF
}

// money lists the money fields checked by amounts_non_negative.
func (t *trip) money() [17]moneyField {
	return [17]moneyField{
		{"fare_amount", &t.fareAmount}, {"extra", &t.extra}, {"mta_tax", &t.mtaTax}, {"tip_amount", &t.tipAmount},
		{"tolls_amount", &t.tollsAmount}, {"improvement_surcharge", &t.improvementSurcharge},
		{"total_amount", &t.totalAmount}, {"congestion_surcharge", &t.congestionSurcharge},
		{"airport_fee", &t.airportFee}, {"cbd_congestion_fee", &t.cbdCongestionFee}, {"ehail_fee", &t.ehailFee},
		{"base_passenger_fare", &t.basePassengerFare}, {"tolls", &t.tolls}, {"bcf", &t.bcf},
		{"sales_tax", &t.salesTax}, {"tips", &t.tips}, {"driver_pay", &t.driverPay},
	}
}
