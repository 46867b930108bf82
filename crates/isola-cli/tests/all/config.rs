//! Mistakes a user can make in setting up, and what they are told.

use crate::support::{Project, isola_in, server_bin};

#[test]
fn no_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.ts"), "return 1").unwrap();
    let run = isola_in(dir.path(), &["exec", "x.ts"]);
    assert_eq!(run.code(), 2);
    let err = run.stderr();
    assert!(err.contains("isola.json"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn invalid_json_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("isola.json"),
        "{\n  \"mcpServers\": {,\n}\n",
    )
    .unwrap();
    let run = isola_in(dir.path(), &["tools"]);
    assert_eq!(run.code(), 2);
    let err = run.stderr();
    assert!(err.contains("isola.json") && err.contains(":2:"), "{err}");
}

#[test]
fn a_server_that_fails_to_start_is_reported_and_the_others_work() {
    let p = Project::new();
    let config = serde_json::json!({"mcpServers": {
        "everything": {"command": server_bin("mcp-server-everything")},
        "ghost": {"command": "/nonexistent/mcp-server"},
    }});
    p.write("isola.json", &config.to_string());
    p.write(
        "ok.ts",
        "return await everything.echo({ message: 'still works' })",
    );
    let run = p.isola(&["exec", "ok.ts"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.stdout().trim(), "Echo: still works");
    let err = run.stderr();
    assert!(
        err.contains("`ghost` is unavailable") && err.contains("/nonexistent/mcp-server"),
        "{err}"
    );

    p.write("ghost.ts", "return await ghost.anything({})");
    let run = p.isola(&["exec", "ghost.ts", "--json"]);
    assert_eq!(run.code(), 1);
    assert_eq!(
        run.json()["error"]["message"],
        serde_json::json!("ghost is not defined")
    );
}

#[test]
fn a_missing_script_file() {
    let p = Project::new();
    let run = p.isola(&["exec", "nope.ts"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("cannot read the script nope.ts"),
        "{}",
        run.stderr()
    );
}

/// Every limit has a range, checked the same way for flags and the config file.
#[test]
fn limits_out_of_range_are_refused_naming_key_value_and_range() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("isola.json"), r#"{"mcpServers": {}}"#).unwrap();
    std::fs::write(dir.path().join("x.ts"), "return 1").unwrap();
    for (flag, value, expect) in [
        (
            "--memory-mb",
            "0",
            "0 is out of range: it takes 4 to 8192 (MiB)",
        ),
        ("--memory-mb", "1000000", "1000000 is out of range"),
        ("--stack-kb", "0", "it takes 64 to 4096 (KiB)"),
        ("--concurrency", "0", "it takes 1 to 256 (calls)"),
        ("--max-tool-calls", "0", "it takes 1 to 1000000 (calls)"),
    ] {
        let run = isola_in(dir.path(), &["exec", flag, value, "x.ts"]);
        assert_eq!(run.code(), 2, "{flag} {value}");
        assert!(
            run.stderr().contains(flag) && run.stderr().contains(expect),
            "{flag} {value}: {}",
            run.stderr()
        );
    }
    std::fs::write(
        dir.path().join("isola.json"),
        r#"{"mcpServers": {}, "isola": {"limits": {"deadlineMs": 0}}}"#,
    )
    .unwrap();
    let run = isola_in(dir.path(), &["exec", "x.ts"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains(
            "isola.limits.deadlineMs: 0 is out of range: deadlineMs takes 1 to 86400000 ms"
        ),
        "{}",
        run.stderr()
    );
}
