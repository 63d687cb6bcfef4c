package audio

import (
	"math"
	"sync"
)

// Mixer sums several PCM sources (the room's audio tracks) into one telephone stream.
//
// Each source is a bounded queue that its track's goroutine fills at network pace; the
// phone writer drains one frame per 20 ms tick with MixFrame. A queue that runs dry is
// mixed as silence, and one that falls too far behind drops its oldest samples, so a
// stalled or bursty track delays the call by at most maxQueued samples.
type Mixer struct {
	mu        sync.Mutex
	sources   map[string]*source
	maxQueued int
}

type source struct {
	samples []int16
}

// NewMixer returns a mixer that keeps at most maxQueued samples per source.
func NewMixer(maxQueued int) *Mixer {
	return &Mixer{sources: map[string]*source{}, maxQueued: maxQueued}
}

// Write queues pcm for the source id, adding the source if it is new.
func (m *Mixer) Write(id string, pcm []int16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sources[id]
	if s == nil {
		s = &source{}
		m.sources[id] = s
	}
	s.samples = append(s.samples, pcm...)
	if over := len(s.samples) - m.maxQueued; over > 0 {
		s.samples = append(s.samples[:0], s.samples[over:]...)
	}
}

// Remove forgets the source id and whatever it still had queued.
func (m *Mixer) Remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sources, id)
}

// MixFrame fills dst with the sum of the next len(dst) samples of every source
// (silence where a source has none) and reports whether any source contributed.
func (m *Mixer) MixFrame(dst []int16) bool {
	acc := make([]int32, len(dst))
	any := false
	m.mu.Lock()
	for _, s := range m.sources {
		n := min(len(s.samples), len(dst))
		if n == 0 {
			continue
		}
		any = true
		for i := range n {
			acc[i] += int32(s.samples[i])
		}
		s.samples = append(s.samples[:0], s.samples[n:]...)
	}
	m.mu.Unlock()
	for i, v := range acc {
		dst[i] = saturate(v)
	}
	return any
}

func saturate(v int32) int16 {
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}

// MixInto adds src to dst sample by sample (saturating); src may be shorter or nil.
func MixInto(dst, src []int16) {
	for i := range min(len(dst), len(src)) {
		dst[i] = saturate(int32(dst[i]) + int32(src[i]))
	}
}
