package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Notification list limits, as store.Notifications documents them.
const (
	defaultNotificationLimit = 50
	maxNotificationLimit     = 500
)

const notificationColumns = `id, user_id, event, details, created_at, status, attempts, next_attempt_at, sent_at, last_error`

func scanNotification(r rowScanner) (store.Notification, error) {
	var (
		n                   store.Notification
		details             sql.NullString
		created             int64
		nextAttempt, sentAt sql.NullInt64
	)
	if err := r.Scan(&n.ID, &n.UserID, &n.Event, &details, &created, &n.Status, &n.Attempts, &nextAttempt, &sentAt, &n.LastError); err != nil {
		return store.Notification{}, err
	}
	if details.Valid {
		if err := json.Unmarshal([]byte(details.String), &n.Details); err != nil {
			return store.Notification{}, fmt.Errorf("decoding details of notification %q: %w", n.ID, err)
		}
	}
	n.CreatedAt = time.UnixMicro(created).UTC()
	n.NextAttemptAt = fromMicros(nextAttempt)
	n.SentAt = fromMicros(sentAt)
	return n, nil
}

// CreateNotification inserts n; store.ErrConflict if n.ID exists.
func (s *Store) CreateNotification(ctx context.Context, n store.Notification) error {
	if n.CreatedAt.IsZero() {
		return errors.New("sqlite: notification without CreatedAt")
	}
	details, err := detailsJSON(cleanDetails(n.Details))
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO notifications (`+notificationColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			n.ID, n.UserID, n.Event, details, n.CreatedAt.UnixMicro(), n.Status, n.Attempts,
			micros(n.NextAttemptAt), micros(n.SentAt), n.LastError)
		if err != nil {
			return fmt.Errorf("sqlite: creating notification %q: %w", n.ID, err)
		}
		if k, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: creating notification %q: %w", n.ID, err)
		} else if k == 0 {
			return fmt.Errorf("sqlite: creating notification %q: %w", n.ID, store.ErrConflict)
		}
		return nil
	})
}

// UpdateNotification runs fn on the current record inside one immediate
// transaction and stores its delivery state.
func (s *Store) UpdateNotification(ctx context.Context, id string, fn func(store.Notification) (store.Notification, error)) (store.Notification, error) {
	var out store.Notification
	err := s.write(ctx, func(tx *sql.Tx) error {
		cur, err := scanNotification(tx.QueryRowContext(ctx, `SELECT `+notificationColumns+` FROM notifications WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: notification %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: reading notification %q: %w", id, err)
		}
		next, err := fn(cur)
		if err != nil {
			out = next
			return err
		}
		out, err = scanNotification(tx.QueryRowContext(ctx, `UPDATE notifications SET
			status = ?, attempts = ?, next_attempt_at = ?, sent_at = ?, last_error = ?
			WHERE id = ? RETURNING `+notificationColumns,
			next.Status, next.Attempts, micros(next.NextAttemptAt), micros(next.SentAt), store.CleanText(next.LastError), id))
		if err != nil {
			return fmt.Errorf("sqlite: updating notification %q: %w", id, err)
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
		WHERE status IN (?, ?) AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
		ORDER BY created_at, id LIMIT ?`,
		store.NotificationPending, store.NotificationSending, now.UnixMicro(), min(limit, maxNotificationLimit))
}

// ListNotifications returns userID's notifications, newest first.
func (s *Store) ListNotifications(ctx context.Context, userID string, limit int) ([]store.Notification, error) {
	if limit <= 0 {
		limit = defaultNotificationLimit
	}
	return s.listNotifications(ctx, `SELECT `+notificationColumns+` FROM notifications
		WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`, userID, min(limit, maxNotificationLimit))
}

func (s *Store) listNotifications(ctx context.Context, query string, args ...any) ([]store.Notification, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing notifications: %w", err)
	}
	defer rows.Close()
	var out []store.Notification
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: listing notifications: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing notifications: %w", err)
	}
	return out, nil
}

// PruneNotifications deletes notifications created before before.
func (s *Store) PruneNotifications(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM notifications WHERE created_at < ?`, before.UnixMicro())
		if err != nil {
			return fmt.Errorf("sqlite: pruning notifications: %w", err)
		}
		n, err = res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sqlite: pruning notifications: %w", err)
		}
		return nil
	})
	return n, err
}

// cleanDetails replaces invalid UTF-8 and NUL in details, as audit does.
func cleanDetails(d map[string]string) map[string]string {
	if len(d) == 0 {
		return nil
	}
	out := make(map[string]string, len(d))
	for k, v := range d {
		out[store.CleanText(k)] = store.CleanText(v)
	}
	return out
}
