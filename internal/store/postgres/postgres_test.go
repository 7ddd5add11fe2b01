package postgres

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/postgres/pgtest"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlmigrate"
	"github.com/stepup-bridge/stepup-bridge/internal/store/storetest"
)

// testMaxConns keeps each test store's pool small: the suite opens many.
const testMaxConns = 5

func openDSN(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{DSN: dsn, MaxConns: testMaxConns})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// Registered after freshSchema's cleanup, so it runs first.
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	pgtest.Require(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openDSN(t, pgtest.FreshSchema(t)) })
}

// TestReplicas opens two pools on one schema, as two replicas would.
func TestReplicas(t *testing.T) {
	pgtest.Require(t)
	storetest.RunReplicas(t, func(t *testing.T) (store.Store, store.Store) {
		dsn := pgtest.FreshSchema(t)
		return openDSN(t, dsn), openDSN(t, dsn)
	})
}

func TestConcurrentMigration(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	const replicas = 4
	var wg sync.WaitGroup
	stores := make([]*Store, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(t.Context(), Config{DSN: dsn, MaxConns: 2})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Open: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	all, err := sqlmigrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	v, err := stores[0].SchemaVersion(t.Context())
	if err != nil || v != len(all) {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, len(all))
	}
	var rows int
	if err := stores[1].pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(all) {
		t.Fatalf("%d migration rows after %d concurrent opens, want %d", rows, replicas, len(all))
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	s := openDSN(t, dsn)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), Config{DSN: dsn})
	if !errors.Is(err, sqlmigrate.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

func TestAuditRefusesUpdateAndTruncate(t *testing.T) {
	s := openDSN(t, pgtest.FreshSchema(t))
	ctx := t.Context()
	e, err := s.AppendAudit(ctx, store.AuditEvent{Time: time.Unix(1700000000, 0), Type: "stepup.success", UserID: "u1", Outcome: "success"})
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`UPDATE audit SET outcome = 'failure' WHERE seq = $1`, `TRUNCATE audit`} {
		args := []any{e.Seq}
		if strings.HasPrefix(stmt, "TRUNCATE") {
			args = nil
		}
		if _, err := s.pool.Exec(ctx, stmt, args...); err == nil {
			t.Fatalf("%s succeeded on the audit table", stmt)
		}
	}
	got, err := s.ListAudit(ctx, store.AuditQuery{})
	if err != nil || len(got) != 1 || got[0].Outcome != "success" {
		t.Fatalf("after refused UPDATE: %+v, %v", got, err)
	}
	if n, err := s.PruneAudit(ctx, time.Unix(1800000000, 0)); err != nil || n != 1 {
		t.Fatalf("PruneAudit = %d, %v; want 1 (DELETE stays allowed for retention)", n, err)
	}
}

func TestOpenUnreachableFailsFast(t *testing.T) {
	// A listener that accepts connections and never answers: without a
	// connect timeout the startup would wait forever.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cases := []struct {
		name  string
		cfg   Config
		limit time.Duration
	}{
		{"refused port", Config{DSN: "postgres://postgres@127.0.0.1:1/test?sslmode=disable"}, 5 * time.Second},
		{"silent server, default timeout from ConnectTimeout", Config{
			DSN: "postgres://postgres@" + silent.Addr().String() + "/test?sslmode=disable", ConnectTimeout: 300 * time.Millisecond,
		}, 5 * time.Second},
		{"silent server, connect_timeout in the DSN", Config{
			DSN: "postgres://postgres@" + silent.Addr().String() + "/test?sslmode=disable&connect_timeout=1",
		}, 5 * time.Second},
		{"empty DSN", Config{}, time.Second},
		{"unparsable DSN", Config{DSN: "postgres://u:secret@[::1"}, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			s, err := Open(t.Context(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if d := time.Since(start); d > tc.limit {
				t.Fatalf("Open took %v to fail, want under %v", d, tc.limit)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error reveals the password: %v", err)
			}
		})
	}
}

func TestMaxConnsDefault(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	s, err := Open(t.Context(), Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.pool.Config().MaxConns; got != DefaultMaxConns {
		t.Fatalf("MaxConns = %d, want %d", got, DefaultMaxConns)
	}
}

func BenchmarkStore(b *testing.B) {
	s := openDSN(b, pgtest.FreshSchema(b))
	storetest.Benchmark(b, s)
}
