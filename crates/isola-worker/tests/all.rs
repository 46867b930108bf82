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
        vec![Namespace::new("t", &["echo"])],
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
    let pid = sandbox_pid(session.pid().unwrap());
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
    assert_eq!(names, LAYERS);
    let always = ["no_new_privs", "rlimits", "seccomp"];
    assert!(
        ready
            .hardening
            .iter()
            .filter(|l| always.contains(&l.name.as_str()))
            .all(|l| l.active),
        "{ready:?}"
    );
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

/// Every layer a worker reports, in the order it applies them.
const LAYERS: [&str; 9] = [
    "user_ns",
    "mount_ns",
    "net_ns",
    "ipc_ns",
    "uts_ns",
    "pid_ns",
    "no_new_privs",
    "rlimits",
    "seccomp",
];

/// The process that runs the scripts: in its own PID namespace the worker is the only child of
/// the process the host started (the reaper), else that process itself.
fn sandbox_pid(pid: u32) -> u32 {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if after.split_whitespace().nth(1) == Some(pid.to_string().as_str()) {
            children.push(child);
        }
    }
    assert!(children.len() <= 1, "the worker has children {children:?}");
    children.first().copied().unwrap_or(pid)
}

/// A worker kept busy for a while, its `Ready` and the pid of the process running the script.
async fn busy_worker(command: WorkerCommand) -> (Session, isola_protocol::Ready, u32) {
    let backend = Backend::Workers(WorkerPool::new(command, 0));
    let session = backend
        .start(request(
            "await new Promise(r => setTimeout(r, 60000)); return 1",
            Limits::default(),
        ))
        .await
        .unwrap();
    let ready = session.ready().unwrap().clone();
    let pid = sandbox_pid(session.pid().unwrap());
    (session, ready, pid)
}

fn worker() -> WorkerCommand {
    WorkerCommand {
        program: env!("CARGO_BIN_EXE_isola-worker").into(),
        args: vec![],
    }
}

/// A worker started where the kernel gives it no namespace at all (as in a container whose
/// profile forbids them): the wrapper's own user namespace sets every namespace limit to 0.
fn worker_without_namespaces() -> WorkerCommand {
    WorkerCommand {
        program: "/usr/bin/unshare".into(),
        args: vec![
            "--user".into(),
            "--map-root-user".into(),
            "/bin/sh".into(),
            "-c".into(),
            "for n in user mnt net ipc uts pid; do echo 0 > /proc/sys/user/max_${n}_namespaces || exit 1; done; exec \"$0\"".into(),
            env!("CARGO_BIN_EXE_isola-worker").into(),
        ],
    }
}

/// The namespace `kind` (`net`, `mnt`, ...) of process `pid`.
fn ns(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// The layers a worker reports as its namespaces are the ones it really is in: each one
/// reported active differs from the host's, each one reported inactive is the host's. Where
/// they are active, the sandbox sees no network interface but `lo`, no file of the host, and is
/// the first process of its PID namespace.
#[tokio::test]
async fn workers_report_the_namespaces_they_are_really_in() {
    let (session, ready, pid) = busy_worker(worker()).await;
    let pid_s = pid.to_string();
    let pairs = [
        ("user_ns", "user"),
        ("mount_ns", "mnt"),
        ("net_ns", "net"),
        ("ipc_ns", "ipc"),
        ("uts_ns", "uts"),
        ("pid_ns", "pid"),
    ];
    for (layer, kind) in pairs {
        let active = ready.layer(layer).unwrap().active;
        let own = ns(&pid_s, kind) != ns("self", kind);
        // The mount layer means an empty root, not just a namespace of its own.
        if layer != "mount_ns" {
            assert_eq!(active, own, "{layer}: reported {active}, {ready:?}");
        } else if !own {
            assert!(!active, "{ready:?}");
        }
    }
    if ready.layer("net_ns").unwrap().active {
        let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
        let interfaces: Vec<&str> = dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(interfaces, ["lo"], "{dev}");
    }
    if ready.layer("mount_ns").unwrap().active {
        let root: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/root"))
            .unwrap()
            .collect();
        assert!(root.is_empty(), "the sandbox's root holds {root:?}");
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mounts")).unwrap();
        assert_eq!(mounts.lines().count(), 1, "{mounts}");
        assert!(mounts.starts_with("isola / tmpfs ro,"), "{mounts}");
    }
    if ready.layer("pid_ns").unwrap().active {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
        assert!(nspid.ends_with("\t1"), "{nspid}");
        assert_ne!(pid, session.pid().unwrap());
    }
    session.abort();
}

/// From inside, where the kernel allows namespaces: an empty root, no host files, only `lo`,
/// its own hostname, PID 1.
#[test]
fn inside_its_namespaces_a_worker_sees_nothing_of_the_host() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isola-worker"))
        .arg("--probe")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let seen = String::from_utf8(out.stdout).unwrap();
    // Whether this kernel gives an unprivileged process namespaces: if so, all of them.
    let allowed = std::process::Command::new("/usr/bin/unshare")
        .args(["--user", "--map-root-user", "--net", "--mount", "/bin/true"])
        .status()
        .is_ok_and(|s| s.success());
    if allowed {
        assert_eq!(
            seen,
            "root: \nhostname: isola\npid: 1\nuid: 0\n/etc/passwd visible: false\ninterfaces: lo\n"
        );
    } else {
        assert!(seen.contains("/etc/passwd visible: true"), "{seen}");
    }
}

/// Without namespaces a worker still runs, reports each namespace inactive with the kernel's
/// reason and keeps its other layers; a config that requires one refuses such a worker.
#[tokio::test]
async fn without_namespaces_workers_fall_back_and_say_so() {
    let (session, ready, pid) = busy_worker(worker_without_namespaces()).await;
    let names: Vec<&str> = ready.hardening.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, LAYERS);
    for layer in &ready.hardening {
        let namespace = layer.name.ends_with("_ns");
        assert_eq!(layer.active, !namespace, "{layer:?}");
        if namespace {
            let detail = layer.detail.as_deref().unwrap();
            assert!(
                detail.starts_with("the kernel refused a new ")
                    && detail.ends_with("No space left on device (os error 28)"),
                "{detail}"
            );
        }
    }
    assert_eq!(
        ns(&pid.to_string(), "net"),
        ns(&session.pid().unwrap().to_string(), "net")
    );
    session.abort();
    // Scripts still run.
    let backend = Backend::Workers(WorkerPool::new(worker_without_namespaces(), 0));
    let outcome = drive(&backend, "return await t.echo({a: 1})", Limits::default())
        .await
        .unwrap();
    assert_eq!(value(&outcome), serde_json::json!({"a": 1}));
    // Required: refused, naming the layer and why.
    let strict = WorkerPool::with_required(worker_without_namespaces(), 0, vec!["net_ns".into()]);
    let err = strict.checkout().await.err().unwrap().to_string();
    assert!(
        err.contains("runs without `net_ns`, which the config requires: the kernel refused a new network namespace"),
        "{err}"
    );
    // Where the kernel allows them, requiring them is fine.
    let mut want: Vec<String> = Vec::new();
    if WorkerPool::new(worker(), 0)
        .checkout()
        .await
        .unwrap()
        .ready()
        .hardening
        .iter()
        .all(|l| l.active)
    {
        want = LAYERS.iter().map(|s| s.to_string()).collect();
    }
    let all = WorkerPool::with_required(worker(), 0, want);
    assert!(all.checkout().await.is_ok());
}

/// Killing the process the host started (the reaper, in a PID namespace) kills the sandbox.
#[tokio::test]
async fn killing_the_worker_kills_the_process_in_its_pid_namespace() {
    let (session, _, pid) = busy_worker(worker()).await;
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !matches!(
                s.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next()),
                Some("Z" | "X")
            )
        })
    };
    assert!(alive(pid));
    session.abort();
    let until = Instant::now() + Duration::from_secs(2);
    while alive(pid) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!alive(pid), "the sandbox {pid} outlived its worker");
}
