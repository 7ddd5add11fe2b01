package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

const deviceColumns = `id, user_id, label, hash, ip, created_at, expires_at, last_used_at, revoked_at, revoked_by`

func scanDevice(r rowScanner) (store.Device, error) {
	var (
		d                                  store.Device
		hash                               blob
		created, expires, lastUsed, revokd sql.NullInt64
	)
	if err := r.Scan(&d.ID, &d.UserID, &d.Label, &hash, &d.IP, &created, &expires, &lastUsed, &revokd, &d.RevokedBy); err != nil {
		return store.Device{}, err
	}
	d.Hash = hash.b
	d.CreatedAt = fromMicros(created)
	d.ExpiresAt = fromMicros(expires)
	d.LastUsedAt = fromMicros(lastUsed)
	d.RevokedAt = fromMicros(revokd)
	return d, nil
}

// CreateDevice inserts d; store.ErrConflict if d.ID exists.
func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO devices (`+deviceColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			d.ID, d.UserID, d.Label, blobArg(d.Hash), d.IP, micros(d.CreatedAt), micros(d.ExpiresAt),
			micros(d.LastUsedAt), micros(d.RevokedAt), d.RevokedBy)
		if err != nil {
			return fmt.Errorf("sqlite: creating device %q: %w", d.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: creating device %q: %w", d.ID, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: creating device %q: %w", d.ID, store.ErrConflict)
		}
		return nil
	})
}

// GetDevice returns the record or store.ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Device{}, fmt.Errorf("sqlite: device %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlite: reading device %q: %w", id, err)
	}
	return d, nil
}

// ListDevices returns userID's devices ordered by CreatedAt, then ID.
func (s *Store) ListDevices(ctx context.Context, userID string) ([]store.Device, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+deviceColumns+` FROM devices
		WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing devices: %w", err)
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: listing devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing devices: %w", err)
	}
	return out, nil
}

// UpdateDevice runs fn on the current record inside one immediate
// transaction and stores its result, keeping ID, UserID, Hash and
// CreatedAt. If fn fails, nothing is written.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(store.Device) (store.Device, error)) (store.Device, error) {
	var out store.Device
	err := s.write(ctx, func(tx *sql.Tx) error {
		cur, err := scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: device %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: reading device %q: %w", id, err)
		}
		next, err := fn(cur)
		if err != nil {
			out = next
			return err
		}
		out, err = scanDevice(tx.QueryRowContext(ctx, `UPDATE devices SET
			label = ?, ip = ?, expires_at = ?, last_used_at = ?, revoked_at = ?, revoked_by = ?
			WHERE id = ? RETURNING `+deviceColumns,
			next.Label, next.IP, micros(next.ExpiresAt), micros(next.LastUsedAt), micros(next.RevokedAt), next.RevokedBy, id))
		if err != nil {
			return fmt.Errorf("sqlite: updating device %q: %w", id, err)
		}
		return nil
	})
	return out, err
}

// RevokeDevices marks userID's unrevoked devices revoked at now.
func (s *Store) RevokeDevices(ctx context.Context, userID, by string, now time.Time) ([]string, error) {
	var ids []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE devices SET revoked_at = ?, revoked_by = ?
			WHERE user_id = ? AND revoked_at IS NULL RETURNING id`, micros(now), by, userID)
		if err != nil {
			return fmt.Errorf("sqlite: revoking devices: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return fmt.Errorf("sqlite: revoking devices: %w", err)
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: revoking devices: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// DeleteExpiredDevices removes devices expired or revoked before before.
func (s *Store) DeleteExpiredDevices(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE expires_at <= ? OR revoked_at <= ?`,
			before.UnixMicro(), before.UnixMicro())
		if err != nil {
			return fmt.Errorf("sqlite: deleting expired devices: %w", err)
		}
		n, err = res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sqlite: deleting expired devices: %w", err)
		}
		return nil
	})
	return n, err
}
