//! Shared helpers: fixture loading, one-tool APIs, tsc.

use std::path::{Path, PathBuf};
use std::process::Command;

use isola_typegen::{Api, ServerSpec, ToolSpec};
use serde_json::Value;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every captured tool list in `fixtures/tools`, as (file stem, server), sorted by name.
pub fn fixture_servers() -> Vec<ServerSpec> {
    let dir = workspace_root().join("fixtures/tools");
    let mut servers: Vec<ServerSpec> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let tools: Vec<ToolSpec> = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            ServerSpec { name, tools }
        })
        .collect();
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        servers.len() >= 5,
        "expected at least five fixtures in {}",
        dir.display()
    );
    servers
}

/// A tool from MCP JSON (`{"name": …, "inputSchema": …}`); `inputSchema` defaults to an object
/// without properties.
pub fn tool(json: Value) -> ToolSpec {
    let mut json = json;
    if json.get("inputSchema").is_none() {
        json["inputSchema"] = serde_json::json!({"type": "object", "properties": {}});
    }
    serde_json::from_value(json).unwrap()
}

/// An API with one server `s` whose tools are given as MCP JSON.
pub fn api_of(tools: Vec<Value>) -> Api {
    Api::build(&[ServerSpec {
        name: "s".into(),
        tools: tools.into_iter().map(tool).collect(),
    }])
}

/// The lines inside `declare namespace … { … }`, dedented.
pub fn namespace_body(decl: &str) -> String {
    let start = decl.find("declare namespace").expect("no namespace");
    let body = &decl[start..];
    let body = &body[body.find('\n').unwrap() + 1..body.rfind('}').unwrap()];
    body.lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compares trimmed texts, printing both in full on mismatch.
#[track_caller]
pub fn assert_text(label: &str, actual: &str, expect: &str) {
    let (actual, expect) = (actual.trim(), expect.trim());
    if actual != expect {
        panic!("{label}: mismatch\n--- expected ---\n{expect}\n--- actual ---\n{actual}\n---");
    }
}

/// `fixtures/servers/node_modules/.bin/tsc`; fails (never skips) when it is not installed.
pub fn tsc_path() -> PathBuf {
    let tsc = workspace_root().join("fixtures/servers/node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "TypeScript is not installed at {}\nhint: run `npm ci --prefix fixtures/servers`",
        tsc.display()
    );
    tsc
}

/// Runs `tsc --noEmit --strict` on each file set concurrently; returns (success, output) per set.
pub fn run_tsc(dir: &Path, sets: &[Vec<&str>]) -> Vec<(bool, String)> {
    let tsc = tsc_path();
    let children: Vec<_> = sets
        .iter()
        .map(|files| {
            Command::new(&tsc)
                .current_dir(dir)
                .args([
                    "--noEmit", "--strict", "--target", "es2022", "--lib", "es2022", "--pretty",
                    "false",
                ])
                .args(files)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("running {}: {e}", tsc.display()))
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        })
        .collect()
}
