package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// IncrementCounter adds n to key's count in the window of length window
// (at least a millisecond) that contains now, and returns the new count
// and the window's end. The same statement deletes a few windows, of any
// key, that ended at or before now (skipping rows another replica has
// locked), so the table stays small without a sweeper.
func (s *Store) IncrementCounter(ctx context.Context, key string, n int64, window time.Duration, now time.Time) (int64, time.Time, error) {
	start, end, err := counterWindow(window, now)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("postgres: counter %q: %w", key, err)
	}
	var count int64
	err = s.pool.QueryRow(ctx, `WITH pruned AS (
			DELETE FROM counters WHERE ctid IN (
				SELECT ctid FROM counters WHERE end_ns <= $6 LIMIT 16 FOR UPDATE SKIP LOCKED))
		INSERT INTO counters (key, window_ns, start_ns, end_ns, count) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (key, window_ns, start_ns) DO UPDATE SET count = counters.count + excluded.count
		RETURNING count`, key, int64(window), start, end, n, now.UnixNano()).Scan(&count)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("postgres: incrementing counter %q: %w", key, err)
	}
	return count, time.Unix(0, end).UTC(), nil
}

// GetCounter returns key's count in the window containing now (0 if none)
// and the window's end.
func (s *Store) GetCounter(ctx context.Context, key string, window time.Duration, now time.Time) (int64, time.Time, error) {
	start, end, err := counterWindow(window, now)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("postgres: counter %q: %w", key, err)
	}
	var count int64
	err = s.pool.QueryRow(ctx, `SELECT count FROM counters WHERE key = $1 AND window_ns = $2 AND start_ns = $3`,
		key, int64(window), start).Scan(&count)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, fmt.Errorf("postgres: reading counter %q: %w", key, err)
	}
	return count, time.Unix(0, end).UTC(), nil
}

// ResetCounter removes every window of key.
func (s *Store) ResetCounter(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM counters WHERE key = $1`, key); err != nil {
		return fmt.Errorf("postgres: resetting counter %q: %w", key, err)
	}
	return nil
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
