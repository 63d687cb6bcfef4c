// Package dtmf reads and writes RFC 4733 telephone-event payloads (DTMF over RTP).
//
// A key press is sent as a run of RTP packets that share one RTP timestamp (the start of
// the event) with a growing duration; the last three carry the End bit. Receivers must
// report a digit once even though End is repeated and packets may be lost, so Detector
// keys on the event's timestamp.
package dtmf

import "errors"

// Event is one decoded telephone-event payload (RFC 4733 section 2.3).
type Event struct {
	Code     uint8  // 0-9 digits, 10 '*', 11 '#', 12-15 'A'-'D'
	End      bool   // last packets of the event
	Volume   uint8  // dBm0 below 0, 0..63
	Duration uint16 // in RTP timestamp units (1/8000 s for telephone-event/8000)
}

// ErrShort is returned for payloads shorter than the 4-byte event block.
var ErrShort = errors.New("telephone-event payload shorter than 4 bytes")

// Parse decodes the first event block of a telephone-event payload.
func Parse(payload []byte) (Event, error) {
	if len(payload) < 4 {
		return Event{}, ErrShort
	}
	return Event{
		Code:     payload[0],
		End:      payload[1]&0x80 != 0,
		Volume:   payload[1] & 0x3F,
		Duration: uint16(payload[2])<<8 | uint16(payload[3]),
	}, nil
}

// Marshal encodes an event block.
func (e Event) Marshal() []byte {
	b1 := e.Volume & 0x3F
	if e.End {
		b1 |= 0x80
	}
	return []byte{e.Code, b1, byte(e.Duration >> 8), byte(e.Duration)}
}

const digits = "0123456789*#ABCD"

// Digit returns the character for an event code, or 0 for codes that are not DTMF
// (RFC 4733 also defines fax and line tones above 15).
func Digit(code uint8) byte {
	if int(code) < len(digits) {
		return digits[code]
	}
	return 0
}

// Code returns the event code for a DTMF character (case-insensitive for A-D).
func Code(digit byte) (uint8, bool) {
	if digit >= 'a' && digit <= 'd' {
		digit -= 'a' - 'A'
	}
	for i := range len(digits) {
		if digits[i] == digit {
			return uint8(i), true
		}
	}
	return 0, false
}

// Detector turns a stream of telephone-event packets into key presses, one per event.
type Detector struct {
	haveLast      bool
	lastTimestamp uint32
}

// Packet takes one telephone-event RTP packet (its RTP timestamp and payload) and
// returns the event code of a key press that just finished, if any.
//
// A press is reported on the first End packet of an event; the repeated End packets and
// any late packets with the same timestamp are ignored.
func (d *Detector) Packet(timestamp uint32, payload []byte) (code uint8, pressed bool) {
	ev, err := Parse(payload)
	if err != nil || !ev.End {
		return 0, false
	}
	if d.haveLast && d.lastTimestamp == timestamp {
		return 0, false
	}
	d.haveLast = true
	d.lastTimestamp = timestamp
	return ev.Code, true
}
