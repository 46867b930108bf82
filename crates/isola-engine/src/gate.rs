//! The call gate: asked before any tool call is sent, it decides what happens to the call.
//!
//! Policy, approvals, plan mode and replay are all gates: they are decisions about a call, so
//! they share this one seam. A [`CallGate`] answers a [`CallIntent`] with a [`Verdict`]:
//!
//! - [`Verdict::Allow`]: the call is sent (the next gate may still object);
//! - [`Verdict::Deny`]: it is not sent; the script's `await` throws a catchable error with the
//!   reason ([`isola_protocol::CallErrorKind::Denied`]);
//! - [`Verdict::Hold`]: the execution waits for a [`Decision`] (a person approving, say); its
//!   deadline clock is stopped meanwhile;
//! - [`Verdict::Simulate`]: the host answers with the given result instead of calling the tool
//!   (plan mode's placeholders, replay's recorded results);
//! - [`Verdict::Abort`]: the execution stops before the call (a replay that diverges);
//! - [`Verdict::After`]: decide once a future resolves, without holding the execution: the
//!   sandbox is not told and the deadline clock runs (a write-ahead journal waits for its
//!   flush so).
//!
//! [`Gates`] chains them: each is asked in order, and the first that does not allow decides.
//! Put the strictest first. No gate at all is the default, and costs nothing.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use isola_protocol::{CallErrorKind, CallResult, ExecError};
use serde_json::Value;

/// A call the script made, as gates see it.
#[derive(Clone, Debug, PartialEq)]
pub struct CallIntent {
    /// Its place among the calls of the execution: 0 for the first one made.
    pub seq: u32,
    /// The TS name the script used: `github.createIssue`.
    pub function: String,
    pub server: String,
    /// The MCP tool name.
    pub tool: String,
    /// What the tool does (its annotations, or the config's word).
    pub effect: isola_typegen::ToolEffect,
    /// The arguments, already checked against the tool's input schema.
    pub arguments: Value,
}

/// Why a call is not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The name of the error the script's `await` throws (`PolicyDenied`, `ApprovalDenied`).
    pub name: String,
    /// What the script (and the record) reads: which rule or person, and why.
    pub message: String,
}

impl Denial {
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            message: message.into(),
        }
    }

    /// The answer the sandbox gets for a call of `function` denied like this.
    pub fn result(&self, function: &str) -> CallResult {
        CallResult::Err {
            kind: CallErrorKind::Denied,
            name: self.name.clone(),
            message: self.message.clone(),
            tool: function.to_string(),
        }
    }
}

/// What a gate says about one call.
pub enum Verdict {
    Allow,
    Deny(Denial),
    /// Wait for a decision; `reason` says what for (shown in the record and to observers).
    Hold {
        reason: String,
        decision: BoxFuture<'static, Decision>,
    },
    /// Answer the call with this instead of calling the tool.
    Simulate(CallResult),
    /// Stop the execution before the call.
    Abort(ExecError),
    /// Decide when `0` resolves; meanwhile the call waits, the script runs on, and the
    /// deadline clock is not stopped (unlike a hold). For short waits: a journal's flush.
    After(BoxFuture<'static, Decision>),
}

impl fmt::Debug for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Allow => f.write_str("Allow"),
            Verdict::Deny(d) => f.debug_tuple("Deny").field(d).finish(),
            Verdict::Hold { reason, .. } => f.debug_struct("Hold").field("reason", reason).finish(),
            Verdict::Simulate(r) => f.debug_tuple("Simulate").field(r).finish(),
            Verdict::Abort(e) => f.debug_tuple("Abort").field(e).finish(),
            Verdict::After(_) => f.write_str("After"),
        }
    }
}

/// A [`Verdict`] as the execution takes it: a hold's decision is the driver's to wait for.
#[derive(Clone, Debug, PartialEq)]
pub enum Ruling {
    Allow,
    Deny(Denial),
    Hold(String),
    Simulate(CallResult),
    Abort(ExecError),
    /// Waiting for a [`Verdict::After`]'s decision.
    After,
}

impl Verdict {
    /// The ruling, and the decision to wait for when the call is held.
    pub fn split(self) -> (Ruling, Option<BoxFuture<'static, Decision>>) {
        match self {
            Verdict::Allow => (Ruling::Allow, None),
            Verdict::Deny(d) => (Ruling::Deny(d), None),
            Verdict::Hold { reason, decision } => (Ruling::Hold(reason), Some(decision)),
            Verdict::Simulate(r) => (Ruling::Simulate(r), None),
            Verdict::Abort(e) => (Ruling::Abort(e), None),
            Verdict::After(decision) => (Ruling::After, Some(decision)),
        }
    }

    /// Simulate a successful call that returns `value`.
    pub fn returns(value: &Value) -> Verdict {
        Verdict::Simulate(CallResult::Ok {
            value: value.to_string(),
        })
    }
}

/// How a held call was decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Allow,
    Deny(Denial),
    Simulate(CallResult),
    /// Stop waiting here: the execution ends `suspended` (with this message) once the calls
    /// already sent are answered; the held call is not sent, and a resume asks the gates again.
    Suspend(String),
}

/// Decides about calls before they are sent. Called on the engine's task: answer quickly, and
/// put anything slow in a [`Verdict::Hold`].
pub trait CallGate: Send + Sync {
    fn check(&self, call: &CallIntent) -> Verdict;
}

/// Gates asked in order; the first that does not allow decides.
#[derive(Clone, Default)]
pub struct Gates(Vec<Arc<dyn CallGate>>);

impl Gates {
    pub fn new(gates: Vec<Arc<dyn CallGate>>) -> Self {
        Self(gates)
    }

    /// Ask `gate` before the others (the strictest goes first: a policy before a journal).
    pub fn insert_first(&mut self, gate: Arc<dyn CallGate>) {
        self.0.insert(0, gate);
    }

    pub fn push(&mut self, gate: Arc<dyn CallGate>) {
        self.0.push(gate);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn CallGate>> {
        self.0.iter()
    }

    pub fn check(&self, call: &CallIntent) -> Verdict {
        self.check_from(0, call)
    }

    /// Ask the gates from the `first`th on. A gate that decides later ([`Verdict::Hold`],
    /// [`Verdict::After`]) does not end the chain: once it allows, the gates after it are asked
    /// (an approved call still waits for the journal's flush).
    fn check_from(&self, first: usize, call: &CallIntent) -> Verdict {
        for (i, gate) in self.0.iter().enumerate().skip(first) {
            match gate.check(call) {
                Verdict::Allow => {}
                Verdict::Hold { reason, decision } => {
                    return Verdict::Hold {
                        reason,
                        decision: self.then_rest(i + 1, call, decision),
                    };
                }
                Verdict::After(decision) => {
                    return Verdict::After(self.then_rest(i + 1, call, decision));
                }
                other => return other,
            }
        }
        Verdict::Allow
    }

    /// `decision`, and when it allows, what the gates from `next` on say.
    fn then_rest(
        &self,
        next: usize,
        call: &CallIntent,
        decision: BoxFuture<'static, Decision>,
    ) -> BoxFuture<'static, Decision> {
        if next >= self.0.len() {
            return decision;
        }
        let (gates, call) = (self.clone(), call.clone());
        Box::pin(async move {
            match decision.await {
                Decision::Allow => match gates.check_from(next, &call) {
                    Verdict::Allow => Decision::Allow,
                    Verdict::Deny(d) => Decision::Deny(d),
                    Verdict::Simulate(r) => Decision::Simulate(r),
                    Verdict::Hold { decision, .. } | Verdict::After(decision) => decision.await,
                    // A decision cannot stop the execution: the call is refused instead.
                    Verdict::Abort(e) => Decision::Deny(Denial::new("Aborted", e.message)),
                },
                other => other,
            }
        })
    }
}

impl<F> CallGate for F
where
    F: Fn(&CallIntent) -> Verdict + Send + Sync,
{
    fn check(&self, call: &CallIntent) -> Verdict {
        self(call)
    }
}
