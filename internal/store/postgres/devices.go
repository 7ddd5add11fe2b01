package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// deviceColumns selects hash twice: its value and whether it is NULL, so
// nil and empty Hash stay apart.
const deviceColumns = `id, user_id, label, hash, hash IS NULL, ip, created_at, expires_at, last_used_at, revoked_at, revoked_by`

func scanDevice(r pgx.Row) (store.Device, error) {
	var (
		d                                  store.Device
		hash                               []byte
		hashNull                           bool
		created, expires, lastUsed, revokd *time.Time
	)
	if err := r.Scan(&d.ID, &d.UserID, &d.Label, &hash, &hashNull, &d.IP, &created, &expires, &lastUsed, &revokd, &d.RevokedBy); err != nil {
		return store.Device{}, err
	}
	d.Hash = blob(hash, hashNull)
	d.CreatedAt = fromTS(created)
	d.ExpiresAt = fromTS(expires)
	d.LastUsedAt = fromTS(lastUsed)
	d.RevokedAt = fromTS(revokd)
	return d, nil
}

// CreateDevice inserts d; store.ErrConflict if d.ID exists.
func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO devices
		(id, user_id, label, hash, ip, created_at, expires_at, last_used_at, revoked_at, revoked_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
		store.CleanText(d.ID), store.CleanText(d.UserID), store.CleanText(d.Label), blobArg(d.Hash), store.CleanText(d.IP),
		tsArg(d.CreatedAt), tsArg(d.ExpiresAt), tsArg(d.LastUsedAt), tsArg(d.RevokedAt), store.CleanText(d.RevokedBy))
	if err != nil {
		return fmt.Errorf("postgres: creating device %q: %w", d.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: creating device %q: %w", d.ID, store.ErrConflict)
	}
	return nil
}

// GetDevice returns the record or store.ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, store.CleanText(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Device{}, fmt.Errorf("postgres: device %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("postgres: reading device %q: %w", id, err)
	}
	return d, nil
}

// ListDevices returns userID's devices ordered by CreatedAt (zero first),
// then ID bytewise.
func (s *Store) ListDevices(ctx context.Context, userID string) ([]store.Device, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deviceColumns+` FROM devices
		WHERE user_id = $1 ORDER BY created_at NULLS FIRST, id COLLATE "C"`, store.CleanText(userID))
	if err != nil {
		return nil, fmt.Errorf("postgres: listing devices: %w", err)
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: listing devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: listing devices: %w", err)
	}
	return out, nil
}

// UpdateDevice runs fn on the current record, read with SELECT ... FOR
// UPDATE in one transaction, and stores its result, keeping ID, UserID,
// Hash and CreatedAt. If fn fails, nothing is written.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(store.Device) (store.Device, error)) (store.Device, error) {
	var out store.Device
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanDevice(tx.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = $1 FOR UPDATE`, store.CleanText(id)))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: device %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("postgres: reading device %q: %w", id, err)
		}
		next, err := fn(cur)
		if err != nil {
			out = next
			return err
		}
		out, err = scanDevice(tx.QueryRow(ctx, `UPDATE devices SET
			label = $2, ip = $3, expires_at = $4, last_used_at = $5, revoked_at = $6, revoked_by = $7
			WHERE id = $1 RETURNING `+deviceColumns,
			store.CleanText(id), store.CleanText(next.Label), store.CleanText(next.IP), tsArg(next.ExpiresAt), tsArg(next.LastUsedAt),
			tsArg(next.RevokedAt), store.CleanText(next.RevokedBy)))
		if err != nil {
			return fmt.Errorf("postgres: updating device %q: %w", id, err)
		}
		return nil
	})
	return out, err
}

// RevokeDevices marks userID's unrevoked devices revoked at now.
func (s *Store) RevokeDevices(ctx context.Context, userID, by string, now time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `UPDATE devices SET revoked_at = $3, revoked_by = $2
		WHERE user_id = $1 AND revoked_at IS NULL RETURNING id`, store.CleanText(userID), store.CleanText(by), now)
	if err != nil {
		return nil, fmt.Errorf("postgres: revoking devices: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: revoking devices: %w", err)
	}
	return ids, nil
}

// DeleteExpiredDevices removes devices expired or revoked before before.
func (s *Store) DeleteExpiredDevices(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM devices WHERE expires_at <= $1 OR revoked_at <= $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: deleting expired devices: %w", err)
	}
	return tag.RowsAffected(), nil
}
