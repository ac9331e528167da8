package esm

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"
)

// The state file (Config.StatePath) is what Lambda keeps for a mapping between polls: per shard the
// checkpoint (the last record processed or sent to the on-failure destination), the open tumbling
// window and its state, and whether the shard is finished; plus when the mapping was created (its
// LATEST). It is rewritten (atomically) whenever a checkpoint or a window moves, so a mapping created
// again on it (a restart, a crash) goes on after the last batch that succeeded: a batch in flight at
// the crash is invoked again (at least once, as on AWS).
type state struct {
	Version int                   `json:"version"`
	Created time.Time             `json:"created"`
	Shards  map[string]shardSaved `json:"shards"`
	Order   []string              `json:"order"`
}

type shardSaved struct {
	Start      string       `json:"start"`
	Parents    []string     `json:"parents,omitempty"`
	Checkpoint string       `json:"checkpoint,omitempty"`
	Done       bool         `json:"done,omitempty"`
	Window     *savedWindow `json:"window,omitempty"`
}

type savedWindow struct {
	Start time.Time         `json:"start"`
	End   time.Time         `json:"end"`
	State map[string]string `json:"state"`
}

func (st *shardState) saved() shardSaved {
	sv := shardSaved{Start: st.start, Parents: st.parents, Checkpoint: st.checkpoint, Done: st.done}
	if st.win != nil {
		sv.Window = &savedWindow{Start: st.win.start, End: st.win.end, State: maps.Clone(st.win.state)}
	}
	return sv
}

// loadState reads the state file into e.shards; resumed is false when there is none.
func (e *ESM) loadState() (resumed bool, err error) {
	if e.cfg.StatePath == "" {
		return false, nil
	}
	b, err := os.ReadFile(e.cfg.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the state: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return false, fmt.Errorf("reading the state %s: %w", e.cfg.StatePath, err)
	}
	e.created = s.Created
	e.saved = map[string]shardSaved{}
	for _, id := range s.Order {
		sv, ok := s.Shards[id]
		if !ok {
			continue
		}
		st := &shardState{e: e, id: id, start: sv.Start, parents: sv.Parents, checkpoint: sv.Checkpoint, lastSeq: sv.Checkpoint,
			acquired: true, done: sv.Done}
		if w := sv.Window; w != nil {
			st.win = &window{start: w.Start, end: w.End, state: w.State}
			if st.win.state == nil {
				st.win.state = map[string]string{}
			}
		}
		e.shards[id] = st
		e.order = append(e.order, id)
		e.saved[id] = sv
	}
	return true, nil
}

// persist records the shard's checkpoint and window for the state file and writes it, when they
// changed. It is called by the shard's own goroutine.
func (e *ESM) persist(st *shardState) {
	if e.cfg.StatePath == "" || !st.dirty {
		return
	}
	sv := st.saved()
	e.mu.Lock()
	if e.saved == nil {
		e.saved = map[string]shardSaved{}
	}
	e.saved[st.id] = sv
	e.mu.Unlock()
	st.dirty = false
	if err := e.saveState(); err != nil {
		st.dirty = true // try again with the next change
		e.count(func(s *Stats) { s.Errors++ })
		e.cfg.Logger.Warn("event source mapping: saving the state", "function", e.cfg.FunctionName, "err", err)
	}
}

// saveState writes the state file from what the shards recorded (and the shards known but not yet
// polled, at their starting position).
func (e *ESM) saveState() error {
	if e.cfg.StatePath == "" {
		return nil
	}
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	e.mu.Lock()
	s := state{Version: 1, Created: e.created, Shards: map[string]shardSaved{}, Order: append([]string(nil), e.order...)}
	for _, id := range e.order {
		if sv, ok := e.saved[id]; ok {
			s.Shards[id] = sv
		} else {
			st := e.shards[id]
			s.Shards[id] = shardSaved{Start: st.start, Parents: st.parents, Done: st.done}
		}
	}
	e.mu.Unlock()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(e.cfg.StatePath), 0o755); err != nil {
		return fmt.Errorf("saving the state: %w", err)
	}
	tmp := e.cfg.StatePath + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("saving the state: %w", err)
	}
	if err := os.Rename(tmp, e.cfg.StatePath); err != nil {
		return fmt.Errorf("saving the state: %w", err)
	}
	return nil
}
