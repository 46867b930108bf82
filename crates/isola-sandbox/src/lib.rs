//! The QuickJS sandbox: runs one script in a fresh JS runtime and reports how it ended.
//!
//! The API is one function, [`run`]: an [`ExecRequest`] goes in, the script's tool calls,
//! timers and console lines go out through a [`Host`], its inputs (call answers, due timers)
//! come back through [`Host::wait`], and one [`RunOutcome`] comes back. Nothing of the host
//! process is reachable from the script: the context has the ECMAScript built-ins, the bindings
//! named in the request, `console`, `setTimeout`/`clearTimeout`, and nothing else (no module
//! loader, no `std`/`os`, no fetch, no bytecode loading, no `WeakRef`/`FinalizationRegistry`).
//!
//! **Determinism.** The script's clock, randomness and timers are the host's: `Date.now()` and
//! `new Date()` read [`ExecRequest::clock_ms`] until the first input, then the `now_ms` of the
//! last input taken (time advances only at I/O, as in Cloudflare Workers); `Math.random` is a
//! xoshiro128** generator seeded from [`ExecRequest::seed`]; a timer fires when the host sends
//! [`Wake::Fired`]. Inputs are taken one at a time, only when the script has nothing left to
//! run, so a run is a function of its request and its sequence of inputs: a replay that feeds
//! the same inputs gets the same calls, logs and result. (Garbage collection is not observable:
//! `WeakRef` and `FinalizationRegistry` are left out for that reason.)
//!
//! Every limit of [`isola_protocol::Limits`] is enforced here except the hard deadline for
//! native operations that never return to the interpreter (`Array(2**32-1).join()`): only
//! killing the process stops those, which is why the CLI runs this inside worker processes
//! (crate `isola-worker`).
//!
//! ```
//! use std::{cell::RefCell, rc::Rc, sync::{Arc, atomic::AtomicBool}};
//! use isola_protocol::{CallResult, ExecRequest, Limits, LogLevel, Namespace};
//! use isola_sandbox::{Host, Wake};
//!
//! struct Adder;
//! impl Host for Adder {
//!     fn call(&mut self, _id: u32, _binding: u32, args: String) -> Option<CallResult> {
//!         let v: serde_json::Value = serde_json::from_str(&args).unwrap();
//!         let sum = v["a"].as_i64().unwrap() + v["b"].as_i64().unwrap();
//!         Some(CallResult::Ok { value: sum.to_string() })
//!     }
//!     fn timer(&mut self, _id: u32, _ms: f64) {}
//!     fn clear_timer(&mut self, _id: u32) {}
//!     fn log(&mut self, _level: LogLevel, _text: String) {}
//!     fn wait(&mut self, _timeout: std::time::Duration) -> Wake { Wake::TimedOut }
//! }
//!
//! let request = ExecRequest::new(
//!     "(async () => await math.add({ a: 2, b: 3 }))()".into(),
//!     vec![Namespace::new("math", &["add"])],
//!     Limits::default(),
//! );
//! let host = Rc::new(RefCell::new(Adder));
//! let outcome = isola_sandbox::run(&request, host, &Arc::new(AtomicBool::new(false)));
//! assert_eq!(outcome.result.unwrap().unwrap().json, "5");
//! ```

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use isola_protocol::{
    CallErrorKind, CallResult, ErrorKind, ExecRequest, JsError, LimitKind, LogLevel, MAX_TIMERS,
    Payload, RunOutcome,
};
mod meter;
mod prelude;

use rquickjs::context::EvalOptions;
use rquickjs::{Array, Context, Ctx, Function, Object, Runtime, Value, context::intrinsic};

/// The file name the user's (transpiled) script is evaluated under; stack traces name it.
pub const SCRIPT_NAME: &str = "script.js";
/// The file name of the prelude in stack traces; its frames are internal and are dropped from
/// what users see.
pub const PRELUDE_NAME: &str = "isola:prelude";
/// The prelude's `settle` takes this for `ok` when the call was planned, not made (plan mode).
const PLANNED: i32 = 2;

/// The built-ins a sandbox context gets. Deliberately absent: `Performance` (a high-resolution
/// timer is a side channel and nothing needs it), `DOMException`, `WeakRef` and
/// `FinalizationRegistry` (they make garbage collection observable: a run would no longer be a
/// function of its inputs, and finalizers would run code after the script has finished).
type Intrinsics = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::Proxy,
    intrinsic::MapSet,
    intrinsic::TypedArrays,
    intrinsic::Promise,
);

/// What the sandbox needs from whoever runs it.
pub trait Host {
    /// The script called binding `binding` (an index into the request's flattened namespaces)
    /// with `args` (JSON text). Return `Some` to settle the call at once (the clock does not
    /// move), or `None` to settle it later through [`Host::wait`].
    fn call(&mut self, id: u32, binding: u32, args: String) -> Option<CallResult>;
    /// The script set timer `id` to fire in `ms` milliseconds: answer with [`Wake::Fired`] when
    /// it is due. At most [`MAX_TIMERS`] are armed at once.
    fn timer(&mut self, id: u32, ms: f64);
    /// The script cleared timer `id` (a [`Wake::Fired`] for it that crossed is ignored).
    fn clear_timer(&mut self, id: u32);
    /// One console line, already rendered. Called only within the log limit.
    fn log(&mut self, level: LogLevel, text: String);
    /// Block until the next input (or hold/resume) arrives or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> Wake;
}

/// Why [`Host::wait`] returned.
#[derive(Debug)]
pub enum Wake {
    /// Input: call `id` settled; the script's clock reads `now_ms` from here on.
    Settled {
        id: u32,
        result: CallResult,
        now_ms: u64,
    },
    /// Input: timer `id` is due; the script's clock reads `now_ms` from here on.
    Fired {
        id: u32,
        now_ms: u64,
    },
    /// The host holds a call for a decision: the deadline clock stops.
    Hold,
    /// The decision came: the deadline clock runs again.
    Resume,
    TimedOut,
    /// Stop the run: the caller cancelled it.
    Cancelled,
    /// The host is gone; stop the run.
    Disconnected,
}

/// Why the run was stopped from outside the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abort {
    Limit(LimitKind),
    Cancelled,
    Disconnected,
}

/// Shared between the interrupt handler, the natives and the loop.
struct Guard {
    /// Moves later by the time spent held.
    deadline: Cell<Instant>,
    /// Since when the host holds a call: the deadline clock is stopped.
    held_since: Cell<Option<Instant>>,
    cancel: Arc<AtomicBool>,
    abort: Cell<Option<Abort>>,
}

impl Guard {
    /// The interrupt handler: true stops the interpreter with an uncatchable error.
    fn should_interrupt(&self) -> bool {
        if self.abort.get().is_some() {
            return true;
        }
        if self.cancel.load(Ordering::Relaxed) {
            self.abort.set(Some(Abort::Cancelled));
            return true;
        }
        if self.past_deadline(Instant::now()) {
            self.abort.set(Some(Abort::Limit(LimitKind::Deadline)));
            return true;
        }
        false
    }

    fn past_deadline(&self, now: Instant) -> bool {
        self.held_since.get().is_none() && now >= self.deadline.get()
    }

    fn hold(&self) {
        if self.held_since.get().is_none() {
            self.held_since.set(Some(Instant::now()));
        }
    }

    fn resume(&self) {
        if let Some(since) = self.held_since.take() {
            self.deadline.set(self.deadline.get() + since.elapsed());
        }
    }
}

/// Mutable state the natives share with the loop. Holds no JS values, so nothing can outlive
/// the context.
#[derive(Default)]
struct State {
    next_call: u32,
    calls_made: u32,
    pending_calls: u32,
    /// Timers armed and not yet fired or cleared.
    timers: BTreeSet<u32>,
    log_bytes: u64,
    logs_dropped: u64,
    /// The script's promise settled: its result is being serialised, no call may start.
    settling: bool,
    finished: Option<Result<Option<Payload>, JsError>>,
}

/// A JS runtime and context made ahead of time and not yet used by any script. Creating them is
/// a good part of starting an execution (~0.2 ms of ~0.5 ms when the caches are cold), so a
/// worker makes the next one while it waits for work. Used once, by [`run_in`].
pub struct Fresh {
    // Dropped in this order: the prelude, its context, their runtime.
    /// The prelude's entry function, already loaded into `context` (loading its bytecode is
    /// most of the rest of a start). Nothing ran it yet.
    prelude: rquickjs::Persistent<Function<'static>>,
    context: Context,
    runtime: Runtime,
    /// The runtime's allocator's count: the heap limit, and whether it was hit.
    meter: Rc<meter::Meter>,
}

impl Fresh {
    pub fn new() -> Result<Self, String> {
        let meter = Rc::new(meter::Meter::default());
        let runtime = Runtime::new_with_alloc(meter::Metered(meter.clone()))
            .map_err(|e| format!("cannot create a JS runtime: {e}"))?;
        let context = Context::custom::<Intrinsics>(&runtime)
            .map_err(|e| format!("cannot create a JS context: {e}"))?;
        let prelude = context
            .with(|ctx| prelude::load(&ctx).map(|f| rquickjs::Persistent::save(&ctx, f)))
            .map_err(|e| format!("cannot load the sandbox prelude: {e}"))?;
        Ok(Self {
            prelude,
            context,
            runtime,
            meter,
        })
    }
}

/// What a finished run leaves behind: its runtime and context, freed when this is dropped.
/// Freeing a runtime takes ~0.1 ms (measured: 75-130 µs after a 100-call script); a caller
/// that sends the outcome first and drops this afterwards keeps that off the path of whoever
/// waits for the outcome.
pub struct Spent {
    /// Held only to be dropped (the context before its runtime).
    _held: Option<(Context, Runtime)>,
}

/// Run one script in a runtime made now. Never panics on anything the script does; every
/// failure is in the outcome.
pub fn run(
    request: &ExecRequest,
    host: Rc<RefCell<dyn Host>>,
    cancel: &Arc<AtomicBool>,
) -> RunOutcome {
    run_in(None, request, host, cancel).0
}

/// Run one script in `fresh` (a runtime is made now when `None`); a runtime serves one script
/// only, so it is consumed, and comes back as [`Spent`].
pub fn run_in(
    fresh: Option<Fresh>,
    request: &ExecRequest,
    host: Rc<RefCell<dyn Host>>,
    cancel: &Arc<AtomicBool>,
) -> (RunOutcome, Spent) {
    let fresh = match fresh.map_or_else(Fresh::new, Ok) {
        Ok(fresh) => fresh,
        Err(message) => return (internal(message), Spent { _held: None }),
    };
    let started = Instant::now();
    let limits = &request.limits;
    let guard = Rc::new(Guard {
        deadline: Cell::new(started + Duration::from_millis(limits.deadline_ms)),
        held_since: Cell::new(None),
        cancel: cancel.clone(),
        abort: Cell::new(None),
    });
    let Fresh {
        prelude,
        context,
        runtime,
        meter,
    } = fresh;
    // The allocator enforces the heap limit (see meter.rs), so it knows when it was hit.
    meter.set_limit(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX));
    runtime.set_max_stack_size(usize::try_from(limits.stack_bytes).unwrap_or(usize::MAX));
    // The stack limit counts from where the runtime was made; measure it from here instead.
    context.with(|ctx| {
        // SAFETY: a live context of this thread; only reads the stack pointer.
        unsafe {
            rquickjs::qjs::JS_UpdateStackTop(rquickjs::qjs::JS_GetRuntime(ctx.as_raw().as_ptr()))
        }
    });
    let g = guard.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || g.should_interrupt())));
    let state = Rc::new(RefCell::new(State::default()));
    let result = context.with(|ctx| drive(&ctx, prelude, request, &host, &state, &guard));
    let memory_used_bytes = u64::try_from(runtime.memory_usage().memory_used_size).unwrap_or(0);
    let logs_dropped_bytes = state.borrow().logs_dropped;
    let result = match guard.abort.get() {
        // An abort wins over whatever the script did after it.
        Some(abort) => Err(abort_error(abort, limits)),
        // A run that failed after the heap limit was hit failed of it, whatever came out
        // (QuickJS may not even manage to make the error).
        None if result.is_err() && meter.refused() => Err(memory_error(limits)),
        None => result,
    };
    let outcome = RunOutcome {
        result,
        logs_dropped_bytes,
        memory_used_bytes,
    };
    let spent = Spent {
        _held: Some((context, runtime)),
    };
    (outcome, spent)
}

fn memory_error(limits: &isola_protocol::Limits) -> JsError {
    JsError {
        kind: ErrorKind::Limit,
        limit: Some(LimitKind::Memory),
        name: "LimitError".into(),
        message: format!(
            "the memory limit of {} bytes was hit (out of memory)",
            limits.memory_bytes
        ),
        stack: None,
        tool: None,
    }
}

fn internal(message: String) -> RunOutcome {
    RunOutcome {
        result: Err(JsError {
            kind: ErrorKind::Internal,
            limit: None,
            name: "InternalError".into(),
            message,
            stack: None,
            tool: None,
        }),
        logs_dropped_bytes: 0,
        memory_used_bytes: 0,
    }
}

fn abort_error(abort: Abort, limits: &isola_protocol::Limits) -> JsError {
    let (kind, limit, message) = match abort {
        Abort::Limit(LimitKind::Deadline) => (
            ErrorKind::Limit,
            Some(LimitKind::Deadline),
            format!(
                "the deadline of {} ms was hit; the script was stopped",
                limits.deadline_ms
            ),
        ),
        Abort::Limit(LimitKind::ToolCalls) => (
            ErrorKind::Limit,
            Some(LimitKind::ToolCalls),
            format!(
                "the limit of {} tool calls was hit; the script was stopped",
                limits.max_tool_calls
            ),
        ),
        Abort::Limit(LimitKind::Timers) => (
            ErrorKind::Limit,
            Some(LimitKind::Timers),
            format!("the limit of {MAX_TIMERS} pending timers was hit; the script was stopped"),
        ),
        Abort::Limit(other) => (
            ErrorKind::Limit,
            Some(other),
            format!("the {} limit was hit", other.as_str()),
        ),
        Abort::Cancelled => (
            ErrorKind::Cancelled,
            None,
            "the execution was cancelled".to_string(),
        ),
        Abort::Disconnected => (
            ErrorKind::Internal,
            None,
            "the host went away during the execution".to_string(),
        ),
    };
    let name = match kind {
        ErrorKind::Limit => "LimitError",
        ErrorKind::Cancelled => "CancelledError",
        _ => "InternalError",
    };
    JsError {
        kind,
        limit,
        name: name.into(),
        message,
        stack: None,
        tool: None,
    }
}

/// Turn what the script threw into a [`JsError`], recognising QuickJS's own limit errors.
/// `host_kind` is the kind the host gave a failed call's error (the prelude keeps track of the
/// errors it made for calls, so a script cannot claim one).
fn classify(
    name: String,
    message: String,
    stack: String,
    tool: String,
    host_kind: Option<CallErrorKind>,
    limits: &isola_protocol::Limits,
) -> JsError {
    let stack = (!stack.is_empty()).then_some(stack);
    if let Some(kind) = host_kind {
        return JsError {
            kind: kind.exec_kind(),
            limit: None,
            name,
            message,
            stack,
            tool: (!tool.is_empty()).then_some(tool),
        };
    }
    let overflow = (name == "RangeError" && message == "Maximum call stack size exceeded")
        || (name == "InternalError" && message.starts_with("stack overflow"));
    if overflow {
        return JsError {
            kind: ErrorKind::Limit,
            limit: Some(LimitKind::Stack),
            name: "LimitError".into(),
            message: format!(
                "the stack limit of {} bytes was hit (too much recursion)",
                limits.stack_bytes
            ),
            stack,
            tool: None,
        };
    }
    JsError {
        kind: ErrorKind::Runtime,
        limit: None,
        name,
        message,
        stack,
        tool: None,
    }
}

fn call_error_kind(kind: &str) -> Option<CallErrorKind> {
    match kind {
        "tool" => Some(CallErrorKind::Tool),
        "validation" => Some(CallErrorKind::Validation),
        "denied" => Some(CallErrorKind::Denied),
        "internal" => Some(CallErrorKind::Internal),
        _ => None,
    }
}

fn call_error_kind_str(kind: CallErrorKind) -> &'static str {
    match kind {
        CallErrorKind::Tool => "tool",
        CallErrorKind::Validation => "validation",
        CallErrorKind::Denied => "denied",
        CallErrorKind::Internal => "internal",
    }
}

/// Cut `text` to at most `max` bytes on a char boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn js_err(e: rquickjs::Error) -> JsError {
    JsError {
        kind: ErrorKind::Internal,
        limit: None,
        name: "InternalError".into(),
        message: format!("sandbox setup failed: {e}"),
        stack: None,
        tool: None,
    }
}

type Finished = Result<Option<Payload>, JsError>;

fn drive<'js>(
    ctx: &Ctx<'js>,
    prelude: rquickjs::Persistent<Function<'static>>,
    request: &ExecRequest,
    host: &Rc<RefCell<dyn Host>>,
    state: &Rc<RefCell<State>>,
    guard: &Rc<Guard>,
) -> Finished {
    let limits = &request.limits;
    let api = match install(ctx, prelude, request, host, state, guard) {
        Ok(api) => api,
        Err(e) => {
            return Err(guard
                .abort
                .get()
                .map(|a| abort_error(a, limits))
                .unwrap_or_else(|| js_err(e)));
        }
    };
    let (start, settle, fire, report) = api;

    let options = {
        let mut o = EvalOptions::default();
        o.global = true;
        o.strict = true;
        o.backtrace_barrier = true;
        o.filename = Some(SCRIPT_NAME.to_string());
        o
    };
    match ctx.eval_with_options::<Value, _>(request.code.as_bytes(), options) {
        Ok(value) => {
            if start.call::<_, ()>((value,)).is_err() {
                let _ = ctx.catch();
            }
        }
        Err(_) => {
            let thrown = ctx.catch();
            if guard.abort.get().is_none() && report.call::<_, ()>((thrown,)).is_err() {
                let _ = ctx.catch();
            }
        }
    }

    loop {
        // Microtasks first: they may settle the script.
        while guard.abort.get().is_none()
            && state.borrow().finished.is_none()
            && ctx.execute_pending_job()
        {}
        if let Some(abort) = guard.abort.get() {
            return Err(abort_error(abort, limits));
        }
        if let Some(done) = state.borrow_mut().finished.take() {
            return done;
        }
        let now = Instant::now();
        if guard.past_deadline(now) {
            guard.abort.set(Some(Abort::Limit(LimitKind::Deadline)));
            continue;
        }
        let (pending, timers) = {
            let st = state.borrow();
            (st.pending_calls, st.timers.len())
        };
        if pending == 0 && timers == 0 {
            return Err(JsError {
                kind: ErrorKind::Runtime,
                limit: None,
                name: "Error".into(),
                message:
                    "the script is waiting for something that can never happen: its promise never \
                          settled and no tool call or timer is pending"
                        .into(),
                stack: None,
                tool: None,
            });
        }
        // Everything pending is the host's to answer. While a call is held the deadline does
        // not run; wake now and then anyway to notice a cancellation.
        let timeout = match guard.held_since.get() {
            Some(_) => Duration::from_millis(250),
            None => guard.deadline.get().saturating_duration_since(now),
        };
        let wake = host.borrow_mut().wait(timeout);
        match wake {
            Wake::Settled { id, result, now_ms } => {
                {
                    let mut st = state.borrow_mut();
                    st.pending_calls = st.pending_calls.saturating_sub(1);
                }
                let now_ms = now_ms as f64;
                let r = match result {
                    CallResult::Ok { value } => settle.call::<_, ()>((id, true, value, now_ms)),
                    CallResult::Err {
                        kind,
                        name,
                        message,
                        tool,
                    } => settle.call::<_, ()>((
                        id,
                        false,
                        vec![name, message, tool, call_error_kind_str(kind).to_string()],
                        now_ms,
                    )),
                    CallResult::Planned { step } => {
                        settle.call::<_, ()>((id, PLANNED, step.to_string(), now_ms))
                    }
                };
                if r.is_err() {
                    let _ = ctx.catch();
                }
            }
            Wake::Fired { id, now_ms } => {
                // A timer cleared while its Fired was on the way is not run.
                if state.borrow_mut().timers.remove(&id)
                    && fire.call::<_, ()>((id, now_ms as f64)).is_err()
                {
                    let _ = ctx.catch();
                }
            }
            Wake::Hold => guard.hold(),
            Wake::Resume => guard.resume(),
            Wake::TimedOut => {
                if guard.cancel.load(Ordering::Relaxed) {
                    guard.abort.set(Some(Abort::Cancelled));
                }
            }
            Wake::Cancelled => guard.abort.set(Some(Abort::Cancelled)),
            Wake::Disconnected => guard.abort.set(Some(Abort::Disconnected)),
        }
    }
}

type Api<'js> = (Function<'js>, Function<'js>, Function<'js>, Function<'js>);

/// Evaluate the prelude with the natives and the namespaces; returns its entry points.
fn install<'js>(
    ctx: &Ctx<'js>,
    prelude: rquickjs::Persistent<Function<'static>>,
    request: &ExecRequest,
    host: &Rc<RefCell<dyn Host>>,
    state: &Rc<RefCell<State>>,
    guard: &Rc<Guard>,
) -> rquickjs::Result<Api<'js>> {
    let limits = request.limits.clone();
    let bindings: u32 = request
        .namespaces
        .iter()
        .map(|n| n.functions.len() as u32)
        .sum();
    let natives = Object::new(ctx.clone())?;

    let max_calls = limits.max_tool_calls;
    natives.set(
        "call",
        Function::new(ctx.clone(), {
            let (g, state, host) = (guard.clone(), state.clone(), host.clone());
            move |ctx: Ctx<'js>, binding: u32, args: String| -> rquickjs::Result<Value<'js>> {
                if binding >= bindings {
                    return Err(rquickjs::Exception::throw_type(&ctx, "no such binding"));
                }
                if state.borrow().settling {
                    return Err(rquickjs::Exception::throw_type(
                        &ctx,
                        "the script has already returned: a call made while its result is being \
                         converted to JSON (from a toJSON method) is not sent",
                    ));
                }
                let id = {
                    let mut st = state.borrow_mut();
                    if st.calls_made >= max_calls {
                        drop(st);
                        g.abort.set(Some(Abort::Limit(LimitKind::ToolCalls)));
                        return Err(rquickjs::Exception::throw_internal(
                            &ctx,
                            "tool call limit reached",
                        ));
                    }
                    st.calls_made += 1;
                    st.next_call += 1;
                    st.next_call
                };
                match host.borrow_mut().call(id, binding, args) {
                    None => {
                        state.borrow_mut().pending_calls += 1;
                        Ok(Value::new_int(ctx, id as i32))
                    }
                    Some(CallResult::Ok { value }) => {
                        Ok(rquickjs::String::from_str(ctx, &value)?.into_value())
                    }
                    Some(CallResult::Err {
                        kind,
                        name,
                        message,
                        tool,
                    }) => {
                        let arr = Array::new(ctx.clone())?;
                        arr.set(0, name)?;
                        arr.set(1, message)?;
                        arr.set(2, tool)?;
                        arr.set(3, call_error_kind_str(kind))?;
                        Ok(arr.into_value())
                    }
                    Some(CallResult::Planned { step }) => {
                        let planned = rquickjs::Object::new(ctx.clone())?;
                        planned.set("planned", step)?;
                        Ok(planned.into_value())
                    }
                }
            }
        })?,
    )?;

    let max_log = limits.max_log_bytes;
    natives.set(
        "log",
        Function::new(ctx.clone(), {
            let (state, host) = (state.clone(), host.clone());
            move |level: String, text: String| {
                let level = match level.as_str() {
                    "debug" => LogLevel::Debug,
                    "info" => LogLevel::Info,
                    "warn" => LogLevel::Warn,
                    "error" => LogLevel::Error,
                    _ => LogLevel::Log,
                };
                let mut st = state.borrow_mut();
                let room = max_log.saturating_sub(st.log_bytes) as usize;
                let len = text.len() as u64;
                if room == 0 {
                    st.logs_dropped += len;
                    return;
                }
                let kept = cut(&text, room);
                st.log_bytes += kept.len() as u64;
                st.logs_dropped += len - kept.len() as u64;
                let kept = if kept.len() == text.len() {
                    text
                } else {
                    kept.to_string()
                };
                drop(st);
                host.borrow_mut().log(level, kept);
            }
        })?,
    )?;

    natives.set(
        "timer",
        Function::new(ctx.clone(), {
            let (g, state, host) = (guard.clone(), state.clone(), host.clone());
            move |ctx: Ctx<'js>, id: u32, ms: f64| -> rquickjs::Result<()> {
                let ms = if ms.is_finite() {
                    ms.clamp(0.0, 1e12)
                } else {
                    0.0
                };
                {
                    let mut st = state.borrow_mut();
                    if st.timers.len() >= MAX_TIMERS as usize {
                        // A limit like the others: the execution stops and says which one
                        // (a catchable error would let a script spin on it).
                        drop(st);
                        g.abort.set(Some(Abort::Limit(LimitKind::Timers)));
                        return Err(rquickjs::Exception::throw_internal(
                            &ctx,
                            "timer limit reached",
                        ));
                    }
                    st.timers.insert(id);
                }
                host.borrow_mut().timer(id, ms);
                Ok(())
            }
        })?,
    )?;
    natives.set(
        "clearTimer",
        Function::new(ctx.clone(), {
            let (state, host) = (state.clone(), host.clone());
            move |id: u32| {
                if state.borrow_mut().timers.remove(&id) {
                    host.borrow_mut().clear_timer(id);
                }
            }
        })?,
    )?;
    natives.set(
        "settling",
        Function::new(ctx.clone(), {
            let state = state.clone();
            move || state.borrow_mut().settling = true
        })?,
    )?;

    let max_result = limits.max_result_bytes;
    natives.set(
        "finish",
        Function::new(ctx.clone(), {
            let state = state.clone();
            move |json: Option<String>| {
                let payload = json.map(|json| {
                    if json.len() as u64 <= max_result {
                        Payload {
                            json,
                            dropped_bytes: 0,
                        }
                    } else {
                        let kept = cut(&json, max_result as usize).to_string();
                        let dropped = (json.len() - kept.len()) as u64;
                        Payload {
                            json: kept,
                            dropped_bytes: dropped,
                        }
                    }
                });
                let mut st = state.borrow_mut();
                if st.finished.is_none() {
                    st.finished = Some(Ok(payload));
                }
            }
        })?,
    )?;
    natives.set(
        "fail",
        Function::new(ctx.clone(), {
            let (state, limits) = (state.clone(), limits.clone());
            move |name: String, message: String, stack: String, tool: String, kind: String| {
                let mut st = state.borrow_mut();
                if st.finished.is_none() {
                    let kind = call_error_kind(&kind);
                    st.finished = Some(Err(classify(name, message, stack, tool, kind, &limits)));
                }
            }
        })?,
    )?;

    let namespaces = Array::new(ctx.clone())?;
    for (i, ns) in request.namespaces.iter().enumerate() {
        let entry = Array::new(ctx.clone())?;
        entry.set(0, ns.name.as_str())?;
        entry.set(1, ns.functions.clone())?;
        let positional: Vec<Vec<String>> = ns
            .functions
            .iter()
            .map(|f| ns.positional.get(f).cloned().unwrap_or_default())
            .collect();
        entry.set(2, positional)?;
        namespaces.set(i, entry)?;
    }

    // The host's clock and seed (see the crate docs on determinism).
    let start = Object::new(ctx.clone())?;
    start.set("clock", request.clock_ms as f64)?;
    start.set("seed", seed_words(request.seed).to_vec())?;

    let prelude: Function = prelude.restore(ctx)?;
    let api: Object = prelude.call((natives, namespaces, start))?;
    Ok((
        api.get("start")?,
        api.get("settle")?,
        api.get("fire")?,
        api.get("report")?,
    ))
}

/// Four nonzero 32-bit words for the prelude's xoshiro128** generator, from `seed` by
/// splitmix64 (the seeding its authors recommend).
fn seed_words(seed: u64) -> [u32; 4] {
    let mut x = seed;
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (a, b) = (next(), next());
    let words = [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32];
    if words == [0; 4] { [1, 0, 0, 0] } else { words }
}
