//! `isola-bench load`: concurrent clients of a running `isola mcp --http`, each running
//! executions of a script that makes three tool calls to server-everything; executions per
//! second, worker processes started, and the memory of the isola process as it goes.
//!
//! The `isola` measured is any binary (`--isola`), so an older build runs the same workload in
//! the same run. Worker processes are counted by sampling `/proc` every 2 ms for children of the
//! isola process with `__worker` on their command line (a worker that lives under 2 ms could be
//! missed; a worker lives at least as long as one execution with three tool calls).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Map, Value, json};

/// What to run.
#[derive(Clone)]
pub struct LoadOptions {
    pub label: String,
    pub isola: PathBuf,
    /// `mcp-server-everything`.
    pub server: PathBuf,
    pub clients: usize,
    pub executions: u64,
    /// `isola.maxWorkers` in the config (left out when `None`: older builds reject the key).
    pub max_workers: Option<usize>,
    pub workers: usize,
    /// Through `isola serve`'s `POST /v1/executions` instead of MCP's `execute` at `/mcp`
    /// (the same server: `isola serve` serves both).
    pub api: bool,
    /// The store isola journals to (`ISOLA_STORE`); `None`: SQLite in the temporary directory.
    pub store: Option<String>,
}

/// What was measured.
pub struct LoadReport {
    pub executions: u64,
    pub failed: u64,
    pub seconds: f64,
    /// From the moment every client had its session to the last execution's answer: the
    /// executions alone, without the clients' `initialize` and closing.
    pub executing_seconds: f64,
    pub worker_starts: usize,
    pub most_workers_alive: usize,
    /// (executions done, isola's RSS in KiB) samples.
    pub rss: Vec<(u64, u64)>,
}

impl LoadReport {
    pub fn text(&self, label: &str) -> String {
        let mut out = format!(
            "{label}: {} executions ({} failed) in {:.2} s = {:.0} executions/s ({:.2} s = {:.0}/s from all sessions open to the last answer); worker processes started: {}, at most {} alive at once\n",
            self.executions,
            self.failed,
            self.seconds,
            self.executions as f64 / self.seconds,
            self.executing_seconds,
            self.executions as f64 / self.executing_seconds,
            self.worker_starts,
            self.most_workers_alive,
        );
        out.push_str("  isola RSS (executions done → MiB):");
        for (done, kib) in &self.rss {
            out.push_str(&format!(" {done}→{:.1}", *kib as f64 / 1024.0));
        }
        out.push('\n');
        out
    }
}

const SCRIPT: &str = "const a = await everything.echo({ message: 'a' });\nconst b = await everything.echo({ message: 'b' });\nconst c = await everything.echo({ message: 'c' });\nreturn [a, b, c].length;";

struct Served {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(options: &LoadOptions) -> Result<Served, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut settings = json!({"workers": options.workers});
    if let Some(max) = options.max_workers {
        settings["maxWorkers"] = json!(max);
    }
    let config = json!({
        "mcpServers": {"everything": {"command": options.server}},
        "isola": settings,
    });
    let path = dir.path().join("isola.json");
    std::fs::write(&path, config.to_string()).map_err(|e| e.to_string())?;
    let command = if options.api { "serve" } else { "mcp" };
    // The journal (on by default) in the temporary directory, not the user's data directory,
    // so runs do not share a growing database (ISOLA_STORE, when set, still wins).
    let mut command_line = Command::new(&options.isola);
    command_line
        .args([command, "--http", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env("XDG_DATA_HOME", dir.path());
    if let Some(store) = &options.store {
        command_line.env("ISOLA_STORE", store);
    }
    let mut child = command_line
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", options.isola.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line
                    .trim()
                    .split("serving MCP (Streamable HTTP) at ")
                    .nth(1)
                {
                    break url.to_owned();
                }
            }
            _ => return Err(format!("isola {command} --http exited before serving")),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(Served {
        child,
        url,
        _dir: dir,
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Worker children of `parent` alive now.
fn workers_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1.to_owned();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            ppid == Some(parent)
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmd| cmd.windows(8).any(|w| w == b"__worker"))
        })
        .collect()
}

/// Run the workload against `options.isola`.
pub async fn run(options: &LoadOptions) -> Result<LoadReport, String> {
    // reqwest is built without a TLS provider (as in isola-mcp); install ring once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let served = serve(options)?;
    let pid = served.child.id();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = HashSet::new();
            let mut most = 0;
            while !stop.load(Ordering::SeqCst) {
                let alive = workers_of(pid);
                most = most.max(alive.len());
                seen.extend(alive);
                std::thread::sleep(Duration::from_millis(2));
            }
            (seen.len(), most)
        })
    };
    let started = Instant::now();
    let per_client = options.executions / options.clients as u64;
    let step = (options.executions / 10).max(1);
    let rss = Arc::new(std::sync::Mutex::new(vec![(0, rss_kib(pid))]));
    // Every client's session first; the executions start together.
    let ready = Arc::new(tokio::sync::Barrier::new(options.clients));
    let opened = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let last = Arc::new(std::sync::Mutex::new(started));
    let tasks: Vec<_> = (0..options.clients)
        .map(|_| {
            let url = served.url.clone();
            let (done, failed, rss) = (done.clone(), failed.clone(), rss.clone());
            let (ready, opened, last) = (ready.clone(), opened.clone(), last.clone());
            let api = options.api;
            tokio::spawn(async move {
                let client = Client::connect(&url, api).await;
                // Even a client that failed to connect waits, or the others would wait forever.
                ready.wait().await;
                let client = client?;
                opened
                    .lock()
                    .map_err(|e| e.to_string())?
                    .get_or_insert_with(Instant::now);
                for _ in 0..per_client {
                    if !client.execute().await {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    {
                        let mut last = last.lock().map_err(|e| e.to_string())?;
                        *last = (*last).max(Instant::now());
                    }
                    if n % step == 0 {
                        rss.lock()
                            .map_err(|e| e.to_string())?
                            .push((n, rss_kib(pid)));
                    }
                }
                client.close().await;
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let opened = opened.lock().map_err(|e| e.to_string())?.unwrap_or(started);
    let executing_seconds = last
        .lock()
        .map_err(|e| e.to_string())?
        .saturating_duration_since(opened)
        .as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let (worker_starts, most_workers_alive) = sampler.join().map_err(|_| "sampler panicked")?;
    let rss = rss.lock().map_err(|e| e.to_string())?.clone();
    Ok(LoadReport {
        executions: done.load(Ordering::SeqCst),
        failed: failed.load(Ordering::SeqCst),
        seconds,
        executing_seconds,
        worker_starts,
        most_workers_alive,
        rss,
    })
}

/// One client of the workload: an MCP session, or the HTTP API.
enum Client {
    Mcp(rmcp::service::RunningService<rmcp::RoleClient, ()>),
    Api {
        http: reqwest::Client,
        /// `http://127.0.0.1:PORT/v1/executions`.
        url: String,
    },
}

impl Client {
    async fn connect(mcp_url: &str, api: bool) -> Result<Client, String> {
        if api {
            let base = mcp_url.trim_end_matches("/mcp");
            return Ok(Client::Api {
                http: reqwest::Client::new(),
                url: format!("{base}/v1/executions"),
            });
        }
        let transport = StreamableHttpClientTransport::from_uri(mcp_url.to_owned());
        let service = ().serve(transport).await.map_err(|e| e.to_string())?;
        Ok(Client::Mcp(service))
    }

    /// Run the script once; whether it succeeded.
    async fn execute(&self) -> bool {
        match self {
            Client::Mcp(service) => {
                let mut args = Map::new();
                args.insert("code".into(), Value::String(SCRIPT.into()));
                let params = CallToolRequestParams::new("execute").with_arguments(args);
                matches!(service.call_tool(params).await, Ok(r) if r.is_error != Some(true))
            }
            Client::Api { http, url } => {
                let sent = http.post(url).json(&json!({"code": SCRIPT})).send().await;
                match sent {
                    Ok(response) if response.status().is_success() => response
                        .json::<Value>()
                        .await
                        .is_ok_and(|v| v["record"]["ok"] == Value::Bool(true)),
                    _ => false,
                }
            }
        }
    }

    async fn close(self) {
        if let Client::Mcp(service) = self {
            let _ = service.cancel().await;
        }
    }
}

/// `isola` next to this binary (target/release/isola for target/release/isola-bench).
pub fn sibling_isola() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let path = me.parent()?.join("isola");
    path.exists().then_some(path)
}

pub fn everything_in(root: &Path) -> PathBuf {
    root.join("fixtures/servers/node_modules/.bin/mcp-server-everything")
}

/// What `isola-bench sse` measured: per execution, from sending `POST /v1/executions`
/// (`wait: false`) to the answer (202), to its `started` event and to its `log` event reaching
/// a client of `GET /v1/events`, in ms.
pub struct SseReport {
    pub accepted: Vec<f64>,
    pub started: Vec<f64>,
    pub logged: Vec<f64>,
    /// From the `started` event to the `log` event: the script running its `console.log` and
    /// the line reaching the client.
    pub log_after_start: Vec<f64>,
}

impl SseReport {
    pub fn text(&self, label: &str) -> String {
        let row = |name: &str, v: &[f64]| {
            format!(
                "  {name:<34} p50 {:>7.2} ms   p99 {:>7.2} ms\n",
                percentile(v, 0.50),
                percentile(v, 0.99)
            )
        };
        format!(
            "{label}: {} executions, one at a time, their events read from GET /v1/events\n{}{}{}{}",
            self.logged.len(),
            row("POST → 202", &self.accepted),
            row("POST → `started` event", &self.started),
            row("POST → `log` event", &self.logged),
            row("`started` → `log` event", &self.log_after_start),
        )
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n => v[((n as f64 - 1.0) * p).round() as usize],
    }
}

/// The server-sent events of one response as they arrive: (event kind, its execution, when).
async fn read_events(
    mut response: reqwest::Response,
    tx: tokio::sync::mpsc::UnboundedSender<(String, String, Instant)>,
) {
    let mut buffer = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let now = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let kind = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_string();
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|d| serde_json::from_str::<Value>(d).ok());
            if let Some(execution) = data.as_ref().and_then(|d| d["execution"].as_str())
                && tx.send((kind, execution.to_string(), now)).is_err()
            {
                return;
            }
        }
    }
}

/// `isola-bench sse`: `n` executions of `console.log('ping')` through `isola serve`, one after
/// another, each timed from its `POST` to its events on the all-activity stream.
pub async fn sse_latency(options: &LoadOptions, n: usize) -> Result<SseReport, String> {
    // reqwest is built without a TLS provider (as in isola-mcp); install ring once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let served = serve(&LoadOptions {
        api: true,
        ..options.clone()
    })?;
    let base = served.url.trim_end_matches("/mcp").to_string();
    let http = reqwest::Client::new();
    let stream = http
        .get(format!("{base}/v1/events"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !stream.status().is_success() {
        return Err(format!("GET /v1/events answered {}", stream.status()));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(read_events(stream, tx));
    let mut report = SseReport {
        accepted: Vec::new(),
        started: Vec::new(),
        logged: Vec::new(),
        log_after_start: Vec::new(),
    };
    const WARMUP: usize = 20;
    for i in 0..WARMUP + n {
        let sent = Instant::now();
        let answer = http
            .post(format!("{base}/v1/executions"))
            .json(&json!({"code": "console.log('ping')", "wait": false}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let accepted = sent.elapsed();
        let answer: Value = answer.json().await.map_err(|e| e.to_string())?;
        let id = answer["execution"]
            .as_str()
            .ok_or_else(|| format!("no execution id in {answer}"))?
            .to_string();
        let (mut started, mut logged) = (None, None);
        while logged.is_none() {
            let (kind, execution, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .map_err(|_| format!("no log event of {id} within 30 s"))?
                .ok_or("the event stream ended")?;
            if execution != id {
                continue;
            }
            match kind.as_str() {
                "started" => started = Some(at),
                "log" => logged = Some(at),
                _ => {}
            }
        }
        let (Some(started), Some(logged)) = (started, logged) else {
            return Err(format!("{id}: a log event without its started event"));
        };
        if i >= WARMUP {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            report.accepted.push(ms(accepted));
            report.started.push(ms(started - sent));
            report.logged.push(ms(logged - sent));
            report.log_after_start.push(ms(logged - started));
        }
    }
    reader.abort();
    Ok(report)
}
