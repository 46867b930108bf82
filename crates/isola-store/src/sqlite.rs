//! The SQLite store: one file, WAL, `synchronous = FULL` (a committed batch survives a crash
//! of the process and of the machine). Calls run on tokio's blocking threads, one at a time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::migrations::{MIGRATIONS, VERSION_TABLE};
use crate::{
    ApprovalQuery, ApprovalRow, EntryRow, ExecQuery, ExecRow, Expect, GrantRow, LlmCallRow, Result,
    SessionRow, StateItem, Store, StoreError, TokenRow, WriteOp, check_expect, check_new_approval,
    decide_failure, like_prefix,
};

pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

fn err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Sqlite {
        location: path.display().to_string(),
        message: e.to_string(),
    }
}

impl SqliteStore {
    /// Open (or create) the database at `path`, creating its directory (mode 0700) and the
    /// file (0600: the journal holds call arguments), and migrate it.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&p))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))??;
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = match conn.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            f(&mut guard, &path)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }
}

fn open_blocking(path: &Path) -> Result<Connection> {
    let io = |what: &str, e: std::io::Error| StoreError::Sqlite {
        location: path.display().to_string(),
        message: format!("{what}: {e}"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io("cannot create its directory", e))?;
    }
    if !path.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| io("cannot create it", e))?;
    }
    let e = err(path);
    let mut conn = Connection::open(path).map_err(&e)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(&e)?;
    // Switching a new database to WAL takes an exclusive lock and does not wait for the busy
    // timeout: when another process opens the same new file at the same moment, try again.
    let mut tries = 0;
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy && tries < 200 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other.map_err(&e)?,
        }
    };
    if mode != "wal" {
        tracing::warn!(path = %path.display(), mode, "SQLite did not switch to WAL");
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(&e)?;
    migrate(&mut conn, path, MIGRATIONS)?;
    Ok(conn)
}

/// Bring the database to version `migrations.len()` (always [`MIGRATIONS`], but for tests that
/// make an older database).
fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<()> {
    let e = err(path);
    let known = migrations.len() as i64;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&e)?;
    tx.execute_batch(VERSION_TABLE).map_err(&e)?;
    let found: Option<i64> = tx
        .query_row("SELECT MAX(version) FROM isola_schema", [], |r| r.get(0))
        .map_err(&e)?;
    let found = found.unwrap_or(0);
    if found > known {
        return Err(StoreError::SchemaTooNew {
            location: path.display().to_string(),
            found,
            known,
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql).map_err(&e)?;
        tracing::info!(path = %path.display(), version = i + 1, "store migrated");
    }
    if found < known {
        tx.execute("DELETE FROM isola_schema", []).map_err(&e)?;
        tx.execute("INSERT INTO isola_schema (version) VALUES (?1)", [known])
            .map_err(&e)?;
    }
    tx.commit().map_err(&e)
}

const EXEC_COLUMNS: &str =
    "id, session, origin, status, started_ms, ended_ms, code_hash, owner, entries, head, summary";

fn exec_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExecRow> {
    Ok(ExecRow {
        id: r.get(0)?,
        session: r.get(1)?,
        origin: r.get(2)?,
        status: r.get(3)?,
        started_ms: r.get(4)?,
        ended_ms: r.get(5)?,
        code_hash: r.get(6)?,
        owner: r.get(7)?,
        entries: r.get(8)?,
        head: r.get(9)?,
        summary: r.get(10)?,
    })
}

fn state_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StateItem> {
    Ok(StateItem {
        key: r.get(0)?,
        value: r.get(1)?,
        version: r.get(2)?,
        updated_ms: r.get(3)?,
    })
}

const SESSION_SELECT: &str = "SELECT s.name, s.created_ms, s.last_ms,
    (SELECT COUNT(*) FROM executions e WHERE e.session = s.name),
    (SELECT COUNT(*) FROM state t WHERE t.session = s.name),
    (SELECT COALESCE(SUM(LENGTH(CAST(t.key AS BLOB)) + LENGTH(CAST(t.value AS BLOB))), 0) FROM state t WHERE t.session = s.name)
    FROM sessions s";

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        name: r.get(0)?,
        created_ms: r.get(1)?,
        last_ms: r.get(2)?,
        executions: r.get(3)?,
        state_keys: r.get(4)?,
        state_bytes: r.get(5)?,
    })
}

/// An approval's columns, its status as of `?1` (the caller's now): a pending one past its
/// expiry reads as `expired`.
const APPROVAL_SELECT: &str = "SELECT id, kind, execution, session, subject, reasons, created_ms,
    expires_ms, CASE WHEN status = 'pending' AND expires_ms <= ?1 THEN 'expired' ELSE status END AS status,
    decided_by, decided_ms, note FROM approvals";

fn approval_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalRow> {
    Ok(ApprovalRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        execution: r.get(2)?,
        session: r.get(3)?,
        subject: r.get(4)?,
        reasons: r.get(5)?,
        created_ms: r.get(6)?,
        expires_ms: r.get(7)?,
        status: r.get(8)?,
        decided_by: r.get(9)?,
        decided_ms: r.get(10)?,
        note: r.get(11)?,
    })
}

fn read_approval(
    conn: &Connection,
    id: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<ApprovalRow>> {
    conn.prepare_cached(&format!("{APPROVAL_SELECT} WHERE id = ?2"))?
        .query_row(params![now_ms, id], approval_row)
        .optional()
}

fn grant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GrantRow> {
    Ok(GrantRow {
        id: r.get(0)?,
        session: r.get(1)?,
        function: r.get(2)?,
        matcher: r.get(3)?,
        created_by: r.get(4)?,
        created_ms: r.get(5)?,
        expires_ms: r.get(6)?,
        note: r.get(7)?,
    })
}

fn apply_op(tx: &Transaction<'_>, op: &WriteOp) -> rusqlite::Result<()> {
    match op {
        WriteOp::Session { name, at_ms } => {
            tx.prepare_cached(
                "INSERT INTO sessions (name, created_ms, last_ms) VALUES (?1, ?2, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_ms = MAX(last_ms, excluded.last_ms)",
            )?
            .execute(params![name, at_ms])?;
        }
        WriteOp::Execution(x) => {
            tx.prepare_cached(
                "INSERT INTO executions (id, session, origin, status, started_ms, ended_ms, code_hash, owner, summary)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                x.id, x.session, x.origin, x.status, x.started_ms, x.ended_ms, x.code_hash,
                x.owner, x.summary
            ])?;
        }
        WriteOp::Entry(en) => {
            tx.prepare_cached(
                "INSERT INTO entries (exec_id, seq, kind, at_ms, body, prev, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                en.exec_id, en.seq, en.kind, en.at_ms, en.body, en.prev, en.hash
            ])?;
            tx.prepare_cached("UPDATE executions SET entries = ?2, head = ?3 WHERE id = ?1")?
                .execute(params![en.exec_id, en.seq + 1, en.hash])?;
        }
        WriteOp::Api { fingerprint, body } => {
            tx.prepare_cached(
                "INSERT INTO apis (fingerprint, body) VALUES (?1, ?2) ON CONFLICT (fingerprint) DO NOTHING",
            )?
            .execute(params![fingerprint, body])?;
        }
        WriteOp::Status {
            id,
            status,
            ended_ms,
            summary,
        } => {
            tx.prepare_cached(
                "UPDATE executions SET status = ?2, ended_ms = ?3, summary = COALESCE(?4, summary) WHERE id = ?1",
            )?
            .execute(params![id, status, ended_ms, summary])?;
        }
    }
    Ok(())
}

fn current_version(tx: &Transaction<'_>, session: &str, key: &str) -> rusqlite::Result<i64> {
    Ok(tx
        .query_row(
            "SELECT version FROM state WHERE session = ?1 AND key = ?2",
            params![session, key],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn location(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    async fn apply(&self, ops: Vec<WriteOp>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.run(move |conn, path| {
            let e = err(path);
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(&e)?;
            for op in &ops {
                apply_op(&tx, op).map_err(&e)?;
            }
            tx.commit().map_err(&e)
        })
        .await
    }

    async fn executions(&self, q: &ExecQuery) -> Result<Vec<ExecRow>> {
        let q = q.clone();
        self.run(move |conn, path| {
            let e = err(path);
            let sql = format!(
                "SELECT {EXEC_COLUMNS} FROM executions
                 WHERE (?1 IS NULL OR session = ?1) AND (?2 IS NULL OR started_ms >= ?2)
                   AND (?3 IS NULL OR status = ?3)
                 ORDER BY started_ms DESC, id DESC LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(&e)?;
            let rows = stmt
                .query_map(
                    params![q.session, q.since_ms, q.status, q.limit.unwrap_or(-1)],
                    exec_row,
                )
                .map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
        })
        .await
    }

    async fn execution(&self, id: &str) -> Result<Option<ExecRow>> {
        let id = id.to_string();
        self.run(move |conn, path| {
            let e = err(path);
            let exact = conn
                .query_row(
                    &format!("SELECT {EXEC_COLUMNS} FROM executions WHERE id = ?1"),
                    [&id],
                    exec_row,
                )
                .optional()
                .map_err(&e)?;
            if exact.is_some() {
                return Ok(exact);
            }
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {EXEC_COLUMNS} FROM executions WHERE id LIKE ?1 ESCAPE '\\' LIMIT 2"
                ))
                .map_err(&e)?;
            let rows = stmt
                .query_map([like_prefix(&id)], exec_row)
                .map_err(&e)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(&e)?;
            one_of(&id, rows)
        })
        .await
    }

    async fn entries(&self, exec_id: &str) -> Result<Vec<EntryRow>> {
        let id = exec_id.to_string();
        self.run(move |conn, path| {
            let e = err(path);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT exec_id, seq, kind, at_ms, body, prev, hash FROM entries
                     WHERE exec_id = ?1 ORDER BY seq",
                )
                .map_err(&e)?;
            let rows = stmt
                .query_map([&id], |r| {
                    Ok(EntryRow {
                        exec_id: r.get(0)?,
                        seq: r.get(1)?,
                        kind: r.get(2)?,
                        at_ms: r.get(3)?,
                        body: r.get(4)?,
                        prev: r.get(5)?,
                        hash: r.get(6)?,
                    })
                })
                .map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
        })
        .await
    }

    async fn api(&self, fingerprint: &str) -> Result<Option<String>> {
        let fp = fingerprint.to_string();
        self.run(move |conn, path| {
            conn.query_row("SELECT body FROM apis WHERE fingerprint = ?1", [&fp], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err(path))
        })
        .await
    }

    async fn prune(&self, before_ms: i64) -> Result<u64> {
        self.run(move |conn, path| {
            let e = err(path);
            let tx = conn.transaction().map_err(&e)?;
            tx.execute(
                "DELETE FROM entries WHERE exec_id IN
                 (SELECT id FROM executions WHERE ended_ms IS NOT NULL AND ended_ms < ?1)",
                [before_ms],
            )
            .map_err(&e)?;
            let n = tx
                .execute(
                    "DELETE FROM executions WHERE ended_ms IS NOT NULL AND ended_ms < ?1",
                    [before_ms],
                )
                .map_err(&e)?;
            tx.execute(PRUNE_APPROVALS, [before_ms]).map_err(&e)?;
            tx.execute("DELETE FROM llm_calls WHERE at_ms < ?1", [before_ms])
                .map_err(&e)?;
            tx.execute(PRUNE_GRANTS, [before_ms]).map_err(&e)?;
            tx.commit().map_err(&e)?;
            Ok(n as u64)
        })
        .await
    }

    async fn sessions(&self) -> Result<Vec<SessionRow>> {
        self.run(|conn, path| {
            let e = err(path);
            let mut stmt = conn
                .prepare(&format!("{SESSION_SELECT} ORDER BY s.last_ms DESC, s.name"))
                .map_err(&e)?;
            let rows = stmt.query_map([], session_row).map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
        })
        .await
    }

    async fn session(&self, name: &str) -> Result<Option<SessionRow>> {
        let name = name.to_string();
        self.run(move |conn, path| {
            conn.query_row(
                &format!("{SESSION_SELECT} WHERE s.name = ?1"),
                [&name],
                session_row,
            )
            .optional()
            .map_err(err(path))
        })
        .await
    }

    async fn delete_session(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.run(move |conn, path| {
            let e = err(path);
            let tx = conn.transaction().map_err(&e)?;
            tx.execute(
                "DELETE FROM entries WHERE exec_id IN (SELECT id FROM executions WHERE session = ?1)",
                [&name],
            )
            .map_err(&e)?;
            let execs = tx
                .execute("DELETE FROM executions WHERE session = ?1", [&name])
                .map_err(&e)?;
            let keys = tx
                .execute("DELETE FROM state WHERE session = ?1", [&name])
                .map_err(&e)?;
            let decisions = tx
                .execute("DELETE FROM grants WHERE session = ?1", [&name])
                .map_err(&e)?
                + tx
                    .execute("DELETE FROM approvals WHERE session = ?1", [&name])
                    .map_err(&e)?;
            let sessions = tx
                .execute("DELETE FROM sessions WHERE name = ?1", [&name])
                .map_err(&e)?;
            tx.commit().map_err(&e)?;
            Ok(execs + keys + decisions + sessions > 0)
        })
        .await
    }

    async fn state_get(&self, session: &str, key: &str) -> Result<Option<StateItem>> {
        let (session, key) = (session.to_string(), key.to_string());
        self.run(move |conn, path| {
            conn.prepare_cached(
                "SELECT key, value, version, updated_ms FROM state WHERE session = ?1 AND key = ?2",
            )
            .and_then(|mut s| s.query_row(params![session, key], state_row).optional())
            .map_err(err(path))
        })
        .await
    }

    async fn state_list(&self, session: &str, prefix: &str) -> Result<Vec<StateItem>> {
        let (session, prefix) = (session.to_string(), like_prefix(prefix));
        self.run(move |conn, path| {
            let e = err(path);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT key, value, version, updated_ms FROM state
                     WHERE session = ?1 AND key LIKE ?2 ESCAPE '\\' ORDER BY key",
                )
                .map_err(&e)?;
            let rows = stmt
                .query_map(params![session, prefix], state_row)
                .map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
        })
        .await
    }

    async fn state_put(
        &self,
        session: &str,
        key: &str,
        value: &str,
        expect: Expect,
        max_session_bytes: u64,
        at_ms: i64,
    ) -> Result<i64> {
        let (session, key, value) = (session.to_string(), key.to_string(), value.to_string());
        self.run(move |conn, path| {
            let e = err(path);
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(&e)?;
            let found = current_version(&tx, &session, &key).map_err(&e)?;
            check_expect(&session, &key, expect, found)?;
            let others: i64 = tx
                .query_row(
                    "SELECT COALESCE(SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(CAST(value AS BLOB))), 0) FROM state
                     WHERE session = ?1 AND key <> ?2",
                    params![session, key],
                    |r| r.get(0),
                )
                .map_err(&e)?;
            let bytes = others as u64 + key.len() as u64 + value.len() as u64;
            if bytes > max_session_bytes {
                return Err(StoreError::SessionFull {
                    session,
                    bytes,
                    limit: max_session_bytes,
                });
            }
            tx.execute(
                "INSERT INTO sessions (name, created_ms, last_ms) VALUES (?1, ?2, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_ms = MAX(last_ms, excluded.last_ms)",
                params![session, at_ms],
            )
            .map_err(&e)?;
            let version = found + 1;
            tx.execute(
                "INSERT INTO state (session, key, value, version, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (session, key) DO UPDATE SET value = excluded.value,
                   version = excluded.version, updated_ms = excluded.updated_ms",
                params![session, key, value, version, at_ms],
            )
            .map_err(&e)?;
            tx.commit().map_err(&e)?;
            Ok(version)
        })
        .await
    }

    async fn state_delete(&self, session: &str, key: &str, expect: Expect) -> Result<bool> {
        let (session, key) = (session.to_string(), key.to_string());
        self.run(move |conn, path| {
            let e = err(path);
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(&e)?;
            let found = current_version(&tx, &session, &key).map_err(&e)?;
            check_expect(&session, &key, expect, found)?;
            let n = tx
                .execute(
                    "DELETE FROM state WHERE session = ?1 AND key = ?2",
                    params![session, key],
                )
                .map_err(&e)?;
            tx.commit().map_err(&e)?;
            Ok(n > 0)
        })
        .await
    }

    async fn approval_create(&self, row: &ApprovalRow) -> Result<()> {
        check_new_approval(row)?;
        let row = row.clone();
        self.run(move |conn, path| {
            let n = conn
                .prepare_cached(
                    "INSERT INTO approvals (id, kind, execution, session, subject, reasons,
                       created_ms, expires_ms, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')
                     ON CONFLICT (id) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        row.id,
                        row.kind,
                        row.execution,
                        row.session,
                        row.subject,
                        row.reasons,
                        row.created_ms,
                        row.expires_ms
                    ])
                })
                .map_err(err(path))?;
            if n == 0 {
                return Err(StoreError::AlreadyExists {
                    what: "approval",
                    id: row.id,
                });
            }
            Ok(())
        })
        .await
    }

    async fn approval(&self, id: &str, now_ms: i64) -> Result<Option<ApprovalRow>> {
        let id = id.to_string();
        self.run(move |conn, path| read_approval(conn, &id, now_ms).map_err(err(path)))
            .await
    }

    async fn approvals(&self, q: &ApprovalQuery, now_ms: i64) -> Result<Vec<ApprovalRow>> {
        let q = q.clone();
        self.run(move |conn, path| {
            let e = err(path);
            let sql = format!(
                "SELECT * FROM ({APPROVAL_SELECT}) AS a
                 WHERE (?2 IS NULL OR a.status = ?2) AND (?3 IS NULL OR a.execution = ?3)
                 ORDER BY a.created_ms DESC, a.id DESC LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(&e)?;
            let rows = stmt
                .query_map(
                    params![now_ms, q.status, q.execution, q.limit.unwrap_or(-1)],
                    approval_row,
                )
                .map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
        })
        .await
    }

    async fn approval_decide(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<ApprovalRow> {
        let (id, by, note) = (id.to_string(), by.to_string(), note.map(str::to_string));
        let status = if approve { "approved" } else { "denied" };
        self.run(move |conn, path| {
            let e = err(path);
            // IMMEDIATE: the write lock first, so deciders in other processes take turns.
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(&e)?;
            let won = tx
                .execute(DECIDE, params![id, status, by, now_ms, note])
                .map_err(&e)?;
            if won == 0 {
                tx.execute(EXPIRE, params![id, now_ms]).map_err(&e)?;
            }
            let row = read_approval(&tx, &id, now_ms).map_err(&e)?;
            tx.commit().map_err(&e)?;
            match row {
                Some(row) if won == 1 => Ok(row),
                other => Err(decide_failure(&id, other)),
            }
        })
        .await
    }

    async fn approval_use(&self, id: &str, now_ms: i64) -> Result<bool> {
        let id = id.to_string();
        self.run(move |conn, path| {
            let n = conn
                .prepare_cached(USE_PLAN)
                .and_then(|mut s| s.execute(params![id, now_ms]))
                .map_err(err(path))?;
            Ok(n == 1)
        })
        .await
    }

    async fn grant_create(&self, row: &GrantRow) -> Result<()> {
        let row = row.clone();
        self.run(move |conn, path| {
            let n = conn
                .prepare_cached(
                    "INSERT INTO grants (id, session, function, matcher, created_by, created_ms,
                       expires_ms, note)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (id) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        row.id,
                        row.session,
                        row.function,
                        row.matcher,
                        row.created_by,
                        row.created_ms,
                        row.expires_ms,
                        row.note
                    ])
                })
                .map_err(err(path))?;
            if n == 0 {
                return Err(StoreError::AlreadyExists {
                    what: "grant",
                    id: row.id,
                });
            }
            Ok(())
        })
        .await
    }

    async fn grants(&self, session: &str, now_ms: i64) -> Result<Vec<GrantRow>> {
        let session = session.to_string();
        self.run(move |conn, path| {
            let e = err(path);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, session, function, matcher, created_by, created_ms, expires_ms, note
                     FROM grants WHERE session = ?1 AND (expires_ms IS NULL OR expires_ms > ?2)
                     ORDER BY created_ms, id",
                )
                .map_err(&e)?;
            let rows = stmt
                .query_map(params![session, now_ms], grant_row)
                .map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
        })
        .await
    }

    async fn execution_claim(&self, id: &str, from: &[&str], owner: &str) -> Result<bool> {
        let mut values = vec![id.to_string(), owner.to_string()];
        values.extend(from.iter().map(|s| s.to_string()));
        let places: Vec<String> = (3..=values.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "UPDATE executions SET status = 'running', owner = ?2, ended_ms = NULL
             WHERE id = ?1 AND status IN ({})",
            places.join(", ")
        );
        if from.is_empty() {
            return Ok(false);
        }
        self.run(move |conn, path| {
            let n = conn
                .execute(&sql, rusqlite::params_from_iter(values.iter()))
                .map_err(err(path))?;
            Ok(n > 0)
        })
        .await
    }

    async fn grant_revoke(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.run(move |conn, path| {
            let n = conn
                .execute("DELETE FROM grants WHERE id = ?1", [&id])
                .map_err(err(path))?;
            Ok(n > 0)
        })
        .await
    }

    async fn node_beat(&self, owner: &str, now_ms: i64) -> Result<()> {
        let owner = owner.to_string();
        self.run(move |conn, path| {
            conn.execute(
                "INSERT INTO nodes (owner, seen_ms) VALUES (?1, ?2)
                 ON CONFLICT (owner) DO UPDATE SET seen_ms = excluded.seen_ms",
                rusqlite::params![owner, now_ms],
            )
            .map_err(err(path))?;
            Ok(())
        })
        .await
    }

    async fn llm_calls_add(&self, rows: &[LlmCallRow]) -> Result<()> {
        let rows = rows.to_vec();
        self.run(move |conn, path| {
            let e = err(path);
            let tx = conn.transaction().map_err(&e)?;
            for r in &rows {
                tx.execute(
                    "INSERT INTO llm_calls (id, at_ms, origin, provider, model, ok, input_tokens,
                       output_tokens, cached_tokens, latency_ms, cost_usd)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (id) DO NOTHING",
                    rusqlite::params![
                        r.id,
                        r.at_ms,
                        r.origin,
                        r.provider,
                        r.model,
                        i64::from(r.ok),
                        r.input_tokens,
                        r.output_tokens,
                        r.cached_tokens,
                        r.latency_ms,
                        r.cost_usd
                    ],
                )
                .map_err(&e)?;
            }
            tx.commit().map_err(&e)
        })
        .await
    }

    async fn llm_calls(&self, since_ms: i64, limit: i64) -> Result<Vec<LlmCallRow>> {
        self.run(move |conn, path| {
            let e = err(path);
            let mut stmt = conn
                .prepare(
                    "SELECT id, at_ms, origin, provider, model, ok, input_tokens, output_tokens,
                       cached_tokens, latency_ms, cost_usd
                     FROM llm_calls WHERE at_ms >= ?1 ORDER BY at_ms, id LIMIT ?2",
                )
                .map_err(&e)?;
            let rows = stmt
                .query_map(rusqlite::params![since_ms, limit], |r| {
                    Ok(LlmCallRow {
                        id: r.get(0)?,
                        at_ms: r.get(1)?,
                        origin: r.get(2)?,
                        provider: r.get(3)?,
                        model: r.get(4)?,
                        ok: r.get::<_, i64>(5)? != 0,
                        input_tokens: r.get(6)?,
                        output_tokens: r.get(7)?,
                        cached_tokens: r.get(8)?,
                        latency_ms: r.get(9)?,
                        cost_usd: r.get(10)?,
                    })
                })
                .map_err(&e)?;
            rows.collect::<std::result::Result<Vec<_>, _>>().map_err(&e)
        })
        .await
    }

    async fn token_add(&self, row: &TokenRow) -> Result<bool> {
        let row = row.clone();
        self.run(move |conn, path| {
            let n = conn
                .execute(
                    "INSERT INTO tokens (name, hash, role, created_ms, created_by)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    rusqlite::params![row.name, row.hash, row.role, row.created_ms, row.created_by],
                )
                .map_err(err(path))?;
            Ok(n > 0)
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>> {
        self.run(|conn, path| {
            let e = err(path);
            let mut stmt = conn
                .prepare(
                    "SELECT name, hash, role, created_ms, created_by FROM tokens ORDER BY name",
                )
                .map_err(&e)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(TokenRow {
                        name: r.get(0)?,
                        hash: r.get(1)?,
                        role: r.get(2)?,
                        created_ms: r.get(3)?,
                        created_by: r.get(4)?,
                    })
                })
                .map_err(&e)?;
            rows.collect::<std::result::Result<Vec<_>, _>>().map_err(&e)
        })
        .await
    }

    async fn token_remove(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.run(move |conn, path| {
            let n = conn
                .execute("DELETE FROM tokens WHERE name = ?1", [&name])
                .map_err(err(path))?;
            Ok(n > 0)
        })
        .await
    }

    async fn node_seen(&self, owner: &str) -> Result<Option<i64>> {
        let owner = owner.to_string();
        self.run(move |conn, path| {
            conn.query_row(
                "SELECT seen_ms FROM nodes WHERE owner = ?1",
                [&owner],
                |r| r.get(0),
            )
            .optional()
            .map_err(err(path))
        })
        .await
    }
}

/// Decide approval `?1` (`?2` the status, `?3` by, `?4` now, `?5` the note) if it is still
/// pending: one row changed, or none.
const DECIDE: &str = "UPDATE approvals
    SET status = ?2, decided_by = ?3, decided_ms = ?4, note = ?5
    WHERE id = ?1 AND status = 'pending' AND expires_ms > ?4";

/// Use up the approved plan `?1`, unless it expired by `?2` (now).
const USE_PLAN: &str = "UPDATE approvals SET status = 'applied'
    WHERE id = ?1 AND kind = 'plan' AND status = 'approved' AND expires_ms > ?2";

/// Mark approval `?1` expired if it is pending past its expiry at `?2` (now).
const EXPIRE: &str = "UPDATE approvals SET status = 'expired' WHERE id = ?1 AND status = 'pending' AND expires_ms <= ?2";

/// The approvals `prune(?1)` deletes: created before the cut, and decided or expired by then.
const PRUNE_APPROVALS: &str = "DELETE FROM approvals
    WHERE created_ms < ?1 AND (status <> 'pending' OR expires_ms <= ?1)";

/// The grants `prune(?1)` deletes: those that expired before the cut.
const PRUNE_GRANTS: &str = "DELETE FROM grants WHERE expires_ms IS NOT NULL AND expires_ms < ?1";

/// The one row a prefix matched; several is an error naming them.
pub(crate) fn one_of(id: &str, mut rows: Vec<ExecRow>) -> Result<Option<ExecRow>> {
    match rows.len() {
        0 | 1 => Ok(rows.pop()),
        _ => Err(StoreError::NotFound(format!(
            "`{id}` is the start of several execution ids ({}, ...)\nhint: give more of the id",
            rows.iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SCHEMA_VERSION;

    /// A database made by the first migration only, as the first isola wrote it, is brought to
    /// the current version when opened, and keeps what it held.
    #[tokio::test]
    async fn a_version_1_database_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, &path, &MIGRATIONS[..1]).unwrap();
            conn.execute_batch(crate::migrations::v1::DATA).unwrap();
            let version: i64 = conn
                .query_row("SELECT version FROM isola_schema", [], |r| r.get(0))
                .unwrap();
            assert_eq!(version, 1);
        }
        let store = SqliteStore::open(&path).await.unwrap();
        crate::migrations::v1::check_upgraded(&store).await;
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let versions: Vec<i64> = conn
            .prepare("SELECT version FROM isola_schema")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(versions, [SCHEMA_VERSION]);
    }
}
