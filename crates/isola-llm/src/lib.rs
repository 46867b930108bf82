//! LLM provider clients behind one gateway, for Isola's own agent (`isola run`, `isola chat`).
//!
//! Three wire formats: OpenAI Chat Completions (and every compatible server: Ollama, vLLM,
//! llama.cpp server, LM Studio, OpenRouter), Anthropic Messages and Google Gemini, each streamed
//! or not, with tool calls and usage. The conversation is provider-neutral ([`ChatRequest`],
//! [`Message`]); [`Gateway::chat`] sends it along a fallback chain of [`Route`]s with retries
//! that honour `Retry-After`, an optional exact-match [`ResponseCache`], and one [`CallRecord`]
//! per attempt: provider, model, tokens in/out/cached, latency, cost from the [`PriceTable`],
//! outcome.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//! use isola_llm::{ChatRequest, Gateway, GatewaySettings, Message, Providers};
//!
//! let env = |k: &str| std::env::var(k).ok();
//! let providers = Providers { configured: &BTreeMap::new(), env: &env };
//! let chain = vec![providers.route("openai:gpt-4o-mini")?, providers.route("anthropic:claude-haiku-4-5")?];
//! let gateway = Gateway::new(GatewaySettings::default())?;
//! let request = ChatRequest {
//!     system: "Answer briefly.".into(),
//!     messages: vec![Message::User { content: "What is 6 × 7?".into() }],
//!     ..Default::default()
//! };
//! let reply = gateway.chat("agent", &chain, &request, &mut |t| print!("{t}")).await.map_err(|f| f.error)?;
//! println!("\n{} tokens in, cost {:?}", reply.response.usage.input_tokens, reply.calls[0].cost_usd);
//! # Ok(()) }
//! ```
//!
//! **Architecture Invariant:** API keys live in [`Provider`] only (its `Debug` redacts them);
//! they are never in a [`CallRecord`], an error message or the cache.

mod anthropic;
mod cache;
mod error;
mod gateway;
mod gemini;
mod openai;
mod price;
mod provider;
mod types;
mod wire;

pub use cache::ResponseCache;
pub use error::{CallError, LlmError, Outcome};
pub use gateway::{CallRecord, Failure, Gateway, GatewaySettings, Reply, RetryPolicy, Streamed};
pub use price::{Price, PriceTable};
pub use provider::{
    CallLimits, Provider, ProviderKind, ProviderSettings, Providers, Route, is_local_url,
};
pub use types::{ChatRequest, ChatResponse, Finish, Message, ToolCall, ToolChoice, ToolDef, Usage};
pub use wire::{Timeouts, list_models, parse as parse_response, request as build_request};
