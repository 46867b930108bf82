//! Paths of the test fixtures. Each function panics with the command that installs a missing
//! fixture (`scripts/test.sh` installs them all).

use std::path::{Path, PathBuf};

use isola_typegen::{ServerSpec, ToolSpec};

/// The repository's root directory.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.join("../..")
        .canonicalize()
        .unwrap_or_else(|_| here.join("../.."))
}

fn require(path: PathBuf, install: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing\nhint: {install} (scripts/test.sh does)",
        path.display()
    );
    path
}

/// An executable of the fixture MCP servers and tools (`fixtures/servers/node_modules/.bin`).
pub fn server_bin(name: &str) -> PathBuf {
    require(
        workspace_root()
            .join("fixtures/servers/node_modules/.bin")
            .join(name),
        "install the fixture servers with `npm ci --prefix fixtures/servers`",
    )
}

/// A binary of this workspace (`isola`, `isola-conformance-client`, ...), next to the test
/// binary that asks: the test runner builds every binary of the workspace before its tests.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test binary>, or target/<profile>/<binary>.
    let profile_dir = exe
        .ancestors()
        .find(|dir| dir.join(name).exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| {
            exe.parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."))
                .to_path_buf()
        });
    require(
        profile_dir.join(name),
        &format!("build it with `cargo build --workspace` (it is the binary `{name}`)"),
    )
}

/// Every captured real server in `fixtures/tools`.
pub const CAPTURED: &[&str] = &[
    "everything",
    "filesystem",
    "git",
    "github",
    "memory",
    "notion",
    "time",
];

/// The captured `tools/list` results in `fixtures/tools`, one server per file (named after it).
pub fn captured_servers(names: &[&str]) -> Vec<ServerSpec> {
    let dir = workspace_root().join("fixtures/tools");
    names
        .iter()
        .map(|name| {
            let path = dir.join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let tools: Vec<ToolSpec> = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not a tool list: {e}", path.display()));
            ServerSpec {
                name: (*name).to_string(),
                tools,
            }
        })
        .collect()
}
