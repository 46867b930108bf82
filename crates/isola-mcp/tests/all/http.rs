//! Streamable HTTP: server-everything serving `streamableHttp` on a loopback port, reached
//! through a small proxy that records the request bytes so the test can see the headers.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isola_mcp::{McpHub, ServerState};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{args, config, config_with, everything, text, tool_names};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// server-everything on HTTP; killed when the returned child is dropped.
async fn start_everything_http() -> (tokio::process::Child, u16) {
    let port = free_port();
    let child = tokio::process::Command::new(everything())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "server-everything did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, port)
}

/// Forward 127.0.0.1:<returned port> to `upstream`, keeping what clients sent (lowercased).
async fn recording_proxy(upstream: u16) -> (u16, Arc<Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(String::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let (mut client_read, mut client_write) = inbound.into_split();
                let (mut server_read, mut server_write) = outbound.into_split();
                let upload = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        record
                            .lock()
                            .unwrap()
                            .push_str(&String::from_utf8_lossy(&buf[..n]).to_lowercase());
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                };
                let download = async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(upload, download);
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_with_headers() {
    let (mut server, port) = start_everything_http().await;
    let (proxy, seen) = recording_proxy(port).await;

    let config = config_with(
        json!({
            "mcpServers": {
                "remote": {
                    "type": "http",
                    "url": format!("http://127.0.0.1:{proxy}/mcp"),
                    "headers": {"Authorization": "Bearer ${TEST_TOKEN}", "X-Isola-Test": "yes"}
                }
            }
        }),
        &[("TEST_TOKEN", "t0ken-123")],
    );
    let hub = McpHub::connect(&config).await;
    let info = hub.server("remote").unwrap();
    assert_eq!(info.state, ServerState::Connected, "{info:?}");
    assert_eq!(
        info.transport,
        format!("http: http://127.0.0.1:{proxy}/mcp")
    );
    assert_eq!(info.pid, None);
    assert_eq!(info.server_info.unwrap().name, "mcp-servers/everything");
    assert!(
        tool_names(&hub.server("remote").unwrap())
            .iter()
            .any(|t| t == "echo")
    );

    let echo = hub
        .call("remote", "echo", args(json!({"message": "over http"})))
        .await
        .unwrap();
    assert_eq!(text(&echo), "Echo: over http");

    // Concurrency over HTTP too.
    let started = Instant::now();
    let calls = (0..5).map(|_| {
        hub.call(
            "remote",
            "trigger-long-running-operation",
            args(json!({"duration": 0.5, "steps": 1})),
        )
    });
    for result in futures::future::join_all(calls).await {
        assert!(text(&result.unwrap()).starts_with("Long running operation completed"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    let sent = seen.lock().unwrap().clone();
    assert!(
        sent.contains("authorization: bearer t0ken-123"),
        "headers not sent:\n{sent}"
    );
    assert!(
        sent.contains("x-isola-test: yes"),
        "headers not sent:\n{sent}"
    );

    hub.shutdown().await;
    let _ = server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_http_server_fails_alone() {
    let port = free_port();
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {
            "down": {"url": format!("http://127.0.0.1:{port}/mcp")},
        },
        "isola": {"startupTimeoutMs": 5000}
    })))
    .await;
    let ServerState::Failed(reason) = hub.server("down").unwrap().state else {
        panic!()
    };
    assert!(
        reason.starts_with(&format!("http: http://127.0.0.1:{port}/mcp: ")),
        "{reason}"
    );
    assert!(reason.contains("Connection refused"), "{reason}");
    assert!(
        reason.contains("\nhint: check that the server is running"),
        "{reason}"
    );
    hub.shutdown().await;
}

/// A password in the URL never shows in the failure (nor does the URL's hint lose its place).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_url_is_redacted() {
    let port = free_port();
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {
            "down": {"url": format!("http://user:hunter2secret@127.0.0.1:{port}/mcp")},
        },
        "isola": {"startupTimeoutMs": 5000}
    })))
    .await;
    let info = hub.server("down").unwrap();
    assert_eq!(
        info.transport,
        format!("http: http://user:***@127.0.0.1:{port}/mcp")
    );
    let ServerState::Failed(reason) = info.state else {
        panic!()
    };
    assert!(!reason.contains("hunter2secret"), "{reason}");
    assert!(
        reason.starts_with(&format!("http: http://user:***@127.0.0.1:{port}/mcp: ")),
        "{reason}"
    );
    hub.shutdown().await;
}
