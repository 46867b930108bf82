//! The provider-neutral conversation: what the agent builds and what every wire format is
//! converted to and from.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message of a conversation. The system prompt is not a message: it is
/// [`ChatRequest::system`], because every provider places it differently.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "camelCase")]
pub enum Message {
    User {
        content: String,
    },
    Assistant {
        #[serde(default)]
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "toolCalls")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, answering [`ToolCall::id`].
    Tool {
        #[serde(rename = "callId")]
        call_id: String,
        name: String,
        content: String,
        #[serde(
            default,
            skip_serializing_if = "std::ops::Not::not",
            rename = "isError"
        )]
        is_error: bool,
    },
}

/// A tool call as the model made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments exactly as the model sent them: JSON text, possibly malformed.
    pub arguments: String,
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// One request to a model. The model itself is chosen by the [`crate::Route`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequest {
    pub system: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef>,
    /// Cap on the answer's tokens; when unset, the provider's
    /// [`crate::CallLimits::max_output_tokens`] is sent (every request carries a cap, so a model
    /// that never stops cannot run until its context is full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Whether the model may, must or must not call a tool; the provider's default (auto) when
    /// unset. Sent only with tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// Whether the model may (`auto`), must (`required`) or must not (`none`) call a tool.
///
/// Each wire format says it its own way: OpenAI's `tool_choice` (`"required"`), Anthropic's
/// `tool_choice.type` (`"any"`), Gemini's `toolConfig.functionCallingConfig.mode` (`"ANY"`).
/// With `required`, llama.cpp's server constrains the output to tool calls with a grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    Auto,
    Required,
    None,
}

impl ToolChoice {
    pub const ALL: [ToolChoice; 3] = [ToolChoice::Auto, ToolChoice::Required, ToolChoice::None];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolChoice::Auto => "auto",
            ToolChoice::Required => "required",
            ToolChoice::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<ToolChoice> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Finish {
    /// A complete answer.
    Stop,
    /// The model wants tool results.
    ToolCalls,
    /// The output token cap was hit.
    Length,
    /// Anything else the provider said (`content_filter`, `SAFETY`, ...).
    Other(String),
}

impl Finish {
    /// `stop`, `toolCalls`, `length`, or the provider's own word.
    pub fn as_str(&self) -> &str {
        match self {
            Finish::Stop => "stop",
            Finish::ToolCalls => "toolCalls",
            Finish::Length => "length",
            Finish::Other(s) => s,
        }
    }
}

/// Token counts of one call, normalised across providers: `input_tokens` includes the cached
/// ones (OpenAI and Gemini count them that way; Anthropic's separate counts are added up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
    }
}

/// A model's complete answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatResponse {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub finish: Finish,
    /// The model that answered, as the provider named it.
    pub model: String,
}

impl ChatResponse {
    /// The answer as the assistant message to append to the conversation.
    pub fn to_message(&self) -> Message {
        Message::Assistant {
            content: self.text.clone(),
            tool_calls: self.tool_calls.clone(),
        }
    }
}
