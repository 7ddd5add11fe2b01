package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

const credentialColumns = `id, user_id, factor, status, label, data, counter, failures, locked_until, created_at, updated_at, last_used_at`

type rowScanner interface {
	Scan(dest ...any) error
}

func scanCredential(r rowScanner) (store.Credential, error) {
	var (
		c                                       store.Credential
		data                                    blob
		lockedUntil, createdAt, updated, lastUs sql.NullInt64
	)
	if err := r.Scan(&c.ID, &c.UserID, &c.Factor, &c.Status, &c.Label, &data, &c.Counter, &c.Failures,
		&lockedUntil, &createdAt, &updated, &lastUs); err != nil {
		return store.Credential{}, err
	}
	c.Data = data.b
	c.LockedUntil = fromMicros(lockedUntil)
	c.CreatedAt = fromMicros(createdAt)
	c.UpdatedAt = fromMicros(updated)
	c.LastUsedAt = fromMicros(lastUs)
	return c, nil
}

// CreateCredential inserts c; store.ErrConflict if c.ID exists.
func (s *Store) CreateCredential(ctx context.Context, c store.Credential) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO credentials (`+credentialColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			c.ID, c.UserID, c.Factor, c.Status, c.Label, blobArg(c.Data), c.Counter, c.Failures,
			micros(c.LockedUntil), micros(c.CreatedAt), micros(c.UpdatedAt), micros(c.LastUsedAt))
		if err != nil {
			return fmt.Errorf("sqlite: creating credential %q: %w", c.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: creating credential %q: %w", c.ID, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: creating credential %q: %w", c.ID, store.ErrConflict)
		}
		return nil
	})
}

// GetCredential returns the record or store.ErrNotFound.
func (s *Store) GetCredential(ctx context.Context, id string) (store.Credential, error) {
	c, err := scanCredential(s.db.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Credential{}, fmt.Errorf("sqlite: credential %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Credential{}, fmt.Errorf("sqlite: reading credential %q: %w", id, err)
	}
	return c, nil
}

// ListCredentials returns userID's records ordered by CreatedAt, then ID.
func (s *Store) ListCredentials(ctx context.Context, userID string) ([]store.Credential, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+credentialColumns+` FROM credentials
		WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing credentials: %w", err)
	}
	defer rows.Close()
	var out []store.Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: listing credentials: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing credentials: %w", err)
	}
	return out, nil
}

// UpdateCredential runs fn on the current record inside one immediate
// transaction and stores its result, keeping ID, UserID and CreatedAt. If fn
// fails, nothing is written and fn's value and error are returned as they
// are.
func (s *Store) UpdateCredential(ctx context.Context, id string, fn func(store.Credential) (store.Credential, error)) (store.Credential, error) {
	var out store.Credential
	err := s.write(ctx, func(tx *sql.Tx) error {
		cur, err := scanCredential(tx.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: credential %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: reading credential %q: %w", id, err)
		}
		next, err := fn(cur)
		if err != nil {
			out = next
			return err
		}
		out, err = scanCredential(tx.QueryRowContext(ctx, `UPDATE credentials SET
			factor = ?, status = ?, label = ?, data = ?, counter = ?, failures = ?,
			locked_until = ?, updated_at = ?, last_used_at = ?
			WHERE id = ? RETURNING `+credentialColumns,
			next.Factor, next.Status, next.Label, blobArg(next.Data), next.Counter, next.Failures,
			micros(next.LockedUntil), micros(next.UpdatedAt), micros(next.LastUsedAt), id))
		if err != nil {
			return fmt.Errorf("sqlite: updating credential %q: %w", id, err)
		}
		return nil
	})
	return out, err
}

// DeleteCredential removes one record; store.ErrNotFound if absent.
func (s *Store) DeleteCredential(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("sqlite: deleting credential %q: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: deleting credential %q: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: credential %q: %w", id, store.ErrNotFound)
		}
		return nil
	})
}
