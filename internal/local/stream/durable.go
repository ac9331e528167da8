package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/taxistream/taxistream/internal/kinesislimit"
)

// A durable stream (Config.Dir) keeps, under its folder:
//
//	layout.json              name, region, creation time and the shards (hash ranges, parents,
//	                         children, starting and ending sequence numbers), rewritten on every reshard
//	shardId-NNNNNNNNNNNN/    the shard's segments (log.go)
//
// Opening the folder again continues the stream: the same shards and records, and sequence numbers
// above every one it gave before.

const layoutFile = "layout.json"

// ErrLayoutChanged is returned by New when the stream in Config.Dir has a different number of open
// shards than Config.ShardCount, or another name: the folder belongs to another stream.
var ErrLayoutChanged = errors.New("the stream in the folder does not match the configuration")

type layout struct {
	Version int           `json:"version"`
	Name    string        `json:"name"`
	Region  string        `json:"region"`
	Created time.Time     `json:"created"`
	Shards  []shardLayout `json:"shards"`
}

type shardLayout struct {
	ID        string `json:"id"`
	Start     string `json:"starting_hash_key"`
	End       string `json:"ending_hash_key"`
	Parent    string `json:"parent,omitempty"`
	AdjParent string `json:"adjacent_parent,omitempty"`
	StartSeq  string `json:"starting_sequence_number"`
	EndSeq    string `json:"ending_sequence_number,omitempty"`
	Children  []int  `json:"children,omitempty"`
}

func (s *Stream) shardDir(id string) string {
	if s.dir == "" {
		return ""
	}
	return filepath.Join(s.dir, id)
}

// Reopened reports whether New continued a stream it found in Config.Dir.
func (s *Stream) Reopened() bool { return s.reopened }

// saveLayout writes layout.json (atomically). Must be called with mu held, or before the stream is shared.
func (s *Stream) saveLayout() error {
	if s.dir == "" {
		return nil
	}
	lo := layout{Version: 1, Name: s.name, Region: s.region, Created: s.created}
	for _, sh := range s.shards {
		lo.Shards = append(lo.Shards, shardLayout{
			ID: sh.id, Start: sh.start.String(), End: sh.end.String(), Parent: sh.parent, AdjParent: sh.adjParent,
			StartSeq: sh.startSeq, EndSeq: sh.endSeq, Children: sh.children,
		})
	}
	b, err := json.MarshalIndent(lo, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", s.dir, err)
	}
	name := filepath.Join(s.dir, layoutFile)
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// reopen loads the stream kept in s.dir, if there is one. found is false for a folder without one.
func (s *Stream) reopen(shardCount int) (found bool, err error) {
	name := filepath.Join(s.dir, layoutFile)
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening the stream in %s: %w", s.dir, err)
	}
	var lo layout
	if err := json.Unmarshal(b, &lo); err != nil {
		return false, fmt.Errorf("opening the stream in %s: reading %s: %w", s.dir, name, err)
	}
	if lo.Name != s.name {
		return true, fmt.Errorf("%w: %s holds stream %s, not %s", ErrLayoutChanged, s.dir, lo.Name, s.name)
	}
	s.created = lo.Created
	for i, sl := range lo.Shards {
		start, ok1 := new(big.Int).SetString(sl.Start, 10)
		end, ok2 := new(big.Int).SetString(sl.End, 10)
		if sl.ID != ShardID(i) || !ok1 || !ok2 {
			s.Close()
			return true, fmt.Errorf("opening the stream in %s: %s: shard %d is not valid", s.dir, name, i)
		}
		sh := &shard{
			id: sl.ID, index: i, start: start, end: end, parent: sl.Parent, adjParent: sl.AdjParent,
			startSeq: sl.StartSeq, endSeq: sl.EndSeq, children: sl.Children, readTokens: kinesislimit.ShardReadBytesPerSecond,
		}
		if sh.log, err = openShardLog(s.shardDir(sh.id)); err != nil {
			s.Close()
			return true, fmt.Errorf("opening the stream in %s: %w", s.dir, err)
		}
		s.shards = append(s.shards, sh)
		s.bytes += sh.log.bytes
		for _, seq := range []string{sl.StartSeq, sl.EndSeq} {
			if len(seq) == 56 {
				if c, err := strconv.ParseUint(seq[4:24], 10, 64); err == nil {
					s.counter = max(s.counter, c)
				}
			}
		}
		s.counter = max(s.counter, sh.log.lastCounter)
	}
	open := 0
	for _, sh := range s.shards {
		if !sh.closed() {
			open++
		}
	}
	if open != shardCount {
		s.Close()
		return true, fmt.Errorf("%w: %s holds stream %s with %d open shard(s), the configuration asks for %d", ErrLayoutChanged, s.dir, s.name, open, shardCount)
	}
	s.counter = max(s.counter, uint64(s.now().UnixNano()))
	s.reopened = true
	return true, nil
}

// Close closes the stream's files. The stream must not be used after.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range s.shards {
		if sh.log != nil {
			sh.log.close()
		}
	}
	return nil
}
