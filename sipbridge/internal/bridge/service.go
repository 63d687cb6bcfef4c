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

	"github.com/emiago/diago"
	"github.com/emiago/sipgo/sip"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/rpc"
	"github.com/livekit/psrpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"salesagent/sipbridge/internal/sipua"
)

// Settings are the LiveKit details the service needs for every call.
type Settings struct {
	WsURL, APIKey, APISecret string
	// ClusterID is the psrpc topic CreateSIPParticipant arrives on ("" by default).
	ClusterID string
}

// Dialer places outgoing SIP calls (sipua.UA in production).
type Dialer interface {
	Dial(ctx context.Context, to sip.Uri, opts sipua.DialOptions) (*sipua.OutboundCall, error)
}

// Service implements rpc.SIPInternalServerImpl.
type Service struct {
	settings Settings
	dialer   Dialer
	io       rpc.IOInfoClient // call state reports; nil to skip them
	log      *slog.Logger

	// ctx is the service's lifetime: calls outlive the RPC that created them.
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	calls map[string]*outboundCall
	wg    sync.WaitGroup

	server rpc.SIPInternalServer
}

// NewService returns a service that dials with dialer and reports to io (may be nil).
func NewService(settings Settings, dialer Dialer, io rpc.IOInfoClient, log *slog.Logger) *Service {
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		settings: settings,
		dialer:   dialer,
		io:       io,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		calls:    map[string]*outboundCall{},
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
	s.cancel()
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
	s.track(call)
	resp := &rpc.InternalCreateSIPParticipantResponse{
		ParticipantId:       call.part.SID(),
		ParticipantIdentity: call.part.Identity(),
		SipCallId:           req.SipCallId,
	}
	if !req.WaitUntilAnswered {
		s.wg.Go(func() {
			defer s.untrack(call)
			if err := call.dial(s.ctx); err != nil {
				return
			}
			call.bridgeUntilHangup(s.ctx)
		})
		return resp, nil
	}
	// The RPC's deadline bounds the ringing too; the call then lives on its own.
	if err := call.dial(mergeDone(ctx, s.ctx)); err != nil {
		s.untrack(call)
		return nil, dialError(err)
	}
	s.wg.Go(func() {
		defer s.untrack(call)
		call.bridgeUntilHangup(s.ctx)
	})
	return resp, nil
}

// TransferSIPParticipant (SIP REFER) is a later stage.
func (s *Service) TransferSIPParticipant(context.Context, *rpc.InternalTransferSIPParticipantRequest) (*emptypb.Empty, error) {
	return nil, psrpc.NewErrorf(psrpc.Unimplemented, "call transfer is not supported by this SIP bridge yet")
}

// RejectInbound answers an incoming INVITE until inbound calls are implemented.
func RejectInbound(log *slog.Logger, d *diago.DialogServerSession) {
	log.Info("rejecting inbound call (not supported yet)", "from", d.InviteRequest.From().Address.String())
	_ = d.Respond(sip.StatusServiceUnavailable, "Inbound Calls Not Supported", nil)
}

func (s *Service) track(c *outboundCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[c.req.SipCallId] = c
}

func (s *Service) untrack(c *outboundCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.calls, c.req.SipCallId)
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
