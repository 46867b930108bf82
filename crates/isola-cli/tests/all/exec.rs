//! `isola exec` end to end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use isola_engine::{Engine, ExecOptions};
use isola_protocol::Limits;
use isola_worker::{Backend, WorkerCommand, WorkerPool};
use serde_json::{Value, json};

use crate::support::Project;

#[test]
fn promise_all_over_two_servers_runs_the_calls_concurrently() {
    let p = Project::new();
    let data = p.data();
    let script = format!(
        r#"
const names: string[] = ["a.txt", "b.txt", "c.txt"];
const [sum, slow, ...files] = await Promise.all([
  everything.getSum({{ a: 40, b: 2 }}),
  everything.triggerLongRunningOperation({{ duration: 0.6, steps: 1 }}),
  ...names.map((n) => fs.readTextFile({{ path: `{dir}/${{n}}` }})),
]);
const lines = files.map((f: any) => f.content.split("\n")[0]);
console.log("read", files.length, "files");
return {{ sum, lines }};
"#,
        dir = data.display()
    );
    p.write("all.ts", &script);
    let run = p.isola(&["exec", "all.ts", "--json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let rec = run.json();
    assert_eq!(rec["ok"], json!(true));
    assert_eq!(rec["result"]["lines"], json!(["alpha", "beta", "gamma"]));
    assert!(
        rec["result"]["sum"].to_string().contains("42"),
        "{}",
        rec["result"]
    );
    assert_eq!(rec["logs"][0]["text"], json!("read 3 files"));
    let calls = rec["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 5);
    let span = |c: &Value| {
        let start = c["startedMs"].as_f64().unwrap();
        (start, start + c["durationMs"].as_f64().unwrap())
    };
    // The 0.6 s operation on one server overlaps every read on the other: they ran in parallel.
    let slow = calls
        .iter()
        .find(|c| c["function"] == json!("everything.triggerLongRunningOperation"))
        .unwrap();
    let (slow_start, slow_end) = span(slow);
    assert!(slow_end - slow_start >= 500.0, "{slow}");
    let reads: Vec<&Value> = calls
        .iter()
        .filter(|c| c["function"] == json!("fs.readTextFile"))
        .collect();
    assert_eq!(reads.len(), 3);
    for r in reads {
        let (start, end) = span(r);
        assert!(
            start < slow_end && slow_start < end,
            "no overlap: {r} vs {slow}"
        );
    }
    // And the whole script took about as long as the slowest call, not the sum.
    assert!(
        rec["timings"]["runMs"].as_f64().unwrap() < slow_end + 500.0,
        "{}",
        rec["timings"]
    );
}

#[test]
fn a_native_operation_is_stopped_at_a_2s_deadline() {
    let p = Project::new();
    p.write("join.ts", "console.log('start');\nArray(2**32-1).join();\n");
    let run = p.isola(&["exec", "join.ts", "--timeout", "2s", "--json"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let rec = run.json();
    assert_eq!(rec["error"]["kind"], json!("limit"));
    assert_eq!(rec["error"]["limit"], json!("deadline"));
    assert!(
        rec["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline of 2000 ms"),
        "{}",
        rec["error"]
    );
    let run_ms = rec["timings"]["runMs"].as_f64().unwrap();
    assert!(run_ms < 2500.0, "took {run_ms} ms");
    assert_eq!(
        rec["logs"][0]["text"],
        json!("start"),
        "logs before the kill are kept"
    );
}

/// In one process: a worker killed at the deadline is replaced and the next execution works.
#[tokio::test]
async fn the_next_execution_after_a_deadline_kill_works() {
    let command = WorkerCommand {
        program: env!("CARGO_BIN_EXE_isola").into(),
        args: vec!["__worker".into()],
    };
    let engine = Engine::new(
        Arc::new(isola_test_support::tools::InstantTools::NONE),
        Backend::Workers(WorkerPool::new(command, 1)),
        Limits {
            deadline_ms: 2000,
            ..Limits::default()
        },
    );
    for script in ["Array(2**32-1).join()", "[].concat(Array(2**32-1))"] {
        let t = Instant::now();
        let rec = engine.execute(script, ExecOptions::default()).await;
        assert!(
            t.elapsed() < Duration::from_millis(2500),
            "{script} took {:?}",
            t.elapsed()
        );
        let err = rec.error.unwrap();
        assert_eq!(
            err.limit,
            Some(isola_protocol::LimitKind::Deadline),
            "{err:?}"
        );
        let next = engine
            .execute("const n: number = 7; return n * 6", ExecOptions::default())
            .await;
        assert_eq!(next.result, json!(42), "{:?}", next.error);
    }
}

#[test]
fn a_syntax_error_names_line_and_column_with_a_code_frame() {
    let p = Project::new();
    p.write(
        "syntax.ts",
        "const a: number = 1;\nconst b = {\n  x: 1,,\n};\nreturn a;\n",
    );
    let run = p.isola(&["exec", "syntax.ts"]);
    assert_eq!(run.code(), 1);
    let err = run.stderr();
    assert!(err.contains("error[syntax]"), "{err}");
    assert!(err.contains("--> syntax.ts:3:8"), "{err}");
    assert!(err.contains("> 3 |   x: 1,,"), "{err}");
}

#[test]
fn a_runtime_error_stack_points_at_typescript_lines() {
    let p = Project::new();
    p.write(
        "runtime.ts",
        "interface Point {\n  x: number;\n  y: number;\n}\n\ntype Maybe<T> = T | undefined;\n\nfunction norm(p: Maybe<Point>): number {\n  return Math.sqrt(p!.x * p!.x);\n}\n\nreturn norm(undefined);\n",
    );
    let run = p.isola(&["exec", "runtime.ts", "--json"]);
    assert_eq!(run.code(), 1);
    let rec = run.json();
    let err = &rec["error"];
    assert_eq!(err["kind"], json!("runtime"));
    assert_eq!(err["name"], json!("TypeError"));
    assert_eq!(err["position"]["line"], json!(9), "{err}");
    let stack = err["stack"].as_str().unwrap();
    assert!(stack.contains("at norm (runtime.ts:9:"), "{stack}");
    assert!(stack.contains("runtime.ts:12:"), "{stack}");
    assert!(
        err["codeFrame"]
            .as_str()
            .unwrap()
            .contains("9 |   return Math.sqrt(p!.x"),
        "{err}"
    );
}

#[test]
fn tool_errors_are_catchable_and_uncaught_ones_name_the_tool() {
    let p = Project::new();
    p.write(
        "caught.ts",
        "try { await fs.readTextFile({ path: '/etc/passwd' }); return 'read it'; }\ncatch (e: any) { return { name: e.name, tool: e.tool, denied: /denied|outside|not allowed/i.test(e.message) }; }\n",
    );
    let rec = p.isola(&["exec", "caught.ts", "--json"]).json();
    assert_eq!(
        rec["result"],
        json!({"name": "ToolError", "tool": "fs.readTextFile", "denied": true}),
        "{rec}"
    );

    p.write(
        "uncaught.ts",
        "const x = 1;\nawait fs.readTextFile({ path: '/etc/passwd' });\n",
    );
    let rec = p.isola(&["exec", "uncaught.ts", "--json"]).json();
    assert_eq!(rec["error"]["kind"], json!("tool"));
    assert_eq!(rec["error"]["tool"], json!("fs.readTextFile"));
    assert_eq!(rec["error"]["position"]["line"], json!(2), "{rec}");
    assert_eq!(rec["calls"][0]["ok"], json!(false));
}

#[test]
fn bad_arguments_to_a_tool_are_rejected_with_the_path() {
    let p = Project::new();
    p.write(
        "args.ts",
        "return await everything.getSum({ a: 'one', b: 2 });\n",
    );
    let run = p.isola(&["exec", "args.ts", "--json"]);
    assert_eq!(run.code(), 1);
    let err = &run.json()["error"];
    assert_eq!(err["kind"], json!("tool"), "{err}");
    assert_eq!(err["name"], json!("ValidationError"));
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("`/a`") && msg.contains("number"), "{msg}");
}

#[test]
fn scripts_can_come_from_stdin_and_use_the_async_arrow_form() {
    let p = Project::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["exec", "-"])
        .current_dir(p.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"async () => {\n  const r = await everything.echo({ message: 'hey' });\n  return r;\n}\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Echo: hey");
}

#[test]
fn limits_can_be_set_by_flags() {
    let p = Project::new();
    p.write(
        "calls.ts",
        "for (let i = 0; i < 10; i++) await everything.echo({ message: String(i) });\n",
    );
    let rec = p
        .isola(&["exec", "calls.ts", "--json", "--max-tool-calls", "3"])
        .json();
    assert_eq!(rec["error"]["limit"], json!("toolCalls"), "{rec}");
    assert_eq!(rec["calls"].as_array().unwrap().len(), 3);

    p.write(
        "big.ts",
        "console.log('x'.repeat(100)); return 'y'.repeat(5000);\n",
    );
    let rec = p
        .isola(&[
            "exec",
            "big.ts",
            "--json",
            "--max-result-bytes",
            "100",
            "--max-log-bytes",
            "10",
        ])
        .json();
    assert_eq!(rec["ok"], json!(true));
    let result = rec["result"].as_str().unwrap();
    assert!(
        result.ends_with("…[isola: truncated, 4902 more bytes dropped]"),
        "{result}"
    );
    assert_eq!(rec["resultTruncated"]["droppedBytes"], json!(4902));
    assert_eq!(rec["logs"][0]["text"], json!("xxxxxxxxxx"));
    assert_eq!(rec["logsTruncated"]["droppedBytes"], json!(90));
    assert!(
        rec["logs"][1]["text"]
            .as_str()
            .unwrap()
            .contains("90 bytes dropped")
    );

    p.write(
        "mem.ts",
        "const a: string[] = []; while (true) a.push('x'.repeat(65536) + a.length);\n",
    );
    let rec = p
        .isola(&["exec", "mem.ts", "--json", "--memory-mb", "32"])
        .json();
    assert_eq!(rec["error"]["limit"], json!("memory"), "{rec}");
}

#[test]
fn readable_output_shows_result_and_logs() {
    let p = Project::new();
    p.write("hello.ts", "console.warn({ level: 'w' });\nreturn { greeting: await everything.echo({ message: 'hi' }) };\n");
    let run = p.isola(&["exec", "hello.ts"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let result: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(result, json!({"greeting": "Echo: hi"}));
    assert_eq!(run.stderr().trim(), "[warn] {\"level\":\"w\"}");
}

#[test]
fn unknown_functions_get_a_did_you_mean_hint() {
    let p = Project::new();
    p.write(
        "typo.ts",
        "const x = 1;\nreturn await fs.read_text_file({ path: 'a.txt' });\n",
    );
    let rec = p.isola(&["exec", "typo.ts", "--json"]).json();
    let err = &rec["error"];
    assert_eq!(
        err["message"],
        json!("fs.read_text_file is not a function"),
        "{err}"
    );
    assert_eq!(err["hint"], json!("did you mean `fs.readTextFile`?"));
    p.write(
        "ns.ts",
        "return await filesystem.readTextFile({ path: 'a.txt' });\n",
    );
    let rec = p.isola(&["exec", "ns.ts", "--json"]).json();
    assert!(
        rec["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("namespaces are: everything, fs"),
        "{rec}"
    );
}

/// The README's first command runs this; keep it working.
#[test]
fn the_bundled_example_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = crate::support::isola_in(
        &root,
        &[
            "--config",
            "examples/isola.json",
            "exec",
            "examples/demo.ts",
            "--json",
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let rec = run.json();
    assert_eq!(
        rec["result"]["largest"][0]["file"],
        json!("./notes/meeting.txt"),
        "{rec}"
    );
    assert_eq!(rec["result"]["check"], json!("The sum of 12 and 0 is 12."));
    assert_eq!(rec["logs"][0]["text"], json!("read 4 files, 12 lines"));
}

/// Run `isola ARGS` in `dir` on a pseudo-terminal (Python's `pty`); everything it printed.
fn on_a_terminal(dir: &std::path::Path, args: &[&str]) -> String {
    let program = r#"
import os, pty, sys
out = []
def read(fd):
    data = os.read(fd, 65536)
    out.append(data)
    return data
pty.spawn(sys.argv[1:], read)
sys.stdout.buffer.write(b"".join(out))
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(program)
        .arg(env!("CARGO_BIN_EXE_isola"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn control_characters_from_a_script_are_shown_not_obeyed_on_a_terminal() {
    let p = Project::new();
    p.write(
        "evil.ts",
        "console.log('\\x1b]0;pwned\\x07\\x1b[2J log'); return 'r\\x1b[31mesult\\u202e';",
    );
    let screen = on_a_terminal(p.path(), &["exec", "evil.ts"]);
    assert!(!screen.contains('\x1b'), "{screen:?}");
    assert!(!screen.contains('\u{202e}'), "{screen:?}");
    assert!(
        screen.contains("\\x1b]0;pwned\\x07\\x1b[2J log"),
        "{screen:?}"
    );
    assert!(screen.contains("r\\x1b[31mesult\\u{202e}"), "{screen:?}");
    // Into a pipe, the result is as the script made it.
    let run = p.isola(&["exec", "evil.ts"]);
    assert_eq!(run.stdout(), "r\x1b[31mesult\u{202e}\n");
}
