package lambda

// enqueue adds an accepted asynchronous event (new or retried) to f's queue.
func (r *Runtime) enqueue(f *function, ev *event) {
	if ev.attempts == 0 {
		r.addBusy(1) // released when the event finishes for good (finish)
	}
	f.qmu.Lock()
	f.queue = append(f.queue, ev)
	f.qmu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// dispatch runs f's queued events in order, as many at once as f's concurrency allows.
func (r *Runtime) dispatch(f *function) {
	for {
		f.qmu.Lock()
		var ev *event
		if len(f.queue) > 0 {
			ev = f.queue[0]
			f.queue = f.queue[1:]
			f.holding = 1 // still counted as queued until it has a slot
		}
		f.qmu.Unlock()
		if ev == nil {
			select {
			case <-f.wake:
				continue
			case <-r.base.Done():
				return
			}
		}
		if r.cfg.Now().Sub(ev.received) > f.fn.MaximumEventAge {
			r.unhold(f)
			r.fail(f, ev, "EventAgeExceeded")
			continue
		}
		select {
		case f.sem <- struct{}{}:
		default:
			f.throttles.Add(1)
			select {
			case f.sem <- struct{}{}:
			case <-r.base.Done():
				return
			}
		}
		r.unhold(f)
		go r.runAsync(f, ev)
	}
}

func (r *Runtime) unhold(f *function) {
	f.qmu.Lock()
	f.holding = 0
	f.qmu.Unlock()
}

func (r *Runtime) runAsync(f *function, ev *event) {
	ev.attempts++
	res := r.execute(f, ev.id, ev.payload)
	if res.errType == "" {
		r.addBusy(-1)
		return
	}
	if r.base.Err() != nil {
		// The runtime was closed under it (a Ctrl-C, a timeout): the event goes with the process, as
		// in a crash, not to the failure destination — it did not fail, it was stopped.
		r.addBusy(-1)
		return
	}
	ev.last = res
	r.log.Warn("async invocation failed", "function", f.name, "request_id", ev.id, "attempt", ev.attempts, "error_type", res.errType)
	if ev.attempts > *f.fn.MaximumRetryAttempts {
		r.fail(f, ev, "RetriesExhausted")
		return
	}
	if r.cfg.Now().Sub(ev.received) > f.fn.MaximumEventAge {
		r.fail(f, ev, "EventAgeExceeded")
		return
	}
	f.retries.Add(1)
	delays := r.cfg.RetryDelays
	var d = delays[len(delays)-1]
	if ev.attempts-1 < len(delays) {
		d = delays[ev.attempts-1]
	}
	f.qmu.Lock()
	f.waiting++
	f.qmu.Unlock()
	key := new(int)
	r.mu.Lock()
	if r.base.Err() != nil {
		r.mu.Unlock()
		r.addBusy(-1)
		return
	}
	r.stops[key] = r.cfg.AfterFunc(d, func() {
		r.mu.Lock()
		_, live := r.stops[key]
		delete(r.stops, key)
		r.mu.Unlock()
		if !live {
			return // Close took care of it
		}
		f.qmu.Lock()
		f.waiting--
		f.qmu.Unlock()
		r.enqueue(f, ev)
	})
	r.mu.Unlock()
}

// fail hands an event that will not be retried to the failure destination and finishes it.
func (r *Runtime) fail(f *function, ev *event, condition string) {
	defer r.addBusy(-1)
	f.dropped.Add(1)
	fe := FailedEvent{
		Function: f.name, FunctionArn: f.arn, RequestID: ev.id, Condition: condition, Attempts: ev.attempts,
		Time: r.cfg.Now(), Payload: ev.payload, ResponsePayload: ev.last.payload,
	}
	if ev.last.errType != "" {
		fe.FunctionError = "Unhandled"
	}
	r.log.Error("async event failed for good", "function", f.name, "request_id", ev.id, "condition", condition, "attempts", ev.attempts)
	f.fmu.Lock()
	f.failed = append(f.failed, fe)
	f.fmu.Unlock()
	if f.fn.OnFailure != nil {
		f.fn.OnFailure(fe)
	}
}
