//! The hub against the crate's own rmcp test server: list_changed, pagination, env, startup
//! failures, protocol errors, death during a call.

use std::time::{Duration, Instant};

use isola_mcp::{CallError, HubEvent, McpHub, ServerState};
use serde_json::{Map, Value, json};

use crate::support::{args, config, test_server, text, tool_names, wait_for};

const BUILTIN_TOOLS: [&str; 8] = [
    "echo", "sleep", "fail", "env", "add_tool", "exit", "notify", "client",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_changed_updates_the_hub() {
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {"t": {"command": test_server()}}
    })))
    .await;
    let info = hub.server("t").unwrap();
    assert_eq!(info.state, ServerState::Connected, "{info:?}");
    assert_eq!(tool_names(&info), BUILTIN_TOOLS);
    let implementation = info.server_info.unwrap();
    assert_eq!(
        (
            implementation.name.as_str(),
            implementation.version.as_str()
        ),
        ("isola-mcp-test-server", "1.2.3")
    );
    assert_eq!(
        info.instructions.as_deref(),
        Some("Test server for isola-mcp.")
    );

    // isola introduces itself, on the newest protocol version with an `initialize` handshake.
    let client = hub.call("t", "client", args(json!({}))).await.unwrap();
    assert_eq!(
        text(&client),
        format!("isola {} 2025-11-25", env!("CARGO_PKG_VERSION"))
    );

    let mut events = hub.subscribe();
    let added = hub
        .call("t", "add_tool", args(json!({"name": "fresh"})))
        .await
        .unwrap();
    assert_eq!(text(&added), "added fresh");
    let event = wait_for(&mut events, 10, |e| {
        matches!(e, HubEvent::ToolsChanged { .. })
    })
    .await;
    assert_eq!(event, HubEvent::ToolsChanged { server: "t".into() });
    let names = tool_names(&hub.server("t").unwrap());
    assert_eq!(names.last().map(String::as_str), Some("fresh"), "{names:?}");

    let fresh = hub.call("t", "fresh", args(json!({}))).await.unwrap();
    assert_eq!(text(&fresh), "dynamic: fresh");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_env_errors_and_notifications() {
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {
            "paged": {"command": test_server(), "args": ["--page-size", "2"],
                      "env": {"ISOLA_TEST_VAR": "from config"}},
            "endless": {"command": test_server(), "args": ["--endless-pages", "--page-size", "3"]},
        }
    })))
    .await;

    // Eight tools in pages of two.
    let paged = hub.server("paged").unwrap();
    assert_eq!(paged.state, ServerState::Connected, "{paged:?}");
    assert_eq!(tool_names(&paged), BUILTIN_TOOLS);

    // A server that never stops paginating is cut off.
    let ServerState::Failed(reason) = hub.server("endless").unwrap().state else {
        panic!()
    };
    assert!(reason.contains("more than 1000 pages"), "{reason}");

    // The configured env is set on top of the inherited variables.
    let var = hub
        .call("paged", "env", args(json!({"name": "ISOLA_TEST_VAR"})))
        .await
        .unwrap();
    assert_eq!(text(&var), "from config");
    let path = hub
        .call("paged", "env", args(json!({"name": "PATH"})))
        .await
        .unwrap();
    assert_eq!(text(&path), std::env::var("PATH").unwrap());

    // isError results are Ok.
    let failed = hub
        .call("paged", "fail", args(json!({"message": "nope"})))
        .await
        .unwrap();
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(text(&failed), "nope");

    // A JSON-RPC error is a Protocol error naming server and tool.
    let error = hub
        .call("paged", "no_such_tool", args(json!({})))
        .await
        .unwrap_err();
    match &error {
        CallError::Protocol {
            server,
            tool,
            message,
        } => {
            assert_eq!((server.as_str(), tool.as_str()), ("paged", "no_such_tool"));
            assert!(message.contains("unknown tool no_such_tool"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // Progress and log notifications pass through (to tracing) without disturbing the call.
    let notified = hub.call("paged", "notify", args(json!({}))).await.unwrap();
    assert_eq!(text(&notified), "notified");
    hub.shutdown().await;
}

/// Every variable a stdio server was started with.
async fn server_env(hub: &McpHub, server: &str) -> Map<String, Value> {
    let all = hub
        .call(server, "env", args(json!({"name": "*"})))
        .await
        .unwrap();
    match serde_json::from_str(&text(&all)).unwrap() {
        Value::Object(map) => map,
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_see_only_the_allowlist_and_their_own_env() {
    // Secrets in Isola's own environment (nextest runs each test in its own process).
    // SAFETY: no other thread of this test process reads or writes the environment yet.
    unsafe {
        std::env::set_var("OPENAI_API_KEY", "sk-isola-test");
        std::env::set_var("ISOLA_MCP_TOKEN", "mcp-token");
    }
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {
            "a": {"command": test_server(), "env": {"A_SECRET": "a-secret"}},
            "b": {"command": test_server(), "env": {"B_SECRET": "b-secret"}},
            "wide": {"command": test_server(), "inheritEnv": true},
        }
    })))
    .await;
    for (server, own) in [("a", "A_SECRET"), ("b", "B_SECRET")] {
        let env = server_env(&hub, server).await;
        for name in env.keys() {
            assert!(
                name == own || isola_config::env::INHERITED.contains(&name.as_str()),
                "server {server} sees {name}: {env:?}"
            );
        }
        assert!(env.contains_key(own), "{env:?}");
        assert!(env.contains_key("PATH"), "{env:?}");
    }
    // Opting in gives the old behaviour: everything, secrets included.
    let wide = server_env(&hub, "wide").await;
    assert_eq!(wide["OPENAI_API_KEY"], "sk-isola-test");
    assert_eq!(wide["ISOLA_MCP_TOKEN"], "mcp-token");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_failures_are_recorded_and_others_work() {
    let missing_dir = std::env::temp_dir().join("isola-mcp-no-such-dir");
    let started = Instant::now();
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {
            "exits": {"command": test_server(), "args": ["--exit-at-start"]},
            "hangs": {"command": test_server(), "args": ["--hang-at-start"]},
            "badcwd": {"command": test_server(), "cwd": missing_dir},
            "ok": {"command": test_server()},
        },
        "isola": {"startupTimeoutMs": 1500}
    })))
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "servers did not start concurrently: {elapsed:?}"
    );

    let failed = |name: &str| match hub.server(name).unwrap().state {
        ServerState::Failed(reason) => reason,
        other => panic!("{name} is {other:?}"),
    };
    let exits = failed("exits");
    for part in [
        "--exit-at-start: the process exited (or closed its stdout) before answering `initialize`",
        "stderr (last lines):",
        "fatal: TEST_API_KEY is missing",
        "hint: run the command by hand",
    ] {
        assert!(exits.contains(part), "missing {part:?} in:\n{exits}");
    }
    let hangs = failed("hangs");
    assert!(
        hangs.contains("no answer to `initialize` + `tools/list` within 1500 ms"),
        "{hangs}"
    );
    assert!(
        hangs.contains("hint: raise `isola.startupTimeoutMs`"),
        "{hangs}"
    );
    let badcwd = failed("badcwd");
    assert!(
        badcwd.contains("isola-mcp-no-such-dir does not exist"),
        "{badcwd}"
    );

    assert_eq!(hub.server("ok").unwrap().state, ServerState::Connected);
    let echo = hub
        .call("ok", "echo", args(json!({"text": "fine"})))
        .await
        .unwrap();
    assert_eq!(text(&echo), "fine");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn death_during_a_call_then_reconnect() {
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {"t": {"command": test_server()}}
    })))
    .await;
    let mut events = hub.subscribe();
    let old_pid = hub.server("t").unwrap().pid.unwrap();

    // The process exits while answering: the call fails, nothing is retried behind its back.
    let error = hub
        .call("t", "exit", args(json!({"code": 3})))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Transport { .. }), "{error:?}");
    assert!(
        error.to_string().contains("the next call reconnects"),
        "{error}"
    );
    wait_for(&mut events, 10, |e| {
        matches!(e, HubEvent::ServerDied { .. })
    })
    .await;

    // Slow calls in flight at once share the one reconnection.
    let started = Instant::now();
    let calls = (0..5).map(|_| hub.call("t", "sleep", args(json!({"ms": 300}))));
    for result in futures::future::join_all(calls).await {
        assert_eq!(text(&result.unwrap()), "slept 300 ms");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let info = hub.server("t").unwrap();
    assert_eq!(info.state, ServerState::Connected);
    assert_ne!(info.pid, Some(old_pid));
    hub.shutdown().await;
}
