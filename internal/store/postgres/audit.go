package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// AppendAudit stores e and returns it with Seq set (and Time in UTC,
// microsecond precision). e.Time is required: the store reads no clock.
// Text that PostgreSQL cannot hold (invalid UTF-8, NUL) is stored with
// U+FFFD in its place rather than losing the event.
//
// Seq is strictly increasing in commit order: the number is drawn only
// while holding a transaction-scoped advisory lock, which is released after
// the commit is visible, so no event can appear later with a lower Seq than
// one a reader has already seen.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	if e.Time.IsZero() {
		return store.AuditEvent{}, errors.New("postgres: audit event without Time")
	}
	e = store.CleanAuditEvent(e)
	details, err := detailsJSON(e.Details)
	if err != nil {
		return store.AuditEvent{}, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`, lockClassAudit); err != nil {
			return fmt.Errorf("postgres: taking the audit lock: %w", err)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO audit
			(time, type, actor, user_id, factor, session_id, ip, outcome, details)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) RETURNING seq`,
			e.Time, e.Type, e.Actor, e.UserID, e.Factor, e.SessionID, e.IP, e.Outcome, details,
		).Scan(&e.Seq); err != nil {
			return fmt.Errorf("postgres: appending audit event: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.AuditEvent{}, err
	}
	e.Time = e.Time.Truncate(time.Microsecond).UTC()
	return e, nil
}

// ListAudit returns the events matching q in Seq order.
func (s *Store) ListAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, error) {
	args := []any{q.AfterSeq}
	where := []string{"seq > $1"}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if q.UserID != "" {
		add("user_id = ?", q.UserID)
	}
	if len(q.Types) > 0 {
		add("type = ANY(?)", q.Types)
	}
	if !q.From.IsZero() {
		add("time >= ?", q.From)
	}
	if !q.To.IsZero() {
		add("time < ?", q.To)
	}
	args = append(args, store.AuditLimit(q.Limit))
	rows, err := s.pool.Query(ctx, `SELECT seq, time, type, actor, user_id, factor, session_id, ip, outcome, details
		FROM audit WHERE `+strings.Join(where, " AND ")+` ORDER BY seq LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var (
			e       store.AuditEvent
			details []byte
		)
		if err := rows.Scan(&e.Seq, &e.Time, &e.Type, &e.Actor, &e.UserID, &e.Factor, &e.SessionID, &e.IP, &e.Outcome, &details); err != nil {
			return nil, fmt.Errorf("postgres: listing audit: %w", err)
		}
		e.Time = e.Time.UTC()
		if details != nil {
			if err := json.Unmarshal(details, &e.Details); err != nil {
				return nil, fmt.Errorf("postgres: audit event %d: decoding details: %w", e.Seq, err)
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: listing audit: %w", err)
	}
	return out, nil
}

// PruneAudit deletes events whose Time is before before and returns how
// many. Later events keep getting higher Seq than any pruned one (the
// identity sequence never goes back).
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit WHERE time < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: pruning audit: %w", err)
	}
	return tag.RowsAffected(), nil
}

// detailsJSON encodes d for the details column; an empty map is NULL.
func detailsJSON(d map[string]string) (any, error) {
	if len(d) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("postgres: encoding audit details: %w", err)
	}
	return string(b), nil
}
