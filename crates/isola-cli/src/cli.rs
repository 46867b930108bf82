//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use isola_config::ranges;

#[derive(Parser, Debug)]
#[command(
    name = "isola",
    version,
    about = "Code Mode for every MCP server: run TypeScript against your tools in a sandbox."
)]
pub struct Cli {
    /// The mcpServers config file [default: isola.json in the working directory].
    #[arg(long, global = true, env = "ISOLA_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Where the journal, sessions and state live: sqlite:PATH, postgres://..., or none (no
    /// journal) [default: isola.store, else sqlite:$XDG_DATA_HOME/isola/isola.db].
    #[arg(long, global = true, env = "ISOLA_STORE", value_name = "URL")]
    pub store: Option<String>,

    /// More logging on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the configured servers, their state and their tools.
    Tools {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the TypeScript declarations of the API (all servers, or the named ones).
    Types {
        /// Servers to include (config names or namespace identifiers).
        servers: Vec<String>,
        /// One line per tool instead of full declarations.
        #[arg(long)]
        compact: bool,
        /// Also print the token count (tiktoken o200k) on stderr.
        #[arg(long)]
        tokens: bool,
    },
    /// Run a TypeScript script against the configured servers.
    Exec(ExecArgs),
    /// Type-check a script against the configured servers' API with the TypeScript compiler
    /// (calling nothing): its errors at their lines, exit 1 when there are some.
    Check(crate::check::CheckCommand),
    /// Run Isola's agent on a task: the model gets your MCP tools (Code Mode by default), its
    /// scripts run in the sandbox, errors go back to it to fix; the answer streams to stdout.
    Run(crate::agent::RunArgs),
    /// An interactive agent session with history (same options as `run`).
    Chat(crate::agent::ChatArgs),
    /// Serve Code Mode to an MCP host (Claude Desktop, Claude Code, Cursor, ...) over stdio, or
    /// Streamable HTTP with --http.
    Mcp(crate::mcp::McpArgs),
    /// Serve /mcp, the HTTP API (/v1: executions and their live events, approvals, sessions,
    /// usage, health, openapi.json; and /metrics) and the web UI (/) on one port, by default
    /// 127.0.0.1:8760 (same flags as `mcp`). Several nodes can share one PostgreSQL store.
    Serve(crate::mcp::McpArgs),
    /// The journal of executions: list, show, export (JSON Lines), verify, prune.
    #[command(subcommand)]
    Journal(crate::journal::JournalCommand),
    /// Sessions: executions grouped by name, and their durable state.
    #[command(subcommand)]
    Sessions(crate::journal::SessionsCommand),
    /// `isola serve`'s tokens kept in the store (beside the config's `isola.tokens`): add,
    /// list, revoke.
    #[command(subcommand)]
    Tokens(crate::tokens::TokensCommand),
    /// Run a journaled execution again from its recorded inputs and results, calling no tool;
    /// report whether it did the same or where it diverged.
    Replay(crate::journal::ReplayArgs),
    /// Go on with a suspended execution (one whose call waited too long for approval, or whose
    /// process died while it waited): the calls it made are answered from the journal, none is
    /// sent again; the calls that waited go through the policy and approvals again.
    Resume(ResumeArgs),
    /// Plan a script: its reads are made, its writes and deletes are not sent but listed as
    /// the plan's steps (their results "known after apply"); the plan policy decides whether
    /// it may be applied, needs a person's approval, or is refused.
    Plan(crate::plan::PlanArgs),
    /// Apply an approved plan: run its script live, each change checked against the plan's
    /// next step before it is sent; a divergence or a changed read stops it first.
    Apply(crate::plan::ApplyArgs),
    /// The policy every tool call passes: check an input against it, run its tests, print the
    /// default.
    #[command(subcommand)]
    Policy(crate::govern::PolicyCommand),
    /// Calls waiting for a person's approval: list, show, approve, deny.
    #[command(subcommand)]
    Approvals(crate::govern::ApprovalsCommand),
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The script file, or - for standard input.
    pub file: PathBuf,
    /// Print the whole execution record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the trace of tool calls after the result.
    #[arg(long)]
    pub trace: bool,
    /// Run in this session: its durable `state` is the script's, and the journal groups its
    /// executions under the name.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub check: crate::check::CheckArg,
    /// Run the sandbox inside this process instead of a worker process (faster to start, but
    /// a native operation that never returns cannot be stopped at the deadline).
    #[arg(long)]
    pub in_process: bool,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The execution id (or a unique start of it).
    pub id: String,
    /// Print the whole execution record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the trace of tool calls after the result.
    #[arg(long)]
    pub trace: bool,
    /// Run the sandbox inside this process instead of a worker process.
    #[arg(long)]
    pub in_process: bool,
}

#[derive(Args, Debug, Default)]
pub struct LimitArgs {
    /// Wall-clock deadline, e.g. 30s, 500ms, 2m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub timeout: Option<u64>,
    /// JS heap limit in MiB (4 to 8192).
    #[arg(long, value_name = "MIB", value_parser = |s: &str| in_range(s, &ranges::MEMORY_BYTES, 1024 * 1024, "MiB"))]
    pub memory_mb: Option<u64>,
    /// JS stack limit in KiB (64 to 4096).
    #[arg(long, value_name = "KIB", value_parser = |s: &str| in_range(s, &ranges::STACK_BYTES, 1024, "KiB"))]
    pub stack_kb: Option<u64>,
    /// Maximum number of tool calls (1 to 1,000,000).
    #[arg(long, value_name = "N", value_parser = |s: &str| in_range(s, &ranges::MAX_TOOL_CALLS, 1, "calls"))]
    pub max_tool_calls: Option<u64>,
    /// Maximum tool calls in flight at once (1 to 256).
    #[arg(long, value_name = "N", value_parser = |s: &str| in_range(s, &ranges::MAX_CONCURRENCY, 1, "calls"))]
    pub concurrency: Option<u64>,
    /// Console output kept, in bytes (up to 64 MiB).
    #[arg(long, value_name = "BYTES", value_parser = |s: &str| in_range(s, &ranges::MAX_LOG_BYTES, 1, "bytes"))]
    pub max_log_bytes: Option<u64>,
    /// Result size kept, in bytes (up to 32 MiB).
    #[arg(long, value_name = "BYTES", value_parser = |s: &str| in_range(s, &ranges::MAX_RESULT_BYTES, 1, "bytes"))]
    pub max_result_bytes: Option<u64>,
}

impl LimitArgs {
    /// Flags override the config's limits.
    pub fn apply(&self, limits: &mut isola_protocol::Limits) {
        if let Some(v) = self.timeout {
            limits.deadline_ms = v;
        }
        if let Some(v) = self.memory_mb {
            limits.memory_bytes = v.saturating_mul(1024 * 1024);
        }
        if let Some(v) = self.stack_kb {
            limits.stack_bytes = v.saturating_mul(1024);
        }
        if let Some(v) = self.max_tool_calls {
            limits.max_tool_calls = u32::try_from(v).unwrap_or(u32::MAX);
        }
        if let Some(v) = self.concurrency {
            limits.max_concurrency = u32::try_from(v).unwrap_or(u32::MAX);
        }
        if let Some(v) = self.max_log_bytes {
            limits.max_log_bytes = v;
        }
        if let Some(v) = self.max_result_bytes {
            limits.max_result_bytes = v;
        }
    }
}

/// A flag's number, in `unit`s of `scale` bytes (or items), within `range` (see
/// `isola_config::ranges`, which the config file is checked against too).
fn in_range(s: &str, range: &ranges::Range, scale: u64, unit: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    let (lo, hi) = (range.range.start() / scale, range.range.end() / scale);
    if n.checked_mul(scale)
        .is_some_and(|v| range.range.contains(&v))
    {
        Ok(n)
    } else {
        Err(format!(
            "{n} is out of range: it takes {lo} to {hi} ({unit})"
        ))
    }
}

/// `30s`, `500ms`, `2m`, or a bare number of seconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 30s, 500ms or 2m)"))?;
    let factor = match unit {
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s or m)")),
    };
    let ms = n * factor;
    if !(1.0..=86_400_000.0).contains(&ms) {
        return Err(format!("`{s}` is out of range (1ms to 24h)"));
    }
    Ok(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("2s"), Ok(2000));
        assert_eq!(parse_duration_ms("2"), Ok(2000));
        assert_eq!(parse_duration_ms("150ms"), Ok(150));
        assert_eq!(parse_duration_ms("1.5m"), Ok(90_000));
        assert!(
            parse_duration_ms("2h")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration_ms("abc").is_err());
    }
}
