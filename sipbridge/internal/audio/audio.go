// Package audio holds the telephone-side PCM plumbing of the bridge: the 8 kHz mono
// 20 ms frame that every G.711 packet carries, a framer that cuts arbitrary chunks into
// such frames, and a mixer that sums the room's audio tracks into one frame per tick.
package audio

import "time"

const (
	// SampleRate is the telephone sample rate (G.711 is 8 kHz only).
	SampleRate = 8000
	// FrameDuration is the packet time we send and expect (ptime 20 in SDP).
	FrameDuration = 20 * time.Millisecond
	// FrameSamples is the number of mono samples in one frame: 8000 Hz × 20 ms.
	FrameSamples = SampleRate * int(FrameDuration/time.Millisecond) / 1000
)

// Framer cuts a stream of PCM chunks of any length into frames of exactly Size samples.
// It is not safe for concurrent use: one goroutine feeds one stream.
type Framer struct {
	Size    int
	pending []int16
}

// NewFramer returns a framer for frames of size samples.
func NewFramer(size int) *Framer {
	return &Framer{Size: size, pending: make([]int16, 0, 2*size)}
}

// Push adds pcm to the stream and calls emit for every frame that is now complete.
// The frame passed to emit is only valid during the call.
func (f *Framer) Push(pcm []int16, emit func(frame []int16)) {
	f.pending = append(f.pending, pcm...)
	done := 0
	for len(f.pending)-done >= f.Size {
		emit(f.pending[done : done+f.Size])
		done += f.Size
	}
	// Keep the tail (less than one frame) at the front for the next push.
	f.pending = append(f.pending[:0], f.pending[done:]...)
}

// Pending is the number of samples waiting for the rest of their frame.
func (f *Framer) Pending() int { return len(f.pending) }
