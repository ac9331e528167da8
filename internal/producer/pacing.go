package producer

import "time"

// bucket is a token bucket: rate tokens per second, holding at most one second's worth. It starts
// full. A cost larger than the capacity (a record bigger than a second's budget) is allowed once the
// bucket is full and drives it negative, so it cannot stall.
type bucket struct {
	rate   float64 // tokens per second
	tokens float64
	last   time.Time
}

func newBucket(rate float64, now time.Time) bucket {
	return bucket{rate: rate, tokens: rate, last: now}
}

func (b *bucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.rate, b.tokens+b.rate*now.Sub(b.last).Seconds())
		b.last = now
	}
}

// readyAt returns when cost can be taken (now or later).
func (b *bucket) readyAt(now time.Time, cost float64) time.Time {
	b.refill(now)
	need := min(cost, b.rate) - b.tokens
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
