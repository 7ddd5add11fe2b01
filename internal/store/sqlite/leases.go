package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// AcquireLease takes name for holder until now+ttl if it is free, expired
// at now, or already held by holder; otherwise it returns store.ErrLockHeld.
// It never waits for the holder.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) error {
	if name == "" || holder == "" || ttl <= 0 {
		return fmt.Errorf("sqlite: lease %q: name, holder and a positive ttl are required", name)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO leases (name, holder, expires_ns) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ns = excluded.expires_ns
			WHERE leases.expires_ns <= ? OR leases.holder = excluded.holder`,
			name, holder, now.Add(ttl).UnixNano(), now.UnixNano())
		if err != nil {
			return fmt.Errorf("sqlite: acquiring lease %q: %w", name, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: acquiring lease %q: %w", name, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: lease %q: %w", name, store.ErrLockHeld)
		}
		return nil
	})
}

// ReleaseLease frees name if holder holds it; otherwise it changes nothing
// and returns nil.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
			return fmt.Errorf("sqlite: releasing lease %q: %w", name, err)
		}
		return nil
	})
}
