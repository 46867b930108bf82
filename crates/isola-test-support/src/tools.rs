//! Tool sources for the engine that need no MCP server.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use isola_engine::{ToolError, Tools};
use isola_typegen::{ServerSpec, ToolSpec};
use serde_json::{Map, Value, json};

/// A tool description with a schema and nothing else.
pub fn tool(name: &str, description: &str, schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        title: None,
        description: Some(description.into()),
        input_schema: schema,
        output_schema: None,
        annotations: None,
    }
}

/// A text `CallToolResult`.
pub fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

/// Tools from a list that tests can change; a call answers with its server, tool and arguments
/// as JSON text, or, for a tool called `fail`, with an `isError` result saying "it failed".
pub struct FakeTools {
    pub servers: Mutex<Vec<ServerSpec>>,
}

impl FakeTools {
    pub fn new(servers: Vec<ServerSpec>) -> Arc<Self> {
        Arc::new(FakeTools {
            servers: Mutex::new(servers),
        })
    }
}

impl Tools for FakeTools {
    fn servers(&self) -> Vec<ServerSpec> {
        match self.servers.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn call<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        args: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            if tool == "fail" {
                return Ok(
                    json!({"content": [{"type": "text", "text": "it failed"}], "isError": true}),
                );
            }
            let text = json!({"server": server, "tool": tool, "args": args}).to_string();
            Ok(text_result(&text))
        })
    }
}

/// Tools that answer at once, for the cost of the machinery alone: [`InstantTools::NONE`] (no
/// servers), or [`InstantTools::NOOP`] (one server `bench` with one tool `noop`, for the engine's
/// own cost per call).
pub struct InstantTools {
    noop: bool,
}

impl InstantTools {
    pub const NONE: Self = Self { noop: false };
    pub const NOOP: Self = Self { noop: true };
}

impl Tools for InstantTools {
    fn servers(&self) -> Vec<ServerSpec> {
        if !self.noop {
            return Vec::new();
        }
        vec![ServerSpec {
            name: "bench".into(),
            tools: vec![tool("noop", "Answers at once.", json!({"type": "object"}))],
        }]
    }

    fn call<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async { Ok(text_result("ok")) })
    }
}
