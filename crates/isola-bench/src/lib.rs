//! The measurements behind `isola-bench` (and shared pieces of the criterion benches).
//!
//! Figures are recorded in `BENCHMARKS.md` with the command that produced them. Peers are
//! measured in the same run and reported as ratios: these machines are noisy.
//!
//! ```no_run
//! # async fn demo() {
//! let report = isola_bench::exec_latency(None, 1000, None).await;
//! println!("{report}");
//! # }
//! ```

pub mod check;
pub mod journal;
pub mod load;
pub mod peers;
pub mod tokens;

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use isola_engine::{Engine, ExecOptions};
use isola_protocol::{CallResult, ExecRequest, Limits, LogLevel, Namespace};
use isola_sandbox::{Host, Wake};
use isola_test_support::tools::InstantTools;
use isola_worker::{Backend, WorkerCommand, WorkerPool};
use serde_json::{Map, Value};

/// The trivial TypeScript script every latency figure runs.
pub const TRIVIAL_TS: &str = "const x: number = 20;\nconst y: number = 22;\nreturn x + y;\n";

/// Percentiles of a set of durations.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
}

impl Stats {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let n = samples.len().max(1);
        let at = |q: f64| {
            samples
                .get(((n as f64 * q) as usize).min(n - 1))
                .copied()
                .unwrap_or_default()
        };
        let total: Duration = samples.iter().sum();
        Stats {
            n: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            mean: total / n as u32,
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} · p99 {} · mean {} (n={})",
            us(self.p50),
            us(self.p99),
            us(self.mean),
            self.n
        )
    }
}

fn us(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros >= 10_000.0 {
        format!("{:.1} ms", micros / 1000.0)
    } else {
        format!("{micros:.1} µs")
    }
}

/// Microseconds per awaited call through the engine (validation, dispatch, the sandbox's
/// channel, unwrapping) to a tool that answers at once; median of `rounds` runs of `calls`.
pub async fn engine_round_trip(engine: &Engine, calls: u32, rounds: u32) -> Result<f64, String> {
    let script = format!(
        "for (let i = 0; i < {calls}; i++) {{ await bench.noop({{ i }}); }}\nreturn {calls};"
    );
    let limits = Limits {
        max_tool_calls: u32::MAX,
        ..engine.limits().clone()
    };
    let mut samples = Vec::new();
    for _ in 0..rounds.max(1) {
        let options = ExecOptions {
            limits: Some(limits.clone()),
            ..ExecOptions::default()
        };
        let rec = engine.execute(&script, options).await;
        if !rec.ok {
            return Err(format!("the run failed: {:?}", rec.error));
        }
        samples.push(Duration::from_secs_f64(rec.timings.run_ms / 1000.0));
    }
    Ok(Stats::of(samples).p50.as_secs_f64() * 1e6 / f64::from(calls))
}

/// A host whose one binding (`bench.noop`) answers at once: the in-process binding path.
pub struct NoopHost;

impl Host for NoopHost {
    fn call(&mut self, _id: u32, _binding: u32, _args: String) -> Option<CallResult> {
        Some(CallResult::Ok {
            value: "null".into(),
        })
    }
    fn timer(&mut self, _: u32, _: f64) {}
    fn clear_timer(&mut self, _: u32) {}
    fn log(&mut self, _: LogLevel, _: String) {}
    fn wait(&mut self, _: Duration) -> Wake {
        Wake::TimedOut
    }
}

/// Transpile and run one script in a fresh in-process sandbox: the in-process execution path
/// without any async machinery.
pub fn run_direct(source: &str, namespaces: &[Namespace]) -> isola_protocol::RunOutcome {
    let js = match isola_transpile::transpile(source, "bench.ts") {
        Ok(t) => t.js,
        Err(e) => throwing_script(&e.message),
    };
    // Default limits, but no cap on calls: the binding benchmark makes 10,000.
    let limits = Limits {
        max_tool_calls: u32::MAX,
        ..Limits::default()
    };
    let request = ExecRequest::new(js, namespaces.to_vec(), limits);
    isola_sandbox::run(
        &request,
        Rc::new(RefCell::new(NoopHost)),
        &Arc::new(AtomicBool::new(false)),
    )
}

fn throwing_script(message: &str) -> String {
    // A benchmark script that does not transpile is a bug in this file; run something that
    // reports it instead of panicking.
    format!("(async () => {{ throw new Error({message:?}) }})()")
}

pub fn noop_namespace() -> Vec<Namespace> {
    vec![Namespace::new("bench", &["noop"])]
}

/// Microseconds per awaited call over `calls` sequential calls to the no-op binding.
pub fn binding_round_trip(calls: u32) -> f64 {
    let script = format!(
        "for (let i = 0; i < {calls}; i++) {{ await bench.noop({{ i }}); }}\nreturn {calls};"
    );
    let base = "return 0;";
    let ns = noop_namespace();
    // Subtract the cost of an empty run so only the calls are counted.
    let t0 = Instant::now();
    let _ = run_direct(base, &ns);
    let empty = t0.elapsed();
    let t1 = Instant::now();
    let out = run_direct(&script, &ns);
    let full = t1.elapsed();
    if out.result.is_err() {
        return f64::NAN;
    }
    (full.saturating_sub(empty)).as_secs_f64() * 1e6 / f64::from(calls)
}

/// Bytes of JS heap a live sandbox holds before running anything substantial.
pub fn idle_sandbox_bytes() -> u64 {
    run_direct("return 0;", &[]).memory_used_bytes
}

/// Resident memory of a process, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `isola-bench exec`: the trivial script in-process and through a warm worker, the binding
/// round trip, sandbox memory, and `deno run` as the peer.
pub async fn exec_latency(
    worker: Option<WorkerCommand>,
    iterations: u32,
    deno: Option<&Path>,
) -> String {
    let mut out = String::new();
    let n = iterations.max(10);

    // In-process, direct: transpile + fresh runtime + run.
    for _ in 0..50 {
        let _ = run_direct(TRIVIAL_TS, &[]);
    }
    let direct: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let _ = run_direct(TRIVIAL_TS, &[]);
            t.elapsed()
        })
        .collect();
    let direct = Stats::of(direct);
    let _ = writeln!(
        out,
        "trivial TS script, in-process (strip + fresh runtime + run): {direct}"
    );

    // In-process through the engine (a sandbox thread per execution, async bridge).
    let engine = Engine::new(
        Arc::new(InstantTools::NONE),
        Backend::InProcess,
        Limits::default(),
    );
    let inproc = timed_executions(&engine, n).await;
    let _ = writeln!(
        out,
        "trivial TS script, in-process through the engine:           {inproc}"
    );

    let inproc_engine = Engine::new(
        Arc::new(InstantTools::NOOP),
        Backend::InProcess,
        Limits::default(),
    );
    engine_round_trip_line(&mut out, &inproc_engine, "in-process").await;

    // Through a warm worker.
    let mut worker_stats = None;
    if let Some(cmd) = worker {
        let pool = WorkerPool::new(cmd, 2);
        if let Err(e) = pool.warm_up().await {
            let _ = writeln!(out, "worker: cannot start workers: {e}");
        } else {
            let engine = Engine::new(
                Arc::new(InstantTools::NONE),
                Backend::Workers(pool.clone()),
                Limits::default(),
            );
            let s = timed_executions(&engine, n).await;
            let _ = writeln!(
                out,
                "trivial TS script, through a warm worker process:           {s}"
            );
            worker_stats = Some(s);
            let tools_engine = Engine::new(
                Arc::new(InstantTools::NOOP),
                Backend::Workers(pool.clone()),
                Limits::default(),
            );
            engine_round_trip_line(&mut out, &tools_engine, "worker").await;
            // Memory of an idle worker process.
            if let Ok(w) = Backend::Workers(pool.clone())
                .start(trivial_request())
                .await
            {
                let rss = w.pid().and_then(rss_bytes);
                w.abort();
                if let Some(rss) = rss {
                    let _ = writeln!(
                        out,
                        "idle worker process resident memory: {:.1} MiB",
                        rss as f64 / 1048576.0
                    );
                }
            }
        }
    }

    let per_call = binding_round_trip(10_000);
    let _ = writeln!(
        out,
        "host-binding round trip, 10,000 awaited calls in-process: {per_call:.2} µs per call"
    );
    let idle = idle_sandbox_bytes();
    let _ = writeln!(
        out,
        "JS heap of a live sandbox (runtime + context + prelude): {:.1} KiB",
        idle as f64 / 1024.0
    );

    if let Some(deno) = deno {
        match deno_run(deno, 20) {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "peer: `deno run` of the same script (process per run):    {s}"
                );
                let _ = writeln!(
                    out,
                    "ratio deno / isola in-process: {:.0}x; deno / isola worker: {}",
                    s.p50.as_secs_f64() / direct.p50.as_secs_f64(),
                    worker_stats
                        .map(|w| format!("{:.0}x", s.p50.as_secs_f64() / w.p50.as_secs_f64()))
                        .unwrap_or_else(|| "n/a".into())
                );
            }
            Err(e) => {
                let _ = writeln!(out, "peer: deno failed: {e}");
            }
        }
    } else {
        let _ = writeln!(
            out,
            "peer: no deno binary given (--deno PATH or ISOLA_DENO)"
        );
    }
    out
}

async fn engine_round_trip_line(out: &mut String, engine: &Engine, backend: &str) {
    match engine_round_trip(engine, 2_000, 5).await {
        Ok(us) => {
            let _ = writeln!(
                out,
                "tool-call round trip through the engine ({backend}), 2,000 awaited calls to an instant tool: {us:.1} µs per call"
            );
        }
        Err(e) => {
            let _ = writeln!(out, "engine round trip ({backend}) failed: {e}");
        }
    }
}

/// A request that keeps a worker waiting (for a timer no one fires) until it is aborted.
fn trivial_request() -> ExecRequest {
    ExecRequest::new(
        "(async () => { await new Promise(r => setTimeout(r, 200)); })()".into(),
        Vec::new(),
        Limits::default(),
    )
}

async fn timed_executions(engine: &Engine, n: u32) -> Stats {
    for _ in 0..20 {
        let _ = engine.execute(TRIVIAL_TS, ExecOptions::default()).await;
    }
    let mut samples = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        let r = engine.execute(TRIVIAL_TS, ExecOptions::default()).await;
        samples.push(t.elapsed());
        debug_assert!(r.ok);
    }
    Stats::of(samples)
}

fn deno_run(deno: &Path, runs: u32) -> Result<Stats, String> {
    let dir = std::env::temp_dir().join(format!("isola-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("trivial.ts");
    // The same computation as TRIVIAL_TS, as a module that prints its result.
    std::fs::write(
        &file,
        "const x: number = 20;\nconst y: number = 22;\nconsole.log(x + y);\n",
    )
    .map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for i in 0..runs + 2 {
        let t = Instant::now();
        let out = std::process::Command::new(deno)
            .args(["run", "--quiet", "--no-config", "--no-lock"])
            .arg(&file)
            .env("DENO_DIR", dir.join("deno-dir"))
            .env("NO_COLOR", "1")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", deno.display()))?;
        if !out.status.success() || String::from_utf8_lossy(&out.stdout).trim() != "42" {
            return Err(format!(
                "deno run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if i >= 2 {
            samples.push(t.elapsed());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Stats::of(samples))
}

/// `isola-bench mcp`: `calls` sequential calls to a stdio server's `echo` tool, `rounds` times,
/// alternating within each round:
///
/// * through Isola: one script awaiting the calls one after another;
/// * directly with rmcp on the same connection (the hub's rmcp peer, so the same server
///   process answers both: the fair baseline, and the one the overhead is computed against);
/// * directly with rmcp from a client of its own, with its own server process (for reference:
///   two processes of the same server can differ by tens of percent on a small VM);
/// * through `McpHub::call` (Isola's MCP layer without the sandbox);
/// * through Isola again with the built-in default policy's gate on every call (its cost is the
///   median of the per-round ratios of the two Isola runs, taken in alternating order).
pub async fn mcp_overhead(
    hub: Arc<isola_mcp::McpHub>,
    backend: Backend,
    server: &isola_config::ServerConfig,
    server_name: &str,
    calls: u32,
    rounds: u32,
) -> Result<String, String> {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::TokioChildProcess;

    let isola_config::ServerConfig::Stdio {
        command,
        args,
        env,
        cwd,
        inherit_env,
    } = server
    else {
        return Err(format!("server `{server_name}` is not a stdio server"));
    };
    let where_ = match backend {
        Backend::InProcess => "in-process sandbox",
        Backend::Workers(_) => "worker sandbox",
    };
    let engine = Engine::new(hub.clone(), backend, Limits::default());
    let ns = engine
        .api()
        .api
        .namespaces
        .iter()
        .find(|n| n.server == server_name)
        .map(|n| n.ident.clone())
        .ok_or_else(|| format!("server `{server_name}` has no tools (is it connected?)"))?;
    let script = format!(
        "for (let i = 0; i < {calls}; i++) {{ await {ns}.echo({{ message: 'm' + i }}); }}\nreturn {calls};"
    );
    let shared = hub
        .peer(server_name)
        .await
        .ok_or_else(|| format!("server `{server_name}` is not connected"))?;

    let mut cmd = tokio::process::Command::new(command);
    // The environment Isola gives the server (see isola-mcp), so both sides talk to the same.
    let inherited = isola_config::env::inherited(std::env::vars(), *inherit_env);
    cmd.args(args).env_clear().envs(inherited).envs(env);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let own = ().serve(transport).await.map_err(|e| format!("rmcp initialize failed: {e}"))?;

    let message = |i: u32| {
        let mut args = Map::new();
        args.insert("message".into(), Value::String(format!("m{i}")));
        args
    };
    let echo = |i: u32| CallToolRequestParams::new("echo").with_arguments(message(i));
    let [
        mut isola,
        mut in_tool,
        mut direct,
        mut own_process,
        mut via_hub,
    ] = std::array::from_fn(|_| Vec::new());
    // Per call, from the execution's trace: each call's time, and the time from one call's
    // answer to the script's next call (the sandbox's turn and the hand-overs).
    let (mut call_times, mut gaps, mut direct_calls) = (Vec::new(), Vec::new(), Vec::new());
    let (mut before_first, mut after_last) = (Vec::new(), Vec::new());
    let governor = isola_control::Governor::new(
        Arc::new(isola_policy::Policy::builtin()),
        None,
        Duration::from_secs(1),
    );
    let mut policy_ratios = Vec::new();
    for round in 0..rounds + 1 {
        let gated = async || {
            let mut options = ExecOptions::default();
            options.gates.push(governor.gate(isola_control::ExecInfo {
                id: format!("bench-{round}"),
                session: None,
                principal: "bench".into(),
                mode: isola_policy::Mode::Live,
                code: script.clone(),
                file: "bench.ts".into(),
                resumable: false,
                purpose: None,
            }));
            let t = Instant::now();
            let rec = engine.execute(&script, options).await;
            (t.elapsed(), rec.ok)
        };
        let tg_first = if round % 2 == 0 {
            Some(gated().await)
        } else {
            None
        };
        let t = Instant::now();
        let rec = engine.execute(&script, ExecOptions::default()).await;
        let ti = t.elapsed();
        if !rec.ok {
            return Err(format!("the Isola run failed: {:?}", rec.error));
        }
        let (tg, gated_ok) = match tg_first {
            Some(r) => r,
            None => gated().await,
        };
        if !gated_ok {
            return Err("the Isola run with the default policy failed".into());
        }
        if round > 0 {
            policy_ratios.push(tg.as_secs_f64() / ti.as_secs_f64());
        }
        let t = Instant::now();
        for i in 0..calls {
            let c = Instant::now();
            shared
                .call_tool(echo(i))
                .await
                .map_err(|e| format!("direct call failed: {e}"))?;
            if round > 0 {
                direct_calls.push(c.elapsed());
            }
        }
        let td = t.elapsed();
        let t = Instant::now();
        for i in 0..calls {
            own.call_tool(echo(i))
                .await
                .map_err(|e| format!("direct call failed: {e}"))?;
        }
        let to = t.elapsed();
        let t = Instant::now();
        for i in 0..calls {
            hub.call(server_name, "echo", message(i))
                .await
                .map_err(|e| format!("hub call failed: {e}"))?;
        }
        let th = t.elapsed();
        if round > 0 {
            let tool_ms: f64 = rec.calls.iter().map(|c| c.duration_ms).sum();
            in_tool.push(Duration::from_secs_f64(tool_ms / 1000.0));
            let from_ms = |ms: f64| Duration::from_secs_f64((ms / 1000.0).max(0.0));
            call_times.extend(rec.calls.iter().map(|c| from_ms(c.duration_ms)));
            gaps.extend(
                rec.calls
                    .windows(2)
                    .map(|w| from_ms(w[1].started_ms - w[0].started_ms - w[0].duration_ms)),
            );
            if let (Some(first), Some(last)) = (rec.calls.first(), rec.calls.last()) {
                // Milliseconds from the start of `execute` to the run's start.
                let setup = rec.timings.transpile_ms + rec.timings.queue_ms;
                before_first.push(from_ms(setup + first.started_ms));
                after_last.push(from_ms(
                    rec.timings.total_ms - setup - last.started_ms - last.duration_ms,
                ));
            }
            isola.push(ti);
            direct.push(td);
            own_process.push(to);
            via_hub.push(th);
        }
    }
    let _ = own.cancel().await;
    // Each round runs Isola and the direct calls back to back, so their ratio within a round
    // is robust to the slow drifts of a shared VM; the median over rounds is the figure.
    let mut ratios: Vec<f64> = isola
        .iter()
        .zip(&direct)
        .map(|(i, d)| i.as_secs_f64() / d.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median_ratio = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
    policy_ratios.sort_by(f64::total_cmp);
    let policy_ratio = policy_ratios
        .get(policy_ratios.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    let [si, st, sd, so, sh] = [isola, in_tool, direct, own_process, via_hub].map(Stats::of);
    let per_call =
        |a: &Stats, b: &Stats| (a.p50.as_secs_f64() - b.p50.as_secs_f64()) * 1e6 / f64::from(calls);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{calls} sequential `echo` calls to `{server_name}` over stdio, {rounds} rounds:"
    );
    let _ = writeln!(out, "  through Isola (one script, {where_}):  {si}");
    let _ = writeln!(
        out,
        "    of which inside tool calls: {st}; between calls {:.1} µs per call (p50)",
        per_call(&si, &st)
    );
    let [calls_stats, gap_stats, direct_stats] = [call_times, gaps, direct_calls].map(Stats::of);
    let [first_stats, last_stats] = [before_first, after_last].map(Stats::of);
    let _ = writeln!(
        out,
        "    per call: tool call {calls_stats}; answer to next call {gap_stats}"
    );
    let _ = writeln!(
        out,
        "    per execution: start to first call {first_stats}; last answer to the end {last_stats}"
    );
    let _ = writeln!(out, "  directly with rmcp, same connection:      {sd}");
    let _ = writeln!(out, "    per call: {direct_stats}");
    let _ = writeln!(out, "  directly with rmcp, own server process:   {so}");
    let _ = writeln!(out, "  through McpHub::call (no sandbox):        {sh}");
    let _ = writeln!(
        out,
        "  Isola overhead (p50, against rmcp on the same connection): {:+.1}%  ({:.1} µs per call)",
        (si.p50.as_secs_f64() / sd.p50.as_secs_f64() - 1.0) * 100.0,
        per_call(&si, &sd)
    );
    let _ = writeln!(
        out,
        "  Isola overhead (median of per-round ratios, same connection): {:+.1}%",
        (median_ratio - 1.0) * 100.0
    );
    let _ = writeln!(
        out,
        "  the default policy's gate on every call (median of per-round ratios, Isola with / without): {:+.1}%",
        (policy_ratio - 1.0) * 100.0
    );
    Ok(out)
}
