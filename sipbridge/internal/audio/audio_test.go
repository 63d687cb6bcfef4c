package audio

import (
	"math"
	"testing"
	"time"
)

func TestFrameIs160SamplesOf20ms(t *testing.T) {
	if FrameSamples != 160 {
		t.Fatalf("FrameSamples = %d, want 160", FrameSamples)
	}
	if got := time.Duration(FrameSamples) * time.Second / SampleRate; got != FrameDuration {
		t.Fatalf("160 samples at 8 kHz last %v, want %v", got, FrameDuration)
	}
}

// Chunks of odd sizes (10 ms, 30 ms packets, Opus frames of any length) come out as
// whole 160-sample frames, in order, with the remainder kept for the next push.
func TestFramerCutsAnyChunksIntoWholeFrames(t *testing.T) {
	f := NewFramer(FrameSamples)
	var frames [][]int16
	next := int16(0)
	for _, size := range []int{80, 240, 7, 153, 480, 1} {
		chunk := make([]int16, size)
		for i := range chunk {
			chunk[i] = next
			next++
		}
		f.Push(chunk, func(frame []int16) {
			frames = append(frames, append([]int16(nil), frame...))
		})
	}
	total := 80 + 240 + 7 + 153 + 480 + 1
	if len(frames) != total/FrameSamples || f.Pending() != total%FrameSamples {
		t.Fatalf("%d frames and %d pending, want %d and %d", len(frames), f.Pending(), total/FrameSamples, total%FrameSamples)
	}
	want := int16(0)
	for i, fr := range frames {
		if len(fr) != FrameSamples {
			t.Fatalf("frame %d has %d samples", i, len(fr))
		}
		for _, s := range fr {
			if s != want {
				t.Fatalf("frame %d: sample %d, want %d (order lost)", i, s, want)
			}
			want++
		}
	}
}

func TestMixerSumsSourcesAndSaturates(t *testing.T) {
	m := NewMixer(1000)
	m.Write("a", []int16{100, 20000, -20000, 5})
	m.Write("b", []int16{1, 20000, -20000})
	dst := make([]int16, 4)
	if !m.MixFrame(dst) {
		t.Fatal("MixFrame says no source contributed")
	}
	want := []int16{101, math.MaxInt16, math.MinInt16, 5}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("mixed %v, want %v", dst, want)
		}
	}
	// Both queues are drained now: the next frame is silence.
	if m.MixFrame(dst) {
		t.Fatal("drained mixer still reports audio")
	}
	for _, s := range dst {
		if s != 0 {
			t.Fatalf("silence frame has %v", dst)
		}
	}
}

func TestMixerBoundsEachQueue(t *testing.T) {
	m := NewMixer(4)
	m.Write("a", []int16{1, 2, 3, 4, 5, 6})
	dst := make([]int16, 6)
	m.MixFrame(dst)
	// The two oldest samples were dropped; the newest four are played.
	want := []int16{3, 4, 5, 6, 0, 0}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("mixed %v, want %v", dst, want)
		}
	}
	m.Write("a", []int16{9})
	m.Remove("a")
	if m.MixFrame(dst) {
		t.Fatal("removed source still mixed")
	}
}
