package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Audit decorates a store.Audit: every appended event is also classified
// (FromAudit). The audit write decides the outcome: a notification that
// cannot be recorded is logged, never turned into a failed append.
type Audit struct {
	store.Audit
	N *Notifier
}

// AppendAudit appends e and records the notification it implies.
func (a Audit) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	out, err := a.Audit.AppendAudit(ctx, e)
	if err == nil {
		a.N.FromAudit(ctx, out)
	}
	return out, err
}

// FromAudit records the notification an appended audit event implies, if
// any. e must carry the Seq the store gave it: "audit:<seq>" is the key.
func (n *Notifier) FromAudit(ctx context.Context, e store.AuditEvent) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	ev, ok, err := n.classify(ctx, e)
	if err != nil {
		n.log.ErrorContext(ctx, "notify: classifying audit event", "type", e.Type, "seq", e.Seq, "err", err)
		return
	}
	if !ok {
		return
	}
	if _, err := n.Record(ctx, ev); err != nil {
		n.log.ErrorContext(ctx, "notify: recording", "event", ev.Name, "err", err)
	}
}

func (n *Notifier) classify(ctx context.Context, e store.AuditEvent) (Event, bool, error) {
	if e.Seq == 0 || e.UserID == "" {
		return Event{}, false, nil
	}
	ev := Event{Key: "audit:" + strconv.FormatInt(e.Seq, 10), UserID: e.UserID, Time: e.Time,
		Details: map[string]string{"factor": e.Factor}}
	if e.IP != "" {
		ev.Details["ip"] = e.IP
	}
	success := e.Outcome == factors.OutcomeSuccess
	switch e.Type {
	case factors.AuditEnrol:
		if !success || e.Details["pending"] != "false" {
			return Event{}, false, nil // a pending enrolment is added when confirmed
		}
		ev.Name = EventFactorAdded
		if e.Factor == factors.BackupCode {
			replaced, err := n.replacedSet(ctx, e)
			if err != nil {
				return Event{}, false, err
			}
			if replaced {
				ev.Name = EventBackupCodesRegenerated
			}
		}
	case factors.AuditConfirm:
		if !success {
			return Event{}, false, nil
		}
		ev.Name = EventFactorAdded
	case factors.AuditChange:
		if !success {
			return Event{}, false, nil
		}
		ev.Name = EventFactorChanged
	case factors.AuditReset, factors.AuditAdminReset:
		if !success {
			return Event{}, false, nil
		}
		ev.Name = EventFactorRemoved
		if e.Type == factors.AuditAdminReset {
			ev.Details["by"] = "admin"
		}
	case factors.AuditLockout:
		ev.Name = EventLockout
		if u := e.Details["until"]; u != "" {
			ev.Details["until"] = u
		}
	case "stepup.failure", "login.failure":
		if e.Details["reason"] != factors.OutcomeReplay {
			return Event{}, false, nil
		}
		ev.Name = EventCodeReused
	case "stepup.success", "login.success":
		if !success || e.Factor != factors.BackupCode || n.cfg.BackupCodesRemaining == nil {
			return Event{}, false, nil
		}
		left, err := n.cfg.BackupCodesRemaining(ctx, e.UserID)
		if err != nil {
			return Event{}, false, err
		}
		// A use brings the count down by one: it equals the watermark once
		// per set.
		if left != n.cfg.LowWatermark {
			return Event{}, false, nil
		}
		ev.Name = EventBackupCodesLow
		ev.Details["remaining"] = itoa(left)
	default:
		return Event{}, false, nil
	}
	return ev, true, nil
}

// replacedSet tells whether the backup-code enrolment e replaced a set:
// the user's previous backup-code event in the trail is an enrolment, not
// a reset (or there is none).
func (n *Notifier) replacedSet(ctx context.Context, e store.AuditEvent) (bool, error) {
	if n.cfg.Audit == nil {
		return false, nil
	}
	if v, ok := e.Details["replaced"]; ok {
		return v == "true", nil
	}
	last := ""
	var after int64
	for {
		evs, err := n.cfg.Audit.ListAudit(ctx, store.AuditQuery{UserID: e.UserID, AfterSeq: after, Limit: 1000,
			Types: []string{factors.AuditEnrol, factors.AuditReset, factors.AuditAdminReset}})
		if err != nil {
			return false, fmt.Errorf("notify: reading the trail of %s: %w", e.UserID, err)
		}
		for _, x := range evs {
			if x.Seq >= e.Seq {
				return last == factors.AuditEnrol, nil
			}
			if x.Factor == factors.BackupCode && x.Outcome == factors.OutcomeSuccess {
				last = x.Type
			}
			after = x.Seq
		}
		if len(evs) < 1000 {
			return last == factors.AuditEnrol, nil
		}
	}
}

// Users is what KeycloakRecipients needs of the bridge.
type Users interface {
	GetUser(ctx context.Context, id string) (bridge.User, error)
}

// KeycloakRecipients finds addresses in Keycloak: the user's e-mail for
// e-mail, the phone_number attribute (E.164) for SMS.
type KeycloakRecipients struct {
	Users Users
}

// Recipient implements Recipients.
func (k KeycloakRecipients) Recipient(ctx context.Context, userID, channel string) (string, error) {
	u, err := k.Users.GetUser(ctx, userID)
	if errors.Is(err, bridge.ErrNotFound) {
		return "", ErrNoRecipient
	}
	if err != nil {
		return "", fmt.Errorf("notify: reading user %s: %w", userID, err)
	}
	switch channel {
	case delivery.ChannelEmail:
		if u.Email == "" {
			return "", ErrNoRecipient
		}
		return u.Email, nil
	case delivery.ChannelSMS:
		if p := u.Attributes["phone_number"]; len(p) > 0 && p[0] != "" {
			return p[0], nil
		}
	}
	return "", ErrNoRecipient
}
