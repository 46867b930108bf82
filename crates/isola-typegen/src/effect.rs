//! What calling a tool does to the world: its effect class, from the MCP tool annotations.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The effect class of a tool, strictest last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EffectClass {
    /// No side effects (`readOnlyHint: true`).
    Read,
    /// Changes something; the default for a tool that says nothing.
    Write,
    /// May destroy or overwrite something (`destructiveHint: true`).
    Destructive,
}

impl EffectClass {
    /// Every class, mildest first.
    pub const ALL: [EffectClass; 3] = [
        EffectClass::Read,
        EffectClass::Write,
        EffectClass::Destructive,
    ];

    /// `read`, `write`, `destructive`.
    pub fn as_str(self) -> &'static str {
        match self {
            EffectClass::Read => "read",
            EffectClass::Write => "write",
            EffectClass::Destructive => "destructive",
        }
    }

    /// The class named `name`.
    pub fn parse(name: &str) -> Option<EffectClass> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for EffectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tool's effect: its class and the two flags MCP's annotations carry besides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolEffect {
    pub class: EffectClass,
    /// Calling it twice with the same arguments does no more than once (`idempotentHint`).
    pub idempotent: bool,
    /// It reaches beyond a closed set of things (`openWorldHint`, `true` unless said otherwise).
    pub open_world: bool,
}

impl ToolEffect {
    /// The effect MCP annotations describe. Annotations are hints from the server (the config
    /// can override them before they get here): `readOnlyHint: true` is a read, else
    /// `destructiveHint: true` is destructive, else (no annotation included) a write.
    pub fn from_annotations(annotations: Option<&Value>) -> ToolEffect {
        let hint = |name: &str| {
            annotations
                .and_then(|a| a.get(name))
                .and_then(Value::as_bool)
        };
        let class = if hint("readOnlyHint") == Some(true) {
            EffectClass::Read
        } else if hint("destructiveHint") == Some(true) {
            EffectClass::Destructive
        } else {
            EffectClass::Write
        };
        ToolEffect {
            class,
            idempotent: class == EffectClass::Read || hint("idempotentHint") == Some(true),
            open_world: hint("openWorldHint") != Some(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classes_follow_the_hints() {
        let of = |a: Value| ToolEffect::from_annotations(Some(&a));
        assert_eq!(ToolEffect::from_annotations(None).class, EffectClass::Write);
        assert_eq!(of(json!({})).class, EffectClass::Write);
        assert_eq!(of(json!({"readOnlyHint": true})).class, EffectClass::Read);
        assert_eq!(
            of(json!({"readOnlyHint": true, "destructiveHint": true})).class,
            EffectClass::Read,
            "destructiveHint only means something for a tool that is not read-only"
        );
        assert_eq!(
            of(json!({"destructiveHint": true})).class,
            EffectClass::Destructive
        );
        assert_eq!(
            of(json!({"destructiveHint": "yes"})).class,
            EffectClass::Write
        );
        let e = of(json!({"idempotentHint": true, "openWorldHint": false}));
        assert!(e.idempotent && !e.open_world);
        assert!(ToolEffect::from_annotations(None).open_world);
        assert_eq!(
            EffectClass::parse("destructive"),
            Some(EffectClass::Destructive)
        );
        assert_eq!(EffectClass::parse("delete"), None);
    }
}
