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
    // 2: approval requests (a person's decision on a held call or plan) and session grants.
    "CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        execution TEXT,
        session TEXT,
        subject TEXT NOT NULL,
        reasons TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
        decided_by TEXT,
        decided_ms BIGINT,
        note TEXT
    );
    CREATE INDEX approvals_created ON approvals (created_ms);
    CREATE INDEX approvals_status ON approvals (status, created_ms);
    CREATE INDEX approvals_execution ON approvals (execution, created_ms);
    CREATE INDEX approvals_session ON approvals (session);
    CREATE TABLE grants (
        id TEXT PRIMARY KEY,
        session TEXT NOT NULL,
        function TEXT NOT NULL,
        matcher TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT,
        note TEXT
    );
    CREATE INDEX grants_session ON grants (session, created_ms);",
    // 3: a plan's approval, once used by its apply, is `applied` (the table rebuilt for the
    // status check, the one way both databases change one).
    "CREATE TABLE approvals_v3 (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        execution TEXT,
        session TEXT,
        subject TEXT NOT NULL,
        reasons TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'applied')),
        decided_by TEXT,
        decided_ms BIGINT,
        note TEXT
    );
    INSERT INTO approvals_v3 (id, kind, execution, session, subject, reasons, created_ms,
        expires_ms, status, decided_by, decided_ms, note)
      SELECT id, kind, execution, session, subject, reasons, created_ms, expires_ms, status,
        decided_by, decided_ms, note FROM approvals;
    DROP TABLE approvals;
    ALTER TABLE approvals_v3 RENAME TO approvals;
    CREATE INDEX approvals_created ON approvals (created_ms);
    CREATE INDEX approvals_status ON approvals (status, created_ms);
    CREATE INDEX approvals_execution ON approvals (execution, created_ms);
    CREATE INDEX approvals_session ON approvals (session);",
    // 4: the nodes (`isola serve` processes) and when each was last seen alive, so that one
    // node can tell another, on another machine, is gone.
    "CREATE TABLE nodes (
        owner TEXT PRIMARY KEY,
        seen_ms BIGINT NOT NULL
    );",
    // 5: the agent's calls to models, for usage by model and day.
    "CREATE TABLE llm_calls (
        id TEXT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        origin TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        ok BIGINT NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        cost_usd DOUBLE PRECISION
    );
    CREATE INDEX llm_calls_at ON llm_calls (at_ms);",
    // 6: `isola serve`'s tokens kept in the store (`isola tokens`): the secret's hash only.
    "CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        created_by TEXT NOT NULL
    );",
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The table that holds the version.
pub(crate) const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS isola_schema (version BIGINT NOT NULL)";

/// A database as version 1 left it, for the tests that migrate one.
#[cfg(test)]
pub(crate) mod v1 {
    use crate::{ApprovalRow, Expect, GrantRow, Store};

    /// Rows of every version-1 table (the same SQL for both databases).
    pub(crate) const DATA: &str = "
        INSERT INTO sessions (name, created_ms, last_ms) VALUES ('old', 10, 20);
        INSERT INTO executions (id, session, origin, status, started_ms, ended_ms, code_hash,
          owner, entries, head, summary)
          VALUES ('ex-v1', 'old', 'cli', 'ok', 10, 20, 'h', 'host:1:1', 1, 'hash0', '{}');
        INSERT INTO entries (exec_id, seq, kind, at_ms, body, prev, hash)
          VALUES ('ex-v1', 0, 'log', 11, '{\"text\":\"kept\"}', '', 'hash0');
        INSERT INTO state (session, key, value, version, updated_ms)
          VALUES ('old', 'k', '[1]', 3, 15);
        INSERT INTO apis (fingerprint, body) VALUES ('fp', '[]');";

    /// `store`, opened on a version-1 database holding [`DATA`], kept it all and has what the
    /// later versions add.
    pub(crate) async fn check_upgraded(store: &dyn Store) {
        let s = store.session("old").await.unwrap().unwrap();
        assert_eq!((s.created_ms, s.executions, s.state_keys), (10, 1, 1));
        let x = store.execution("ex-v1").await.unwrap().unwrap();
        assert_eq!((x.entries, x.head.as_str()), (1, "hash0"));
        let entries = store.entries("ex-v1").await.unwrap();
        assert_eq!(entries[0].body, "{\"text\":\"kept\"}");
        let item = store.state_get("old", "k").await.unwrap().unwrap();
        assert_eq!((item.value.as_str(), item.version), ("[1]", 3));
        assert_eq!(store.api("fp").await.unwrap().as_deref(), Some("[]"));
        // Still writable as before.
        store
            .state_put("old", "k", "[2]", Expect::Version(3), 1024, 30)
            .await
            .unwrap();
        // Version 2: approvals and grants.
        let row = ApprovalRow {
            id: "ap-1".into(),
            kind: "call".into(),
            execution: Some("ex-v1".into()),
            session: Some("old".into()),
            subject: "{}".into(),
            reasons: "[]".into(),
            created_ms: 40,
            expires_ms: 100,
            status: "pending".into(),
            decided_by: None,
            decided_ms: None,
            note: None,
        };
        store.approval_create(&row).await.unwrap();
        assert_eq!(store.approval("ap-1", 50).await.unwrap(), Some(row));
        let grant = GrantRow {
            id: "g-1".into(),
            session: "old".into(),
            function: "fs.writeFile".into(),
            matcher: "{}".into(),
            created_by: "alice".into(),
            created_ms: 40,
            expires_ms: None,
            note: None,
        };
        store.grant_create(&grant).await.unwrap();
        assert_eq!(store.grants("old", 50).await.unwrap(), [grant]);
    }
}
