//! Nothing of Isola's outlives it: after `kill -9` of the host, its workers (even one stuck in
//! a native operation) and its stdio MCP servers are gone within a second.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Project;

/// The process ids whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after its `)`.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let ppid = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// Whether `pid` still runs (a zombie waiting to be reaped does not count).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            !matches!(after.split_whitespace().next(), Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `pid`'s children and theirs, all the way down (a worker in its own PID namespace is the
/// child of the process the host started).
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = children(pid);
    let mut i = 0;
    while i < all.len() {
        let more = children(all[i]);
        all.extend(more);
        i += 1;
    }
    all
}

fn kill_9_and_check(host: &mut std::process::Child, descendants: &[u32]) {
    assert!(!descendants.is_empty());
    let killed = Instant::now();
    // SAFETY: a plain kill of our own child.
    unsafe { libc::kill(host.id() as i32, libc::SIGKILL) };
    let _ = host.wait();
    wait_for("the host's processes to die", || {
        descendants.iter().all(|p| !alive(*p)) || killed.elapsed() > Duration::from_secs(1)
    });
    let left: Vec<u32> = descendants.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "still running 1 s after kill -9: {left:?}");
}

#[test]
fn kill_9_of_isola_mcp_leaves_no_worker_or_server() {
    let p = Project::new();
    let mut host = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["mcp"])
        .current_dir(p.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(host.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("functions in") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "isola mcp exited");
    }
    // Two servers and two warm workers.
    let pid = host.id();
    wait_for("the servers and workers", || children(pid).len() >= 4);
    kill_9_and_check(&mut host, &descendants(pid));
}

#[test]
fn kill_9_of_isola_exec_stops_a_worker_stuck_in_a_native_operation() {
    let p = Project::new();
    p.write("stuck.ts", "Array(2 ** 32 - 1).join(); return 1;");
    let mut host = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["exec", "--timeout", "60s", "stuck.ts"])
        .current_dir(p.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = host.id();
    // Wait until a child burns a CPU (the worker in `join`).
    let busy = |child: u32| {
        std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.split_whitespace().next() == Some("R"))
        })
    };
    wait_for("a busy worker", || descendants(pid).into_iter().any(busy));
    std::thread::sleep(Duration::from_millis(200));
    kill_9_and_check(&mut host, &descendants(pid));
}
