//! `isola tools` and `isola types`.

use serde_json::json;

use crate::support::Project;

#[test]
fn tools_lists_servers_states_and_functions() {
    let p = Project::new();
    let run = p.isola(&["tools", "--json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let all = run.json();
    let seccomp = all["sandbox"]["hardening"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "seccomp")
        .unwrap();
    assert_eq!(seccomp["active"], json!(true), "{all:#}");
    let list = &all["servers"];
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["everything", "fs"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == json!("connected"))
    );
    let fs_tools = list[1]["tools"].as_array().unwrap();
    assert!(
        fs_tools
            .iter()
            .any(|t| t["name"] == json!("read_text_file")
                && t["function"] == json!("fs.readTextFile"))
    );

    let text = p.isola(&["tools"]).stdout();
    assert!(text.contains("everything  [connected]"), "{text}");
    assert!(
        text.contains("sandbox: worker processes; hardening: user_ns ")
            && text.contains(", pid_ns ")
            && text.contains("no_new_privs ✓, rlimits ✓, seccomp ✓"),
        "{text}"
    );
    assert!(
        text.contains("everything.getSum  (tool `get-sum`)"),
        "{text}"
    );
}

#[test]
fn types_prints_declarations_for_the_named_servers() {
    let p = Project::new();
    let run = p.isola(&["types", "fs"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let ts = run.stdout();
    assert!(ts.contains("declare namespace fs"), "{ts}");
    assert!(ts.contains("function readTextFile("), "{ts}");
    assert!(!ts.contains("declare namespace everything"));

    let compact = p.isola(&["types", "--compact"]).stdout();
    assert!(
        compact.lines().any(|l| l.starts_with("everything.getSum(")),
        "{compact}"
    );

    let run = p.isola(&["types", "nope"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("no server `nope`"),
        "{}",
        run.stderr()
    );
}
