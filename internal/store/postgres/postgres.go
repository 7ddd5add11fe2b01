package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Defaults applied by Open to zero Config fields.
const (
	// DefaultMaxConns caps the pool, as config.Postgres documents.
	DefaultMaxConns = 10
	// DefaultConnectTimeout bounds one connection attempt (TCP, TLS and
	// startup) when the DSN sets no connect_timeout, so Open and later
	// calls fail instead of hanging on an unreachable server.
	DefaultConnectTimeout = 10 * time.Second
)

// Advisory lock classes (the first key of pg_advisory_xact_lock(int, int));
// the second key is a hash of the current schema.
const (
	lockClassMigrate int32 = 0x53550001
	lockClassAudit   int32 = 0x53550002
)

// Config configures Open.
type Config struct {
	// DSN is a libpq key=value string or a postgres:// URL. Required. It is
	// a secret (it may carry a password): it is never logged or put in
	// errors by this package.
	DSN string
	// MaxConns caps the connection pool. Defaults to DefaultMaxConns.
	MaxConns int
	// ConnectTimeout bounds one connection attempt when the DSN has no
	// connect_timeout. Defaults to DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// Store is the PostgreSQL store.Store. It is safe for concurrent use, and
// any number of Stores (replicas) may share one database.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects, checks the server answers, and applies the embedded
// migrations under an advisory lock. It fails (within the connect timeout
// or ctx, whichever is first) if the server cannot be reached. The caller
// must Close the Store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DSN == "" {
		return nil, errors.New("postgres: Config.DSN is empty")
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("postgres: parsing DSN: %w", err)
	}
	pc.MaxConns = DefaultMaxConns
	if cfg.MaxConns > 0 {
		pc.MaxConns = int32(min(cfg.MaxConns, 1<<20))
	}
	if pc.ConnConfig.ConnectTimeout <= 0 {
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
		if cfg.ConnectTimeout > 0 {
			pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: creating pool: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: opening: %w", err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	all, err := sqlmigrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		// Held until commit: a second replica waits here, then finds the
		// migrations recorded.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`, lockClassMigrate); err != nil {
			return fmt.Errorf("taking the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     NOT NULL PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("reading schema version: %w", err)
		}
		pending, err := sqlmigrate.Pending(all, current)
		if err != nil {
			return err
		}
		for _, m := range pending {
			// No arguments: pgx sends it with the simple protocol, which
			// allows several statements.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("applying migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("recording migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// SchemaVersion returns the schema version recorded in the database, for
// operators and tests.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: reading schema version: %w", err)
	}
	return v, nil
}

// inTx runs fn in a transaction and commits if fn returns nil. fn's error
// is returned as is, so an updater's error reaches the caller unwrapped.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: beginning transaction: %w", err)
	}
	// Rolls back on every path but a successful commit, a panicking fn
	// included; after Commit it is a no-op.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: committing: %w", err)
	}
	return nil
}

// Ping checks that the server answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
// Every later call on the Store returns an error; Close may be called again.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// tsArg is the column value for t: NULL for the zero time.
func tsArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fromTS is the inverse of tsArg, in UTC.
func fromTS(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// blobArg is the column value for b: NULL for nil, bytea otherwise.
func blobArg(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// blob keeps a scanned bytea apart from NULL: NULL is nil, an empty value
// an empty non-nil slice.
func blob(b []byte, isNull bool) []byte {
	if isNull {
		return nil
	}
	if b == nil {
		return []byte{}
	}
	return b
}
