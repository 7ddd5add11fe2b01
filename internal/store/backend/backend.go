// Package backend opens the store.Store that config names. It is the only
// place that knows every backend, so the server and the command depend on
// the store contract alone.
package backend

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/postgres"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
)

// openFunc opens one kind of backend from its part of the config.
type openFunc func(ctx context.Context, cfg config.Store) (store.Store, error)

// openers is the table of backends by store.type. It is built on each
// call rather than kept in a package-level registry, so nothing can be
// registered (or swapped) behind the config's back.
func openers() map[string]openFunc {
	return map[string]openFunc{
		"sqlite": func(ctx context.Context, cfg config.Store) (store.Store, error) {
			return sqlite.Open(ctx, sqlite.Config{Path: cfg.SQLite.Path})
		},
		"postgres": func(ctx context.Context, cfg config.Store) (store.Store, error) {
			return postgres.Open(ctx, postgres.Config{DSN: cfg.Postgres.DSN.Reveal(), MaxConns: cfg.Postgres.MaxConns})
		},
	}
}

// Types lists the store.type values Open accepts, sorted.
func Types() []string {
	var out []string
	for name := range openers() {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Open opens the backend cfg.Type names (sqlite or postgres), creating or
// migrating its schema, and returns it ready to use; the caller must Close
// it. An unknown type is an error naming store.type. Errors never carry
// the postgres DSN.
func Open(ctx context.Context, cfg config.Store) (store.Store, error) {
	open, ok := openers()[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("store: store.type %q is not one of %s", cfg.Type, strings.Join(Types(), ", "))
	}
	s, err := open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: opening the %s store: %w", cfg.Type, err)
	}
	return s, nil
}
