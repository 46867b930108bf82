//! `isola-bench tokens --json`: the reductions it reports (token ratios, never timings), on
//! the benchmark's own five-server config and on a small one; `isola-bench peers --smoke`: every
//! peer's adapter gives Isola's results.

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

/// `isola-bench peers --smoke --json`: every peer's adapter runs the workloads a few times; each
/// one that runs must give the same results as Isola (timings are never asserted), one that
/// cannot run must say why, and Isola must stop both runaway scripts and the 1 GiB allocation.
#[test]
fn peers_smoke_every_peer_matches_isola() {
    server_bin("mcp-server-everything");
    let root = workspace_root();
    let installed = root.join("fixtures/peers/node_modules");
    assert!(
        installed.exists(),
        "{} is missing\nhint: run scripts/setup-peers.sh (scripts/test.sh does)",
        installed.display()
    );
    let run = Command::new(env!("CARGO_BIN_EXE_isola-bench"))
        .args(["peers", "--smoke", "--json", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let rows = report["rows"].as_array().unwrap();
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "isola (worker)",
            "isola (in-process)",
            "cloudflare codemode (workerd)",
            "utcp code-mode (isolated-vm)",
            "quickjs-emscripten (in-process)",
            "monty (pool)",
            "fastmcp codemode (fastmcp)",
            "deno (worker)",
            "deno (process)",
        ]
    );
    let isola = &rows[0];
    let calls = report["calls"].as_u64().unwrap();
    let sandboxes = report["sandboxes"].as_u64().unwrap();
    let expected = [
        ("trivial", json!(42)),
        ("binding", json!(1000)),
        ("mcp", json!(calls)),
        ("parallel", json!(45)),
        ("memory", json!(sandboxes)),
    ];
    for (workload, value) in &expected {
        let cell = &isola["workloads"][workload];
        assert_eq!(cell["status"], "ok", "isola (worker) {workload}: {cell:#}");
        assert_eq!(
            &cell["raw"]["result"], value,
            "isola (worker) {workload}: {cell:#}"
        );
    }
    for row in rows {
        let label = row["label"].as_str().unwrap();
        for (workload, _) in &expected {
            let cell = &row["workloads"][workload];
            match cell["status"].as_str().unwrap() {
                "ok" => assert_eq!(
                    cell["raw"]["result"], isola["workloads"][workload]["raw"]["result"],
                    "{label} {workload} gave another result than Isola: {cell:#}"
                ),
                "not_applicable" | "unavailable" => assert!(
                    cell["reason"].as_str().is_some_and(|r| r.len() > 10),
                    "{label} {workload} must say why it does not run: {cell:#}"
                ),
                _ => panic!("{label} {workload} failed: {cell:#}"),
            }
        }
        for case in ["loop", "join", "alloc"] {
            let cell = &row["limits"][case];
            let status = cell["status"].as_str().unwrap();
            assert!(
                ["done", "not_stopped", "unavailable"].contains(&status),
                "{label} {case}: {cell:#}"
            );
        }
    }
    // Isola's own limits, through both backends: each case is stopped, by the right limit.
    for row in &rows[..2] {
        for (case, limit) in [
            ("loop", "deadline"),
            ("join", "deadline"),
            ("alloc", "memory"),
        ] {
            let cell = &row["limits"][case];
            assert_eq!(cell["status"], "done", "{cell:#}");
            assert_eq!(cell["outcome"], "stopped", "{cell:#}");
            assert!(
                cell["message"].as_str().unwrap().starts_with(limit),
                "{case} should hit the {limit} limit: {cell:#}"
            );
        }
    }
}
