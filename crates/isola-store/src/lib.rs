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
    /// The store's blocking work could not run.
    #[error("the store's worker thread failed: {0}")]
    Worker(String),
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

/// Which executions to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecQuery {
    pub session: Option<String>,
    pub since_ms: Option<i64>,
    pub status: Option<String>,
    pub limit: Option<i64>,
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
    /// Its entries in order.
    async fn entries(&self, exec_id: &str) -> Result<Vec<EntryRow>>;
    /// The API stored under `fingerprint`.
    async fn api(&self, fingerprint: &str) -> Result<Option<String>>;
    /// Delete executions that ended before `before_ms`, with their entries; how many.
    async fn prune(&self, before_ms: i64) -> Result<u64>;
    async fn sessions(&self) -> Result<Vec<SessionRow>>;
    async fn session(&self, name: &str) -> Result<Option<SessionRow>>;
    /// Delete a session: its state, executions and entries. `false` if there was none.
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
