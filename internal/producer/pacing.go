package producer

import "time"

// Pacing a shard takes two limiters per dimension (bytes and records), and a write must pass both:
//
//   - a token bucket at the limit's rate holding up to BurstFraction of a second's worth. A shard
//     sends in batches of batchFraction of a second (spread evenly over the second); the bucket's
//     headroom above a batch is what lets it catch up after a wake-up came late (a loaded machine,
//     a slow response) instead of losing that time's share of the limit for good.
//   - a one-second ledger: what was written to the shard, each write counted until one second after
//     its response came back. A write goes only when the ledger plus the write stays within the
//     limit. Kinesis counts the per-shard limits per second; the stream received a write at the
//     latest when its response came back, so two writes one of which was sent a second or more
//     after the other's response can never fall into one one-second window, however the windows are
//     aligned (fixed on the second like the local stream, or sliding) and whatever the latency. A
//     bucket alone cannot promise that: in any second it releases its burst plus a second's rate,
//     more than the limit, and with a rate lowered to make room for the burst it wastes the burst's
//     share of the limit for good.
//
// The ledger is conservative: entries that were throttled or failed still count (the stream may
// have counted some of them; retries are rare when pacing holds).

// BurstFraction is the share of a second's limit a shard's token bucket holds (50 %): the most the
// bucket releases at once after an idle spell or a late wake-up (the ledger keeps every second within
// the limit). With 10 %, wake-ups 0–100 ms late (a machine under load) cost 40 % of a 4-shard
// stream's throughput in TestPacingLateWakeups; with 50 %, about 2 %.
const BurstFraction = 0.5

// startFraction is what a new shard's bucket holds (10 % of a second): a fresh producer starts with a
// small burst, not half a second's worth that the ledger would then make it wait for (a wait inside Put
// that a caller's deadline has to absorb); the headroom above it fills only while sends fall behind.
const startFraction = 0.1

// batchFraction is the share of a second's limit a shard waits for before it sends (5 %: 50 records
// or 51 KiB at the Kinesis limits, at least one record), and so the usual size of a request per
// shard. Far below the burst: when a wake-up comes late the bucket keeps refilling up to the burst
// instead of spilling what the limit allows, so late timers and slow responses cost no throughput.
const batchFraction = 0.05

// bucket is a token bucket: rate tokens per second, holding at most capacity. A cost
// larger than the capacity (a record bigger than a burst) is allowed once the bucket is full and
// drives it negative, so it cannot stall; the ledger still keeps the second within the limit.
type bucket struct {
	rate     float64 // tokens per second
	capacity float64
	tokens   float64
	last     time.Time
}

func newBucket(rate, capacity, tokens float64, now time.Time) bucket {
	return bucket{rate: rate, capacity: capacity, tokens: min(tokens, capacity), last: now}
}

func (b *bucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.capacity, b.tokens+b.rate*now.Sub(b.last).Seconds())
		b.last = now
	}
}

// readyAt returns when cost can be taken (now or later).
func (b *bucket) readyAt(now time.Time, cost float64) time.Time {
	b.refill(now)
	need := min(cost, b.capacity) - b.tokens
	if need <= 0 {
		return now
	}
	// Round up to the next microsecond so a sleep of exactly this long always suffices.
	return now.Add(time.Duration(need/b.rate*float64(time.Second)) + time.Microsecond)
}

func (b *bucket) take(now time.Time, cost float64) {
	b.refill(now)
	b.tokens -= cost
}

// ledgerWindow is how long a write counts in a shard's ledger after its response.
const ledgerWindow = time.Second

// ledgerEntry is one request's writes to a shard, counted until until.
type ledgerEntry struct {
	until          time.Time
	records, bytes float64
}

// ledger holds a shard's writes of the last second (see the top of this file). pending is what the
// request being built takes; commit stamps it once the response is back.
type ledger struct {
	recordsLimit, bytesLimit float64
	entries                  []ledgerEntry // in order of until
	records, bytes           float64       // sums of entries
	pendRecords, pendBytes   float64
}

func (l *ledger) expire(now time.Time) {
	i := 0
	for i < len(l.entries) && !now.Before(l.entries[i].until) {
		l.records -= l.entries[i].records
		l.bytes -= l.entries[i].bytes
		i++
	}
	if i > 0 {
		l.entries = append(l.entries[:0], l.entries[i:]...)
		if len(l.entries) == 0 {
			l.records, l.bytes = 0, 0 // no float drift
		}
	}
}

// readyAt returns when records and bytes more can be written (now or later). A write bigger than the
// limit on its own goes when nothing else counts.
func (l *ledger) readyAt(now time.Time, records, bytes float64) time.Time {
	l.expire(now)
	fits := func(r, b float64) bool {
		r += l.pendRecords + records
		b += l.pendBytes + bytes
		return (r <= l.recordsLimit || r == records) && (b <= l.bytesLimit || b == bytes)
	}
	r, b := l.records, l.bytes
	if fits(r, b) {
		return now
	}
	for _, e := range l.entries {
		r -= e.records
		b -= e.bytes
		if fits(r, b) {
			return e.until
		}
	}
	// Only the pending writes are in the way; they count until a second after the response at the
	// earliest (build never waits for those: it sends what it took first).
	return now.Add(ledgerWindow)
}

func (l *ledger) take(records, bytes float64) {
	l.pendRecords += records
	l.pendBytes += bytes
}

// commit counts the pending writes until a second after now (the time their response came back).
func (l *ledger) commit(now time.Time) {
	if l.pendRecords == 0 && l.pendBytes == 0 {
		return
	}
	l.entries = append(l.entries, ledgerEntry{until: now.Add(ledgerWindow), records: l.pendRecords, bytes: l.pendBytes})
	l.records += l.pendRecords
	l.bytes += l.pendBytes
	l.pendRecords, l.pendBytes = 0, 0
}
