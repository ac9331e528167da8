package producer

// Aggregation: user records join their predicted shard's KPL aggregate, sealed aggregates wait in
// the shard's queue, and a shard map refresh re-aggregates what is not yet written.

import (
	"context"
	"fmt"
	"time"

	"github.com/taxistream/taxistream/internal/kpl"
)

// userRec is a buffered user record (its data is our copy).
type userRec struct {
	data []byte
	pk   string
	tag  int64
}

// kRecord is one Kinesis record: an aggregate or a single user record.
type kRecord struct {
	data      []byte
	pk        string
	users     []userRec
	shard     string // predicted (RouteByKey) or chosen (RouteBalanced; "" while in the pool)
	retries   int
	maybeSent bool
}

func (r *kRecord) size() int { return len(r.data) + len(r.pk) }

type shardState struct {
	id       string
	agg      kpl.Aggregator
	aggUsers []userRec
	ready    []*kRecord
	// Pacing (pacing.go): token buckets and the one-second ledger.
	bytes   bucket
	records bucket
	written ledger
	// Backoff: no write before notBefore. throttles counts the consecutive responses that throttled
	// the shard, failures those with internal failures or request errors; a response with a write
	// stored on the shard resets both.
	notBefore time.Time
	throttles int
	failures  int
	// taken counts the bytes this shard has taken for requests (RouteBalanced picks the least).
	taken int64
}

// pacing is the part of a shardState that outlives a shard map refresh.
func (s *shardState) pacing() *shardState {
	return &shardState{id: s.id, bytes: s.bytes, records: s.records, written: s.written,
		notBefore: s.notBefore, throttles: s.throttles, failures: s.failures, taken: s.taken}
}

func (p *Producer) state(id string) *shardState {
	s, ok := p.states[id]
	if !ok {
		now := p.now()
		s = &shardState{
			id:      id,
			bytes:   newBucket(p.bytesRate, p.bytesRate*BurstFraction, p.bytesRate*startFraction, now),
			records: newBucket(p.recordsRate, max(1, p.recordsRate*BurstFraction), max(1, p.recordsRate*startFraction), now),
			written: ledger{recordsLimit: p.recordsRate, bytesLimit: p.bytesRate},
		}
		p.states[id] = s
		p.order = append(p.order, id)
	}
	return s
}

// openStates creates the pacing state of every open shard (RouteBalanced: any shard may take the
// pool's records; RouteByKey creates states as keys map to shards).
func (p *Producer) openStates() error {
	if p.cfg.Routing != RouteBalanced {
		return nil
	}
	if len(p.shards.ranges) == 0 {
		return fmt.Errorf("listing shards of %s: no open shard", p.cfg.stream())
	}
	for _, r := range p.shards.ranges {
		p.state(r.id)
	}
	return nil
}

// queues returns every queue that holds records: the shards' and the pool.
func (p *Producer) queues() []*shardState {
	qs := make([]*shardState, 0, len(p.order)+1)
	for _, id := range p.order {
		qs = append(qs, p.states[id])
	}
	return append(qs, &p.pool)
}

// add puts a user record into its aggregate or queue: its predicted shard's (RouteByKey) or the
// pool's (RouteBalanced).
func (p *Producer) add(u userRec) {
	s := &p.pool
	if p.cfg.Routing != RouteBalanced {
		s = p.state(p.shards.predict(u.pk))
	}
	p.buffered += len(u.data) + len(u.pk)
	if !p.cfg.Aggregate {
		p.enqueue(s, &kRecord{data: u.data, pk: u.pk, users: []userRec{u}, shard: s.id})
		return
	}
	r := kpl.UserRecord{PartitionKey: u.pk, Data: u.data}
	if s.agg.Len() > 0 && s.agg.SizeWith(r)+len(s.aggUsers[0].pk) > p.aggMax {
		p.seal(s)
	}
	if s.agg.Len() == 0 && s.agg.SizeWith(r)+len(u.pk) > p.aggMax {
		// Too big for an aggregate: alone, as a plain record.
		p.enqueue(s, &kRecord{data: u.data, pk: u.pk, users: []userRec{u}, shard: s.id})
		return
	}
	s.agg.Add(r)
	s.aggUsers = append(s.aggUsers, u)
}

func (p *Producer) enqueue(s *shardState, r *kRecord) {
	s.ready = append(s.ready, r)
	p.readyCount++
	p.readyBytes += r.size()
}

// seal turns a shard's open aggregate into a Kinesis record. An aggregate of one user record goes
// as the plain record (as the KPL does).
func (p *Producer) seal(s *shardState) {
	switch len(s.aggUsers) {
	case 0:
		return
	case 1:
		u := s.aggUsers[0]
		p.enqueue(s, &kRecord{data: u.data, pk: u.pk, users: []userRec{u}, shard: s.id})
	default:
		p.enqueue(s, &kRecord{data: s.agg.Bytes(), pk: s.aggUsers[0].pk, users: s.aggUsers, shard: s.id})
	}
	s.aggUsers = nil
	s.agg.Reset()
}

func (p *Producer) sealAll() {
	for _, id := range p.order {
		p.seal(p.states[id])
	}
	p.seal(&p.pool)
}

// refresh lists the shards again and re-aggregates everything not yet written per new shard.
func (p *Producer) refresh(ctx context.Context) error {
	m, err := listOpenShards(ctx, p.c, p.cfg)
	if err != nil {
		return err
	}
	p.shards, p.stale = m, false
	p.stats.Reshards++
	p.log.InfoContext(ctx, "kinesis shard map refreshed", "stream", p.cfg.stream(), "open_shards", len(m.ranges))

	var users []userRec
	old, oldOrder := p.states, p.order
	for _, s := range p.queues() {
		for _, r := range s.ready {
			users = append(users, r.users...)
		}
		users = append(users, s.aggUsers...)
	}
	p.pool = shardState{}
	p.states, p.order, p.next = map[string]*shardState{}, nil, 0
	p.buffered, p.readyCount, p.readyBytes = 0, 0, 0
	for _, id := range oldOrder { // keep the pacing state of shards that still exist
		if m.has(id) {
			p.states[id] = old[id].pacing()
			p.order = append(p.order, id)
		}
	}
	if err := p.openStates(); err != nil {
		return err
	}
	for _, u := range users {
		p.add(u)
	}
	return nil
}
