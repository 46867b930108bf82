//! The entry format: stable and documented (`docs/journal.md`). Each entry is one JSON object
//! with a `kind`; new fields may be added, none is removed or changes meaning (readers ignore
//! what they do not know).

use isola_protocol::{CallResult, ExecRecord, Limits, LogLevel};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The version of the entry format a `started` entry declares.
pub const FORMAT: u32 = 1;

/// One entry of an execution's journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Entry {
    /// The execution began.
    #[serde(rename_all = "camelCase")]
    Started {
        format: u32,
        execution: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// Who started it: `cli`, `mcp:<client>`, `agent`, `http`, `replay`.
        origin: String,
        /// The file name errors use.
        file: String,
        /// The TypeScript as given.
        code: String,
        /// `sha256:<hex>` of `code`.
        code_hash: String,
        /// The fingerprint of the API (tool lists) it ran against; the store keeps the API.
        api: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limits: Option<Limits>,
        /// `Date.now()` at the start and `Math.random`'s seed (absent when the script never
        /// ran: a syntax error).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clock_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
        /// The execution this one replays.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replay_of: Option<String>,
    },
    /// The script made a call (the intent: written before the call is sent when it is not
    /// read-only).
    #[serde(rename_all = "camelCase")]
    Call {
        seq: u32,
        /// The sandbox's id of the call.
        id: u32,
        function: String,
        server: String,
        tool: String,
        /// Canonical arguments (after schema checks), redacted.
        arguments: Value,
        /// The tool says `readOnlyHint: true`: not written ahead.
        read_only: bool,
        /// What the upstream gets as `_meta["io.isola/idempotency-key"]`.
        idempotency_key: String,
    },
    /// A gate's decision other than "allow": `denied`, `held`, `decided`.
    #[serde(rename_all = "camelCase")]
    Gate {
        id: u32,
        decision: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A call ended: sent and answered, or refused.
    #[serde(rename_all = "camelCase")]
    Outcome {
        seq: u32,
        id: u32,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        duration_ms: f64,
        request_bytes: u64,
        response_bytes: u64,
        /// The call went to the tool (`false`: refused, simulated, or stopped before it was
        /// sent). Entries from before this field read as sent: the safe side.
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        sent: bool,
    },
    /// An input the sandbox took, in order: a call's answer or a timer firing, with the host's
    /// clock. What a replay feeds back.
    #[serde(rename_all = "camelCase")]
    Input {
        /// `callDone` or `fire`.
        t: String,
        id: u32,
        now_ms: u64,
        /// The answer (of `callDone`), unless it was larger than the journal keeps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<CallResult>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        omitted: Option<Omitted>,
        /// Keys were redacted from the answer.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        redacted: bool,
    },
    /// A console line.
    #[serde(rename_all = "camelCase")]
    Log {
        level: LogLevel,
        text: String,
        at_ms: f64,
    },
    /// The execution ended: its record (without logs and calls, which are entries of their
    /// own), and `ok`/`failed`.
    #[serde(rename_all = "camelCase")]
    Finished {
        status: String,
        record: Box<ExecRecord>,
    },
    /// The execution was taken up again after it was suspended (or its process died while a
    /// call was held): the entries before it were replayed, not repeated, and what follows is
    /// new. `replayed` calls were answered from the journal; `waiting` (their seqs) go through
    /// the gates again.
    #[serde(rename_all = "camelCase")]
    Resumed {
        origin: String,
        replayed: u32,
        waiting: Vec<u32>,
    },
    /// Written by recovery: the process running it died. The calls whose intent has no
    /// outcome may or may not have happened.
    #[serde(rename_all = "camelCase")]
    Interrupted {
        reason: String,
        unknown: Vec<UnknownCall>,
    },
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A result the journal did not keep whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Omitted {
    /// `sha256:<hex>` of the value's JSON.
    pub sha256: String,
    pub bytes: u64,
}

/// A call an interrupted execution sent (or may have sent) without a recorded outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnknownCall {
    pub seq: u32,
    pub function: String,
    pub idempotency_key: String,
}

impl Entry {
    /// The `kind` as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Started { .. } => "started",
            Entry::Call { .. } => "call",
            Entry::Gate { .. } => "gate",
            Entry::Outcome { .. } => "outcome",
            Entry::Input { .. } => "input",
            Entry::Log { .. } => "log",
            Entry::Finished { .. } => "finished",
            Entry::Interrupted { .. } => "interrupted",
            Entry::Resumed { .. } => "resumed",
        }
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in digest.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The hash of entry `seq` of `execution`: over the previous hash, the place and the body, so
/// an edited, deleted, reordered or moved entry breaks the chain.
pub fn chain_hash(prev: &str, execution: &str, seq: i64, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(execution.as_bytes());
    h.update(b"\n");
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    let digest = h.finalize();
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
