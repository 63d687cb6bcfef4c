// Package sipua is the SIP user agent shared by the bridge and the test phone: one UDP
// listener (diago on sipgo) that places calls, answers or rejects calls, and gives
// each call a G.711 media stream (Media).
package sipua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Config says where the agent listens and how it names itself.
type Config struct {
	// Host is the IP to bind and to put in Contact, Via and SDP (loopback here).
	Host string
	// Port is the UDP port for SIP. It must be set: diago does not tell which port an
	// ephemeral bind got, and the peer needs to know it (use FreeUDPPort in tests).
	Port int
	// Name is the user part of our Contact and the User-Agent header.
	Name string
	// AlsoTCP listens for SIP over TCP on the same port as well (for OPTIONS probes and
	// peers that insist); calls we place always go over UDP.
	AlsoTCP bool
	// OnRefer, if set, takes every REFER instead of diago (which would place the
	// referred call itself). The test phone uses it to script its answers.
	OnRefer func(req *sip.Request, tx sip.ServerTransaction)
	Logger  *slog.Logger
}

// UA is a running SIP user agent.
type UA struct {
	cfg Config
	dg  *diago.Diago
	ua  *sipgo.UserAgent

	// notifyMu guards notifyWaiters: REFERs in progress, by SIP Call-ID, waiting for
	// the NOTIFYs that report how the transfer went.
	notifyMu      sync.Mutex
	notifyWaiters map[string]func(req *sip.Request)
}

// IncomingFunc handles one incoming INVITE. The call ends (BYE, or a final error
// response if it was never answered) when the function returns.
type IncomingFunc func(d *diago.DialogServerSession)

// Start listens on cfg.Host:cfg.Port (UDP) and hands incoming INVITEs to onInvite until
// ctx ends.
func Start(ctx context.Context, cfg Config, onInvite IncomingFunc) (*UA, error) {
	if cfg.Port == 0 {
		return nil, errors.New("sipua: a SIP port must be given")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(cfg.Name), sipgo.WithUserAgentHostname(cfg.Host))
	if err != nil {
		return nil, fmt.Errorf("sip user agent: %w", err)
	}
	server, err := sipgo.NewServer(ua, sipgo.WithServerLogger(cfg.Logger))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip server: %w", err)
	}
	// Health probes (ours and LiveKit's tooling) send OPTIONS; a UA that is up says 200.
	server.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	opts := []diago.DiagoOption{
		diago.WithLogger(cfg.Logger),
		diago.WithServer(server),
		diago.WithTransport(diago.Transport{Transport: "udp", BindHost: cfg.Host, BindPort: cfg.Port}),
		diago.WithMediaConfig(diago.MediaConfig{
			// What we offer and accept: G.711 both laws, and RFC 4733 events for DTMF.
			Codecs: []media.Codec{media.CodecAudioUlaw, media.CodecAudioAlaw, media.CodecTelephoneEvent8000},
		}),
	}
	if cfg.AlsoTCP {
		opts = append(opts, diago.WithTransport(diago.Transport{Transport: "tcp", BindHost: cfg.Host, BindPort: cfg.Port}))
	}
	dg := diago.NewDiago(ua, opts...)
	u := &UA{cfg: cfg, dg: dg, ua: ua, notifyWaiters: map[string]func(*sip.Request){}}
	// diago registered its own REFER and NOTIFY handlers; these replace them. NOTIFY
	// only ever reports on a REFER we sent, and diago would pass on the status code
	// alone, without the reason phrase that callers of the transfer API get to see.
	server.OnNotify(u.handleNotify)
	if cfg.OnRefer != nil {
		server.OnRefer(cfg.OnRefer)
	}
	if err := dg.ServeBackground(ctx, diago.ServeDialogFunc(onInvite)); err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip listen on %s: %w", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), err)
	}
	// diago reports the listener ready just before sipgo puts it in its connection
	// pool. A call placed in between would make sipgo open a second socket on the
	// same port (EADDRINUSE), so wait until the listener is in the pool.
	addr := u.Addr()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if c, err := ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			c.Ref(-1) // GetConnection took a reference
			break
		}
		if time.Now().After(deadline) {
			ua.Close()
			return nil, fmt.Errorf("sip listener on %s did not come up", addr)
		}
	}
	go func() {
		<-ctx.Done()
		ua.Close()
	}()
	return u, nil
}

// Addr is the host:port this agent receives SIP on.
func (u *UA) Addr() string { return net.JoinHostPort(u.cfg.Host, strconv.Itoa(u.cfg.Port)) }

// Host is the IP this agent advertises.
func (u *UA) Host() string { return u.cfg.Host }

// SetRTPPortRange limits the UDP ports calls use for RTP. diago keeps this range in
// package globals, so it applies to every agent in the process; call it before calls.
func SetRTPPortRange(first, last int) {
	media.RTPPortStart = first
	media.RTPPortEnd = last
}

// FreeUDPPort asks the kernel for a UDP port on host that is free right now.
func FreeUDPPort(host string) (int, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}
