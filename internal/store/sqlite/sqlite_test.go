package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlmigrate"
	"github.com/stepup-bridge/stepup-bridge/internal/store/storetest"
)

func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openTemp(t *testing.T) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "stepup.db"))
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// TestReplicas opens the same file twice, as two processes would: the
// stores share nothing but the file, so only SQLite's own locking (the
// immediate transactions) keeps them consistent.
func TestReplicas(t *testing.T) {
	storetest.RunReplicas(t, func(t *testing.T) (store.Store, store.Store) {
		path := filepath.Join(t.TempDir(), "stepup.db")
		return openAt(t, path), openAt(t, path)
	})
}

func TestOpenRefusesBadPaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		t.Run(p, func(t *testing.T) {
			if s, err := Open(t.Context(), Config{Path: p}); err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded", p)
			}
		})
	}
}

func TestOpenFailsOnUnwritableDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "dir", "stepup.db")
	if s, err := Open(t.Context(), Config{Path: path}); err == nil {
		_ = s.Close()
		t.Fatal("Open in a directory that does not exist succeeded")
	}
}

func TestMigrationsRecordedAndIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stepup.db")
	all, err := sqlmigrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		s := openAt(t, path)
		v, err := s.SchemaVersion(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if v != len(all) {
			t.Fatalf("open %d: schema version %d, want %d", i, v, len(all))
		}
		var rows int
		if err := s.db.QueryRowContext(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != len(all) {
			t.Fatalf("open %d: %d migration rows, want %d", i, rows, len(all))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stepup.db")
	s := openAt(t, path)
	if _, err := s.db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	_, err := Open(t.Context(), Config{Path: path})
	if !errors.Is(err, sqlmigrate.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

func TestConcurrentOpenOfNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stepup.db")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(t.Context(), Config{Path: path})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
}

func TestPragmas(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	cases := []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"synchronous", "2"},
	}
	for _, tc := range cases {
		t.Run(tc.pragma, func(t *testing.T) {
			var got string
			if err := s.db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(got, tc.want) {
				t.Fatalf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
			}
		})
	}
}

func TestAuditRefusesUpdate(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	e, err := s.AppendAudit(ctx, store.AuditEvent{Time: time.Unix(1700000000, 0), Type: "stepup.success", UserID: "u1", Outcome: "success"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE audit SET outcome = 'failure' WHERE seq = ?`, e.Seq); err == nil {
		t.Fatal("UPDATE of an audit row succeeded")
	}
	got, err := s.ListAudit(ctx, store.AuditQuery{})
	if err != nil || len(got) != 1 || got[0].Outcome != "success" {
		t.Fatalf("after refused UPDATE: %+v, %v", got, err)
	}
	if n, err := s.PruneAudit(ctx, time.Unix(1800000000, 0)); err != nil || n != 1 {
		t.Fatalf("PruneAudit = %d, %v; want 1 (DELETE stays allowed for retention)", n, err)
	}
}

func TestWriteWaitRespectsContext(t *testing.T) {
	s := openTemp(t)
	// Hold this Store's writer slot, as a long write would.
	s.writeSem <- struct{}{}
	defer func() { <-s.writeSem }()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.CreateCredential(ctx, store.Credential{ID: "c1", UserID: "u1"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CreateCredential while the writer is busy = %v, want DeadlineExceeded", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("waited %v for a 50ms context", time.Since(start))
	}
}

func BenchmarkStore(b *testing.B) {
	s, err := Open(b.Context(), Config{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.Benchmark(b, s)
}
