//! The store conformance suite: the same checks against SQLite and a real PostgreSQL server (a
//! throwaway cluster from `isola_test_support::postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use isola_store::{
    ApprovalQuery, ApprovalRow, EntryRow, ExecQuery, ExecRow, Expect, GrantRow, LlmCallRow,
    SCHEMA_VERSION, SqliteStore, Store, StoreError, StoreUrl, TokenRow, WriteOp,
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

/// Calls to models are kept once each, listed oldest first from a time, and pruned.
async fn llm_calls(store: &dyn Store) {
    let call = |id: &str, at_ms: i64| LlmCallRow {
        id: id.into(),
        at_ms,
        origin: "http:ops".into(),
        provider: "openai".into(),
        model: "gpt-test".into(),
        ok: true,
        input_tokens: 120,
        output_tokens: 30,
        cached_tokens: 0,
        latency_ms: 12.5,
        cost_usd: Some(0.25),
    };
    store
        .llm_calls_add(&[call("r-2", 2_000), call("r-1", 1_000)])
        .await
        .unwrap();
    let mut again = call("r-1", 1_000);
    again.input_tokens = 9;
    store.llm_calls_add(&[again]).await.unwrap();
    let rows = store.llm_calls(0, 10).await.unwrap();
    assert_eq!(
        rows,
        [call("r-1", 1_000), call("r-2", 2_000)],
        "kept once each"
    );
    assert_eq!(store.llm_calls(1_500, 10).await.unwrap().len(), 1);
    store.prune(1_500).await.unwrap();
    assert_eq!(store.llm_calls(0, 10).await.unwrap(), [call("r-2", 2_000)]);
}

/// Tokens are kept by name, once per name and per secret, and forgotten.
async fn tokens(store: &dyn Store) {
    let token = |name: &str, hash: &str| TokenRow {
        name: name.into(),
        hash: hash.into(),
        role: "viewer".into(),
        created_ms: 5,
        created_by: "cli:ann".into(),
    };
    assert!(store.token_add(&token("b", "sha256:2")).await.unwrap());
    assert!(store.token_add(&token("a", "sha256:1")).await.unwrap());
    assert!(
        !store.token_add(&token("a", "sha256:3")).await.unwrap(),
        "a name once"
    );
    assert!(
        !store.token_add(&token("c", "sha256:1")).await.unwrap(),
        "a secret once"
    );
    assert_eq!(
        store.tokens().await.unwrap(),
        [token("a", "sha256:1"), token("b", "sha256:2")]
    );
    assert!(store.token_remove("a").await.unwrap());
    assert!(!store.token_remove("a").await.unwrap());
    assert_eq!(store.tokens().await.unwrap(), [token("b", "sha256:2")]);
}

/// Nodes say they are alive; the last word counts; a process that never said is unknown.
async fn node_heartbeats(store: &dyn Store) {
    assert_eq!(store.node_seen("host:1:1").await.unwrap(), None);
    store.node_beat("host:1:1", 100).await.unwrap();
    store.node_beat("host:1:1", 250).await.unwrap();
    store.node_beat("other:2:2", 90).await.unwrap();
    assert_eq!(store.node_seen("host:1:1").await.unwrap(), Some(250));
    assert_eq!(store.node_seen("other:2:2").await.unwrap(), Some(90));
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

fn approval(id: &str, execution: Option<&str>, created_ms: i64, expires_ms: i64) -> ApprovalRow {
    ApprovalRow {
        id: id.into(),
        kind: "call".into(),
        execution: execution.map(Into::into),
        session: Some("s1".into()),
        subject: format!("{{\"function\":\"fs.writeFile\",\"arguments\":{{\"path\":\"{id} é\"}}}}"),
        reasons: "[\"writes a file\"]".into(),
        created_ms,
        expires_ms,
        status: "pending".into(),
        decided_by: None,
        decided_ms: None,
        note: None,
    }
}

fn grant(id: &str, session: &str, created_ms: i64, expires_ms: Option<i64>) -> GrantRow {
    GrantRow {
        id: id.into(),
        session: session.into(),
        function: "fs.writeFile".into(),
        matcher: "{\"path\":\"out/\"}".into(),
        created_by: "alice".into(),
        created_ms,
        expires_ms,
        note: Some("the rest of this session".into()),
    }
}

/// Approvals (create, read, list, expiry, decisions and their errors) and session grants.
async fn approvals_and_grants(store: Arc<dyn Store>) {
    // Create; a duplicate id and a row that is not a new request are refused.
    let a1 = approval("a1", Some("ex-1"), 1000, 5000);
    let mut a2 = approval("a2", Some("ex-2"), 2000, 3000);
    a2.kind = "plan".into();
    a2.session = None;
    let a3 = approval("a3", Some("ex-1"), 3000, 9000);
    for row in [&a1, &a2, &a3] {
        store.approval_create(row).await.unwrap();
    }
    let dup = store.approval_create(&a1).await.unwrap_err();
    assert!(
        matches!(&dup, StoreError::AlreadyExists { what: "approval", id } if id == "a1"),
        "{dup}"
    );
    assert!(
        dup.to_string().contains("approval `a1` already exists"),
        "{dup}"
    );
    let mut decided = approval("a9", None, 1000, 5000);
    decided.status = "approved".into();
    let bad = store.approval_create(&decided).await.unwrap_err();
    assert!(matches!(&bad, StoreError::Invalid { .. }), "{bad}");
    assert!(bad.to_string().contains("approval `a9`"), "{bad}");
    assert!(bad.to_string().contains("`approved`"), "{bad}");
    assert!(store.approval("a9", 0).await.unwrap().is_none());

    // Read: as stored; a pending one reads as expired from its expiry on.
    assert_eq!(
        store.approval("a1", 1500).await.unwrap().as_ref(),
        Some(&a1)
    );
    assert!(store.approval("nope", 1500).await.unwrap().is_none());
    assert_eq!(
        store.approval("a2", 2999).await.unwrap().unwrap().status,
        "pending"
    );
    assert_eq!(
        store.approval("a2", 3000).await.unwrap().unwrap().status,
        "expired"
    );

    // List: newest first, by status (as of now), by execution, limited.
    let ids = |rows: Vec<ApprovalRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let q = |status: Option<&str>, execution: Option<&str>, limit: Option<i64>| ApprovalQuery {
        status: status.map(Into::into),
        execution: execution.map(Into::into),
        limit,
    };
    assert_eq!(
        ids(store
            .approvals(&ApprovalQuery::default(), 1500)
            .await
            .unwrap()),
        ["a3", "a2", "a1"]
    );
    assert_eq!(
        ids(store
            .approvals(&q(Some("pending"), None, None), 2500)
            .await
            .unwrap()),
        ["a3", "a2", "a1"]
    );
    assert_eq!(
        ids(store
            .approvals(&q(Some("pending"), None, None), 4000)
            .await
            .unwrap()),
        ["a3", "a1"]
    );
    assert_eq!(
        ids(store
            .approvals(&q(Some("expired"), None, None), 4000)
            .await
            .unwrap()),
        ["a2"]
    );
    assert_eq!(
        ids(store
            .approvals(&q(None, Some("ex-1"), None), 4000)
            .await
            .unwrap()),
        ["a3", "a1"]
    );
    assert_eq!(
        ids(store
            .approvals(&q(None, None, Some(1)), 4000)
            .await
            .unwrap()),
        ["a3"]
    );
    assert_eq!(
        ids(store
            .approvals(&q(Some("pending"), Some("ex-2"), None), 4000)
            .await
            .unwrap()),
        Vec::<String>::new()
    );

    // Decide: approve; deny with a note.
    let ok = store
        .approval_decide("a1", true, "alice", None, 4000)
        .await
        .unwrap();
    assert_eq!(
        ok,
        ApprovalRow {
            status: "approved".into(),
            decided_by: Some("alice".into()),
            decided_ms: Some(4000),
            ..a1.clone()
        }
    );
    assert_eq!(
        store.approval("a1", 4001).await.unwrap().as_ref(),
        Some(&ok)
    );
    let no = store
        .approval_decide("a3", false, "bob", Some("not in prod"), 4100)
        .await
        .unwrap();
    assert_eq!(
        (
            no.status.as_str(),
            no.decided_by.as_deref(),
            no.note.as_deref()
        ),
        ("denied", Some("bob"), Some("not in prod"))
    );
    assert_eq!(store.approval("a3", 9999).await.unwrap().unwrap(), no);

    // Decide twice: the second decider is told who decided first, and nothing changes.
    let twice = store
        .approval_decide("a1", false, "carol", Some("no"), 4200)
        .await
        .unwrap_err();
    assert!(
        matches!(&twice, StoreError::ApprovalDecided { id, status, by }
            if id == "a1" && status == "approved" && by.as_deref() == Some("alice")),
        "{twice}"
    );
    assert!(
        twice
            .to_string()
            .contains("approval `a1` was already approved by alice"),
        "{twice}"
    );
    assert_eq!(
        store.approval("a1", 4200).await.unwrap().as_ref(),
        Some(&ok)
    );
    let twice = store
        .approval_decide("a3", true, "carol", None, 4200)
        .await
        .unwrap_err();
    assert!(
        twice.to_string().contains("was already denied by bob"),
        "{twice}"
    );

    // Decide too late: expired, and it stays expired (even for a clock that is behind).
    let late = store
        .approval_decide("a2", true, "alice", None, 4000)
        .await
        .unwrap_err();
    assert!(
        matches!(&late, StoreError::ApprovalExpired { id } if id == "a2"),
        "{late}"
    );
    assert!(late.to_string().contains("approval `a2` expired"), "{late}");
    let a2_now = store.approval("a2", 2500).await.unwrap().unwrap();
    assert_eq!(
        (a2_now.status.as_str(), a2_now.decided_by, a2_now.decided_ms),
        ("expired", None, None)
    );
    assert!(matches!(
        store.approval_decide("a2", true, "alice", None, 2500).await,
        Err(StoreError::ApprovalExpired { .. })
    ));
    // At its expiry exactly it is too late.
    store
        .approval_create(&approval("a4", None, 4000, 4500))
        .await
        .unwrap();
    assert!(matches!(
        store.approval_decide("a4", true, "alice", None, 4500).await,
        Err(StoreError::ApprovalExpired { .. })
    ));

    // Not found.
    let none = store
        .approval_decide("nope", true, "alice", None, 4000)
        .await
        .unwrap_err();
    assert!(
        matches!(&none, StoreError::ApprovalNotFound { id } if id == "nope"),
        "{none}"
    );
    assert!(none.to_string().contains("no approval `nope`"), "{none}");

    assert_eq!(
        ids(store
            .approvals(&q(Some("approved"), None, None), 5000)
            .await
            .unwrap()),
        ["a1"]
    );
    assert_eq!(
        ids(store
            .approvals(&q(Some("denied"), None, None), 5000)
            .await
            .unwrap()),
        ["a3"]
    );

    // A plan is used once, only when approved and not expired; a call request never.
    assert!(
        !store.approval_use("a1", 5000).await.unwrap(),
        "a call, not a plan"
    );
    let plan = |id: &str| ApprovalRow {
        kind: "plan".into(),
        ..approval(id, Some("ex-3"), 3000, 9000)
    };
    for id in ["p1", "p2"] {
        store.approval_create(&plan(id)).await.unwrap();
    }
    assert!(
        !store.approval_use("p1", 5100).await.unwrap(),
        "still pending"
    );
    store
        .approval_decide("p1", true, "alice", None, 5100)
        .await
        .unwrap();
    store
        .approval_decide("p2", true, "alice", None, 5100)
        .await
        .unwrap();
    assert!(store.approval_use("p1", 5200).await.unwrap());
    assert!(!store.approval_use("p1", 5300).await.unwrap(), "used once");
    assert_eq!(
        store.approval("p1", 5300).await.unwrap().unwrap().status,
        "applied"
    );
    assert!(!store.approval_use("p2", 9000).await.unwrap(), "expired");
    assert!(!store.approval_use("nope", 5300).await.unwrap());

    // Grants: oldest first, unexpired, per session; a duplicate id is refused.
    let g1 = grant("g1", "s1", 100, None);
    let g2 = grant("g2", "s1", 200, Some(1000));
    let g3 = grant("g3", "s2", 150, None);
    for g in [&g1, &g2, &g3] {
        store.grant_create(g).await.unwrap();
    }
    let dup = store.grant_create(&g2).await.unwrap_err();
    assert!(
        matches!(&dup, StoreError::AlreadyExists { what: "grant", id } if id == "g2"),
        "{dup}"
    );
    assert_eq!(
        store.grants("s1", 500).await.unwrap(),
        [g1.clone(), g2.clone()]
    );
    assert_eq!(
        store.grants("s1", 1000).await.unwrap(),
        std::slice::from_ref(&g1)
    );
    assert_eq!(
        store.grants("s2", 500).await.unwrap(),
        std::slice::from_ref(&g3)
    );
    assert!(store.grants("s3", 500).await.unwrap().is_empty());
    // Revoke.
    assert!(store.grant_revoke("g2").await.unwrap());
    assert!(!store.grant_revoke("g2").await.unwrap());
    assert_eq!(
        store.grants("s1", 500).await.unwrap(),
        std::slice::from_ref(&g1)
    );

    // Prune: decided or expired approvals created before the cut, grants expired before it;
    // a pending approval still open at the cut stays.
    store
        .approval_create(&approval("a5", None, 100, 1_000_000))
        .await
        .unwrap();
    store
        .approval_create(&approval("a6", None, 200, 300))
        .await
        .unwrap();
    store
        .grant_create(&grant("g4", "s2", 100, Some(400)))
        .await
        .unwrap();
    store.prune(3500).await.unwrap();
    assert_eq!(
        ids(store
            .approvals(&ApprovalQuery::default(), 5000)
            .await
            .unwrap()),
        ["a4", "a5"]
    );
    assert_eq!(
        store.grants("s2", 0).await.unwrap(),
        std::slice::from_ref(&g3)
    );

    // Deleting a session deletes its grants and approvals, not another's.
    assert!(store.delete_session("s1").await.unwrap());
    assert!(store.grants("s1", 500).await.unwrap().is_empty());
    assert!(store.approval("a5", 5000).await.unwrap().is_none());
    assert_eq!(store.grants("s2", 500).await.unwrap(), [g3]);
    assert!(!store.delete_session("s1").await.unwrap());
}

/// Two resumers of one suspended execution at once: exactly one takes it over.
async fn racing_claimers(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    for round in 0..10 {
        let id = format!("claim-{round}");
        let mut row = exec(&id, None, 10);
        row.status = "suspended".into();
        row.ended_ms = Some(20);
        a.apply(vec![WriteOp::Execution(row)]).await.unwrap();
        let from = ["suspended", "interrupted"];
        let ta = {
            let (a, id) = (a.clone(), id.clone());
            tokio::spawn(async move { a.execution_claim(&id, &from, "host:a:1").await })
        };
        let tb = {
            let (b, id) = (b.clone(), id.clone());
            tokio::spawn(async move { b.execution_claim(&id, &from, "host:b:1").await })
        };
        let (ra, rb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
        assert!(ra ^ rb, "exactly one claims it: {ra} {rb}");
        let now = b.execution(&id).await.unwrap().unwrap();
        assert_eq!(now.status, "running");
        assert_eq!(now.ended_ms, None);
        assert_eq!(now.owner, if ra { "host:a:1" } else { "host:b:1" });
        // A running (or finished) execution is not claimed.
        assert!(!a.execution_claim(&id, &from, "host:c:1").await.unwrap());
    }
    assert!(
        !a.execution_claim("nope", &["suspended"], "x")
            .await
            .unwrap()
    );
}

/// Two deciders of one approval at once, each through its own connection (two processes, or
/// two nodes): exactly one wins, the other is told it was decided.
async fn racing_deciders(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    for round in 0..10 {
        let id = format!("race-{round}");
        a.approval_create(&approval(&id, None, 10, 1_000_000))
            .await
            .unwrap();
        let (approve_a, approve_b) = (round % 2 == 0, round % 3 == 0);
        let ta = {
            let (a, id) = (a.clone(), id.clone());
            tokio::spawn(async move { a.approval_decide(&id, approve_a, "alice", None, 20).await })
        };
        let tb = {
            let (b, id) = (b.clone(), id.clone());
            tokio::spawn(async move { b.approval_decide(&id, approve_b, "bob", None, 20).await })
        };
        let results = [ta.await.unwrap(), tb.await.unwrap()];
        let winners: Vec<&ApprovalRow> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let winner = winners[0];
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        match loser {
            StoreError::ApprovalDecided {
                id: lid,
                status,
                by,
            } => {
                assert_eq!(lid, &id);
                assert_eq!(status, &winner.status);
                assert_eq!(by, &winner.decided_by);
            }
            e => panic!("{e}"),
        }
        // Both see the winner's decision.
        assert_eq!(a.approval(&id, 30).await.unwrap().as_ref(), Some(winner));
        assert_eq!(b.approval(&id, 30).await.unwrap().as_ref(), Some(winner));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/isola.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    conformance(store.clone()).await;
    racing_writers(store.clone()).await;
    node_heartbeats(&*store).await;
    llm_calls(&*store).await;
    tokens(&*store).await;
    approvals_and_grants(store.clone()).await;
    // Another process on the same file: a connection of its own.
    let other: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    racing_deciders(store.clone(), other.clone()).await;
    racing_claimers(store, other).await;
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
    racing_writers(store.clone()).await;
    node_heartbeats(&*store).await;
    llm_calls(&*store).await;
    tokens(&*store).await;
    approvals_and_grants(store.clone()).await;
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
    racing_deciders(a.clone(), b.clone()).await;
    racing_claimers(a, b).await;
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

/// A server that takes TLS connections only, with a self-signed certificate for `localhost`:
/// libpq's `sslmode`s mean what they mean there, and each refusal says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_checks_the_certificate_as_sslmode_says() {
    let pg = PgCluster::start_tls().unwrap();
    let cert = pg.tls_cert().unwrap().display().to_string();
    // Another certificate, trusted by nobody here.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    let other = other.display().to_string();
    let open =
        |url: String| async move { isola_store::open(&StoreUrl::parse(&url).unwrap()).await };
    let works = [
        pg.tcp_url("localhost", "postgres", ""),
        pg.tcp_url("localhost", "postgres", "sslmode=require"),
        pg.tcp_url(
            "localhost",
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={cert}"),
        ),
        // verify-ca checks the chain, not the name.
        pg.tcp_url(
            "127.0.0.1",
            "postgres",
            &format!("sslmode=verify-ca&sslrootcert={cert}"),
        ),
    ];
    for url in works {
        let store = open(url.clone())
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        store
            .state_put("tls", "k", "1", Expect::Any, 100, 1000)
            .await
            .unwrap();
    }
    let fails = [
        (
            pg.tcp_url("localhost", "postgres", "sslmode=disable"),
            "no encryption",
        ),
        (
            pg.tcp_url(
                "localhost",
                "postgres",
                &format!("sslmode=verify-full&sslrootcert={other}"),
            ),
            "invalid peer certificate",
        ),
        (
            pg.tcp_url(
                "127.0.0.1",
                "postgres",
                &format!("sslmode=verify-full&sslrootcert={cert}"),
            ),
            "not valid for name",
        ),
        (
            pg.tcp_url(
                "localhost",
                "postgres",
                "sslmode=verify-full&sslrootcert=/nonexistent.pem",
            ),
            "sslrootcert /nonexistent.pem",
        ),
        (
            pg.tcp_url("localhost", "postgres", "sslmode=always"),
            "sslmode `always`",
        ),
    ];
    for (url, why) in fails {
        let e = open(url.clone())
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} connected"));
        let text = e.to_string();
        assert!(text.to_lowercase().contains(why), "{url}: {text}");
    }
}
