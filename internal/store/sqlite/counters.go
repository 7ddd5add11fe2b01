package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// IncrementCounter adds n to key's count in the window of length window
// (at least a millisecond) that contains now, and returns the new count
// and the window's end. It also deletes a few windows that ended at or
// before now, of any key, so the table stays small without a sweeper.
func (s *Store) IncrementCounter(ctx context.Context, key string, n int64, window time.Duration, now time.Time) (int64, time.Time, error) {
	start, end, err := counterWindow(window, now)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sqlite: counter %q: %w", key, err)
	}
	var count int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `INSERT INTO counters (key, window_ns, start_ns, end_ns, count)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (key, window_ns, start_ns) DO UPDATE SET count = count + excluded.count
			RETURNING count`, key, int64(window), start, end, n).Scan(&count); err != nil {
			return fmt.Errorf("sqlite: incrementing counter %q: %w", key, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM counters WHERE rowid IN (
			SELECT rowid FROM counters WHERE end_ns <= ? LIMIT 16)`, now.UnixNano()); err != nil {
			return fmt.Errorf("sqlite: pruning counters: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	return count, time.Unix(0, end).UTC(), nil
}

// GetCounter returns key's count in the window containing now (0 if none)
// and the window's end.
func (s *Store) GetCounter(ctx context.Context, key string, window time.Duration, now time.Time) (int64, time.Time, error) {
	start, end, err := counterWindow(window, now)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sqlite: counter %q: %w", key, err)
	}
	var count int64
	err = s.db.QueryRowContext(ctx, `SELECT count FROM counters WHERE key = ? AND window_ns = ? AND start_ns = ?`,
		key, int64(window), start).Scan(&count)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, fmt.Errorf("sqlite: reading counter %q: %w", key, err)
	}
	return count, time.Unix(0, end).UTC(), nil
}

// ResetCounter removes every window of key.
func (s *Store) ResetCounter(ctx context.Context, key string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM counters WHERE key = ?`, key); err != nil {
			return fmt.Errorf("sqlite: resetting counter %q: %w", key, err)
		}
		return nil
	})
}

// counterWindow returns the bounds, in Unix nanoseconds, of the window of
// length window containing now, aligned to the Unix epoch.
func counterWindow(window time.Duration, now time.Time) (start, end int64, err error) {
	if window < time.Millisecond {
		return 0, 0, fmt.Errorf("window %v is shorter than a millisecond", window)
	}
	w, t := int64(window), now.UnixNano()
	start = t - ((t%w)+w)%w
	return start, start + w, nil
}
