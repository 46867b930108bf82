//! The MCP client side of Isola: [`McpHub`] keeps one connection per server of the
//! `mcpServers` config ([`isola_config`]), lists their tools and carries out tool calls.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use isola_config::load_config;
//! use isola_mcp::McpHub;
//!
//! let config = load_config(std::path::Path::new("isola.json"))?;
//! let hub = McpHub::connect(&config).await;
//! for server in hub.servers() {
//!     println!("{} ({}): {:?}, {} tools", server.name, server.transport, server.state, server.tools.len());
//! }
//! let mut args = serde_json::Map::new();
//! args.insert("message".into(), "hi".into());
//! let result = hub.call("everything", "echo", args).await?;
//! println!("{:?}", result.content);
//! hub.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! **Architecture Invariant:** `env` values and HTTP header values (where credentials go) live
//! only here and in the server processes; they never appear in [`ServerInfo`], in messages or
//! in `Debug` output. The sandbox never sees them: it only gets tool results.

pub mod framing;
pub mod http;
pub mod hub;
pub mod stdio;

pub use hub::{CallError, HubEvent, MAX_TOOL_PAGES, McpHub, ServerInfo, ServerState, SkippedTool};
