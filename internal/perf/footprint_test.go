package perf_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/builtin"
	"github.com/stepup-bridge/stepup-bridge/internal/perf"
	"github.com/stepup-bridge/stepup-bridge/internal/store/backend"
	"github.com/stepup-bridge/stepup-bridge/internal/store/postgres/pgtest"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
)

// tableSizes reports the bytes the challenges and audit tables (with
// their indexes) take in the store.
type tableSizes func(b *testing.B) (challenges, audit int64)

// sqliteSizes reads the SQLite file's dbstat after a checkpoint, through a
// connection of its own.
func sqliteSizes(b *testing.B, path string) tableSizes {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return func(b *testing.B) (int64, int64) {
		if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
		var c, a int64
		q := `SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN (%s)`
		if err := db.QueryRow(fmt.Sprintf(q, `'challenges', 'challenges_expires', 'sqlite_autoindex_challenges_1'`)).Scan(&c); err != nil {
			b.Fatal(err)
		}
		if err := db.QueryRow(fmt.Sprintf(q, `'audit', 'audit_user', 'audit_time'`)).Scan(&a); err != nil {
			b.Fatal(err)
		}
		return c, a
	}
}

// postgresSizes reads pg_total_relation_size (heap, TOAST and indexes).
func postgresSizes(b *testing.B, dsn string) tableSizes {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close(context.Background()) })
	return func(b *testing.B) (int64, int64) {
		var c, a int64
		if err := conn.QueryRow(context.Background(),
			`SELECT pg_total_relation_size('challenges'), pg_total_relation_size('audit')`).Scan(&c, &a); err != nil {
			b.Fatal(err)
		}
		return c, a
	}
}

// rssBytes is the process's resident set (VmRSS), or 0 where /proc is absent.
func rssBytes() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func heapBytes() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkChallengeFootprint opens b.N pending challenges through the HTTP
// API and reports what each costs: bytes of challenge rows and of audit
// rows in the store (SQLite dbstat after a checkpoint; PostgreSQL
// pg_total_relation_size), and Go heap and RSS growth of the process
// (sidecar, SQLite and the Keycloak-compatible server share it). Kinds:
// a step-up challenge (backup code), and a pending login (POST /v1/login
// of a user with a factor: the row holds Keycloak's tokens, encrypted).
// Run with a fixed count: -benchtime=1000x.
func BenchmarkChallengeFootprint(b *testing.B) {
	backends := []struct {
		name  string
		start func(b *testing.B) (*testenv.Env, tableSizes)
	}{
		{"sqlite", func(b *testing.B) (*testenv.Env, tableSizes) {
			env := testenv.Start(b, testenv.Options{})
			return env, sqliteSizes(b, env.Config.Store.SQLite.Path)
		}},
		{"postgres", func(b *testing.B) (*testenv.Env, tableSizes) {
			pgtest.Require(b)
			dsn := pgtest.FreshSchema(b)
			env := testenv.Start(b, testenv.Options{Mutate: func(c *config.Config) {
				c.Store.Type = "postgres"
				c.Store.Postgres.DSN = config.Secret(dsn)
				c.Store.Postgres.MaxConns = 4
			}})
			return env, postgresSizes(b, dsn)
		}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			env, sizes := be.start(b)
			alice := env.PasswordTokens(b, "alice", "alice").AccessToken
			enrolBackupCodes(b, env, subject(b, alice))
			kinds := []struct {
				name string
				open func(b *testing.B)
			}{
				{"stepup", func(b *testing.B) {
					if id, status, m := createChallenge(b, env, alice, factors.BackupCode, ""); id == "" {
						b.Fatalf("create: %d %v", status, m)
					}
				}},
				{"login", func(b *testing.B) {
					status, m, _ := do(b, env, call{method: "POST", path: "/v1/login",
						body: map[string]string{"username": "alice", "password": "alice"}})
					if status != http.StatusUnauthorized || m["mfa_token"] == nil {
						b.Fatalf("login: %d %v", status, m)
					}
				}},
			}
			for _, k := range kinds {
				b.Run(k.name, func(b *testing.B) {
					c0, a0 := sizes(b)
					h0, r0 := heapBytes(), rssBytes()
					for b.Loop() {
						k.open(b)
					}
					b.StopTimer()
					c1, a1 := sizes(b)
					h1, r1 := heapBytes(), rssBytes()
					n := float64(b.N)
					b.ReportMetric(float64(c1-c0)/n, "row-B/challenge")
					b.ReportMetric(float64(a1-a0)/n, "audit-B/challenge")
					b.ReportMetric(float64(h1-h0)/n, "heap-B/challenge")
					b.ReportMetric(float64(r1-r0)/n, "rss-B/challenge")
				})
			}
		})
	}
}

// BenchmarkFactorRecordsPostgres measures what factor records cost in
// PostgreSQL: one user with a PIN (argon2id, production parameters), a
// TOTP secret and a set of backup codes is enrolled through the factor
// registry; b.N users with records of exactly those sizes (random bytes
// of the same lengths: hashes and ciphertexts do not compress) are then
// copied into a fresh schema, which is dropped at the end. Reports bytes
// per user (pg_total_relation_size of credentials: heap, TOAST, indexes)
// and MiB per million users. -benchtime=33334x inserts 100k records.
func BenchmarkFactorRecordsPostgres(b *testing.B) {
	pgtest.Require(b)
	ctx := context.Background()
	dsn := pgtest.FreshSchema(b)
	cfg, err := perf.Config("http://127.0.0.1:1", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cfg.Store = config.Store{Type: "postgres", Postgres: config.Postgres{DSN: config.Secret(dsn), MaxConns: 2}}
	st, err := backend.Open(ctx, cfg.Store)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	reg, err := builtin.NewRegistry(cfg, builtin.Deps{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	const tmpl = "00000000-0000-4000-8000-000000000000"
	for _, e := range []struct {
		name string
		req  factors.EnrolRequest
	}{{factors.PIN, factors.EnrolRequest{Secret: "482693", Confirmation: "482693"}}, {factors.TOTP, factors.EnrolRequest{}}, {factors.BackupCode, factors.EnrolRequest{}}} {
		if _, err := reg.Enrol(ctx, e.name, tmpl, e.req, factors.Meta{}); err != nil {
			b.Fatalf("enrolling %s: %v", e.name, err)
		}
	}
	templates, err := st.ListCredentials(ctx, tmpl)
	if err != nil || len(templates) != 3 {
		b.Fatalf("template credentials: %d, %v", len(templates), err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	size := func() int64 {
		var n int64
		if err := conn.QueryRow(ctx, `SELECT pg_total_relation_size('credentials')`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	for _, t := range templates {
		b.ReportMetric(float64(len(t.Data)), t.Factor+"-data-B")
	}

	before := size()
	now := time.Now()
	cols := []string{"id", "user_id", "factor", "status", "label", "data", "counter", "failures",
		"locked_until", "created_at", "updated_at", "last_used_at"}
	const batch = 5000
	users := 0
	for users < b.N {
		n := min(batch, b.N-users)
		rows := make([][]any, 0, n*len(templates))
		for range n {
			user := uuid(b)
			for _, t := range templates {
				data := make([]byte, len(t.Data))
				if _, err := rand.Read(data); err != nil {
					b.Fatal(err)
				}
				rows = append(rows, []any{factors.CredentialID(t.Factor, user), user, t.Factor, t.Status, t.Label,
					data, t.Counter, 0, nil, now, now, nil})
			}
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"credentials"}, cols, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		users += n
	}
	b.StopTimer()
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE credentials"); err != nil {
		b.Fatal(err)
	}
	grown := float64(size() - before)
	b.ReportMetric(grown/float64(b.N), "B/user")
	b.ReportMetric(grown/float64(b.N)*1e6/(1<<20), "MiB/1M-users")
}

// uuid is a random version-4 UUID, as Keycloak's user ids are.
func uuid(b *testing.B) string {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		b.Fatal(err)
	}
	r[6] = r[6]&0x0f | 0x40
	r[8] = r[8]&0x3f | 0x80
	h := hex.EncodeToString(r[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
