//! Helpers shared by the hub tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use isola_config::{Config, parse_config_with_env};
use isola_mcp::{HubEvent, ServerInfo};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Map, Value};
use tokio::sync::broadcast;

/// A server binary from `fixtures/servers/node_modules/.bin`. Fails when they are not
/// installed: CI installs them, and a silently skipped test proves nothing.
pub fn fixture_bin(name: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/servers/node_modules/.bin")
        .join(name);
    assert!(
        bin.exists(),
        "MCP server fixture {} is missing\nhint: run `npm ci --prefix fixtures/servers` in the repository root",
        bin.display()
    );
    bin
}

pub fn everything() -> String {
    fixture_bin("mcp-server-everything").display().to_string()
}

/// The crate's own test server (src/bin/isola-mcp-test-server.rs).
pub fn test_server() -> &'static str {
    env!("CARGO_BIN_EXE_isola-mcp-test-server")
}

/// A config from JSON, with `vars` standing in for the environment.
pub fn config_with(json: Value, vars: &[(&str, &str)]) -> Config {
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    parse_config_with_env(
        &json.to_string(),
        Path::new("/tmp/isola-test/isola.json"),
        &lookup,
    )
    .unwrap_or_else(|e| panic!("test config does not parse: {e}"))
}

pub fn config(json: Value) -> Config {
    config_with(json, &[])
}

pub fn args(json: Value) -> Map<String, Value> {
    match json {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

/// The text blocks of a result, joined by newlines.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| match block {
            ContentBlock::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn tool_names(info: &ServerInfo) -> Vec<String> {
    info.tools.iter().map(|t| t.name.to_string()).collect()
}

/// The first event matching `want`, or a panic after `secs` seconds.
pub async fn wait_for(
    events: &mut broadcast::Receiver<HubEvent>,
    secs: u64,
    want: impl Fn(&HubEvent) -> bool,
) -> HubEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) if want(&event) => return event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(secs), wait)
        .await
        .unwrap_or_else(|_| panic!("no matching hub event within {secs} s"))
}

/// Whether process `pid` is gone (Linux: no /proc entry, or a zombie).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

pub async fn wait_gone(pid: u32, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !process_gone(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} still running after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn kill_9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid} failed");
}

/// `fixtures/hostile-mcp/server.py`: a stdio MCP server that misbehaves on request.
pub fn hostile_server() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/hostile-mcp/server.py")
        .display()
        .to_string()
}

/// This process's resident memory, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}
