// Package factortest holds test doubles shared by the factor packages: an
// in-memory store with the store package's transaction semantics, a
// settable clock and a deterministic random source.
package factortest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/postgres"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
)

// Epoch is the pinned time every test starts from.
var Epoch = time.Unix(1700000000, 0).UTC()

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at Epoch.
func NewClock() *Clock { return &Clock{t: Epoch} }

// Now returns the current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// SeqReader is a deterministic byte source for tests that pin randomness:
// it yields 0, 1, 2, ... 255, 0, 1, ...
type SeqReader struct {
	mu sync.Mutex
	n  byte
}

// Read fills p.
func (r *SeqReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

// ErrDown is what a Mem store answers while Down is set.
var ErrDown = errors.New("factortest: store down")

// Mem is an in-memory store.Credentials, store.Counters and store.Audit.
// Updaters run under one mutex, so they see each other's results as a
// real backend's transactions do.
type Mem struct {
	mu       sync.Mutex
	creds    map[string]store.Credential
	counters map[string]int64
	audit    []store.AuditEvent
	down     bool
}

// NewMem returns an empty store.
func NewMem() *Mem {
	return &Mem{creds: map[string]store.Credential{}, counters: map[string]int64{}}
}

// SetDown makes every later call fail with ErrDown (or work again).
func (m *Mem) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

func (m *Mem) check() error {
	if m.down {
		return ErrDown
	}
	return nil
}

// CreateCredential implements store.Credentials.
func (m *Mem) CreateCredential(_ context.Context, c store.Credential) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return err
	}
	if _, ok := m.creds[c.ID]; ok {
		return fmt.Errorf("credential %s: %w", c.ID, store.ErrConflict)
	}
	c.Data = slices.Clone(c.Data)
	m.creds[c.ID] = c
	return nil
}

// GetCredential implements store.Credentials.
func (m *Mem) GetCredential(_ context.Context, id string) (store.Credential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return store.Credential{}, err
	}
	c, ok := m.creds[id]
	if !ok {
		return store.Credential{}, fmt.Errorf("credential %s: %w", id, store.ErrNotFound)
	}
	c.Data = slices.Clone(c.Data)
	return c, nil
}

// ListCredentials implements store.Credentials.
func (m *Mem) ListCredentials(_ context.Context, userID string) ([]store.Credential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return nil, err
	}
	var out []store.Credential
	for _, c := range m.creds {
		if c.UserID == userID {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b store.Credential) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// UpdateCredential implements store.Credentials.
func (m *Mem) UpdateCredential(_ context.Context, id string, fn func(store.Credential) (store.Credential, error)) (store.Credential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return store.Credential{}, err
	}
	old, ok := m.creds[id]
	if !ok {
		return store.Credential{}, fmt.Errorf("credential %s: %w", id, store.ErrNotFound)
	}
	old.Data = slices.Clone(old.Data)
	c, err := fn(old)
	if err != nil {
		return store.Credential{}, err
	}
	c.ID, c.UserID, c.CreatedAt = old.ID, old.UserID, old.CreatedAt
	c.Data = slices.Clone(c.Data)
	m.creds[id] = c
	return c, nil
}

// DeleteCredential implements store.Credentials.
func (m *Mem) DeleteCredential(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return err
	}
	if _, ok := m.creds[id]; !ok {
		return fmt.Errorf("credential %s: %w", id, store.ErrNotFound)
	}
	delete(m.creds, id)
	return nil
}

func window(key string, w time.Duration, now time.Time) (string, time.Time) {
	start := now.UnixNano() / int64(w) * int64(w)
	return fmt.Sprintf("%s@%d", key, start), time.Unix(0, start).Add(w)
}

// IncrementCounter implements store.Counters.
func (m *Mem) IncrementCounter(_ context.Context, key string, n int64, w time.Duration, now time.Time) (int64, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return 0, time.Time{}, err
	}
	k, end := window(key, w, now)
	m.counters[k] += n
	return m.counters[k], end, nil
}

// GetCounter implements store.Counters.
func (m *Mem) GetCounter(_ context.Context, key string, w time.Duration, now time.Time) (int64, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return 0, time.Time{}, err
	}
	k, end := window(key, w, now)
	return m.counters[k], end, nil
}

// ResetCounter implements store.Counters.
func (m *Mem) ResetCounter(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return err
	}
	for k := range m.counters {
		if len(k) > len(key) && k[:len(key)+1] == key+"@" {
			delete(m.counters, k)
		}
	}
	return nil
}

// AppendAudit implements store.Audit.
func (m *Mem) AppendAudit(_ context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return store.AuditEvent{}, err
	}
	e.Seq = int64(len(m.audit) + 1)
	e.Details = maps.Clone(e.Details)
	m.audit = append(m.audit, e)
	return e, nil
}

// ListAudit implements store.Audit (filters by user and types only).
func (m *Mem) ListAudit(_ context.Context, q store.AuditQuery) ([]store.AuditEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return nil, err
	}
	var out []store.AuditEvent
	for _, e := range m.audit {
		if (q.UserID == "" || e.UserID == q.UserID) && (len(q.Types) == 0 || slices.Contains(q.Types, e.Type)) && e.Seq > q.AfterSeq {
			out = append(out, e)
		}
	}
	return out, nil
}

// PruneAudit implements store.Audit.
func (m *Mem) PruneAudit(_ context.Context, before time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var kept []store.AuditEvent
	for _, e := range m.audit {
		if !e.Time.Before(before) {
			kept = append(kept, e)
		}
	}
	n := int64(len(m.audit) - len(kept))
	m.audit = kept
	return n, nil
}

// Events returns every audit event so far.
func (m *Mem) Events() []store.AuditEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.audit)
}

// Credential returns a stored credential directly, failing the test if it
// is absent.
func (m *Mem) Credential(t testing.TB, id string) store.Credential {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.creds[id]
	if !ok {
		t.Fatalf("credential %s not in store", id)
	}
	return c
}

// SQLite opens a fresh SQLite store in t's temporary directory, closed when
// the test ends.
func SQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatalf("opening sqlite store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Pepper returns a fixed test pepper.
func Pepper(t testing.TB) *keyring.Pepper {
	t.Helper()
	p, err := keyring.NewPepper([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Keyring returns a ring with one fixed test key "test".
func Keyring(t testing.TB) *keyring.Keyring {
	t.Helper()
	r, err := keyring.New([]keyring.Key{{ID: "test", Key: []byte("abcdefghijklmnopqrstuvwxyz012345")}}, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// RequireTool returns the path of an external program a test depends on.
// When it is missing the test fails under CI=true and is skipped
// otherwise, naming the Debian package that provides it.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI: install the Debian package %s", name, debianPackage)
	}
	t.Skipf("%s not found: install the Debian package %s to run this test", name, debianPackage)
	return ""
}

// defaultPostgresDSN is the local server used unless
// STEPUP_TEST_POSTGRES_DSN says otherwise (the same convention as the
// postgres store's own tests).
const defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Postgres opens a PostgreSQL store in a fresh schema, dropped when the
// test ends. It skips the test when the server cannot be reached, and
// fails it when CI=true, where PostgreSQL must be there.
func Postgres(t testing.TB) *postgres.Store {
	t.Helper()
	return OpenPostgres(t, PostgresDSN(t))
}

// OpenPostgres opens another store (another replica) on dsn from
// PostgresDSN, closed when the test ends.
func OpenPostgres(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn, MaxConns: 10})
	if err != nil {
		t.Fatalf("opening postgres store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// PostgresDSN creates a fresh schema, dropped when the test ends, and
// returns a DSN whose search_path is that schema. See Postgres for when it
// skips.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("STEPUP_TEST_POSTGRES_DSN")
	if base == "" {
		base = defaultPostgresDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is unreachable and CI=true: %v", err)
		}
		t.Skipf("skipping: PostgreSQL is unreachable (set STEPUP_TEST_POSTGRES_DSN): %v", err)
	}
	defer conn.Close(context.Background())
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "factortest_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema: %v", err)
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
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("STEPUP_TEST_POSTGRES_DSN must be a postgres:// URL here: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
