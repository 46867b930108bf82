//! The hostile-input corpus (`fixtures/hostile/*.ts`, see its README): every attack script run
//! against `isola exec` (one process per case) and against one long-lived `isola mcp` over
//! stdio. Each case must end with the outcome its `// expect:` line names, within its
//! deadline; `isola exec` must exit with a status (never a signal); and after each case the
//! same `isola mcp` must still run a benign script and a tool call. At the end the server's
//! memory and process count are checked: nothing a case did may stay behind.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::server_bin;

/// The corpus's deadline (`isola.limits.deadlineMs`) and memory limit.
const DEADLINE_MS: u64 = 1000;
const MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// How long past the deadline a case may take to end, start of the servers included.
const SLACK: Duration = Duration::from_millis(4000);

/// What a case must end with.
#[derive(Debug, Clone)]
enum Expect {
    /// Succeeds; with the value given; with a result that is a string carrying `marker`
    /// (`truncated`: `[isola: truncated`, `marker`: any `[isola: ` note); with at least `calls`
    /// calls in its record.
    Ok {
        value: Option<Value>,
        marker: Option<&'static str>,
        calls: usize,
    },
    /// Fails with this kind (`any`: any kind but `internal`), and this limit.
    Error {
        kind: Option<String>,
        limit: Option<String>,
    },
}

struct Case {
    name: String,
    path: PathBuf,
    code: String,
    expect: Expect,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hostile")
}

fn parse_expect(name: &str, line: &str) -> Expect {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("ok") => {
            let mut value = None;
            let mut marker = None;
            let mut calls = 0;
            let rest: Vec<&str> = words.collect();
            let mut json_text = Vec::new();
            for w in rest {
                if let Some(n) = w.strip_prefix("calls>=") {
                    calls = n.parse().unwrap();
                } else if w == "truncated" {
                    marker = Some("[isola: truncated");
                } else if w == "marker" {
                    marker = Some("[isola: ");
                } else {
                    json_text.push(w);
                }
            }
            if !json_text.is_empty() {
                let text = json_text.join(" ");
                value = Some(
                    serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{name}: bad expected value {text}: {e}")),
                );
            }
            Expect::Ok {
                value,
                marker,
                calls,
            }
        }
        Some("error") => {
            let kind = words
                .next()
                .unwrap_or_else(|| panic!("{name}: error of what kind?"));
            Expect::Error {
                kind: (kind != "any").then(|| kind.to_string()),
                limit: words.next().map(str::to_string),
            }
        }
        _ => panic!("{name}: the expect line must start with `ok` or `error`: {line}"),
    }
}

fn corpus() -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ts"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let code = std::fs::read_to_string(&path).unwrap();
            let mut header = code.lines().take(2);
            assert!(
                header.next().is_some_and(|l| l.starts_with("// hostile: ")),
                "{name}: the first line must say what the case tries (`// hostile: ...`)"
            );
            let expect = header
                .next()
                .and_then(|l| l.strip_prefix("// expect: "))
                .unwrap_or_else(|| panic!("{name}: the second line must be `// expect: ...`"));
            let expect = parse_expect(&name, expect);
            Case {
                name,
                path,
                code,
                expect,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        cases.len() >= 30,
        "only {} cases in the corpus",
        cases.len()
    );
    cases
}

/// A project whose config runs server-everything with the corpus's limits.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "mcpServers": {"everything": {"command": server_bin("mcp-server-everything")}},
        "isola": {"limits": {"deadlineMs": DEADLINE_MS, "memoryBytes": MEMORY_BYTES}},
    });
    std::fs::write(dir.path().join("isola.json"), config.to_string()).unwrap();
    dir
}

/// Whether `record` is the outcome `case` expects; the reason when not.
fn check(case: &Case, record: &Value) -> Result<(), String> {
    let ok = record["ok"] == json!(true);
    match &case.expect {
        Expect::Ok {
            value,
            marker,
            calls,
        } => {
            if !ok {
                return Err(format!("expected success, got {}", record["error"]));
            }
            if let Some(v) = value
                && &record["result"] != v
            {
                return Err(format!("expected {v}, got {}", record["result"]));
            }
            if let Some(m) = marker
                && !record["result"].as_str().is_some_and(|r| r.contains(m))
            {
                return Err(format!(
                    "expected a result with `{m}`, got {}",
                    record["result"]
                ));
            }
            let n = record["calls"].as_array().map_or(0, Vec::len);
            if n < *calls {
                return Err(format!(
                    "expected at least {calls} calls in the record, got {n}"
                ));
            }
        }
        Expect::Error { kind, limit } => {
            if ok {
                return Err(format!("expected an error, got {}", record["result"]));
            }
            let err = &record["error"];
            let got = err["kind"].as_str().unwrap_or("");
            match kind {
                Some(k) if got != k => {
                    return Err(format!("expected a {k} error, got {err}"));
                }
                None if got == "internal" || got.is_empty() => {
                    return Err(format!("expected a script's error, got {err}"));
                }
                _ => {}
            }
            if let Some(l) = limit
                && err["limit"].as_str() != Some(l.as_str())
            {
                return Err(format!("expected the {l} limit, got {err}"));
            }
        }
    }
    Ok(())
}

#[test]
fn every_hostile_case_against_isola_exec() {
    let cases = corpus();
    let dir = project();
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Two at a time: each case is a process of its own.
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let started = Instant::now();
                    let out = Command::new(env!("CARGO_BIN_EXE_isola"))
                        .arg("exec")
                        .arg(&case.path)
                        .arg("--json")
                        .current_dir(dir.path())
                        .output()
                        .unwrap();
                    let took = started.elapsed();
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let verdict = match out.status.code() {
                        None => Err(format!("killed by a signal: {}", out.status)),
                        Some(0 | 1) => serde_json::from_slice::<Value>(&out.stdout)
                            .map_err(|e| format!("no record ({e}); stderr: {stderr}"))
                            .and_then(|record| check(case, &record)),
                        Some(code) => Err(format!("exit {code}: {stderr}")),
                    }
                    .and_then(|()| {
                        if took > Duration::from_millis(DEADLINE_MS) + SLACK {
                            Err(format!("took {took:?}"))
                        } else {
                            Ok(())
                        }
                    });
                    if let Err(why) = verdict {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{}: {why}", case.name));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `isola mcp` over stdio, spoken to line by line.
struct McpStdio {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    next_id: u64,
}

impl Drop for McpStdio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl McpStdio {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
            .arg("mcp")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut mcp = McpStdio {
            child,
            stdin,
            lines,
            next_id: 0,
        };
        mcp.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "hostile-corpus", "version": "0"}}),
            Duration::from_secs(30),
        )
        .unwrap();
        mcp.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        mcp
    }

    fn send(&mut self, msg: &Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// The response to a new request, within `within`.
    fn request(&mut self, method: &str, params: Value, within: Duration) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|_| format!("no answer to {method} within {within:?}"))?;
            let msg: Value =
                serde_json::from_str(&line).map_err(|e| format!("not JSON ({e}): {line}"))?;
            if msg["id"] == json!(id) {
                return Ok(msg);
            }
        }
    }

    /// The record of `execute` on `code`.
    fn execute(&mut self, code: &str, within: Duration) -> Result<Value, String> {
        let answer = self.request(
            "tools/call",
            json!({"name": "execute", "arguments": {"code": code}}),
            within,
        )?;
        answer
            .pointer("/result/structuredContent")
            .cloned()
            .ok_or_else(|| format!("no record in {answer}"))
    }

    /// A benign script and a tool call, as after every case.
    fn still_serves(&mut self) -> Result<(), String> {
        let within = Duration::from_secs(10);
        let r = self.execute("return 1 + 1", within)?;
        if r["result"] != json!(2) {
            return Err(format!("a benign script then gave {r}"));
        }
        let r = self.execute(
            "return await everything.echo({ message: 'still here' })",
            within,
        )?;
        if r["result"] != json!("Echo: still here") {
            return Err(format!("a tool call then gave {r}"));
        }
        Ok(())
    }
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn every_hostile_case_against_one_long_lived_isola_mcp() {
    let cases = corpus();
    let dir = project();
    let mut mcp = McpStdio::start(dir.path());
    mcp.still_serves().unwrap();
    let pid = mcp.child.id();
    let mut failures = Vec::new();
    for case in &cases {
        let started = Instant::now();
        let verdict = mcp
            .execute(&case.code, Duration::from_millis(DEADLINE_MS) + SLACK)
            .and_then(|record| check(case, &record));
        let took = started.elapsed();
        if let Err(why) = verdict {
            failures.push(format!("{}: {why} (after {took:?})", case.name));
        }
        if let Err(why) = mcp.still_serves() {
            panic!(
                "after {}, isola mcp no longer serves: {why}\nearlier failures:\n{}",
                case.name,
                failures.join("\n")
            );
        }
    }
    // Nothing stayed behind: not the memory of a case, not a process.
    let rss = rss_kib(pid);
    assert!(
        rss < 400 * 1024,
        "isola mcp holds {} MiB after the corpus",
        rss / 1024
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
