package integration

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/twitchtv/twirp"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/hraban/opus.v2"

	"salesagent/sipbridge/internal/audio"
	"salesagent/sipbridge/internal/sipua"
	"salesagent/sipbridge/internal/testphone"
	"salesagent/sipbridge/internal/wav"
)

const (
	trunkNumber  = "+15550100"
	calledNumber = "+15550199"
)

// watcher is another participant in the room (standing in for the agent): it records
// what it sees of the SIP participant, plays a 440 Hz tone, and decodes what the SIP
// participant publishes.
type watcher struct {
	room *lksdk.Room
	stop chan struct{}

	mu       sync.Mutex
	kinds    map[string]lksdk.ParticipantKind
	attrs    map[string]map[string]string
	statuses map[string][]string
	left     map[string]bool
	digits   []string
	heard    []int16
}

func joinWatcher(t *testing.T, st *stack, room string) *watcher {
	t.Helper()
	w := &watcher{
		stop:     make(chan struct{}),
		kinds:    map[string]lksdk.ParticipantKind{},
		attrs:    map[string]map[string]string{},
		statuses: map[string][]string{},
		left:     map[string]bool{},
	}
	cb := lksdk.NewRoomCallback()
	cb.OnParticipantConnected = func(rp *lksdk.RemoteParticipant) { w.sawParticipant(rp) }
	cb.OnAttributesChanged = func(changed map[string]string, p lksdk.Participant) {
		if rp, ok := p.(*lksdk.RemoteParticipant); ok {
			w.sawParticipant(rp)
		}
	}
	cb.OnParticipantDisconnected = func(rp *lksdk.RemoteParticipant) {
		w.mu.Lock()
		w.left[rp.Identity()] = true
		w.mu.Unlock()
	}
	cb.OnDataPacket = func(data lksdk.DataPacket, _ lksdk.DataReceiveParams) {
		if d, ok := data.(*livekit.SipDTMF); ok {
			w.mu.Lock()
			w.digits = append(w.digits, d.Digit)
			w.mu.Unlock()
		}
	}
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
		if track.Kind() == webrtc.RTPCodecTypeAudio {
			go w.decode(track)
		}
	}
	// An agent participant, as a job's is (the bridge waits for one: agentWait).
	yes := true
	jwt, err := auth.NewAccessToken(apiKey, apiSecret).
		SetIdentity("watcher").
		SetKind(livekit.ParticipantInfo_AGENT).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: room, CanPublish: &yes, CanSubscribe: &yes, CanPublishData: &yes}).
		ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	w.room = lksdk.NewRoom(cb)
	if err := w.room.JoinWithToken(st.wsURL, jwt); err != nil {
		t.Fatalf("watcher join: %v", err)
	}
	w.publishTone(t, 440)
	t.Cleanup(func() {
		close(w.stop)
		w.room.Disconnect()
	})
	return w
}

func (w *watcher) sawParticipant(rp *lksdk.RemoteParticipant) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id := rp.Identity()
	w.kinds[id] = rp.Kind()
	attrs := rp.Attributes()
	w.attrs[id] = attrs
	if s := attrs[livekit.AttrSIPCallStatus]; s != "" {
		if seq := w.statuses[id]; len(seq) == 0 || seq[len(seq)-1] != s {
			w.statuses[id] = append(seq, s)
		}
	}
}

func (w *watcher) publishTone(t *testing.T, freq float64) {
	t.Helper()
	track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "tone"}); err != nil {
		t.Fatal(err)
	}
	enc, err := opus.NewEncoder(audio.SampleRate, 1, opus.AppAudio)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		tick := time.NewTicker(audio.FrameDuration)
		defer tick.Stop()
		frame := make([]int16, audio.FrameSamples)
		buf := make([]byte, 1500)
		for n := 0; ; n++ {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			for i := range frame {
				frame[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(n*audio.FrameSamples+i)/audio.SampleRate))
			}
			size, err := enc.Encode(frame, buf)
			if err != nil {
				return
			}
			_ = track.WriteSample(media.Sample{Data: buf[:size], Duration: audio.FrameDuration}, nil)
		}
	}()
}

func (w *watcher) decode(track *webrtc.TrackRemote) {
	dec, err := opus.NewDecoder(audio.SampleRate, 1)
	if err != nil {
		return
	}
	pcm := make([]int16, 960)
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		n, err := dec.Decode(pkt.Payload, pcm)
		if err != nil {
			continue
		}
		w.mu.Lock()
		w.heard = append(w.heard, pcm[:n]...)
		w.mu.Unlock()
	}
}

// eventually polls cond for up to limit, then fails with what describe says.
func eventually(t *testing.T, limit time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("after %v: %s", limit, describe())
}

type phoneEvents struct {
	mu   sync.Mutex
	list []testphone.Event
}

func (p *phoneEvents) add(ev testphone.Event) {
	p.mu.Lock()
	p.list = append(p.list, ev)
	p.mu.Unlock()
}

func (p *phoneEvents) find(name string) (testphone.Event, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range p.list {
		if ev.Event == name {
			return ev, true
		}
	}
	return testphone.Event{}, false
}

func (p *phoneEvents) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := ""
	for _, ev := range p.list {
		s += ev.Event + " "
	}
	return s
}

func startPhone(t *testing.T, ctx context.Context, cfg testphone.Config) (*testphone.Phone, *phoneEvents) {
	t.Helper()
	port, err := sipua.FreeUDPPort(cmp.Or(cfg.SIP.Host, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	evs := &phoneEvents{}
	host := cmp.Or(cfg.SIP.Host, "127.0.0.1")
	cfg.SIP = sipua.Config{Host: host, Port: port, Name: "testphone"}
	cfg.OnEvent = evs.add
	p, err := testphone.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, evs
}

func createTrunk(t *testing.T, st *stack, phone *testphone.Phone) string {
	t.Helper()
	sip := lksdk.NewSIPClient(st.httpURL, apiKey, apiSecret)
	trunk, err := sip.CreateSIPOutboundTrunk(context.Background(), &livekit.CreateSIPOutboundTrunkRequest{
		Trunk: &livekit.SIPOutboundTrunkInfo{
			Name:      "test phone",
			Address:   phone.Addr(),
			Transport: livekit.SIPTransport_SIP_TRANSPORT_UDP,
			Numbers:   []string{trunkNumber},
		},
	})
	if err != nil {
		t.Fatalf("create outbound trunk: %v", err)
	}
	return trunk.SipTrunkId
}

func toneShare(pcm []int16, freq float64) float64 {
	if len(pcm) == 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/audio.SampleRate)
	var s1, s2, total float64
	for _, v := range pcm {
		x := float64(v)
		total += x * x
		s0 := x + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	if total == 0 {
		return 0
	}
	return 2 * (s1*s1 + s2*s2 - coeff*s1*s2) / (float64(len(pcm)) * total)
}

func tone(freq, seconds float64) []int16 {
	pcm := make([]int16, int(seconds*audio.SampleRate))
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/audio.SampleRate))
	}
	return pcm
}

// The whole outbound path: CreateSIPParticipant through livekit-server's API with
// wait_until_answered, the test phone rings and answers, a SIP participant with
// LiveKit's attributes appears, audio and DTMF cross, and removing the participant
// hangs up the phone.
func TestOutboundCallAnsweredBridgesAudioAndDTMF(t *testing.T) {
	st := needStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	play := filepath.Join(dir, "play.wav")
	if err := wav.WriteFile(play, audio.SampleRate, tone(1000, 20)); err != nil {
		t.Fatal(err)
	}
	const ringFor = 800 * time.Millisecond
	phone, evs := startPhone(t, ctx, testphone.Config{
		RingAfter: 700 * time.Millisecond, RingFor: ringFor, PlayWAV: play, RecordWAV: filepath.Join(dir, "heard.wav"), SendDigits: "5#",
	})
	trunkID := createTrunk(t, st, phone)
	const room, identity = "it-answered", "phone-answered"
	w := joinWatcher(t, st, room)

	start := time.Now()
	info, err := lksdk.NewSIPClient(st.httpURL, apiKey, apiSecret).CreateSIPParticipant(ctx, &livekit.CreateSIPParticipantRequest{
		SipTrunkId:          trunkID,
		SipCallTo:           calledNumber,
		RoomName:            room,
		ParticipantIdentity: identity,
		ParticipantName:     "Test phone",
		WaitUntilAnswered:   true,
	})
	if err != nil {
		t.Fatalf("CreateSIPParticipant: %v (phone events: %s)", err, evs)
	}
	if took := time.Since(start); took < 700*time.Millisecond+ringFor {
		t.Fatalf("wait_until_answered returned after %v, before the phone answered (rings %v)", took, ringFor)
	}
	if _, answered := evs.find("answered"); !answered {
		t.Fatalf("CreateSIPParticipant returned but the phone has not answered: %s", evs)
	}
	if info.ParticipantIdentity != identity || info.SipCallId == "" || info.ParticipantId == "" {
		t.Fatalf("participant info %+v", info)
	}
	invite, _ := evs.find("invite")
	if !strings.Contains(invite.From, trunkNumber) || !strings.Contains(invite.To, calledNumber) {
		t.Fatalf("INVITE from %q to %q; want from %s to %s", invite.From, invite.To, trunkNumber, calledNumber)
	}

	eventually(t, 5*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		a := w.attrs[identity]
		return w.kinds[identity] == lksdk.ParticipantSIP && a[livekit.AttrSIPCallStatus] == "active"
	}, func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		return fmt.Sprintf("SIP participant not active: kind %v, attrs %v", w.kinds[identity], w.attrs[identity])
	})
	w.mu.Lock()
	attrs := w.attrs[identity]
	statuses := slices.Clone(w.statuses[identity])
	w.mu.Unlock()
	for k, want := range map[string]string{
		livekit.AttrSIPPhoneNumber: calledNumber,
		livekit.AttrSIPTrunkNumber: trunkNumber,
		livekit.AttrSIPCallID:      info.SipCallId,
		livekit.AttrSIPTrunkID:     trunkID,
	} {
		if attrs[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], want)
		}
	}
	if !isSubsequence([]string{"dialing", "ringing", "active"}, statuses) {
		t.Errorf("sip.callStatus went %v, want dialing -> ringing -> active", statuses)
	}

	// Phone -> room DTMF.
	eventually(t, 5*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return slices.Equal(w.digits, []string{"5", "#"})
	}, func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		return fmt.Sprintf("room got DTMF %q", w.digits)
	})

	// Room -> phone DTMF: a SipDTMF data packet becomes an RFC 4733 key press.
	if err := w.room.LocalParticipant.PublishDataPacket(&livekit.SipDTMF{Code: 9, Digit: "9"}, lksdk.WithDataPublishReliable(true)); err != nil {
		t.Fatalf("publish DTMF: %v", err)
	}
	eventually(t, 5*time.Second, func() bool { ev, ok := evs.find("dtmf"); return ok && ev.Digit == "9" },
		func() string { return "phone got no DTMF 9: " + evs.String() })

	// Audio both ways: the watcher hears the phone's 1 kHz, the phone the room's 440 Hz.
	time.Sleep(2 * time.Second)
	w.mu.Lock()
	heard := slices.Clone(w.heard)
	w.mu.Unlock()
	if len(heard) < audio.SampleRate {
		t.Fatalf("room heard only %d samples from the phone", len(heard))
	}
	s1k := toneShare(heard[len(heard)-audio.SampleRate:], 1000)
	t.Logf("room heard %d samples from the phone; 1 kHz share of the last second %.2f; statuses %v", len(heard), s1k, statuses)
	if s := s1k; s < 0.5 {
		t.Errorf("room hears the phone's 1 kHz at %.2f of the energy", s)
	}

	// Removing the participant hangs up the phone.
	if _, err := lksdk.NewRoomServiceClient(st.httpURL, apiKey, apiSecret).RemoveParticipant(ctx,
		&livekit.RoomParticipantIdentity{Room: room, Identity: identity}); err != nil {
		t.Fatalf("remove participant: %v", err)
	}
	eventually(t, 5*time.Second, func() bool { _, ok := evs.find("recorded"); return ok },
		func() string { return "phone not hung up: " + evs.String() })
	if ev, _ := evs.find("hangup"); ev.By != "remote" {
		t.Errorf("phone hangup event %+v, want by remote", ev)
	}
	rec, _ := evs.find("recorded")
	got, err := wav.ReadFile(rec.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Samples) < audio.SampleRate {
		t.Fatalf("phone recorded %d samples", len(got.Samples))
	}
	t.Logf("phone recorded %d samples; 440 Hz share %.2f", len(got.Samples), toneShare(got.Samples, 440))
	if s := toneShare(got.Samples, 440); s < 0.5 {
		t.Errorf("phone hears the room's 440 Hz at %.2f of the energy", s)
	}
	eventually(t, 5*time.Second, func() bool { return st.service.ActiveCalls() == 0 },
		func() string { return "bridge still has active calls" })
}

// The phone hangs up: the participant's status goes to hangup and it leaves.
// Also checks the default (not waiting for the answer) returns at once.
func TestPhoneHangupEndsTheParticipant(t *testing.T) {
	st := needStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	phone, evs := startPhone(t, ctx, testphone.Config{RingFor: 500 * time.Millisecond, HangUpAfter: 1500 * time.Millisecond})
	trunkID := createTrunk(t, st, phone)
	const room, identity = "it-phone-hangup", "phone-hangup"
	w := joinWatcher(t, st, room)
	info, err := lksdk.NewSIPClient(st.httpURL, apiKey, apiSecret).CreateSIPParticipant(ctx, &livekit.CreateSIPParticipantRequest{
		SipTrunkId: trunkID, SipCallTo: calledNumber, RoomName: room, ParticipantIdentity: identity,
	})
	if err != nil {
		t.Fatalf("CreateSIPParticipant: %v", err)
	}
	if _, answered := evs.find("answered"); answered {
		t.Fatal("without wait_until_answered the call should still be ringing when the RPC returns")
	}
	if info.ParticipantIdentity != identity {
		t.Fatalf("participant %+v", info)
	}
	eventually(t, 8*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.left[identity]
	}, func() string { return "SIP participant still in the room; phone: " + evs.String() })
	w.mu.Lock()
	statuses := slices.Clone(w.statuses[identity])
	w.mu.Unlock()
	if !isSubsequence([]string{"active", "hangup"}, statuses) {
		t.Errorf("sip.callStatus went %v, want ... active -> hangup", statuses)
	}
	if ev, _ := evs.find("hangup"); ev.By != "local" {
		t.Errorf("phone hangup %+v", ev)
	}
}

// Rejections and no answer come back from the API as errors carrying the SIP status
// (Twirp metadata sip_status_code / sip_status, what livekit-api's SipCallError reads).
func TestFailedCallsReturnSIPStatus(t *testing.T) {
	st := needStack(t)
	cases := []struct {
		name     string
		phone    testphone.Config
		ring     time.Duration
		code     string
		status   string
		twirpErr twirp.ErrorCode
	}{
		{"busy", testphone.Config{RejectStatus: 486}, 0, "486", "Busy Here", twirp.ResourceExhausted},
		{"decline", testphone.Config{RejectStatus: 603}, 0, "603", "Decline", twirp.PermissionDenied},
		{"not found", testphone.Config{RejectStatus: 404}, 0, "404", "Not Found", twirp.NotFound},
		{"unavailable", testphone.Config{RejectStatus: 480}, 0, "480", "Temporarily Unavailable", twirp.ResourceExhausted},
		{"no answer", testphone.Config{RingFor: 20 * time.Second}, 1500 * time.Millisecond, "408", "Request Timeout", twirp.DeadlineExceeded},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			phone, evs := startPhone(t, ctx, c.phone)
			trunkID := createTrunk(t, st, phone)
			room := "it-failed-" + string(rune('a'+i))
			req := &livekit.CreateSIPParticipantRequest{
				SipTrunkId: trunkID, SipCallTo: calledNumber, RoomName: room,
				ParticipantIdentity: "phone-failed", WaitUntilAnswered: true,
			}
			if c.ring > 0 {
				req.RingingTimeout = durationpb.New(c.ring)
			}
			// What Python's livekit-api sees: the Twirp JSON error and its metadata.
			code, meta, err := createSIPParticipantRaw(ctx, st, req)
			if err != nil {
				t.Fatal(err)
			}
			if code != string(c.twirpErr) || meta["sip_status_code"] != c.code || meta["sip_status"] != c.status {
				t.Fatalf("twirp error %q meta %v; want %s with sip_status_code=%s sip_status=%q (phone: %s)",
					code, meta, c.twirpErr, c.code, c.status, evs)
			}
			// What the Go SDK sees: a gRPC status carrying the livekit.SIPStatus.
			_, err = lksdk.NewSIPClient(st.httpURL, apiKey, apiSecret).CreateSIPParticipant(ctx, req)
			stat, ok := status.FromError(err)
			if !ok {
				t.Fatalf("Go SDK error %v (%T) is no gRPC status", err, err)
			}
			var sipStatus *livekit.SIPStatus
			for _, d := range stat.Details() {
				if s, ok := d.(*livekit.SIPStatus); ok {
					sipStatus = s
				}
			}
			if sipStatus == nil || strconv.Itoa(int(sipStatus.Code)) != c.code {
				t.Fatalf("Go SDK error %v has SIP status %v, want %s", err, sipStatus, c.code)
			}
			// The participant that was dialing has left the room.
			rooms := lksdk.NewRoomServiceClient(st.httpURL, apiKey, apiSecret)
			eventually(t, 5*time.Second, func() bool {
				res, err := rooms.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: room})
				return err == nil && len(res.Participants) == 0
			}, func() string { return "participant still in room " + room })
		})
	}
}

// createSIPParticipantRaw calls the server's Twirp API as a plain HTTP client (as
// Python's livekit-api does) and returns the error code and metadata of the reply.
func createSIPParticipantRaw(ctx context.Context, st *stack, req *livekit.CreateSIPParticipantRequest) (string, map[string]string, error) {
	token, err := auth.NewAccessToken(apiKey, apiSecret).SetSIPGrant(&auth.SIPGrant{Call: true}).ToJWT()
	if err != nil {
		return "", nil, err
	}
	body, err := protojson.Marshal(req)
	if err != nil {
		return "", nil, err
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, st.httpURL+"/twirp/livekit.SIP/CreateSIPParticipant", bytes.NewReader(body))
	if err != nil {
		return "", nil, err
	}
	httpReq.Header.Set("Content-Type", "application/json")
	httpReq.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(httpReq)
	if err != nil {
		return "", nil, err
	}
	defer res.Body.Close()
	var reply struct {
		Code string            `json:"code"`
		Msg  string            `json:"msg"`
		Meta map[string]string `json:"meta"`
	}
	if err := json.NewDecoder(res.Body).Decode(&reply); err != nil {
		return "", nil, fmt.Errorf("HTTP %d: %w", res.StatusCode, err)
	}
	return reply.Code, reply.Meta, nil
}

// isSubsequence reports whether want appears in got in order (other values between).
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
