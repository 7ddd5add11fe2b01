package app

import (
	"context"
	"log/slog"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// loggedStore also writes every audit event to the log once it is stored,
// so the events reach the log pipeline operators already collect. The
// store stays the record of truth: an event that failed to store is not
// logged as one. Events never hold secrets (the factors and flows write
// none), so logging them is safe.
type loggedStore struct {
	store.Store
	log *slog.Logger
}

func (s loggedStore) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	out, err := s.Store.AppendAudit(ctx, e)
	if err != nil {
		return out, err
	}
	attrs := []any{"seq", out.Seq, "type", out.Type, "outcome", out.Outcome, "actor", out.Actor,
		"user_id", out.UserID, "factor", out.Factor, "session_id", out.SessionID, "client_ip", out.IP,
		"time", out.Time}
	if len(out.Details) > 0 {
		d := make([]any, 0, 2*len(out.Details))
		for k, v := range out.Details {
			d = append(d, k, v)
		}
		attrs = append(attrs, slog.Group("details", d...))
	}
	s.log.InfoContext(ctx, "audit", attrs...)
	return out, nil
}
