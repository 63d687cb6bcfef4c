// Package wav reads and writes the one WAV flavour the test phone needs:
// RIFF/WAVE, PCM (format 1), 16-bit little-endian samples.
package wav

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Audio is decoded PCM: interleaved samples when Channels > 1.
type Audio struct {
	SampleRate int
	Channels   int
	Samples    []int16
}

// ReadFile reads a 16-bit PCM WAV file.
func ReadFile(path string) (*Audio, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Parse decodes a 16-bit PCM WAV held in memory. Unknown chunks are skipped.
func Parse(data []byte) (*Audio, error) {
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, errors.New("not a RIFF/WAVE file")
	}
	var a Audio
	haveFormat := false
	for pos := 12; pos+8 <= len(data); {
		id := string(data[pos : pos+4])
		size := int(binary.LittleEndian.Uint32(data[pos+4 : pos+8]))
		body := data[pos+8:]
		if size > len(body) {
			size = len(body) // tolerate a truncated last chunk (a recording cut short)
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return nil, errors.New("fmt chunk too short")
			}
			format := binary.LittleEndian.Uint16(body[0:2])
			a.Channels = int(binary.LittleEndian.Uint16(body[2:4]))
			a.SampleRate = int(binary.LittleEndian.Uint32(body[4:8]))
			bits := binary.LittleEndian.Uint16(body[14:16])
			if format != 1 || bits != 16 {
				return nil, fmt.Errorf("unsupported WAV: format %d, %d bits (want PCM, 16 bits)", format, bits)
			}
			haveFormat = true
		case "data":
			if !haveFormat {
				return nil, errors.New("data chunk before fmt chunk")
			}
			a.Samples = make([]int16, size/2)
			for i := range a.Samples {
				a.Samples[i] = int16(binary.LittleEndian.Uint16(body[2*i:]))
			}
			return &a, nil
		}
		pos += 8 + size + size%2 // chunks are padded to an even length
	}
	return nil, errors.New("no data chunk")
}

// Writer streams 16-bit mono PCM into a WAV file. The header carries sizes, so Close
// must be called to make the file valid; until then it reads as a truncated WAV.
type Writer struct {
	f          *os.File
	sampleRate int
	samples    int
}

// Create starts a mono 16-bit WAV file at path.
func Create(path string, sampleRate int) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, sampleRate: sampleRate}
	if _, err := f.Write(header(sampleRate, 0)); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// Write appends samples.
func (w *Writer) Write(pcm []int16) error {
	buf := make([]byte, 2*len(pcm))
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(buf[2*i:], uint16(s))
	}
	_, err := w.f.Write(buf)
	w.samples += len(pcm)
	return err
}

// Samples is how many samples were written so far.
func (w *Writer) Samples() int { return w.samples }

// Close fills in the header sizes and closes the file.
func (w *Writer) Close() error {
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		w.f.Close()
		return err
	}
	if _, err := w.f.Write(header(w.sampleRate, w.samples)); err != nil {
		w.f.Close()
		return err
	}
	return w.f.Close()
}

// WriteFile writes a whole mono 16-bit WAV file.
func WriteFile(path string, sampleRate int, pcm []int16) error {
	w, err := Create(path, sampleRate)
	if err != nil {
		return err
	}
	if err := w.Write(pcm); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func header(sampleRate, samples int) []byte {
	const channels, bits = 1, 16
	dataSize := samples * 2
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+dataSize))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1) // PCM
	binary.LittleEndian.PutUint16(h[22:], channels)
	binary.LittleEndian.PutUint32(h[24:], uint32(sampleRate))
	binary.LittleEndian.PutUint32(h[28:], uint32(sampleRate*channels*bits/8))
	binary.LittleEndian.PutUint16(h[32:], channels*bits/8)
	binary.LittleEndian.PutUint16(h[34:], bits)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(dataSize))
	return h
}
