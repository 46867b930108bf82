//! Worker processes: the channel, isolation of the process, and killing at the deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use isola_protocol::{
    CallResult, ErrorKind, ExecRequest, HostMsg, LimitKind, Limits, Namespace, RunOutcome,
    SandboxMsg,
};
use isola_worker::{Backend, Session, WorkerCommand, WorkerPool};

fn pool(warm: usize) -> WorkerPool {
    let command = WorkerCommand {
        program: env!("CARGO_BIN_EXE_isola-worker").into(),
        args: vec![],
    };
    WorkerPool::new(command, warm)
}

fn request(body: &str, limits: Limits) -> ExecRequest {
    ExecRequest::new(
        format!("(async () => {{\n{body}\n}})()"),
        vec![Namespace {
            name: "t".into(),
            functions: vec!["echo".into()],
        }],
        limits,
    )
}

/// Drive one run: echo every call back, fire timers when due, stop it the way the engine does
/// at deadline + grace.
async fn drive(backend: &Backend, body: &str, limits: Limits) -> Result<RunOutcome, &'static str> {
    let hard =
        tokio::time::Instant::now() + Duration::from_millis(limits.deadline_ms) + backend.grace();
    let mut session: Session = backend.start(request(body, limits)).await.unwrap();
    let outcome = until_done(&mut session, hard).await;
    match outcome {
        Some(outcome) => {
            session.finish();
            Ok(outcome)
        }
        None => {
            session.abort();
            Err("killed at the deadline")
        }
    }
}

/// The session's outcome, answering calls and timers as the engine would; `None` at `hard`.
async fn until_done(session: &mut Session, hard: tokio::time::Instant) -> Option<RunOutcome> {
    let mut timers: Vec<(tokio::time::Instant, u32)> = Vec::new();
    loop {
        timers.sort();
        let next_timer = timers.first().map(|t| t.0).unwrap_or(hard);
        tokio::select! {
            () = tokio::time::sleep_until(hard) => return None,
            () = tokio::time::sleep_until(next_timer), if !timers.is_empty() => {
                let (_, id) = timers.remove(0);
                session.send(&HostMsg::Fire { id, now_ms: 0 }).unwrap();
            }
            msg = session.next() => match msg {
                Ok(SandboxMsg::Call { id, args, .. }) => session
                    .send(&HostMsg::CallDone {
                        id,
                        result: CallResult::Ok { value: args },
                        now_ms: 0,
                    })
                    .unwrap(),
                Ok(SandboxMsg::Timer { id, ms }) => timers.push((
                    tokio::time::Instant::now() + Duration::from_secs_f64(ms / 1000.0),
                    id,
                )),
                Ok(SandboxMsg::ClearTimer { id }) => timers.retain(|t| t.1 != id),
                Ok(SandboxMsg::Done(outcome)) => return Some(outcome),
                Ok(_) => {}
                Err(e) => panic!("worker failed: {e}"),
            },
        }
    }
}

fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(60)
}

fn value(outcome: &RunOutcome) -> serde_json::Value {
    serde_json::from_str(&outcome.result.as_ref().unwrap().as_ref().unwrap().json).unwrap()
}

#[tokio::test]
async fn runs_scripts_and_tool_calls_over_the_channel() {
    let backend = Backend::Workers(pool(1));
    let out = drive(&backend, "return 6 * 7", Limits::default())
        .await
        .unwrap();
    assert_eq!(value(&out), serde_json::json!(42));
    let out = drive(
        &backend,
        "const r = await Promise.all([1, 2, 3].map(i => t.echo({ i }))); return r",
        Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        value(&out),
        serde_json::json!([{"i": 1}, {"i": 2}, {"i": 3}])
    );
}

#[tokio::test]
async fn in_process_backend_behaves_the_same() {
    let backend = Backend::InProcess;
    let out = drive(
        &backend,
        "return (await t.echo({ a: 1 })).a + 1",
        Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(value(&out), serde_json::json!(2));
}

/// `Array(2**32-1).join()` and `[].concat(Array(2**32-1))` never return to the interpreter, so
/// QuickJS's interrupt handler cannot stop them: the worker is killed at the deadline and the
/// next execution works.
#[tokio::test]
async fn native_operations_are_stopped_at_the_deadline_by_killing_the_worker() {
    let backend = Backend::Workers(pool(1));
    for body in ["Array(2**32-1).join()", "[].concat(Array(2**32-1))"] {
        let t = Instant::now();
        let out = drive(
            &backend,
            body,
            Limits {
                deadline_ms: 1000,
                ..Limits::default()
            },
        )
        .await;
        let took = t.elapsed();
        match out {
            Err(_) => {}
            // The sandbox may also catch it itself, between two native steps.
            Ok(o) => assert_eq!(
                o.result.unwrap_err().limit,
                Some(LimitKind::Deadline),
                "{body}"
            ),
        }
        assert!(took < Duration::from_millis(1500), "{body} took {took:?}");
        let next = drive(&backend, "return 'alive'", Limits::default())
            .await
            .unwrap();
        assert_eq!(value(&next), serde_json::json!("alive"));
    }
}

#[tokio::test]
async fn a_busy_loop_ends_with_the_sandbox_s_own_deadline_error() {
    let backend = Backend::Workers(pool(1));
    let out = drive(
        &backend,
        "while (true) {}",
        Limits {
            deadline_ms: 300,
            ..Limits::default()
        },
    )
    .await
    .unwrap();
    let err = out.result.unwrap_err();
    assert_eq!(
        (err.kind, err.limit),
        (ErrorKind::Limit, Some(LimitKind::Deadline))
    );
}

/// Workers hold nothing but the script: an empty environment, no descriptors but the channel,
/// no new privileges.
#[tokio::test]
async fn workers_have_an_empty_environment_and_only_their_channel() {
    // SAFETY: set before any worker starts; tests in this binary do not read it concurrently.
    unsafe { std::env::set_var("ISOLA_TEST_SECRET", "hunter2") };
    let backend = Backend::Workers(pool(0));
    let mut session = backend
        .start(request(
            "await new Promise(r => setTimeout(r, 500)); return 1",
            Limits::default(),
        ))
        .await
        .unwrap();
    let pid = session.pid().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ.is_empty(),
        "worker environment: {:?}",
        String::from_utf8_lossy(&environ)
    );
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "{status}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(nofile.split_whitespace().nth(3) == Some("3"), "{nofile}");
    loop {
        if until_done(&mut session, far()).await.is_some() {
            break;
        }
    }
    session.finish();
}

#[tokio::test]
async fn the_pool_keeps_workers_warm() {
    let pool = pool(2);
    pool.warm_up().await.unwrap();
    assert_eq!(pool.idle_count(), 2);
    let backend = Backend::Workers(pool.clone());
    drive(&backend, "return 1", Limits::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.idle_count(), 2);
}

/// A worker whose run ended normally serves the next run: no process is started (or killed)
/// per execution, so none competes with a running script for the CPU.
#[tokio::test]
async fn sequential_runs_reuse_one_worker() {
    let pool = pool(1);
    pool.warm_up().await.unwrap();
    let backend = Backend::Workers(pool.clone());
    let mut pids = Vec::new();
    // Each run outlasts a worker's start, so a spare started at checkout would be ready by the end.
    let body = "await new Promise((r) => setTimeout(r, 300)); return 1";
    for _ in 0..3 {
        let mut session = backend
            .start(request(body, Limits::default()))
            .await
            .unwrap();
        pids.push(session.pid().unwrap());
        until_done(&mut session, far()).await.unwrap();
        session.finish();
        assert_eq!(pool.idle_count(), 1);
    }
    assert!(pids.iter().all(|p| *p == pids[0]), "workers used: {pids:?}");
}

/// The system-call filter refuses opening files, sockets, fork and signals to others.
#[test]
fn the_worker_cannot_open_files_sockets_or_processes() {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_isola-worker"))
        .arg("--self-check")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "a forbidden system call succeeded in a hardened worker: {status}"
    );
}

/// A worker says which protocol it speaks and which hardening layers are active.
#[tokio::test]
async fn workers_report_their_protocol_and_hardening() {
    let pool = pool(1);
    pool.warm_up().await.unwrap();
    let ready = pool.ready().unwrap();
    assert_eq!(ready.protocol, isola_protocol::PROTOCOL_VERSION);
    let names: Vec<&str> = ready.hardening.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["no_new_privs", "rlimits", "seccomp"]);
    assert!(ready.hardening.iter().all(|l| l.active), "{ready:?}");
    // A required layer the worker has: fine; one it does not know: refused, naming it.
    let command = WorkerCommand {
        program: env!("CARGO_BIN_EXE_isola-worker").into(),
        args: vec![],
    };
    let strict = WorkerPool::with_required(command.clone(), 0, vec!["seccomp".into()]);
    assert!(strict.checkout().await.is_ok());
    let impossible = WorkerPool::with_required(command, 0, vec!["teleportation".into()]);
    let err = impossible.checkout().await.err().unwrap().to_string();
    assert!(err.contains("without `teleportation`"), "{err}");
}

/// Under load the pool grows to its maximum and no further: executions past it wait for a
/// worker to come back, and no process is started per execution.
#[tokio::test]
async fn under_load_the_pool_grows_to_its_maximum_and_keeps_its_workers() {
    let command = WorkerCommand {
        program: env!("CARGO_BIN_EXE_isola-worker").into(),
        args: vec![],
    };
    let pool = WorkerPool::with_options(command, 1, 3, Vec::new());
    let backend = Backend::Workers(pool.clone());
    for _ in 0..4 {
        let runs = (0..8).map(|i| {
            let backend = &backend;
            async move {
                drive(
                    backend,
                    &format!("await new Promise(r => setTimeout(r, 20)); return {i}"),
                    Limits::default(),
                )
                .await
            }
        });
        let outcomes = futures::future::join_all(runs).await;
        for (i, outcome) in outcomes.iter().enumerate() {
            assert_eq!(value(outcome.as_ref().unwrap()), serde_json::json!(i));
        }
    }
    assert!(
        pool.starts() <= 3,
        "{} workers started for 32 executions",
        pool.starts()
    );
    assert_eq!(pool.idle_count(), 3);
}
