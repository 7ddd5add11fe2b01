// Package sqlmigrate loads the numbered schema migrations that the SQL
// backends embed, and decides which of them a database still needs.
//
// It deliberately does not run anything: each backend applies the pending
// migrations inside its own transaction, under its own lock (an immediate
// transaction in SQLite, an advisory lock in PostgreSQL), because how two
// processes starting at once are kept from racing is backend specific.
//
// A migration is a file named NNNN_description.sql (NNNN a positive decimal
// version). Versions must start at 1 and have no gaps, so a missing or
// misnamed file is caught at start instead of leaving a half-built schema.
package sqlmigrate

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// ErrSchemaTooNew means the database records a schema version that this
// binary does not know: a newer release migrated it. Starting anyway could
// write rows the newer schema does not expect, so backends refuse.
var ErrSchemaTooNew = errors.New("sqlmigrate: database schema is newer than this binary")

// Migration is one numbered schema change.
type Migration struct {
	// Version is the number the file name starts with.
	Version int
	// Name is the file name, recorded with the version for operators.
	Name string
	// SQL is the file's content; it may hold several statements.
	SQL string
}

// Load reads every *.sql file in dir of fsys and returns them ordered by
// version. It fails if a name has no version prefix, if two files share a
// version, or if the versions are not exactly 1..n.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlmigrate: reading %s: %w", dir, err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		prefix, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return nil, fmt.Errorf("sqlmigrate: %s: name must be NNNN_description.sql", e.Name())
		}
		v, err := strconv.Atoi(prefix)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("sqlmigrate: %s: %q is not a positive version", e.Name(), prefix)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("sqlmigrate: reading %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("sqlmigrate: %s: expected version %d (versions must be 1..n without gaps or duplicates)", m.Name, i+1)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sqlmigrate: no migrations in %s", dir)
	}
	return out, nil
}

// Pending returns the migrations of all (as returned by Load) that come
// after current, the version the database records (0 for a new database).
// It returns ErrSchemaTooNew, wrapped, if current is beyond the last one.
func Pending(all []Migration, current int) ([]Migration, error) {
	if current < 0 {
		return nil, fmt.Errorf("sqlmigrate: recorded schema version %d is negative", current)
	}
	if current > len(all) {
		return nil, fmt.Errorf("database at version %d, binary knows up to %d: %w", current, len(all), ErrSchemaTooNew)
	}
	return all[current:], nil
}
