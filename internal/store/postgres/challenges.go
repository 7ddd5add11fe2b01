package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

const challengeColumns = `id, kind, user_id, session_id, factor, credential_id, data, data IS NULL, attempts, max_attempts, created_at, expires_at, consumed_at`

func scanChallenge(r pgx.Row) (store.Challenge, error) {
	var (
		c                          store.Challenge
		data                       []byte
		dataNull                   bool
		created, expires, consumed *time.Time
	)
	if err := r.Scan(&c.ID, &c.Kind, &c.UserID, &c.SessionID, &c.Factor, &c.CredentialID, &data, &dataNull,
		&c.Attempts, &c.MaxAttempts, &created, &expires, &consumed); err != nil {
		return store.Challenge{}, err
	}
	c.Data = blob(data, dataNull)
	c.CreatedAt = fromTS(created)
	c.ExpiresAt = fromTS(expires)
	c.ConsumedAt = fromTS(consumed)
	return c, nil
}

// CreateChallenge inserts c; store.ErrConflict if c.ID exists.
func (s *Store) CreateChallenge(ctx context.Context, c store.Challenge) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO challenges
		(id, kind, user_id, session_id, factor, credential_id, data, attempts, max_attempts, created_at, expires_at, consumed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING`,
		c.ID, c.Kind, c.UserID, c.SessionID, c.Factor, c.CredentialID, blobArg(c.Data),
		c.Attempts, c.MaxAttempts, tsArg(c.CreatedAt), tsArg(c.ExpiresAt), tsArg(c.ConsumedAt))
	if err != nil {
		return fmt.Errorf("postgres: creating challenge %q: %w", c.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: creating challenge %q: %w", c.ID, store.ErrConflict)
	}
	return nil
}

// GetChallenge returns the record, whatever its state, or store.ErrNotFound.
func (s *Store) GetChallenge(ctx context.Context, id string) (store.Challenge, error) {
	c, err := scanChallenge(s.pool.QueryRow(ctx, `SELECT `+challengeColumns+` FROM challenges WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Challenge{}, fmt.Errorf("postgres: challenge %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Challenge{}, fmt.Errorf("postgres: reading challenge %q: %w", id, err)
	}
	return c, nil
}

// UpdateChallenge runs fn on the current record, read with SELECT ... FOR
// UPDATE in one transaction, and stores its result, keeping ID, UserID and
// CreatedAt. If fn fails, nothing is written and fn's value and error are
// returned as they are.
func (s *Store) UpdateChallenge(ctx context.Context, id string, fn func(store.Challenge) (store.Challenge, error)) (store.Challenge, error) {
	var out store.Challenge
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanChallenge(tx.QueryRow(ctx, `SELECT `+challengeColumns+` FROM challenges WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: challenge %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("postgres: reading challenge %q: %w", id, err)
		}
		next, err := fn(cur)
		if err != nil {
			out = next
			return err
		}
		out, err = scanChallenge(tx.QueryRow(ctx, `UPDATE challenges SET
			kind = $2, session_id = $3, factor = $4, credential_id = $5, data = $6,
			attempts = $7, max_attempts = $8, expires_at = $9, consumed_at = $10
			WHERE id = $1 RETURNING `+challengeColumns,
			id, next.Kind, next.SessionID, next.Factor, next.CredentialID, blobArg(next.Data),
			next.Attempts, next.MaxAttempts, tsArg(next.ExpiresAt), tsArg(next.ConsumedAt)))
		if err != nil {
			return fmt.Errorf("postgres: updating challenge %q: %w", id, err)
		}
		return nil
	})
	return out, err
}

// DeleteChallenge removes one; store.ErrNotFound if absent.
func (s *Store) DeleteChallenge(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM challenges WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("postgres: deleting challenge %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: challenge %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// DeleteExpiredChallenges removes every challenge that is expired at
// before (ExpiresAt <= before, the rule store.AttemptChallenge applies; a
// zero ExpiresAt counts as expired) and returns them ordered by ExpiresAt,
// then ID. Replicas sweeping at once each get a disjoint share.
func (s *Store) DeleteExpiredChallenges(ctx context.Context, before time.Time) ([]store.Challenge, error) {
	rows, err := s.pool.Query(ctx, `DELETE FROM challenges
		WHERE expires_at IS NULL OR expires_at <= $1 RETURNING `+challengeColumns, before)
	if err != nil {
		return nil, fmt.Errorf("postgres: deleting expired challenges: %w", err)
	}
	defer rows.Close()
	var out []store.Challenge
	for rows.Next() {
		c, err := scanChallenge(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: deleting expired challenges: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: deleting expired challenges: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ExpiresAt.Equal(out[j].ExpiresAt) {
			return out[i].ExpiresAt.Before(out[j].ExpiresAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}
