//! Where Isola keeps what must outlive a process: the journal of executions, sessions, and the
//! `state` of scripts. One [`Store`] trait, two implementations: [`SqliteStore`] (the default, a
//! file under the user's data directory, WAL) and `PostgresStore` (several Isola nodes sharing
//! one database; cargo feature `postgres`, on by default).
//!
//! The store knows rows, not what they mean: the journal's entry format lives in
//! `isola-journal`; here an entry is an opaque JSON body with its hash-chain fields. Every write
//! is a batch ([`WriteOp`]s) applied in one transaction, so a writer can commit many entries with
//! one flush (group commit).
//!
//! ```no_run
//! # async fn demo() -> Result<(), isola_store::StoreError> {
//! let store = isola_store::open(&isola_store::StoreUrl::parse("sqlite:/tmp/isola.db")?).await?;
//! let runs = store.executions(&isola_store::ExecQuery::default()).await?;
//! # let _ = (store, runs); Ok(()) }
//! ```
//!
//! Schemas are versioned ([`SCHEMA_VERSION`]); migrations run when a store is opened, and a
//! database whose schema is newer than this binary knows is refused ([`StoreError::SchemaTooNew`]).

mod migrations;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;
#[cfg(feature = "postgres")]
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use migrations::SCHEMA_VERSION;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL (`--store`, `ISOLA_STORE`, `isola.store`) is not one Isola knows.
    #[error(
        "`{url}` is not a store: {problem}\nhint: use sqlite:PATH, postgres://USER@HOST/DB, or none"
    )]
    BadUrl { url: String, problem: String },
    /// The database was written by a newer Isola.
    #[error(
        "the store at {location} has schema version {found}, newer than this isola knows ({known})\nhint: upgrade isola, or point --store at another database"
    )]
    SchemaTooNew {
        location: String,
        found: i64,
        known: i64,
    },
    /// SQLite failed.
    #[error("SQLite store {location}: {message}")]
    Sqlite { location: String, message: String },
    /// PostgreSQL failed.
    #[error("PostgreSQL store {location}: {message}")]
    Postgres { location: String, message: String },
    /// A state write expected another version of the key (optimistic versioning).
    #[error(
        "state key `{key}` of session `{session}` was changed by another execution (expected version {expected}, found {found})\nhint: read it again and retry the write"
    )]
    Conflict {
        session: String,
        key: String,
        /// 0 means "absent".
        expected: i64,
        found: i64,
    },
    /// A state write would make the session's state larger than allowed.
    #[error(
        "state of session `{session}` would hold {bytes} bytes, more than its limit of {limit}"
    )]
    SessionFull {
        session: String,
        bytes: u64,
        limit: u64,
    },
    /// An id given by a user matches nothing, or several things.
    #[error("{0}")]
    NotFound(String),
    /// A row with this id is already stored (`what`: `approval`, `grant`).
    #[error("{what} `{id}` already exists\nhint: give the new {what} another id")]
    AlreadyExists { what: &'static str, id: String },
    /// A row that may not be stored as it is (`what`: `approval`, `grant`).
    #[error("{what} `{id}` cannot be stored: {problem}")]
    Invalid {
        what: &'static str,
        id: String,
        problem: String,
    },
    /// There is no approval with this id (never created, or pruned).
    #[error(
        "there is no approval `{id}`\nhint: it may have been pruned; list the approvals to see their ids"
    )]
    ApprovalNotFound { id: String },
    /// The approval was decided before (by another person, process or node).
    #[error("approval `{id}` was already {status}{}", decided_by(.by.as_deref()))]
    ApprovalDecided {
        id: String,
        /// `approved` or `denied`.
        status: String,
        by: Option<String>,
    },
    /// The approval's time ran out before anyone decided it.
    #[error(
        "approval `{id}` expired before it was decided\nhint: the call it held was refused; run it again to ask anew"
    )]
    ApprovalExpired { id: String },
    /// The store's blocking work could not run.
    #[error("the store's worker thread failed: {0}")]
    Worker(String),
}

/// ` by alice` for [`StoreError::ApprovalDecided`], or nothing when who decided is unknown.
fn decided_by(by: Option<&str>) -> String {
    by.map(|b| format!(" by {b}")).unwrap_or_default()
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which store to use, parsed from `sqlite:PATH`, `postgres://...` (or `postgresql://`),
/// `none`/`memory`/`off`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
    /// No store: journaling is off.
    None,
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |problem: &str| StoreError::BadUrl {
            url: url.to_string(),
            problem: problem.to_string(),
        };
        let url = url.trim();
        match url {
            "none" | "memory" | "off" => return Ok(StoreUrl::None),
            "" => return Err(bad("it is empty")),
            _ => {}
        }
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("sqlite: needs a file path"));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_string()));
        }
        if url.contains("://") {
            return Err(bad("unknown scheme"));
        }
        Err(bad("no scheme"))
    }

    /// The default: `$XDG_DATA_HOME/isola/isola.db`, else `~/.local/share/isola/isola.db`.
    pub fn default_sqlite() -> Self {
        StoreUrl::Sqlite(default_data_dir().join("isola.db"))
    }

    /// What to show a user: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            StoreUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
            StoreUrl::Postgres(u) => redact_password(u),
            StoreUrl::None => "none".into(),
        }
    }
}

/// Isola's data directory: `$XDG_DATA_HOME/isola`, else `$HOME/.local/share/isola`.
pub fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| Path::new(&h).join(".local/share"))
        })
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("isola")
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((auth, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Open the store `url` names, running its migrations. `None` for [`StoreUrl::None`].
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(u) => Ok(Arc::new(PostgresStore::connect(u).await?)),
        #[cfg(not(feature = "postgres"))]
        StoreUrl::Postgres(u) => Err(StoreError::BadUrl {
            url: redact_password(u),
            problem: "this isola was built without the `postgres` feature".into(),
        }),
        StoreUrl::None => Err(StoreError::BadUrl {
            url: "none".into(),
            problem: "journaling is off, there is no store to open".into(),
        }),
    }
}

/// One execution, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRow {
    pub id: String,
    pub session: Option<String>,
    /// Who started it: `cli`, `mcp:<client>`, `agent`, `http`.
    pub origin: String,
    /// `running`, `ok`, `failed`, `interrupted`.
    pub status: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub code_hash: String,
    /// The process that runs it (`host:pid:start`), to tell a crashed one from a live one.
    pub owner: String,
    /// How many entries it has, and the hash of the last one (what `verify` checks the chain
    /// against, so a deleted last entry is seen too).
    pub entries: i64,
    pub head: String,
    /// A short JSON summary (calls, error kind) written when it ends.
    pub summary: Option<String>,
}

/// One journal entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRow {
    pub exec_id: String,
    /// 0, 1, 2, ... within the execution.
    pub seq: i64,
    pub kind: String,
    pub at_ms: i64,
    /// The entry's JSON.
    pub body: String,
    /// The previous entry's hash ("" for the first).
    pub prev: String,
    pub hash: String,
}

/// A session: executions grouped under a name, and their state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub name: String,
    pub created_ms: i64,
    pub last_ms: i64,
    pub executions: i64,
    pub state_keys: i64,
    pub state_bytes: i64,
}

/// One key of a session's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateItem {
    pub key: String,
    /// JSON text.
    pub value: String,
    /// 1 for the first write, +1 on each.
    pub version: i64,
    pub updated_ms: i64,
}

/// What a state write expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there (a blind write).
    Any,
    /// The key is absent.
    Absent,
    /// The key is at this version.
    Version(i64),
}

impl Expect {
    fn as_i64(self) -> i64 {
        match self {
            Expect::Any => -1,
            Expect::Absent => 0,
            Expect::Version(v) => v,
        }
    }
}

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Create the session if new; note its last use.
    Session { name: String, at_ms: i64 },
    /// A new execution (its `entries` and `head` are ignored: entries set them).
    Execution(ExecRow),
    /// Append an entry; the execution's `entries` and `head` follow.
    Entry(EntryRow),
    /// The API an execution ran against (the tool lists), kept once per fingerprint.
    Api { fingerprint: String, body: String },
    /// The execution ended (or was found interrupted).
    Status {
        id: String,
        status: String,
        ended_ms: i64,
        summary: Option<String>,
    },
}

/// A token of `isola serve` kept in the store (`isola tokens`): never its secret, only the
/// secret's hash (`sha256:<hex>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub name: String,
    pub hash: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    pub created_ms: i64,
    pub created_by: String,
}

/// One call of the agent to a model: what usage by model and day is counted from.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmCallRow {
    /// Unique: `<run>-<n>`.
    pub id: String,
    pub at_ms: i64,
    /// Who ran the agent (`cli:<user>`, `http:<token>`).
    pub origin: String,
    pub provider: String,
    pub model: String,
    /// Answered (or from the response cache); `false`: failed, retried or passed on.
    pub ok: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub latency_ms: f64,
    /// `None` when the model has no price.
    pub cost_usd: Option<f64>,
}

/// Which executions to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecQuery {
    pub session: Option<String>,
    pub since_ms: Option<i64>,
    pub status: Option<String>,
    pub limit: Option<i64>,
}

/// A request for a person's decision: a held tool call (`kind` `call`) or a whole plan (`plan`).
/// The waiting execution polls [`Store::approval`]; a person decides with
/// [`Store::approval_decide`], possibly from another process or node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRow {
    /// Chosen by the caller; unique.
    pub id: String,
    /// `call` or `plan`.
    pub kind: String,
    pub execution: Option<String>,
    pub session: Option<String>,
    /// JSON text: what is to be decided (function, arguments, effect, script, line...). The
    /// store does not interpret it.
    pub subject: String,
    /// JSON text: an array of strings, the policy's reasons.
    pub reasons: String,
    pub created_ms: i64,
    /// Undecided at this time (or later), it is `expired`.
    pub expires_ms: i64,
    /// `pending`, `approved`, `denied` or `expired`; a plan once applied, `applied`.
    pub status: String,
    /// Who decided (`None` while pending, and for an expired one).
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    /// The decider's reason.
    pub note: Option<String>,
}

/// Which approvals to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApprovalQuery {
    /// `pending`, `approved`, `denied` or `expired` (as of the listing's `now_ms`).
    pub status: Option<String>,
    pub execution: Option<String>,
    pub limit: Option<i64>,
}

/// A standing decision for the rest of a session: calls of `function` whose arguments match
/// `matcher` need no approval ("all fs.writeFile under out/").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRow {
    /// Chosen by the caller; unique.
    pub id: String,
    pub session: String,
    /// The function it allows, e.g. `fs.writeFile`.
    pub function: String,
    /// JSON text: `{}` matches any call; `{"path": "out/"}` a call whose argument `path` is a
    /// string starting with `out/`. The store does not interpret it.
    pub matcher: String,
    pub created_by: String,
    pub created_ms: i64,
    /// `None`: until the session is deleted (or the grant revoked).
    pub expires_ms: Option<i64>,
    pub note: Option<String>,
}

/// The store. Every method is one transaction.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// Where it is, for messages (no password).
    fn location(&self) -> String;
    /// Apply a batch in one transaction: all of it or none.
    async fn apply(&self, ops: Vec<WriteOp>) -> Result<()>;
    async fn executions(&self, query: &ExecQuery) -> Result<Vec<ExecRow>>;
    /// The execution `id`, or the only one whose id starts with it.
    async fn execution(&self, id: &str) -> Result<Option<ExecRow>>;
    /// Take over execution `id` to continue it (a resume): if its status is one of `from`, it
    /// becomes `running` under `owner`, atomically across processes and nodes (of concurrent
    /// claimers exactly one gets `true`).
    async fn execution_claim(&self, id: &str, from: &[&str], owner: &str) -> Result<bool>;
    /// Its entries in order.
    async fn entries(&self, exec_id: &str) -> Result<Vec<EntryRow>>;
    /// The node `owner` (an execution's owner) is alive at `now_ms`.
    async fn node_beat(&self, owner: &str, now_ms: i64) -> Result<()>;
    /// When the node `owner` last said it was alive; `None`: it never did (not a node).
    async fn node_seen(&self, owner: &str) -> Result<Option<i64>>;
    /// Record calls to models (an id already kept is kept as it was).
    async fn llm_calls_add(&self, rows: &[LlmCallRow]) -> Result<()>;
    /// The calls to models made at or after `since_ms`, oldest first, at most `limit`.
    async fn llm_calls(&self, since_ms: i64, limit: i64) -> Result<Vec<LlmCallRow>>;
    /// Keep a token; `false`: one of that name (or that secret) is kept already.
    async fn token_add(&self, row: &TokenRow) -> Result<bool>;
    /// The tokens kept, by name.
    async fn tokens(&self) -> Result<Vec<TokenRow>>;
    /// Forget token `name`; `false`: there was none.
    async fn token_remove(&self, name: &str) -> Result<bool>;
    /// The API stored under `fingerprint`.
    async fn api(&self, fingerprint: &str) -> Result<Option<String>>;
    /// Delete executions that ended before `before_ms`, with their entries; how many executions.
    /// Also deleted, not counted: approvals created before `before_ms` that were decided or had
    /// expired by then, and grants that expired before it.
    async fn prune(&self, before_ms: i64) -> Result<u64>;
    async fn sessions(&self) -> Result<Vec<SessionRow>>;
    async fn session(&self, name: &str) -> Result<Option<SessionRow>>;
    /// Delete a session: its state, executions and entries, its grants and approvals. `false`
    /// if there was none of these.
    async fn delete_session(&self, name: &str) -> Result<bool>;
    async fn state_get(&self, session: &str, key: &str) -> Result<Option<StateItem>>;
    /// Keys starting with `prefix`, in order.
    async fn state_list(&self, session: &str, prefix: &str) -> Result<Vec<StateItem>>;
    /// Write `value` (JSON text) if the key is as expected; the new version. The session's
    /// state may not grow beyond `max_session_bytes` (keys + values).
    async fn state_put(
        &self,
        session: &str,
        key: &str,
        value: &str,
        expect: Expect,
        max_session_bytes: u64,
        at_ms: i64,
    ) -> Result<i64>;
    /// Delete the key if it is as expected; whether it existed.
    async fn state_delete(&self, session: &str, key: &str, expect: Expect) -> Result<bool>;
    /// Store a new approval request. Its `status` must be `pending` and it must be undecided
    /// ([`StoreError::Invalid`]); an id already stored is [`StoreError::AlreadyExists`].
    async fn approval_create(&self, row: &ApprovalRow) -> Result<()>;
    /// The approval `id` as of `now_ms`: a pending one whose `expires_ms` has come reads as
    /// `expired`.
    async fn approval(&self, id: &str, now_ms: i64) -> Result<Option<ApprovalRow>>;
    /// Approvals as of `now_ms` (expiry as in [`Store::approval`]), newest first.
    async fn approvals(&self, query: &ApprovalQuery, now_ms: i64) -> Result<Vec<ApprovalRow>>;
    /// Approve (or deny) the approval `id`, if it is still pending at `now_ms`; the decided row.
    /// Atomic across processes and nodes: of concurrent deciders exactly one wins, the others
    /// get [`StoreError::ApprovalDecided`]. One that comes too late gets
    /// [`StoreError::ApprovalExpired`] (and the row is marked `expired`), an unknown id
    /// [`StoreError::ApprovalNotFound`].
    async fn approval_decide(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<ApprovalRow>;
    /// Use up the approved plan `id` (an approval of kind `plan`): `approved` becomes
    /// `applied` if it was approved and has not expired at `now_ms`. Whether it was; of
    /// concurrent users exactly one gets `true`.
    async fn approval_use(&self, id: &str, now_ms: i64) -> Result<bool>;
    /// Store a new grant; an id already stored is [`StoreError::AlreadyExists`].
    async fn grant_create(&self, row: &GrantRow) -> Result<()>;
    /// The grants of `session` not expired at `now_ms`, oldest first.
    async fn grants(&self, session: &str, now_ms: i64) -> Result<Vec<GrantRow>>;
    /// Delete the grant `id`; whether there was one.
    async fn grant_revoke(&self, id: &str) -> Result<bool>;
}

/// Why a new approval may not be stored as it is, if it may not.
fn check_new_approval(row: &ApprovalRow) -> Result<()> {
    let problem = if row.status != "pending" {
        format!(
            "its status is `{}`, a new approval is `pending`",
            row.status
        )
    } else if row.decided_by.is_some() || row.decided_ms.is_some() || row.note.is_some() {
        "it is already decided (decided_by, decided_ms or note is set)".to_string()
    } else {
        return Ok(());
    };
    Err(StoreError::Invalid {
        what: "approval",
        id: row.id.clone(),
        problem,
    })
}

/// Why a decision of `id` did not take, from the row as it is now (expiry applied).
fn decide_failure(id: &str, now: Option<ApprovalRow>) -> StoreError {
    match now {
        None => StoreError::ApprovalNotFound { id: id.to_string() },
        Some(row) if row.status == "expired" || row.status == "pending" => {
            StoreError::ApprovalExpired { id: id.to_string() }
        }
        Some(row) => StoreError::ApprovalDecided {
            id: id.to_string(),
            status: row.status,
            by: row.decided_by,
        },
    }
}

/// The conflict of a write that expected `expect` and found `found` (0: absent).
fn check_expect(session: &str, key: &str, expect: Expect, found: i64) -> Result<()> {
    let ok = match expect {
        Expect::Any => true,
        Expect::Absent => found == 0,
        Expect::Version(v) => found == v,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            session: session.to_string(),
            key: key.to_string(),
            expected: expect.as_i64().max(0),
            found,
        })
    }
}

/// A `LIKE` pattern matching strings that start with `prefix`, `\` as the escape.
fn like_prefix(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            StoreUrl::parse("sqlite:/tmp/x.db").unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///tmp/x.db").unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(StoreUrl::parse("none").unwrap(), StoreUrl::None);
        assert_eq!(StoreUrl::parse("memory").unwrap(), StoreUrl::None);
        assert!(matches!(
            StoreUrl::parse("postgresql://u@h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        let e = StoreUrl::parse("mysql://x").unwrap_err().to_string();
        assert!(e.contains("unknown scheme"), "{e}");
        assert!(StoreUrl::parse("isola.db").is_err());
        assert_eq!(
            StoreUrl::Postgres("postgres://u:pw@h/db".into()).display(),
            "postgres://u:***@h/db"
        );
        assert_eq!(like_prefix("a_b%"), "a\\_b\\%%");
    }
}
