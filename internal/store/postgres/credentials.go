package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// credentialColumns selects data twice: its value and whether it is NULL,
// so nil and empty Data stay apart.
const credentialColumns = `id, user_id, factor, status, label, data, data IS NULL, counter, failures, locked_until, created_at, updated_at, last_used_at`

func scanCredential(r pgx.Row) (store.Credential, error) {
	var (
		c                                      store.Credential
		data                                   []byte
		dataNull                               bool
		lockedUntil, created, updated, lastUse *time.Time
	)
	if err := r.Scan(&c.ID, &c.UserID, &c.Factor, &c.Status, &c.Label, &data, &dataNull, &c.Counter, &c.Failures,
		&lockedUntil, &created, &updated, &lastUse); err != nil {
		return store.Credential{}, err
	}
	c.Data = blob(data, dataNull)
	c.LockedUntil = fromTS(lockedUntil)
	c.CreatedAt = fromTS(created)
	c.UpdatedAt = fromTS(updated)
	c.LastUsedAt = fromTS(lastUse)
	return c, nil
}

// CreateCredential inserts c; store.ErrConflict if c.ID exists.
func (s *Store) CreateCredential(ctx context.Context, c store.Credential) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO credentials
		(id, user_id, factor, status, label, data, counter, failures, locked_until, created_at, updated_at, last_used_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING`,
		c.ID, c.UserID, c.Factor, c.Status, c.Label, blobArg(c.Data), c.Counter, c.Failures,
		tsArg(c.LockedUntil), tsArg(c.CreatedAt), tsArg(c.UpdatedAt), tsArg(c.LastUsedAt))
	if err != nil {
		return fmt.Errorf("postgres: creating credential %q: %w", c.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: creating credential %q: %w", c.ID, store.ErrConflict)
	}
	return nil
}

// GetCredential returns the record or store.ErrNotFound.
func (s *Store) GetCredential(ctx context.Context, id string) (store.Credential, error) {
	c, err := scanCredential(s.pool.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Credential{}, fmt.Errorf("postgres: credential %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Credential{}, fmt.Errorf("postgres: reading credential %q: %w", id, err)
	}
	return c, nil
}

// ListCredentials returns userID's records ordered by CreatedAt (zero
// first), then ID bytewise.
func (s *Store) ListCredentials(ctx context.Context, userID string) ([]store.Credential, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+credentialColumns+` FROM credentials
		WHERE user_id = $1 ORDER BY created_at NULLS FIRST, id COLLATE "C"`, userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing credentials: %w", err)
	}
	defer rows.Close()
	var out []store.Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: listing credentials: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: listing credentials: %w", err)
	}
	return out, nil
}

// UpdateCredential runs fn on the current record, read with SELECT ... FOR
// UPDATE in one transaction, and stores its result, keeping ID, UserID and
// CreatedAt. If fn fails, nothing is written and fn's value and error are
// returned as they are.
func (s *Store) UpdateCredential(ctx context.Context, id string, fn func(store.Credential) (store.Credential, error)) (store.Credential, error) {
	var out store.Credential
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanCredential(tx.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: credential %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("postgres: reading credential %q: %w", id, err)
		}
		next, err := fn(cur)
		if err != nil {
			out = next
			return err
		}
		out, err = scanCredential(tx.QueryRow(ctx, `UPDATE credentials SET
			factor = $2, status = $3, label = $4, data = $5, counter = $6, failures = $7,
			locked_until = $8, updated_at = $9, last_used_at = $10
			WHERE id = $1 RETURNING `+credentialColumns,
			id, next.Factor, next.Status, next.Label, blobArg(next.Data), next.Counter, next.Failures,
			tsArg(next.LockedUntil), tsArg(next.UpdatedAt), tsArg(next.LastUsedAt)))
		if err != nil {
			return fmt.Errorf("postgres: updating credential %q: %w", id, err)
		}
		return nil
	})
	return out, err
}

// DeleteCredential removes one record; store.ErrNotFound if absent.
func (s *Store) DeleteCredential(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM credentials WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("postgres: deleting credential %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: credential %q: %w", id, store.ErrNotFound)
	}
	return nil
}
