package integration

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"salesagent/sipbridge/internal/audio"
	"salesagent/sipbridge/internal/sipua"
	"salesagent/sipbridge/internal/testphone"
	"salesagent/sipbridge/internal/wav"
)

// What telephony/provision.py creates for the agent, and a second trunk that wants
// credentials.
const (
	agentName        = "sales-agent"
	inboundNumber    = "+14155550199"
	roomPrefix       = "call-"
	authNumber       = "+14155550177"
	authUser         = "carrier"
	authPassword     = "s3cret-pass"
	authRingingLimit = 2 * time.Second
	// agentWait is the bridge's AgentWait: how long a call for the agent rings before
	// one has joined.
	agentWait = 3 * time.Second
)

type inboundSetup struct {
	trunkID, ruleID         string
	authTrunkID, authRuleID string
}

var (
	provisionOnce sync.Once
	provisioned   inboundSetup
	provisionErr  error
)

// provisionInbound creates, once per test binary, the inbound trunk and dispatch rule
// our Python provisioning creates (same names and fields), through the server's API.
func provisionInbound(t *testing.T, st *stack) inboundSetup {
	t.Helper()
	provisionOnce.Do(func() {
		ctx := context.Background()
		sc := lksdk.NewSIPClient(st.httpURL, apiKey, apiSecret)
		trunk, err := sc.CreateSIPInboundTrunk(ctx, &livekit.CreateSIPInboundTrunkRequest{Trunk: &livekit.SIPInboundTrunkInfo{
			Name:             agentName + "-inbound",
			Numbers:          []string{inboundNumber},
			AllowedAddresses: []string{"127.0.0.1/32"},
		}})
		if err != nil {
			provisionErr = fmt.Errorf("create inbound trunk: %w", err)
			return
		}
		rule, err := sc.CreateSIPDispatchRule(ctx, &livekit.CreateSIPDispatchRuleRequest{DispatchRule: &livekit.SIPDispatchRuleInfo{
			Name: agentName + "-dispatch",
			Rule: &livekit.SIPDispatchRule{Rule: &livekit.SIPDispatchRule_DispatchRuleIndividual{
				DispatchRuleIndividual: &livekit.SIPDispatchRuleIndividual{RoomPrefix: roomPrefix},
			}},
			TrunkIds:   []string{trunk.SipTrunkId},
			RoomConfig: &livekit.RoomConfiguration{Agents: []*livekit.RoomAgentDispatch{{AgentName: agentName}}},
		}})
		if err != nil {
			provisionErr = fmt.Errorf("create dispatch rule: %w", err)
			return
		}
		authTrunk, err := sc.CreateSIPInboundTrunk(ctx, &livekit.CreateSIPInboundTrunkRequest{Trunk: &livekit.SIPInboundTrunkInfo{
			Name:             "auth-inbound",
			Numbers:          []string{authNumber},
			AllowedAddresses: []string{"127.0.0.1/32"},
			AuthUsername:     authUser,
			AuthPassword:     authPassword,
			RingingTimeout:   durationpb.New(authRingingLimit),
		}})
		if err != nil {
			provisionErr = fmt.Errorf("create auth trunk: %w", err)
			return
		}
		authRule, err := sc.CreateSIPDispatchRule(ctx, &livekit.CreateSIPDispatchRuleRequest{DispatchRule: &livekit.SIPDispatchRuleInfo{
			Name: "auth-dispatch",
			Rule: &livekit.SIPDispatchRule{Rule: &livekit.SIPDispatchRule_DispatchRuleIndividual{
				DispatchRuleIndividual: &livekit.SIPDispatchRuleIndividual{RoomPrefix: "auth-"},
			}},
			TrunkIds: []string{authTrunk.SipTrunkId},
		}})
		if err != nil {
			provisionErr = fmt.Errorf("create auth dispatch rule: %w", err)
			return
		}
		provisioned = inboundSetup{trunk.SipTrunkId, rule.SipDispatchRuleId, authTrunk.SipTrunkId, authRule.SipDispatchRuleId}
	})
	if provisionErr != nil {
		t.Fatal(provisionErr)
	}
	return provisioned
}

// placeCall has the test phone call number at the bridge; the result arrives on the
// channel when the call is over.
func placeCall(ctx context.Context, st *stack, phone *testphone.Phone, from, number string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- phone.Call(ctx, "sip:"+number+"@"+st.bridgeAddr, from) }()
	return done
}

// waitRoom waits for the room an individual dispatch rule makes for a caller:
// <prefix>_<caller>_<random>.
func waitRoom(t *testing.T, st *stack, prefix, caller string, evs *phoneEvents) string {
	t.Helper()
	rooms := lksdk.NewRoomServiceClient(st.httpURL, apiKey, apiSecret)
	want := prefix + "_" + caller + "_"
	var name string
	eventually(t, 10*time.Second, func() bool {
		res, err := rooms.ListRooms(context.Background(), &livekit.ListRoomsRequest{})
		if err != nil {
			return false
		}
		for _, r := range res.Rooms {
			if strings.HasPrefix(r.Name, want) {
				name = r.Name
				return true
			}
		}
		return false
	}, func() string { return "no room " + want + "...; phone: " + evs.String() })
	return name
}

func waitResult(t *testing.T, done <-chan error, limit time.Duration, evs *phoneEvents) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("call still going after %v; phone: %s", limit, evs)
		return nil
	}
}

// The whole inbound path with our provisioning: the caller dials the agent's number,
// livekit-server's trunk and dispatch rule put the call in a new call-... room with an
// agent dispatch for sales-agent; the bridge rings until someone in the room speaks,
// then answers; attributes, audio and DTMF; the caller hangs up.
func TestInboundCallIsDispatchedToTheAgentAndBridged(t *testing.T) {
	st := needStack(t)
	setup := provisionInbound(t, st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	play := filepath.Join(dir, "play.wav")
	if err := wav.WriteFile(play, audio.SampleRate, tone(1000, 30)); err != nil {
		t.Fatal(err)
	}
	const caller = "+15550001001"
	identity := "sip_" + caller
	phone, evs := startPhone(t, ctx, testphone.Config{PlayWAV: play, RecordWAV: filepath.Join(dir, "heard.wav")})
	done := placeCall(ctx, st, phone, caller, inboundNumber)

	room := waitRoom(t, st, roomPrefix, caller, evs)
	if !strings.HasPrefix(room, roomPrefix) {
		t.Fatalf("room %q", room)
	}
	// The rule's room_config reached the server: the room has the agent dispatch.
	dispatches, err := lksdk.NewAgentDispatchServiceClient(st.httpURL, apiKey, apiSecret).
		ListDispatch(ctx, &livekit.ListAgentDispatchRequest{Room: room})
	if err != nil {
		t.Fatalf("list dispatch: %v", err)
	}
	var agents []string
	for _, d := range dispatches.AgentDispatches {
		agents = append(agents, d.AgentName)
	}
	if !slices.Contains(agents, agentName) {
		t.Fatalf("room %s has agent dispatches %v, want %s", room, agents, agentName)
	}
	// Nobody in the room yet: the caller hears ringing, the call is not answered.
	time.Sleep(700 * time.Millisecond)
	if _, ok := evs.find("ringing"); !ok {
		t.Fatalf("no 180 Ringing: %s", evs)
	}
	if _, ok := evs.find("answered"); ok {
		t.Fatalf("answered before anyone was in the room: %s", evs)
	}

	// The agent stand-in joins and speaks: now the bridge answers.
	w := joinWatcher(t, st, room)
	eventually(t, 10*time.Second, func() bool { _, ok := evs.find("answered"); return ok },
		func() string { return "not answered after the agent joined: " + evs.String() })
	answered, _ := evs.find("answered")
	eventually(t, 5*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.kinds[identity] == lksdk.ParticipantSIP && w.attrs[identity][livekit.AttrSIPCallStatus] == "active"
	}, func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		return fmt.Sprintf("SIP participant %s not active: kind %v attrs %v", identity, w.kinds[identity], w.attrs[identity])
	})
	w.mu.Lock()
	attrs := w.attrs[identity]
	statuses := slices.Clone(w.statuses[identity])
	w.mu.Unlock()
	for k, want := range map[string]string{
		livekit.AttrSIPPhoneNumber:    caller,
		livekit.AttrSIPTrunkNumber:    inboundNumber,
		livekit.AttrSIPTrunkID:        setup.trunkID,
		livekit.AttrSIPDispatchRuleID: setup.ruleID,
		attrSIPCallIDFull:             answered.CallID,
	} {
		if attrs[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], want)
		}
	}
	if id := attrs[livekit.AttrSIPCallID]; !strings.HasPrefix(id, "SCL_") {
		t.Errorf("sip.callID %q, want SCL_...", id)
	}
	if !isSubsequence([]string{"ringing", "active"}, statuses) {
		t.Errorf("sip.callStatus went %v, want ringing -> active", statuses)
	}

	// Caller -> room DTMF.
	if phone.SendDigits("7") != 1 {
		t.Fatal("no call to send DTMF on")
	}
	eventually(t, 5*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return slices.Equal(w.digits, []string{"7"})
	}, func() string { return fmt.Sprintf("room got DTMF %q", w.digits) })

	// Audio both ways.
	time.Sleep(2 * time.Second)
	w.mu.Lock()
	heard := slices.Clone(w.heard)
	w.mu.Unlock()
	if len(heard) < audio.SampleRate {
		t.Fatalf("room heard only %d samples from the caller", len(heard))
	}
	if s := toneShare(heard[len(heard)-audio.SampleRate:], 1000); s < 0.5 {
		t.Errorf("room hears the caller's 1 kHz at %.2f of the energy", s)
	}

	// The caller hangs up: hangup status, the participant leaves.
	phone.HangUp()
	if err := waitResult(t, done, 5*time.Second, evs); err != nil {
		t.Fatalf("call: %v", err)
	}
	eventually(t, 5*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.left[identity]
	}, func() string { return "SIP participant still in the room" })
	w.mu.Lock()
	statuses = slices.Clone(w.statuses[identity])
	w.mu.Unlock()
	if !isSubsequence([]string{"active", "hangup"}, statuses) {
		t.Errorf("sip.callStatus went %v, want ... active -> hangup", statuses)
	}
	if ev, _ := evs.find("hangup"); ev.By != "local" {
		t.Errorf("hangup event %+v", ev)
	}
	rec, ok := evs.find("recorded")
	if !ok {
		t.Fatalf("no recording: %s", evs)
	}
	got, err := wav.ReadFile(rec.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Samples) < audio.SampleRate {
		t.Fatalf("caller recorded %d samples", len(got.Samples))
	}
	if s := toneShare(got.Samples, 440); s < 0.5 {
		t.Errorf("caller hears the room's 440 Hz at %.2f of the energy", s)
	}
	eventually(t, 5*time.Second, func() bool { return st.service.ActiveCalls() == 0 },
		func() string { return "bridge still has active calls" })
}

// Deleting the room hangs up the caller (BYE).
func TestInboundRoomDeletionHangsUpTheCaller(t *testing.T) {
	st := needStack(t)
	provisionInbound(t, st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const caller = "+15550001002"
	phone, evs := startPhone(t, ctx, testphone.Config{})
	done := placeCall(ctx, st, phone, caller, inboundNumber)
	room := waitRoom(t, st, roomPrefix, caller, evs)
	joinWatcher(t, st, room)
	eventually(t, 10*time.Second, func() bool { _, ok := evs.find("answered"); return ok },
		func() string { return "not answered: " + evs.String() })
	if _, err := lksdk.NewRoomServiceClient(st.httpURL, apiKey, apiSecret).DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: room}); err != nil {
		t.Fatalf("delete room: %v", err)
	}
	if err := waitResult(t, done, 5*time.Second, evs); err != nil {
		t.Fatalf("call: %v", err)
	}
	if ev, _ := evs.find("hangup"); ev.By != "remote" {
		t.Fatalf("hangup event %+v, want by remote", ev)
	}
}

// A call whose dispatch rule sends the agent, when no agent takes it (no worker here,
// as when every worker is full and livekit-server dropped the dispatch): while it rings
// the bridge offers it to the agent again every second, and after its AgentWait it says
// 486 Busy Here, long before the 3-minute ringing timeout.
func TestInboundCallNoAgentTakesIsBusy(t *testing.T) {
	st := needStack(t)
	provisionInbound(t, st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const caller = "+15550001005"
	phone, evs := startPhone(t, ctx, testphone.Config{})
	start := time.Now()
	done := placeCall(ctx, st, phone, caller, inboundNumber)
	room := waitRoom(t, st, roomPrefix, caller, evs)
	time.Sleep(1500 * time.Millisecond) // the first offer again is due 1 s after the room
	dispatches, err := lksdk.NewAgentDispatchServiceClient(st.httpURL, apiKey, apiSecret).
		ListDispatch(ctx, &livekit.ListAgentDispatchRequest{Room: room})
	if err != nil {
		t.Fatalf("list dispatch: %v", err)
	}
	offers := 0
	for _, d := range dispatches.AgentDispatches {
		if d.AgentName == agentName {
			offers++
		}
	}
	if offers < 2 || offers > 3 {
		t.Fatalf("%d dispatches of %s 1.5 s after the room, want 2 (the rule's, one offer again; 3 if the ticker started early)", offers, agentName)
	}
	err = waitResult(t, done, agentWait+10*time.Second, evs)
	var failed *sipua.CallFailure
	if !errors.As(err, &failed) || failed.Code != 486 || failed.Local {
		t.Fatalf("call result %v, want 486 from the bridge (phone: %s)", err, evs)
	}
	if took := time.Since(start); took < agentWait {
		t.Fatalf("refused after %v, before the agent wait %v", took, agentWait)
	}
	if _, ok := evs.find("ringing"); !ok {
		t.Fatalf("never rang: %s", evs)
	}
}

// Calls the trunks do not allow are refused: an unknown number, and the right number
// from an address outside the trunk's allowed_addresses (127.0.0.2).
func TestInboundCallsNotMatchingATrunkAreRefused(t *testing.T) {
	st := needStack(t)
	provisionInbound(t, st)
	cases := []struct {
		name, host, caller, number string
	}{
		{"unknown number", "127.0.0.1", "+15550001003", "+14155550000"},
		{"address not allowed", "127.0.0.2", "+15550001004", inboundNumber},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			phone, evs := startPhone(t, ctx, testphone.Config{SIP: sipua.Config{Host: c.host}})
			err := waitResult(t, placeCall(ctx, st, phone, c.caller, c.number), 10*time.Second, evs)
			var failed *sipua.CallFailure
			if !errors.As(err, &failed) || failed.Code != 404 || failed.Local {
				t.Fatalf("call result %v, want 404 from the bridge (phone: %s)", err, evs)
			}
			if ev, _ := evs.find("hangup"); ev.Status != 404 || ev.By != "remote" {
				t.Fatalf("hangup event %+v", ev)
			}
			rooms, err := lksdk.NewRoomServiceClient(st.httpURL, apiKey, apiSecret).ListRooms(ctx, &livekit.ListRoomsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rooms.Rooms {
				if strings.Contains(r.Name, c.caller) {
					t.Fatalf("a refused call made room %s", r.Name)
				}
			}
		})
	}
}

// A trunk with credentials: no credentials get the 407 challenge, wrong ones 403;
// the right ones get through to the room, and with nobody there the call is given
// up after the trunk's ringing_timeout with 480.
func TestInboundTrunkCredentials(t *testing.T) {
	st := needStack(t)
	provisionInbound(t, st)
	cases := []struct {
		name, user, password string
		want                 int
	}{
		{"no credentials", "", "", 407},
		{"wrong password", authUser, "nope", 403},
		{"right credentials, nobody answers", authUser, authPassword, 480},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			caller := fmt.Sprintf("+1555000200%d", i)
			phone, evs := startPhone(t, ctx, testphone.Config{DialUser: c.user, DialPassword: c.password})
			start := time.Now()
			err := waitResult(t, placeCall(ctx, st, phone, caller, authNumber), 15*time.Second, evs)
			var failed *sipua.CallFailure
			if !errors.As(err, &failed) || failed.Code != c.want || failed.Local {
				t.Fatalf("call result %v, want %d from the bridge (phone: %s)", err, c.want, evs)
			}
			if c.want == 480 {
				if took := time.Since(start); took < authRingingLimit {
					t.Fatalf("gave up after %v, before the trunk's ringing timeout %v", took, authRingingLimit)
				}
				if _, ok := evs.find("ringing"); !ok {
					t.Fatalf("authenticated call never rang: %s", evs)
				}
			}
		})
	}
}

const attrSIPCallIDFull = livekit.AttrSIPPrefix + "callIDFull"
