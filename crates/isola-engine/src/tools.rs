//! Where tool calls go. The MCP hub is the real source; anything else that can list tools and
//! call them (an in-process binding set, a test double) can stand in.

use futures::future::BoxFuture;
use isola_typegen::ServerSpec;
use serde_json::{Map, Value};

use crate::api::tool_spec;

/// A failed call, as the machinery saw it (not an `isError` result: those are `Ok`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

/// A source of tools: lists them for the API and carries out calls.
pub trait Tools: Send + Sync + 'static {
    /// Every server's tools, for generating the API.
    fn servers(&self) -> Vec<ServerSpec>;
    /// Call one tool. The result is an MCP `CallToolResult` as JSON (`content`,
    /// `structuredContent`, `isError`).
    fn call<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        args: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>>;

    /// Call one tool on behalf of an execution: `meta` says which and which of its calls (a
    /// source passes the idempotency key upstream, or keeps per-session data). The default
    /// ignores it.
    fn call_with<'a>(
        &'a self,
        meta: CallMeta<'a>,
        server: &'a str,
        tool: &'a str,
        args: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        let _ = meta;
        self.call(server, tool, args)
    }
}

/// Who makes a call: set when the execution has an id ([`crate::ExecOptions::execution_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallMeta<'a> {
    pub execution: &'a str,
    pub session: Option<&'a str>,
    /// The call's place in the execution (0 first): with the id, a key stable across replays.
    pub seq: u32,
}

impl CallMeta<'_> {
    /// The idempotency key of the call: `<execution id>:<seq>`.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.execution, self.seq)
    }
}

/// The `_meta` key an upstream server finds the idempotency key under.
pub const IDEMPOTENCY_KEY_META: &str = "io.isola/idempotency-key";

impl Tools for isola_mcp::McpHub {
    fn servers(&self) -> Vec<ServerSpec> {
        isola_mcp::McpHub::servers(self)
            .into_iter()
            // A server that never came up has no API; a script naming it gets a ReferenceError
            // with a hint.
            .filter(|s| !s.tools.is_empty())
            .map(|s| ServerSpec {
                name: s.name.clone(),
                tools: s
                    .tools
                    .iter()
                    .filter_map(|t| serde_json::to_value(t).ok())
                    .map(|t| tool_spec(&t))
                    .collect(),
            })
            .collect()
    }

    fn call<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        args: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let result = isola_mcp::McpHub::call(self, server, tool, args)
                .await
                .map_err(|e| ToolError(e.to_string()))?;
            serde_json::to_value(&result).map_err(|e| ToolError(format!("unreadable result: {e}")))
        })
    }

    fn call_with<'a>(
        &'a self,
        meta: CallMeta<'a>,
        server: &'a str,
        tool: &'a str,
        args: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let mut m = Map::new();
            m.insert(
                IDEMPOTENCY_KEY_META.into(),
                Value::String(meta.idempotency_key()),
            );
            let result = isola_mcp::McpHub::call_with_meta(self, server, tool, args, Some(m))
                .await
                .map_err(|e| ToolError(e.to_string()))?;
            serde_json::to_value(&result).map_err(|e| ToolError(format!("unreadable result: {e}")))
        })
    }
}
