//! Wire types that cross Isola's boundaries, and nothing else.
//!
//! Two boundaries live here:
//!
//! * **host ↔ sandbox** (protocol version [`PROTOCOL_VERSION`]): [`HostMsg`] goes into a sandbox
//!   (in a worker process or an in-process thread), [`SandboxMsg`] comes out. A worker starts
//!   with [`SandboxMsg::Ready`] (its protocol version and which hardening layers are active).
//!   A run is: one [`HostMsg::Exec`]; then, from the sandbox, [`SandboxMsg::Call`]s,
//!   [`SandboxMsg::Timer`]s and [`SandboxMsg::Log`]s; from the host, the *inputs* of the run
//!   ([`HostMsg::CallDone`] answering a call, [`HostMsg::Fire`] for a due timer) and the
//!   deadline clock's [`HostMsg::Hold`] / [`HostMsg::Resume`]; then exactly one
//!   [`SandboxMsg::Done`].
//! * **host → user**: the [`ExecRecord`] every execution yields (printed by `isola exec --json`,
//!   returned to MCP hosts and agents).
//!
//! **Determinism comes from the host.** A sandbox never reads the machine's clock or entropy
//! for the script: `Date.now()` is [`ExecRequest::clock_ms`] until the first input, then the
//! `now_ms` of the last input taken (time advances only at I/O); `Math.random` is seeded with
//! [`ExecRequest::seed`]; timers fire when the host says. The sandbox takes one input at a time,
//! when the script has nothing left to run. So a run is a function of its request and the
//! sequence of inputs, which is what a replay feeds back.
//!
//! Values produced by a guest script are untrusted: they arrive as JSON *text* and the host parses
//! them with its own limits. Frames are decoded by one [`FrameDecoder`] on both ends.
//!
//! ```
//! use isola_protocol::{HostMsg, ExecRequest, Limits};
//! let msg = HostMsg::Exec(ExecRequest::new("1 + 1".into(), vec![], Limits::default()));
//! let text = serde_json::to_string(&msg).unwrap();
//! assert!(text.contains("\"exec\""));
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version of the host ↔ sandbox protocol. A worker that reports another one in
/// [`Ready::protocol`] is refused (the standalone worker binary can be out of step with the
/// host).
pub const PROTOCOL_VERSION: u32 = 3;

/// Resource limits of one execution. Every one is enforced; see `ARCHITECTURE.md`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Wall-clock deadline for the whole run, in milliseconds.
    pub deadline_ms: u64,
    /// JS heap limit in bytes.
    pub memory_bytes: u64,
    /// JS stack limit in bytes.
    pub stack_bytes: u64,
    /// Tool calls one execution may make.
    pub max_tool_calls: u32,
    /// Tool calls in flight at once.
    pub max_concurrency: u32,
    /// Console output kept, in bytes; the rest is dropped and counted.
    pub max_log_bytes: u64,
    /// Size of the result (as JSON) kept, in bytes; the rest is dropped and counted.
    pub max_result_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline_ms: 30_000,
            memory_bytes: 128 * 1024 * 1024,
            stack_bytes: 1024 * 1024,
            max_tool_calls: 1_000,
            max_concurrency: 16,
            max_log_bytes: 64 * 1024,
            max_result_bytes: 256 * 1024,
        }
    }
}

/// A set of functions installed as one global object (`github.createIssue`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// Global identifier, already valid JS.
    pub name: String,
    /// Function identifiers, already valid JS.
    pub functions: Vec<String>,
    /// For the functions that also take arguments in order, the property each argument
    /// fills, by function identifier (see `isola_typegen::POSITIONAL_KEY`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub positional: BTreeMap<String, Vec<String>>,
}

impl Namespace {
    /// Functions that each take one object.
    pub fn new(name: &str, functions: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            functions: functions.iter().map(|f| (*f).to_owned()).collect(),
            positional: BTreeMap::new(),
        }
    }
}

/// Start one execution.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExecRequest {
    /// JavaScript (already transpiled) whose completion value is the result or a promise of it.
    pub code: String,
    /// Bindings to install. A call names its binding by its index in the flattened list
    /// (namespace 0's functions first, in order, then namespace 1's, ...).
    pub namespaces: Vec<Namespace>,
    pub limits: Limits,
    /// `Date.now()` until the first input arrives, in milliseconds since the Unix epoch.
    pub clock_ms: u64,
    /// The seed of `Math.random`.
    pub seed: u64,
}

impl ExecRequest {
    /// A request with the clock at the epoch and seed 0 (the host normally sets both).
    pub fn new(code: String, namespaces: Vec<Namespace>, limits: Limits) -> Self {
        Self {
            code,
            namespaces,
            limits,
            clock_ms: 0,
            seed: 0,
        }
    }
}

/// Host → sandbox.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum HostMsg {
    Exec(ExecRequest),
    /// Input: the answer to call `id`. `Date.now()` is `now_ms` from when the sandbox takes it.
    CallDone {
        id: u32,
        result: CallResult,
        now_ms: u64,
    },
    /// Input: the script's timer `id` is due.
    Fire {
        id: u32,
        now_ms: u64,
    },
    /// A call is held for a decision: the deadline clock stops while the sandbox waits.
    Hold,
    /// The decision came: the deadline clock runs again.
    Resume,
}

/// The outcome of one binding call, as the sandbox sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum CallResult {
    /// The unwrapped value, as JSON text.
    Ok { value: String },
    /// Rejects the call's promise with an `Error` named `name` carrying `message` and `tool`
    /// (the function, `github.createIssue`). `kind` is the host's: an uncaught error of this call
    /// ends the run with it, whatever the script did to the error's name or message.
    Err {
        kind: CallErrorKind,
        name: String,
        message: String,
        tool: String,
    },
    /// Plan mode: the call was not sent but planned as step `step` (from 1); its promise
    /// resolves to a placeholder for the result, known after apply.
    Planned { step: u32 },
}

/// Why a call failed, as the host decided.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum CallErrorKind {
    /// The tool failed (an `isError` result, a transport failure, a timeout).
    Tool,
    /// The arguments do not match the tool's schema, or are not one object.
    Validation,
    /// The call was not allowed (a policy, a person, a plan): it was never sent.
    Denied,
    /// Isola itself failed while carrying it out.
    Internal,
}

impl CallErrorKind {
    /// The [`ErrorKind`] of an execution that ends with this error uncaught.
    pub fn exec_kind(self) -> ErrorKind {
        match self {
            CallErrorKind::Tool | CallErrorKind::Validation => ErrorKind::Tool,
            CallErrorKind::Denied => ErrorKind::Denied,
            CallErrorKind::Internal => ErrorKind::Internal,
        }
    }
}

/// Sandbox → host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum SandboxMsg {
    /// A worker process is up and waiting for [`HostMsg::Exec`].
    Ready(Ready),
    /// The script called binding `binding` with these arguments (JSON text).
    Call { id: u32, binding: u32, args: String },
    /// The script set timer `id` to fire in `ms` milliseconds; the host answers with
    /// [`HostMsg::Fire`].
    Timer { id: u32, ms: f64 },
    /// The script cleared timer `id`.
    ClearTimer { id: u32 },
    /// One console line, already rendered.
    Log { level: LogLevel, text: String },
    /// The run ended. Nothing follows.
    Done(RunOutcome),
}

/// What a worker says when it is up: which protocol it speaks and how it is hardened.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    pub protocol: u32,
    /// Every hardening layer the worker tried, active or not.
    pub hardening: Vec<Layer>,
}

impl Ready {
    /// The layer called `name`, if the worker reported it.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.hardening.iter().find(|l| l.name == name)
    }
}

/// One hardening layer of a worker process.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// `no_new_privs`, `rlimits`, `seccomp`, ...
    pub name: String,
    pub active: bool,
    /// Why it is not active (or what it covers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Log,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Log => "log",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// How a run inside the sandbox ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    /// `Ok(None)` when the script returned `undefined`.
    pub result: Result<Option<Payload>, JsError>,
    /// Console bytes the sandbox dropped after `max_log_bytes`.
    pub logs_dropped_bytes: u64,
    /// JS heap in use at the end, in bytes.
    pub memory_used_bytes: u64,
}

/// A JSON value as text, possibly cut at the byte limit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// JSON text; when `dropped_bytes > 0`, only its first `max_result_bytes` (not valid JSON).
    pub json: String,
    pub dropped_bytes: u64,
}

/// An error thrown out of the script, in JS terms (positions in the generated JS).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JsError {
    pub kind: ErrorKind,
    /// Which limit, when `kind` is `Limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitKind>,
    /// `TypeError`, `ToolError`, ...
    pub name: String,
    pub message: String,
    /// JS stack, positions in the generated JS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The tool whose error this is, for `kind: tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// What kind of failure ended an execution.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// The script does not parse.
    Syntax,
    /// The script does not type-check against the API (the TypeScript compiler's errors,
    /// before it ran: nothing was called).
    Type,
    /// The script threw.
    Runtime,
    /// A tool call failed and the script did not catch it.
    Tool,
    /// A resource limit was hit.
    Limit,
    /// The caller cancelled the execution.
    Cancelled,
    /// A call was not allowed (policy, approval, plan) and the script did not catch it.
    Denied,
    /// A replay would have made a different call than the recording: it was stopped before it.
    Divergence,
    /// A held call waits for a decision longer than the execution may keep its worker: the
    /// execution stopped with nothing lost, and `isola resume` continues it once decided.
    Suspended,
    /// Isola itself failed (a worker died unexpectedly, ...). Never the script's fault.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::Type => "type",
            ErrorKind::Runtime => "runtime",
            ErrorKind::Tool => "tool",
            ErrorKind::Limit => "limit",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Denied => "denied",
            ErrorKind::Divergence => "divergence",
            ErrorKind::Suspended => "suspended",
            ErrorKind::Internal => "internal",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum LimitKind {
    Deadline,
    Memory,
    Stack,
    ToolCalls,
    /// Timers armed at once ([`MAX_TIMERS`]).
    Timers,
    /// Console output or result bytes past what even the host will buffer.
    Output,
}

/// Timers one execution may have armed at once.
pub const MAX_TIMERS: u32 = 10_000;

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Deadline => "deadline",
            LimitKind::Memory => "memory",
            LimitKind::Stack => "stack",
            LimitKind::ToolCalls => "toolCalls",
            LimitKind::Timers => "timers",
            LimitKind::Output => "output",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The execution record.

/// Everything one execution produced. Serialised as the `--json` output of `isola exec`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecRecord {
    pub ok: bool,
    /// The script's return value (`null` for `undefined`). A cut result is a string ending in
    /// [`truncation_marker`].
    pub result: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_truncated: Option<Truncation>,
    pub logs: Vec<LogEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_truncated: Option<Truncation>,
    pub calls: Vec<CallTrace>,
    pub timings: Timings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecError>,
    /// Where the script ran: the backend and, in a worker, which hardening layers were active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxInfo>,
    /// What the type check found, when it ran and the script ran anyway (`warn`), or refused
    /// it (then [`ErrorKind::Type`] names the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

/// Whether a script is type-checked against the API before it runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckMode {
    /// Not checked.
    #[default]
    Off,
    /// Checked; it runs whatever the compiler says, its diagnostics in the record.
    Warn,
    /// Checked; a script with errors does not run (the record's error is of kind `type`).
    Error,
}

impl CheckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckMode::Off => "off",
            CheckMode::Warn => "warn",
            CheckMode::Error => "error",
        }
    }

    /// `off`, `warn` or `error`.
    pub fn parse(text: &str) -> Option<CheckMode> {
        match text {
            "off" => Some(CheckMode::Off),
            "warn" => Some(CheckMode::Warn),
            "error" => Some(CheckMode::Error),
            _ => None,
        }
    }
}

/// A problem the TypeScript compiler found in the script.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    pub position: Position,
    /// The compiler's code, e.g. `TS2322`.
    pub code: String,
    pub message: String,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Where an execution ran.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxInfo {
    /// `worker` or `in-process`.
    pub backend: String,
    /// The worker's hardening layers (none in-process).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hardening: Vec<Layer>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Truncation {
    pub limit_bytes: u64,
    pub dropped_bytes: u64,
}

/// The marker appended where output was cut.
pub fn truncation_marker(dropped_bytes: u64) -> String {
    format!("…[isola: truncated, {dropped_bytes} more bytes dropped]")
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub level: LogLevel,
    pub text: String,
    /// Milliseconds since the run started.
    pub at_ms: f64,
}

/// One tool call the script made.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CallTrace {
    /// The TS name the script used: `github.createIssue`.
    pub function: String,
    pub server: String,
    /// The MCP tool name: `create_issue`.
    pub tool: String,
    pub arguments: serde_json::Value,
    /// Milliseconds since the run started.
    pub started_ms: f64,
    pub duration_ms: f64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// The call went to its tool. `false`: it was answered without being sent (refused by a
    /// check or a gate, or answered from the journal when an execution is resumed).
    #[serde(default)]
    pub sent: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    /// TypeScript → JavaScript.
    pub transpile_ms: f64,
    /// The type check (0 when there was none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub check_ms: f64,
    /// Waiting for a sandbox (worker) to be free.
    pub queue_ms: f64,
    /// The script running, tool calls included.
    pub run_ms: f64,
    pub total_ms: f64,
}

/// A failed execution, in the user's terms (positions in their TypeScript).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExecError {
    pub kind: ErrorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitKind>,
    pub name: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// Source lines around `position` with a caret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_frame: Option<String>,
    /// Stack with positions mapped back to the user's TypeScript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// What to do about it, where Isola can tell (`did you mean fs.readTextFile?`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A position in the user's source: 1-based line and column.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

// ---------------------------------------------------------------------------------------------
// Framing for the worker pipe: a little-endian u32 length, then that many bytes of JSON.

mod frame;
pub use frame::{FrameDecoder, FrameError, MAX_FRAME_BYTES, encode_frame};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msgs = vec![
            SandboxMsg::Ready(Ready {
                protocol: PROTOCOL_VERSION,
                hardening: vec![Layer {
                    name: "seccomp".into(),
                    active: false,
                    detail: Some("not on this kernel".into()),
                }],
            }),
            SandboxMsg::Timer { id: 1, ms: 2.5 },
            SandboxMsg::Call {
                id: 3,
                binding: 1,
                args: "{\"a\":1}".into(),
            },
            SandboxMsg::Log {
                level: LogLevel::Warn,
                text: "x".into(),
            },
            SandboxMsg::Done(RunOutcome {
                result: Err(JsError {
                    kind: ErrorKind::Limit,
                    limit: Some(LimitKind::Deadline),
                    name: "LimitError".into(),
                    message: "deadline".into(),
                    stack: None,
                    tool: None,
                }),
                logs_dropped_bytes: 0,
                memory_used_bytes: 10,
            }),
        ];
        let mut decoder = FrameDecoder::new();
        for m in &msgs {
            let frame = encode_frame(m).unwrap();
            let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
            assert_eq!(len, frame.len() - 4);
            decoder.feed(&frame);
        }
        for m in msgs {
            let back: SandboxMsg = decoder.decode().unwrap().unwrap();
            assert_eq!(back, m);
        }
        assert_eq!(decoder.decode::<SandboxMsg>().unwrap(), None);
    }

    #[test]
    fn limits_reject_unknown_keys() {
        let err =
            serde_json::from_str::<Limits>(r#"{"deadlineMs": 5, "memoryMB": 3}"#).unwrap_err();
        assert!(err.to_string().contains("memoryMB"), "{err}");
        let ok: Limits = serde_json::from_str(r#"{"deadlineMs": 5}"#).unwrap();
        assert_eq!(ok.deadline_ms, 5);
        assert_eq!(ok.memory_bytes, Limits::default().memory_bytes);
    }
}
