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
pub mod gate;
mod hints;
pub mod machine;
pub mod observer;
mod record;
pub mod replay;
mod spin;
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
pub use isola_check::{CheckError, Checker, Compiler};
use isola_protocol::{CheckMode, ExecError, ExecRecord, ExecRequest, Limits, SandboxInfo, Timings};
use isola_worker::{Backend, Session, SpinBudget};
use serde_json::Value;
pub use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use api::{ApiState, Binding};
pub use gate::{CallGate, CallIntent, Decision, Denial, Gates, Ruling, Verdict};
pub use hints::{distance as edit_distance, suggest};
pub use isola_typegen::{EffectClass, ToolEffect};
use machine::{Effect, Ending, Execution, Input, Setup};
pub use observer::{Event, Flow, Observer};
pub use record::{cut, unwrap_result};
pub use replay::{Recorder, Recording, ReplayGate};
pub use tools::{CallMeta, IDEMPOTENCY_KEY_META, ToolError, Tools};

/// Options of one execution.
#[derive(Default)]
pub struct ExecOptions {
    /// The name errors give the script (`script.ts` when empty).
    pub file_name: String,
    /// Overrides the engine's limits.
    pub limits: Option<Limits>,
    /// Cancels the execution: the sandbox is stopped and the record says `cancelled`.
    pub cancel: Option<CancellationToken>,
    /// Receive every event of the execution, in order (see [`observer`]).
    pub observers: Vec<Box<dyn Observer>>,
    /// Asked before each call is sent, after the engine's own gates (see [`gate`]).
    pub gates: Gates,
    /// Replay a recording: its clock and seed, its answers in its order, no tool called for
    /// them (see [`replay`]).
    pub replay: Option<Replay>,
    /// The execution's id (a journal's): tool sources get it with each call
    /// ([`Tools::call_with`]), upstream servers as the idempotency key `<id>:<seq>`.
    pub execution_id: Option<String>,
    /// The session it belongs to, for tool sources that keep per-session data (`state`).
    pub session: Option<String>,
    /// Plan mode: a gate answers changes with [`isola_protocol::CallResult::Planned`], and
    /// references to those results in later arguments pass the schema checks (see
    /// [`api::is_reference`]).
    pub planning: bool,
    /// Type-check the script first (with the engine's checker): `None` is the engine's mode
    /// ([`Engine::with_checker`]).
    pub check: Option<CheckMode>,
}

/// A recording to replay, and what happens after it.
#[derive(Clone, Debug)]
pub struct Replay {
    pub recording: Recording,
    /// `true`: calls past the recording are made live (resuming); `false`: the first one is a
    /// divergence (a pure replay calls nothing).
    pub live_after: bool,
}

pub struct Engine {
    tools: Arc<dyn Tools>,
    backend: Backend,
    limits: Limits,
    api: RwLock<Arc<ApiState>>,
    /// Asked before every call of every execution, before the execution's own gates.
    gates: Gates,
    /// The largest script accepted, in bytes.
    max_script_bytes: u64,
    /// Executions under way.
    running: AtomicUsize,
    /// The TypeScript compiler scripts are checked with, and when.
    checker: Option<Arc<Checker>>,
    check: CheckMode,
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

/// The largest script an engine accepts unless told otherwise: 1 MiB.
pub const DEFAULT_MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// Milliseconds since the Unix epoch: the clock scripts see.
fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A seed for `Math.random` from the host's entropy.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(epoch_ms()));
    h.finish()
}

impl Engine {
    pub fn new(tools: Arc<dyn Tools>, backend: Backend, limits: Limits) -> Self {
        let api = Arc::new(ApiState::build(&tools.servers()));
        Self {
            tools,
            backend,
            limits,
            api: RwLock::new(api),
            gates: Gates::default(),
            max_script_bytes: DEFAULT_MAX_SCRIPT_BYTES,
            running: AtomicUsize::new(0),
            checker: None,
            check: CheckMode::Off,
        }
    }

    /// Type-check scripts with `checker` before they run, as `mode` says unless an
    /// execution's options say otherwise ([`ExecOptions::check`]).
    pub fn with_checker(mut self, checker: Arc<Checker>, mode: CheckMode) -> Self {
        self.checker = Some(checker);
        self.check = mode;
        self
    }

    /// The checker, if the engine has one.
    pub fn checker(&self) -> Option<&Arc<Checker>> {
        self.checker.as_ref()
    }

    /// Refuse scripts larger than `bytes` before parsing them (default
    /// [`DEFAULT_MAX_SCRIPT_BYTES`]).
    pub fn with_max_script_bytes(mut self, bytes: u64) -> Self {
        self.max_script_bytes = bytes;
        self
    }

    /// Ask `gates` before every call of every execution (a policy, say).
    pub fn with_gates(mut self, gates: Gates) -> Self {
        self.gates = gates;
        self
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

    /// What the sandboxes run in: the backend and, for workers, their hardening.
    pub fn sandbox_info(&self) -> SandboxInfo {
        match &self.backend {
            Backend::InProcess => SandboxInfo {
                backend: "in-process".into(),
                hardening: Vec::new(),
            },
            Backend::Workers(pool) => SandboxInfo {
                backend: "worker".into(),
                hardening: pool.ready().map(|r| r.hardening).unwrap_or_default(),
            },
        }
    }

    /// Run a TypeScript script. Executions are independent and may run concurrently. Never
    /// fails as a Rust call: every failure is in the record.
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
        let mut timings = Timings::default();
        let ExecOptions {
            cancel,
            mut observers,
            gates: own_gates,
            replay,
            execution_id,
            session,
            planning,
            check,
            ..
        } = options;

        if source.len() as u64 > self.max_script_bytes {
            let error = record::too_large(source.len(), self.max_script_bytes, &file);
            let rec = failed(error, timings, started);
            for o in &mut observers {
                let _ = o.event(&Event::Finished(&rec));
            }
            return rec;
        }
        let t0 = Instant::now();
        let transpiled = isola_transpile::transpile(source, &file);
        timings.transpile_ms = ms(t0.elapsed());
        let transpiled = match transpiled {
            Ok(t) => t,
            Err(e) => {
                let rec = failed(record::syntax_error(&e, &file), timings, started);
                for o in &mut observers {
                    let _ = o.event(&Event::Finished(&rec));
                }
                return rec;
            }
        };

        let api = self.api();
        let mut diagnostics = Vec::new();
        // A replay or a resume runs what already ran: it is not checked again (the API may
        // have changed since; the recording decides).
        let mode = match replay.is_some() {
            true => CheckMode::Off,
            false => check.unwrap_or(self.check),
        };
        if let (mode @ (CheckMode::Warn | CheckMode::Error), Some(checker)) = (mode, &self.checker)
        {
            let t = Instant::now();
            let checkable = transpiled.checkable();
            let checked = tokio::select! {
                r = checker.check(&checkable, api.declarations()) => Some(r),
                () = cancelled(&cancel) => None,
            };
            timings.check_ms = ms(t.elapsed());
            let refused = match checked {
                None => Some(machine::cancelled_error()),
                Some(Ok(report)) => {
                    diagnostics = record::diagnostics(&report, &file);
                    (mode == CheckMode::Error && !report.is_clean())
                        .then(|| record::type_error(&report, source, &file))
                }
                Some(Err(e)) if mode == CheckMode::Error => Some(record::check_failed(&e)),
                Some(Err(e)) => {
                    tracing::warn!("the type check could not run, the script runs unchecked: {e}");
                    None
                }
            };
            if let Some(error) = refused {
                let mut rec = failed(error, timings, started);
                rec.diagnostics = diagnostics;
                for o in &mut observers {
                    let _ = o.event(&Event::Finished(&rec));
                }
                return rec;
            }
        }
        let mut gates = Gates::default();
        if let Some(r) = &replay {
            gates.push(Arc::new(if r.live_after {
                ReplayGate::resuming(r.recording.clone())
            } else {
                ReplayGate::strict(r.recording.clone())
            }));
        }
        for g in [&self.gates, &own_gates] {
            for gate in g.iter() {
                gates.push(gate.clone());
            }
        }
        let (clock_ms, seed) = match &replay {
            Some(r) => (r.recording.clock_ms, r.recording.seed),
            None => (epoch_ms(), fresh_seed()),
        };
        let request = ExecRequest {
            code: transpiled.js.clone(),
            namespaces: api.namespaces.clone(),
            limits: limits.clone(),
            clock_ms,
            seed,
        };
        let mut machine = Execution::new(Setup {
            api: api.clone(),
            limits: limits.clone(),
            grace: self.backend.grace(),
            gated: !gates.is_empty(),
            observers,
            replay: replay.map(|r| r.recording),
            planning,
            clock: epoch_ms,
        });
        machine.started(&request);

        let t1 = Instant::now();
        let exec_session = session;
        let session = tokio::select! {
            s = self.backend.start(request) => s,
            () = cancelled(&cancel) => Err(isola_worker::BackendError::Channel("cancelled".into())),
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                let error = match cancel.as_ref().is_some_and(CancellationToken::is_cancelled) {
                    true => machine::cancelled_error(),
                    false => record::internal_error(e.to_string()),
                };
                let rec = failed(error, timings, started);
                machine.finished(&rec);
                return rec;
            }
        };
        timings.queue_ms = ms(t1.elapsed());
        machine.begin();
        let run_start = Instant::now();
        let sandbox = Some(match session.ready() {
            Some(r) => SandboxInfo {
                backend: "worker".into(),
                hardening: r.hardening.clone(),
            },
            None => SandboxInfo {
                backend: "in-process".into(),
                hardening: Vec::new(),
            },
        });
        let _running = Running::enter(&self.running);
        let ending = self
            .drive(
                &mut machine,
                session,
                &api,
                &gates,
                &cancel,
                execution_id
                    .as_deref()
                    .map(|e| (e, exec_session.as_deref())),
            )
            .await;
        timings.run_ms = ms(run_start.elapsed());

        let rec = match ending {
            Ending::Done(outcome) => {
                machine.add_sandbox_dropped(outcome.logs_dropped_bytes);
                let (logs, logs_truncated, calls) = machine.take_record_parts();
                match outcome.result {
                    Ok(payload) => {
                        let (result, result_truncated) =
                            record::result_value(payload, limits.max_result_bytes);
                        ExecRecord {
                            ok: true,
                            result,
                            result_truncated,
                            logs,
                            logs_truncated,
                            calls,
                            timings,
                            error: None,
                            sandbox: None,
                            diagnostics: Vec::new(),
                        }
                    }
                    Err(e) => {
                        let mut err = record::exec_error(e, &transpiled, source, &file);
                        hints::improve(&mut err, source, &api);
                        with_parts(failed(err, timings, started), logs, logs_truncated, calls)
                    }
                }
            }
            Ending::Stopped(err) => {
                let (logs, logs_truncated, calls) = machine.take_record_parts();
                with_parts(failed(err, timings, started), logs, logs_truncated, calls)
            }
        };
        let mut rec = rec;
        rec.sandbox = sandbox;
        rec.diagnostics = diagnostics;
        rec.timings.total_ms = ms(started.elapsed());
        machine.finished(&rec);
        rec
    }

    /// The execution's loop: carry out the machine's effects, feed it what happens. Never
    /// awaits anything but the next event: writes to the sandbox are queued by the session.
    async fn drive(
        &self,
        machine: &mut Execution,
        session: Session,
        api: &ApiState,
        gates: &Gates,
        cancel: &Option<CancellationToken>,
        who: Option<(&str, Option<&str>)>,
    ) -> Ending {
        let mut session = Some(session);
        let mut inflight = FuturesUnordered::new();
        let mut holds: FuturesUnordered<BoxFuture<'static, (u32, Decision)>> =
            FuturesUnordered::new();
        let mut timers: BTreeSet<(Instant, u32)> = BTreeSet::new();
        let mut timer_at: BTreeMap<u32, Instant> = BTreeMap::new();
        // Polling budgets for the two waits of a lone execution (see spin.rs): for a tool's
        // answer, and for the sandbox's next call after it got one. Concurrent executions
        // sleep: their polling would take the CPU from each other.
        let (mut answers, mut turns) = (SpinBudget::new(spin::CAP), SpinBudget::new(spin::CAP));
        let lone = || self.running.load(Ordering::Relaxed) == 1;
        let mut poll_until: Option<Instant> = None;
        // When the sandbox got its last answer, while its next call is awaited.
        let mut turn_since: Option<Instant> = None;
        let tools = &*self.tools;
        // The deadline's timer, moved only when the deadline moves.
        let deadline_timer = tokio::time::sleep(Duration::from_secs(86_400));
        tokio::pin!(deadline_timer);
        let mut armed_for: Option<Instant> = None;
        let mut pending: Vec<Effect> = Vec::new();

        loop {
            // Carry out what the machine asked for, until it asks for nothing more.
            machine.take_effects(&mut pending);
            while !pending.is_empty() {
                for effect in pending.drain(..) {
                    match effect {
                        Effect::Check { id, call } => {
                            let (ruling, decision) = gates.check(&call).split();
                            if let Some(decision) = decision {
                                holds.push(Box::pin(async move { (id, decision.await) }));
                            }
                            machine.step(Input::Verdict { id, ruling });
                        }
                        Effect::Dispatch {
                            id,
                            seq,
                            binding,
                            arguments,
                        } => {
                            let b = &api.bindings[binding];
                            let (server, tool) = (b.server.as_str(), b.tool.as_str());
                            let span = tracing::debug_span!("tool_call", %server, %tool);
                            inflight.push(
                                async move {
                                    let started = Instant::now();
                                    let result = match who {
                                        Some((execution, session)) => {
                                            let meta = CallMeta {
                                                execution,
                                                session,
                                                seq,
                                            };
                                            tools.call_with(meta, server, tool, arguments).await
                                        }
                                        None => tools.call(server, tool, arguments).await,
                                    };
                                    (id, result, started.elapsed())
                                }
                                .instrument(span),
                            );
                            poll_until = answers.until().filter(|_| lone());
                        }
                        Effect::Send(msg) => {
                            if let Some(s) = &mut session
                                && let Err(e) = s.send(&msg)
                            {
                                machine.step(Input::SandboxFailed(e.to_string()));
                            }
                        }
                        Effect::ArmTimer { id, at } => {
                            if let Some(old) = timer_at.insert(id, at) {
                                timers.remove(&(old, id));
                            }
                            timers.insert((at, id));
                        }
                        Effect::ClearTimer { id } => {
                            if let Some(at) = timer_at.remove(&id) {
                                timers.remove(&(at, id));
                            }
                        }
                        Effect::Release => {
                            if let Some(s) = session.take() {
                                s.finish();
                            }
                        }
                        Effect::Finish(ending) => {
                            if let Some(s) = session.take() {
                                s.abort();
                            }
                            return ending;
                        }
                    }
                }
                machine.take_effects(&mut pending);
            }

            let deadline = machine.deadline();
            if deadline != armed_for
                && let Some(at) = deadline
            {
                deadline_timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at));
            }
            armed_for = deadline;
            let next_timer = timers
                .first()
                .map(|(at, _)| tokio::time::Instant::from_std(*at));
            tokio::select! {
                msg = next_message(&mut session) => match msg {
                    Ok(msg) => {
                        if matches!(msg, isola_protocol::SandboxMsg::Call { .. })
                            && let Some(since) = turn_since.take()
                        {
                            turns.ended(since.elapsed());
                        }
                        machine.step(Input::Sandbox(msg));
                    }
                    Err(e) => machine.step(Input::SandboxFailed(e.to_string())),
                },
                Some((id, result, took)) = inflight.next(), if !inflight.is_empty() => {
                    answers.ended(took);
                    machine.step(Input::CallFinished { id, result });
                    if inflight.is_empty() {
                        turn_since = Some(Instant::now());
                        poll_until = turns.until().filter(|_| lone());
                    }
                }
                Some((id, decision)) = holds.next(), if !holds.is_empty() => {
                    machine.step(Input::Decided { id, decision });
                }
                () = sleep_until(next_timer), if next_timer.is_some() => {
                    if let Some((at, id)) = timers.pop_first() {
                        timer_at.remove(&id);
                        debug_assert!(at <= Instant::now());
                        machine.step(Input::TimerDue { id });
                    }
                }
                () = &mut deadline_timer, if armed_for.is_some() => machine.step(Input::Deadline),
                () = cancelled(cancel) => machine.step(Input::Cancel),
                () = spin::poll_round(), if poll_until.is_some_and(|t| Instant::now() < t) => {}
            }
        }
    }
}

/// The sandbox's next message; pending forever once the sandbox is given back.
async fn next_message(
    session: &mut Option<Session>,
) -> Result<isola_protocol::SandboxMsg, isola_worker::BackendError> {
    match session {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn cancelled(token: &Option<CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A record of a failed execution with no output yet.
fn failed(error: ExecError, timings: Timings, started: Instant) -> ExecRecord {
    ExecRecord {
        ok: false,
        result: Value::Null,
        result_truncated: None,
        logs: Vec::new(),
        logs_truncated: None,
        calls: Vec::new(),
        timings: Timings {
            total_ms: ms(started.elapsed()),
            ..timings
        },
        error: Some(error),
        sandbox: None,
        diagnostics: Vec::new(),
    }
}

fn with_parts(
    mut rec: ExecRecord,
    logs: Vec<isola_protocol::LogEntry>,
    logs_truncated: Option<isola_protocol::Truncation>,
    calls: Vec<isola_protocol::CallTrace>,
) -> ExecRecord {
    rec.logs = logs;
    rec.logs_truncated = logs_truncated;
    rec.calls = calls;
    rec
}
