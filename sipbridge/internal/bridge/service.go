// Package bridge is the SIP service livekit-server talks to over psrpc. Stage 1 does
// outbound calls: CreateSIPParticipant dials the phone, puts a SIP participant in the
// room and bridges audio and DTMF until either side hangs up.
package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/rpc"
	"github.com/livekit/psrpc"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"google.golang.org/protobuf/types/known/emptypb"

	"salesagent/sipbridge/internal/sipua"
)

// Settings are the LiveKit details the service needs for every call.
type Settings struct {
	WsURL, APIKey, APISecret string
	// ClusterID is the psrpc topic CreateSIPParticipant arrives on ("" by default).
	ClusterID string
	// AgentWait: an incoming call whose dispatch sends an agent gets 486 if none has
	// joined the room by then (0: it rings until the ringing timeout).
	AgentWait time.Duration
}

// SIP places outgoing calls and transfers calls (sipua.UA in production).
type SIP interface {
	Dial(ctx context.Context, to sip.Uri, opts sipua.DialOptions) (*sipua.OutboundCall, error)
	Refer(ctx context.Context, d sipua.Dialog, callID, referTo string, headers map[string]string) error
}

// Service implements rpc.SIPInternalServerImpl.
type Service struct {
	settings Settings
	sip      SIP
	io       rpc.IOInfoClient // call state reports; nil to skip them
	log      *slog.Logger

	// ctx is the service's lifetime: calls outlive the RPC that created them.
	ctx    context.Context
	cancel context.CancelFunc

	auth *inboundAuth
	// dispatch offers a ringing call to its agent again (reoffer.go).
	dispatch Dispatcher

	mu    sync.Mutex
	calls map[string]*callCore // by LiveKit call ID (sip.callID)
	wg    sync.WaitGroup

	server rpc.SIPInternalServer
}

// NewService returns a service that places and transfers calls with sipUA and reports
// to io. io also routes inbound calls (trunk authentication, dispatch rules); with a
// nil io the service only places calls.
func NewService(settings Settings, sipUA SIP, io rpc.IOInfoClient, log *slog.Logger) *Service {
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		settings: settings,
		sip:      sipUA,
		io:       io,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		auth:     newInboundAuth(),
		calls:    map[string]*callCore{},
		dispatch: lksdk.NewAgentDispatchServiceClient(settings.WsURL, settings.APIKey, settings.APISecret),
	}
}

// Register makes the service reachable over psrpc: livekit-server's SIP API then
// forwards CreateSIPParticipant to it.
func (s *Service) Register(bus psrpc.MessageBus) error {
	srv, err := rpc.NewSIPInternalServer(s, bus)
	if err != nil {
		return fmt.Errorf("psrpc SIP server: %w", err)
	}
	if err := srv.RegisterCreateSIPParticipantTopic(s.settings.ClusterID); err != nil {
		srv.Kill()
		return fmt.Errorf("register CreateSIPParticipant: %w", err)
	}
	s.server = srv
	return nil
}

// Close stops taking calls, hangs up the ones in progress and waits for them.
func (s *Service) Close() {
	if s.server != nil {
		s.server.DeregisterCreateSIPParticipantTopic(s.settings.ClusterID)
	}
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
	if s.server != nil {
		s.server.Shutdown()
	}
}

// ActiveCalls is the number of calls in progress.
func (s *Service) ActiveCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// CreateSIPParticipant places an outbound call for livekit-server.
//
// Like LiveKit's SIP service, the participant joins the room first (sip.callStatus
// "dialing"), then the INVITE goes out. Without wait_until_answered the RPC returns as
// soon as the participant is in the room; with it, only once the callee answered, and
// with the SIP status as error if they did not.
func (s *Service) CreateSIPParticipant(ctx context.Context, req *rpc.InternalCreateSIPParticipantRequest) (*rpc.InternalCreateSIPParticipantResponse, error) {
	if err := s.ctx.Err(); err != nil {
		return nil, psrpc.NewErrorf(psrpc.Unavailable, "SIP bridge is shutting down")
	}
	target, err := outboundTarget(req)
	if err != nil {
		return nil, err
	}
	log := s.log.With("callID", req.SipCallId, "room", req.RoomName, "to", target.String())
	call := newOutboundCall(s, req, target, log)
	if err := call.joinRoom(ctx); err != nil {
		log.Warn("cannot join room", "error", err)
		return nil, psrpc.NewError(psrpc.Internal, err)
	}
	s.track(call.callCore)
	resp := &rpc.InternalCreateSIPParticipantResponse{
		ParticipantId:       call.part.SID(),
		ParticipantIdentity: call.part.Identity(),
		SipCallId:           req.SipCallId,
	}
	if !req.WaitUntilAnswered {
		s.wg.Go(func() {
			defer s.untrack(call.callCore)
			if err := call.dial(s.ctx); err != nil {
				return
			}
			call.run(s.ctx)
		})
		return resp, nil
	}
	// The RPC's deadline bounds the ringing too; the call then lives on its own.
	if err := call.dial(mergeDone(ctx, s.ctx)); err != nil {
		s.untrack(call.callCore)
		return nil, dialError(err)
	}
	s.wg.Go(func() {
		defer s.untrack(call.callCore)
		call.run(s.ctx)
	})
	return resp, nil
}

// TransferSIPParticipant transfers a call of ours (SIP REFER). livekit-server sends
// it on the topic of the call's sip.callID, which we registered for the call. It
// returns once the phone reported the outcome; after a successful transfer the call
// ends.
func (s *Service) TransferSIPParticipant(ctx context.Context, req *rpc.InternalTransferSIPParticipantRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	call := s.calls[req.SipCallId]
	s.mu.Unlock()
	if call == nil {
		return nil, psrpc.NewErrorf(psrpc.NotFound, "unknown call %q", req.SipCallId)
	}
	if d := req.RingingTimeout.AsDuration(); req.RingingTimeout != nil && d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := call.transfer(ctx, req.TransferTo, req.Headers); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// track makes a call known, and reachable for TransferSIPParticipant.
func (s *Service) track(c *callCore) {
	s.mu.Lock()
	s.calls[c.lkCallID] = c
	s.mu.Unlock()
	if s.server != nil {
		if err := s.server.RegisterTransferSIPParticipantTopic(c.lkCallID); err != nil {
			c.log.Warn("cannot take transfers for this call", "error", err)
		}
	}
}

func (s *Service) untrack(c *callCore) {
	if s.server != nil {
		s.server.DeregisterTransferSIPParticipantTopic(c.lkCallID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.calls, c.lkCallID)
}

// outboundTarget is the Request-URI for the call: sip:<call_to>@<trunk address>.
func outboundTarget(req *rpc.InternalCreateSIPParticipantRequest) (sip.Uri, error) {
	var uri sip.Uri
	switch {
	case req.RoomName == "":
		return uri, psrpc.NewErrorf(psrpc.InvalidArgument, "room name must be set")
	case req.CallTo == "":
		return uri, psrpc.NewErrorf(psrpc.InvalidArgument, "no number to call (sip_call_to)")
	case req.Address == "":
		return uri, psrpc.NewErrorf(psrpc.InvalidArgument, "outbound trunk has no address")
	}
	switch req.Transport {
	case livekit.SIPTransport_SIP_TRANSPORT_AUTO, livekit.SIPTransport_SIP_TRANSPORT_UDP:
	default:
		return uri, psrpc.NewErrorf(psrpc.InvalidArgument, "transport %s is not supported (UDP only)", req.Transport.Name())
	}
	if req.MediaEncryption == livekit.SIPMediaEncryption_SIP_MEDIA_ENCRYPT_REQUIRE {
		return uri, psrpc.NewErrorf(psrpc.InvalidArgument, "media encryption is required by the trunk but not supported (no SRTP)")
	}
	if err := sip.ParseUri(fmt.Sprintf("sip:%s@%s", req.CallTo, req.Address), &uri); err != nil {
		return uri, psrpc.NewErrorf(psrpc.InvalidArgument, "cannot build SIP URI for %q at %q: %v", req.CallTo, req.Address, err)
	}
	return uri, nil
}

// mergeDone returns a context that ends when either a or b does, with a's values
// and deadline.
func mergeDone(a, b context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(a)
	stop := context.AfterFunc(b, func() { cancel(context.Cause(b)) })
	context.AfterFunc(ctx, func() { stop() })
	return ctx
}

// defaultRingingTimeout is how long a phone may ring when the request says nothing.
const defaultRingingTimeout = 30 * time.Second

// defaultMaxCallDuration bounds a call when the request says nothing.
const defaultMaxCallDuration = 24 * time.Hour
