//! Replaying a journaled execution: the same code, clock, seed, API and answers, in the
//! recorded order, calling no tool. The engine's strict [`isola_engine::ReplayGate`] stops it at
//! the first call that differs from the recording (a divergence).

use std::sync::Arc;

use futures::future::BoxFuture;
use isola_engine::observer::Input;
use isola_engine::replay::RecordedCall;
use isola_engine::replay::first_difference;
use isola_engine::{Engine, ExecOptions, Recording, Replay, ToolError, Tools};
use isola_protocol::{ErrorKind, ExecRecord, Limits};
use isola_store::Store;
use isola_typegen::{ServerSpec, ToolSpec};
use serde_json::{Map, Value};

use crate::{Entry, JournalError, parse_entries};

/// What a replay found.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    pub execution: String,
    /// `same`, `diverged` or `different`.
    pub outcome: String,
    /// What differs, where (the call, or the result's JSON path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference: Option<String>,
    pub calls: usize,
    /// Things that make the replay less than exact (redacted answers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub replay_ms: f64,
    /// The replay's record.
    pub record: ExecRecord,
}

/// The parts of a journal a replay needs.
pub struct Recorded {
    pub code: String,
    pub file: String,
    pub api: String,
    pub limits: Option<Limits>,
    pub recording: Recording,
    pub finished: Option<ExecRecord>,
    pub warnings: Vec<String>,
}

/// Gather the recording from an execution's entries.
pub fn recording(execution: &str, entries: &[Entry]) -> Result<Recorded, JournalError> {
    let bad = |problem: String| JournalError::NotReplayable {
        execution: execution.to_string(),
        problem,
    };
    let Some(Entry::Started {
        code,
        file,
        api,
        limits,
        clock_ms,
        seed,
        ..
    }) = entries.first()
    else {
        return Err(bad("its first entry is not `started`".into()));
    };
    let (Some(clock_ms), Some(seed)) = (clock_ms, seed) else {
        return Err(bad(
            "it never ran (the script did not compile): there is nothing to replay".into(),
        ));
    };
    let mut rec = Recording {
        clock_ms: *clock_ms,
        seed: *seed,
        calls: Vec::new(),
        inputs: Vec::new(),
    };
    let mut warnings = Vec::new();
    let mut finished = None;
    for e in entries {
        match e {
            Entry::Call {
                id,
                function,
                arguments,
                seq,
                ..
            } => {
                if redacted_somewhere(arguments) {
                    warnings.push(format!(
                        "call #{} ({function}) had redacted arguments: a replay sees a difference there",
                        seq + 1
                    ));
                }
                rec.calls.push(RecordedCall {
                    seq: *seq,
                    id: *id,
                    function: function.clone(),
                    arguments: arguments.clone(),
                })
            }
            Entry::Input {
                t,
                id,
                now_ms,
                result,
                omitted,
                redacted,
            } => {
                if t == "fire" {
                    rec.inputs.push(Input::Fire {
                        id: *id,
                        now_ms: *now_ms,
                    });
                    continue;
                }
                if let Some(o) = omitted {
                    return Err(bad(format!(
                        "the answer to call id {id} ({} bytes) was kept as its hash only\nhint: raise isola.journal.maxResultBytes to replay executions with large results",
                        o.bytes
                    )));
                }
                if *redacted {
                    warnings.push(format!(
                        "the answer to call id {id} had keys redacted: the script saw the real values"
                    ));
                }
                if let Some(result) = result {
                    rec.inputs.push(Input::CallDone {
                        id: *id,
                        result: result.clone(),
                        now_ms: *now_ms,
                    });
                }
            }
            Entry::Finished { record, .. } => finished = Some((**record).clone()),
            _ => {}
        }
    }
    Ok(Recorded {
        code: code.clone(),
        file: file.clone(),
        api: api.clone(),
        limits: limits.clone(),
        recording: rec,
        finished,
        warnings,
    })
}

fn redacted_somewhere(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "[redacted]",
        Value::Array(a) => a.iter().any(redacted_somewhere),
        Value::Object(o) => o.values().any(redacted_somewhere),
        _ => false,
    }
}

/// The tools of a stored API: listed as they were, never called.
struct RecordedTools(Vec<ServerSpec>);

impl Tools for RecordedTools {
    fn servers(&self) -> Vec<ServerSpec> {
        self.0.clone()
    }

    fn call<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        _args: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            Err(ToolError(format!(
                "a replay calls no tool (asked for {tool} of {server})"
            )))
        })
    }
}

fn servers(execution: &str, body: &str) -> Result<Vec<ServerSpec>, JournalError> {
    let bad = |problem: String| JournalError::NotReplayable {
        execution: execution.to_string(),
        problem,
    };
    let v: Vec<Value> =
        serde_json::from_str(body).map_err(|e| bad(format!("its API is unreadable: {e}")))?;
    v.into_iter()
        .map(|s| {
            let name = s
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let tools: Vec<ToolSpec> =
                serde_json::from_value(s.get("tools").cloned().unwrap_or(Value::Null))
                    .map_err(|e| bad(format!("its API is unreadable: {e}")))?;
            Ok(ServerSpec { name, tools })
        })
        .collect()
}

/// Replay execution `id` from the store, in `backend`, calling no tool.
pub async fn replay(
    store: &dyn Store,
    id: &str,
    backend: isola_worker::Backend,
) -> Result<Replayed, JournalError> {
    let row = store
        .execution(id)
        .await?
        .ok_or_else(|| JournalError::NoExecution(id.to_string()))?;
    let entries = parse_entries(&store.entries(&row.id).await?)?;
    let recorded = recording(&row.id, &entries)?;
    let body = store
        .api(&recorded.api)
        .await?
        .ok_or_else(|| JournalError::NotReplayable {
            execution: row.id.clone(),
            problem: format!(
                "the API it ran against ({}) is not in the store",
                recorded.api
            ),
        })?;
    let tools = Arc::new(RecordedTools(servers(&row.id, &body)?));
    let limits = recorded.limits.clone().unwrap_or_default();
    let engine = Engine::new(tools, backend, limits.clone()).with_max_script_bytes(u64::MAX);
    let calls = recorded.recording.calls.len();
    let started = std::time::Instant::now();
    let record = engine
        .execute(
            &recorded.code,
            ExecOptions {
                file_name: recorded.file.clone(),
                limits: Some(limits),
                replay: Some(Replay {
                    recording: recorded.recording.clone(),
                    live_after: false,
                }),
                ..ExecOptions::default()
            },
        )
        .await;
    let replay_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (outcome, difference) = judge(&record, recorded.finished.as_ref());
    Ok(Replayed {
        execution: row.id,
        outcome: outcome.into(),
        difference,
        calls,
        warnings: recorded.warnings,
        replay_ms,
        record,
    })
}

fn judge(now: &ExecRecord, then: Option<&ExecRecord>) -> (&'static str, Option<String>) {
    if let Some(e) = &now.error
        && e.kind == ErrorKind::Divergence
    {
        return ("diverged", Some(e.message.clone()));
    }
    let Some(then) = then else {
        return (
            "different",
            Some("the recorded execution never finished (interrupted); the replay did".into()),
        );
    };
    if now.ok != then.ok {
        return (
            "different",
            Some(format!(
                "the recording {}, the replay {}",
                describe(then),
                describe(now)
            )),
        );
    }
    if let Some(d) = first_difference(&then.result, &now.result, "$") {
        return ("different", Some(format!("the result differs at {d}")));
    }
    if let (Some(a), Some(b)) = (&then.error, &now.error)
        && (a.kind != b.kind || a.message != b.message)
    {
        return (
            "different",
            Some(format!(
                "the error differs: recorded `{}`, now `{}`",
                a.message, b.message
            )),
        );
    }
    ("same", None)
}

fn describe(r: &ExecRecord) -> String {
    match &r.error {
        None => "succeeded".into(),
        Some(e) => format!("failed ({})", e.message),
    }
}
