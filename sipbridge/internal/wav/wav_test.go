package wav

import (
	"path/filepath"
	"testing"
)

func TestWriteThenRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.wav")
	pcm := []int16{0, 1, -1, 32767, -32768, 1234}
	if err := WriteFile(path, 8000, pcm); err != nil {
		t.Fatal(err)
	}
	a, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if a.SampleRate != 8000 || a.Channels != 1 || len(a.Samples) != len(pcm) {
		t.Fatalf("read back %d Hz, %d ch, %d samples", a.SampleRate, a.Channels, len(a.Samples))
	}
	for i := range pcm {
		if a.Samples[i] != pcm[i] {
			t.Fatalf("sample %d: %d, want %d", i, a.Samples[i], pcm[i])
		}
	}
}

func TestRejectsNonPCM(t *testing.T) {
	h := header(8000, 0)
	h[20] = 3 // IEEE float
	if _, err := Parse(h); err == nil {
		t.Fatal("float WAV accepted")
	}
	if _, err := Parse([]byte("not a wav file at all")); err == nil {
		t.Fatal("garbage accepted")
	}
}
