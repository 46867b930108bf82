//! What a policy says: a [`Decision`].

use std::fmt;

use serde::Serialize;

/// The outcome of a decision, strictest first: deny beats approval beats allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The call (or plan) goes ahead.
    Allow,
    /// A person must approve it first.
    RequireApproval,
    /// It does not happen.
    Deny,
}

impl Outcome {
    /// The name in JSON and messages: `allow`, `require_approval`, `deny`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::RequireApproval => "require_approval",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rules of package `isola` that Isola reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `data.isola.deny`, a set of reasons.
    Deny,
    /// `data.isola.require_approval`, a set of reasons.
    RequireApproval,
    /// `data.isola.allow`, a boolean.
    Allow,
}

impl Rule {
    /// The rule's name in package `isola`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::RequireApproval => "require_approval",
            Self::Allow => "allow",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule that fired: a member of `deny` or `require_approval`, or `allow` being true.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fired {
    /// Which rule.
    pub rule: Rule,
    /// The reason it gave; `None` for `allow`, which gives none.
    pub message: Option<String>,
}

/// What the policy decided about one call or plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Allow, require approval, or deny.
    pub outcome: Outcome,
    /// Why this outcome: the messages of the rules that decided it (the `deny` reasons for a
    /// denial, the `require_approval` ones for an approval). Empty for a plain allow.
    pub reasons: Vec<String>,
    /// Every rule that fired, deciding or not (a `require_approval` outvoted by a `deny` is
    /// here too), in the order deny, require_approval, allow.
    pub fired: Vec<Fired>,
    /// The policy's error, in full (with the source line), when evaluation failed; the
    /// outcome is then [`Outcome::Deny`] and the reason starts with `policy error:`.
    pub error: Option<String>,
}

impl Decision {
    /// A denial because evaluation failed: fail closed.
    pub(crate) fn failed(short: String, full: String) -> Self {
        Self {
            outcome: Outcome::Deny,
            reasons: vec![format!("policy error: {short}")],
            fired: Vec::new(),
            error: Some(full),
        }
    }

    /// Whether the call may go ahead without anyone's approval.
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// The reasons as one line, for an error message or a record: `a; b`.
    pub fn message(&self) -> String {
        self.reasons.join("; ")
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.outcome.as_str())?;
        if !self.reasons.is_empty() {
            write!(f, ": {}", self.message())?;
        }
        Ok(())
    }
}
