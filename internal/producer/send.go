package producer

// Sending: requests built from the shard queues within pacing and request limits, the PutRecords
// call, and what a response or a request error does to each record (stored, retried, failed).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

// sendOne writes one request: waits (bounded by ctx) until some shard may send, then sends what the
// token buckets and request limits allow, and handles the response. It returns an error only when
// ctx ends or the request failed for good.
func (p *Producer) sendOne(ctx context.Context) error {
	for {
		if p.stale {
			if err := p.refresh(ctx); err != nil {
				return err
			}
			p.sealAll()
		}
		if p.readyCount == 0 {
			return nil
		}
		req, wake := p.build(p.now())
		if len(req) > 0 {
			return p.send(ctx, req)
		}
		if err := p.sleepUntil(ctx, wake); err != nil {
			return err
		}
	}
}

// build takes records for one request from the shard queues (RouteBalanced: every shard from the
// pool), round robin from p.next. A request goes when at least one shard may send a whole batch (see
// batchReadyAt); it then also takes from every other shard what its pacing allows at once, so that
// shards share requests. When nothing may be sent now it returns the earliest time something may.
func (p *Producer) build(now time.Time) (req []*kRecord, wake time.Time) {
	n := len(p.order)
	due := false
	for _, id := range p.order {
		s := p.states[id]
		q := p.queueOf(s)
		if len(*q) == 0 {
			continue
		}
		at := p.batchReadyAt(s, *q, now)
		if s.notBefore.After(at) {
			at = s.notBefore
		}
		if at.After(now) {
			wake = earliest(wake, at)
			continue
		}
		due = true
	}
	if !due {
		return nil, wake
	}
	bytes := 0
	// RouteBalanced: a shard takes at most its share of a request (of what is ready, up to a
	// request's limits), so that when pacing allows more (a stream without limits) the shards still
	// get equal parts.
	shareRecords, shareBytes := float64(kinesislimit.MaxRecordsPerRequest), float64(kinesislimit.MaxRequestBytes)
	if p.cfg.Routing == RouteBalanced && n > 0 {
		shareRecords = float64(min(kinesislimit.MaxRecordsPerRequest, p.readyCount)) / float64(n)
		shareBytes = float64(min(kinesislimit.MaxRequestBytes, p.readyBytes)) / float64(n)
	}
	order := p.order
	if p.cfg.Routing == RouteBalanced {
		// Least loaded first: the shard that has taken the fewest bytes so far (ties in round-robin order).
		order = make([]string, n)
		for k := range n {
			order[k] = p.order[(p.next+k)%n]
		}
		slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(p.states[a].taken, p.states[b].taken) })
	}
	for k := 0; k < n && len(req) < kinesislimit.MaxRecordsPerRequest; k++ {
		id := order[k]
		if p.cfg.Routing != RouteBalanced {
			id = p.order[(p.next+k)%n]
		}
		s := p.states[id]
		q := p.queueOf(s)
		if len(*q) == 0 || now.Before(s.notBefore) {
			continue
		}
		taken, takenBytes := 0, 0.0
		for len(*q) > 0 && len(req) < kinesislimit.MaxRecordsPerRequest {
			r := (*q)[0]
			size := float64(r.size())
			if bytes+r.size() > kinesislimit.MaxRequestBytes || (taken > 0 && !p.inBatch(taken, takenBytes, size)) {
				break
			}
			if taken > 0 && (float64(taken+1) > shareRecords || takenBytes+size > shareBytes) {
				break
			}
			if s.bytes.readyAt(now, size).After(now) || s.records.readyAt(now, 1).After(now) ||
				s.written.readyAt(now, 1, size).After(now) {
				break
			}
			s.bytes.take(now, size)
			s.records.take(now, 1)
			s.written.take(1, size)
			*q = (*q)[1:]
			r.shard = s.id
			s.taken += int64(r.size())
			p.readyCount--
			p.readyBytes -= r.size()
			bytes += r.size()
			req = append(req, r)
			taken++
			takenBytes += size
		}
	}
	if n > 0 {
		p.next = (p.next + 1) % n
	}
	return req, wake
}

// queueOf returns the queue shard s sends from: its own, or with RouteBalanced the pool.
func (p *Producer) queueOf(s *shardState) *[]*kRecord {
	if p.cfg.Routing == RouteBalanced {
		return &p.pool.ready
	}
	return &s.ready
}

// A shard's batch is the records at the head of its queue within batchFraction of its limits (at
// least one record; one in Ordered mode) and one request. A shard sends when its pacing allows a
// whole batch, and at most a batch per request: requests stay at a few dozen records per shard
// rather than one each, and a shard that waited does not send a double batch that the ledger then
// makes it wait for a second later (a cycle that costs throughput for good).

// inBatch says whether a record of size bytes joins a batch that has records and bytes already.
func (p *Producer) inBatch(records int, bytes, size float64) bool {
	return !p.cfg.Ordered && float64(records+1) <= max(1, p.recordsRate*batchFraction) &&
		bytes+size <= p.bytesRate*batchFraction && records < kinesislimit.MaxRecordsPerRequest &&
		bytes+size <= kinesislimit.MaxRequestBytes
}

// batchReadyAt returns when shard s may send its next batch from queue q.
func (p *Producer) batchReadyAt(s *shardState, q []*kRecord, now time.Time) time.Time {
	var records int
	var bytes float64
	for _, r := range q {
		size := float64(r.size())
		if records > 0 && !p.inBatch(records, bytes, size) {
			break
		}
		records++
		bytes += size
	}
	at := s.bytes.readyAt(now, bytes)
	if t := s.records.readyAt(now, float64(records)); t.After(at) {
		at = t
	}
	if t := s.written.readyAt(now, float64(records), bytes); t.After(at) {
		at = t
	}
	return at
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// requeue puts records back at the front of their shards' queues (RouteBalanced: of the pool, for
// any shard to take), keeping their order.
func (p *Producer) requeue(recs []*kRecord) {
	if p.cfg.Routing == RouteBalanced {
		for _, r := range recs {
			p.readyCount++
			p.readyBytes += r.size()
		}
		p.pool.ready = append(append([]*kRecord(nil), recs...), p.pool.ready...)
		return
	}
	byShard := map[string][]*kRecord{}
	var ids []string
	for _, r := range recs {
		if _, ok := byShard[r.shard]; !ok {
			ids = append(ids, r.shard)
		}
		byShard[r.shard] = append(byShard[r.shard], r)
		p.readyCount++
		p.readyBytes += r.size()
	}
	for _, id := range ids {
		s := p.state(id)
		s.ready = append(byShard[id], s.ready...)
	}
}

// backOff delays a shard after a response that throttled it (throttle) or failed its records
// otherwise (internal failure, request error): full jitter, capped at throttleBackoffCap for throttles
// (the shard's second is full; the next one is at most a second away) and at backoffCap otherwise.
// Called once per shard and response, so the exponent counts responses, not entries.
func (p *Producer) backOff(id string, throttle bool, now time.Time) {
	s := p.state(id)
	var d time.Duration
	if throttle {
		s.throttles++
		d = p.jitter(s.throttles, throttleBackoffCap)
	} else {
		s.failures++
		d = p.jitter(s.failures, backoffCap)
	}
	if t := now.Add(d); t.After(s.notBefore) {
		s.notBefore = t
	}
}

// retryOrFail requeues r for another try or, past MaxRetries, fails its user records.
func (p *Producer) retryOrFail(r *kRecord, why string, retry *[]*kRecord) {
	r.retries++
	if p.maxRetries >= 0 && r.retries > p.maxRetries {
		for _, u := range r.users {
			p.fail(u, ErrRetriesExhausted, fmt.Sprintf("still failing after %d retries: %s", p.maxRetries, why))
		}
		p.buffered -= r.userBytes()
		return
	}
	p.stats.Retries++
	*retry = append(*retry, r)
}

func (r *kRecord) userBytes() int {
	n := 0
	for _, u := range r.users {
		n += len(u.data) + len(u.pk)
	}
	return n
}

func (p *Producer) send(ctx context.Context, req []*kRecord) error {
	in := &kinesis.PutRecordsInput{Records: make([]types.PutRecordsRequestEntry, len(req))}
	if p.cfg.StreamARN != "" {
		in.StreamARN = &p.cfg.StreamARN
	} else {
		in.StreamName = &p.cfg.StreamName
	}
	for i, r := range req {
		in.Records[i] = types.PutRecordsRequestEntry{Data: r.data, PartitionKey: aws.String(r.pk)}
		if p.cfg.Routing == RouteBalanced {
			if ehk := p.shards.explicitHashKey(r.shard); ehk != "" {
				in.Records[i].ExplicitHashKey = aws.String(ehk)
			}
		}
	}
	p.stats.Requests++
	out, err := p.c.PutRecords(ctx, in, putOptions)
	now := p.now()
	// Whatever the outcome, the stream may have counted the request by now: it counts in the
	// shards' ledgers until a second from now.
	for _, r := range req {
		if s, ok := p.states[r.shard]; ok {
			s.written.commit(now)
		}
	}
	if err == nil && len(out.Records) != len(req) {
		err = fmt.Errorf("putting records: %d results for %d entries: %w", len(out.Records), len(req),
			errMalformedResponse)
	}
	if err != nil {
		return p.requestFailed(ctx, req, err, now)
	}

	var (
		retry []*kRecord
		// Per shard: stored a record, throttled, failed otherwise (in order of appearance).
		stored          = map[string]bool{}
		throttled       = map[string]bool{}
		failed          = map[string]bool{}
		throttledShards []string
		failedShards    []string
	)
	for i, res := range out.Records {
		r := req[i]
		if res.ErrorCode == nil {
			p.stats.KinesisRecords++
			p.stats.UserRecords += int64(len(r.users))
			p.stats.Bytes += int64(r.size())
			p.buffered -= r.userBytes()
			stored[r.shard] = true
			if res.ShardId != nil && r.shard != "" && *res.ShardId != r.shard {
				p.markStale(ctx, "write landed on another shard", r.shard, *res.ShardId)
			}
			continue
		}
		code, msg := *res.ErrorCode, aws.ToString(res.ErrorMessage)
		switch code {
		case codeThroughputExceeded:
			p.stats.Throttled++
			shard := throttledShard(msg)
			if shard == "" {
				shard = r.shard
			} else if !p.shards.has(shard) {
				p.markStale(ctx, "throttle names an unknown shard", r.shard, shard)
			}
			if !throttled[shard] {
				throttled[shard] = true
				throttledShards = append(throttledShards, shard)
			}
			p.retryOrFail(r, code+": "+msg, &retry)
		case codeInternalFailure:
			if !failed[r.shard] {
				failed[r.shard] = true
				failedShards = append(failedShards, r.shard)
			}
			p.retryOrFail(r, code+": "+msg, &retry)
		default:
			for _, u := range r.users {
				p.fail(u, fmt.Errorf("%w: %s: %s", ErrEntryRejected, code, msg), code+": "+msg)
			}
			p.buffered -= r.userBytes()
		}
	}
	// A shard that stored a record is not congested: its backoff starts over. One that was throttled
	// (the shard the message names) or failed backs off once for this response.
	for id := range stored {
		if s, ok := p.states[id]; ok {
			s.throttles, s.failures = 0, 0
		}
	}
	for _, id := range throttledShards {
		p.backOff(id, true, now)
	}
	for _, id := range failedShards {
		if !throttled[id] {
			p.backOff(id, false, now)
		}
	}
	p.requeue(retry)
	return nil
}

var errMalformedResponse = errors.New("malformed PutRecords response")

func (p *Producer) markStale(ctx context.Context, why, predicted, actual string) {
	if !p.stale {
		p.log.InfoContext(ctx, "kinesis shard map is stale", "reason", why, "predicted", predicted, "shard_id", actual)
	}
	p.stale = true
}

// requestFailed handles a whole-request error.
func (p *Producer) requestFailed(ctx context.Context, req []*kRecord, err error, now time.Time) error {
	if ctx.Err() != nil {
		// The request may or may not have been stored; it goes back so Flush reports it as not written.
		for _, r := range req {
			r.maybeSent = true
		}
		p.requeue(req)
		return fmt.Errorf("putting records to %s: %w", p.cfg.stream(), ctx.Err())
	}
	class := classify(err)
	if errors.Is(err, errMalformedResponse) {
		class = retryMaybeSent
	}
	if class == terminal {
		for _, r := range req {
			for _, u := range r.users {
				p.fail(u, err, "request failed: "+err.Error())
			}
			p.buffered -= r.userBytes()
		}
		return fmt.Errorf("putting records to %s: %w", p.cfg.stream(), err)
	}
	p.log.WarnContext(ctx, "kinesis request failed; retrying", "stream", p.cfg.stream(), "records", len(req), "err", err)
	var retry []*kRecord
	seen := map[string]bool{}
	for _, r := range req {
		if class == retryMaybeSent {
			r.maybeSent = true
			p.stats.PossibleDuplicates += int64(len(r.users))
		}
		if !seen[r.shard] {
			seen[r.shard] = true
			p.backOff(r.shard, class == retryNotStored, now)
		}
		p.retryOrFail(r, "request error: "+err.Error(), &retry)
	}
	p.requeue(retry)
	return nil
}
