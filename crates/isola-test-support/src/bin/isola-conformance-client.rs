//! `isola-conformance-client URL`: Isola's MCP client, [`McpHub`], as the client under test of
//! the official conformance suite (`@modelcontextprotocol/conformance client`). A test tool, not
//! part of the shipped `isola` binary.
//!
//! The suite starts a scenario's test server, runs this command with the server's URL appended
//! and the scenario's name in `MCP_CONFORMANCE_SCENARIO`, then checks what the client sent. The
//! client connects as Isola connects to any configured Streamable HTTP server (`initialize`,
//! `tools/list`), then makes the calls the scenario expects, as a script would, and checks the
//! answers; it exits non-zero when connecting or a call fails. Run by
//! `crates/isola-cli/tests/all/conformance.rs`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use isola_mcp::{McpHub, ServerState};
use serde_json::{Map, Value, json};

/// The name of the suite's server in the generated config.
const SERVER: &str = "conformance";

fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: isola-conformance-client URL");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(&url)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str) -> Result<()> {
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let config = json!({ "mcpServers": { SERVER: { "url": url } } });
    let config = isola_config::parse_config(&config.to_string(), Path::new("conformance.json"))?;
    let hub = McpHub::connect(&config).await;
    let result = scenario_calls(&hub, &scenario).await;
    hub.shutdown().await;
    result
}

async fn scenario_calls(hub: &McpHub, scenario: &str) -> Result<()> {
    let info = hub
        .server(SERVER)
        .ok_or_else(|| anyhow!("no server `{SERVER}` in the generated config"))?;
    if let ServerState::Failed(reason) = &info.state {
        bail!("cannot connect to the conformance server: {reason}");
    }
    let names: Vec<&str> = info.tools.iter().map(|t| t.name.as_ref()).collect();
    eprintln!("scenario `{scenario}`: tools {}", names.join(", "));
    match scenario {
        "tools_call" => {
            let result = call(hub, "add_numbers", json!({"a": 2, "b": 3})).await?;
            let text = text(&result);
            if !text.contains('5') {
                bail!("add_numbers(2, 3) answered {text:?}, expected the sum 5");
            }
        }
        // The server closes the call's SSE stream before answering: the client must reconnect
        // (GET with Last-Event-ID) to get the result.
        "sse-retry" => {
            call(hub, "test_reconnection", json!({})).await?;
        }
        // Send back the input schema as the client holds it: nothing may be lost or reordered
        // between the wire and Isola's tool list.
        "json-schema-2020-12-preservation" => {
            let tool = info
                .tools
                .iter()
                .find(|t| t.name == "json_schema_2020_12_tool")
                .ok_or_else(|| anyhow!("no tool `json_schema_2020_12_tool` listed"))?;
            let schema = Value::Object((*tool.input_schema).clone());
            call(hub, "json_schema_echo", json!({ "schema": schema })).await?;
        }
        // The server asks the client to fill a form (elicitation) during the call; Isola's client
        // declares no elicitation capability, so the call is expected to fail.
        "elicitation-sep1034-client-defaults" => {
            if let Err(e) = call(hub, "test_client_elicitation_defaults", json!({})).await {
                eprintln!("test_client_elicitation_defaults failed: {e}");
            }
        }
        // Tools whose `x-mcp-header` annotations are malformed must be dropped without losing
        // the valid one.
        "http-invalid-tool-headers" => {
            call(hub, "valid_tool", json!({"region": "us-west1"})).await?;
        }
        // The others need only the connection and the tool list, or test what the client does on
        // its own (authorization, headers): see fixtures/conformance/expected-failures.json.
        _ => {}
    }
    Ok(())
}

/// Call `tool` with `args`; the result as JSON (an error result is an error).
async fn call(hub: &McpHub, tool: &str, args: Value) -> Result<Value> {
    let args = match args {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let result = serde_json::to_value(hub.call(SERVER, tool, args).await?)?;
    eprintln!("{tool}: {result}");
    if result["isError"] == Value::Bool(true) {
        bail!("{tool} returned an error result: {}", text(&result));
    }
    Ok(result)
}

/// The text blocks of a tool result, joined.
fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}
