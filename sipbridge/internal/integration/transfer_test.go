package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"salesagent/sipbridge/internal/testphone"
)

// answeredInbound places an inbound call from caller to the agent's number and has
// the agent stand-in join, so that the call is answered.
func answeredInbound(t *testing.T, ctx context.Context, st *stack, caller string, cfg testphone.Config) (*testphone.Phone, *phoneEvents, <-chan error, string, *watcher) {
	t.Helper()
	provisionInbound(t, st)
	phone, evs := startPhone(t, ctx, cfg)
	done := placeCall(ctx, st, phone, caller, inboundNumber)
	room := waitRoom(t, st, roomPrefix, caller, evs)
	w := joinWatcher(t, st, room)
	eventually(t, 10*time.Second, func() bool { _, ok := evs.find("answered"); return ok },
		func() string { return "not answered: " + evs.String() })
	return phone, evs, done, room, w
}

// TransferSIPParticipant on an inbound call: REFER to the caller, who accepts and
// reports success; the API call returns without error and the bridge then hangs up.
func TestTransferInboundCall(t *testing.T) {
	st := needStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const caller = "+15550003001"
	identity := "sip_" + caller
	_, evs, done, room, w := answeredInbound(t, ctx, st, caller, testphone.Config{ReferDelay: 300 * time.Millisecond})

	const target = "tel:+15550009999"
	start := time.Now()
	_, err := lksdk.NewSIPClient(st.httpURL, apiKey, apiSecret).TransferSIPParticipant(ctx, &livekit.TransferSIPParticipantRequest{
		RoomName: room, ParticipantIdentity: identity, TransferTo: target,
	})
	if err != nil {
		t.Fatalf("transfer: %v (phone: %s)", err, evs)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("transfer returned after %v, before the phone's final NOTIFY", took)
	}
	refer, ok := evs.find("refer")
	if !ok || refer.Status != 202 || !strings.Contains(refer.ReferTo, target) {
		t.Fatalf("phone refer event %+v, want 202 for %s", refer, target)
	}
	// After the transfer our leg ends: the bridge sends BYE, the participant leaves.
	if err := waitResult(t, done, 5*time.Second, evs); err != nil {
		t.Fatalf("call: %v", err)
	}
	if ev, _ := evs.find("hangup"); ev.By != "remote" {
		t.Fatalf("hangup event %+v, want by remote (the bridge)", ev)
	}
	eventually(t, 5*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.left[identity]
	}, func() string { return "SIP participant still in the room after the transfer" })
}

// A transfer the phone reports as failed (NOTIFY 486), or a REFER it refuses (603),
// comes back from the API as an error with the SIP status (Twirp metadata, which
// Python's livekit-api turns into SipCallError), and the call goes on.
func TestTransferFailuresReturnSIPStatus(t *testing.T) {
	st := needStack(t)
	cases := []struct {
		name   string
		phone  testphone.Config
		code   string
		status string
	}{
		{"notify says busy", testphone.Config{ReferResult: 486}, "486", "Busy Here"},
		{"refer refused", testphone.Config{ReferReject: 603}, "603", "Decline"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			caller := fmt.Sprintf("+1555000310%d", i)
			identity := "sip_" + caller
			phone, evs, done, room, w := answeredInbound(t, ctx, st, caller, c.phone)
			req := &livekit.TransferSIPParticipantRequest{RoomName: room, ParticipantIdentity: identity, TransferTo: "sip:+15550009999@127.0.0.1:5999"}

			code, meta, err := transferRaw(ctx, st, req)
			if err != nil {
				t.Fatal(err)
			}
			if code == "" || meta["sip_status_code"] != c.code || meta["sip_status"] != c.status {
				t.Fatalf("twirp error %q meta %v; want sip_status_code=%s sip_status=%q (phone: %s)", code, meta, c.code, c.status, evs)
			}
			_, err = lksdk.NewSIPClient(st.httpURL, apiKey, apiSecret).TransferSIPParticipant(ctx, req)
			stat, ok := status.FromError(err)
			if !ok {
				t.Fatalf("Go SDK error %v is no gRPC status", err)
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
			// The call is still up.
			time.Sleep(1500 * time.Millisecond)
			select {
			case err := <-done:
				t.Fatalf("call ended after a failed transfer: %v (%s)", err, evs)
			default:
			}
			w.mu.Lock()
			left := w.left[identity]
			w.mu.Unlock()
			if left {
				t.Fatal("participant left after a failed transfer")
			}
			phone.HangUp()
			if err := waitResult(t, done, 5*time.Second, evs); err != nil {
				t.Fatalf("call: %v", err)
			}
		})
	}
}

// Outbound calls can be transferred too.
func TestTransferOutboundCall(t *testing.T) {
	st := needStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	phone, evs := startPhone(t, ctx, testphone.Config{})
	trunkID := createTrunk(t, st, phone)
	const room, identity = "it-transfer-out", "phone-transfer"
	sc := lksdk.NewSIPClient(st.httpURL, apiKey, apiSecret)
	if _, err := sc.CreateSIPParticipant(ctx, &livekit.CreateSIPParticipantRequest{
		SipTrunkId: trunkID, SipCallTo: calledNumber, RoomName: room, ParticipantIdentity: identity, WaitUntilAnswered: true,
	}); err != nil {
		t.Fatalf("CreateSIPParticipant: %v", err)
	}
	const target = "sip:+15550008888@127.0.0.1:5999"
	if _, err := sc.TransferSIPParticipant(ctx, &livekit.TransferSIPParticipantRequest{
		RoomName: room, ParticipantIdentity: identity, TransferTo: target,
	}); err != nil {
		t.Fatalf("transfer: %v (phone: %s)", err, evs)
	}
	if ev, _ := evs.find("refer"); !strings.Contains(ev.ReferTo, target) {
		t.Fatalf("refer event %+v", ev)
	}
	eventually(t, 5*time.Second, func() bool { ev, ok := evs.find("hangup"); return ok && ev.By == "remote" },
		func() string { return "phone not hung up after the transfer: " + evs.String() })
}

// transferRaw calls TransferSIPParticipant as a plain Twirp client (as Python's
// livekit-api does) and returns the error code and metadata of the reply.
func transferRaw(ctx context.Context, st *stack, req *livekit.TransferSIPParticipantRequest) (string, map[string]string, error) {
	token, err := auth.NewAccessToken(apiKey, apiSecret).
		SetSIPGrant(&auth.SIPGrant{Call: true}).
		SetVideoGrant(&auth.VideoGrant{RoomAdmin: true, Room: req.RoomName}).
		ToJWT()
	if err != nil {
		return "", nil, err
	}
	body, err := protojson.Marshal(req)
	if err != nil {
		return "", nil, err
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, st.httpURL+"/twirp/livekit.SIP/TransferSIPParticipant", bytes.NewReader(body))
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
		Meta map[string]string `json:"meta"`
	}
	if err := json.NewDecoder(res.Body).Decode(&reply); err != nil {
		return "", nil, fmt.Errorf("HTTP %d: %w", res.StatusCode, err)
	}
	return reply.Code, reply.Meta, nil
}
