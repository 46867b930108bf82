//! The hub against real stdio servers: server-everything and server-filesystem.

use std::time::{Duration, Instant};

use isola_mcp::{CallError, HubEvent, McpHub, ServerState};
use serde_json::json;

use crate::support::{
    args, config, everything, fixture_bin, kill_9, text, tool_names, wait_for, wait_gone,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_list_call_and_isolate_failures() {
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().canonicalize().unwrap();
    std::fs::write(root_path.join("note.txt"), "hello from a file").unwrap();
    let outside = tempfile::NamedTempFile::new().unwrap();

    let config = config(json!({
        "mcpServers": {
            "everything": {"command": everything()},
            "fs": {"command": fixture_bin("mcp-server-filesystem"), "args": [root_path]},
            "broken": {"command": "isola-no-such-command", "args": ["-y", "x"]},
            "off": {"command": "whatever", "disabled": true},
        }
    }));
    let started = Instant::now();
    let hub = McpHub::connect(&config).await;
    eprintln!("connect took {:?}", started.elapsed());

    let servers = hub.servers();
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["everything", "fs", "broken", "off"]);

    let everything = &servers[0];
    assert_eq!(everything.state, ServerState::Connected);
    assert!(
        everything.transport.starts_with("stdio: ")
            && everything.transport.ends_with("mcp-server-everything")
    );
    assert_eq!(
        everything.server_info.as_ref().unwrap().name,
        "mcp-servers/everything"
    );
    assert!(everything.pid.is_some());
    let tools = tool_names(everything);
    for name in [
        "echo",
        "get-sum",
        "trigger-long-running-operation",
        "get-env",
    ] {
        assert!(
            tools.iter().any(|t| t == name),
            "{name} missing from {tools:?}"
        );
    }

    let fs = &servers[1];
    assert_eq!(fs.state, ServerState::Connected, "{fs:?}");
    let fs_tools = tool_names(fs);
    assert!(
        fs_tools.iter().any(|t| t == "read_text_file"),
        "{fs_tools:?}"
    );

    let ServerState::Failed(reason) = &servers[2].state else {
        panic!("broken server is {:?}", servers[2].state)
    };
    assert!(
        reason.contains("stdio: isola-no-such-command -y x"),
        "{reason}"
    );
    assert!(
        reason.contains("command not found: isola-no-such-command"),
        "{reason}"
    );
    assert!(reason.contains("\nhint: "), "{reason}");
    assert!(servers[2].tools.is_empty());
    assert_eq!(servers[3].state, ServerState::Disabled);

    // Calls.
    let echo = hub
        .call("everything", "echo", args(json!({"message": "hello"})))
        .await
        .unwrap();
    assert_eq!(text(&echo), "Echo: hello");
    assert_ne!(echo.is_error, Some(true));
    let sum = hub
        .call("everything", "get-sum", args(json!({"a": 2, "b": 3})))
        .await
        .unwrap();
    assert_eq!(text(&sum), "The sum of 2 and 3 is 5.");
    let file = hub
        .call(
            "fs",
            "read_text_file",
            args(json!({"path": root_path.join("note.txt")})),
        )
        .await
        .unwrap();
    assert_eq!(text(&file), "hello from a file");

    // Tool errors are results, not CallErrors.
    let bad_args = hub
        .call("everything", "get-sum", args(json!({"a": "two"})))
        .await
        .unwrap();
    assert_eq!(bad_args.is_error, Some(true), "{bad_args:?}");
    let denied = hub
        .call(
            "fs",
            "read_text_file",
            args(json!({"path": outside.path()})),
        )
        .await
        .unwrap();
    assert_eq!(denied.is_error, Some(true), "{denied:?}");
    assert!(text(&denied).contains("Access denied"), "{}", text(&denied));

    // Unavailable and unknown servers.
    match hub.call("broken", "x", args(json!({}))).await {
        Err(CallError::ServerUnavailable { server, reason }) => {
            assert_eq!(server, "broken");
            assert!(reason.contains("command not found"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let error = hub.call("off", "x", args(json!({}))).await.unwrap_err();
    assert!(
        error.to_string().contains("disabled in the config"),
        "{error}"
    );
    let error = hub.call("nope", "x", args(json!({}))).await.unwrap_err();
    assert!(matches!(error, CallError::UnknownServer { .. }));
    assert!(
        error
            .to_string()
            .contains("hint: configured servers: everything, fs, broken, off"),
        "{error}"
    );

    // Shutdown stops the children.
    let pids: Vec<u32> = hub.servers().iter().filter_map(|s| s.pid).collect();
    assert_eq!(pids.len(), 2);
    hub.shutdown().await;
    for pid in pids {
        wait_gone(pid, 10).await;
    }
    let error = hub
        .call("everything", "echo", args(json!({"message": "x"})))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CallError::ServerUnavailable { .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_overlap() {
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {"everything": {"command": everything()}}
    })))
    .await;
    assert_eq!(hub.servers()[0].state, ServerState::Connected);

    // Each call sleeps 0.5 s on the server; one after the other they would take 5 s.
    let started = Instant::now();
    let calls = (0..10).map(|_| {
        hub.call(
            "everything",
            "trigger-long-running-operation",
            args(json!({"duration": 0.5, "steps": 1})),
        )
    });
    let results = futures::future::join_all(calls).await;
    let elapsed = started.elapsed();
    for result in results {
        let result = result.unwrap();
        assert!(
            text(&result).starts_with("Long running operation completed"),
            "{result:?}"
        );
    }
    eprintln!("10 concurrent 0.5 s calls took {elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(2500),
        "calls did not overlap: {elapsed:?}"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_call_timeout() {
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {"everything": {"command": everything()}},
        "isola": {"callTimeoutMs": 400}
    })))
    .await;
    let started = Instant::now();
    let error = hub
        .call(
            "everything",
            "trigger-long-running-operation",
            args(json!({"duration": 5, "steps": 5})),
        )
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    match &error {
        CallError::Timeout { server, tool, ms } => {
            assert_eq!(
                (server.as_str(), tool.as_str(), *ms),
                ("everything", "trigger-long-running-operation", 400)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("timed out after 400 ms\nhint: raise `isola.callTimeoutMs`"),
        "{error}"
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    // The connection is still good.
    let echo = hub
        .call("everything", "echo", args(json!({"message": "still here"})))
        .await
        .unwrap();
    assert_eq!(text(&echo), "Echo: still here");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_kill() {
    let hub = McpHub::connect(&config(json!({
        "mcpServers": {"everything": {"command": everything()}}
    })))
    .await;
    let mut events = hub.subscribe();
    let before = hub.server("everything").unwrap();
    assert_eq!(before.state, ServerState::Connected);
    let old_pid = before.pid.unwrap();

    kill_9(old_pid);
    let died = wait_for(&mut events, 10, |e| {
        matches!(e, HubEvent::ServerDied { .. })
    })
    .await;
    let HubEvent::ServerDied { server, reason } = died else {
        unreachable!()
    };
    assert_eq!(server, "everything");
    assert!(reason.contains("exited"), "{reason}");
    assert!(matches!(
        hub.server("everything").unwrap().state,
        ServerState::Disconnected(_)
    ));

    let started = Instant::now();
    let echo = hub
        .call("everything", "echo", args(json!({"message": "back"})))
        .await
        .unwrap();
    eprintln!("call with restart took {:?}", started.elapsed());
    assert_eq!(text(&echo), "Echo: back");
    wait_for(&mut events, 5, |e| {
        *e == HubEvent::ServerRestarted {
            server: "everything".into(),
        }
    })
    .await;

    let after = hub.server("everything").unwrap();
    assert_eq!(after.state, ServerState::Connected);
    assert_ne!(after.pid, Some(old_pid));
    assert_eq!(tool_names(&after), tool_names(&before));
    hub.shutdown().await;
}
