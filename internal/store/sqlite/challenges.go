package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

const challengeColumns = `id, kind, user_id, session_id, factor, credential_id, data, attempts, max_attempts, created_at, expires_at, consumed_at`

func scanChallenge(r rowScanner) (store.Challenge, error) {
	var (
		c                             store.Challenge
		data                          blob
		created, expires, consumedRaw sql.NullInt64
	)
	if err := r.Scan(&c.ID, &c.Kind, &c.UserID, &c.SessionID, &c.Factor, &c.CredentialID, &data,
		&c.Attempts, &c.MaxAttempts, &created, &expires, &consumedRaw); err != nil {
		return store.Challenge{}, err
	}
	c.Data = data.b
	c.CreatedAt = fromMicros(created)
	c.ExpiresAt = fromMicros(expires)
	c.ConsumedAt = fromMicros(consumedRaw)
	return c, nil
}

// CreateChallenge inserts c; store.ErrConflict if c.ID exists.
func (s *Store) CreateChallenge(ctx context.Context, c store.Challenge) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO challenges (`+challengeColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			c.ID, c.Kind, c.UserID, c.SessionID, c.Factor, c.CredentialID, blobArg(c.Data),
			c.Attempts, c.MaxAttempts, micros(c.CreatedAt), micros(c.ExpiresAt), micros(c.ConsumedAt))
		if err != nil {
			return fmt.Errorf("sqlite: creating challenge %q: %w", c.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: creating challenge %q: %w", c.ID, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: creating challenge %q: %w", c.ID, store.ErrConflict)
		}
		return nil
	})
}

// GetChallenge returns the record, whatever its state, or store.ErrNotFound.
func (s *Store) GetChallenge(ctx context.Context, id string) (store.Challenge, error) {
	c, err := scanChallenge(s.db.QueryRowContext(ctx, `SELECT `+challengeColumns+` FROM challenges WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Challenge{}, fmt.Errorf("sqlite: challenge %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Challenge{}, fmt.Errorf("sqlite: reading challenge %q: %w", id, err)
	}
	return c, nil
}

// UpdateChallenge runs fn on the current record inside one immediate
// transaction and stores its result, keeping ID, UserID and CreatedAt. If fn
// fails, nothing is written and fn's value and error are returned as they
// are.
func (s *Store) UpdateChallenge(ctx context.Context, id string, fn func(store.Challenge) (store.Challenge, error)) (store.Challenge, error) {
	var out store.Challenge
	err := s.write(ctx, func(tx *sql.Tx) error {
		cur, err := scanChallenge(tx.QueryRowContext(ctx, `SELECT `+challengeColumns+` FROM challenges WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: challenge %q: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: reading challenge %q: %w", id, err)
		}
		next, err := fn(cur)
		if err != nil {
			out = next
			return err
		}
		out, err = scanChallenge(tx.QueryRowContext(ctx, `UPDATE challenges SET
			kind = ?, session_id = ?, factor = ?, credential_id = ?, data = ?,
			attempts = ?, max_attempts = ?, expires_at = ?, consumed_at = ?
			WHERE id = ? RETURNING `+challengeColumns,
			next.Kind, next.SessionID, next.Factor, next.CredentialID, blobArg(next.Data),
			next.Attempts, next.MaxAttempts, micros(next.ExpiresAt), micros(next.ConsumedAt), id))
		if err != nil {
			return fmt.Errorf("sqlite: updating challenge %q: %w", id, err)
		}
		return nil
	})
	return out, err
}

// DeleteChallenge removes one; store.ErrNotFound if absent.
func (s *Store) DeleteChallenge(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM challenges WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("sqlite: deleting challenge %q: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: deleting challenge %q: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: challenge %q: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// DeleteExpiredChallenges removes every challenge that is expired at
// before (ExpiresAt <= before, the rule store.AttemptChallenge applies; a
// zero ExpiresAt counts as expired) and returns them ordered by ExpiresAt,
// then ID.
func (s *Store) DeleteExpiredChallenges(ctx context.Context, before time.Time) ([]store.Challenge, error) {
	var out []store.Challenge
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM challenges
			WHERE expires_at IS NULL OR expires_at <= ? RETURNING `+challengeColumns, before.UnixMicro())
		if err != nil {
			return fmt.Errorf("sqlite: deleting expired challenges: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanChallenge(rows)
			if err != nil {
				return fmt.Errorf("sqlite: deleting expired challenges: %w", err)
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: deleting expired challenges: %w", err)
		}
		return rows.Close()
	})
	if err != nil {
		return nil, err
	}
	sortChallenges(out)
	return out, nil
}

func sortChallenges(cs []store.Challenge) {
	sort.Slice(cs, func(i, j int) bool {
		if !cs[i].ExpiresAt.Equal(cs[j].ExpiresAt) {
			return cs[i].ExpiresAt.Before(cs[j].ExpiresAt)
		}
		return cs[i].ID < cs[j].ID
	})
}
