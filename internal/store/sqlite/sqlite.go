package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	// The pure-Go driver registers itself as "sqlite".
	_ "modernc.org/sqlite"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Defaults applied by Open to zero Config fields.
const (
	// DefaultBusyTimeout is how long a write waits for another process's
	// write transaction on the same file.
	DefaultBusyTimeout = 5 * time.Second
	// maxOpenConns bounds the connections of one Store: writers are
	// serialised anyway, so more only serve concurrent readers.
	maxOpenConns = 8
)

// Config configures Open.
type Config struct {
	// Path of the database file, created with its schema if missing.
	// Required. It is a file system path, not a URI: ":memory:", "file:"
	// URIs and paths containing '?' are refused, because every pooled
	// connection must see the same database.
	Path string
	// BusyTimeout bounds how long a write waits while another process
	// holds the write lock of the same file, before it fails with
	// SQLITE_BUSY. Defaults to DefaultBusyTimeout.
	BusyTimeout time.Duration
}

// Store is the SQLite store.Store. It is safe for concurrent use, and
// several Stores (in one or several processes) may open the same file.
type Store struct {
	db *sql.DB
	// writeSem admits one write transaction of this Store at a time.
	writeSem  chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at cfg.Path and applies the
// embedded migrations. The caller must Close the Store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	dsn, err := dsnFor(cfg)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", cfg.Path, err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	s := &Store{db: db, writeSem: make(chan struct{}, 1)}
	// Processes opening a new file at once race to switch it to WAL, and
	// SQLite answers SQLITE_BUSY at once, without its busy handler, to the
	// loser: retry that for as long as the busy timeout would wait.
	deadline := time.Now().Add(cmp.Or(cfg.BusyTimeout, DefaultBusyTimeout))
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err = s.migrate(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(wait):
			continue
		}
		break
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", cfg.Path, err)
	}
	return s, nil
}

// isBusy reports SQLITE_BUSY (5), whatever the extended code.
func isBusy(err error) bool {
	var coded interface{ Code() int }
	return errors.As(err, &coded) && coded.Code()&0xff == 5
}

func dsnFor(cfg Config) (string, error) {
	switch {
	case cfg.Path == "":
		return "", errors.New("sqlite: Config.Path is empty")
	case cfg.Path == ":memory:" || strings.HasPrefix(cfg.Path, "file:") || strings.Contains(cfg.Path, "?"):
		return "", fmt.Errorf("sqlite: Config.Path %q must be a plain file path", cfg.Path)
	}
	busy := cfg.BusyTimeout
	if busy <= 0 {
		busy = DefaultBusyTimeout
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return cfg.Path + "?" + q.Encode(), nil
}

func (s *Store) migrate(ctx context.Context) error {
	all, err := sqlmigrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
		) STRICT`); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("reading schema version: %w", err)
		}
		pending, err := sqlmigrate.Pending(all, current)
		if err != nil {
			return err
		}
		for _, m := range pending {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("applying migration %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name); err != nil {
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
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: reading schema version: %w", err)
	}
	return v, nil
}

// write runs fn in an immediate transaction, one per Store at a time, and
// commits if fn returns nil. fn's error is returned as is, so an updater's
// error reaches the caller unwrapped.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case s.writeSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("sqlite: waiting to write: %w", ctx.Err())
	}
	defer func() { <-s.writeSem }()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: beginning transaction: %w", err)
	}
	// Rolls back on every path but a successful commit, a panicking fn
	// included: a transaction left open would hold the write lock.
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: committing: %w", err)
	}
	return nil
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close closes the database. Every later call on the Store returns an
// error; calling Close again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("sqlite: closing: %w", err)
		}
	})
	return s.closeErr
}

// micros is the column value for t: NULL for the zero time.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros, in UTC.
func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// blobArg is the column value for b: NULL for nil, a blob otherwise.
func blobArg(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// blob scans a BLOB column keeping nil (NULL) apart from empty.
type blob struct{ b []byte }

// Scan implements sql.Scanner.
func (x *blob) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		x.b = nil
	case []byte:
		x.b = append([]byte{}, v...)
	case string:
		x.b = []byte(v)
	default:
		return fmt.Errorf("sqlite: blob column holds %T", v)
	}
	return nil
}
