//! `isola mcp` and `isola tools` against hostile input from both sides: requests over the
//! transport limit or nesting too deep on stdio, and upstream servers that misbehaves
//! (`fixtures/hostile-mcp/server.py`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::Project;

/// Requests over 16 MiB and too deep each get a JSON-RPC error naming the size (depth) and the
/// limit, and `isola mcp` keeps serving the requests after them.
#[test]
fn stdio_requests_over_the_limits_get_errors_and_serving_goes_on() {
    let p = Project::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
        .arg("mcp")
        .current_dir(p.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut send = |message: Value| {
            stdin.write_all(format!("{message}\n").as_bytes()).unwrap();
        };
        send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "hostile", "version": "1"}}}),
        );
        send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        let code = format!("return '{}'.length", "a".repeat(17 << 20));
        send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "execute", "arguments": {"code": code}}}));
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "execute", "arguments": {"code": "return 1", "x": deep}}}));
        send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": {"name": "execute", "arguments": {"code": "return 6 * 7"}}}));
        stdin
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(serde_json::from_str::<Value>(&line).unwrap());
        }
    });
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 4 {
        let message = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no answer within 60 s; answers so far: {answers:?}"));
        if let Some(id) = message["id"].as_u64() {
            answers.insert(id, message);
        }
    }
    let stdin = writer.join().unwrap();
    drop(stdin);

    let too_large = &answers[&2]["error"];
    assert_eq!(too_large["code"], -32600, "{too_large}");
    let message = too_large["message"].as_str().unwrap();
    assert!(
        message.starts_with("the request is 17.0 MiB (")
            && message.ends_with("over the limit of 16 MiB on one MCP message"),
        "{message}"
    );
    let too_deep = answers[&3]["error"]["message"].as_str().unwrap();
    assert_eq!(
        too_deep,
        "the request nests 203 levels deep, over the limit of 127 levels"
    );
    assert_eq!(answers[&4]["result"]["isError"], false, "{}", answers[&4]);
    assert!(
        answers[&4]["result"].to_string().contains("42"),
        "{}",
        answers[&4]
    );
    let _ = child.wait();
}

/// `isola tools` lists a server's good tools and names each bad one with its reason, in text
/// and in JSON.
#[test]
fn isola_tools_reports_the_tools_it_left_out() {
    let p = Project::new();
    let server = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/hostile-mcp/server.py");
    let config =
        json!({"mcpServers": {"h": {"command": "python3", "args": [server, "--bad-tools"]}}});
    p.write("isola.json", &config.to_string());
    let text = p.isola(&["tools"]);
    assert_eq!(text.code(), 0, "{}", text.stderr());
    let stdout = text.stdout();
    assert!(
        stdout.contains("h  [connected]") && stdout.contains("(6 tools)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  left out: tool `no_schema`: it has no `inputSchema`\n")
            && stdout.contains(
                "  left out: tool `string_schema`: its `inputSchema` is a string, not an object\n"
            )
            && stdout.contains(
                "  left out: tool `deep_schema`: its `inputSchema` nests 141 levels deep"
            ),
        "{stdout}"
    );
    let json = p.isola(&["tools", "--json"]).json();
    let server = &json["servers"][0];
    assert_eq!(server["state"], "connected");
    assert_eq!(server["tools"].as_array().unwrap().len(), 6);
    let skipped: Vec<&str> = server["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        ["no_schema", "string_schema", "array_schema", "deep_schema"]
    );
    assert_eq!(server["skipped"][0]["reason"], "it has no `inputSchema`");
}

/// An unreachable server with a password in its URL: `isola tools` reports it in Isola's words,
/// the password redacted, with no raw `ERROR ... reqwest::Error` line from the MCP library.
#[test]
fn an_unreachable_url_is_reported_once_without_its_password() {
    let p = Project::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = json!({"mcpServers": {"down": {"url": format!("http://user:hunter2secret@127.0.0.1:{port}/mcp")}}});
    p.write("isola.json", &config.to_string());
    let run = p.isola(&["tools"]);
    let all = format!("{}{}", run.stdout(), run.stderr());
    assert!(!all.contains("hunter2secret"), "{all}");
    assert!(!all.contains("reqwest::Error"), "{all}");
    assert!(!all.contains("ERROR"), "{all}");
    assert!(all.contains("user:***@127.0.0.1"), "{all}");
}

/// The official Python SDK ends its Streamable HTTP session with a DELETE and logs
/// "Session termination failed: 202" unless the answer is 200 or 204.
#[test]
fn the_python_sdk_ends_its_http_session_cleanly() {
    let p = Project::new();
    let served = crate::support::serve_mcp_http(p.path(), &[]);
    let script = r#"
import asyncio, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

async def main(url):
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            print("tools:", len(tools.tools))

asyncio.run(main(sys.argv[1]))
"#;
    let output = Command::new("python3")
        .args(["-c", script, &served.url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("tools:"), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("DELETE"),
        "the session was not ended with a DELETE:\n{stderr}"
    );
    assert!(!stderr.contains("Session termination failed"), "{stderr}");
}
