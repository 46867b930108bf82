//! The schema, as numbered migrations. The same SQL serves SQLite and PostgreSQL (`BIGINT` is
//! an integer to both). A migration is appended, never edited: version N of a database is the
//! first N of these applied in order.

/// Migration `i` takes a database from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: executions, their entries, sessions, state, and the APIs executions ran against.
    "CREATE TABLE executions (
        id TEXT PRIMARY KEY,
        session TEXT,
        origin TEXT NOT NULL,
        status TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        ended_ms BIGINT,
        code_hash TEXT NOT NULL,
        owner TEXT NOT NULL,
        entries BIGINT NOT NULL DEFAULT 0,
        head TEXT NOT NULL DEFAULT '',
        summary TEXT
    );
    CREATE INDEX executions_started ON executions (started_ms);
    CREATE INDEX executions_session ON executions (session, started_ms);
    CREATE INDEX executions_status ON executions (status);
    CREATE TABLE entries (
        exec_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        body TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (exec_id, seq)
    );
    CREATE TABLE sessions (
        name TEXT PRIMARY KEY,
        created_ms BIGINT NOT NULL,
        last_ms BIGINT NOT NULL
    );
    CREATE TABLE state (
        session TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        version BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (session, key)
    );
    CREATE TABLE apis (
        fingerprint TEXT PRIMARY KEY,
        body TEXT NOT NULL
    );",
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The table that holds the version.
pub(crate) const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS isola_schema (version BIGINT NOT NULL)";
