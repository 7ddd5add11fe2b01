package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Notification list limits, as store.Notifications documents them.
const (
	defaultNotificationLimit = 50
	maxNotificationLimit     = 500
)

const notificationColumns = `id, user_id, event, details, created_at, status, attempts, next_attempt_at, sent_at, last_error`

func scanNotification(r pgx.Row) (store.Notification, error) {
	var (
		n                   store.Notification
		details             []byte
		created             time.Time
		nextAttempt, sentAt *time.Time
	)
	if err := r.Scan(&n.ID, &n.UserID, &n.Event, &details, &created, &n.Status, &n.Attempts, &nextAttempt, &sentAt, &n.LastError); err != nil {
		return store.Notification{}, err
	}
	if details != nil {
		if err := json.Unmarshal(details, &n.Details); err != nil {
			return store.Notification{}, fmt.Errorf("decoding details of notification %q: %w", n.ID, err)
		}
	}
	n.CreatedAt = created.UTC()
	n.NextAttemptAt = fromTS(nextAttempt)
	n.SentAt = fromTS(sentAt)
	return n, nil
}

// CreateNotification inserts n; store.ErrConflict if n.ID exists.
func (s *Store) CreateNotification(ctx context.Context, n store.Notification) error {
	if n.CreatedAt.IsZero() {
		return errors.New("postgres: notification without CreatedAt")
	}
	details, err := detailsJSON(store.CleanAuditEvent(store.AuditEvent{Details: n.Details}).Details)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO notifications (`+notificationColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
		store.CleanText(n.ID), store.CleanText(n.UserID), store.CleanText(n.Event), details, n.CreatedAt, store.CleanText(n.Status), n.Attempts,
		tsArg(n.NextAttemptAt), tsArg(n.SentAt), store.CleanText(n.LastError))
	if err != nil {
		return fmt.Errorf("postgres: creating notification %q: %w", n.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: creating notification %q: %w", n.ID, store.ErrConflict)
	}
	return nil
}

// UpdateNotification runs fn on the current record, read with SELECT ...
// FOR UPDATE in one transaction, and stores its delivery state.
func (s *Store) UpdateNotification(ctx context.Context, id string, fn func(store.Notification) (store.Notification, error)) (store.Notification, error) {
	var out store.Notification
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanNotification(tx.QueryRow(ctx, `SELECT `+notificationColumns+` FROM notifications WHERE id = $1 FOR UPDATE`, store.CleanText(id)))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: notification %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("postgres: reading notification %q: %w", id, err)
		}
		next, err := fn(cur)
		if err != nil {
			out = next
			return err
		}
		out, err = scanNotification(tx.QueryRow(ctx, `UPDATE notifications SET
			status = $2, attempts = $3, next_attempt_at = $4, sent_at = $5, last_error = $6
			WHERE id = $1 RETURNING `+notificationColumns,
			store.CleanText(id), store.CleanText(next.Status), next.Attempts, tsArg(next.NextAttemptAt), tsArg(next.SentAt), store.CleanText(next.LastError)))
		if err != nil {
			return fmt.Errorf("postgres: updating notification %q: %w", id, err)
		}
		return nil
	})
	return out, err
}

// DueNotifications returns pending or sending notifications due at now.
func (s *Store) DueNotifications(ctx context.Context, now time.Time, limit int) ([]store.Notification, error) {
	if limit <= 0 {
		limit = defaultNotificationLimit
	}
	return s.listNotifications(ctx, `SELECT `+notificationColumns+` FROM notifications
		WHERE status IN ($1, $2) AND (next_attempt_at IS NULL OR next_attempt_at <= $3)
		ORDER BY created_at, id COLLATE "C" LIMIT $4`,
		store.NotificationPending, store.NotificationSending, now, min(limit, maxNotificationLimit))
}

// ListNotifications returns userID's notifications, newest first.
func (s *Store) ListNotifications(ctx context.Context, userID string, limit int) ([]store.Notification, error) {
	if limit <= 0 {
		limit = defaultNotificationLimit
	}
	return s.listNotifications(ctx, `SELECT `+notificationColumns+` FROM notifications
		WHERE user_id = $1 ORDER BY created_at DESC, id COLLATE "C" DESC LIMIT $2`, store.CleanText(userID), min(limit, maxNotificationLimit))
}

func (s *Store) listNotifications(ctx context.Context, query string, args ...any) ([]store.Notification, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing notifications: %w", err)
	}
	defer rows.Close()
	var out []store.Notification
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: listing notifications: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: listing notifications: %w", err)
	}
	return out, nil
}

// PruneNotifications deletes notifications created before before.
func (s *Store) PruneNotifications(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM notifications WHERE created_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: pruning notifications: %w", err)
	}
	return tag.RowsAffected(), nil
}
