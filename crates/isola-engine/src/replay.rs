//! Recording an execution and replaying it.
//!
//! A sandbox run is a function of its request (code, API, limits, clock and seed) and of the
//! sequence of its inputs (see `isola_protocol`). A [`Recording`] holds the clock, the seed, the
//! calls the script made and the inputs it took; [`Recorder`] makes one from an execution's
//! events. Executing the same code with [`crate::ExecOptions::replay`] set feeds the recorded
//! answers back, in the recorded order, and calls no tool for them: [`ReplayGate`] (the first
//! gate) answers each recorded call, and stops the execution with a *divergence* when the script
//! makes a different call than the recording has.

use std::sync::{Arc, Mutex};

use isola_protocol::{CallResult, ErrorKind, ExecError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::gate::{CallGate, CallIntent, Verdict};
use crate::observer::{Event, Flow, Input, Observer};

/// What a replay needs of an execution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    /// `Date.now()` at the start.
    pub clock_ms: u64,
    pub seed: u64,
    /// Every call the script made, in order.
    pub calls: Vec<RecordedCall>,
    /// Every input the sandbox took, in order.
    pub inputs: Vec<Input>,
}

/// One call of a recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedCall {
    /// Its place among the execution's calls (a call refused before the gates, for bad
    /// arguments, has one too but is not recorded: the places can skip).
    pub seq: u32,
    /// The sandbox's id of the call (the same in a replay).
    pub id: u32,
    pub function: String,
    pub arguments: Value,
}

impl Recording {
    /// The recorded call made `seq`th.
    pub fn call(&self, seq: u32) -> Option<&RecordedCall> {
        self.calls
            .binary_search_by_key(&seq, |c| c.seq)
            .ok()
            .map(|i| &self.calls[i])
    }

    /// The answer the call `id` got, if it got one.
    pub fn answer(&self, id: u32) -> Option<&CallResult> {
        self.inputs.iter().find_map(|input| match input {
            Input::CallDone { id: i, result, .. } if *i == id => Some(result),
            _ => None,
        })
    }
}

/// An observer that records an execution; [`Recorder::recording`] has it at any time.
#[derive(Clone, Default)]
pub struct Recorder {
    recording: Arc<Mutex<Recording>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// What was recorded so far.
    pub fn recording(&self) -> Recording {
        match self.recording.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl Observer for Recorder {
    fn event(&mut self, event: &Event<'_>) -> Flow {
        let mut r = match self.recording.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        match event {
            Event::Started { request } => {
                r.clock_ms = request.clock_ms;
                r.seed = request.seed;
            }
            Event::Call { id, call } => r.calls.push(RecordedCall {
                seq: call.seq,
                id: *id,
                function: call.function.clone(),
                arguments: call.arguments.clone(),
            }),
            Event::Input { input } => r.inputs.push((*input).clone()),
            _ => {}
        }
        Flow::Continue
    }
}

/// Answers the calls of a recording and stops a replay that diverges from it.
pub struct ReplayGate {
    recording: Recording,
    /// Past the end of the recording: go on live (resuming a suspended execution), or stop
    /// (`isola replay`, which must call nothing).
    live_after: bool,
}

impl ReplayGate {
    /// A gate that stops the execution at any call the recording does not answer.
    pub fn strict(recording: Recording) -> Self {
        Self {
            recording,
            live_after: false,
        }
    }

    /// A gate that answers the recorded calls and lets every later one through.
    pub fn resuming(recording: Recording) -> Self {
        Self {
            recording,
            live_after: true,
        }
    }
}

impl CallGate for ReplayGate {
    fn check(&self, call: &CallIntent) -> Verdict {
        let Some(recorded) = self.recording.call(call.seq) else {
            let past_end = self.recording.calls.last().is_none_or(|c| call.seq > c.seq);
            return if self.live_after && past_end {
                Verdict::Allow
            } else if !past_end {
                Verdict::Abort(divergence(
                    call,
                    "the recording refused the call made here (its arguments were invalid)".into(),
                ))
            } else {
                Verdict::Abort(divergence(
                    call,
                    format!(
                        "the recording has {} calls; this one is new",
                        self.recording.calls.len()
                    ),
                ))
            };
        };
        if recorded.function != call.function {
            return Verdict::Abort(divergence(
                call,
                format!("the recording has {} here", recorded.function),
            ));
        }
        if let Some(path) = first_difference(&recorded.arguments, &call.arguments, "$") {
            return Verdict::Abort(divergence(
                call,
                format!("its arguments differ from the recording at {path}"),
            ));
        }
        match self.recording.answer(recorded.id) {
            Some(result) => Verdict::Simulate(result.clone()),
            // Recorded but never answered (the execution stopped while it was out): its
            // answer is the live one, if the replay may go on live.
            None if self.live_after => Verdict::Allow,
            None => Verdict::Abort(divergence(
                call,
                "the recording has no answer for it (the execution was interrupted there)".into(),
            )),
        }
    }
}

fn divergence(call: &CallIntent, what: String) -> ExecError {
    ExecError {
        kind: ErrorKind::Divergence,
        limit: None,
        name: "DivergenceError".into(),
        message: format!(
            "the replay diverged at call #{} ({}): {what}; it was not sent",
            call.seq + 1,
            call.function
        ),
        position: None,
        code_frame: None,
        stack: None,
        tool: Some(call.function.clone()),
        hint: None,
    }
}

/// The JSON path of the first place where `a` (recorded) and `b` differ, with both values there.
pub fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    difference(a, b, path, "recorded")
}

/// [`first_difference`] where `a` is called `was` (`recorded`, `planned`).
pub fn difference(a: &Value, b: &Value, path: &str, was: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let here = format!("{path}.{k}");
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = difference(v, w, &here, was) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{here} ({was} {v}, now missing)")),
                }
            }
            y.iter()
                .find(|(k, _)| !x.contains_key(*k))
                .map(|(k, w)| format!("{path}.{k} (not {was}, now {w})"))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if let Some(d) = difference(v, w, &format!("{path}[{i}]"), was) {
                    return Some(d);
                }
            }
            (x.len() != y.len())
                .then(|| format!("{path} ({was} {} items, now {})", x.len(), y.len()))
        }
        _ if a == b => None,
        _ => Some(format!("{path} ({was} {a}, now {b})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_are_located() {
        let a = json!({"path": "/a", "opts": {"n": [1, 2]}});
        assert_eq!(first_difference(&a, &a.clone(), "$"), None);
        let b = json!({"path": "/a", "opts": {"n": [1, 3]}});
        assert_eq!(
            first_difference(&a, &b, "$").unwrap(),
            "$.opts.n[1] (recorded 2, now 3)"
        );
        let c = json!({"path": "/a", "opts": {"n": [1, 2]}, "x": true});
        assert_eq!(
            first_difference(&a, &c, "$").unwrap(),
            "$.x (not recorded, now true)"
        );
    }
}
