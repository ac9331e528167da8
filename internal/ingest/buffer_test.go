package ingest

import (
	"testing"
	"time"

	"github.com/taxistream/taxistream/internal/producer"
)

// TestBufferFor: the producer never holds more than a quarter of the deadline margin's worth of one
// shard's write limit, so the flush at a hand-over fits in its half of the margin.
func TestBufferFor(t *testing.T) {
	for _, tt := range []struct {
		margin time.Duration
		want   int
	}{
		{0, 256 << 10},
		{100 * time.Millisecond, 256 << 10},
		{2 * time.Second, 1 << 19},
		{5 * time.Second, 5 << 18},
		{30 * time.Second, 30 << 18},
		{60 * time.Second, producer.DefaultMaxBufferedBytes},
	} {
		if got := bufferFor(tt.margin); got != tt.want {
			t.Errorf("bufferFor(%s) = %d, want %d", tt.margin, got, tt.want)
		}
	}
}
