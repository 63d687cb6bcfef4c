package dtmf

import "testing"

func TestParseMarshalRoundTrip(t *testing.T) {
	ev := Event{Code: 11, End: true, Volume: 10, Duration: 1600}
	got, err := Parse(ev.Marshal())
	if err != nil || got != ev {
		t.Fatalf("round trip %+v -> %+v (%v)", ev, got, err)
	}
	if _, err := Parse([]byte{1, 2}); err == nil {
		t.Fatal("short payload accepted")
	}
}

func TestDigitsAndCodes(t *testing.T) {
	for i, d := range []byte("0123456789*#ABCD") {
		if Digit(uint8(i)) != d {
			t.Fatalf("Digit(%d) = %q, want %q", i, Digit(uint8(i)), d)
		}
		if c, ok := Code(d); !ok || c != uint8(i) {
			t.Fatalf("Code(%q) = %d,%v", d, c, ok)
		}
	}
	if c, ok := Code('b'); !ok || c != 13 {
		t.Fatal("lower-case b is event 13")
	}
	if _, ok := Code('x'); ok {
		t.Fatal("x is no DTMF digit")
	}
	if Digit(16) != 0 {
		t.Fatal("event 16 is not a DTMF digit")
	}
}

// One key press is a run of packets with one timestamp, the End bit repeated three
// times; it must be reported exactly once. A second press of the same key has a new
// timestamp and is reported again.
func TestDetectorReportsEachPressOnce(t *testing.T) {
	var d Detector
	presses := 0
	send := func(ts uint32, code uint8) {
		for dur := uint16(160); dur <= 800; dur += 160 {
			if _, ok := d.Packet(ts, Event{Code: code, Duration: dur}.Marshal()); ok {
				t.Fatal("press reported before End")
			}
		}
		for range 3 {
			if c, ok := d.Packet(ts, Event{Code: code, End: true, Duration: 960}.Marshal()); ok {
				if c != code {
					t.Fatalf("pressed %d, want %d", c, code)
				}
				presses++
			}
		}
	}
	send(1000, 5)
	send(9000, 5)
	send(17000, 11)
	if presses != 3 {
		t.Fatalf("%d presses reported, want 3", presses)
	}
}
