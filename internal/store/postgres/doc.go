// Package postgres is the shared store.Store for several replicas, on
// PostgreSQL through pgx/v5 (pgxpool).
//
// How each guarantee of the store contract is kept, and why:
//
//   - Update* run in a READ COMMITTED transaction that reads the row with
//     SELECT ... FOR UPDATE. A concurrent updater of the same row, on this
//     replica or another, waits for the lock and then reads the committed
//     result of the one before it, so a "not used yet" check has exactly one
//     winner.
//   - Counters are one INSERT ... ON CONFLICT DO UPDATE ... RETURNING: the
//     increment and the read of the new count are one atomic statement.
//   - Leases are one INSERT ... ON CONFLICT DO UPDATE ... WHERE the lease
//     expired or is held by the same holder; no row changed means another
//     holder has it.
//   - Audit Seq is strictly increasing in commit order. A plain sequence is
//     not: two appenders may draw 7 and 8 and commit 8 first, and a reader
//     paging with AfterSeq=8 would never see 7. AppendAudit therefore takes
//     a transaction-scoped advisory lock before drawing the number, so
//     appends are serialised and each commits (and becomes visible) before
//     the next draws its Seq. Appends per database schema are one at a
//     time; audit volume is far below what that allows.
//   - Audit rows cannot be updated: a trigger refuses UPDATE and TRUNCATE;
//     DELETE stays for retention (PruneAudit).
//   - Migrations are embedded (migrations/*.sql) and applied by Open in one
//     transaction under an advisory lock, so replicas starting at once apply
//     each migration once; versions are recorded in schema_migrations.
//
// Advisory lock keys are derived from the current schema, so several
// deployments (or test runs) in different schemas of one database do not
// serialise each other. Tables live in the first schema of the connection's
// search_path.
//
// Storage: times are timestamptz (microseconds) and are returned in UTC; the
// zero time is NULL and is returned as the zero time.Time. Data is bytea:
// nil is stored as NULL and returned as nil, an empty non-nil slice is
// returned as an empty non-nil slice. Audit Details are jsonb; an empty map
// is returned as nil.
package postgres
