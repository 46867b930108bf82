//! The hub against `fixtures/hostile-mcp/server.py` (over stdio, and over Streamable HTTP with
//! `--http`), a server that misbehaves: answers over
//! the size limit or too deep, half lines on stdout, stderr without newlines, bad tool lists.

use std::time::{Duration, Instant};

use isola_mcp::{CallError, McpHub, ServerState};
use serde_json::json;

use crate::support::{args, config, hostile_server, rss_bytes, text};

async fn hostile(extra: &[&str]) -> McpHub {
    let mut argv = vec![hostile_server()];
    argv.extend(extra.iter().map(|s| (*s).to_owned()));
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {"h": {"command": "python3", "args": argv}},
        "isola": {"callTimeoutMs": 60000}
    })))
    .await;
    let info = hub.server("h").unwrap();
    assert_eq!(info.state, ServerState::Connected, "{info:?}");
    hub
}

async fn echo_works(hub: &McpHub) {
    let answer = hub
        .call("h", "echo", args(json!({"text": "still here"})))
        .await
        .unwrap();
    assert_eq!(text(&answer), "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_the_size_limit_is_an_immediate_error_naming_both_sizes() {
    let hub = hostile(&[]).await;
    let started = Instant::now();
    let error = hub
        .call("h", "big", args(json!({"bytes": 17 << 20})))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(error, CallError::TooLarge { limit, bytes: Some(bytes), .. } if limit == 16 << 20 && bytes > 17 << 20),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("the answer of `h.big` is 17.0 MiB (")
            && message.contains("over the limit of 16 MiB on one MCP message"),
        "{message}"
    );
    // Not the 60 s call timeout.
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    echo_works(&hub).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_nesting_too_deep_is_an_error_naming_the_depth() {
    let hub = hostile(&[]).await;
    let error = hub
        .call("h", "deep", args(json!({"depth": 300})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CallError::TooDeep {
                depth: Some(303),
                limit: 127,
                ..
            }
        ),
        "{error:?}"
    );
    // Deep but parseable is fine.
    let answer = hub
        .call("h", "deep", args(json!({"depth": 100})))
        .await
        .unwrap();
    assert_eq!(text(&answer), "deep");
    echo_works(&hub).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_line_on_stdout_does_not_lose_the_answer_after_it() {
    let hub = hostile(&[]).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        hub.call("h", "half", args(json!({"text": "after the half line"}))),
    )
    .await
    .expect("the answer after the half line was lost")
    .unwrap();
    assert_eq!(text(&answer), "after the half line");
    echo_works(&hub).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_without_newlines_is_not_buffered_and_is_cut_with_a_marker() {
    let hub = hostile(&[]).await;
    let before = rss_bytes();
    let answer = hub
        .call("h", "stderr", args(json!({"bytes": 300 << 20})))
        .await
        .unwrap();
    assert_eq!(text(&answer), "ok");
    // Let the stderr reader catch up with what the server wrote.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "host RSS grew by {} MiB", grown >> 20);

    // The line (the two writes make one, no newline between them) shows in the death report,
    // cut.
    let error = hub
        .call("h", "die_noisy", args(json!({"bytes": 5000})))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Transport { .. }), "{error:?}");
    let reason = loop {
        if let ServerState::Disconnected(reason) = hub.server("h").unwrap().state {
            break reason;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        reason.contains(&format!(
            "  {}… [{} more bytes cut]",
            "x".repeat(400),
            (300 << 20) + 5000 - 400
        )),
        "{reason}"
    );
    hub.shutdown().await;
}

/// A tool without `inputSchema`, with a schema that is a string or an array, or one nested
/// 70 property levels (141 JSON levels) deep, is left out with its reason; the server's other
/// tools are listed and work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tools_are_left_out_by_name_and_the_rest_work() {
    let hub = hostile(&["--bad-tools"]).await;
    let info = hub.server("h").unwrap();
    let names: Vec<&str> = info.tools.iter().map(|t| &*t.name).collect();
    assert_eq!(
        names,
        ["echo", "big", "deep", "half", "stderr", "die_noisy"],
        "{info:?}"
    );
    let skipped: Vec<(&str, &str)> = info
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("no_schema", "it has no `inputSchema`"),
            (
                "string_schema",
                "its `inputSchema` is a string, not an object"
            ),
            (
                "array_schema",
                "its `inputSchema` is an array, not an object"
            ),
            (
                "deep_schema",
                "its `inputSchema` nests 141 levels deep; Isola reads tool schemas up to 116 levels"
            ),
        ]
    );
    echo_works(&hub).await;
    hub.shutdown().await;
}

/// The hostile server serving Streamable HTTP on a loopback port, and a hub connected to it.
/// The server dies with the returned child.
async fn hostile_http(extra: &[&str]) -> (McpHub, tokio::process::Child) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new("python3")
        .args([hostile_server().as_str(), "--http"])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut port = String::new();
    tokio::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}/mcp", port.trim());
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {"h": {"url": url}},
        "isola": {"callTimeoutMs": 60000}
    })))
    .await;
    let info = hub.server("h").unwrap();
    assert_eq!(info.state, ServerState::Connected, "{info:?}");
    (hub, child)
}

/// Over HTTP, as over stdio: an answer over the size limit, as a JSON body or as an event, is
/// an error at once naming the limit, and the connection keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_answer_over_the_size_limit_is_an_immediate_error_naming_the_limit() {
    let (hub, _server) = hostile_http(&[]).await;
    for sse in [false, true] {
        let before = rss_bytes();
        let started = Instant::now();
        let error = hub
            .call("h", "big", args(json!({"bytes": 40 << 20, "sse": sse})))
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        let grown = rss_bytes().saturating_sub(before);
        assert!(
            matches!(error, CallError::TooLarge { limit, .. } if limit == 16 << 20),
            "sse {sse}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(
                "the answer of `h.big` is over the limit of 16 MiB on one MCP message"
            ),
            "sse {sse}: {message}"
        );
        assert!(
            elapsed < Duration::from_secs(20),
            "sse {sse}: took {elapsed:?}"
        );
        assert!(
            grown < 48 << 20,
            "sse {sse}: host RSS grew by {} MiB",
            grown >> 20
        );
        echo_works(&hub).await;
    }
    hub.shutdown().await;
}

/// Over HTTP, as over stdio: an answer nesting deeper than serde_json parses is an error
/// naming the depth, and the connection keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_answer_nesting_too_deep_is_an_error_naming_the_depth() {
    let (hub, _server) = hostile_http(&[]).await;
    for sse in [false, true] {
        let error = hub
            .call("h", "deep", args(json!({"depth": 300, "sse": sse})))
            .await
            .unwrap_err();
        // serde_json's error on a JSON body does not say how deep it went; an event is scanned.
        let depth = sse.then_some(303);
        assert!(
            matches!(error, CallError::TooDeep { depth: d, limit: 127, .. } if d == depth),
            "sse {sse}: {error:?}"
        );
        let answer = hub
            .call("h", "deep", args(json!({"depth": 100, "sse": sse})))
            .await
            .unwrap();
        assert_eq!(text(&answer), "deep");
        echo_works(&hub).await;
    }
    hub.shutdown().await;
}

/// Over HTTP with answers as events, a `tools/list` answer with a tool too deep to read keeps
/// the other tools, as over stdio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_tool_list_with_a_deep_schema_keeps_the_other_tools() {
    let (hub, _server) = hostile_http(&["--sse", "--bad-tools"]).await;
    let info = hub.server("h").unwrap();
    let names: Vec<&str> = info.tools.iter().map(|t| &*t.name).collect();
    assert_eq!(
        names,
        ["echo", "big", "deep", "half", "stderr", "die_noisy"],
        "{info:?}"
    );
    let deep = info.skipped.iter().find(|s| s.name == "deep_schema");
    assert!(
        deep.is_some_and(|s| s.reason.contains("nests 141 levels deep")),
        "{info:?}"
    );
    echo_works(&hub).await;
    hub.shutdown().await;
}
