//! `isola-bench agent`: the same multi-step tasks in Code Mode and in classic tool calling,
//! against real MCP servers (filesystem and memory), with the model replaced by the scripted
//! server of `isola-llm-mock`. What is measured is what the model would have to process: the
//! round trips, and the tokens in and out of every request (counted by the scripted server from
//! the request it got, as a provider does), plus the wall time of the run.
//!
//! Each task needs three or more tool calls with data flowing from one to the next. In code
//! mode the scripted model sends one script and then the answer; in tools mode one tool call per
//! round trip (arguments computed from the previous results), then the same answer. Every run
//! starts from fresh data files and servers, and is checked: the run must end with the answer,
//! every execution or tool call must succeed, and the files (or the knowledge graph) must hold
//! the expected result.
//!
//! ```no_run
//! # async fn demo() -> Result<(), isola_agent_bench::BenchError> {
//! let options = isola_agent_bench::Options {
//!     servers: "fixtures/servers/node_modules/.bin".into(),
//!     rounds: 3,
//!     worker: None,
//!     latency_ms: 0,
//! };
//! let report = isola_agent_bench::run(&options).await?;
//! print!("{}", report.text());
//! # Ok(()) }
//! ```

mod tasks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use isola_agent::{Agent, AgentConfig, Mode, Step as TranscriptStep, StopReason};
use isola_engine::Engine;
use isola_llm_mock::MockServer;
use isola_mcp::{McpHub, ServerState};
use isola_worker::{Backend, WorkerCommand, WorkerPool};
use serde::Serialize;
use serde_json::json;

pub use tasks::{Prepared, TASKS, Task};

/// The model name the scripted server answers as (priced in the default table).
pub const MODEL: &str = "gpt-4o-mini";

pub struct Options {
    /// Directory with `mcp-server-filesystem` and `mcp-server-memory`.
    pub servers: PathBuf,
    /// Runs of each task in each mode.
    pub rounds: u32,
    /// Worker processes for the sandbox; in-process when `None`.
    pub worker: Option<WorkerCommand>,
    /// Simulated model latency: the scripted server waits this long before each answer.
    pub latency_ms: u64,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A fixture MCP server is not installed.
    #[error("{}: not found\nhint: install the fixture servers with `npm ci --prefix fixtures/servers`, or point --servers (ISOLA_FIXTURE_SERVERS) at their node_modules/.bin", .0.display())]
    MissingServer(PathBuf),
    /// An MCP server did not start.
    #[error("the MCP server `{server}` did not start: {reason}")]
    ServerDown { server: String, reason: String },
    #[error("setting up the task `{task}`: {source}")]
    Io {
        task: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the benchmark config: {0}")]
    Config(String),
}

/// One task in one mode.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub task: &'static str,
    pub mode: &'static str,
    /// LLM round trips.
    pub llm_calls: u32,
    /// Tool calls made (inside scripts in code mode).
    pub tool_calls: usize,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Median over the rounds.
    pub wall_ms: f64,
    /// What went wrong, if anything did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Row {
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub rounds: u32,
    pub latency_ms: u64,
    pub rows: Vec<Row>,
}

pub async fn run(options: &Options) -> Result<Report, BenchError> {
    let fs_bin = options.servers.join("mcp-server-filesystem");
    let memory_bin = options.servers.join("mcp-server-memory");
    for bin in [&fs_bin, &memory_bin] {
        if !bin.exists() {
            return Err(BenchError::MissingServer(bin.clone()));
        }
    }
    let mut rows = Vec::new();
    for task in TASKS {
        for mode in [Mode::Code, Mode::Tools] {
            let mut walls = Vec::new();
            let mut row = None;
            for _ in 0..options.rounds.max(1) {
                let (r, wall) = run_once(task, mode, &fs_bin, &memory_bin, options).await?;
                walls.push(wall);
                row = Some(r);
            }
            if let Some(mut r) = row {
                walls.sort_by(f64::total_cmp);
                r.wall_ms = walls[walls.len() / 2];
                rows.push(r);
            }
        }
    }
    Ok(Report {
        rounds: options.rounds.max(1),
        latency_ms: options.latency_ms,
        rows,
    })
}

async fn run_once(
    task: &'static Task,
    mode: Mode,
    fs_bin: &Path,
    memory_bin: &Path,
    options: &Options,
) -> Result<(Row, f64), BenchError> {
    let io = |source| BenchError::Io {
        task: task.name,
        source,
    };
    let dir = tempfile::tempdir().map_err(io)?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data).map_err(io)?;
    // The filesystem server reports canonical paths; use them in prompts and scripts.
    let data = data.canonicalize().map_err(io)?;
    let prepared = (task.prepare)(&data).map_err(io)?;
    let config = json!({"mcpServers": {
        "fs": {"command": fs_bin, "args": [data]},
        "memory": {"command": memory_bin, "env": {"MEMORY_FILE_PATH": data.parent().unwrap_or(&data).join("memory.jsonl")}},
    }});
    let config = isola_config::parse_config(&config.to_string(), &dir.path().join("isola.json"))
        .map_err(|e| BenchError::Config(e.to_string()))?;
    let hub = Arc::new(McpHub::connect(&config).await);
    for s in hub.servers() {
        if let ServerState::Failed(reason) = &s.state {
            return Err(BenchError::ServerDown {
                server: s.name.clone(),
                reason: reason.clone(),
            });
        }
    }
    let backend = match &options.worker {
        Some(command) => Backend::Workers(WorkerPool::new(command.clone(), 1)),
        None => Backend::InProcess,
    };
    let engine = Arc::new(Engine::new(
        hub.clone(),
        backend,
        config.settings.limits.clone(),
    ));
    let steps = match mode {
        Mode::Tools => prepared.tools.clone(),
        _ => prepared.code.clone(),
    };
    let steps = steps
        .into_iter()
        .map(|s| s.delay_ms(options.latency_ms))
        .collect();
    let server = MockServer::start(steps).map_err(io)?;
    let mut agent_config = AgentConfig {
        mode,
        ..AgentConfig::default()
    };
    agent_config.model = Some(format!("openai:{MODEL}"));
    agent_config
        .providers
        .entry("openai".into())
        .or_default()
        .base_url = Some(server.openai_base());
    // On for benchmarks (a repeated identical request costs nothing); each run has its own.
    agent_config.cache.enabled = true;
    // Keys and base URLs from the environment are not wanted here.
    let models = agent_config
        .build(&|_| None)
        .map_err(|e| BenchError::Config(e.to_string()))?;
    let agent = Agent::new(engine, hub.clone(), agent_config, models);
    let started = Instant::now();
    let transcript = agent
        .run(&mut Vec::new(), &prepared.prompt, &mut |_| {})
        .await;
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    hub.shutdown().await;

    let mut problems = Vec::new();
    if transcript.stop.reason != StopReason::Answered {
        problems.push(format!("stopped: {}", transcript.stop.message));
    }
    let mut tool_calls = 0;
    for step in &transcript.steps {
        match step {
            TranscriptStep::Execution { record, .. } => {
                tool_calls += record.calls.len();
                if let Some(e) = &record.error {
                    problems.push(format!("execution failed: {}: {}", e.name, e.message));
                }
            }
            TranscriptStep::Tool {
                name, ok, result, ..
            } => {
                tool_calls += 1;
                if !ok {
                    problems.push(format!("{name} failed: {result}"));
                }
            }
            TranscriptStep::Llm { .. } => {}
        }
    }
    if let Err(e) = (prepared.check)(&data) {
        problems.push(e);
    }
    if server.remaining() > 0 {
        problems.push(format!(
            "{} scripted answers were not used",
            server.remaining()
        ));
    }
    let s = &transcript.summary;
    let row = Row {
        task: task.name,
        mode: mode.as_str(),
        llm_calls: s.llm_calls,
        tool_calls,
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        wall_ms: wall,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    };
    Ok((row, wall))
}

impl Report {
    pub fn all_ok(&self) -> bool {
        self.rows.iter().all(|r| r.problem.is_none())
    }

    fn row(&self, task: &str, mode: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.task == task && r.mode == mode)
    }

    /// The comparison as a Markdown table, then the totals and any problems.
    pub fn text(&self) -> String {
        let mut out = String::from(
            "Agent benchmark: each task in code mode and tools mode (scripted model, real MCP servers)\n\n\
             | task | mode | LLM round trips | tool calls | tokens in | tokens out | wall (median) | code/tools tokens |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for r in &self.rows {
            let ratio = match (r.mode, self.row(r.task, "tools")) {
                ("code", Some(t)) if t.tokens() > 0 => {
                    format!("{:.1}%", 100.0 * r.tokens() as f64 / t.tokens() as f64)
                }
                _ => String::new(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.0} ms | {} |\n",
                r.task,
                r.mode,
                r.llm_calls,
                r.tool_calls,
                isola_agent::thousands(r.input_tokens),
                isola_agent::thousands(r.output_tokens),
                r.wall_ms,
                ratio
            ));
        }
        let total = |mode: &str| -> (u32, u64, f64) {
            self.rows
                .iter()
                .filter(|r| r.mode == mode)
                .fold((0, 0, 0.0), |(c, t, w), r| {
                    (c + r.llm_calls, t + r.tokens(), w + r.wall_ms)
                })
        };
        let (code_calls, code_tokens, code_wall) = total("code");
        let (tools_calls, tools_tokens, tools_wall) = total("tools");
        out.push_str(&format!(
            "\nAll {} tasks: code mode {} round trips, {} tokens, {:.0} ms; tools mode {} round trips, {} tokens, {:.0} ms.\n",
            TASKS.len(),
            code_calls,
            isola_agent::thousands(code_tokens),
            code_wall,
            tools_calls,
            isola_agent::thousands(tools_tokens),
            tools_wall
        ));
        if tools_tokens > 0 {
            out.push_str(&format!(
                "Code mode used {:.1}% of the tokens of tools mode (target: at most 20%), {:.2} round trips per task (target: 2, one tool round trip plus the answer).\n",
                100.0 * code_tokens as f64 / tools_tokens as f64,
                code_calls as f64 / TASKS.len() as f64
            ));
        }
        let latency = match self.latency_ms {
            0 => "the scripted model answering at once (no model latency)".to_string(),
            ms => format!("the scripted model taking {ms} ms per answer"),
        };
        out.push_str(&format!(
            "Tokens are counted with tiktoken o200k by the scripted server from each request it received; wall time is the median of {} runs, with {latency}.\n",
            self.rounds
        ));
        for r in self.rows.iter().filter(|r| r.problem.is_some()) {
            out.push_str(&format!(
                "problem: {} ({}): {}\n",
                r.task,
                r.mode,
                r.problem.as_deref().unwrap_or("")
            ));
        }
        out
    }
}
