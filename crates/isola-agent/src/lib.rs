//! Isola's own agent: a prompt goes to a model that has the user's MCP tools, the model's tool
//! calls are carried out, errors go back to it to fix, and its answer comes back.
//!
//! Three [`Mode`]s over the same tools:
//!
//! - **code** (default): the model sees Code Mode (`execute`, with the typed API embedded, or
//!   `search`/`describe`/`execute` for a large API, exactly as `isola mcp` shows them) and writes
//!   the script itself;
//! - **two-step**: the agent model describes the function it wants (`run_task`); the code model
//!   writes it from that description and the API;
//! - **tools**: classic JSON tool calling, one MCP tool per JSON tool: the baseline.
//!
//! The debug loop: a failed execution goes back to the model as the tool result (kind, message,
//! TypeScript position, code frame, console so far, hint), up to `maxAttempts` failures in a
//! row. A model that sends the same failing script again, or gets the same error twice in a
//! row, is stopped early and the [`Transcript`] says why; so is a run that reaches one of its
//! [`RunLimits`] (LLM calls, executions, tokens, cost).
//!
//! ```no_run
//! # async fn demo(engine: std::sync::Arc<isola_engine::Engine>, hub: std::sync::Arc<isola_mcp::McpHub>) -> Result<(), Box<dyn std::error::Error>> {
//! use isola_agent::{Agent, AgentConfig, AgentEvent};
//! let mut config = AgentConfig::default();
//! config.model = Some("openai:gpt-4o-mini".into());
//! let models = config.build(&|k| std::env::var(k).ok())?;
//! let agent = Agent::new(engine, hub, config, models);
//! let mut history = Vec::new();
//! let transcript = agent
//!     .run(&mut history, "How many files are in data/?", &mut |e| if let AgentEvent::Text(t) = e { print!("{t}") })
//!     .await;
//! eprintln!("\n{}", transcript.summary.line());
//! # Ok(()) }
//! ```
//!
//! **Architecture Invariant:** the agent reaches tools only through the engine (code modes) or
//! the same [`isola_engine::Tools`] the engine uses (tools mode); models never see a credential,
//! only tool results.

mod config;
mod prompts;
mod run;
mod transcript;

pub use config::{
    AgentConfig, CacheSettings, ConfigError, ENV_CODE_MODEL, ENV_MODEL, Mode, Models,
    RetrySettings, RunLimits,
};
pub use prompts::{RUN_TASK, extract_code};
pub use run::{Agent, AgentEvent, ExecHook, Executed};
pub use transcript::{Step, Stop, StopReason, Summary, Transcript, thousands};
