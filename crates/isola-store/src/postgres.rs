//! The PostgreSQL store (tokio-postgres; TLS with libpq's `sslmode` and `sslrootcert`, see
//! [`crate::tls`]). Two connections: transactions take turns on one (a journal batch is one
//! transaction of six statements, sent together), single statements are pipelined on the other,
//! so reads never wait for a commit. Migrations take an advisory lock, so nodes starting together
//! migrate once.

use std::collections::HashMap;

use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement, Transaction};

use crate::migrations::{MIGRATIONS, VERSION_TABLE};
use crate::sqlite::one_of;
use crate::tls;
use crate::{
    ApprovalQuery, ApprovalRow, EntryRow, ExecQuery, ExecRow, Expect, GrantRow, LlmCallRow, Result,
    SessionRow, StateItem, Store, StoreError, TokenRow, WriteOp, check_expect, check_new_approval,
    decide_failure, like_prefix, redact_password,
};

pub struct PostgresStore {
    location: String,
    /// Transactions (a batch of the journal, a state write, a decision), one at a time.
    writer: Mutex<Client>,
    /// Single statements (reads, one-row writes), pipelined by tokio-postgres: no lock, and
    /// never queued behind the writer's transaction (its commit waits for the disk).
    reader: Client,
    /// The batch's statements, prepared once on `writer`.
    batch: BatchStatements,
}

/// The advisory lock migrations hold (any constant both nodes agree on).
const MIGRATION_LOCK: i64 = 0x1501_a570;

impl PostgresStore {
    /// Connect to `url` (`postgres://user:pw@host:port/db`, or `postgres:///db?host=/run/dir`
    /// for a unix socket) and migrate.
    pub async fn connect(url: &str) -> Result<Self> {
        let location = redact_password(url);
        let writer = open(url, &location).await?;
        migrate(&location, &writer, MIGRATIONS).await?;
        let reader = open(url, &location).await?;
        let batch = BatchStatements::prepare(&writer)
            .await
            .map_err(|e| StoreError::Postgres {
                location: location.clone(),
                message: pg_message(&e),
            })?;
        Ok(Self {
            location,
            writer: Mutex::new(writer),
            reader,
            batch,
        })
    }

    fn err(&self) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
        move |e| StoreError::Postgres {
            location: self.location.clone(),
            message: pg_message(&e),
        }
    }
}

/// A connection to `url` (its driver task spawned), TLS as `url` says.
async fn open(url: &str, location: &str) -> Result<Client> {
    let failed = |message: String| StoreError::Postgres {
        location: location.to_string(),
        message,
    };
    let params = tls::split(url).map_err(&failed)?;
    let cannot = |e: tokio_postgres::Error| failed(format!("cannot connect: {}", pg_message(&e)));
    let loc = location.to_string();
    let ended = move |e: tokio_postgres::Error| {
        tracing::error!(store = %loc, "PostgreSQL connection ended: {e}");
    };
    let client = if params.enabled {
        let connector = tls::connector(&params).map_err(&failed)?;
        let (client, connection) = tokio_postgres::connect(&params.url, connector)
            .await
            .map_err(cannot)?;
        tokio::spawn(async move { connection.await.map_err(ended) });
        client
    } else {
        let (client, connection) = tokio_postgres::connect(&params.url, NoTls)
            .await
            .map_err(cannot)?;
        tokio::spawn(async move { connection.await.map_err(ended) });
        client
    };
    Ok(client)
}

/// Bring the database to version `migrations.len()` (always [`MIGRATIONS`], but for tests
/// that make an older database).
async fn migrate(location: &str, client: &Client, migrations: &[&str]) -> Result<()> {
    let e = |e: tokio_postgres::Error| StoreError::Postgres {
        location: location.to_string(),
        message: pg_message(&e),
    };
    let known = migrations.len() as i64;
    // One statement at a time on this connection, so a plain BEGIN/COMMIT is the transaction.
    client.batch_execute("BEGIN").await.map_err(e)?;
    let done = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(e)?;
        client.batch_execute(VERSION_TABLE).await.map_err(e)?;
        let found: Option<i64> = client
            .query_one("SELECT MAX(version) FROM isola_schema", &[])
            .await
            .map_err(e)?
            .get(0);
        let found = found.unwrap_or(0);
        if found > known {
            return Err(StoreError::SchemaTooNew {
                location: location.to_string(),
                found,
                known,
            });
        }
        for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
            client.batch_execute(sql).await.map_err(e)?;
            tracing::info!(store = %location, version = i + 1, "store migrated");
        }
        if found < known {
            client
                .execute("DELETE FROM isola_schema", &[])
                .await
                .map_err(e)?;
            client
                .execute("INSERT INTO isola_schema (version) VALUES ($1)", &[&known])
                .await
                .map_err(e)?;
        }
        Ok(())
    }
    .await;
    let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
    client.batch_execute(end).await.map_err(e)?;
    done
}

/// A batch of the journal's writes as six statements whatever its size (each one's rows as
/// arrays, `UNNEST`ed), prepared once and sent together: one round trip for the lot, then the
/// commit. Their order keeps what refers to what: sessions, APIs and executions before the
/// entries, the entries' heads, then the statuses.
struct BatchStatements {
    sessions: Statement,
    apis: Statement,
    executions: Statement,
    entries: Statement,
    heads: Statement,
    statuses: Statement,
}

impl BatchStatements {
    async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        let (sessions, apis, executions, entries, heads, statuses) = tokio::try_join!(
            client.prepare(
                "INSERT INTO sessions (name, created_ms, last_ms)
                 SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[])
                 ON CONFLICT (name) DO UPDATE SET last_ms = GREATEST(sessions.last_ms, excluded.last_ms)"
            ),
            client.prepare(
                "INSERT INTO apis (fingerprint, body) SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[])
                 ON CONFLICT (fingerprint) DO NOTHING"
            ),
            client.prepare(
                "INSERT INTO executions (id, session, origin, status, started_ms, ended_ms, code_hash, owner, summary)
                 SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[],
                                      $6::BIGINT[], $7::TEXT[], $8::TEXT[], $9::TEXT[])"
            ),
            client.prepare(
                "INSERT INTO entries (exec_id, seq, kind, at_ms, body, prev, hash)
                 SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[],
                                      $6::TEXT[], $7::TEXT[])"
            ),
            client.prepare(
                "UPDATE executions AS x SET entries = u.n, head = u.h
                 FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[]) AS u(id, n, h) WHERE x.id = u.id"
            ),
            client.prepare(
                "UPDATE executions AS x SET status = u.s, ended_ms = u.e, summary = COALESCE(u.m, x.summary)
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[]) AS u(id, s, e, m)
                 WHERE x.id = u.id"
            ),
        )?;
        Ok(Self {
            sessions,
            apis,
            executions,
            entries,
            heads,
            statuses,
        })
    }

    /// Write `ops` in `tx`.
    async fn run(
        &self,
        tx: &Transaction<'_>,
        ops: &[WriteOp],
    ) -> Result<(), tokio_postgres::Error> {
        let g = Grouped::of(ops);
        let s = &g.sessions;
        let (s_names, s_first, s_last) = (
            s.iter().map(|x| x.0).collect::<Vec<_>>(),
            s.iter().map(|x| x.1).collect::<Vec<_>>(),
            s.iter().map(|x| x.2).collect::<Vec<_>>(),
        );
        let a_fps: Vec<&str> = g.apis.iter().map(|a| a.0).collect();
        let a_bodies: Vec<&str> = g.apis.iter().map(|a| a.1).collect();
        let x = &g.executions;
        let x_ids: Vec<&str> = x.iter().map(|r| r.id.as_str()).collect();
        let x_sessions: Vec<Option<&str>> = x.iter().map(|r| r.session.as_deref()).collect();
        let x_origins: Vec<&str> = x.iter().map(|r| r.origin.as_str()).collect();
        let x_statuses: Vec<&str> = x.iter().map(|r| r.status.as_str()).collect();
        let x_started: Vec<i64> = x.iter().map(|r| r.started_ms).collect();
        let x_ended: Vec<Option<i64>> = x.iter().map(|r| r.ended_ms).collect();
        let x_hashes: Vec<&str> = x.iter().map(|r| r.code_hash.as_str()).collect();
        let x_owners: Vec<&str> = x.iter().map(|r| r.owner.as_str()).collect();
        let x_summaries: Vec<Option<&str>> = x.iter().map(|r| r.summary.as_deref()).collect();
        let e = &g.entries;
        let e_ids: Vec<&str> = e.iter().map(|r| r.exec_id.as_str()).collect();
        let e_seqs: Vec<i64> = e.iter().map(|r| r.seq).collect();
        let e_kinds: Vec<&str> = e.iter().map(|r| r.kind.as_str()).collect();
        let e_ats: Vec<i64> = e.iter().map(|r| r.at_ms).collect();
        let e_bodies: Vec<&str> = e.iter().map(|r| r.body.as_str()).collect();
        let e_prevs: Vec<&str> = e.iter().map(|r| r.prev.as_str()).collect();
        let e_hashes: Vec<&str> = e.iter().map(|r| r.hash.as_str()).collect();
        let h = &g.heads;
        let h_ids: Vec<&str> = h.iter().map(|r| r.exec_id.as_str()).collect();
        let h_counts: Vec<i64> = h.iter().map(|r| r.seq + 1).collect();
        let h_heads: Vec<&str> = h.iter().map(|r| r.hash.as_str()).collect();
        let t = &g.statuses;
        let t_ids: Vec<&str> = t.iter().map(|r| r.0).collect();
        let t_statuses: Vec<&str> = t.iter().map(|r| r.1).collect();
        let t_ended: Vec<i64> = t.iter().map(|r| r.2).collect();
        let t_summaries: Vec<Option<&str>> = t.iter().map(|r| r.3).collect();
        type Params<'p> = Vec<&'p (dyn ToSql + Sync)>;
        let sessions: Params = vec![&s_names, &s_first, &s_last];
        let apis: Params = vec![&a_fps, &a_bodies];
        let executions: Params = vec![
            &x_ids,
            &x_sessions,
            &x_origins,
            &x_statuses,
            &x_started,
            &x_ended,
            &x_hashes,
            &x_owners,
            &x_summaries,
        ];
        let entries: Params = vec![
            &e_ids, &e_seqs, &e_kinds, &e_ats, &e_bodies, &e_prevs, &e_hashes,
        ];
        let heads: Params = vec![&h_ids, &h_counts, &h_heads];
        let statuses: Params = vec![&t_ids, &t_statuses, &t_ended, &t_summaries];
        // Sent in this order (try_join polls its futures in order), executed in it.
        tokio::try_join!(
            execute_if(tx, s.len(), &self.sessions, &sessions),
            execute_if(tx, a_fps.len(), &self.apis, &apis),
            execute_if(tx, x.len(), &self.executions, &executions),
            execute_if(tx, e.len(), &self.entries, &entries),
            execute_if(tx, h.len(), &self.heads, &heads),
            execute_if(tx, t.len(), &self.statuses, &statuses),
        )?;
        Ok(())
    }
}

/// `statement` with `params`, unless it has no rows.
async fn execute_if(
    tx: &Transaction<'_>,
    rows: usize,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    match rows {
        0 => Ok(0),
        _ => tx.execute(statement, params).await,
    }
}

/// A batch's writes by kind, each statement's rows distinct (an `ON CONFLICT DO UPDATE` or an
/// `UPDATE ... FROM` may not meet a row twice).
#[derive(Default)]
struct Grouped<'a> {
    /// Name, first and last use.
    sessions: Vec<(&'a str, i64, i64)>,
    apis: Vec<(&'a str, &'a str)>,
    executions: Vec<&'a ExecRow>,
    entries: Vec<&'a EntryRow>,
    /// Each execution's last entry.
    heads: Vec<&'a EntryRow>,
    /// Id, status, end, summary: the last of each execution's, with its last summary.
    statuses: Vec<(&'a str, &'a str, i64, Option<&'a str>)>,
}

impl<'a> Grouped<'a> {
    fn of(ops: &'a [WriteOp]) -> Self {
        let mut g = Grouped::default();
        // Where each session, API, head and status is in its list.
        let mut at: HashMap<(u8, &'a str), usize> = HashMap::new();
        for op in ops {
            match op {
                WriteOp::Session { name, at_ms } => match at.get(&(0, name.as_str())) {
                    Some(&i) => {
                        let s = &mut g.sessions[i];
                        s.1 = s.1.min(*at_ms);
                        s.2 = s.2.max(*at_ms);
                    }
                    None => {
                        at.insert((0, name), g.sessions.len());
                        g.sessions.push((name, *at_ms, *at_ms));
                    }
                },
                WriteOp::Api { fingerprint, body } => {
                    if at.insert((1, fingerprint), g.apis.len()).is_none() {
                        g.apis.push((fingerprint, body));
                    }
                }
                WriteOp::Execution(x) => g.executions.push(x),
                WriteOp::Entry(en) => {
                    g.entries.push(en);
                    match at.get(&(2, en.exec_id.as_str())) {
                        Some(&i) if g.heads[i].seq < en.seq => g.heads[i] = en,
                        Some(_) => {}
                        None => {
                            at.insert((2, &en.exec_id), g.heads.len());
                            g.heads.push(en);
                        }
                    }
                }
                WriteOp::Status {
                    id,
                    status,
                    ended_ms,
                    summary,
                } => match at.get(&(3, id.as_str())) {
                    Some(&i) => {
                        let t = &mut g.statuses[i];
                        t.1 = status;
                        t.2 = *ended_ms;
                        t.3 = summary.as_deref().or(t.3);
                    }
                    None => {
                        at.insert((3, id), g.statuses.len());
                        g.statuses.push((id, status, *ended_ms, summary.as_deref()));
                    }
                },
            }
        }
        g
    }
}

/// The server's message (and detail) rather than tokio-postgres' "db error".
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            // The causes (a TLS handshake's reason, an I/O error) are not in the top message.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let more = cause.to_string();
                if !text.contains(&more) {
                    text = format!("{text}: {more}");
                }
                source = cause.source();
            }
            text
        }
    }
}

const EXEC_COLUMNS: &str =
    "id, session, origin, status, started_ms, ended_ms, code_hash, owner, entries, head, summary";

fn exec_row(r: &Row) -> ExecRow {
    ExecRow {
        id: r.get(0),
        session: r.get(1),
        origin: r.get(2),
        status: r.get(3),
        started_ms: r.get(4),
        ended_ms: r.get(5),
        code_hash: r.get(6),
        owner: r.get(7),
        entries: r.get(8),
        head: r.get(9),
        summary: r.get(10),
    }
}

fn state_row(r: &Row) -> StateItem {
    StateItem {
        key: r.get(0),
        value: r.get(1),
        version: r.get(2),
        updated_ms: r.get(3),
    }
}

const SESSION_SELECT: &str = "SELECT s.name, s.created_ms, s.last_ms,
    (SELECT COUNT(*) FROM executions e WHERE e.session = s.name),
    (SELECT COUNT(*) FROM state t WHERE t.session = s.name),
    (SELECT COALESCE(SUM(OCTET_LENGTH(t.key) + OCTET_LENGTH(t.value)), 0)::BIGINT FROM state t WHERE t.session = s.name)
    FROM sessions s";

fn session_row(r: &Row) -> SessionRow {
    SessionRow {
        name: r.get(0),
        created_ms: r.get(1),
        last_ms: r.get(2),
        executions: r.get(3),
        state_keys: r.get(4),
        state_bytes: r.get(5),
    }
}

/// An approval's columns, its status as of `$1` (the caller's now): a pending one past its
/// expiry reads as `expired`.
const APPROVAL_SELECT: &str = "SELECT id, kind, execution, session, subject, reasons, created_ms,
    expires_ms,
    CASE WHEN status = 'pending' AND expires_ms <= $1::BIGINT THEN 'expired' ELSE status END AS status,
    decided_by, decided_ms, note FROM approvals";

fn approval_row(r: &Row) -> ApprovalRow {
    ApprovalRow {
        id: r.get(0),
        kind: r.get(1),
        execution: r.get(2),
        session: r.get(3),
        subject: r.get(4),
        reasons: r.get(5),
        created_ms: r.get(6),
        expires_ms: r.get(7),
        status: r.get(8),
        decided_by: r.get(9),
        decided_ms: r.get(10),
        note: r.get(11),
    }
}

fn grant_row(r: &Row) -> GrantRow {
    GrantRow {
        id: r.get(0),
        session: r.get(1),
        function: r.get(2),
        matcher: r.get(3),
        created_by: r.get(4),
        created_ms: r.get(5),
        expires_ms: r.get(6),
        note: r.get(7),
    }
}

const UPSERT_SESSION: &str = "INSERT INTO sessions (name, created_ms, last_ms) VALUES ($1, $2, $2)
     ON CONFLICT (name) DO UPDATE SET last_ms = GREATEST(sessions.last_ms, excluded.last_ms)";

async fn current_version(
    tx: &Transaction<'_>,
    session: &str,
    key: &str,
) -> Result<i64, tokio_postgres::Error> {
    // FOR UPDATE: a concurrent writer of the same key waits for this transaction.
    Ok(tx
        .query_opt(
            "SELECT version FROM state WHERE session = $1 AND key = $2 FOR UPDATE",
            &[&session, &key],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0))
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn apply(&self, ops: Vec<WriteOp>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let e = self.err();
        let mut client = self.writer.lock().await;
        let tx = client.transaction().await.map_err(&e)?;
        self.batch.run(&tx, &ops).await.map_err(&e)?;
        tx.commit().await.map_err(&e)
    }

    async fn executions(&self, q: &ExecQuery) -> Result<Vec<ExecRow>> {
        let client = &self.reader;
        let rows = client
            .query(
                &format!(
                    "SELECT {EXEC_COLUMNS} FROM executions
                     WHERE ($1::TEXT IS NULL OR session = $1) AND ($2::BIGINT IS NULL OR started_ms >= $2)
                       AND ($3::TEXT IS NULL OR status = $3)
                     ORDER BY started_ms DESC, id DESC LIMIT $4"
                ),
                &[&q.session, &q.since_ms, &q.status, &q.limit],
            )
            .await
            .map_err(self.err())?;
        Ok(rows.iter().map(exec_row).collect())
    }

    async fn execution(&self, id: &str) -> Result<Option<ExecRow>> {
        let client = &self.reader;
        let exact = client
            .query_opt(
                &format!("SELECT {EXEC_COLUMNS} FROM executions WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(self.err())?;
        if let Some(row) = exact {
            return Ok(Some(exec_row(&row)));
        }
        let rows = client
            .query(
                &format!(
                    "SELECT {EXEC_COLUMNS} FROM executions WHERE id LIKE $1 ESCAPE '\\' LIMIT 2"
                ),
                &[&like_prefix(id)],
            )
            .await
            .map_err(self.err())?;
        one_of(id, rows.iter().map(exec_row).collect())
    }

    async fn entries(&self, exec_id: &str) -> Result<Vec<EntryRow>> {
        let client = &self.reader;
        let rows = client
            .query(
                "SELECT exec_id, seq, kind, at_ms, body, prev, hash FROM entries
                 WHERE exec_id = $1 ORDER BY seq",
                &[&exec_id],
            )
            .await
            .map_err(self.err())?;
        Ok(rows
            .iter()
            .map(|r| EntryRow {
                exec_id: r.get(0),
                seq: r.get(1),
                kind: r.get(2),
                at_ms: r.get(3),
                body: r.get(4),
                prev: r.get(5),
                hash: r.get(6),
            })
            .collect())
    }

    async fn api(&self, fingerprint: &str) -> Result<Option<String>> {
        let client = &self.reader;
        let row = client
            .query_opt(
                "SELECT body FROM apis WHERE fingerprint = $1",
                &[&fingerprint],
            )
            .await
            .map_err(self.err())?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn prune(&self, before_ms: i64) -> Result<u64> {
        let e = self.err();
        let mut client = self.writer.lock().await;
        let tx = client.transaction().await.map_err(&e)?;
        tx.execute(
            "DELETE FROM entries WHERE exec_id IN
             (SELECT id FROM executions WHERE ended_ms IS NOT NULL AND ended_ms < $1)",
            &[&before_ms],
        )
        .await
        .map_err(&e)?;
        let n = tx
            .execute(
                "DELETE FROM executions WHERE ended_ms IS NOT NULL AND ended_ms < $1",
                &[&before_ms],
            )
            .await
            .map_err(&e)?;
        // Approvals created before the cut and decided or expired by then; grants expired
        // before it.
        for sql in [
            "DELETE FROM approvals
             WHERE created_ms < $1 AND (status <> 'pending' OR expires_ms <= $1)",
            "DELETE FROM grants WHERE expires_ms IS NOT NULL AND expires_ms < $1",
            "DELETE FROM llm_calls WHERE at_ms < $1",
        ] {
            tx.execute(sql, &[&before_ms]).await.map_err(&e)?;
        }
        tx.commit().await.map_err(&e)?;
        Ok(n)
    }

    async fn sessions(&self) -> Result<Vec<SessionRow>> {
        let client = &self.reader;
        let rows = client
            .query(
                &format!("{SESSION_SELECT} ORDER BY s.last_ms DESC, s.name"),
                &[],
            )
            .await
            .map_err(self.err())?;
        Ok(rows.iter().map(session_row).collect())
    }

    async fn session(&self, name: &str) -> Result<Option<SessionRow>> {
        let client = &self.reader;
        let row = client
            .query_opt(&format!("{SESSION_SELECT} WHERE s.name = $1"), &[&name])
            .await
            .map_err(self.err())?;
        Ok(row.as_ref().map(session_row))
    }

    async fn delete_session(&self, name: &str) -> Result<bool> {
        let e = self.err();
        let mut client = self.writer.lock().await;
        let tx = client.transaction().await.map_err(&e)?;
        tx.execute(
            "DELETE FROM entries WHERE exec_id IN (SELECT id FROM executions WHERE session = $1)",
            &[&name],
        )
        .await
        .map_err(&e)?;
        let mut n = 0;
        for sql in [
            "DELETE FROM executions WHERE session = $1",
            "DELETE FROM state WHERE session = $1",
            "DELETE FROM grants WHERE session = $1",
            "DELETE FROM approvals WHERE session = $1",
            "DELETE FROM sessions WHERE name = $1",
        ] {
            n += tx.execute(sql, &[&name]).await.map_err(&e)?;
        }
        tx.commit().await.map_err(&e)?;
        Ok(n > 0)
    }

    async fn state_get(&self, session: &str, key: &str) -> Result<Option<StateItem>> {
        let client = &self.reader;
        let row = client
            .query_opt(
                "SELECT key, value, version, updated_ms FROM state WHERE session = $1 AND key = $2",
                &[&session, &key],
            )
            .await
            .map_err(self.err())?;
        Ok(row.as_ref().map(state_row))
    }

    async fn state_list(&self, session: &str, prefix: &str) -> Result<Vec<StateItem>> {
        let client = &self.reader;
        let rows = client
            .query(
                "SELECT key, value, version, updated_ms FROM state
                 WHERE session = $1 AND key LIKE $2 ESCAPE '\\' ORDER BY key COLLATE \"C\"",
                &[&session, &like_prefix(prefix)],
            )
            .await
            .map_err(self.err())?;
        Ok(rows.iter().map(state_row).collect())
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
        let e = self.err();
        let mut client = self.writer.lock().await;
        let tx = client.transaction().await.map_err(&e)?;
        // Writers of one session take turns: the size check and the version check hold.
        tx.execute(UPSERT_SESSION, &[&session, &at_ms])
            .await
            .map_err(&e)?;
        tx.execute(
            "SELECT 1 FROM sessions WHERE name = $1 FOR UPDATE",
            &[&session],
        )
        .await
        .map_err(&e)?;
        let found = current_version(&tx, session, key).await.map_err(&e)?;
        check_expect(session, key, expect, found)?;
        let others: i64 = tx
            .query_one(
                "SELECT COALESCE(SUM(OCTET_LENGTH(key) + OCTET_LENGTH(value)), 0)::BIGINT FROM state
                 WHERE session = $1 AND key <> $2",
                &[&session, &key],
            )
            .await
            .map_err(&e)?
            .get(0);
        let bytes = others as u64 + key.len() as u64 + value.len() as u64;
        if bytes > max_session_bytes {
            return Err(StoreError::SessionFull {
                session: session.to_string(),
                bytes,
                limit: max_session_bytes,
            });
        }
        let version = found + 1;
        tx.execute(
            "INSERT INTO state (session, key, value, version, updated_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (session, key) DO UPDATE SET value = excluded.value,
               version = excluded.version, updated_ms = excluded.updated_ms",
            &[&session, &key, &value, &version, &at_ms],
        )
        .await
        .map_err(&e)?;
        tx.commit().await.map_err(&e)?;
        Ok(version)
    }

    async fn state_delete(&self, session: &str, key: &str, expect: Expect) -> Result<bool> {
        let e = self.err();
        let mut client = self.writer.lock().await;
        let tx = client.transaction().await.map_err(&e)?;
        let found = current_version(&tx, session, key).await.map_err(&e)?;
        check_expect(session, key, expect, found)?;
        let n = tx
            .execute(
                "DELETE FROM state WHERE session = $1 AND key = $2",
                &[&session, &key],
            )
            .await
            .map_err(&e)?;
        tx.commit().await.map_err(&e)?;
        Ok(n > 0)
    }

    async fn approval_create(&self, row: &ApprovalRow) -> Result<()> {
        check_new_approval(row)?;
        let client = &self.reader;
        let n = client
            .execute(
                "INSERT INTO approvals (id, kind, execution, session, subject, reasons,
                   created_ms, expires_ms, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &row.id,
                    &row.kind,
                    &row.execution,
                    &row.session,
                    &row.subject,
                    &row.reasons,
                    &row.created_ms,
                    &row.expires_ms,
                ],
            )
            .await
            .map_err(self.err())?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                what: "approval",
                id: row.id.clone(),
            });
        }
        Ok(())
    }

    async fn approval(&self, id: &str, now_ms: i64) -> Result<Option<ApprovalRow>> {
        let client = &self.reader;
        let row = client
            .query_opt(&format!("{APPROVAL_SELECT} WHERE id = $2"), &[&now_ms, &id])
            .await
            .map_err(self.err())?;
        Ok(row.as_ref().map(approval_row))
    }

    async fn approvals(&self, q: &ApprovalQuery, now_ms: i64) -> Result<Vec<ApprovalRow>> {
        let client = &self.reader;
        let rows = client
            .query(
                &format!(
                    "SELECT * FROM ({APPROVAL_SELECT}) AS a
                     WHERE ($2::TEXT IS NULL OR a.status = $2) AND ($3::TEXT IS NULL OR a.execution = $3)
                     ORDER BY a.created_ms DESC, a.id COLLATE \"C\" DESC LIMIT $4"
                ),
                &[&now_ms, &q.status, &q.execution, &q.limit],
            )
            .await
            .map_err(self.err())?;
        Ok(rows.iter().map(approval_row).collect())
    }

    async fn approval_decide(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<ApprovalRow> {
        let e = self.err();
        let status = if approve { "approved" } else { "denied" };
        let mut client = self.writer.lock().await;
        let tx = client.transaction().await.map_err(&e)?;
        // A concurrent decider of the same row waits for this one's row lock, then finds the
        // row no longer pending: one of them changes it.
        let won = tx
            .execute(
                "UPDATE approvals
                 SET status = $2, decided_by = $3, decided_ms = $4, note = $5
                 WHERE id = $1 AND status = 'pending' AND expires_ms > $4",
                &[&id, &status, &by, &now_ms, &note],
            )
            .await
            .map_err(&e)?;
        if won == 0 {
            tx.execute(
                "UPDATE approvals SET status = 'expired'
                 WHERE id = $1 AND status = 'pending' AND expires_ms <= $2",
                &[&id, &now_ms],
            )
            .await
            .map_err(&e)?;
        }
        let row = tx
            .query_opt(&format!("{APPROVAL_SELECT} WHERE id = $2"), &[&now_ms, &id])
            .await
            .map_err(&e)?
            .as_ref()
            .map(approval_row);
        tx.commit().await.map_err(&e)?;
        match row {
            Some(row) if won == 1 => Ok(row),
            other => Err(decide_failure(id, other)),
        }
    }

    async fn approval_use(&self, id: &str, now_ms: i64) -> Result<bool> {
        let client = &self.reader;
        let n = client
            .execute(
                "UPDATE approvals SET status = 'applied'
                 WHERE id = $1 AND kind = 'plan' AND status = 'approved' AND expires_ms > $2",
                &[&id, &now_ms],
            )
            .await
            .map_err(self.err())?;
        Ok(n == 1)
    }

    async fn grant_create(&self, row: &GrantRow) -> Result<()> {
        let client = &self.reader;
        let n = client
            .execute(
                "INSERT INTO grants (id, session, function, matcher, created_by, created_ms,
                   expires_ms, note)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &row.id,
                    &row.session,
                    &row.function,
                    &row.matcher,
                    &row.created_by,
                    &row.created_ms,
                    &row.expires_ms,
                    &row.note,
                ],
            )
            .await
            .map_err(self.err())?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                what: "grant",
                id: row.id.clone(),
            });
        }
        Ok(())
    }

    async fn grants(&self, session: &str, now_ms: i64) -> Result<Vec<GrantRow>> {
        let client = &self.reader;
        let rows = client
            .query(
                "SELECT id, session, function, matcher, created_by, created_ms, expires_ms, note
                 FROM grants WHERE session = $1 AND (expires_ms IS NULL OR expires_ms > $2)
                 ORDER BY created_ms, id COLLATE \"C\"",
                &[&session, &now_ms],
            )
            .await
            .map_err(self.err())?;
        Ok(rows.iter().map(grant_row).collect())
    }

    async fn execution_claim(&self, id: &str, from: &[&str], owner: &str) -> Result<bool> {
        let client = &self.reader;
        let from: Vec<String> = from.iter().map(|s| s.to_string()).collect();
        let n = client
            .execute(
                "UPDATE executions SET status = 'running', owner = $2, ended_ms = NULL
                 WHERE id = $1 AND status = ANY($3)",
                &[&id, &owner, &from],
            )
            .await
            .map_err(self.err())?;
        Ok(n > 0)
    }

    async fn node_beat(&self, owner: &str, now_ms: i64) -> Result<()> {
        let client = &self.reader;
        client
            .execute(
                "INSERT INTO nodes (owner, seen_ms) VALUES ($1, $2)
                 ON CONFLICT (owner) DO UPDATE SET seen_ms = excluded.seen_ms",
                &[&owner, &now_ms],
            )
            .await
            .map_err(self.err())?;
        Ok(())
    }

    async fn llm_calls_add(&self, rows: &[LlmCallRow]) -> Result<()> {
        let e = self.err();
        let mut client = self.writer.lock().await;
        let tx = client.transaction().await.map_err(&e)?;
        for r in rows {
            tx.execute(
                "INSERT INTO llm_calls (id, at_ms, origin, provider, model, ok, input_tokens,
                   output_tokens, cached_tokens, latency_ms, cost_usd)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &r.id,
                    &r.at_ms,
                    &r.origin,
                    &r.provider,
                    &r.model,
                    &i64::from(r.ok),
                    &r.input_tokens,
                    &r.output_tokens,
                    &r.cached_tokens,
                    &r.latency_ms,
                    &r.cost_usd,
                ],
            )
            .await
            .map_err(&e)?;
        }
        tx.commit().await.map_err(&e)
    }

    async fn llm_calls(&self, since_ms: i64, limit: i64) -> Result<Vec<LlmCallRow>> {
        let client = &self.reader;
        let rows = client
            .query(
                "SELECT id, at_ms, origin, provider, model, ok, input_tokens, output_tokens,
                   cached_tokens, latency_ms, cost_usd
                 FROM llm_calls WHERE at_ms >= $1 ORDER BY at_ms, id LIMIT $2",
                &[&since_ms, &limit],
            )
            .await
            .map_err(self.err())?;
        Ok(rows
            .iter()
            .map(|r| LlmCallRow {
                id: r.get(0),
                at_ms: r.get(1),
                origin: r.get(2),
                provider: r.get(3),
                model: r.get(4),
                ok: r.get::<_, i64>(5) != 0,
                input_tokens: r.get(6),
                output_tokens: r.get(7),
                cached_tokens: r.get(8),
                latency_ms: r.get(9),
                cost_usd: r.get(10),
            })
            .collect())
    }

    async fn token_add(&self, row: &TokenRow) -> Result<bool> {
        let client = &self.reader;
        let n = client
            .execute(
                "INSERT INTO tokens (name, hash, role, created_ms, created_by)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    &row.name,
                    &row.hash,
                    &row.role,
                    &row.created_ms,
                    &row.created_by,
                ],
            )
            .await
            .map_err(self.err())?;
        Ok(n > 0)
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>> {
        let client = &self.reader;
        let rows = client
            .query(
                "SELECT name, hash, role, created_ms, created_by FROM tokens ORDER BY name",
                &[],
            )
            .await
            .map_err(self.err())?;
        Ok(rows
            .iter()
            .map(|r| TokenRow {
                name: r.get(0),
                hash: r.get(1),
                role: r.get(2),
                created_ms: r.get(3),
                created_by: r.get(4),
            })
            .collect())
    }

    async fn token_remove(&self, name: &str) -> Result<bool> {
        let client = &self.reader;
        let n = client
            .execute("DELETE FROM tokens WHERE name = $1", &[&name])
            .await
            .map_err(self.err())?;
        Ok(n > 0)
    }

    async fn node_seen(&self, owner: &str) -> Result<Option<i64>> {
        let client = &self.reader;
        let row = client
            .query_opt("SELECT seen_ms FROM nodes WHERE owner = $1", &[&owner])
            .await
            .map_err(self.err())?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn grant_revoke(&self, id: &str) -> Result<bool> {
        let client = &self.reader;
        let n = client
            .execute("DELETE FROM grants WHERE id = $1", &[&id])
            .await
            .map_err(self.err())?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SCHEMA_VERSION;
    use isola_test_support::postgres::PgCluster;

    /// A database made by the first migration only, as the first isola wrote it, is brought to
    /// the current version when a node connects, and keeps what it held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_1_database_is_migrated_and_keeps_its_data() {
        let mut pg = PgCluster::start().unwrap();
        let url = pg.create_db("v1").unwrap();
        {
            let location = redact_password(&url);
            let client = open(&url, &location).await.unwrap();
            migrate(&location, &client, &MIGRATIONS[..1]).await.unwrap();
            client
                .batch_execute(crate::migrations::v1::DATA)
                .await
                .unwrap();
            let version: i64 = client
                .query_one("SELECT version FROM isola_schema", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(version, 1);
        }
        let store = PostgresStore::connect(&url).await.unwrap();
        crate::migrations::v1::check_upgraded(&store).await;
        let client = &store.reader;
        let versions: Vec<i64> = client
            .query("SELECT version FROM isola_schema", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, [SCHEMA_VERSION]);
    }
}
