//! What calls cost: USD per million tokens, by model name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::Usage;

/// Prices of one model, USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cached input tokens; the input price when absent.
    #[serde(default)]
    pub cached: Option<f64>,
}

impl Price {
    pub fn cost(&self, u: &Usage) -> f64 {
        let cached = u.cached_tokens.min(u.input_tokens);
        let fresh = u.input_tokens - cached;
        (fresh as f64 * self.input
            + cached as f64 * self.cached.unwrap_or(self.input)
            + u.output_tokens as f64 * self.output)
            / 1e6
    }
}

/// Defaults as published by the providers (list prices, standard tier). Override or extend them
/// in the config (`isola.agent.prices`).
const DEFAULTS: &[(&str, f64, f64, f64)] = &[
    ("gpt-4o-mini", 0.15, 0.60, 0.075),
    ("gpt-4o", 2.50, 10.00, 1.25),
    ("gpt-4.1-nano", 0.10, 0.40, 0.025),
    ("gpt-4.1-mini", 0.40, 1.60, 0.10),
    ("gpt-4.1", 2.00, 8.00, 0.50),
    ("gpt-5-nano", 0.05, 0.40, 0.005),
    ("gpt-5-mini", 0.25, 2.00, 0.025),
    ("gpt-5", 1.25, 10.00, 0.125),
    ("o4-mini", 1.10, 4.40, 0.275),
    ("o3-mini", 1.10, 4.40, 0.55),
    ("o3", 2.00, 8.00, 0.50),
    ("claude-opus-4", 15.00, 75.00, 1.50),
    ("claude-sonnet-4", 3.00, 15.00, 0.30),
    ("claude-3-7-sonnet", 3.00, 15.00, 0.30),
    ("claude-3-5-sonnet", 3.00, 15.00, 0.30),
    ("claude-haiku-4", 1.00, 5.00, 0.10),
    ("claude-3-5-haiku", 0.80, 4.00, 0.08),
    ("claude-3-haiku", 0.25, 1.25, 0.03),
    ("gemini-2.5-pro", 1.25, 10.00, 0.31),
    ("gemini-2.5-flash-lite", 0.10, 0.40, 0.025),
    ("gemini-2.5-flash", 0.30, 2.50, 0.075),
    ("gemini-2.0-flash-lite", 0.075, 0.30, 0.075),
    ("gemini-2.0-flash", 0.10, 0.40, 0.025),
];

/// Model name (or name prefix) → price. The longest matching prefix wins, so
/// `claude-sonnet-4-5-20250929` is priced as `claude-sonnet-4`.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceTable {
    entries: BTreeMap<String, Price>,
}

impl Default for PriceTable {
    fn default() -> Self {
        let entries = DEFAULTS
            .iter()
            .map(|&(m, input, output, cached)| {
                (
                    m.to_string(),
                    Price {
                        input,
                        output,
                        cached: Some(cached),
                    },
                )
            })
            .collect();
        Self { entries }
    }
}

impl PriceTable {
    /// An empty table: every cost is unknown.
    pub fn empty() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    /// Add or replace prices.
    pub fn extend(&mut self, prices: impl IntoIterator<Item = (String, Price)>) {
        self.entries.extend(prices);
    }

    /// The price of `model`: exact name first, then the longest prefix. A vendor path
    /// (`openai/gpt-4o` on OpenRouter) is looked up without it too.
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        let find = |m: &str| {
            self.entries.get(m).or_else(|| {
                self.entries
                    .iter()
                    .filter(|(k, _)| m.starts_with(k.as_str()))
                    .max_by_key(|(k, _)| k.len())
                    .map(|(_, p)| p)
            })
        };
        find(model).or_else(|| model.rsplit_once('/').and_then(|(_, m)| find(m)))
    }

    /// The cost of a call in USD, when the model's price is known.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        self.lookup(model).map(|p| p.cost(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(model: &str, usage: (u64, u64, u64), expect: Option<f64>) {
        let t = PriceTable::default();
        let u = Usage {
            input_tokens: usage.0,
            output_tokens: usage.1,
            cached_tokens: usage.2,
        };
        let got = t.cost(model, &u);
        match (got, expect) {
            (Some(g), Some(e)) => assert!((g - e).abs() < 1e-9, "{model}: {g} != {e}"),
            _ => assert_eq!(got, expect, "{model}"),
        }
    }

    #[test]
    fn costs() {
        check("gpt-4o", (1_000_000, 0, 0), Some(2.5));
        check(
            "gpt-4o-mini-2024-07-18",
            (1_000_000, 1_000_000, 0),
            Some(0.75),
        );
        check("gpt-4o", (1_000_000, 0, 500_000), Some(1.25 + 0.625));
        check(
            "claude-sonnet-4-5-20250929",
            (100_000, 10_000, 0),
            Some(0.3 + 0.15),
        );
        check("openai/gpt-4.1-mini", (1_000_000, 0, 0), Some(0.4));
        check("llama3.1:8b", (1000, 1000, 0), None);
    }

    #[test]
    fn overrides_win() {
        let mut t = PriceTable::default();
        t.extend([(
            "gpt-4o".to_string(),
            Price {
                input: 1.0,
                output: 1.0,
                cached: None,
            },
        )]);
        let u = Usage {
            input_tokens: 1_000_000,
            output_tokens: 0,
            cached_tokens: 1_000_000,
        };
        assert_eq!(t.cost("gpt-4o", &u), Some(1.0));
    }
}
