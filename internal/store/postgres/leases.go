package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// AcquireLease takes name for holder until now+ttl if it is free, expired
// at now, or already held by holder; otherwise it returns store.ErrLockHeld.
// It never waits for the holder (a concurrent acquirer of the same name is
// waited for only until its statement commits).
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) error {
	if name == "" || holder == "" || ttl <= 0 {
		return fmt.Errorf("postgres: lease %q: name, holder and a positive ttl are required", name)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO leases (name, holder, expires_ns) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ns = excluded.expires_ns
		WHERE leases.expires_ns <= $4 OR leases.holder = excluded.holder`,
		name, holder, now.Add(ttl).UnixNano(), now.UnixNano())
	if err != nil {
		return fmt.Errorf("postgres: acquiring lease %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: lease %q: %w", name, store.ErrLockHeld)
	}
	return nil
}

// ReleaseLease frees name if holder holds it; otherwise it changes nothing
// and returns nil.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("postgres: releasing lease %q: %w", name, err)
	}
	return nil
}
