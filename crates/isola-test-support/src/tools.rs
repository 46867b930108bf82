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

/// Tools from a list that tests can change. A call answers by the tool's name:
///
/// - `fail {bytes?}`: an `isError` result saying "it failed" (or a text of `bytes` bytes);
/// - `big {bytes}`: a text of `bytes` bytes;
/// - `sleep {ms}`: waits `ms` milliseconds, then answers `{"slept": ms}`;
/// - anything else: its server, tool and arguments as JSON text.
///
/// Every call is counted ([`FakeTools::calls`]) and logged ([`FakeTools::log`]).
pub struct FakeTools {
    pub servers: Mutex<Vec<ServerSpec>>,
    calls: std::sync::atomic::AtomicUsize,
    log: Mutex<Vec<(String, Value)>>,
}

impl FakeTools {
    pub fn new(servers: Vec<ServerSpec>) -> Arc<Self> {
        Arc::new(FakeTools {
            servers: Mutex::new(servers),
            calls: std::sync::atomic::AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        })
    }

    /// One server `t` with the tools `echo`, `fail`, `big` and `sleep`.
    pub fn standard() -> Arc<Self> {
        let object = json!({"type": "object"});
        Self::new(vec![ServerSpec {
            name: "t".into(),
            tools: vec![
                tool("echo", "Answers with its arguments.", object.clone()),
                tool("fail", "Fails.", object.clone()),
                tool(
                    "big",
                    "A text of `bytes` bytes.",
                    json!({"type": "object", "properties": {"bytes": {"type": "integer"}}}),
                ),
                tool(
                    "sleep",
                    "Waits `ms` milliseconds.",
                    json!({"type": "object", "properties": {"ms": {"type": "integer"}}}),
                ),
            ],
        }])
    }

    /// Calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every call so far: the tool and its arguments, in the order they started.
    pub fn log(&self) -> Vec<(String, Value)> {
        match self.log.lock() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        }
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
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut log) = self.log.lock() {
            log.push((tool.to_string(), Value::Object(args.clone())));
        }
        Box::pin(async move {
            let number = |k: &str| args.get(k).and_then(Value::as_u64).unwrap_or(0);
            match tool {
                "fail" => {
                    let text = match number("bytes") {
                        0 => "it failed".to_string(),
                        n => "e".repeat(n as usize),
                    };
                    Ok(json!({"content": [{"type": "text", "text": text}], "isError": true}))
                }
                "big" => Ok(text_result(&"x".repeat(number("bytes") as usize))),
                "sleep" => {
                    let ms = number("ms");
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    Ok(text_result(&json!({"slept": ms}).to_string()))
                }
                _ => {
                    let text = json!({"server": server, "tool": tool, "args": args}).to_string();
                    Ok(text_result(&text))
                }
            }
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
