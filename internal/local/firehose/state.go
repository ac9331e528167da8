package firehose

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// The state file (Config.StatePath): when the delivery stream was created and, per shard, the last
// record whose user records are all in delivered objects. It is rewritten (atomically) whenever that
// moves, i.e. after deliveries: what was only buffered is read again after a restart.
type state struct {
	Version int                   `json:"version"`
	Created time.Time             `json:"created"`
	Shards  map[string]shardSaved `json:"shards"`
	Order   []string              `json:"order"`
}

type shardSaved struct {
	// After is the checkpoint: read again after this sequence number. Empty: from Start.
	After string `json:"after,omitempty"`
	// Start is AT_TIMESTAMP (the creation time: LATEST as of then) or TRIM_HORIZON.
	Start string `json:"start"`
	// Done: the shard is closed and every record of it delivered.
	Done bool `json:"done,omitempty"`
}

// loadState reads the state file; resumed is false when there is none (a new delivery stream).
func (f *Firehose) loadState() (resumed bool, err error) {
	if f.cfg.StatePath == "" {
		return false, nil
	}
	b, err := os.ReadFile(f.cfg.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return false, fmt.Errorf("reading the state %s: %w", f.cfg.StatePath, err)
	}
	f.created = st.Created
	for _, id := range st.Order {
		sv, ok := st.Shards[id]
		if !ok {
			continue
		}
		f.shards[id] = &shardState{checkpoint: sv.After, lastSeq: sv.After, start: types.ShardIteratorType(sv.Start), done: sv.Done}
		f.order = append(f.order, id)
	}
	return true, nil
}

// advance moves every shard's checkpoint to the last record no buffer still holds part of, and saves
// the state when a checkpoint moved. Must be called with mu held.
func (f *Firehose) advance() error {
	changed := false
	for id, st := range f.shards {
		cp, held := st.lastSeq, false
		for _, b := range []*buffer{&f.main, &f.errs} {
			if from, ok := b.from[id]; ok && (!held || seqBefore(from, cp)) {
				cp, held = from, true
			}
		}
		if cp != st.checkpoint {
			st.checkpoint, changed = cp, true
		}
	}
	if !changed {
		return nil
	}
	return f.saveState()
}

// seqBefore reports whether sequence number a is before b ("" is before everything).
func seqBefore(a, b string) bool {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// saveState writes the state file. Must be called with mu held (or before the stream is shared).
func (f *Firehose) saveState() error {
	if f.cfg.StatePath == "" {
		return nil
	}
	st := state{Version: 1, Created: f.created, Shards: map[string]shardSaved{}, Order: f.order}
	for id, s := range f.shards {
		held := false
		for _, b := range []*buffer{&f.main, &f.errs} {
			_, ok := b.from[id]
			held = held || ok
		}
		st.Shards[id] = shardSaved{After: s.checkpoint, Start: string(s.start), Done: s.done && !held && s.checkpoint == s.lastSeq}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.cfg.StatePath), 0o755); err != nil {
		return fmt.Errorf("saving the state: %w", err)
	}
	tmp := f.cfg.StatePath + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("saving the state: %w", err)
	}
	if err := os.Rename(tmp, f.cfg.StatePath); err != nil {
		return fmt.Errorf("saving the state: %w", err)
	}
	return nil
}
