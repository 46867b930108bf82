//! Observers: whoever needs to see an execution as it happens (the journal, progress
//! notifications, an HTTP event stream, tracing) gets every [`Event`] of it, in order.
//!
//! An observer is called on the engine's task, with the event borrowed: it takes what it needs
//! and returns at once (hand slow work to a task of its own through a bounded queue). It can ask
//! the execution to stop ([`Flow::Stop`]): a journal that cannot record stops the execution
//! rather than let calls go unrecorded.

use isola_protocol::{CallResult, CallTrace, ExecRecord, ExecRequest, LogEntry};

use crate::gate::{CallIntent, Decision, Denial};

/// Something that happened in an execution.
#[derive(Debug)]
pub enum Event<'a> {
    /// The sandbox got the script: `request` holds the code as run, the limits, and the clock
    /// and seed the run starts from.
    Started { request: &'a ExecRequest },
    /// The script made a call (`id` is the sandbox's, `call.seq` its order).
    Call { id: u32, call: &'a CallIntent },
    /// A gate denied the call: it is not sent.
    Denied { id: u32, denial: &'a Denial },
    /// A gate holds the call for a decision; the deadline clock stops.
    Held { id: u32, reason: &'a str },
    /// A held call was decided.
    Decided { id: u32, decision: &'a Decision },
    /// A call ended (sent and answered, or refused): its trace as the record will have it.
    CallEnded { id: u32, trace: &'a CallTrace },
    /// An input went to the sandbox, in the order it takes them: what a replay feeds back.
    Input { input: &'a Input },
    /// A console line (already cut to the log limit).
    Log(&'a LogEntry),
    /// The execution ended with this record.
    Finished(&'a ExecRecord),
}

/// An input of a run: what the sandbox cannot know by itself.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum Input {
    /// Call `id` answered with `result` at `now_ms`.
    CallDone {
        id: u32,
        result: CallResult,
        now_ms: u64,
    },
    /// Timer `id` fired at `now_ms`.
    Fire { id: u32, now_ms: u64 },
}

/// Whether the execution may go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop the execution (it ends as an internal error with this reason).
    Stop(String),
}

/// Receives an execution's events.
pub trait Observer: Send {
    fn event(&mut self, event: &Event<'_>) -> Flow;
}

impl<F> Observer for F
where
    F: FnMut(&Event<'_>) -> Flow + Send,
{
    fn event(&mut self, event: &Event<'_>) -> Flow {
        self(event)
    }
}
