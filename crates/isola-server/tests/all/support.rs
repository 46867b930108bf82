//! Fixture tool lists and an in-memory tool source.

use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use isola_engine::{ToolError, Tools};
use isola_typegen::{ServerSpec, ToolSpec};
use serde_json::{Map, Value, json};

/// The captured `tools/list` results in `fixtures/tools`, one server per file (named after it).
pub fn fixture_servers(names: &[&str]) -> Vec<ServerSpec> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tools");
    names
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
            let tools: Vec<ToolSpec> = serde_json::from_str(&text).unwrap();
            ServerSpec {
                name: (*name).to_string(),
                tools,
            }
        })
        .collect()
}

pub const ALL: &[&str] = &[
    "everything",
    "filesystem",
    "git",
    "github",
    "memory",
    "notion",
    "time",
];

/// Tools from a list that tests can change; a call answers with its server, tool and arguments
/// (`echo`), or as an `isError` result (`fail`).
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
        self.servers.lock().unwrap().clone()
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
            Ok(json!({"content": [{"type": "text", "text": text}]}))
        })
    }
}

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
