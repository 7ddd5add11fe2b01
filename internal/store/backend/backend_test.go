package backend

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
)

func TestOpenSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stepup.db")
	s, err := Open(t.Context(), config.Store{Type: "sqlite", SQLite: config.SQLite{Path: path}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*sqlite.Store); !ok {
		t.Fatalf("Open returned %T, want *sqlite.Store", s)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The store is really at cfg.SQLite.Path: a second open sees the data.
	if err := s.CreateCredential(t.Context(), store.Credential{ID: "c1", UserID: "u1"}); err != nil {
		t.Fatal(err)
	}
	again, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := again.GetCredential(t.Context(), "c1"); err != nil {
		t.Fatalf("credential written through backend.Open not in %s: %v", path, err)
	}
}

func TestOpenPostgresPassesConfig(t *testing.T) {
	// Nothing listens on port 1: the error shows the postgres backend was
	// chosen and tried, and must not reveal the DSN's password.
	cfg := config.Store{Type: "postgres", Postgres: config.Postgres{
		DSN:      config.Secret("postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable"),
		MaxConns: 3,
	}}
	start := time.Now()
	s, err := Open(t.Context(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("Open of an unreachable postgres succeeded")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Open took %v to fail", time.Since(start))
	}
	if !strings.Contains(err.Error(), "postgres") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error = %v; want it to name postgres and not the password", err)
	}
}

func TestOpenUnknownType(t *testing.T) {
	for _, typ := range []string{"", "mysql", "SQLite"} {
		t.Run(typ, func(t *testing.T) {
			s, err := Open(t.Context(), config.Store{Type: typ, SQLite: config.SQLite{Path: filepath.Join(t.TempDir(), "x.db")}})
			if err == nil {
				s.Close()
				t.Fatalf("Open with store.type %q succeeded", typ)
			}
			if !strings.Contains(err.Error(), "store.type") || !strings.Contains(err.Error(), "postgres, sqlite") {
				t.Fatalf("error = %v; want it to name store.type and the choices", err)
			}
		})
	}
}

func TestTypes(t *testing.T) {
	if got, want := Types(), []string{"postgres", "sqlite"}; !slices.Equal(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
}
