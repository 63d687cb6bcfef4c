package sipua

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Dialog is an established call, either direction (diago's client and server
// sessions both are one): requests can be sent inside it.
type Dialog interface {
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	Context() context.Context
	RemoteContact() *sip.ContactHeader
}

// TransferFailure is a REFER that did not transfer the call: the far end refused the
// REFER itself (Notified false), or accepted it and then reported, in a NOTIFY, that
// the call to the new destination failed with this status.
type TransferFailure struct {
	Code     int
	Reason   string
	Notified bool
}

func (e *TransferFailure) Error() string {
	if e.Notified {
		return fmt.Sprintf("transfer failed: %d %s", e.Code, e.Reason)
	}
	return fmt.Sprintf("transfer refused: %d %s", e.Code, e.Reason)
}

// ErrDialogEnded is returned by Refer when the call ended while the transfer was under
// way (the far end hung up after accepting the REFER, as many do).
var ErrDialogEnded = errors.New("call ended during the transfer")

// Refer asks the far end of d to call referTo instead (a blind transfer, RFC 3515):
// REFER with Refer-To, then it waits for the NOTIFY that carries the final status of
// the new call (message/sipfrag). It returns nil once that status is 200, a
// *TransferFailure when the REFER is refused or the NOTIFY reports a failure,
// ErrDialogEnded if the call ends first, and ctx's error if ctx ends first.
//
// referTo is a sip:, sips: or tel: URI, with or without the angle brackets.
func (u *UA) Refer(ctx context.Context, d Dialog, callID, referTo string, headers map[string]string) error {
	contact := d.RemoteContact()
	if contact == nil {
		return errors.New("refer: the far end gave no Contact")
	}
	target := strings.TrimSpace(referTo)
	if !strings.HasPrefix(target, "<") {
		target = "<" + target + ">"
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(target, "<"), ">")
	if !strings.HasPrefix(inner, "sip:") && !strings.HasPrefix(inner, "sips:") && !strings.HasPrefix(inner, "tel:") {
		return fmt.Errorf("refer: %q is not a sip:, sips: or tel: URI", referTo)
	}

	// NOTIFYs may arrive before the 202 (they are separate transactions), so listen first.
	notified := make(chan *TransferFailure, 8)
	u.notifyMu.Lock()
	if _, busy := u.notifyWaiters[callID]; busy {
		u.notifyMu.Unlock()
		return errors.New("refer: a transfer of this call is already in progress")
	}
	u.notifyWaiters[callID] = func(req *sip.Request) {
		code, reason, ok := parseSipfrag(req.Body())
		if !ok || code < 200 {
			return // 100 Trying and the like: the transfer is still under way
		}
		select {
		case notified <- &TransferFailure{Code: code, Reason: reason, Notified: true}:
		default:
		}
	}
	u.notifyMu.Unlock()
	defer func() {
		u.notifyMu.Lock()
		delete(u.notifyWaiters, callID)
		u.notifyMu.Unlock()
	}()

	req := sip.NewRequest(sip.REFER, contact.Address)
	req.AppendHeader(sip.NewHeader("Refer-To", target))
	req.AppendHeader(sip.NewHeader("Referred-By", fmt.Sprintf("<sip:%s@%s>", u.cfg.Name, u.Addr())))
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: u.cfg.Name, Host: u.cfg.Host, Port: u.cfg.Port}})
	for name, value := range headers {
		req.AppendHeader(sip.NewHeader(name, value))
	}
	res, err := d.Do(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("refer: %w", err)
	}
	if res.StatusCode != sip.StatusOK && res.StatusCode != sip.StatusAccepted {
		return &TransferFailure{Code: res.StatusCode, Reason: res.Reason}
	}
	select {
	case result := <-notified:
		if result.Code == sip.StatusOK {
			return nil
		}
		return result
	case <-d.Context().Done():
		return ErrDialogEnded
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handleNotify answers NOTIFYs. Those for a REFER in progress go to its waiter;
// others belong to no subscription of ours (481).
func (u *UA) handleNotify(req *sip.Request, tx sip.ServerTransaction) {
	var callID string
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	event := ""
	if h := req.GetHeader("Event"); h != nil {
		event = strings.ToLower(strings.TrimSpace(h.Value()))
	}
	u.notifyMu.Lock()
	waiter := u.notifyWaiters[callID]
	u.notifyMu.Unlock()
	if waiter == nil || !(event == "refer" || strings.HasPrefix(event, "refer;")) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist", nil))
		return
	}
	if _, _, ok := parseSipfrag(req.Body()); !ok {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad sipfrag", nil))
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	waiter(req)
}

// parseSipfrag reads the status line of a message/sipfrag body ("SIP/2.0 200 OK").
func parseSipfrag(body []byte) (code int, reason string, ok bool) {
	line, _, _ := strings.Cut(string(body), "\n")
	fields := strings.SplitN(strings.TrimSpace(line), " ", 3)
	if len(fields) < 2 || !strings.EqualFold(fields[0], "SIP/2.0") {
		return 0, "", false
	}
	code, err := strconv.Atoi(fields[1])
	if err != nil || code < 100 || code > 699 {
		return 0, "", false
	}
	if len(fields) == 3 {
		reason = strings.TrimSpace(fields[2])
	}
	return code, reason, true
}

// SendNotify reports the progress of a REFER the far end sent us (the test phone
// plays the transfer target): a NOTIFY in the dialog to the REFER's Contact, with the
// sipfrag of the status. final ends the implicit subscription.
func SendNotify(ctx context.Context, d Dialog, to sip.Uri, code int, reason string, final bool) error {
	req := sip.NewRequest(sip.NOTIFY, to)
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody([]byte(fmt.Sprintf("SIP/2.0 %d %s\r\n", code, reason)))
	res, err := d.Do(ctx, req)
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		return fmt.Errorf("NOTIFY answered %d %s", res.StatusCode, res.Reason)
	}
	return nil
}
