//! Governed execution: the policy decides about every tool call, and a call it wants approved
//! waits for a person.
//!
//! A [`Governor`] is made once per process from the policy, the store (where approval requests
//! wait for a decision, from this process or any other sharing the store) and, on a terminal, an
//! [`Ask`] to put the question to the person right here. For each execution,
//! [`Governor::gate`] gives the engine a [`CallGate`] that, before each call is sent:
//!
//! - evaluates the policy ([`isola_policy::Policy::decide_call`]) with the call, the execution
//!   and the counts of its calls so far;
//! - on `deny`, refuses the call: the script's `await` throws `PolicyDenied` with the reasons;
//! - on `require_approval`, holds the execution (its deadline clock stops) while
//!   [`approval::decide`] finds an answer: a grant of the session that covers the call, else an
//!   approval request in the store decided by `isola approvals approve|deny` (polled), or by the
//!   person at the terminal, whichever comes first; no decision within the timeout expires the
//!   request and denies the call (`ApprovalExpired`);
//! - on `allow`, lets the call go on to the next gate (the journal's write-ahead).
//!
//! In plan and apply modes ([`ExecInfo::mode`]) a change the policy wants approved is let
//! through to the next gate: [`plan::Planner`]'s (it becomes a step, never sent) or
//! [`plan::Applier`]'s (sent only as the approved plan's next step). An execution in those modes
//! must have that gate right after this one.
//!
//! The gate is one of the engine's gates; the policy never sees the engine, and this crate knows
//! neither SQL nor Rego beyond the two crates' interfaces.

pub mod approval;
pub mod plan;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use isola_engine::{CallGate, CallIntent, Denial, EffectClass, Verdict};
use isola_policy::{Call, CallInput, Counts, Effect, Execution, Mode, Outcome, Policy};
use isola_store::Store;

pub use approval::{Answer, Ask, Notice, Request, approval_id, grant_matches};
pub use futures::future::BoxFuture;

/// The execution a gate governs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecInfo {
    pub id: String,
    pub session: Option<String>,
    /// Who runs it, as policies see it: the front-end and the name of the person or token
    /// (`cli:ada`, `mcp:claude-code`, `agent:ada`).
    pub principal: String,
    pub mode: Mode,
    /// The script, shown to whoever approves.
    pub code: String,
    pub file: String,
    /// It is journaled in the store, so a long wait may suspend it (see
    /// [`Governor::with_suspend_after`]) and a resume continue it.
    pub resumable: bool,
    /// What it is for, shown to whoever approves (an agent run and its prompt).
    pub purpose: Option<String>,
}

/// The policy and the ways of asking for approval, shared by every execution of a process.
pub struct Governor {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    policy: Arc<Policy>,
    store: Option<Arc<dyn Store>>,
    ask: Option<Arc<dyn Ask>>,
    notice: Option<Notice>,
    /// How long a held call waits for a decision.
    timeout: Duration,
    /// How often the store is asked whether a request was decided.
    poll: Duration,
    /// How long a resumable execution waits before it is suspended.
    suspend_after: Option<Duration>,
}

impl Governor {
    /// `store` is where requests wait (`None`: only `ask` can decide); `timeout` is how long a
    /// held call waits for a decision.
    pub fn new(policy: Arc<Policy>, store: Option<Arc<dyn Store>>, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                policy,
                store,
                ask: None,
                notice: None,
                timeout,
                poll: Duration::from_millis(200),
                suspend_after: None,
            }),
        }
    }

    /// Also ask `ask` (a person at this terminal).
    pub fn with_ask(mut self, ask: Arc<dyn Ask>) -> Self {
        Arc::make_mut(&mut self.inner).ask = Some(ask);
        self
    }

    /// Tell `notice` of each request that waits in the store with nobody here to ask (a line on
    /// stderr saying how to decide it).
    pub fn with_notice(mut self, notice: Notice) -> Self {
        Arc::make_mut(&mut self.inner).notice = Some(notice);
        self
    }

    /// Ask the store this often whether a request was decided (default 200 ms).
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        Arc::make_mut(&mut self.inner).poll = every;
        self
    }

    /// Suspend a resumable execution whose call waited this long (the worker is freed; the
    /// request keeps waiting, and `isola resume` continues once it is decided). A wait as long
    /// as the timeout never suspends.
    pub fn with_suspend_after(mut self, after: Duration) -> Self {
        Arc::make_mut(&mut self.inner).suspend_after = Some(after);
        self
    }

    /// The same governor, asking `ask` instead (one MCP client's user, through elicitation).
    pub fn asking(&self, ask: Arc<dyn Ask>) -> Governor {
        let mut inner = (*self.inner).clone();
        inner.ask = Some(ask);
        Governor {
            inner: Arc::new(inner),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The gate of one execution.
    pub fn gate(&self, exec: ExecInfo) -> Arc<dyn CallGate> {
        self.gate_after(exec, Counts::default())
    }

    /// The gate of an execution that made these calls already (a resumed one: the replayed
    /// calls are not asked about again, but policies count them).
    pub fn gate_after(&self, exec: ExecInfo, counts: Counts) -> Arc<dyn CallGate> {
        Arc::new(PolicyGate {
            inner: self.inner.clone(),
            exec,
            counts: Mutex::new(counts),
        })
    }
}

/// The policy's effect class of a tool's.
pub fn effect_of(class: EffectClass) -> Effect {
    match class {
        EffectClass::Read => Effect::Read,
        EffectClass::Write => Effect::Write,
        EffectClass::Destructive => Effect::Destructive,
    }
}

struct PolicyGate {
    inner: Arc<Inner>,
    exec: ExecInfo,
    /// The calls the script made so far, by function and effect.
    counts: Mutex<Counts>,
}

impl CallGate for PolicyGate {
    fn check(&self, call: &CallIntent) -> Verdict {
        let effect = effect_of(call.effect.class);
        let counts = {
            let mut counts = self
                .counts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = counts.clone();
            counts.add(&call.function, effect);
            before
        };
        let input = CallInput {
            call: Call {
                server: call.server.clone(),
                tool: call.tool.clone(),
                function: call.function.clone(),
                arguments: call.arguments.clone(),
                effect,
            },
            execution: Execution {
                id: self.exec.id.clone(),
                session: self.exec.session.clone(),
                principal: self.exec.principal.clone(),
                mode: self.exec.mode,
            },
            counts,
        };
        let decision = self.inner.policy.decide_call(&input);
        // A change in plan mode is not sent (the plan gate after this one makes it a step, and
        // the plan is decided as a whole); in apply mode it is sent only as a step of the
        // approved plan (the apply gate after this one checks). Reads are asked about as ever.
        let planned = matches!(self.exec.mode, Mode::Plan | Mode::Apply)
            && call.effect.class != EffectClass::Read;
        match decision.outcome {
            Outcome::Allow => Verdict::Allow,
            Outcome::RequireApproval if planned => Verdict::Allow,
            Outcome::Deny => Verdict::Deny(Denial::new(
                "PolicyDenied",
                format!(
                    "{} was denied by the policy: {}",
                    call.function,
                    decision.message()
                ),
            )),
            Outcome::RequireApproval => {
                let request = Request::new(&self.exec, call, effect, decision.reasons);
                let reason = format!(
                    "approval {} needed: {}",
                    request.id,
                    request.reasons.join("; ")
                );
                let inner = self.inner.clone();
                let suspend_after = inner
                    .suspend_after
                    .filter(|_| self.exec.resumable && inner.store.is_some());
                Verdict::Hold {
                    reason,
                    decision: Box::pin(async move {
                        approval::decide(
                            approval::Waiting {
                                store: inner.store.as_ref(),
                                ask: inner.ask.as_ref(),
                                notice: inner.notice.as_ref(),
                                timeout: inner.timeout,
                                poll: inner.poll,
                                suspend_after,
                            },
                            request,
                        )
                        .await
                    }),
                }
            }
        }
    }
}
