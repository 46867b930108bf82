//! One execution as a state machine, without I/O.
//!
//! [`Execution`] owns everything an execution decides: which calls go out and when (argument
//! checks, the gates' verdicts, the concurrency cap), what the sandbox is sent and in what order,
//! the host's own count of every limit, the deadline clock (stopped while a call is held), the
//! timers, and the record. It takes a closed set of [`Input`]s through [`Execution::step`] and
//! answers with a closed set of [`Effect`]s for its driver to carry out: ask the gates, call a
//! tool, send the sandbox a message, arm a timer, give the sandbox back, finish. The driver
//! (`Engine::execute`) is a thin loop around it; tests drive it directly, without processes.
//!
//! **Host-enforced limits.** A sandbox enforces every limit itself, but it is untrusted (an
//! interpreter bug could make it lie), so the execution counts again: calls past
//! `maxToolCalls` or timers past [`MAX_TIMERS`] stop it; console output past `maxLogBytes` and a
//! result past `maxResultBytes` are cut here too.
//!
//! **After the script's result.** Once the sandbox is done, no call is sent any more: calls
//! still waiting for a gate or a slot are refused and recorded as such; calls already sent are
//! awaited (within the deadline) and recorded, so every call that reached a server is in the
//! record.
//!
//! **Replay.** With a [`Recording`], calls are answered by the gates (see
//! [`crate::replay::ReplayGate`]) and the answers go to the sandbox in the order they were
//! recorded, timers included: the sandbox then runs exactly as it did. Once the recording is
//! used up the execution goes on live.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use isola_protocol::{
    CallErrorKind, CallResult, CallTrace, ErrorKind, ExecError, HostMsg, LimitKind, Limits,
    LogEntry, LogLevel, MAX_TIMERS, RunOutcome, SandboxMsg, Truncation,
};
use serde_json::{Map, Value};

use crate::api::ApiState;
use crate::gate::{CallIntent, Decision, Ruling};
use crate::observer::{Event, Flow, Input as SandboxInput, Observer};
use crate::record::{self, unwrap_result};
use crate::replay::Recording;
use crate::tools::ToolError;

/// What happens to an execution.
#[derive(Debug)]
pub enum Input {
    /// A message from the sandbox.
    Sandbox(SandboxMsg),
    /// The sandbox died or broke the protocol.
    SandboxFailed(String),
    /// The gates' verdict on call `id` (after [`Effect::Check`]); for a hold, the driver waits
    /// for the decision and feeds [`Input::Decided`].
    Verdict { id: u32, ruling: Ruling },
    /// The decision on held call `id`.
    Decided { id: u32, decision: Decision },
    /// Tool call `id` ended: an MCP `CallToolResult` as JSON, or why there is none.
    CallFinished {
        id: u32,
        result: Result<Value, ToolError>,
    },
    /// Timer `id` is due (after [`Effect::ArmTimer`]).
    TimerDue { id: u32 },
    /// [`Execution::deadline`] passed.
    Deadline,
    /// The caller cancelled the execution.
    Cancel,
}

/// What the driver must do.
#[derive(Debug)]
pub enum Effect {
    /// Ask the gates about call `id`; answer with [`Input::Verdict`].
    Check { id: u32, call: CallIntent },
    /// Call the tool of `binding` (an index into the API's bindings); answer with
    /// [`Input::CallFinished`].
    Dispatch {
        id: u32,
        /// The call's place among the execution's calls (`CallIntent::seq`).
        seq: u32,
        binding: usize,
        arguments: Map<String, Value>,
    },
    /// Send the sandbox this message.
    Send(HostMsg),
    /// Feed [`Input::TimerDue`] for `id` at `at`.
    ArmTimer { id: u32, at: Instant },
    /// Timer `id` no longer matters.
    ClearTimer { id: u32 },
    /// The sandbox is done with this execution: give it back for the next one.
    Release,
    /// The execution is over. Drop whatever is still pending (calls, decisions, timers) and,
    /// if the sandbox was not released, stop it.
    Finish(Ending),
}

/// How an execution ended, before it is turned into a record.
#[derive(Debug)]
pub enum Ending {
    /// The sandbox finished (the script's own error, if any, is in the outcome).
    Done(RunOutcome),
    /// It was stopped from outside the script: deadline, cancellation, a limit the host
    /// enforced, a failed sandbox, a divergence, an observer.
    Stopped(ExecError),
}

/// Where one call stands.
#[derive(Debug)]
enum Stage {
    /// Waiting for the gates' verdict.
    Checking,
    /// Held by a gate.
    Held,
    /// Waiting for a gate's [`crate::Verdict::After`] (not a hold: nothing is stopped).
    After,
    /// Allowed; waiting for a slot under `maxConcurrency`.
    Queued,
    /// Sent to the tool.
    Running,
    /// Answered, but not yet due to go to the sandbox (replay keeps the recorded order).
    Answered(CallResult),
}

#[derive(Debug)]
struct Pending {
    stage: Stage,
    /// Its place among the calls of the execution.
    seq: u32,
    binding: usize,
    trace: CallTrace,
    arguments: Map<String, Value>,
    /// When the tool call was sent.
    sent: Option<Instant>,
}

/// The recorded order of inputs, while a replay lasts.
#[derive(Debug)]
struct Sequencer {
    script: VecDeque<SandboxInput>,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// The sandbox is done; the calls already sent are being awaited.
    Finishing,
    Ended,
}

/// Everything [`Execution::new`] needs.
pub struct Setup {
    pub api: std::sync::Arc<ApiState>,
    pub limits: Limits,
    /// Past the deadline, how long the sandbox gets to stop by itself before it is stopped.
    pub grace: Duration,
    /// Whether there are gates to ask ([`Effect::Check`]); without any, calls go straight out.
    pub gated: bool,
    pub observers: Vec<Box<dyn Observer>>,
    pub replay: Option<Recording>,
    /// Plan mode: arguments may hold references to planned results, which schema checks let
    /// pass (see [`crate::ExecOptions::planning`]).
    pub planning: bool,
    /// The host's clock, in milliseconds since the Unix epoch (inputs carry it to the script).
    pub clock: fn() -> u64,
}

/// One execution. See the module docs.
pub struct Execution {
    api: std::sync::Arc<ApiState>,
    limits: Limits,
    grace: Duration,
    gated: bool,
    planning: bool,
    observers: Vec<Box<dyn Observer>>,
    clock: fn() -> u64,
    run_start: Instant,
    calls: BTreeMap<u32, Pending>,
    made: u32,
    queued: VecDeque<u32>,
    running: u32,
    held: u32,
    held_since: Option<Instant>,
    held_total: Duration,
    /// A held call's decision was to suspend (the message): the execution stops once no call
    /// is out, and sends none meanwhile.
    suspending: Option<String>,
    /// Armed timers and their delays (in replay, armed only once the recording is used up).
    timers: BTreeMap<u32, f64>,
    sequencer: Option<Sequencer>,
    log_bytes: u64,
    logs_dropped: u64,
    logs: Vec<LogEntry>,
    traces: Vec<CallTrace>,
    phase: Phase,
    /// The sandbox's outcome while calls are awaited.
    outcome: Option<RunOutcome>,
    effects: Vec<Effect>,
}

impl Execution {
    /// An execution whose sandbox starts now.
    pub fn new(setup: Setup) -> Self {
        let sequencer = setup.replay.map(|r| Sequencer {
            script: r.inputs.into(),
        });
        Self {
            api: setup.api,
            limits: setup.limits,
            grace: setup.grace,
            gated: setup.gated,
            planning: setup.planning,
            observers: setup.observers,
            clock: setup.clock,
            run_start: Instant::now(),
            calls: BTreeMap::new(),
            made: 0,
            queued: VecDeque::new(),
            running: 0,
            held: 0,
            held_since: None,
            held_total: Duration::ZERO,
            suspending: None,
            timers: BTreeMap::new(),
            sequencer,
            log_bytes: 0,
            logs_dropped: 0,
            logs: Vec::new(),
            traces: Vec::new(),
            phase: Phase::Running,
            outcome: None,
            effects: Vec::new(),
        }
    }

    /// The sandbox starts running now: the deadline and record times count from here.
    pub fn begin(&mut self) {
        self.run_start = Instant::now();
    }

    /// When to feed [`Input::Deadline`]: `deadlineMs` plus the grace plus the time held;
    /// `None` while a call is held (the clock is stopped) or once the execution ended.
    pub fn deadline(&self) -> Option<Instant> {
        if self.held > 0 || self.phase == Phase::Ended {
            return None;
        }
        Some(
            self.run_start
                + Duration::from_millis(self.limits.deadline_ms)
                + self.grace
                + self.held_total,
        )
    }

    /// Whether no call is out: no tool call running, none held or waiting for a verdict.
    pub fn quiet(&self) -> bool {
        self.calls.is_empty()
    }

    pub fn is_over(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// Tell observers about `event`; one that asks to stop stops the execution.
    fn emit(&mut self, event: Event<'_>) {
        let mut stop = None;
        for o in &mut self.observers {
            if let Flow::Stop(reason) = o.event(&event) {
                stop.get_or_insert(reason);
            }
        }
        if let Some(reason) = stop {
            self.stop(record::internal_error(format!(
                "an observer of the execution stopped it: {reason}"
            )));
        }
    }

    /// Announce the start (the driver calls this once the sandbox has the request).
    pub fn started(&mut self, request: &isola_protocol::ExecRequest) {
        if !self.observers.is_empty() {
            self.emit(Event::Started { request });
        }
    }

    /// Tell observers the record, once the driver has built it.
    pub fn finished(&mut self, rec: &isola_protocol::ExecRecord) {
        for o in &mut self.observers {
            let _ = o.event(&Event::Finished(rec));
        }
    }

    /// Take in one input; its effects are in [`Execution::effects`].
    pub fn step(&mut self, input: Input) {
        if self.phase == Phase::Ended {
            return;
        }
        match input {
            Input::Sandbox(msg) => self.sandbox(msg),
            Input::SandboxFailed(reason) => self.stop(record::internal_error(format!(
                "the sandbox failed: {reason}"
            ))),
            Input::Verdict { id, ruling } => self.verdict(id, ruling),
            Input::Decided { id, decision } => self.decided(id, decision),
            Input::CallFinished { id, result } => self.call_finished(id, result),
            Input::TimerDue { id } => self.timer_due(id),
            Input::Deadline => self.stop(deadline_error(&self.limits)),
            Input::Cancel => self.stop(cancelled_error()),
        }
    }

    /// The effects of the inputs so far, in order.
    pub fn effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    /// Move the effects so far into `into` (empty), without allocating.
    pub fn take_effects(&mut self, into: &mut Vec<Effect>) {
        std::mem::swap(&mut self.effects, into);
    }

    fn sandbox(&mut self, msg: SandboxMsg) {
        if self.phase != Phase::Running {
            return;
        }
        match msg {
            SandboxMsg::Call { id, binding, args } => self.call(id, binding, args),
            SandboxMsg::Timer { id, ms } => {
                if !self.timers.contains_key(&id) && self.timers.len() >= MAX_TIMERS as usize {
                    return self.stop(limit_error(
                        LimitKind::Timers,
                        format!("the script set more than {MAX_TIMERS} timers at once"),
                    ));
                }
                self.timers.insert(id, ms);
                if self.sequencer.is_none() {
                    self.arm(id, ms);
                } else {
                    self.pump();
                }
            }
            SandboxMsg::ClearTimer { id } => {
                if self.timers.remove(&id).is_some() {
                    self.effects.push(Effect::ClearTimer { id });
                }
            }
            SandboxMsg::Log { level, text } => self.log(level, text),
            SandboxMsg::Done(outcome) => self.done(outcome),
            SandboxMsg::Ready(_) => {}
        }
    }

    fn arm(&mut self, id: u32, ms: f64) {
        let ms = if ms.is_finite() {
            ms.clamp(0.0, 1e12)
        } else {
            0.0
        };
        let at = Instant::now() + Duration::from_secs_f64(ms / 1000.0);
        self.effects.push(Effect::ArmTimer { id, at });
    }

    fn log(&mut self, level: LogLevel, text: String) {
        let room = self.limits.max_log_bytes.saturating_sub(self.log_bytes) as usize;
        let len = text.len() as u64;
        let text = if text.len() <= room {
            text
        } else {
            record::cut(&text, room).to_string()
        };
        self.logs_dropped += len - text.len() as u64;
        if text.is_empty() && len > 0 {
            return;
        }
        self.log_bytes += text.len() as u64;
        let entry = LogEntry {
            level,
            text,
            at_ms: ms(self.run_start.elapsed()),
        };
        if !self.observers.is_empty() {
            self.emit(Event::Log(&entry));
        }
        self.logs.push(entry);
    }

    fn call(&mut self, id: u32, binding: u32, args: String) {
        if self.made >= self.limits.max_tool_calls {
            return self.stop(limit_error(
                LimitKind::ToolCalls,
                format!(
                    "the limit of {} tool calls was hit; the script was stopped",
                    self.limits.max_tool_calls
                ),
            ));
        }
        if self.calls.contains_key(&id) {
            return self.stop(record::internal_error(format!(
                "the sandbox reused the id {id} of a call still under way"
            )));
        }
        let seq = self.made;
        self.made += 1;
        let request_bytes = args.len() as u64;
        let mut trace = CallTrace {
            function: format!("#{binding}"),
            server: String::new(),
            tool: String::new(),
            arguments: Value::Null,
            started_ms: ms(self.run_start.elapsed()),
            duration_ms: 0.0,
            ok: false,
            error: None,
            request_bytes,
            response_bytes: 0,
            sent: false,
        };
        let api = self.api.clone();
        let Some(b) = api.bindings.get(binding as usize) else {
            let message = format!("the sandbox called binding #{binding}, which does not exist");
            return self.refuse(id, trace, internal_result("", &message));
        };
        trace.function = b.function.clone();
        trace.server = b.server.clone();
        trace.tool = b.tool.clone();
        trace.arguments = match record::parse_guest_json(&args) {
            Ok(v) => v,
            Err(e) => {
                let result = CallResult::Err {
                    kind: CallErrorKind::Validation,
                    name: "ValidationError".into(),
                    message: format!("the arguments of {} cannot be sent: {e}", b.function),
                    tool: b.function.clone(),
                };
                return self.refuse(id, trace, result);
            }
        };
        let checked = if self.planning {
            b.validate_planned(&trace.arguments)
        } else {
            b.validate(&trace.arguments)
        };
        let arguments = match (&trace.arguments, checked) {
            (_, Err(message)) => {
                let result = CallResult::Err {
                    kind: CallErrorKind::Validation,
                    name: "ValidationError".into(),
                    message,
                    tool: b.function.clone(),
                };
                return self.refuse(id, trace, result);
            }
            (Value::Object(map), Ok(())) => map.clone(),
            (_, Ok(())) => {
                let result = CallResult::Err {
                    kind: CallErrorKind::Validation,
                    name: "TypeError".into(),
                    message: format!("{} takes one object argument", b.function),
                    tool: b.function.clone(),
                };
                return self.refuse(id, trace, result);
            }
        };
        let intent = (self.gated || !self.observers.is_empty()).then(|| CallIntent {
            seq,
            function: b.function.clone(),
            server: b.server.clone(),
            tool: b.tool.clone(),
            effect: b.effect,
            arguments: trace.arguments.clone(),
        });
        self.calls.insert(
            id,
            Pending {
                stage: Stage::Checking,
                seq,
                binding: binding as usize,
                trace,
                arguments,
                sent: None,
            },
        );
        if let Some(intent) = &intent
            && !self.observers.is_empty()
        {
            self.emit(Event::Call { id, call: intent });
        }
        match intent {
            Some(call) if self.gated => self.effects.push(Effect::Check { id, call }),
            _ => self.allow(id),
        }
    }

    /// A call that is answered without being sent (bad arguments, unknown binding, a denial).
    fn refuse(&mut self, id: u32, mut trace: CallTrace, result: CallResult) {
        if let CallResult::Err { message, .. } = &result {
            trace.error = Some(message.clone());
        }
        self.calls.insert(
            id,
            Pending {
                stage: Stage::Answered(result),
                seq: u32::MAX,
                binding: 0,
                trace,
                arguments: Map::new(),
                sent: None,
            },
        );
        self.answered(id);
    }

    fn verdict(&mut self, id: u32, ruling: Ruling) {
        if !matches!(self.calls.get(&id).map(|p| &p.stage), Some(Stage::Checking)) {
            return;
        }
        match ruling {
            Ruling::Allow => self.allow(id),
            Ruling::Deny(denial) => {
                if !self.observers.is_empty() {
                    self.emit(Event::Denied {
                        id,
                        denial: &denial,
                    });
                }
                self.settle_without_sending(id, denial.result(&self.function_of(id)));
            }
            Ruling::Simulate(result) => self.settle_without_sending(id, result),
            Ruling::Abort(error) => self.stop(error),
            Ruling::After => {
                if let Some(p) = self.calls.get_mut(&id) {
                    p.stage = Stage::After;
                }
            }
            Ruling::Hold(reason) => {
                if let Some(p) = self.calls.get_mut(&id) {
                    p.stage = Stage::Held;
                }
                if self.held == 0 {
                    self.held_since = Some(Instant::now());
                    self.effects.push(Effect::Send(HostMsg::Hold));
                }
                self.held += 1;
                if !self.observers.is_empty() {
                    self.emit(Event::Held {
                        id,
                        reason: &reason,
                    });
                }
            }
        }
    }

    fn decided(&mut self, id: u32, decision: Decision) {
        match self.calls.get(&id).map(|p| &p.stage) {
            Some(Stage::Held) => {}
            // A quiet wait: no hold to end, nothing to tell observers but the outcome.
            Some(Stage::After) => {
                return match decision {
                    Decision::Allow => {
                        if let Some(p) = self.calls.get_mut(&id) {
                            p.stage = Stage::Checking;
                        }
                        self.allow(id);
                    }
                    Decision::Deny(denial) => {
                        if !self.observers.is_empty() {
                            self.emit(Event::Denied {
                                id,
                                denial: &denial,
                            });
                        }
                        let result = denial.result(&self.function_of(id));
                        self.settle_without_sending(id, result);
                    }
                    Decision::Simulate(result) => self.settle_without_sending(id, result),
                    Decision::Suspend(message) => self.suspend(id, message),
                };
            }
            _ => return,
        }
        self.held -= 1;
        if self.held == 0 {
            if let Some(since) = self.held_since.take() {
                self.held_total += since.elapsed();
            }
            self.effects.push(Effect::Send(HostMsg::Resume));
        }
        if !self.observers.is_empty() {
            self.emit(Event::Decided {
                id,
                decision: &decision,
            });
        }
        match decision {
            Decision::Allow => {
                if let Some(p) = self.calls.get_mut(&id) {
                    p.stage = Stage::Checking;
                }
                self.allow(id);
            }
            Decision::Deny(denial) => {
                let result = denial.result(&self.function_of(id));
                self.settle_without_sending(id, result);
            }
            Decision::Simulate(result) => self.settle_without_sending(id, result),
            Decision::Suspend(message) => self.suspend(id, message),
        }
    }

    /// Call `id` stays unsent, and the execution ends `suspended` once no call is out (an
    /// answer on its way is never lost: a resume could not know it).
    fn suspend(&mut self, id: u32, message: String) {
        if let Some(p) = self.calls.get_mut(&id) {
            p.stage = Stage::Held;
        }
        if self.suspending.is_none() {
            self.suspending = Some(message);
        }
        self.maybe_suspend();
    }

    fn maybe_suspend(&mut self) {
        if self.running > 0 || self.phase == Phase::Ended {
            return;
        }
        if let Some(message) = self.suspending.take() {
            self.stop(suspended_error(message));
        }
    }

    fn function_of(&self, id: u32) -> String {
        self.calls
            .get(&id)
            .map(|p| p.trace.function.clone())
            .unwrap_or_default()
    }

    fn settle_without_sending(&mut self, id: u32, result: CallResult) {
        let Some(p) = self.calls.get_mut(&id) else {
            return;
        };
        if let CallResult::Err { message, .. } = &result {
            p.trace.error = Some(message.clone());
        } else {
            p.trace.ok = true;
        }
        p.stage = Stage::Answered(result);
        self.answered(id);
    }

    /// Send the call when a slot is free.
    fn allow(&mut self, id: u32) {
        if self.phase != Phase::Running {
            return self.refuse_late(id);
        }
        if let Some(p) = self.calls.get_mut(&id) {
            p.stage = Stage::Queued;
        }
        self.queued.push_back(id);
        if self.suspending.is_none() {
            self.dispatch_queued();
        }
    }

    fn dispatch_queued(&mut self) {
        let cap = self.limits.max_concurrency.max(1);
        while self.running < cap {
            let Some(id) = self.queued.pop_front() else {
                return;
            };
            let Some(p) = self.calls.get_mut(&id) else {
                continue;
            };
            p.stage = Stage::Running;
            p.sent = Some(Instant::now());
            p.trace.started_ms = ms(self.run_start.elapsed());
            self.running += 1;
            self.effects.push(Effect::Dispatch {
                id,
                seq: p.seq,
                binding: p.binding,
                arguments: std::mem::take(&mut p.arguments),
            });
        }
    }

    fn call_finished(&mut self, id: u32, result: Result<Value, ToolError>) {
        let Some(p) = self.calls.get_mut(&id) else {
            return;
        };
        if !matches!(p.stage, Stage::Running) {
            return;
        }
        self.running -= 1;
        if let Some(sent) = p.sent {
            p.trace.duration_ms = ms(sent.elapsed());
        }
        let function = p.trace.function.clone();
        let result = match result {
            Ok(result) if result.get("isError").and_then(Value::as_bool) == Some(true) => {
                let text = record::error_text(&result);
                let message = format!("{function} failed: {}", record::capped(&text));
                p.trace.response_bytes = message.len() as u64;
                CallResult::Err {
                    kind: CallErrorKind::Tool,
                    name: "ToolError".into(),
                    message,
                    tool: function,
                }
            }
            Ok(result) => {
                let value = unwrap_result(&result).to_string();
                p.trace.response_bytes = value.len() as u64;
                CallResult::Ok { value }
            }
            Err(e) => CallResult::Err {
                kind: CallErrorKind::Tool,
                name: "ToolError".into(),
                message: format!("{function} failed: {}", record::capped(&e.to_string())),
                tool: function,
            },
        };
        match &result {
            CallResult::Err { message, .. } => p.trace.error = Some(message.clone()),
            CallResult::Ok { .. } | CallResult::Planned { .. } => p.trace.ok = true,
        }
        p.stage = Stage::Answered(result);
        if self.suspending.is_some() {
            self.answered(id);
            return self.maybe_suspend();
        }
        self.dispatch_queued();
        self.answered(id);
    }

    /// Call `id` has its answer: record it, and send it to the sandbox when it is due.
    fn answered(&mut self, id: u32) {
        if self.phase != Phase::Running {
            // The sandbox is done: the answer only goes into the record.
            if let Some(p) = self.calls.remove(&id) {
                self.end_call(id, p.trace, p.sent.is_some());
            }
            return self.maybe_end();
        }
        if self.sequencer.is_some() {
            return self.pump();
        }
        self.deliver(id);
    }

    fn deliver(&mut self, id: u32) {
        let Some(p) = self.calls.remove(&id) else {
            return;
        };
        let Stage::Answered(result) = p.stage else {
            self.calls.insert(id, p);
            return;
        };
        // The answer first: the sandbox goes on while the call is recorded.
        let now_ms = (self.clock)();
        self.send_input(SandboxInput::CallDone { id, result, now_ms });
        self.end_call(id, p.trace, p.sent.is_some());
    }

    fn end_call(&mut self, id: u32, mut trace: CallTrace, sent: bool) {
        trace.sent = sent;
        if !self.observers.is_empty() {
            self.emit(Event::CallEnded { id, trace: &trace });
        }
        self.traces.push(trace);
    }

    fn send_input(&mut self, input: SandboxInput) {
        if !self.observers.is_empty() {
            self.emit(Event::Input { input: &input });
        }
        self.effects.push(Effect::Send(match input {
            SandboxInput::CallDone { id, result, now_ms } => {
                HostMsg::CallDone { id, result, now_ms }
            }
            SandboxInput::Fire { id, now_ms } => HostMsg::Fire { id, now_ms },
        }));
    }

    /// In replay: send the recorded inputs whose turn has come, in the recorded order. When
    /// the recording is used up, go on live.
    fn pump(&mut self) {
        while let Some(seq) = &mut self.sequencer {
            let Some(next) = seq.script.front() else {
                self.sequencer = None;
                let armed: Vec<(u32, f64)> = self.timers.iter().map(|(i, m)| (*i, *m)).collect();
                for (id, ms) in armed {
                    self.arm(id, ms);
                }
                let answered: Vec<u32> = self
                    .calls
                    .iter()
                    .filter(|(_, p)| matches!(p.stage, Stage::Answered(_)))
                    .map(|(id, _)| *id)
                    .collect();
                for id in answered {
                    self.deliver(id);
                }
                return;
            };
            let due = match next {
                SandboxInput::CallDone { id, .. } => matches!(
                    self.calls.get(id).map(|p| &p.stage),
                    Some(Stage::Answered(_))
                ),
                SandboxInput::Fire { id, .. } => self.timers.contains_key(id),
            };
            if !due {
                return;
            }
            let Some(input) = seq.script.pop_front() else {
                return;
            };
            match input {
                SandboxInput::CallDone { id, result, now_ms } => {
                    let Some(p) = self.calls.remove(&id) else {
                        continue;
                    };
                    self.send_input(SandboxInput::CallDone { id, result, now_ms });
                    self.end_call(id, p.trace, p.sent.is_some());
                }
                SandboxInput::Fire { id, now_ms } => {
                    self.timers.remove(&id);
                    self.send_input(SandboxInput::Fire { id, now_ms });
                }
            }
        }
    }

    fn timer_due(&mut self, id: u32) {
        if self.phase != Phase::Running || self.timers.remove(&id).is_none() {
            return;
        }
        let now_ms = (self.clock)();
        self.send_input(SandboxInput::Fire { id, now_ms });
    }

    fn done(&mut self, mut outcome: RunOutcome) {
        // The host cuts the result too: the sandbox's word on its size is not trusted.
        if let Ok(Some(payload)) = &mut outcome.result {
            let max = self.limits.max_result_bytes as usize;
            if payload.json.len() > max {
                let kept = record::cut(&payload.json, max).len();
                payload.dropped_bytes += (payload.json.len() - kept) as u64;
                payload.json.truncate(kept);
            }
        }
        self.phase = Phase::Finishing;
        self.outcome = Some(outcome);
        self.effects.push(Effect::Release);
        for id in std::mem::take(&mut self.timers).into_keys() {
            self.effects.push(Effect::ClearTimer { id });
        }
        // Calls not sent yet never will be.
        let unsent: Vec<u32> = self
            .calls
            .iter()
            .filter(|(_, p)| !matches!(p.stage, Stage::Running))
            .map(|(id, _)| *id)
            .collect();
        for id in unsent {
            self.refuse_late(id);
        }
        self.maybe_end();
    }

    /// A call whose turn came after the script finished: recorded, never sent.
    fn refuse_late(&mut self, id: u32) {
        let Some(mut p) = self.calls.remove(&id) else {
            return;
        };
        self.queued.retain(|q| *q != id);
        if matches!(p.stage, Stage::Held) {
            self.held -= 1;
        }
        if p.trace.error.is_none() && !p.trace.ok {
            p.trace.error = Some(
                "not sent: the script had already finished (the call was never awaited)".into(),
            );
        }
        self.end_call(id, p.trace, p.sent.is_some());
        self.maybe_end();
    }

    fn maybe_end(&mut self) {
        if self.phase == Phase::Finishing && self.calls.is_empty() {
            self.phase = Phase::Ended;
            if let Some(outcome) = self.outcome.take() {
                self.effects.push(Effect::Finish(Ending::Done(outcome)));
            }
        }
    }

    /// End the execution from outside the script. Calls still out are cancelled and recorded.
    fn stop(&mut self, error: ExecError) {
        if self.phase == Phase::Ended {
            return;
        }
        let reason = match (error.kind, error.limit) {
            (ErrorKind::Limit, Some(LimitKind::Deadline)) => "the deadline ended the execution",
            (ErrorKind::Cancelled, _) => "the execution was cancelled",
            (ErrorKind::Suspended, _) => "the execution was suspended",
            _ => "the execution was stopped",
        };
        let mut ids: Vec<u32> = self.calls.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(mut p) = self.calls.remove(&id) {
                if !p.trace.ok && p.trace.error.is_none() {
                    p.trace.error = Some(match p.stage {
                        Stage::Running => format!("cancelled while under way: {reason}"),
                        _ => format!("not sent: {reason}"),
                    });
                    if let (Stage::Running, Some(sent)) = (&p.stage, p.sent) {
                        p.trace.duration_ms = ms(sent.elapsed());
                    }
                }
                self.end_call(id, p.trace, p.sent.is_some());
            }
        }
        self.phase = Phase::Ended;
        // Stopped while awaiting calls the script never awaited: its own outcome stands (those
        // calls are recorded as cancelled).
        let ending = match self.outcome.take() {
            Some(outcome) => Ending::Done(outcome),
            None => Ending::Stopped(error),
        };
        self.effects.push(Effect::Finish(ending));
    }

    /// What the record needs: console lines (with the truncation, if any) and the call traces
    /// in the order the calls were made.
    pub fn take_record_parts(&mut self) -> (Vec<LogEntry>, Option<Truncation>, Vec<CallTrace>) {
        let mut logs = std::mem::take(&mut self.logs);
        let truncation = (self.logs_dropped > 0).then(|| {
            logs.push(LogEntry {
                level: LogLevel::Warn,
                text: format!(
                    "[isola: console output over the {}-byte limit; {} bytes dropped]",
                    self.limits.max_log_bytes, self.logs_dropped
                ),
                at_ms: ms(self.run_start.elapsed()),
            });
            Truncation {
                limit_bytes: self.limits.max_log_bytes,
                dropped_bytes: self.logs_dropped,
            }
        });
        let mut calls = std::mem::take(&mut self.traces);
        calls.sort_by(|a, b| a.started_ms.total_cmp(&b.started_ms));
        (logs, truncation, calls)
    }

    /// Console bytes the sandbox dropped itself, on top of what the host dropped.
    pub fn add_sandbox_dropped(&mut self, bytes: u64) {
        self.logs_dropped += bytes;
    }
}

fn internal_result(function: &str, message: &str) -> CallResult {
    CallResult::Err {
        kind: CallErrorKind::Internal,
        name: "InternalError".into(),
        message: message.to_string(),
        tool: function.to_string(),
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn limit_error(limit: LimitKind, message: String) -> ExecError {
    ExecError {
        kind: ErrorKind::Limit,
        limit: Some(limit),
        name: "LimitError".into(),
        message,
        position: None,
        code_frame: None,
        stack: None,
        tool: None,
        hint: None,
    }
}

pub(crate) fn deadline_error(limits: &Limits) -> ExecError {
    limit_error(
        LimitKind::Deadline,
        format!(
            "the deadline of {} ms was hit; the script was stopped (its sandbox process was killed)",
            limits.deadline_ms
        ),
    )
}

fn suspended_error(message: String) -> ExecError {
    ExecError {
        kind: ErrorKind::Suspended,
        limit: None,
        name: "Suspended".into(),
        message,
        position: None,
        code_frame: None,
        stack: None,
        tool: None,
        hint: None,
    }
}

pub(crate) fn cancelled_error() -> ExecError {
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
