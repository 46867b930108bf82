//! The MCP Inspector's CLI (`@modelcontextprotocol/inspector --cli`, pinned in
//! `fixtures/conformance`, run with the Node 22 of `fixtures/node22`) as the host of
//! `isola mcp --config <cfg>` over stdio: it lists Isola's tools and calls them, and we assert
//! on its JSON output (`--format json`).

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::conformance::{conformance_fixture, node22};
use crate::support::Project;

/// Run the Inspector's CLI with `args` against `isola mcp --config <project>/isola.json
/// ISOLA_ARGS`; the JSON it printed (`{"result": ...}`).
fn inspector(project: &Project, isola_args: &[&str], args: &[&str]) -> Value {
    inspector_exits(project, isola_args, args, 0)
}

/// [`inspector`] expecting exit code `code` (5: the tool returned `isError: true`).
fn inspector_exits(project: &Project, isola_args: &[&str], args: &[&str], code: i32) -> Value {
    let launcher =
        conformance_fixture("@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    // The Inspector keeps a catalog and secrets under $HOME: keep them in the project.
    let home = project.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = project.path().join("isola.json");
    let output = Command::new(node22())
        .arg(launcher)
        .args(["--cli", "--format", "json", "--quiet"])
        .args(args)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_isola"))
        .args(["mcp", "--config", config.to_str().unwrap()])
        .args(isola_args)
        .current_dir(project.path())
        .env("HOME", &home)
        .env_remove("ISOLA_CONFIG")
        .env_remove("ISOLA_MCP_EMBED_MAX_TOKENS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "the Inspector exited ({:?}) on {args:?}:\n{stdout}\n{stderr}",
        output.status
    );
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the Inspector printed no JSON ({e}):\n{stdout}\n{stderr}"));
    json["result"].clone()
}

fn tool_names(result: &Value) -> Vec<&str> {
    result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

/// The text blocks of a tool result, joined.
fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

const SCRIPT: &str = r#"const sum = await everything.getSum({ a: 19, b: 23 });
const echo = await everything.echo({ message: "from the inspector" });
const file = await fs.readTextFile({ path: "data/a.txt" });
return { sum, echo, first: file.content.split("\n")[0] };"#;

#[test]
fn lists_and_calls_execute_over_stdio() {
    let p = Project::new();
    let script = SCRIPT.replace("data/a.txt", p.data().join("a.txt").to_str().unwrap());

    let list = inspector(&p, &[], &["--method", "tools/list"]);
    // `resume` too: the journal is on (the default store).
    assert_eq!(tool_names(&list), ["execute", "resume"], "{list:#}");
    let execute = &list["tools"][0];
    let description = execute["description"].as_str().unwrap();
    for needle in [
        "declare namespace everything",
        "declare namespace fs",
        "getSum",
        "readTextFile",
    ] {
        assert!(
            description.contains(needle),
            "no {needle:?} in {description}"
        );
    }
    assert_eq!(
        execute["inputSchema"]["required"],
        serde_json::json!(["code"])
    );

    // Both handshakes: `initialize` (legacy) and the 2026-07-28 stateless protocol (modern).
    for era in ["legacy", "modern"] {
        let code = format!("code={script}");
        let result = inspector(
            &p,
            &[],
            &[
                "--protocol-era",
                era,
                "--method",
                "tools/call",
                "--tool-name",
                "execute",
                "--tool-arg",
                &code,
            ],
        );
        assert_ne!(result["isError"], Value::Bool(true), "{era}: {result:#}");
        let value = &result["structuredContent"]["result"];
        assert_eq!(
            value["sum"], "The sum of 19 and 23 is 42.",
            "{era}: {result:#}"
        );
        assert_eq!(
            value["echo"], "Echo: from the inspector",
            "{era}: {result:#}"
        );
        assert_eq!(value["first"], "alpha", "{era}: {result:#}");
        let text = text(&result);
        assert!(
            text.contains("3 calls: everything.getSum ×1, everything.echo ×1, fs.readTextFile ×1"),
            "{era}: {text}"
        );
    }
}

#[test]
fn search_and_describe_over_stdio() {
    let p = Project::new();
    let search_mode = ["--embed-max-tokens", "0"];

    let list = inspector(&p, &search_mode, &["--method", "tools/list"]);
    assert_eq!(
        tool_names(&list),
        ["search", "describe", "execute", "resume"],
        "{list:#}"
    );

    let found = inspector(
        &p,
        &search_mode,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "search",
            "--tool-arg",
            "query=read a text file",
        ],
    );
    let found = text(&found);
    assert!(
        found
            .lines()
            .take(3)
            .any(|l| l.starts_with("fs.readTextFile(")),
        "{found}"
    );

    let described = inspector(
        &p,
        &search_mode,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "describe",
            "--tool-args-json",
            r#"{"names": ["everything.getSum"]}"#,
        ],
    );
    let described = text(&described);
    assert!(
        described.contains("declare namespace everything"),
        "{described}"
    );
    assert!(described.contains("getSum("), "{described}");
    assert!(!described.contains("echo("), "{described}");
}

#[test]
fn a_failing_script_is_an_error_result() {
    let p = Project::new();
    let result = inspector_exits(
        &p,
        &[],
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "execute",
            "--tool-arg",
            "code=await everything.echo({ message: 'x' });\nthrow new Error('boom from the script');",
        ],
        5,
    );
    assert_eq!(result["isError"], Value::Bool(true), "{result:#}");
    let text = text(&result);
    assert!(text.contains("boom from the script"), "{text}");
    assert!(text.contains("--> script.ts:2:11"), "{text}");
    assert_eq!(result["structuredContent"]["error"]["kind"], "runtime");
}

/// A call held for approval longer than `approvals.suspendAfterMs` ends `execute` with the
/// suspension and how to go on; once `isola approvals` approved it, the `resume` tool runs the
/// script on from the journal (the earlier write not sent again) and returns its result.
#[test]
fn a_suspended_execution_resumes_through_the_resume_tool() {
    let p = Project::new().with_isola(serde_json::json!({
        "approvals": {"suspendAfterMs": 200},
        "effects": {"fs": {"write_file": "write", "create_directory": "destructive"}},
    }));
    let store = format!("sqlite:{}", p.path().join("store.db").display());
    let d = p.data().display().to_string();
    let code = format!(
        "code=await fs.writeFile({{ path: \"{d}/first.txt\", content: \"1\" }});\nawait fs.createDirectory({{ path: \"{d}/sub\" }});\nreturn \"done\";"
    );
    let call = |tool: &str, arg: &str, exit: i32| {
        inspector_exits(
            &p,
            &["--store", &store],
            &[
                "--method",
                "tools/call",
                "--tool-name",
                tool,
                "--tool-arg",
                arg,
            ],
            exit,
        )
    };
    let suspended = call("execute", &code, 5);
    let said = text(&suspended);
    assert_eq!(
        suspended["structuredContent"]["error"]["kind"], "suspended",
        "{suspended:#}"
    );
    assert!(said.contains("the `resume` tool with execution"), "{said}");
    let id = said
        .split("`isola resume ")
        .nth(1)
        .and_then(|t| t.split('`').next())
        .unwrap()
        .to_string();
    assert!(!p.data().join("sub").exists());
    std::fs::remove_file(p.data().join("first.txt")).unwrap();
    let ok = p.isola(&[
        "--store",
        &store,
        "approvals",
        "approve",
        &format!("ap-{id}-2"),
    ]);
    assert_eq!(ok.code(), 0, "{}", ok.stderr());

    let resumed = call("resume", &format!("execution={id}"), 0);
    assert_eq!(
        resumed["structuredContent"]["result"], "done",
        "{resumed:#}"
    );
    assert!(p.data().join("sub").is_dir());
    assert!(!p.data().join("first.txt").exists(), "not sent again");
    // Done: a second resume is refused, saying why.
    let again = call("resume", &format!("execution={id}"), 5);
    assert!(text(&again).contains("it has finished (ok)"), "{again:#}");
}
