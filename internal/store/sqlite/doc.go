// Package sqlite is the embedded store.Store: one database file, no server,
// pure Go (modernc.org/sqlite, no cgo), for a single replica or for
// development.
//
// Why it is configured the way it is:
//
//   - WAL journal. Readers never block the writer and the writer never
//     blocks readers, so readiness probes and audit reads go on while a
//     challenge is consumed. synchronous=FULL is kept: a consumed backup
//     code or challenge must not come back after a power cut (a replay).
//   - Immediate write transactions (_txlock=immediate). A deferred
//     transaction reads first and upgrades to a write lock later; under WAL
//     that upgrade fails with SQLITE_BUSY_SNAPSHOT if another writer
//     committed in between, and no busy timeout helps. BEGIN IMMEDIATE takes
//     the write lock before the row is read, so the updater of
//     UpdateCredential and UpdateChallenge always runs on the current row,
//     even when another process has the same file open.
//   - One writer per *Store at a time, in process. Writes of one Store queue
//     on a semaphore (respecting ctx) instead of spinning in SQLite's busy
//     handler; the busy timeout then only covers other processes.
//   - busy_timeout (Config.BusyTimeout, 5s by default) bounds that wait.
//   - Foreign keys on, so constraints added by later migrations hold.
//
// Storage: times are INTEGER microseconds since the Unix epoch (exact,
// sortable) and are returned in UTC; the zero time is stored as NULL and
// returned as the zero time.Time. Data is a BLOB: nil is stored as NULL and
// returned as nil, an empty non-nil slice is returned as an empty non-nil
// slice, and any other value byte for byte. Audit Details are JSON; an empty
// map is returned as nil.
//
// The schema is embedded (migrations/*.sql) and brought up to date by Open,
// inside one immediate transaction, so two processes opening a new file at
// once apply it once; the version is recorded in schema_migrations.
package sqlite
