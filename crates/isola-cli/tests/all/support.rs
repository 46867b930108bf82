//! Shared helpers: a temporary project with a config and data files, and running `isola`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

/// A real MCP server's executable from `fixtures/servers`.
pub fn server_bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/servers/node_modules/.bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: install the fixture servers with `npm ci --prefix fixtures/servers`",
        path.display()
    );
    path
}

/// A temporary directory with `isola.json` (server-everything as `everything`, server-filesystem
/// as `fs` on `data/`) and a few data files.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("a.txt"), "alpha\nfirst file\n").unwrap();
        std::fs::write(data.join("b.txt"), "beta\n").unwrap();
        std::fs::write(data.join("c.txt"), "gamma\nthird\nfile\n").unwrap();
        let config = json!({"mcpServers": {
            "everything": {"command": server_bin("mcp-server-everything")},
            "fs": {"command": server_bin("mcp-server-filesystem"), "args": [data]},
        }});
        std::fs::write(
            dir.path().join("isola.json"),
            serde_json::to_string_pretty(&config).unwrap(),
        )
        .unwrap();
        Project { dir }
    }

    /// Give the config this `isola` section.
    pub fn with_isola(self, settings: serde_json::Value) -> Self {
        let path = self.dir.path().join("isola.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["isola"] = settings;
        std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Run `isola ARGS` in the project directory.
    pub fn isola(&self, args: &[&str]) -> Run {
        isola_in(self.path(), args)
    }
}

pub fn isola_in(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(args)
        .current_dir(dir)
        // The journal's default store, inside the test's directory.
        .env("XDG_DATA_HOME", dir.join(".isola-data"))
        .env_remove("ISOLA_STORE")
        .output()
        .unwrap();
    Run(output)
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout(), self.stderr()))
    }
}

/// A running `isola mcp --http` on a free loopback port; killed on drop.
pub struct McpHttp {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    pub port: u16,
}

impl McpHttp {
    /// Kill the server at once (SIGKILL): what a machine failing looks like to the others.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for McpHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `isola mcp --http 127.0.0.1:0 EXTRA...` in `dir` and wait until it says where it serves.
pub fn serve_mcp_http(dir: &Path, extra: &[&str]) -> McpHttp {
    serve_http(dir, "mcp", extra)
}

/// Start `isola COMMAND --http 127.0.0.1:0 EXTRA...` (`mcp` or `serve`) in `dir` and wait
/// until it says where it serves.
pub fn serve_http(dir: &Path, command: &str, extra: &[&str]) -> McpHttp {
    serve_http_with(dir, command, extra, &[])
}

/// [`serve_http`] with these environment variables set.
pub fn serve_http_with(dir: &Path, command: &str, extra: &[&str], env: &[(&str, &str)]) -> McpHttp {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args([command, "--http", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .current_dir(dir)
        .env("XDG_DATA_HOME", dir.join(".isola-data"))
        .env_remove("ISOLA_MCP_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "isola mcp --http exited before serving"
        );
        if let Some(url) = line
            .trim()
            .strip_prefix("isola: serving MCP (Streamable HTTP) at ")
        {
            break url.to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    let port = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/mcp")
        .parse()
        .unwrap();
    McpHttp { child, url, port }
}
