//! What a run leaves behind: the conversation, every model call and execution, why it stopped,
//! and the totals (`isola run --json` prints it whole).

use std::fmt::Write as _;

use isola_llm::{CallRecord, Finish, Message, Outcome, ToolCall, Usage};
use isola_protocol::ExecRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Mode;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    pub prompt: String,
    pub mode: Mode,
    /// The model's final answer; `None` when the run stopped without one.
    pub answer: Option<String>,
    pub stop: Stop,
    /// The system prompt of the agent model.
    pub system: String,
    /// The whole conversation, earlier turns of a chat included.
    pub messages: Vec<Message>,
    /// What happened, in order.
    pub steps: Vec<Step>,
    /// Every attempt at every model call (retries and fallbacks included).
    pub llm_calls: Vec<CallRecord>,
    pub summary: Summary,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Step {
    /// A model answered.
    #[serde(rename_all = "camelCase")]
    Llm {
        role: String,
        route: String,
        text: String,
        tool_calls: Vec<ToolCall>,
        usage: Usage,
        /// Why it stopped: `stop`, `toolCalls`, `length` (cut at the output-token cap)...
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finish: Option<Finish>,
    },
    /// A script ran (code and two-step modes).
    #[serde(rename_all = "camelCase")]
    Execution {
        attempt: u32,
        code: String,
        record: Box<ExecRecord>,
    },
    /// Any other tool call: an MCP tool (tools mode), `search`, `describe`, or a call that could
    /// not be carried out (malformed arguments, unknown tool).
    #[serde(rename_all = "camelCase")]
    Tool {
        name: String,
        arguments: Value,
        ok: bool,
        result: String,
    },
}

/// Why the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StopReason {
    /// The model answered.
    Answered,
    /// `limits.maxLlmCalls` was reached.
    LlmCalls,
    /// `limits.maxExecutions` was reached.
    Executions,
    /// `limits.maxTokens` was reached.
    Tokens,
    /// `limits.maxCostUsd` was reached.
    Cost,
    /// `maxAttempts` failed turns in a row.
    Attempts,
    /// The same error in two turns in a row.
    SameError,
    /// Code (or a tool call) that already failed in an earlier turn, sent again.
    SameCode,
    /// The model's answer was cut at the output-token cap, also when asked again with twice
    /// the cap.
    Truncated,
    /// The models could not be reached (after retries and fallbacks), or a stream was cut.
    LlmFailed,
}

impl StopReason {
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            StopReason::LlmCalls | StopReason::Executions | StopReason::Tokens | StopReason::Cost
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    pub reason: StopReason,
    /// Says what happened and, for a limit, which setting raises it.
    pub message: String,
}

/// The totals of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Model requests answered (round trips).
    pub llm_calls: u32,
    /// HTTP attempts, failed ones included.
    pub llm_attempts: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_usd: f64,
    /// Some model had no price: the cost is a lower bound.
    pub cost_incomplete: bool,
    /// Scripts run (code modes) or tool calls made (tools mode).
    pub executions: u32,
    pub failed_executions: u32,
    /// Executions that followed a failure (the debug loop at work).
    pub debug_retries: u32,
    /// Model attempts that failed and were retried or passed to a fallback.
    pub provider_retries: u32,
    pub wall_ms: f64,
}

impl Summary {
    /// Count the attempts of one model request.
    pub fn add_calls(&mut self, calls: &[CallRecord]) {
        for c in calls {
            self.llm_attempts += u32::from(c.outcome != Outcome::Cached);
            self.input_tokens += c.usage.input_tokens;
            self.output_tokens += c.usage.output_tokens;
            self.cached_tokens += c.usage.cached_tokens;
            match c.cost_usd {
                Some(cost) => self.cost_usd += cost,
                None => self.cost_incomplete = true,
            }
        }
        let failed = calls.iter().filter(|c| !c.outcome.is_success()).count() as u32;
        // A failed attempt followed by another one was retried (the last failure ended the call).
        let answered = calls.last().is_some_and(|c| c.outcome.is_success());
        self.provider_retries += if answered {
            failed
        } else {
            failed.saturating_sub(1)
        };
    }

    /// `2 LLM calls · 4,210 tokens in (0 cached), 180 out · $0.0012 · 2 executions (1 failed) · 1 retry · 3.4 s`
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} · {} tokens in",
            plural(self.llm_calls as u64, "LLM call", "LLM calls"),
            thousands(self.input_tokens)
        );
        if self.cached_tokens > 0 {
            let _ = write!(s, " ({} cached)", thousands(self.cached_tokens));
        }
        let _ = write!(s, ", {} out · ", thousands(self.output_tokens));
        if self.cost_incomplete && self.cost_usd == 0.0 {
            s.push_str("cost unknown");
        } else {
            let _ = write!(
                s,
                "${:.4}{}",
                self.cost_usd,
                if self.cost_incomplete {
                    "+ (some models unpriced)"
                } else {
                    ""
                }
            );
        }
        let _ = write!(
            s,
            " · {}",
            plural(self.executions as u64, "execution", "executions")
        );
        if self.failed_executions > 0 {
            let _ = write!(s, " ({} failed)", self.failed_executions);
        }
        let retries = self.debug_retries + self.provider_retries;
        if retries > 0 {
            let _ = write!(s, " · {}", plural(retries as u64, "retry", "retries"));
            if self.provider_retries > 0 && self.debug_retries > 0 {
                let _ = write!(
                    s,
                    " ({} fix-up, {} provider)",
                    self.debug_retries, self.provider_retries
                );
            } else if self.provider_retries > 0 {
                s.push_str(" (provider)");
            }
        }
        let _ = write!(s, " · {:.1} s", self.wall_ms / 1000.0);
        s
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let s = Summary {
            llm_calls: 2,
            input_tokens: 4210,
            output_tokens: 180,
            cost_usd: 0.00123,
            executions: 2,
            failed_executions: 1,
            debug_retries: 1,
            wall_ms: 3400.0,
            ..Default::default()
        };
        assert_eq!(
            s.line(),
            "2 LLM calls · 4,210 tokens in, 180 out · $0.0012 · 2 executions (1 failed) · 1 retry · 3.4 s"
        );
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
