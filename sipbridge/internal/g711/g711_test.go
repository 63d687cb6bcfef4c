package g711

import (
	"math"
	"testing"

	zaf "github.com/zaf/g711"
)

// The decode tables must agree bit for bit with an independent implementation
// (github.com/zaf/g711, already in the module graph through diago).
func TestDecodeMatchesReference(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		if got, want := ULaw.DecodeSample(b), zaf.DecodeUlawFrame(b); got != want {
			t.Errorf("µ-law decode %#02x = %d, reference %d", b, got, want)
		}
		if got, want := ALaw.DecodeSample(b), zaf.DecodeAlawFrame(b); got != want {
			t.Errorf("A-law decode %#02x = %d, reference %d", b, got, want)
		}
	}
}

// Every 16-bit sample must encode to the same byte as the reference encoder.
func TestEncodeMatchesReference(t *testing.T) {
	mismatches := map[string]int{}
	for v := math.MinInt16; v <= math.MaxInt16; v++ {
		s := int16(v)
		if ULaw.EncodeSample(s) != zaf.EncodeUlawFrame(s) {
			mismatches["ulaw"]++
		}
		if ALaw.EncodeSample(s) != zaf.EncodeAlawFrame(s) {
			mismatches["alaw"]++
		}
	}
	for law, n := range mismatches {
		t.Errorf("%s: %d of 65536 samples encode differently from the reference", law, n)
	}
}

func TestSilenceAndExtremes(t *testing.T) {
	if got := ULaw.EncodeSample(0); got != 0xFF {
		t.Errorf("µ-law silence = %#02x, want 0xff", got)
	}
	if got := ALaw.EncodeSample(0); got != 0xD5 {
		t.Errorf("A-law silence = %#02x, want 0xd5", got)
	}
	for _, c := range []Codec{ULaw, ALaw} {
		hi := c.DecodeSample(c.EncodeSample(math.MaxInt16))
		lo := c.DecodeSample(c.EncodeSample(math.MinInt16))
		if hi < 31000 || lo > -31000 {
			t.Errorf("%s: full scale decodes to %d / %d", c.Name(), hi, lo)
		}
	}
}

// A round trip keeps the signal: the error of a 1 kHz sine stays within G.711's
// ~38 dB signal-to-quantisation-noise ratio for a loud signal.
func TestRoundTripSNR(t *testing.T) {
	pcm := make([]int16, 8000)
	for i := range pcm {
		pcm[i] = int16(16000 * math.Sin(2*math.Pi*1000*float64(i)/8000))
	}
	for _, c := range []Codec{ULaw, ALaw} {
		back := Decode(c, nil, Encode(c, nil, pcm))
		if len(back) != len(pcm) {
			t.Fatalf("%s: %d samples back from %d", c.Name(), len(back), len(pcm))
		}
		var sig, noise float64
		for i := range pcm {
			d := float64(pcm[i]) - float64(back[i])
			sig += float64(pcm[i]) * float64(pcm[i])
			noise += d * d
		}
		snr := 10 * math.Log10(sig/noise)
		if snr < 30 {
			t.Errorf("%s: round trip SNR %.1f dB, want >= 30", c.Name(), snr)
		}
	}
}

func TestByName(t *testing.T) {
	if ByName("PCMU") != ULaw || ByName("pcma") != ALaw || ByName("opus") != nil {
		t.Fatal("ByName maps the wrong codecs")
	}
	if ULaw.PayloadType() != 0 || ALaw.PayloadType() != 8 {
		t.Fatal("static payload types are 0 (PCMU) and 8 (PCMA)")
	}
}
