// Package g711 converts between 16-bit linear PCM and G.711 (ITU-T G.711) µ-law and A-law.
//
// Both laws are written from the ITU-T description: a sign bit, a 3-bit segment (exponent)
// and a 4-bit step inside the segment. Decoding goes through 256-entry tables built once
// at start-up from the decoder formula, because every received RTP byte is decoded.
package g711

// Codec is one G.711 law: how a PCM sample becomes one byte and back.
type Codec interface {
	// Name is the SDP encoding name, as in "a=rtpmap:0 PCMU/8000".
	Name() string
	// PayloadType is the static RTP payload type (RFC 3551).
	PayloadType() uint8
	EncodeSample(s int16) byte
	DecodeSample(b byte) int16
}

// Encode appends the G.711 bytes for pcm to dst and returns it.
func Encode(c Codec, dst []byte, pcm []int16) []byte {
	for _, s := range pcm {
		dst = append(dst, c.EncodeSample(s))
	}
	return dst
}

// Decode appends the PCM samples for the G.711 bytes in payload to dst and returns it.
func Decode(c Codec, dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		dst = append(dst, c.DecodeSample(b))
	}
	return dst
}

// ByName returns the codec for an SDP encoding name ("PCMU"/"PCMA", any case), or nil.
func ByName(name string) Codec {
	switch name {
	case "PCMU", "pcmu":
		return ULaw
	case "PCMA", "pcma":
		return ALaw
	}
	return nil
}

// ULaw is G.711 µ-law (PCMU, payload type 0), the North American and Japanese law.
var ULaw Codec = ulaw{}

// ALaw is G.711 A-law (PCMA, payload type 8), the European law.
var ALaw Codec = alaw{}

const (
	ulawBias = 0x84 // bias of the decoder, in 16-bit units (33 in the encoder's 14-bit units)
)

type ulaw struct{}

func (ulaw) Name() string       { return "PCMU" }
func (ulaw) PayloadType() uint8 { return 0 }

func (ulaw) EncodeSample(s int16) byte {
	// As in ITU-T G.191's reference: work on a 14-bit magnitude, taking the one's
	// complement of negative samples, so that -1 and 0 land in the same step.
	sign := 0
	mag := int(s)
	if s < 0 {
		mag = int(^s)
		sign = 0x80
	}
	v := mag>>2 + 33
	if v > 0x1FFF {
		v = 0x1FFF
	}
	exp := segmentOf(v >> 5)
	mantissa := (v >> (exp + 1)) & 0x0F
	// µ-law transmits every bit inverted (it keeps the line busy on silence).
	return ^byte(sign | exp<<4 | mantissa)
}

func (ulaw) DecodeSample(b byte) int16 { return ulawTable[b] }

type alaw struct{}

func (alaw) Name() string       { return "PCMA" }
func (alaw) PayloadType() uint8 { return 8 }

func (alaw) EncodeSample(s int16) byte {
	// A-law works on 13-bit magnitudes; the low 3 bits of a 16-bit sample are dropped.
	v := int(s) >> 3
	sign := 0x80 // A-law's sign bit is set for positive values
	if v < 0 {
		v = -v - 1
		sign = 0
	}
	if v > 0xFFF {
		v = 0xFFF
	}
	var code int
	if v < 32 {
		code = v >> 1 // segment 0: linear, step 2
	} else {
		exp := segmentOf(v >> 5)
		code = (exp+1)<<4 | (v>>(exp+1))&0x0F
	}
	// Even bits are inverted on the line (ITU-T G.711 "alternate mark inversion").
	return byte(sign|code) ^ 0x55
}

func (alaw) DecodeSample(b byte) int16 { return alawTable[b] }

// segmentOf returns the index (0..7) of the highest set bit of v, which must be < 256.
func segmentOf(v int) int {
	seg := 0
	for v > 1 && seg < 7 {
		v >>= 1
		seg++
	}
	return seg
}

var ulawTable, alawTable [256]int16

func init() {
	for i := range 256 {
		ulawTable[i] = decodeULaw(byte(i))
		alawTable[i] = decodeALaw(byte(i))
	}
}

func decodeULaw(b byte) int16 {
	b = ^b
	exp := int(b>>4) & 0x07
	mantissa := int(b) & 0x0F
	// Middle of the step, then take the bias back out.
	v := ((mantissa<<3)+ulawBias)<<exp - ulawBias
	if b&0x80 != 0 {
		return int16(-v)
	}
	return int16(v)
}

func decodeALaw(b byte) int16 {
	b ^= 0x55
	exp := int(b>>4) & 0x07
	mantissa := int(b) & 0x0F
	var v int
	if exp == 0 {
		v = mantissa<<4 + 8 // middle of a step of 16 (in 16-bit units)
	} else {
		v = (mantissa<<4 + 0x108) << (exp - 1)
	}
	if b&0x80 == 0 {
		return int16(-v)
	}
	return int16(v)
}
