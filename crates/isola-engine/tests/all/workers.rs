//! The engine with worker processes: the deadline holds while the host has a large answer to
//! write, and a worker that ignores the limits (a fake one, as a compromised worker could)
//! meets the host's own.

use std::time::{Duration, Instant};

use isola_engine::{Engine, ExecOptions};
use isola_protocol::{ErrorKind, LimitKind, Limits, LogLevel, MAX_TIMERS};
use isola_test_support::fixtures::workspace_bin;
use isola_test_support::tools::FakeTools;
use isola_worker::{Backend, WorkerCommand, WorkerPool};

fn workers(program: &str, args: &[&str]) -> Backend {
    let command = WorkerCommand {
        program: workspace_bin(program),
        args: args.iter().map(Into::into).collect(),
    };
    Backend::Workers(WorkerPool::new(command, 1))
}

/// The real worker (`isola-worker`, built with the workspace).
pub(crate) fn real() -> Backend {
    workers("isola-worker", &[])
}

fn fake(mode: &str) -> Backend {
    workers("isola-fake-worker", &[mode])
}

#[tokio::test]
async fn the_deadline_holds_while_a_large_answer_waits_for_a_busy_worker() {
    let limits = Limits {
        deadline_ms: 1000,
        max_log_bytes: 64 << 20,
        ..Limits::default()
    };
    let engine = Engine::new(FakeTools::standard(), real(), limits);
    // The worker never reads its 8 MiB answer: it floods its console (every line is sent), or
    // is stuck in a native operation.
    for script in [
        "t.big({ bytes: 8 << 20 }); while (true) console.log('x'.repeat(100));",
        "t.big({ bytes: 8 << 20 }); Array(2 ** 32 - 1).join();",
    ] {
        let started = Instant::now();
        let rec = engine.execute(script, ExecOptions::default()).await;
        let took = started.elapsed();
        let error = rec.error.unwrap();
        assert_eq!(
            (error.kind, error.limit),
            (ErrorKind::Limit, Some(LimitKind::Deadline)),
            "{script}: {error:?}"
        );
        assert!(took < Duration::from_secs(5), "{script}: took {took:?}");
        // The big call is in the record, and the next execution works.
        assert_eq!(rec.calls.len(), 1, "{:?}", rec.calls);
        let next = engine.execute("return 6 * 7", ExecOptions::default()).await;
        assert_eq!(next.result, serde_json::json!(42), "{:?}", next.error);
    }
}

#[tokio::test]
async fn a_worker_that_ignores_the_call_limit_is_stopped_by_the_host() {
    let tools = FakeTools::standard();
    let limits = Limits {
        max_tool_calls: 5,
        ..Limits::default()
    };
    let engine = Engine::new(tools.clone(), fake("flood-calls"), limits);
    let rec = engine.execute("return 1", ExecOptions::default()).await;
    let error = rec.error.unwrap();
    assert_eq!(error.limit, Some(LimitKind::ToolCalls), "{error:?}");
    assert!(
        tools.calls() <= 5,
        "{} calls reached the tools",
        tools.calls()
    );
}

#[tokio::test]
async fn a_worker_that_ignores_the_output_limits_is_cut_by_the_host() {
    let limits = Limits {
        max_log_bytes: 4096,
        max_result_bytes: 1000,
        ..Limits::default()
    };
    let engine = Engine::new(FakeTools::standard(), fake("flood-logs"), limits.clone());
    let rec = engine.execute("return 1", ExecOptions::default()).await;
    let kept: usize = rec
        .logs
        .iter()
        .filter(|l| l.level == LogLevel::Log)
        .map(|l| l.text.len())
        .sum();
    assert_eq!(kept, 4096);
    assert!(rec.logs_truncated.unwrap().dropped_bytes > 30_000);

    let engine = Engine::new(FakeTools::standard(), fake("big-result"), limits);
    let rec = engine.execute("return 1", ExecOptions::default()).await;
    let truncated = rec.result_truncated.unwrap();
    assert_eq!(truncated.limit_bytes, 1000);
    assert!(rec.result.as_str().unwrap().len() < 1100);
}

#[tokio::test]
async fn a_worker_that_ignores_the_timer_limit_is_stopped_by_the_host() {
    let engine = Engine::new(
        FakeTools::standard(),
        fake("flood-timers"),
        Limits::default(),
    );
    let rec = engine.execute("return 1", ExecOptions::default()).await;
    let error = rec.error.unwrap();
    assert_eq!(error.limit, Some(LimitKind::Timers), "{error:?}");
    assert!(error.message.contains(&MAX_TIMERS.to_string()));
}

#[tokio::test]
async fn a_worker_of_another_protocol_version_is_refused() {
    let engine = Engine::new(FakeTools::standard(), fake("protocol=1"), Limits::default());
    let rec = engine.execute("return 1", ExecOptions::default()).await;
    let error = rec.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Internal);
    assert!(
        error.message.contains("speaks protocol version 1"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn records_say_how_the_sandbox_was_hardened() {
    let engine = Engine::new(FakeTools::standard(), real(), Limits::default());
    let rec = engine.execute("return 1", ExecOptions::default()).await;
    let sandbox = rec.sandbox.unwrap();
    assert_eq!(sandbox.backend, "worker");
    let seccomp = sandbox
        .hardening
        .iter()
        .find(|l| l.name == "seccomp")
        .unwrap();
    assert!(seccomp.active, "{seccomp:?}");
}
