//! Wire types that cross Isola's boundaries, and nothing else.
//!
//! Two boundaries live here:
//!
//! * **host ↔ sandbox**: [`HostMsg`] goes into a sandbox (in a worker process or an in-process
//!   thread), [`SandboxMsg`] comes out. A run is: one [`HostMsg::Exec`], then any number of
//!   [`SandboxMsg::Call`] / [`HostMsg::CallDone`] pairs and [`SandboxMsg::Log`] events, then
//!   exactly one [`SandboxMsg::Done`].
//! * **host → user**: the [`ExecRecord`] every execution yields (printed by `isola exec --json`,
//!   returned to MCP hosts and agents).
//!
//! Values produced by a guest script are untrusted: they arrive as JSON *text* and the host parses
//! them with its own limits.
//!
//! ```
//! use isola_protocol::{HostMsg, ExecRequest, Limits};
//! let msg = HostMsg::Exec(ExecRequest { code: "1 + 1".into(), namespaces: vec![], limits: Limits::default() });
//! let text = serde_json::to_string(&msg).unwrap();
//! assert!(text.contains("\"exec\""));
//! ```

use serde::{Deserialize, Serialize};

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
}

/// Start one execution.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// JavaScript (already transpiled) whose completion value is the result or a promise of it.
    pub code: String,
    /// Bindings to install. A call names its binding by its index in the flattened list
    /// (namespace 0's functions first, in order, then namespace 1's, ...).
    pub namespaces: Vec<Namespace>,
    pub limits: Limits,
}

/// Host → sandbox.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum HostMsg {
    Exec(ExecRequest),
    CallDone { id: u32, result: CallResult },
}

/// The outcome of one binding call, as the sandbox sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum CallResult {
    /// The unwrapped value, as JSON text.
    Ok { value: String },
    /// Rejects the call's promise with an `Error` named `name` carrying `message` and `tool`.
    Err {
        name: String,
        message: String,
        tool: String,
    },
}

/// Sandbox → host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum SandboxMsg {
    /// A worker process is up and waiting for [`HostMsg::Exec`].
    Ready,
    /// The script called binding `binding` with these arguments (JSON text).
    Call { id: u32, binding: u32, args: String },
    /// One console line, already rendered.
    Log { level: LogLevel, text: String },
    /// The run ended. Nothing follows.
    Done(RunOutcome),
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
    /// The script threw.
    Runtime,
    /// A tool call failed and the script did not catch it.
    Tool,
    /// A resource limit was hit.
    Limit,
    /// The caller cancelled the execution.
    Cancelled,
    /// Isola itself failed (a worker died unexpectedly, ...). Never the script's fault.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::Runtime => "runtime",
            ErrorKind::Tool => "tool",
            ErrorKind::Limit => "limit",
            ErrorKind::Cancelled => "cancelled",
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
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Deadline => "deadline",
            LimitKind::Memory => "memory",
            LimitKind::Stack => "stack",
            LimitKind::ToolCalls => "toolCalls",
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
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    /// TypeScript → JavaScript.
    pub transpile_ms: f64,
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

/// Largest frame either side accepts (64 MiB): a bound on what a hostile worker can make the
/// host buffer.
pub const MAX_FRAME_BYTES: u32 = 64 * 1024 * 1024;

/// Encode one message as a frame.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut buf = vec![0u8; 4];
    serde_json::to_writer(&mut buf, msg)?;
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msgs = vec![
            SandboxMsg::Ready,
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
        for m in msgs {
            let frame = encode_frame(&m).unwrap();
            let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
            assert_eq!(len, frame.len() - 4);
            let back: SandboxMsg = serde_json::from_slice(&frame[4..]).unwrap();
            assert_eq!(back, m);
        }
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
