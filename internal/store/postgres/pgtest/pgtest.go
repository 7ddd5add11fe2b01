// Package pgtest gives tests a PostgreSQL schema of their own on the
// server named by STEPUP_TEST_POSTGRES_DSN (default: the local server), so
// test packages running at once never collide. Where PostgreSQL cannot be
// reached, a test is skipped with a message naming the DSN, or failed when
// CI=true (CI must test against the real server).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDSN is the local server the tests use unless
// STEPUP_TEST_POSTGRES_DSN says otherwise.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DSN is the server tests use.
func DSN() string {
	if v := os.Getenv("STEPUP_TEST_POSTGRES_DSN"); v != "" {
		return v
	}
	return DefaultDSN
}

// FreshSchema creates a schema with a random name, drops it when t ends,
// and returns a DSN whose search_path is that schema.
func FreshSchema(t testing.TB) string {
	t.Helper()
	base := DSN()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := Connect(ctx, t, base)
	defer conn.Close(context.WithoutCancel(ctx))
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "storetest_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(t, base, schema)
}

// Connect connects to dsn, or skips t (fails it when CI=true) with a
// message naming the DSN.
func Connect(ctx context.Context, t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is unreachable and CI=true: %v", dsn, err)
		}
		t.Skipf("skipping: PostgreSQL at %s is unreachable (set STEPUP_TEST_POSTGRES_DSN to test against another server): %v", dsn, err)
	}
	return conn
}

// Require skips (or, with CI=true, fails) a whole test up front when
// PostgreSQL cannot be reached, instead of once per subtest.
func Require(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	Connect(ctx, t, DSN()).Close(ctx)
}

// WithSearchPath returns dsn with its search_path set to schema, for both
// URL and keyword/value DSNs.
func WithSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if !strings.Contains(dsn, "://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parsing STEPUP_TEST_POSTGRES_DSN: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
