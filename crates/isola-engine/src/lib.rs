//! The Isola engine: typed API over tools, executions through a sandbox backend, one record per
//! execution.
//!
//! An [`Engine`] joins three things: a [`Tools`] source (normally the MCP servers of an
//! [`isola_mcp::McpHub`]), the API generated from their tool lists ([`ApiState`]), and a
//! [`Backend`] where scripts run (worker processes by default). [`Engine::execute`] takes the
//! user's TypeScript and returns an [`ExecRecord`]; it never fails as a Rust call: every failure,
//! the script's or the machinery's, is in the record.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use isola_engine::{Engine, ExecOptions};
//! let config = isola_config::load_config("isola.json".as_ref())?;
//! let hub = Arc::new(isola_mcp::McpHub::connect(&config).await);
//! let engine = Engine::new(hub, isola_worker::Backend::InProcess, config.settings.limits.clone());
//! let record = engine.execute("return 1 + 1", ExecOptions::default()).await;
//! assert_eq!(record.result, serde_json::json!(2));
//! # Ok(()) }
//! ```

mod api;
mod hints;
mod record;
mod spin;
mod tools;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use isola_protocol::{
    CallResult, CallTrace, ErrorKind, ExecError, ExecRecord, ExecRequest, LimitKind, Limits,
    LogEntry, LogLevel, SandboxMsg, Timings, Truncation,
};
use isola_worker::{Backend, SpinBudget};
use serde_json::Value;
use tokio::sync::Semaphore;
pub use tokio_util::sync::CancellationToken;

pub use api::{ApiState, Binding};
pub use hints::{distance as edit_distance, suggest};
pub use record::unwrap_result;
pub use tools::{ToolError, Tools};

/// Options of one execution.
#[derive(Clone, Default)]
pub struct ExecOptions {
    /// The name errors give the script (`script.ts` when empty).
    pub file_name: String,
    /// Overrides the engine's limits.
    pub limits: Option<Limits>,
    /// Cancels the execution: the sandbox is stopped and the record says `cancelled`.
    pub cancel: Option<CancellationToken>,
    /// Receives events while the script runs (console lines, finished tool calls).
    pub events: Option<tokio::sync::mpsc::UnboundedSender<ExecEvent>>,
}

/// Something that happened during an execution, as it happens.
#[derive(Clone, Debug)]
pub enum ExecEvent {
    Log(LogEntry),
    Call(CallTrace),
}

pub struct Engine {
    tools: Arc<dyn Tools>,
    backend: Backend,
    limits: Limits,
    api: RwLock<Arc<ApiState>>,
    /// Executions under way.
    running: AtomicUsize,
}

/// Counts an execution as running while alive.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Engine {
    pub fn new(tools: Arc<dyn Tools>, backend: Backend, limits: Limits) -> Self {
        let api = Arc::new(ApiState::build(&tools.servers()));
        Self {
            tools,
            backend,
            limits,
            api: RwLock::new(api),
            running: AtomicUsize::new(0),
        }
    }

    /// The current API.
    pub fn api(&self) -> Arc<ApiState> {
        match self.api.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Rebuild the API from the tools' current lists (after `tools/list_changed`).
    pub fn refresh(&self) {
        let api = Arc::new(ApiState::build(&self.tools.servers()));
        match self.api.write() {
            Ok(mut g) => *g = api,
            Err(p) => *p.into_inner() = api,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Run a TypeScript script. Executions are independent and may run concurrently.
    pub async fn execute(&self, source: &str, options: ExecOptions) -> ExecRecord {
        let started = Instant::now();
        let file = if options.file_name.is_empty() {
            "script.ts".to_string()
        } else {
            options.file_name.clone()
        };
        let limits = options
            .limits
            .clone()
            .unwrap_or_else(|| self.limits.clone());
        let mut rec = Recorder::new(options.events.clone());

        let t0 = Instant::now();
        let transpiled = isola_transpile::transpile(source, &file);
        rec.timings.transpile_ms = ms(t0.elapsed());
        let transpiled = match transpiled {
            Ok(t) => t,
            Err(e) => return rec.fail(record::syntax_error(&e, &file), started),
        };

        let api = self.api();
        let request = ExecRequest {
            code: transpiled.js.clone(),
            namespaces: api.namespaces.clone(),
            limits: limits.clone(),
        };
        let t1 = Instant::now();
        let session = tokio::select! {
            s = self.backend.start(request) => s,
            () = cancelled(&options.cancel) => {
                return rec.fail(cancelled_error(), started);
            }
        };
        let mut session = match session {
            Ok(s) => s,
            Err(e) => return rec.fail(record::internal_error(e.to_string()), started),
        };
        rec.timings.queue_ms = ms(t1.elapsed());
        let run_start = Instant::now();
        rec.run_start = run_start;
        let hard_deadline = tokio::time::Instant::from_std(
            run_start + Duration::from_millis(limits.deadline_ms) + self.backend.grace(),
        );
        let permits = Semaphore::new(limits.max_concurrency.max(1) as usize);
        let mut inflight = FuturesUnordered::new();
        let _running = Running::enter(&self.running);
        // Polling budgets for the two waits of a lone execution (see spin.rs): for a tool's
        // answer, and for the sandbox's next call after it got one. Concurrent executions
        // sleep: their polling would take the CPU from each other.
        let (mut answers, mut turns) = (SpinBudget::new(spin::CAP), SpinBudget::new(spin::CAP));
        let lone = || self.running.load(Ordering::Relaxed) == 1;
        let mut poll_until: Option<Instant> = None;
        // When the sandbox got its last answer, while its next call is awaited.
        let mut turn_since: Option<Instant> = None;

        let outcome = loop {
            tokio::select! {
                msg = session.next() => match msg {
                    Ok(SandboxMsg::Call { id, binding, args }) => {
                        if let Some(since) = turn_since.take() {
                            turns.ended(since.elapsed());
                        }
                        inflight.push(self.dispatch(&api, &permits, run_start, id, binding, args));
                        poll_until = answers.until().filter(|_| lone());
                    }
                    Ok(SandboxMsg::Log { level, text }) => rec.log(level, text),
                    Ok(SandboxMsg::Done(outcome)) => break Ok(outcome),
                    Ok(SandboxMsg::Ready) => {}
                    Err(e) => break Err(record::internal_error(format!("the sandbox failed: {e}"))),
                },
                Some((id, result, trace)) = inflight.next(), if !inflight.is_empty() => {
                    answers.ended(Duration::from_secs_f64(trace.duration_ms / 1000.0));
                    // The answer first: the sandbox goes on while the call is recorded.
                    let settled = session.settle(id, result).await;
                    rec.call(trace);
                    if let Err(e) = settled {
                        break Err(record::internal_error(format!("the sandbox failed: {e}")));
                    }
                    if inflight.is_empty() {
                        turn_since = Some(Instant::now());
                        poll_until = turns.until().filter(|_| lone());
                    }
                }
                () = spin::poll_round(), if poll_until.is_some_and(|t| Instant::now() < t) => {}
                () = tokio::time::sleep_until(hard_deadline) => {
                    break Err(deadline_error(&limits));
                }
                () = cancelled(&options.cancel) => {
                    break Err(cancelled_error());
                }
            }
        };
        rec.timings.run_ms = ms(run_start.elapsed());
        match outcome {
            Ok(outcome) => {
                session.finish();
                if outcome.logs_dropped_bytes > 0 {
                    rec.logs_dropped(outcome.logs_dropped_bytes, limits.max_log_bytes);
                }
                match outcome.result {
                    Ok(payload) => {
                        let (value, truncated) =
                            record::result_value(payload, limits.max_result_bytes);
                        rec.finish(value, truncated, started)
                    }
                    Err(e) => {
                        let mut err = record::exec_error(e, &transpiled, source, &file);
                        hints::improve(&mut err, source, &api);
                        rec.fail(err, started)
                    }
                }
            }
            Err(err) => {
                session.abort();
                rec.fail(err, started)
            }
        }
    }

    /// Carry out one tool call: validate, call, unwrap. Runs concurrently with other calls, at
    /// most `max_concurrency` at once.
    async fn dispatch(
        &self,
        api: &ApiState,
        permits: &Semaphore,
        run_start: Instant,
        id: u32,
        binding: u32,
        args: String,
    ) -> (u32, CallResult, CallTrace) {
        let request_bytes = args.len() as u64;
        let Some(b) = api.bindings.get(binding as usize) else {
            let err = CallResult::Err {
                name: "TypeError".into(),
                message: "unknown binding".into(),
                tool: String::new(),
            };
            let trace = CallTrace {
                function: format!("#{binding}"),
                server: String::new(),
                tool: String::new(),
                arguments: Value::Null,
                started_ms: ms(run_start.elapsed()),
                duration_ms: 0.0,
                ok: false,
                error: Some("unknown binding".into()),
                request_bytes,
                response_bytes: 0,
            };
            return (id, err, trace);
        };
        let arguments: Value = serde_json::from_str(&args).unwrap_or(Value::Null);
        let _permit = permits.acquire().await;
        let started = Instant::now();
        let mut trace = CallTrace {
            function: b.function.clone(),
            server: b.server.clone(),
            tool: b.tool.clone(),
            arguments,
            started_ms: ms(run_start.elapsed()),
            duration_ms: 0.0,
            ok: false,
            error: None,
            request_bytes,
            response_bytes: 0,
        };
        let result = match (&trace.arguments, b.validate(&trace.arguments)) {
            (_, Err(message)) => CallResult::Err {
                name: "ValidationError".into(),
                message,
                tool: b.function.clone(),
            },
            (Value::Object(map), Ok(())) => {
                let span = tracing::debug_span!("tool_call", server = %b.server, tool = %b.tool);
                let _enter = span.enter();
                match self.tools.call(&b.server, &b.tool, map.clone()).await {
                    Ok(result) => {
                        if result.get("isError").and_then(Value::as_bool) == Some(true) {
                            let message =
                                format!("{} failed: {}", b.function, record::error_text(&result));
                            trace.response_bytes = message.len() as u64;
                            CallResult::Err {
                                name: "ToolError".into(),
                                message,
                                tool: b.function.clone(),
                            }
                        } else {
                            let value = unwrap_result(&result).to_string();
                            trace.response_bytes = value.len() as u64;
                            CallResult::Ok { value }
                        }
                    }
                    Err(e) => CallResult::Err {
                        name: "ToolError".into(),
                        message: format!("{} failed: {e}", b.function),
                        tool: b.function.clone(),
                    },
                }
            }
            (_, Ok(())) => CallResult::Err {
                name: "TypeError".into(),
                message: format!("{} takes one object argument", b.function),
                tool: b.function.clone(),
            },
        };
        trace.duration_ms = ms(started.elapsed());
        match &result {
            CallResult::Ok { .. } => trace.ok = true,
            CallResult::Err { message, .. } => trace.error = Some(message.clone()),
        }
        (id, result, trace)
    }
}

async fn cancelled(token: &Option<CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

fn deadline_error(limits: &Limits) -> ExecError {
    ExecError {
        kind: ErrorKind::Limit,
        limit: Some(LimitKind::Deadline),
        name: "LimitError".into(),
        message: format!(
            "the deadline of {} ms was hit; the script was stopped (its sandbox process was killed)",
            limits.deadline_ms
        ),
        position: None,
        code_frame: None,
        stack: None,
        tool: None,
        hint: None,
    }
}

fn cancelled_error() -> ExecError {
    ExecError {
        kind: ErrorKind::Cancelled,
        limit: None,
        name: "CancelledError".into(),
        message: "the execution was cancelled".into(),
        position: None,
        code_frame: None,
        stack: None,
        tool: None,
        hint: None,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Accumulates the record while the run goes on.
struct Recorder {
    events: Option<tokio::sync::mpsc::UnboundedSender<ExecEvent>>,
    run_start: Instant,
    logs: Vec<LogEntry>,
    logs_truncated: Option<Truncation>,
    calls: Vec<CallTrace>,
    timings: Timings,
}

impl Recorder {
    fn new(events: Option<tokio::sync::mpsc::UnboundedSender<ExecEvent>>) -> Self {
        Self {
            events,
            run_start: Instant::now(),
            logs: Vec::new(),
            logs_truncated: None,
            calls: Vec::new(),
            timings: Timings::default(),
        }
    }

    fn log(&mut self, level: LogLevel, text: String) {
        let entry = LogEntry {
            level,
            text,
            at_ms: ms(self.run_start.elapsed()),
        };
        if let Some(tx) = &self.events {
            let _ = tx.send(ExecEvent::Log(entry.clone()));
        }
        self.logs.push(entry);
    }

    fn logs_dropped(&mut self, dropped: u64, limit: u64) {
        self.logs_truncated = Some(Truncation {
            limit_bytes: limit,
            dropped_bytes: dropped,
        });
        self.logs.push(LogEntry {
            level: LogLevel::Warn,
            text: format!(
                "[isola: console output over the {limit}-byte limit; {dropped} bytes dropped]"
            ),
            at_ms: ms(self.run_start.elapsed()),
        });
    }

    fn call(&mut self, trace: CallTrace) {
        if let Some(tx) = &self.events {
            let _ = tx.send(ExecEvent::Call(trace.clone()));
        }
        self.calls.push(trace);
    }

    fn finish(
        mut self,
        result: Value,
        result_truncated: Option<Truncation>,
        started: Instant,
    ) -> ExecRecord {
        self.timings.total_ms = ms(started.elapsed());
        self.calls
            .sort_by(|a, b| a.started_ms.total_cmp(&b.started_ms));
        ExecRecord {
            ok: true,
            result,
            result_truncated,
            logs: self.logs,
            logs_truncated: self.logs_truncated,
            calls: self.calls,
            timings: self.timings,
            error: None,
        }
    }

    fn fail(self, error: ExecError, started: Instant) -> ExecRecord {
        let mut r = self.finish(Value::Null, None, started);
        r.ok = false;
        r.error = Some(error);
        r
    }
}
