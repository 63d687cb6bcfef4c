package sipua

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// DialOptions are the caller-side details of an outgoing INVITE.
type DialOptions struct {
	// From: the calling number and the host to put in the From URI (ours if empty).
	FromUser, FromHost, FromName string
	// Digest credentials, used only if the far end challenges with 401/407.
	Username, Password string
	// Extra headers for the INVITE.
	Headers map[string]string
	// OnProgress is called for every provisional response (100 Trying, 180 Ringing,
	// 183 Session Progress).
	OnProgress func(code int, reason string)
}

// CallFailure is an INVITE that ended without a call: the final SIP response, or a
// local stand-in for one (408 when nobody answered in time, 487 when we gave up).
type CallFailure struct {
	Code   int
	Reason string
	// Local is true when no such response came from the far end; we made it up.
	Local bool
}

func (e *CallFailure) Error() string {
	if e.Local {
		return fmt.Sprintf("call failed: %d %s (no final response)", e.Code, e.Reason)
	}
	return fmt.Sprintf("call failed: %d %s", e.Code, e.Reason)
}

// OutboundCall is an answered outgoing call.
type OutboundCall struct {
	Dialog *diago.DialogClientSession
	Media  *Media
}

// CallID is the SIP Call-ID of the dialog.
func (c *OutboundCall) CallID() string {
	if id := c.Dialog.InviteRequest.CallID(); id != nil {
		return id.Value()
	}
	return ""
}

// Done is closed when the dialog ends, whichever side hung up.
func (c *OutboundCall) Done() <-chan struct{} { return c.Dialog.Context().Done() }

// Hangup sends BYE (if the dialog is still up) and releases the call's resources.
func (c *OutboundCall) Hangup(ctx context.Context) error {
	var byeErr error
	select {
	case <-c.Done():
	default:
		byeErr = c.Dialog.Hangup(ctx)
	}
	return errors.Join(byeErr, c.Dialog.Close())
}

// Dial sends an INVITE to `to` and waits for the answer. When ctx ends first the
// INVITE is cancelled (CANCEL) and the error is a CallFailure: 408 if ctx's deadline
// passed (nobody answered in time), 487 if it was cancelled.
func (u *UA) Dial(ctx context.Context, to sip.Uri, opts DialOptions) (*OutboundCall, error) {
	fromHost := opts.FromHost
	if fromHost == "" {
		fromHost = u.cfg.Host
	}
	var headers []sip.Header
	headers = append(headers, &sip.FromHeader{
		DisplayName: opts.FromName,
		Address:     sip.Uri{Scheme: "sip", User: opts.FromUser, Host: fromHost},
		Params:      sip.NewParams(),
	})
	for name, value := range opts.Headers {
		headers = append(headers, sip.NewHeader(name, value))
	}
	// CANCEL needs a provisional response first (RFC 3261 9.1), so sipgo otherwise
	// waits out Timer B (32 s) when the far end never answered at all. Give up at once
	// then: there is nothing to cancel.
	var provisional atomic.Bool
	inviteCtx, cancelInvite := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelInvite(nil)
	stop := context.AfterFunc(ctx, func() {
		if provisional.Load() {
			cancelInvite(context.Cause(ctx))
		} else {
			cancelInvite(sipgo.WaitAnswerForceCancelErr)
		}
	})
	defer stop()
	onResponse := func(res *sip.Response) error {
		if res.IsProvisional() {
			provisional.Store(true)
			if opts.OnProgress != nil {
				opts.OnProgress(res.StatusCode, res.Reason)
			}
		}
		return nil
	}
	d, dm, err := u.dg.Invite(inviteCtx, to, diago.InviteOptions{
		Transport:  "udp",
		Username:   opts.Username,
		Password:   opts.Password,
		Headers:    headers,
		OnResponse: onResponse,
	})
	if err != nil {
		return nil, inviteFailure(ctx, err)
	}
	m, err := NewMedia(dm)
	if err != nil {
		// Answered with media we cannot carry: hang the call up again.
		_ = d.Hangup(context.WithoutCancel(ctx))
		_ = d.Close()
		return nil, &CallFailure{Code: sip.StatusNotAcceptableHere, Reason: err.Error(), Local: true}
	}
	return &OutboundCall{Dialog: d, Media: m}, nil
}

// inviteFailure turns what diago/sipgo return for a failed INVITE into a CallFailure
// where a SIP status applies, so callers can report it.
func inviteFailure(ctx context.Context, err error) error {
	var rejected *sipgo.ErrDialogResponse
	if errors.As(err, &rejected) {
		return &CallFailure{Code: rejected.Res.StatusCode, Reason: rejected.Res.Reason}
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &CallFailure{Code: sip.StatusRequestTimeout, Reason: "Request Timeout", Local: true}
	case ctx.Err() != nil:
		return &CallFailure{Code: sip.StatusRequestTerminated, Reason: "Request Terminated", Local: true}
	}
	// The transaction ended without any final response (Timer B) or could not be sent.
	return fmt.Errorf("invite: %w", err)
}
