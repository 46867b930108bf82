//! Continuing a suspended execution: its calls so far answered from the journal (no call
//! re-sent), then on live from the call that waited.
//!
//! An execution is *suspended* when a held call waited longer than it could keep its worker
//! ([`isola_engine::Decision::Suspend`]), or when its process died while a call was held
//! ([`crate::recover`] tells these from other deaths). [`resumable`] reads its journal and says
//! whether it can go on: every call it made is either answered in the journal or known not to
//! have been sent. A call that may have reached its server without its answer being recorded
//! makes it not resumable: it is never re-sent silently.
//!
//! [`crate::Journal::resume`] takes the execution over (atomically: of two resumers one wins)
//! and journals the continuation in the same chain, after a `resumed` entry, without repeating
//! what the replay goes through again.

use std::collections::{BTreeMap, HashMap};

use isola_engine::Recording;
use isola_protocol::Limits;
use isola_store::Store;

use crate::entry::UnknownCall;
use crate::{Entry, JournalError, parse_entries, recording};

/// Where one call of a journal stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallState {
    /// Intended; not known to have been answered, refused or held.
    Intended,
    /// Held for a decision and not let through (never sent).
    Held,
    /// Ended; `sent` says whether it went to the tool.
    Ended { sent: bool },
    /// Its answer went to the script (recorded as an input).
    Answered,
}

/// One call of a journal.
#[derive(Clone, Debug)]
pub(crate) struct CallOf {
    pub seq: u32,
    pub function: String,
    pub idempotency_key: String,
    pub state: CallState,
}

impl CallOf {
    /// Sent (or maybe sent) with no answer recorded: what happened is unknown.
    pub fn unknown(&self) -> bool {
        matches!(
            self.state,
            CallState::Intended | CallState::Ended { sent: true }
        )
    }

    /// Not answered and never sent: a resume sends it through the gates again.
    pub fn waiting(&self) -> bool {
        matches!(
            self.state,
            CallState::Held | CallState::Ended { sent: false }
        )
    }
}

/// Every call of these entries, by seq, with where it stands.
pub(crate) fn calls_of(entries: &[Entry]) -> Vec<CallOf> {
    let mut calls: BTreeMap<u32, CallOf> = BTreeMap::new();
    // The call each sandbox id was last given to.
    let mut by_id: HashMap<u32, u32> = HashMap::new();
    let set = |calls: &mut BTreeMap<u32, CallOf>, seq: Option<&u32>, state: CallState| {
        if let Some(c) = seq.and_then(|s| calls.get_mut(s))
            && c.state != CallState::Answered
        {
            c.state = state;
        }
    };
    for e in entries {
        match e {
            Entry::Call {
                seq,
                id,
                function,
                idempotency_key,
                ..
            } => {
                by_id.insert(*id, *seq);
                calls.insert(
                    *seq,
                    CallOf {
                        seq: *seq,
                        function: function.clone(),
                        idempotency_key: idempotency_key.clone(),
                        state: CallState::Intended,
                    },
                );
            }
            Entry::Gate { id, decision, .. } => match decision.as_str() {
                "held" | "suspended" => set(&mut calls, by_id.get(id), CallState::Held),
                "allowed" => set(&mut calls, by_id.get(id), CallState::Intended),
                _ => {}
            },
            Entry::Outcome { seq, sent, .. } => {
                set(&mut calls, Some(seq), CallState::Ended { sent: *sent })
            }
            Entry::Input { t, id, .. } if t == "callDone" => {
                set(&mut calls, by_id.get(id), CallState::Answered)
            }
            _ => {}
        }
    }
    calls.into_values().collect()
}

/// The calls of these entries that were (or may have been) sent without a recorded answer.
pub fn unknown_calls(entries: &[Entry]) -> Vec<UnknownCall> {
    calls_of(entries)
        .into_iter()
        .filter(CallOf::unknown)
        .map(|c| UnknownCall {
            seq: c.seq,
            function: c.function,
            idempotency_key: c.idempotency_key,
        })
        .collect()
}

/// What the journal replays without repeating it, when an execution is resumed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Replayed {
    /// Calls recorded already (by seq): their `call` entries are not written again.
    pub calls: u32,
    /// Sandbox ids of the calls answered in the journal: their outcomes are not written again.
    pub answered: Vec<u32>,
    /// Inputs and console lines recorded already: the first this many are not written again.
    pub inputs: usize,
    pub logs: usize,
    /// The seqs of the calls that go through the gates again.
    pub waiting: Vec<u32>,
}

impl Replayed {
    /// Whether `event` is one the journal has already: the replay going through it again.
    /// Counts it off.
    pub fn repeats(&mut self, event: &isola_engine::Event<'_>) -> bool {
        use isola_engine::Event;
        match event {
            Event::Call { call, .. } => call.seq < self.calls,
            Event::CallEnded { id, .. } => match self.answered.iter().position(|a| a == id) {
                Some(i) => {
                    self.answered.swap_remove(i);
                    true
                }
                None => false,
            },
            Event::Input { .. } if self.inputs > 0 => {
                self.inputs -= 1;
                true
            }
            Event::Log(_) if self.logs > 0 => {
                self.logs -= 1;
                true
            }
            _ => false,
        }
    }
}

/// A suspended execution that can go on.
#[derive(Clone, Debug)]
pub struct Resumable {
    pub execution: String,
    pub session: Option<String>,
    /// Who started it.
    pub origin: String,
    pub code: String,
    pub file: String,
    /// The fingerprint of the API it ran against.
    pub api: String,
    pub limits: Option<Limits>,
    /// Its clock, seed, calls and answers.
    pub recording: Recording,
    /// The calls that were never sent, to go through the gates again: `(seq, function)`.
    pub waiting: Vec<(u32, String)>,
    /// The status it had (`suspended`, or `interrupted` when its process died).
    pub status: String,
    pub(crate) replayed: Replayed,
    /// Where its chain goes on.
    pub(crate) next: i64,
    pub(crate) prev: String,
}

/// The statuses an execution can be resumed from.
pub const RESUMABLE_STATUSES: &[&str] = &["suspended", "interrupted"];

/// Whether execution `id` can be resumed, and what a resume needs.
pub async fn resumable(store: &dyn Store, id: &str) -> Result<Resumable, JournalError> {
    let row = store
        .execution(id)
        .await?
        .ok_or_else(|| JournalError::NoExecution(id.to_string()))?;
    let bad = |problem: String| JournalError::NotResumable {
        execution: row.id.clone(),
        problem,
    };
    if !RESUMABLE_STATUSES.contains(&row.status.as_str()) {
        return Err(bad(match row.status.as_str() {
            "running" => format!(
                "it is running (in {}); only a suspended execution is resumed",
                row.owner
            ),
            status => format!("it has finished ({status}); only a suspended execution is resumed"),
        }));
    }
    let rows = store.entries(&row.id).await?;
    let entries = parse_entries(&rows)?;
    let calls = calls_of(&entries);
    let unknown: Vec<String> = calls
        .iter()
        .filter(|c| c.unknown())
        .map(|c| {
            format!(
                "call #{} ({}, idempotency key {})",
                c.seq + 1,
                c.function,
                c.idempotency_key
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(bad(format!(
            "{} may have reached its server without its answer being recorded, and is never re-sent silently; check the server's state (`isola journal show {}`)",
            unknown.join(", "),
            row.id
        )));
    }
    let waiting: Vec<(u32, String)> = calls
        .iter()
        .filter(|c| c.waiting())
        .map(|c| (c.seq, c.function.clone()))
        .collect();
    let recorded = recording(&row.id, &entries).map_err(|e| match e {
        JournalError::NotReplayable { problem, .. } => bad(problem),
        e => e,
    })?;
    let Some(Entry::Started {
        session, origin, ..
    }) = entries.first()
    else {
        return Err(bad("its first entry is not `started`".into()));
    };
    let replayed = Replayed {
        calls: calls.last().map_or(0, |c| c.seq + 1),
        answered: recorded
            .recording
            .inputs
            .iter()
            .filter_map(|i| match i {
                isola_engine::observer::Input::CallDone { id, .. } => Some(*id),
                isola_engine::observer::Input::Fire { .. } => None,
            })
            .collect(),
        inputs: recorded.recording.inputs.len(),
        logs: entries
            .iter()
            .filter(|e| matches!(e, Entry::Log { .. }))
            .count(),
        waiting: waiting.iter().map(|(seq, _)| *seq).collect(),
    };
    Ok(Resumable {
        execution: row.id.clone(),
        session: session.clone(),
        origin: origin.clone(),
        code: recorded.code,
        file: recorded.file,
        api: recorded.api,
        limits: recorded.limits,
        recording: recorded.recording,
        waiting,
        status: row.status.clone(),
        replayed,
        next: rows.last().map_or(0, |r| r.seq + 1),
        prev: rows.last().map(|r| r.hash.clone()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(seq: u32) -> Entry {
        serde_json::from_value(json!({"kind": "call", "seq": seq, "id": seq + 1,
            "function": format!("t.f{seq}"), "server": "t", "tool": "f", "arguments": {},
            "readOnly": false, "idempotencyKey": format!("x:{seq}")}))
        .unwrap()
    }

    fn outcome(seq: u32, sent: bool) -> Entry {
        serde_json::from_value(
            json!({"kind": "outcome", "seq": seq, "id": seq + 1, "ok": sent,
            "durationMs": 0.0, "requestBytes": 2, "responseBytes": 0, "sent": sent}),
        )
        .unwrap()
    }

    fn answered(seq: u32) -> Entry {
        serde_json::from_value(json!({"kind": "input", "t": "callDone", "id": seq + 1,
            "nowMs": 1, "result": {"status": "ok", "value": "1"}}))
        .unwrap()
    }

    fn gate(seq: u32, decision: &str) -> Entry {
        serde_json::from_value(json!({"kind": "gate", "id": seq + 1, "decision": decision}))
            .unwrap()
    }

    #[test]
    fn where_each_call_stands() {
        let entries = vec![
            // Answered: replayed on resume.
            call(0),
            answered(0),
            outcome(0, true),
            // Held, then not sent when the execution suspended: goes through the gates again.
            call(1),
            gate(1, "held"),
            gate(1, "suspended"),
            outcome(1, false),
            // Intended, nothing after: may have been sent.
            call(2),
            // Sent, its answer never recorded: unknown.
            call(3),
            outcome(3, true),
            // Allowed after a hold, nothing after: may have been sent.
            call(4),
            gate(4, "held"),
            gate(4, "allowed"),
            // Held when the process died: never sent.
            call(5),
            gate(5, "held"),
        ];
        let calls = calls_of(&entries);
        let unknown: Vec<u32> = calls
            .iter()
            .filter(|c| c.unknown())
            .map(|c| c.seq)
            .collect();
        let waiting: Vec<u32> = calls
            .iter()
            .filter(|c| c.waiting())
            .map(|c| c.seq)
            .collect();
        assert_eq!(unknown, [2, 3, 4]);
        assert_eq!(waiting, [1, 5]);
        assert_eq!(calls[0].state, CallState::Answered);
        assert_eq!(
            unknown_calls(&entries)
                .iter()
                .map(|u| u.idempotency_key.as_str())
                .collect::<Vec<_>>(),
            ["x:2", "x:3", "x:4"]
        );
    }
}
