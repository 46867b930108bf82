//! `isola-bench journal`: what the journal costs. The same 100 read-only calls to a real MCP
//! server with the journal off and on (alternating rounds), side-effecting calls per second
//! (each written ahead) at concurrency 1 and 16 on SQLite and PostgreSQL (a throwaway cluster),
//! the replay of an execution of 1,000 calls, and journal bytes per call.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use isola_engine::{Engine, ExecOptions, Tools};
use isola_journal::{Begin, Journal, JournalConfig};
use isola_protocol::Limits;
use isola_store::Store;
use isola_test_support::tools::InstantTools;
use isola_worker::Backend;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One execution, journaled by `journal` if given: how long it took to its record, how long the
/// journal's commit of its last entries took after that (0 without a journal), and its id.
async fn run(
    engine: &Engine,
    journal: Option<&Journal>,
    code: &str,
) -> Result<(f64, f64, String), String> {
    let mut options = ExecOptions::default();
    let id = journal.map(|j| {
        let exec = j.begin(Begin::new(code, "bench"), &engine.api());
        exec.attach(&mut options);
        exec.id
    });
    let t = Instant::now();
    let rec = engine.execute(code, options).await;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    if let Some(j) = journal {
        j.flush().await?;
    }
    let flush_ms = t.elapsed().as_secs_f64() * 1000.0;
    if !rec.ok {
        return Err(format!("the run failed: {:?}", rec.error));
    }
    Ok((ms, flush_ms, id.unwrap_or_default()))
}

/// 100 read-only `echo` calls to a real server, journal off and on in alternating rounds.
pub async fn mcp_on_off(
    hub: Arc<dyn Tools>,
    backend: Backend,
    ns: &str,
    store: Arc<dyn Store>,
    calls: u32,
    rounds: u32,
) -> Result<String, String> {
    let engine = Engine::new(hub, backend, Limits::default());
    let journal = Journal::start(store, JournalConfig::default());
    let code = format!(
        "for (let i = 0; i < {calls}; i++) {{ await {ns}.echo({{ message: 'm' + i }}); }}\nreturn {calls};"
    );
    let (mut off, mut on, mut commits) = (Vec::new(), Vec::new(), Vec::new());
    // One warm-up of each, then alternate.
    run(&engine, None, &code).await?;
    run(&engine, Some(&journal), &code).await?;
    let before = journal.stats().bytes.load(Ordering::Relaxed);
    let commits_before = journal.stats().commits.load(Ordering::Relaxed);
    for _ in 0..rounds {
        off.push(run(&engine, None, &code).await?.0);
        let (ms, commit_ms, _) = run(&engine, Some(&journal), &code).await?;
        on.push(ms);
        commits.push(commit_ms);
    }
    let bytes = journal.stats().bytes.load(Ordering::Relaxed) - before;
    let transactions = journal.stats().commits.load(Ordering::Relaxed) - commits_before;
    let (off, on) = (median(off), median(on));
    let mut out = format!(
        "{calls} read-only calls to {ns}.echo, median of {rounds} rounds: journal off {off:.1} ms, on {on:.1} ms to the record: {:+.1}% ({:.1} µs per call); then the commit of its last entries {:.1} ms (once per execution, after its result; `isola exec` waits for it, `isola mcp` does not); {:.1} transactions per execution; {:.0} journal bytes per call\n",
        (on / off - 1.0) * 100.0,
        (on - off) * 1000.0 / f64::from(calls),
        median(commits),
        transactions as f64 / f64::from(rounds),
        bytes as f64 / f64::from(rounds * calls),
    );
    // What each thing the journal adds to an execution costs alone (the same rounds, each
    // against its own run without it).
    type Part = fn(&mut ExecOptions);
    let parts: [(&str, Part); 4] = [
        ("an observer that does nothing", |o| {
            o.observers.push(Box::new(|_: &isola_engine::Event<'_>| {
                isola_engine::Flow::Continue
            }))
        }),
        ("a gate that allows every call", |o| {
            o.gates
                .push(std::sync::Arc::new(|_: &isola_engine::CallIntent| {
                    isola_engine::Verdict::Allow
                }))
        }),
        ("the execution id (an idempotency key sent upstream)", |o| {
            o.execution_id = Some("bench".into())
        }),
        ("the three together", |o| {
            o.observers.push(Box::new(|_: &isola_engine::Event<'_>| {
                isola_engine::Flow::Continue
            }));
            o.gates
                .push(std::sync::Arc::new(|_: &isola_engine::CallIntent| {
                    isola_engine::Verdict::Allow
                }));
            o.execution_id = Some("bench".into());
        }),
    ];
    // A trivial execution (the second figure): its record, and its record plus the
    // commit `isola exec` waits for.
    let (mut off, mut on, mut committed) = (Vec::new(), Vec::new(), Vec::new());
    let trivial_rounds = rounds * 5;
    for _ in 0..trivial_rounds {
        off.push(run(&engine, None, "return 1;").await?.0);
        let (ms, commit_ms, _) = run(&engine, Some(&journal), "return 1;").await?;
        on.push(ms);
        committed.push(ms + commit_ms);
    }
    let (off, on, committed) = (median(off), median(on), median(committed));
    out += &format!(
        "trivial execution, median of {trivial_rounds}: journal off {off:.3} ms, on {on:.3} ms to the record ({:+.3} ms), {committed:.3} ms with its commit ({:+.3} ms)\n",
        on - off,
        committed - off,
    );
    for (what, part) in parts {
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            without.push(timed(&engine, &code, |_| {}).await?);
            with.push(timed(&engine, &code, part).await?);
        }
        let (a, b) = (median(without), median(with));
        out += &format!(
            "  of which {what}: {:+.1}% ({:.1} µs per call)\n",
            (b / a - 1.0) * 100.0,
            (b - a) * 1000.0 / f64::from(calls)
        );
    }
    Ok(out)
}

/// One execution of `code` with `part` applied to its options; its milliseconds.
async fn timed(
    engine: &Engine,
    code: &str,
    part: impl Fn(&mut ExecOptions),
) -> Result<f64, String> {
    let mut options = ExecOptions::default();
    part(&mut options);
    let t = Instant::now();
    let rec = engine.execute(code, options).await;
    if !rec.ok {
        return Err(format!("the run failed: {:?}", rec.error));
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// Side-effecting calls (an instant tool with no `readOnlyHint`, so each intent is committed
/// before its call is sent) per second, at `concurrency` calls in flight.
pub async fn side_effects(
    store: Arc<dyn Store>,
    calls: u32,
    concurrency: u32,
) -> Result<String, String> {
    let engine = Engine::new(
        Arc::new(InstantTools::NOOP),
        Backend::InProcess,
        Limits {
            max_tool_calls: calls + 10,
            max_concurrency: concurrency.max(1),
            deadline_ms: 600_000,
            ..Limits::default()
        },
    );
    let journal = Journal::start(store.clone(), JournalConfig::default());
    let code = format!(
        "let i = 0; await Promise.all(Array.from({{ length: {concurrency} }}, async () => {{ while (i < {calls}) {{ i++; await bench.noop({{}}); }} }})); return i;"
    );
    let s = journal.stats();
    let (c0, e0, b0) = (
        s.commits.load(Ordering::Relaxed),
        s.entries.load(Ordering::Relaxed),
        s.bytes.load(Ordering::Relaxed),
    );
    let (exec_ms, commit_ms, _) = run(&engine, Some(&journal), &code).await?;
    let ms = exec_ms + commit_ms;
    let (commits, entries, bytes) = (
        s.commits.load(Ordering::Relaxed) - c0,
        s.entries.load(Ordering::Relaxed) - e0,
        s.bytes.load(Ordering::Relaxed) - b0,
    );
    Ok(format!(
        "{} {calls} side-effecting calls, concurrency {concurrency}: {:.0} calls/s ({ms:.0} ms); {commits} commits for {entries} entries ({:.2} commits per call); {:.0} bytes per call\n",
        store.kind(),
        f64::from(calls) / ms * 1000.0,
        commits as f64 / f64::from(calls),
        bytes as f64 / f64::from(calls),
    ))
}

/// Record an execution of `calls` calls, then time `isola replay`'s work on it.
pub async fn replay(store: Arc<dyn Store>, calls: u32, rounds: u32) -> Result<String, String> {
    let engine = Engine::new(
        Arc::new(InstantTools::NOOP),
        Backend::InProcess,
        Limits {
            max_tool_calls: calls + 10,
            ..Limits::default()
        },
    );
    let journal = Journal::start(store.clone(), JournalConfig::default());
    let code = format!(
        "let s = 0; for (let i = 0; i < {calls}; i++) {{ await bench.noop({{ i }}); s += Math.random() > 2 ? 1 : 0; }} return [s, Date.now() > 0];"
    );
    let (_, _, id) = run(&engine, Some(&journal), &code).await?;
    journal.close().await;
    let mut times = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let r = isola_journal::replay(&*store, &id, Backend::InProcess)
            .await
            .map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if r.outcome != "same" {
            return Err(format!("the replay was {}: {:?}", r.outcome, r.difference));
        }
    }
    Ok(format!(
        "replay of an execution of {calls} calls ({}, loading its entries included): median {:.1} ms of {rounds}\n",
        store.kind(),
        median(times)
    ))
}

/// Suspend an execution after `calls` recorded calls (its next call held, then suspended), then
/// resume it as `isola resume` does: read the journal, take it over, replay the recorded calls
/// (none sent) and let the waiting call through. Times that, to the waiting call passing the
/// gates (the moment it is sent); the median of `rounds` fresh suspensions.
pub async fn resume(
    store: Arc<dyn Store>,
    backend: Backend,
    label: &str,
    calls: u32,
    rounds: u32,
) -> Result<String, String> {
    use isola_engine::{CallIntent, Decision, Replay, Verdict};
    use std::sync::Mutex;
    let engine = Engine::new(
        Arc::new(InstantTools::NOOP),
        backend,
        Limits {
            max_tool_calls: calls + 10,
            ..Limits::default()
        },
    );
    let journal = Journal::start(store.clone(), JournalConfig::default());
    let code = format!(
        "let s = 0; for (let i = 0; i < {calls}; i++) {{ await bench.noop({{ i }}); s += Math.random(); }}\nawait bench.noop({{ last: true }});\nreturn s > 0;"
    );
    let mut times = Vec::new();
    for _ in 0..rounds {
        // Suspended at the last call.
        let mut options = ExecOptions::default();
        let exec = journal.begin(Begin::new(&code, "bench"), &engine.api());
        exec.attach(&mut options);
        options
            .gates
            .insert_first(Arc::new(move |call: &CallIntent| match call.seq == calls {
                true => Verdict::Hold {
                    reason: "approval".into(),
                    decision: Box::pin(std::future::ready(Decision::Suspend(
                        "suspended by the benchmark".into(),
                    ))),
                },
                false => Verdict::Allow,
            }));
        let rec = engine.execute(&code, options).await;
        if rec.error.as_ref().map(|e| e.kind) != Some(isola_protocol::ErrorKind::Suspended) {
            return Err(format!("the execution was not suspended: {:?}", rec.error));
        }
        journal.flush().await?;

        let t = Instant::now();
        let r = isola_journal::resumable(&*store, &exec.id)
            .await
            .map_err(|e| e.to_string())?;
        let mut options = ExecOptions {
            replay: Some(Replay {
                recording: r.recording.clone(),
                live_after: true,
            }),
            limits: r.limits.clone(),
            ..ExecOptions::default()
        };
        journal
            .resume(&r, "bench", &engine.api())
            .await
            .map_err(|e| e.to_string())?
            .attach(&mut options);
        let sent = Arc::new(Mutex::new(None));
        let at = sent.clone();
        options.gates.push(Arc::new(move |call: &CallIntent| {
            if call.seq == calls
                && let Ok(mut at) = at.lock()
            {
                *at = Some(Instant::now());
            }
            Verdict::Allow
        }));
        let rec = engine.execute(&r.code, options).await;
        if !rec.ok || rec.calls.iter().filter(|c| c.sent).count() != 1 {
            return Err(format!(
                "the resume failed or re-sent calls: {:?}",
                rec.error
            ));
        }
        let Some(sent) = *sent.lock().map_err(|e| e.to_string())? else {
            return Err("the waiting call was never let through".into());
        };
        times.push((sent - t).as_secs_f64() * 1000.0);
    }
    journal.close().await;
    Ok(format!(
        "resume of an execution suspended after {calls} calls ({}, {label}): the waiting call sent {:.1} ms after the resume began (journal read, takeover, replay), median of {rounds}\n",
        store.kind(),
        median(times)
    ))
}
