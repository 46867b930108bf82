//! `isola-bench tokens --json`: the reductions it reports (token ratios, never timings), on
//! the benchmark's own five-server config and on a small one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use isola_test_support::fixtures::{server_bin, workspace_root};
use serde_json::{Value, json};

fn bench(dir: &Path, config: &Path) -> Value {
    let run = Command::new(env!("CARGO_BIN_EXE_isola-bench"))
        .args(["--config", config.to_str().unwrap(), "tokens", "--json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn pct(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn the_five_server_benchmark_meets_its_targets() {
    // The config runs the fixture servers with `node` from fixtures/servers.
    server_bin("mcp-server-everything");
    let config = workspace_root().join("fixtures/bench/tokens.json");
    let dir = tempfile::tempdir().unwrap();
    let report = bench(dir.path(), &config);
    let defs = &report["definitions"];
    assert_eq!(defs["servers"].as_array().unwrap().len(), 5, "{defs:#}");
    assert!(defs["tools"].as_u64().unwrap() >= 50, "{defs:#}");
    assert_eq!(defs["served"], "search", "{defs:#}");
    assert!(
        pct(&defs["search_reduction_pct"]) >= 90.0,
        "search/describe should cost at least 90% fewer tokens than classic definitions: {defs:#}"
    );
    let flow = &report["workflow"];
    assert!(
        pct(&flow["reduction_pct"]) >= 80.0,
        "Code Mode should cost at least 80% fewer tokens on the workflow: {flow:#}"
    );
}

#[test]
fn a_small_config() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let config = json!({"mcpServers": {
        "everything": {"command": server_bin("mcp-server-everything")},
        "fs": {"command": server_bin("mcp-server-filesystem"), "args": [data]},
    }});
    let path = dir.path().join("isola.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let report = bench(dir.path(), &path);
    let defs = &report["definitions"];
    let servers = defs["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{defs:#}");
    let classic: u64 = servers.iter().map(|s| s["classic"].as_u64().unwrap()).sum();
    assert_eq!(defs["classic"].as_u64(), Some(classic));
    // A small API is embedded; search mode's three definitions alone are far smaller than
    // classic, and its lookups (3 searches, 2 describes of the best hits) all found something.
    assert_eq!(defs["served"], "embedded", "{defs:#}");
    assert!(
        defs["search_tools"].as_u64().unwrap() * 3 < classic,
        "{defs:#}"
    );
    let lookups = defs["lookups"].as_array().unwrap();
    let labels: Vec<&str> = lookups
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "search \"list files in a directory\"",
            "search \"read a text file\"",
            "search \"file size\"",
            "describe fs.listDirectory",
            "describe fs.readTextFile",
        ],
        "{defs:#}"
    );
    assert!(
        lookups.iter().all(|l| l["result"].as_u64().unwrap() > 50),
        "{defs:#}"
    );

    let flow = &report["workflow"];
    assert_eq!(flow["files"], 10, "{flow:#}");
    assert_eq!(flow["classic"].as_array().unwrap().len(), 11, "{flow:#}");
    assert!(pct(&flow["reduction_pct"]) >= 80.0, "{flow:#}");
    let largest: Vec<&str> = flow["largest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        largest,
        [
            "quarterly-planning.md",
            "database-tuning.md",
            "security-audit.md"
        ]
    );
}
