//! `isola mcp --http`: what it accepts. DNS rebinding (`Host`, `Origin`), the bearer token,
//! and refusing an unauthenticated non-loopback address.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::isola_in;

/// `isola mcp --http 127.0.0.1:0 ARGS` with no upstream servers; killed on drop.
/// `isola mcp --http` over an empty config, in-process (no upstream servers needed).
struct Served {
    _server: crate::support::McpHttp,
    port: u16,
    _dir: tempfile::TempDir,
}

fn serve(args: &[&str]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("isola.json"), r#"{"mcpServers": {}}"#).unwrap();
    let mut extra = vec!["--in-process"];
    extra.extend_from_slice(args);
    let server = crate::support::serve_mcp_http(dir.path(), &extra);
    let port = server.port;
    Served {
        _server: server,
        port,
        _dir: dir,
    }
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

/// POST an `initialize` to `path` with these headers; the response's status code.
fn status(port: u16, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| *k == "Host") {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!(
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{INITIALIZE}",
        INITIALIZE.len()
    ));
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        if stream.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"))
}

#[test]
fn host_and_origin_are_checked_against_dns_rebinding() {
    let s = serve(&[]);
    let port = s.port;
    let localhost = format!("localhost:{port}");
    assert_eq!(status(port, "/mcp", &[]), 200);
    assert_eq!(status(port, "/mcp", &[("Host", &localhost)]), 200);
    assert_eq!(status(port, "/mcp", &[("Host", "evil.example")]), 403);
    assert_eq!(
        status(port, "/mcp", &[("Host", &format!("evil.example:{port}"))]),
        403
    );
    assert_eq!(
        status(port, "/mcp", &[("Origin", "http://localhost:5173")]),
        200
    );
    assert_eq!(
        status(port, "/mcp", &[("Origin", "https://127.0.0.1")]),
        200
    );
    assert_eq!(
        status(port, "/mcp", &[("Origin", "https://evil.example")]),
        403
    );
    assert_eq!(status(port, "/mcp", &[("Origin", "null")]), 403);
    assert_eq!(status(port, "/other", &[]), 404);
}

#[test]
fn a_token_is_required_when_set() {
    let s = serve(&["--token", "s3cret"]);
    let port = s.port;
    assert_eq!(status(port, "/mcp", &[]), 401);
    assert_eq!(
        status(port, "/mcp", &[("Authorization", "Bearer wrong")]),
        401
    );
    assert_eq!(
        status(port, "/mcp", &[("Authorization", "Basic czNjcmV0")]),
        401
    );
    assert_eq!(
        status(port, "/mcp", &[("Authorization", "Bearer s3cret")]),
        200
    );
    // The rebinding checks still apply to authorised requests.
    assert_eq!(
        status(
            port,
            "/mcp",
            &[("Authorization", "Bearer s3cret"), ("Host", "evil.example")]
        ),
        403
    );
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("isola.json"), r#"{"mcpServers": {}}"#).unwrap();
    let run = isola_in(dir.path(), &["mcp", "--http", "0.0.0.0:0"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("refusing to serve MCP on 0.0.0.0:0 without authentication"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("hint: pass --token"),
        "{}",
        run.stderr()
    );
}
