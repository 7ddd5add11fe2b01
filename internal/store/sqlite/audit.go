package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

const auditColumns = `seq, time, type, actor, user_id, factor, session_id, ip, outcome, details`

// AppendAudit stores e and returns it with Seq set (and Time in UTC,
// microsecond precision). e.Time is required: the store reads no clock.
// Invalid UTF-8 and NUL in its text become U+FFFD, as in the postgres
// backend, so both keep the same record of the same event.
//
// Seq follows commit order: writes are serialised (one immediate
// transaction at a time on the file), and the AUTOINCREMENT key never
// reuses a number, even after pruning.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	if e.Time.IsZero() {
		return store.AuditEvent{}, errors.New("sqlite: audit event without Time")
	}
	e = store.CleanAuditEvent(e)
	details, err := detailsJSON(e.Details)
	if err != nil {
		return store.AuditEvent{}, err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `INSERT INTO audit
			(time, type, actor, user_id, factor, session_id, ip, outcome, details)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
			e.Time.UnixMicro(), e.Type, e.Actor, e.UserID, e.Factor, e.SessionID, e.IP, e.Outcome, details,
		).Scan(&e.Seq); err != nil {
			return fmt.Errorf("sqlite: appending audit event: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.AuditEvent{}, err
	}
	e.Time = time.UnixMicro(e.Time.UnixMicro()).UTC()
	return e, nil
}

// ListAudit returns the events matching q in Seq order.
func (s *Store) ListAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	where = append(where, "seq > ?")
	args = append(args, q.AfterSeq)
	if q.UserID != "" {
		where = append(where, "user_id = ?")
		args = append(args, q.UserID)
	}
	if len(q.Types) > 0 {
		where = append(where, "type IN (?"+strings.Repeat(", ?", len(q.Types)-1)+")")
		for _, t := range q.Types {
			args = append(args, t)
		}
	}
	if !q.From.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, q.From.UnixMicro())
	}
	if !q.To.IsZero() {
		where = append(where, "time < ?")
		args = append(args, q.To.UnixMicro())
	}
	args = append(args, store.AuditLimit(q.Limit))
	rows, err := s.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE `+
		strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var (
			e       store.AuditEvent
			t       int64
			details sql.NullString
		)
		if err := rows.Scan(&e.Seq, &t, &e.Type, &e.Actor, &e.UserID, &e.Factor, &e.SessionID, &e.IP, &e.Outcome, &details); err != nil {
			return nil, fmt.Errorf("sqlite: listing audit: %w", err)
		}
		e.Time = time.UnixMicro(t).UTC()
		if details.Valid {
			if err := json.Unmarshal([]byte(details.String), &e.Details); err != nil {
				return nil, fmt.Errorf("sqlite: audit event %d: decoding details: %w", e.Seq, err)
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing audit: %w", err)
	}
	return out, nil
}

// PruneAudit deletes events whose Time is before before and returns how
// many. Later events keep getting higher Seq than any pruned one.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE time < ?`, before.UnixMicro())
		if err != nil {
			return fmt.Errorf("sqlite: pruning audit: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: pruning audit: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// detailsJSON encodes d for the details column; an empty map is NULL.
func detailsJSON(d map[string]string) (any, error) {
	if len(d) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encoding audit details: %w", err)
	}
	return string(b), nil
}
