//! What a policy reads as `input`: one call ([`CallInput`]) or a whole plan ([`PlanInput`]).
//!
//! The field names are the contract with policy authors (see the crate docs); renaming one
//! breaks their policies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a tool call does to the world, as the tool's annotations (or the configuration) say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Reads only (`"read"`).
    Read,
    /// Changes something that can be changed back (`"write"`).
    Write,
    /// Deletes or overwrites what cannot be got back (`"destructive"`).
    Destructive,
}

impl Effect {
    /// The name policies see: `"read"`, `"write"` or `"destructive"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Destructive => "destructive",
        }
    }
}

/// How the execution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Calls are sent as the script makes them (`"live"`).
    Live,
    /// Calls are recorded, not sent: the script is building a plan (`"plan"`).
    Plan,
    /// An approved plan is being carried out (`"apply"`).
    Apply,
}

impl Mode {
    /// The name policies see: `"live"`, `"plan"` or `"apply"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Plan => "plan",
            Self::Apply => "apply",
        }
    }
}

/// The execution a call or plan belongs to: `input.execution`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// The execution's id.
    pub id: String,
    /// The session it runs in; `null` for an execution outside any session.
    pub session: Option<String>,
    /// Who asked for it (a user, a token's name, an agent).
    pub principal: String,
    /// Live, plan or apply.
    pub mode: Mode,
}

/// The calls made so far in an execution (or the steps of a plan): `input.counts`,
/// `input.plan.counts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Calls per function (`"fs.writeFile": 2`); a function not called is absent.
    pub function: BTreeMap<String, u64>,
    /// Calls per effect; all three keys are always present.
    pub effect: EffectCounts,
}

impl Counts {
    /// Counts one more call of `function`, whose effect is `effect`.
    pub fn add(&mut self, function: &str, effect: Effect) {
        match self.function.get_mut(function) {
            Some(n) => *n += 1,
            None => {
                self.function.insert(function.to_string(), 1);
            }
        }
        match effect {
            Effect::Read => self.effect.read += 1,
            Effect::Write => self.effect.write += 1,
            Effect::Destructive => self.effect.destructive += 1,
        }
    }
}

/// Calls per effect: `input.counts.effect`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectCounts {
    /// Calls that only read.
    pub read: u64,
    /// Calls that write.
    pub write: u64,
    /// Destructive calls.
    pub destructive: u64,
}

/// The call being decided: `input.call`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// The MCP server's name in the configuration.
    pub server: String,
    /// The MCP tool name.
    pub tool: String,
    /// The name the script used: `fs.writeFile`.
    pub function: String,
    /// The arguments, as checked against the tool's input schema.
    pub arguments: Value,
    /// What the call does.
    pub effect: Effect,
}

/// The input for deciding one call ([`crate::Policy::decide_call`]).
///
/// ```json
/// {"call": {"server": "fs", "tool": "write_file", "function": "fs.writeFile",
///           "arguments": {"path": "/srv/out/a.txt"}, "effect": "write"},
///  "execution": {"id": "ex_1", "session": null, "principal": "ana", "mode": "live"},
///  "counts": {"function": {"fs.writeFile": 2}, "effect": {"read": 3, "write": 2, "destructive": 0}}}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallInput {
    /// The call.
    pub call: Call,
    /// Its execution.
    pub execution: Execution,
    /// The calls the execution made before this one.
    pub counts: Counts,
}

/// One step of a plan: a call recorded in plan mode, to be made on apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    /// Its place in the plan: 0 for the first call the script made.
    pub seq: u32,
    /// The name the script used: `fs.deleteFile`.
    pub function: String,
    /// The MCP server's name in the configuration.
    pub server: String,
    /// The MCP tool name.
    pub tool: String,
    /// The arguments.
    pub arguments: Value,
    /// What the call does.
    pub effect: Effect,
}

/// A plan: `input.plan`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The plan's id.
    pub id: String,
    /// Its steps, in the order they would run.
    pub steps: Vec<PlanStep>,
    /// The steps counted per function and effect.
    pub counts: Counts,
}

impl Plan {
    /// A plan of these steps, with `counts` computed from them.
    pub fn new(id: impl Into<String>, steps: Vec<PlanStep>) -> Self {
        let mut counts = Counts::default();
        for step in &steps {
            counts.add(&step.function, step.effect);
        }
        Self {
            id: id.into(),
            steps,
            counts,
        }
    }
}

/// The input for deciding a whole plan ([`crate::Policy::decide_plan`]). It has no `call` key,
/// so a rule about `input.call` does not fire on a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    /// The plan.
    pub plan: Plan,
    /// The execution that made it.
    pub execution: Execution,
}
