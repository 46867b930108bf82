//! The journal end to end, in-process: executions recorded and verified, the write-ahead rule
//! checked from inside the tool, the idempotency key, tampering found, redaction and large
//! results, recovery of a dead process's execution, replay, and session state — against SQLite
//! and (the journal's writes and replay) a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use isola_engine::{CallMeta, Engine, ExecOptions, ToolError, Tools};
use isola_journal::{Begin, Entry, ExecJournal, Journal, JournalConfig, StateLimits, StateTools};
use isola_protocol::{ExecRecord, Limits};
use isola_store::{SqliteStore, Store, StoreUrl};
use isola_test_support::postgres::PgCluster;
use isola_test_support::tools::{FakeTools, text_result, tool};
use isola_typegen::ServerSpec;
use isola_worker::Backend;
use serde_json::{Map, Value, json};

/// Time, randomness, timers racing calls, and parallel calls finishing out of order.
const SCRIPT: &str = r#"
const t0 = Date.now();
const r = [Math.random(), Math.random()];
const order: string[] = [];
setTimeout(() => order.push("timer"), 15);
const slept = await Promise.all([30, 5, 20].map((ms) => t.sleep({ ms }).then((v: any) => { order.push("sleep " + ms); return v; })));
const echoed = await t.echo({ after: order.slice() });
await new Promise((res) => setTimeout(res, 1));
return { elapsed: Date.now() - t0 >= 0, r, order, slept, echoed, late: Date.now() };
"#;

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("j.db")).await.unwrap();
    (dir, Arc::new(store))
}

async fn run(
    journal: &Journal,
    engine: &Engine,
    code: &str,
    session: Option<&str>,
) -> (ExecJournal, ExecRecord) {
    let exec = journal.begin(
        Begin::new(code, "test").session(session.map(Into::into)),
        &engine.api(),
    );
    let mut options = ExecOptions::default();
    exec.attach(&mut options);
    let record = engine.execute(code, options).await;
    journal.flush().await.unwrap();
    (exec, record)
}

async fn entries(store: &dyn Store, id: &str) -> Vec<Entry> {
    isola_journal::parse_entries(&store.entries(id).await.unwrap()).unwrap()
}

async fn recorded_and_replayed(store: Arc<dyn Store>) {
    let journal = Journal::start(store.clone(), JournalConfig::default());
    let tools = FakeTools::standard();
    let engine = Engine::new(tools.clone(), Backend::InProcess, Limits::default());
    let (exec, record) = run(&journal, &engine, SCRIPT, None).await;
    assert!(record.ok, "{:?}", record.error);
    assert_eq!(tools.calls(), 4);

    let row = store.execution(&exec.id).await.unwrap().unwrap();
    assert_eq!(row.status, "ok");
    let es = entries(&*store, &exec.id).await;
    let kinds: Vec<&str> = es.iter().map(Entry::kind).collect();
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "call").count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == "outcome").count(), 4);
    // 4 answers and 2 timers.
    assert_eq!(kinds.iter().filter(|k| **k == "input").count(), 6);
    let (n, problems) = isola_journal::verify(&*store, &[]).await.unwrap();
    assert_eq!((n, problems), (1, vec![]));

    // Replay: no tool is called (the replay's tools cannot call anything), same result.
    let replayed = isola_journal::replay(&*store, &exec.id, Backend::InProcess)
        .await
        .unwrap();
    assert_eq!(replayed.outcome, "same", "{:?}", replayed.difference);
    assert_eq!(replayed.record.result, record.result);
    assert_eq!(replayed.calls, 4);
    assert_eq!(tools.calls(), 4);
}

#[tokio::test]
async fn sqlite_records_verifies_and_replays() {
    let (_dir, store) = sqlite().await;
    recorded_and_replayed(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_records_verifies_and_replays() {
    let mut pg = PgCluster::start().unwrap();
    let url = pg.create_db("journal").unwrap();
    let store = isola_store::open(&StoreUrl::parse(&url).unwrap())
        .await
        .unwrap();
    recorded_and_replayed(store).await;
}

/// A tool source that, when a call arrives, looks in the store for its intent, and keeps the
/// idempotency key it was given.
struct Inspecting {
    store: Arc<dyn Store>,
    seen: Mutex<Vec<(String, bool)>>,
}

impl Tools for Inspecting {
    fn servers(&self) -> Vec<ServerSpec> {
        let mut read = tool("read", "Reads.", json!({"type": "object"}));
        read.annotations = Some(json!({"readOnlyHint": true}));
        vec![ServerSpec {
            name: "s".into(),
            tools: vec![tool("write", "Writes.", json!({"type": "object"})), read],
        }]
    }

    fn call<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async { Err(ToolError("called without meta".into())) })
    }

    fn call_with<'a>(
        &'a self,
        meta: CallMeta<'a>,
        _server: &'a str,
        tool: &'a str,
        _args: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let rows = self.store.entries(meta.execution).await.unwrap();
            let durable = isola_journal::parse_entries(&rows)
                .unwrap()
                .iter()
                .any(|e| matches!(e, Entry::Call { seq, .. } if *seq == meta.seq));
            self.seen
                .lock()
                .unwrap()
                .push((format!("{tool} {}", meta.idempotency_key()), durable));
            Ok(text_result("{\"ok\":true}"))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_effect_is_durable_before_it_is_sent() {
    let (_dir, store) = sqlite().await;
    let journal = Journal::start(store.clone(), JournalConfig::default());
    let tools = Arc::new(Inspecting {
        store: store.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let engine = Engine::new(tools.clone(), Backend::InProcess, Limits::default());
    let code = "await Promise.all([s.write({a: 1}), s.write({a: 2}), s.write({a: 3})]); await s.write({}); return 1";
    let (exec, record) = run(&journal, &engine, code, None).await;
    assert!(record.ok, "{:?}", record.error);
    let seen = tools.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for (what, durable) in &seen {
        assert!(
            durable,
            "call {what} was sent before its intent was durable"
        );
    }
    let mut keys: Vec<String> = seen.iter().map(|(w, _)| w.clone()).collect();
    keys.sort();
    assert_eq!(
        keys,
        (0..4)
            .map(|i| format!("write {}:{i}", exec.id))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn tampering_is_found() {
    let (dir, store) = sqlite().await;
    let journal = Journal::start(store.clone(), JournalConfig::default());
    let engine = Engine::new(FakeTools::standard(), Backend::InProcess, Limits::default());
    let (a, _) = run(&journal, &engine, "await t.echo({n: 1}); return 2", None).await;
    let (b, _) = run(&journal, &engine, "await t.echo({n: 1}); return 3", None).await;
    assert!(
        isola_journal::verify(&*store, &[])
            .await
            .unwrap()
            .1
            .is_empty()
    );
    let conn = SqliteShell(dir.path().join("j.db"));
    conn.execute(
        "UPDATE entries SET body = replace(body, '\"n\":1', '\"n\":9') WHERE exec_id = ?1 AND kind = 'call'",
        [&a.id],
    )
    .unwrap();
    conn.execute(
        "DELETE FROM entries WHERE exec_id = ?1 AND seq = (SELECT MAX(seq) FROM entries WHERE exec_id = ?1)",
        [&b.id],
    )
    .unwrap();
    let (_, problems) = isola_journal::verify(&*store, &[]).await.unwrap();
    let text: Vec<String> = problems
        .iter()
        .map(|p| format!("{} {:?} {}", p.execution, p.seq, p.problem))
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.execution == a.id && p.problem.contains("edited")),
        "{text:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.execution == b.id && p.problem.contains("deleted")),
        "{text:?}"
    );
}

/// Edits the database behind the store's back, as an attacker would (python3's sqlite3).
struct SqliteShell(std::path::PathBuf);

impl SqliteShell {
    fn execute(&self, sql: &str, params: [&String; 1]) -> Result<(), String> {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2], (sys.argv[3],)); c.commit()",
                &self.0.to_string_lossy(),
                sql,
                params[0],
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into())
        }
    }
}

#[tokio::test]
async fn secrets_are_redacted_and_large_results_kept_as_hashes() {
    let (_dir, store) = sqlite().await;
    let journal = Journal::start(
        store.clone(),
        JournalConfig {
            max_result_bytes: 1000,
            ..JournalConfig::default()
        },
    );
    let engine = Engine::new(FakeTools::standard(), Backend::InProcess, Limits::default());
    let code = r#"const e = await t.echo({user: "ann", password: "hunter2", nested: {apiKey: "k-123"}});
        const b = await t.big({bytes: 5000});
        return { password: e.args.password, len: b.length }"#;
    let (exec, record) = run(&journal, &engine, code, None).await;
    assert!(record.ok, "{:?}", record.error);
    // The script saw the real values; the journal did not keep them.
    assert_eq!(record.result, json!({"password": "hunter2", "len": 5000}));
    // Every entry but the code itself (which holds the literal) is clean.
    let rows = store.entries(&exec.id).await.unwrap();
    let all: String = rows
        .iter()
        .filter(|r| r.kind != "started")
        .map(|r| r.body.as_str())
        .collect();
    assert!(!all.contains("hunter2"), "{all}");
    assert!(!all.contains("k-123"), "{all}");
    assert!(all.contains("\"user\":\"ann\""));
    let es = entries(&*store, &exec.id).await;
    let omitted = es.iter().find_map(|e| match e {
        Entry::Input {
            omitted: Some(o), ..
        } => Some(o.clone()),
        _ => None,
    });
    let o = omitted.expect("the big answer is kept as a hash");
    assert!(o.bytes > 5000 && o.sha256.starts_with("sha256:"), "{o:?}");
    // The script's result held the secret too: redacted in the finished entry.
    assert!(
        es.iter()
            .any(|e| matches!(e, Entry::Finished { record, .. } if record.result["password"] == json!("[redacted]")))
    );
    // Such an execution cannot be replayed, and says why.
    let err = isola_journal::replay(&*store, &exec.id, Backend::InProcess)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("kept as its hash only"), "{err}");
    assert!(err.contains("maxResultBytes"), "{err}");
}

/// A node on another machine: its executions are left alone while its heartbeat is fresh, and
/// marked once it is older than `NODE_TTL_MS`; a process of another machine that never beat
/// (not a node) is never taken for dead.
#[tokio::test]
async fn another_machines_node_is_gone_once_its_heartbeat_is_stale() {
    let (_dir, store) = sqlite().await;
    let journal = Journal::start(store.clone(), JournalConfig::default());
    let engine = Engine::new(FakeTools::standard(), Backend::InProcess, Limits::default());
    let (exec, _) = run(&journal, &engine, "await t.echo({}); return 1", None).await;
    let row = store.execution(&exec.id).await.unwrap().unwrap();
    let rows = store.entries(&exec.id).await.unwrap();
    let (_dir2, other) = sqlite().await;
    let mut ops = Vec::new();
    for (id, owner) in [("ex-node", "elsewhere:41:7"), ("ex-cli", "elsewhere:42:7")] {
        let mut fake = row.clone();
        fake.id = id.into();
        fake.owner = owner.into();
        fake.status = "running".into();
        ops.push(isola_store::WriteOp::Execution(fake));
        ops.extend(rows.iter().filter(|r| r.kind == "started").map(|r| {
            let mut r = r.clone();
            r.exec_id = id.into();
            isola_store::WriteOp::Entry(r)
        }));
    }
    other.apply(ops).await.unwrap();
    let now = isola_journal::now_ms();
    other.node_beat("elsewhere:41:7", now).await.unwrap();
    assert!(
        isola_journal::recover(&*other).await.unwrap().is_empty(),
        "a node that beat just now is alive"
    );
    other
        .node_beat("elsewhere:41:7", now - isola_journal::NODE_TTL_MS - 1_000)
        .await
        .unwrap();
    let done = isola_journal::recover(&*other).await.unwrap();
    assert_eq!(done, vec![("ex-node".to_string(), "interrupted")]);
    assert_eq!(
        other.execution("ex-cli").await.unwrap().unwrap().status,
        "running",
        "never beat: cannot be told dead from here"
    );
}

#[tokio::test]
async fn a_dead_process_execution_is_interrupted_with_its_unknown_calls() {
    let (_dir, store) = sqlite().await;
    let journal = Journal::start(store.clone(), JournalConfig::default());
    let engine = Engine::new(FakeTools::standard(), Backend::InProcess, Limits::default());
    let (exec, _) = run(&journal, &engine, "await t.echo({}); return 1", None).await;
    // Make it look as if a dead process had been running it when it sent a call.
    let row = store.execution(&exec.id).await.unwrap().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let dead = format!("{}:{}:1", host.trim(), std::process::id());
    let mut rows = store.entries(&exec.id).await.unwrap();
    rows.retain(|r| r.kind == "started" || r.kind == "call");
    let (_dir2, other) = sqlite().await;
    let mut fake = row.clone();
    fake.owner = dead;
    fake.status = "running".into();
    let mut ops = vec![isola_store::WriteOp::Execution(fake)];
    ops.extend(rows.into_iter().map(isola_store::WriteOp::Entry));
    other.apply(ops).await.unwrap();

    let done = isola_journal::recover(&*other).await.unwrap();
    assert_eq!(done, vec![(exec.id.clone(), "interrupted")]);
    let row = other.execution(&exec.id).await.unwrap().unwrap();
    assert_eq!(row.status, "interrupted");
    let es = entries(&*other, &exec.id).await;
    match es.last() {
        Some(Entry::Interrupted { unknown, .. }) => {
            assert_eq!(unknown.len(), 1);
            assert_eq!(unknown[0].function, "t.echo");
            assert_eq!(unknown[0].idempotency_key, format!("{}:0", exec.id));
        }
        other => panic!("{other:?}"),
    }
    // The chain still holds, and recovery is done once.
    assert!(
        isola_journal::verify(&*other, &[])
            .await
            .unwrap()
            .1
            .is_empty()
    );
    assert!(isola_journal::recover(&*other).await.unwrap().is_empty());
    // Our own running executions are not touched.
    assert!(isola_journal::recover(&*store).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_outlives_executions_and_conflicts_are_errors() {
    let (_dir, store) = sqlite().await;
    let journal = Journal::start(store.clone(), JournalConfig::default());
    let tools = Arc::new(StateTools::new(
        FakeTools::standard(),
        store.clone(),
        StateLimits {
            max_value_bytes: 100,
            ..StateLimits::default()
        },
    ));
    let engine = Engine::new(tools, Backend::InProcess, Limits::default());
    let (_, r) = run(
        &journal,
        &engine,
        "await state.set({key: 'count', value: {n: 1}}); return await state.list({})",
        Some("demo"),
    )
    .await;
    assert_eq!(r.result, json!(["count"]), "{:?}", r.error);
    let (_, r) = run(
        &journal,
        &engine,
        "const c: any = await state.get({key: 'count'}); await state.set({key: 'count', value: {n: c.n + 1}}); return await state.get({key: 'count'})",
        Some("demo"),
    )
    .await;
    assert_eq!(r.result, json!({"n": 2}), "{:?}", r.error);
    // The same calls with their arguments in order; too many of them is a clear error.
    let (_, r) = run(
        &journal,
        &engine,
        "await state.set('pos', {n: 1}); const p: any = await state.get('pos'); \
         let e = ''; try { await (state.set as any)('a', 1, 2) } catch (x: any) { e = x.message } \
         const keys = [await state.list('po'), await state.list()]; \
         return [p, ...keys, await state.delete_('pos'), await state.get('pos'), e]",
        Some("demo"),
    )
    .await;
    assert_eq!(
        r.result,
        json!([
            {"n": 1},
            ["pos"],
            ["count", "pos"],
            true,
            null,
            "state.set takes (key, value) or one object, got 3 arguments"
        ]),
        "{:?}",
        r.error
    );
    // Another session sees nothing.
    let (_, r) = run(
        &journal,
        &engine,
        "return await state.get({key: 'count'})",
        Some("other"),
    )
    .await;
    assert_eq!(r.result, Value::Null);
    // No session: a clear error.
    let (_, r) = run(
        &journal,
        &engine,
        "return await state.get({key: 'count'})",
        None,
    )
    .await;
    let e = r.error.unwrap();
    assert!(e.message.contains("state needs a session"), "{}", e.message);
    // Too large a value.
    let (_, r) = run(
        &journal,
        &engine,
        "try { await state.set({key: 'big', value: 'x'.repeat(200)}); return 'stored' } catch (e: any) { return e.message }",
        Some("demo"),
    )
    .await;
    assert!(
        r.result
            .as_str()
            .unwrap()
            .contains("more than the limit of 100"),
        "{r:?}"
    );
    // A write between this execution's read and its write: a conflict, and no lost update.
    let code = "const c: any = await state.get({key: 'count'}); await t.sleep({ms: 300}); try { await state.set({key: 'count', value: {n: c.n + 10}}); return 'written' } catch (e: any) { return e.message }";
    let slow = run(&journal, &engine, code, Some("demo"));
    let fast = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        run(
            &journal,
            &engine,
            "const c: any = await state.get({key: 'count'}); await state.set({key: 'count', value: {n: c.n + 1}}); return 'ok'",
            Some("demo"),
        )
        .await
    };
    let ((_, slow), (_, fast)) = tokio::join!(slow, fast);
    assert_eq!(fast.result, json!("ok"), "{:?}", fast.error);
    let msg = slow.result.as_str().unwrap_or_default().to_string();
    assert!(msg.contains("changed by another execution"), "{slow:?}");
    let item = store.state_get("demo", "count").await.unwrap().unwrap();
    assert_eq!(item.value, "{\"n\":3}");
    // Every execution of the session is in the journal.
    let s = store.session("demo").await.unwrap().unwrap();
    assert_eq!(s.executions, 6);
}

/// A burst of entries larger than the queue, with a long gathering: the writer is woken when
/// the queue is half full, so the execution is not stopped as "not keeping up".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_queue_is_drained_not_refused() {
    let (_dir, store) = sqlite().await;
    let journal = Journal::start(
        store.clone(),
        JournalConfig {
            gather_ms: 60_000,
            ..JournalConfig::default()
        },
    );
    let engine = Engine::new(FakeTools::standard(), Backend::InProcess, Limits::default());
    let started = std::time::Instant::now();
    let (exec, r) = run(
        &journal,
        &engine,
        "for (let i = 0; i < 60000; i++) console.log(i); return 'done'",
        None,
    )
    .await;
    assert_eq!(r.result, json!("done"), "{:?}", r.error);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let logs = entries(&*store, &exec.id)
        .await
        .into_iter()
        .filter(|e| matches!(e, Entry::Log { .. }))
        .count();
    // What the log limit let through, every line of it (more than half the queue's 16k); the
    // record's last line is the engine's note of what was dropped.
    assert_eq!(logs + 1, r.logs.len(), "{:?}", r.logs.last());
    assert!(logs > 10_000, "{logs}");
}
