//! Isola as an MCP server: Code Mode for any MCP host.
//!
//! An [`IsolaServer`] fronts every configured MCP server (through an [`isola_engine::Engine`])
//! with a few tools of its own:
//!
//! - `execute`: a TypeScript script → its result, console output and a summary of its calls; a
//!   failure rendered for a model to fix (see [`isola_codemode::render`]).
//! - `search` and `describe`, when the API is too large to embed: keywords → the best-matching
//!   functions as one-line signatures (BM25, see [`isola_codemode::search`]); names → full
//!   declarations.
//!
//! A small API (at most [`ViewOptions::embed_max_tokens`]) is embedded in `execute`'s
//! description instead, and `execute` is the only tool ([`Mode`]). What the model sees is the
//! same [`View`] Isola's own agent shows its models (crate `isola-codemode`). The
//! declarations are also resources (`isola://types`, `isola://types/<namespace>`). While a
//! script runs, finished calls and console lines go out as progress notifications when the host
//! asked for progress; a cancelled request stops the script. When an upstream server's tools
//! change ([`IsolaServer::watch_hub`]), the API is rebuilt and hosts are told.
//!
//! It serves over stdio ([`serve_stdio`]) or Streamable HTTP ([`http::HttpServer`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use isola_server::{IsolaServer, ViewOptions};
//! let config = isola_config::load_config("isola.json".as_ref())?;
//! let hub = Arc::new(isola_mcp::McpHub::connect(&config).await);
//! let engine = isola_engine::Engine::new(hub.clone(), isola_worker::Backend::InProcess, config.settings.limits.clone());
//! let server = IsolaServer::new(Arc::new(engine), ViewOptions::default());
//! server.watch_hub(&hub);
//! isola_server::serve_stdio(server).await?;
//! # Ok(()) }
//! ```

pub mod http;
mod render;
mod server;

use std::net::SocketAddr;

use rmcp::ServiceExt;

pub use isola_codemode::{Mode, View, ViewOptions};
pub use server::{Elicited, Elicitor, ExecContext, ExecHook, IsolaServer, Resumption, TYPES_URI};

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without a token.
    #[error(
        "refusing to serve MCP on {addr} without authentication: it is reachable from other machines\nhint: pass --token (or set ISOLA_MCP_TOKEN), or --allow-unauthenticated if the network is trusted"
    )]
    Unauthenticated { addr: SocketAddr },
    /// The token is empty.
    #[error("the bearer token is empty\nhint: pass a non-empty --token (or ISOLA_MCP_TOKEN)")]
    EmptyToken,
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The stdio transport failed.
    #[error("MCP over stdio failed: {0}")]
    Stdio(String),
}

/// Serve over standard input and output until the host closes them. Requests are read with
/// every buffer bounded ([`isola_mcp::stdio::LineTransport`]): one over 16 MiB, or nesting
/// too deep to parse, is answered with a JSON-RPC error naming the size (or depth) and the
/// limit, and the next ones are served.
pub async fn serve_stdio(server: IsolaServer) -> Result<(), ServeError> {
    let transport = isola_mcp::stdio::LineTransport::new(tokio::io::stdin(), tokio::io::stdout());
    let running = server
        .serve(transport)
        .await
        .map_err(|e| ServeError::Stdio(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| ServeError::Stdio(e.to_string()))?;
    Ok(())
}
