//! `isola mcp` driven by a real MCP client: the Python SDK (PyPI `mcp`), over stdio and
//! Streamable HTTP, with the 2026-07-28 protocol (`server/discover`) and the older `initialize`
//! handshake. The checks live in `tests/python/client_test.py`: tools in both modes, search,
//! describe, execute against server-everything and server-filesystem, rendered failures,
//! progress, cancelling `while (true) {}`, resources, and an upstream tool-list change reaching
//! the host (`tests/python/dynamic_server.py`).

use std::path::Path;
use std::process::Command;

use crate::support::Project;

fn python_client(transport: &str, mode: &str) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let probe = Command::new(&python).args(["-c", "import mcp"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the Python MCP SDK is missing: pip install mcp (or `pip install -r fixtures/python-requirements.txt`)\n{}",
        probe
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_else(|e| e.to_string())
    );
    let p = Project::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_test.py");
    let output = Command::new(&python)
        .arg(&script)
        .args([
            env!("CARGO_BIN_EXE_isola"),
            p.path().to_str().unwrap(),
            transport,
            mode,
        ])
        .env("XDG_DATA_HOME", p.path().join(".isola-data"))
        .env_remove("ISOLA_STORE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed ({transport}, {mode}):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("all passed ({transport}, {mode})")),
        "{stdout}\n{stderr}"
    );
    // Every execute was journaled, in a session of its MCP client.
    let list = p
        .isola(&["journal", "list", "--limit", "1000", "--json"])
        .json();
    let rows = list.as_array().unwrap();
    assert!(!rows.is_empty(), "nothing journaled");
    for row in rows {
        assert!(row["origin"].as_str().unwrap().starts_with("mcp"), "{row}");
        assert!(
            row["session"].as_str().unwrap().starts_with("mcp-"),
            "{row}"
        );
    }
    assert!(rows.iter().any(|r| r["status"] == serde_json::json!("ok")));
    assert_eq!(p.isola(&["journal", "verify"]).code(), 0);
}

#[test]
fn python_sdk_over_stdio() {
    python_client("stdio", "auto");
}

#[test]
fn python_sdk_over_stdio_with_initialize() {
    python_client("stdio", "legacy");
}

#[test]
fn python_sdk_over_http() {
    python_client("http", "auto");
}

#[test]
fn python_sdk_over_http_with_initialize() {
    python_client("http", "legacy");
}

/// A host that supports elicitation is asked to approve a held call, right in its UI: the
/// official Python SDK's client approves one destructive call and denies the next.
#[test]
fn a_host_that_can_ask_its_user_decides_approvals_by_elicitation() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let p = Project::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/elicit_test.py");
    let output = Command::new(&python)
        .arg(&script)
        .args([env!("CARGO_BIN_EXE_isola"), p.path().to_str().unwrap()])
        .env("XDG_DATA_HOME", p.path().join(".isola-data"))
        .env_remove("ISOLA_STORE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("all passed"),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    // The decisions are recorded with who made them.
    let all = p.isola(&["approvals", "list", "--all", "--json"]).json();
    let statuses: Vec<(&str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["status"].as_str().unwrap(),
                a["decidedBy"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 2, "{all}");
    assert!(statuses.contains(&("approved", "mcp:mcp")), "{all}");
    assert!(statuses.contains(&("denied", "mcp:mcp")), "{all}");
}
