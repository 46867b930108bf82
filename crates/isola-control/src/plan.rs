//! Plan → approve → apply.
//!
//! **Plan mode** runs a script with its side effects held back: a `read` call goes to its
//! server; a `write` or `destructive` call is not sent but becomes a [`Step`] of the plan, and
//! the script gets a placeholder for its result ([`CallResult::Planned`]: "known after apply").
//! A placeholder used in a later call's arguments is a reference to that step's result
//! (`{"$isola.ref": "#1.id"}`, or `⟦#1.id⟧` inside a string). [`Planner`] gives the gate and
//! the observer that build the [`PlanBody`]: the steps, the reads with the SHA-256 of their
//! answers, and the counts the plan policy decides on.
//!
//! **Apply** runs the same script live under [`Applier`]'s gate: before each side-effecting call
//! is sent, it must be the plan's next step, with the same function and the same arguments once
//! the references are resolved to the actual results of the earlier steps; anything else stops
//! the execution before the call is sent (a divergence naming the step and the JSON path). Each
//! read must be the plan's read at its place with the same answer: a read whose answer changed
//! since the plan is *drift*, and by default the next call (of any kind) stops the apply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use isola_engine::observer::Input;
use isola_engine::{CallGate, CallIntent, EffectClass, Event, Flow, Observer, Verdict};
use isola_policy::{Plan, PlanStep};
use isola_protocol::{CallResult, ErrorKind, ExecError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::effect_of;

/// The key of a reference to a step's result in a plan's arguments.
pub const REF_KEY: &str = "$isola.ref";
/// How a reference is written inside a string: `⟦#1.id⟧`.
pub const REF_OPEN: char = '\u{27e6}';
pub const REF_CLOSE: char = '\u{27e7}';

/// A read a plan made: what it asked and what it got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedRead {
    pub seq: u32,
    pub function: String,
    pub arguments: Value,
    /// `sha256:<hex>` of the answer as the script got it (`None`: no answer, the call failed).
    pub answer: Option<String>,
}

/// What a plan run produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanBody {
    /// The changes, in order (`seq` is the step's place in the plan, 0 first; shown as `#seq+1`).
    pub steps: Vec<PlanStep>,
    pub reads: Vec<PlannedRead>,
}

impl PlanBody {
    /// The plan as its policy sees it.
    pub fn plan(&self, id: &str) -> Plan {
        Plan::new(id, self.steps.clone())
    }
}

fn hash(value: &str) -> String {
    isola_journal::sha256(value.as_bytes())
}

#[derive(Default)]
struct PlanState {
    body: PlanBody,
    /// Sandbox call id → index in `body.reads`.
    reads_by_id: HashMap<u32, usize>,
    /// Call seq → sandbox id.
    ids: HashMap<u32, u32>,
}

/// Builds a plan: [`Planner::gate`] after the policy's gate, [`Planner::observer`] among the
/// observers; [`Planner::body`] once the execution ended.
#[derive(Clone, Default)]
pub struct Planner {
    state: Arc<Mutex<PlanState>>,
}

impl Planner {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn gate(&self) -> Arc<dyn CallGate> {
        Arc::new(PlanGate {
            state: self.state.clone(),
        })
    }

    pub fn observer(&self) -> Box<dyn Observer> {
        Box::new(PlanObserver {
            state: self.state.clone(),
        })
    }

    pub fn body(&self) -> PlanBody {
        lock(&self.state).body.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct PlanGate {
    state: Arc<Mutex<PlanState>>,
}

impl CallGate for PlanGate {
    fn check(&self, call: &CallIntent) -> Verdict {
        let mut st = lock(&self.state);
        if call.effect.class == EffectClass::Read {
            let index = st.body.reads.len();
            st.body.reads.push(PlannedRead {
                seq: call.seq,
                function: call.function.clone(),
                arguments: call.arguments.clone(),
                answer: None,
            });
            if let Some(id) = st.ids.get(&call.seq).copied() {
                st.reads_by_id.insert(id, index);
            }
            return Verdict::Allow;
        }
        let seq = st.body.steps.len() as u32;
        st.body.steps.push(PlanStep {
            seq,
            function: call.function.clone(),
            server: call.server.clone(),
            tool: call.tool.clone(),
            arguments: call.arguments.clone(),
            effect: effect_of(call.effect.class),
        });
        Verdict::Simulate(CallResult::Planned { step: seq + 1 })
    }
}

struct PlanObserver {
    state: Arc<Mutex<PlanState>>,
}

impl Observer for PlanObserver {
    fn event(&mut self, event: &Event<'_>) -> Flow {
        match event {
            // Before the gates: the gate finds the id by the seq.
            Event::Call { id, call } => {
                lock(&self.state).ids.insert(call.seq, *id);
            }
            Event::Input {
                input: Input::CallDone { id, result, .. },
            } => {
                let mut st = lock(&self.state);
                if let Some(i) = st.reads_by_id.get(id).copied()
                    && let CallResult::Ok { value } = result
                {
                    st.body.reads[i].answer = Some(hash(value));
                }
            }
            _ => {}
        }
        Flow::Continue
    }
}

/// How an apply went, so far or in the end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// Steps sent (in order, from the first).
    pub applied: u32,
    /// Steps in the plan.
    pub planned: u32,
    /// Reads whose answer or arguments changed since the plan.
    pub drift: Vec<String>,
}

#[derive(Default)]
struct ApplyState {
    /// The next step and read to meet.
    next_step: usize,
    next_read: usize,
    /// Call seq → what it is: a step (its index) or a read (its index).
    kinds: HashMap<u32, Kind>,
    /// Sandbox id → seq.
    seqs: HashMap<u32, u32>,
    /// The actual answers of the steps sent, by step index.
    results: HashMap<usize, Value>,
    drift: Vec<String>,
}

#[derive(Clone, Copy)]
enum Kind {
    Step(usize),
    Read(usize),
}

/// Checks an apply against its plan: [`Applier::gate`] after the policy's gate,
/// [`Applier::observer`] among the observers.
#[derive(Clone)]
pub struct Applier {
    plan: Arc<PlanBody>,
    id: Arc<str>,
    allow_drift: bool,
    state: Arc<Mutex<ApplyState>>,
}

impl Applier {
    /// `id` names the plan in errors; `allow_drift`: a changed read is reported, not stopped at.
    pub fn new(id: &str, plan: PlanBody, allow_drift: bool) -> Self {
        Self {
            plan: Arc::new(plan),
            id: id.into(),
            allow_drift,
            state: Arc::default(),
        }
    }

    pub fn gate(&self) -> Arc<dyn CallGate> {
        Arc::new(self.clone())
    }

    pub fn observer(&self) -> Box<dyn Observer> {
        Box::new(ApplyObserver(self.clone()))
    }

    pub fn report(&self) -> ApplyReport {
        let st = lock(&self.state);
        ApplyReport {
            applied: st.results.len() as u32,
            planned: self.plan.steps.len() as u32,
            drift: st.drift.clone(),
        }
    }

    fn stop(&self, name: &str, message: String, call: &CallIntent) -> Verdict {
        Verdict::Abort(ExecError {
            kind: ErrorKind::Divergence,
            limit: None,
            name: name.into(),
            message,
            position: None,
            code_frame: None,
            stack: None,
            tool: Some(call.function.clone()),
            hint: Some(format!(
                "nothing was sent from here on; `isola plan` the script again to see what it would do now (plan {} is used up)",
                self.id
            )),
        })
    }
}

impl CallGate for Applier {
    fn check(&self, call: &CallIntent) -> Verdict {
        let mut st = lock(&self.state);
        if !self.allow_drift
            && let Some(first) = st.drift.first()
        {
            let message = format!(
                "the apply of {} stopped before {}: {first} (--allow-drift goes on regardless)",
                self.id, call.function
            );
            drop(st);
            return self.stop("DriftError", message, call);
        }
        if call.effect.class == EffectClass::Read {
            let index = st.next_read;
            st.next_read += 1;
            st.kinds.insert(call.seq, Kind::Read(index));
            match self.plan.reads.get(index) {
                Some(r) if r.function == call.function && r.arguments == call.arguments => {}
                Some(r) => {
                    let what = format!(
                        "read #{} is {}({}) where the plan read {}({})",
                        index + 1,
                        call.function,
                        call.arguments,
                        r.function,
                        r.arguments
                    );
                    st.drift.push(what);
                    if !self.allow_drift {
                        let message = format!(
                            "the apply of {} stopped: {} (--allow-drift goes on regardless)",
                            self.id, st.drift[0]
                        );
                        drop(st);
                        return self.stop("DriftError", message, call);
                    }
                }
                None => st.drift.push(format!(
                    "read #{} ({}) is new: the plan made {} read(s)",
                    index + 1,
                    call.function,
                    self.plan.reads.len()
                )),
            }
            return Verdict::Allow;
        }
        let index = st.next_step;
        let Some(step) = self.plan.steps.get(index) else {
            let message = format!(
                "the apply of {} diverged: {} would be change #{}, and the plan has {} change(s)",
                self.id,
                call.function,
                index + 1,
                self.plan.steps.len()
            );
            drop(st);
            return self.stop("DivergenceError", message, call);
        };
        if step.function != call.function {
            let message = format!(
                "the apply of {} diverged at step #{}: the plan has {} there, the script calls {}",
                self.id,
                index + 1,
                step.function,
                call.function
            );
            drop(st);
            return self.stop("DivergenceError", message, call);
        }
        let expected = resolve(&step.arguments, &st.results);
        if let Some(path) =
            isola_engine::replay::difference(&expected, &call.arguments, "$", "planned")
        {
            let message = format!(
                "the apply of {} diverged at step #{} ({}): its arguments differ from the plan at {path}",
                self.id,
                index + 1,
                call.function
            );
            drop(st);
            return self.stop("DivergenceError", message, call);
        }
        st.next_step += 1;
        st.kinds.insert(call.seq, Kind::Step(index));
        Verdict::Allow
    }
}

struct ApplyObserver(Applier);

impl Observer for ApplyObserver {
    fn event(&mut self, event: &Event<'_>) -> Flow {
        let applier = &self.0;
        match event {
            Event::Call { id, call } => {
                lock(&applier.state).seqs.insert(*id, call.seq);
            }
            Event::Input {
                input: Input::CallDone { id, result, .. },
            } => {
                let mut st = lock(&applier.state);
                let kind = st.seqs.get(id).and_then(|seq| st.kinds.get(seq)).copied();
                match (kind, result) {
                    (Some(Kind::Step(i)), CallResult::Ok { value }) => {
                        let v = serde_json::from_str(value).unwrap_or(Value::Null);
                        st.results.insert(i, v);
                    }
                    (Some(Kind::Step(i)), _) => {
                        st.results.insert(i, Value::Null);
                    }
                    (Some(Kind::Read(i)), result) => {
                        let now = match result {
                            CallResult::Ok { value } => Some(hash(value)),
                            _ => None,
                        };
                        if let Some(planned) = applier.plan.reads.get(i)
                            && planned.answer != now
                        {
                            st.drift.push(format!(
                                "read #{} {}({}) answers differently than when the plan was made",
                                i + 1,
                                planned.function,
                                planned.arguments
                            ));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Flow::Continue
    }
}

/// `arguments` with each reference to a step's result replaced by that result (as JSON
/// serialises it: a missing property drops its key). A reference to a step not applied yet
/// stays as it is, and so differs from whatever the script sends.
pub fn resolve(arguments: &Value, results: &HashMap<usize, Value>) -> Value {
    resolve_value(arguments, results).unwrap_or(Value::Null)
}

fn resolve_value(v: &Value, results: &HashMap<usize, Value>) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.len() == 1
                && let Some(Value::String(path)) = m.get(REF_KEY)
            {
                return match lookup(path, results) {
                    Lookup::Found(v) => Some(v),
                    Lookup::Missing => None,
                    Lookup::Unknown => Some(v.clone()),
                };
            }
            let mut out = Map::new();
            for (k, x) in m {
                if let Some(r) = resolve_value(x, results) {
                    out.insert(k.clone(), r);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(
            a.iter()
                .map(|x| resolve_value(x, results).unwrap_or(Value::Null))
                .collect(),
        )),
        Value::String(s) if s.contains(REF_OPEN) => Some(Value::String(resolve_text(s, results))),
        other => Some(other.clone()),
    }
}

/// `⟦#1.id⟧` inside a string becomes the result's text, as JavaScript's `String()` gives it.
fn resolve_text(s: &str, results: &HashMap<usize, Value>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find(REF_OPEN) {
        out.push_str(&rest[..open]);
        let after = &rest[open + REF_OPEN.len_utf8()..];
        let Some(close) = after.find(REF_CLOSE) else {
            out.push_str(&rest[open..]);
            return out;
        };
        let path = &after[..close];
        match lookup(path, results) {
            Lookup::Found(Value::String(t)) => out.push_str(&t),
            Lookup::Found(Value::Null) => out.push_str("null"),
            Lookup::Found(v @ (Value::Number(_) | Value::Bool(_))) => out.push_str(&v.to_string()),
            Lookup::Found(Value::Array(_) | Value::Object(_)) => out.push_str("[object Object]"),
            Lookup::Missing => out.push_str("undefined"),
            Lookup::Unknown => {
                out.push(REF_OPEN);
                out.push_str(path);
                out.push(REF_CLOSE);
            }
        }
        rest = &after[close + REF_CLOSE.len_utf8()..];
    }
    out.push_str(rest);
    out
}

enum Lookup {
    Found(Value),
    /// The step's result has no such property (JavaScript's `undefined`).
    Missing,
    /// Not a reference to a step applied so far.
    Unknown,
}

/// `#2.items[0]["a b"]` in the results of the steps applied.
fn lookup(path: &str, results: &HashMap<usize, Value>) -> Lookup {
    let Some(rest) = path.strip_prefix('#') else {
        return Lookup::Unknown;
    };
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Some(step) = rest[..end]
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
    else {
        return Lookup::Unknown;
    };
    let Some(mut here) = results.get(&step) else {
        return Lookup::Unknown;
    };
    let mut rest = &rest[end..];
    while !rest.is_empty() {
        let (key, after) = if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            (r[..end].to_string(), &r[end..])
        } else if let Some(r) = rest.strip_prefix("[\"") {
            // A key written as a JSON string: ["a b"].
            let Some(end) = r.find("\"]") else {
                return Lookup::Unknown;
            };
            match serde_json::from_str::<String>(&format!("\"{}\"", &r[..end])) {
                Ok(k) => (k, &r[end + 2..]),
                Err(_) => return Lookup::Unknown,
            }
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return Lookup::Unknown;
            };
            (r[..end].to_string(), &r[end + 1..])
        } else {
            return Lookup::Unknown;
        };
        let next = match here {
            Value::Object(m) => m.get(&key),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            Value::String(s) if key == "length" => {
                return Lookup::Found(Value::from(s.encode_utf16().count()));
            }
            _ => None,
        };
        match (next, here) {
            (Some(n), _) => here = n,
            (None, Value::Array(a)) if key == "length" => {
                return if after.is_empty() {
                    Lookup::Found(Value::from(a.len()))
                } else {
                    Lookup::Missing
                };
            }
            (None, _) => return Lookup::Missing,
        }
        rest = after;
    }
    Lookup::Found(here.clone())
}

/// A plan as `isola plan --json`, `isola approvals show --json` and `GET /v1/plans/{id}` give
/// it: its steps, the reads made, the counts, the decision.
pub fn plan_json(row: &isola_store::ApprovalRow) -> Value {
    let subject: Value = serde_json::from_str(&row.subject).unwrap_or(Value::Null);
    let reasons: Vec<String> = serde_json::from_str(&row.reasons).unwrap_or_default();
    serde_json::json!({
        "plan": row.id,
        "status": row.status,
        "execution": row.execution,
        "session": row.session,
        "steps": with_references(&subject["steps"]),
        "reads": subject["reads"],
        "counts": subject["counts"],
        "decision": {"status": row.status, "by": row.decided_by, "reasons": reasons, "note": row.note},
        "expiresMs": row.expires_ms,
        "api": subject["api"],
    })
}

/// `steps` with, on each, `uses`: the steps (numbered from 1) whose results its arguments
/// refer to, known only after apply.
fn with_references(steps: &Value) -> Value {
    fn refs(v: &Value, out: &mut Vec<u64>) {
        let mut note = |path: &str| {
            let n: String = path
                .trim_start_matches('#')
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = n.parse() {
                out.push(n);
            }
        };
        match v {
            Value::Object(m) => match m.get(REF_KEY) {
                Some(Value::String(path)) if m.len() == 1 => note(path),
                _ => m.values().for_each(|x| refs(x, out)),
            },
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            Value::String(s) => {
                for part in s.split(REF_OPEN).skip(1) {
                    note(part.split(REF_CLOSE).next().unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    let Value::Array(steps) = steps else {
        return steps.clone();
    };
    let steps = steps
        .iter()
        .map(|step| {
            let mut uses = Vec::new();
            refs(&step["arguments"], &mut uses);
            uses.sort_unstable();
            uses.dedup();
            let mut step = step.clone();
            if let Value::Object(m) = &mut step {
                m.insert("uses".into(), Value::from(uses));
            }
            step
        })
        .collect();
    Value::Array(steps)
}

/// A plan's arguments for reading: each reference as `(known after apply: #1.id)`.
pub fn shown(arguments: &Value) -> String {
    fn show(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                if m.len() == 1
                    && let Some(Value::String(path)) = m.get(REF_KEY)
                {
                    return Value::String(format!("(known after apply: {path})"));
                }
                Value::Object(m.iter().map(|(k, x)| (k.clone(), show(x))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(show).collect()),
            Value::String(s) if s.contains(REF_OPEN) => {
                Value::String(s.replace(REF_OPEN, "${").replace(REF_CLOSE, "}"))
            }
            other => other.clone(),
        }
    }
    show(arguments).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_resolve_to_the_results_of_earlier_steps() {
        let mut results = HashMap::new();
        results.insert(0, json!({"id": "vpc-7", "tags": ["a", "b"], "n": 3}));
        let args = json!({
            "vpc": {"$isola.ref": "#1.id"},
            "name": "subnet-of-\u{27e6}#1.id\u{27e7}-\u{27e6}#1.n\u{27e7}",
            "first": {"$isola.ref": "#1.tags[0]"},
            "count": {"$isola.ref": "#1.tags.length"},
            "gone": {"$isola.ref": "#1.nothing"},
            "later": {"$isola.ref": "#2.id"},
        });
        assert_eq!(
            resolve(&args, &results),
            json!({
                "vpc": "vpc-7",
                "name": "subnet-of-vpc-7-3",
                "first": "a",
                "count": 2,
                "later": {"$isola.ref": "#2.id"},
            })
        );
        assert_eq!(
            shown(&json!({"vpc": {"$isola.ref": "#1.id"}})),
            r#"{"vpc":"(known after apply: #1.id)"}"#
        );
    }
}
