//! The store conformance suite: the same checks against SQLite and a real PostgreSQL server (a
//! throwaway cluster from `isola_test_support::postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use isola_store::{
    EntryRow, ExecQuery, ExecRow, Expect, SCHEMA_VERSION, SqliteStore, Store, StoreError, StoreUrl,
    WriteOp,
};
use isola_test_support::postgres::PgCluster;

fn exec(id: &str, session: Option<&str>, started_ms: i64) -> ExecRow {
    ExecRow {
        id: id.into(),
        session: session.map(Into::into),
        origin: "cli".into(),
        status: "running".into(),
        started_ms,
        ended_ms: None,
        code_hash: "h".into(),
        owner: "host:1:1".into(),
        entries: 0,
        head: String::new(),
        summary: None,
    }
}

fn entry(exec_id: &str, seq: i64, prev: &str) -> EntryRow {
    EntryRow {
        exec_id: exec_id.into(),
        seq,
        kind: "log".into(),
        at_ms: 1000 + seq,
        body: format!("{{\"seq\":{seq},\"text\":\"é ✓\"}}"),
        prev: prev.into(),
        hash: format!("hash{seq}"),
    }
}

/// Everything a store must do, in one pass over a fresh store.
async fn conformance(store: Arc<dyn Store>) {
    // Executions, entries, sessions in one batch.
    store
        .apply(vec![
            WriteOp::Session {
                name: "demo".into(),
                at_ms: 100,
            },
            WriteOp::Execution(exec("ex-aaa1", Some("demo"), 100)),
            WriteOp::Entry(entry("ex-aaa1", 0, "")),
            WriteOp::Entry(entry("ex-aaa1", 1, "hash0")),
            WriteOp::Execution(exec("ex-bbb2", None, 200)),
            WriteOp::Api {
                fingerprint: "fp1".into(),
                body: "[1]".into(),
            },
            WriteOp::Api {
                fingerprint: "fp1".into(),
                body: "[2]".into(),
            },
        ])
        .await
        .unwrap();
    let a = store.execution("ex-aaa1").await.unwrap().unwrap();
    assert_eq!((a.entries, a.head.as_str()), (2, "hash1"));
    // An API is kept once: the first body stays.
    assert_eq!(store.api("fp1").await.unwrap().as_deref(), Some("[1]"));
    assert_eq!(store.api("fp2").await.unwrap(), None);
    assert_eq!(a.session.as_deref(), Some("demo"));
    let entries = store.entries("ex-aaa1").await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1], entry("ex-aaa1", 1, "hash0"));
    assert!(store.entries("nope").await.unwrap().is_empty());

    // Lookup by a unique prefix; an ambiguous one names the candidates.
    assert_eq!(
        store.execution("ex-b").await.unwrap().unwrap().id,
        "ex-bbb2"
    );
    let e = store.execution("ex-").await.unwrap_err().to_string();
    assert!(e.contains("several execution ids"), "{e}");
    assert!(store.execution("zzz").await.unwrap().is_none());
    // `_` and `%` are not wildcards.
    assert!(store.execution("ex_").await.unwrap().is_none());

    // A batch is all or nothing: a duplicate entry fails it, and its first op is not kept.
    let bad = store
        .apply(vec![
            WriteOp::Execution(exec("ex-ccc3", None, 300)),
            WriteOp::Entry(entry("ex-aaa1", 1, "dup")),
        ])
        .await;
    assert!(bad.is_err());
    assert!(store.execution("ex-ccc3").await.unwrap().is_none());
    assert_eq!(store.entries("ex-aaa1").await.unwrap().len(), 2);

    // Listing: newest first, filters.
    let all = store.executions(&ExecQuery::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["ex-bbb2", "ex-aaa1"]
    );
    let q = |session: Option<&str>, since: Option<i64>, status: Option<&str>| ExecQuery {
        session: session.map(Into::into),
        since_ms: since,
        status: status.map(Into::into),
        limit: None,
    };
    let ids = |rows: Vec<ExecRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .executions(&q(Some("demo"), None, None))
            .await
            .unwrap()),
        ["ex-aaa1"]
    );
    assert_eq!(
        ids(store.executions(&q(None, Some(150), None)).await.unwrap()),
        ["ex-bbb2"]
    );
    store
        .apply(vec![WriteOp::Status {
            id: "ex-aaa1".into(),
            status: "ok".into(),
            ended_ms: 150,
            summary: Some("{\"calls\":0}".into()),
        }])
        .await
        .unwrap();
    assert_eq!(
        ids(store.executions(&q(None, None, Some("ok"))).await.unwrap()),
        ["ex-aaa1"]
    );
    assert_eq!(
        ids(store
            .executions(&ExecQuery {
                limit: Some(1),
                ..ExecQuery::default()
            })
            .await
            .unwrap()),
        ["ex-bbb2"]
    );
    let a = store.execution("ex-aaa1").await.unwrap().unwrap();
    assert_eq!(
        (a.ended_ms, a.summary.as_deref()),
        (Some(150), Some("{\"calls\":0}"))
    );

    // State: versions, optimistic writes, listing by prefix, limits.
    let max = 1024;
    assert!(store.state_get("demo", "k").await.unwrap().is_none());
    let v1 = store
        .state_put("demo", "k", "1", Expect::Absent, max, 10)
        .await
        .unwrap();
    assert_eq!(v1, 1);
    let err = store
        .state_put("demo", "k", "2", Expect::Absent, max, 11)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { found: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("changed by another execution"));
    assert_eq!(
        store
            .state_put("demo", "k", "2", Expect::Version(1), max, 12)
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .state_put("demo", "k", "3", Expect::Version(1), max, 13)
            .await
            .is_err()
    );
    assert_eq!(
        store
            .state_put("demo", "k", "[3]", Expect::Any, max, 14)
            .await
            .unwrap(),
        3
    );
    let item = store.state_get("demo", "k").await.unwrap().unwrap();
    assert_eq!((item.value.as_str(), item.version), ("[3]", 3));
    for key in ["user:2", "user:1", "user_x", "other"] {
        store
            .state_put("demo", key, "true", Expect::Any, max, 15)
            .await
            .unwrap();
    }
    let keys =
        |items: Vec<isola_store::StateItem>| items.into_iter().map(|i| i.key).collect::<Vec<_>>();
    assert_eq!(
        keys(store.state_list("demo", "user:").await.unwrap()),
        ["user:1", "user:2"]
    );
    assert_eq!(keys(store.state_list("demo", "").await.unwrap()).len(), 5);
    // Another session sees nothing of this one.
    assert!(store.state_list("other", "").await.unwrap().is_empty());
    let full = store
        .state_put("demo", "big", &"x".repeat(2000), Expect::Any, max, 16)
        .await
        .unwrap_err();
    assert!(matches!(full, StoreError::SessionFull { .. }), "{full}");
    assert!(store.state_get("demo", "big").await.unwrap().is_none());
    // Delete: with the wrong version, then right.
    assert!(
        store
            .state_delete("demo", "k", Expect::Version(1))
            .await
            .is_err()
    );
    assert!(
        store
            .state_delete("demo", "k", Expect::Version(3))
            .await
            .unwrap()
    );
    assert!(!store.state_delete("demo", "k", Expect::Any).await.unwrap());

    // Sessions: counts, deletion takes everything of the session.
    let s = store.session("demo").await.unwrap().unwrap();
    assert_eq!((s.executions, s.state_keys), (1, 4));
    assert_eq!(s.state_bytes, (6 + 4) * 2 + (6 + 4) + (5 + 4));
    assert_eq!(store.sessions().await.unwrap().len(), 1);
    assert!(store.delete_session("demo").await.unwrap());
    assert!(store.session("demo").await.unwrap().is_none());
    assert!(store.execution("ex-aaa1").await.unwrap().is_none());
    assert!(store.entries("ex-aaa1").await.unwrap().is_empty());
    assert!(store.state_list("demo", "").await.unwrap().is_empty());
    assert!(!store.delete_session("demo").await.unwrap());

    // Prune: ended before the cut only (a running execution is never pruned).
    store
        .apply(vec![
            WriteOp::Execution(exec("old", None, 10)),
            WriteOp::Entry(entry("old", 0, "")),
            WriteOp::Status {
                id: "old".into(),
                status: "failed".into(),
                ended_ms: 20,
                summary: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.prune(50).await.unwrap(), 1);
    assert!(store.execution("old").await.unwrap().is_none());
    assert!(store.entries("old").await.unwrap().is_empty());
    assert!(store.execution("ex-bbb2").await.unwrap().is_some());
}

/// Concurrent optimistic writers of one key: exactly one of those expecting the same version
/// wins; the others get a conflict (never a lost update).
async fn racing_writers(store: Arc<dyn Store>) {
    let v = store
        .state_put("race", "n", "0", Expect::Any, 1 << 20, 1)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .state_put("race", "n", &i.to_string(), Expect::Version(v), 1 << 20, 2)
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(version) => {
                won += 1;
                assert_eq!(version, v + 1);
            }
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/isola.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    conformance(store.clone()).await;
    racing_writers(store).await;
    // The database file is private to its user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    // WAL (a property of the file, kept after the store is closed).
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance() {
    let mut pg = PgCluster::start().unwrap();
    let url = pg.create_db("conformance").unwrap();
    let store = isola_store::open(&StoreUrl::parse(&url).unwrap())
        .await
        .unwrap();
    assert_eq!(store.kind(), "postgres");
    conformance(store.clone()).await;
    racing_writers(store).await;
    // A second node on the same database: migrations already done, data shared.
    let url2 = pg.url("conformance");
    let a = isola_store::open(&StoreUrl::parse(&url2).unwrap())
        .await
        .unwrap();
    let b = isola_store::open(&StoreUrl::parse(&url2).unwrap())
        .await
        .unwrap();
    a.state_put("shared", "k", "1", Expect::Absent, 100, 1)
        .await
        .unwrap();
    assert_eq!(
        b.state_get("shared", "k").await.unwrap().unwrap().value,
        "1"
    );
}

#[tokio::test]
async fn sqlite_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("isola.db");
    drop(SqliteStore::open(&path).await.unwrap());
    // Reopening is fine (migrations are idempotent).
    drop(SqliteStore::open(&path).await.unwrap());
    rusqlite_bump(&path);
    let err = SqliteStore::open(&path).await.err().unwrap();
    let text = err.to_string();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, known, .. } if known == SCHEMA_VERSION),
        "{text}"
    );
    assert!(text.contains("newer than this isola knows"), "{text}");
    assert!(text.contains("hint: upgrade isola"), "{text}");
}

fn rusqlite_bump(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute("UPDATE isola_schema SET version = 99", [])
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_newer_schema_is_refused() {
    let mut pg = PgCluster::start().unwrap();
    let url = pg.create_db("newer").unwrap();
    drop(
        isola_store::open(&StoreUrl::parse(&url).unwrap())
            .await
            .unwrap(),
    );
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute("UPDATE isola_schema SET version = 99", &[])
        .await
        .unwrap();
    let err = isola_store::open(&StoreUrl::parse(&url).unwrap())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    // The message names the store without a password.
    assert!(err.to_string().contains("postgres:///newer"), "{err}");
}

#[tokio::test]
async fn a_server_that_is_not_there_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres:///x?host={}&port=1&user=isola&connect_timeout=2",
        dir.path().display()
    );
    let err = isola_store::open(&StoreUrl::parse(&url).unwrap())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot connect"), "{err}");
}
