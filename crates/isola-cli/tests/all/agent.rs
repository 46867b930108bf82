//! `isola run` end to end: the real client code against the scripted LLM server
//! (`isola-llm-mock`), real MCP servers behind Isola.

use std::process::Command;

use isola_llm_mock::{Format, MockServer, Recorded, Step};
use serde_json::{Value, json};

use crate::support::{Project, Run};

/// `isola run PROMPT ARGS` with the scripted server as every provider's base URL.
fn run(p: &Project, server: &MockServer, prompt: &str, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_isola"))
        .arg("run")
        .arg(prompt)
        .args(args)
        .current_dir(p.path())
        .env("XDG_DATA_HOME", p.path().join(".isola-data"))
        .env_remove("ISOLA_STORE")
        .env("OPENAI_BASE_URL", server.openai_base())
        .env("ANTHROPIC_BASE_URL", server.url())
        .env("GEMINI_BASE_URL", server.url())
        .env("OPENAI_API_KEY", "sk-test")
        .env("ANTHROPIC_API_KEY", "ak-test")
        .env("GEMINI_API_KEY", "gk-test")
        .env_remove("ISOLA_MODEL")
        .env_remove("ISOLA_CODE_MODEL")
        .output()
        .unwrap();
    Run(output)
}

/// The tool results the client sent back in request `i` (OpenAI format).
fn tool_results(r: &Recorded) -> Vec<String> {
    r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect()
}

fn execute(code: &str) -> Step {
    Step::call("execute", json!({"code": code}))
}

/// Add `isola.agent` settings to the project's config.
fn with_agent(p: &Project, agent: Value) {
    let path = p.path().join("isola.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["isola"] = json!({"agent": agent});
    std::fs::write(path, config.to_string()).unwrap();
}

/// A script that lists the `.txt` files of `dir` and reads them all at once (`names`, `files`),
/// then goes on with `rest`.
fn read_text_files_then(dir: &str, rest: &str) -> String {
    format!(
        "const list = await fs.listDirectory({{ path: \"{dir}\" }});\n\
         const names = list.content.split(\"\\n\").map((l) => l.replace(\"[FILE] \", \"\")).filter((n) => n.endsWith(\".txt\"));\n\
         const files = await Promise.all(names.map((n) => fs.readTextFile({{ path: `{dir}/${{n}}` }})));\n\
         {rest}"
    )
}

/// The execution step of a `--json` transcript.
fn execution_step(transcript: &Value) -> &Value {
    transcript["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "execution")
        .unwrap()
}

/// The last entry of a request body's message list (`messages`, `contents`...).
fn last_entry(body: &Value, list: &str) -> Value {
    body[list].as_array().unwrap().last().unwrap().clone()
}

/// The model's first script has a bug; it gets the mapped error (position, code frame, hint),
/// fixes it, and answers.
#[test]
fn the_model_fixes_its_script_from_the_mapped_error() {
    let p = Project::new();
    let d = p.data().display().to_string();
    let buggy =
        format!("const a = await fs.readTextFil({{ path: \"{d}/a.txt\" }});\nreturn a.content;");
    let fixed = format!(
        "const [a, b] = await Promise.all([\"a.txt\", \"b.txt\"].map((f) => fs.readTextFile({{ path: `{d}/${{f}}` }})));\n\
         const sum = await everything.getSum({{ a: a.content.length, b: b.content.length }});\n\
         return {{ first: a.content.split(\"\\n\")[0], second: b.content.trim(), sum }};"
    );
    let server = MockServer::start(vec![
        execute(&buggy),
        execute(&fixed),
        Step::text("a.txt starts with \"alpha\", b.txt says \"beta\"; together they are 23 characters long."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "What do a.txt and b.txt start with, and how long are they together?",
        &["--model", "openai:gpt-4o-mini", "--json"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let t = out.json();
    assert_eq!(t["stop"]["reason"], "answered");
    assert!(
        t["answer"]
            .as_str()
            .unwrap()
            .starts_with("a.txt starts with")
    );
    let s = &t["summary"];
    assert_eq!(
        (
            s["llmCalls"].as_u64(),
            s["executions"].as_u64(),
            s["failedExecutions"].as_u64(),
            s["debugRetries"].as_u64()
        ),
        (Some(3), Some(2), Some(1), Some(1))
    );
    let steps = t["steps"].as_array().unwrap();
    let executions: Vec<&Value> = steps.iter().filter(|s| s["type"] == "execution").collect();
    assert_eq!(executions[1]["record"]["result"]["first"], "alpha");
    assert_eq!(
        executions[1]["record"]["calls"].as_array().unwrap().len(),
        3
    );

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    // The tool the model saw: Code Mode with the API embedded.
    let tool = &reqs[0].body["tools"][0]["function"];
    assert_eq!(tool["name"], "execute");
    assert!(
        tool["description"]
            .as_str()
            .unwrap()
            .contains("declare namespace fs"),
        "{tool}"
    );
    // What went back after the bug: kind, message, TS position, code frame, hint, attempts.
    let feedback = &tool_results(&reqs[1])[0];
    for part in [
        "error[runtime]: TypeError: fs.readTextFil is not a function",
        "--> script.ts:1:",
        "> 1 | const a = await fs.readTextFil",
        "hint: did you mean `fs.readTextFile`?",
        "failed attempt 1 of 4",
    ] {
        assert!(
            feedback.contains(part),
            "`{part}` missing from:\n{feedback}"
        );
    }
    assert!(
        tool_results(&reqs[2])[1].contains("\"first\":\"alpha\""),
        "{:?}",
        tool_results(&reqs[2])
    );
    // Usage is what the server counted.
    let counted: u64 = reqs.iter().map(|r| r.prompt_tokens).sum();
    assert_eq!(s["inputTokens"].as_u64(), Some(counted));
    assert!(s["costUsd"].as_f64().unwrap() > 0.0);
    assert_eq!(t["llmCalls"][0]["model"], "gpt-4o-mini");
}

/// Without --json: the answer streams to stdout, progress and the summary go to stderr.
#[test]
fn run_streams_the_answer_and_prints_a_summary() {
    let p = Project::new();
    let server = MockServer::start(vec![
        execute("return await everything.getSum({ a: 40, b: 2 })"),
        Step::text("The sum is 42."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "Add 40 and 2 with the tool.",
        &["--model", "openai:gpt-4o"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert_eq!(out.stdout(), "The sum is 42.\n");
    let err = out.stderr();
    assert!(err.contains("▸ execute #1 (1 line)"), "{err}");
    assert!(err.contains("  ✓ "), "{err}");
    assert!(err.contains("— 2 LLM calls · "), "{err}");
    assert!(err.contains(" · 1 execution · "), "{err}");
    assert!(
        server.requests().iter().all(|r| r.stream),
        "streamed by default"
    );
}

/// Every script an agent run executes is journaled: a session of its own, origin `agent`, and
/// `--store none` leaves nothing behind.
#[test]
fn agent_runs_are_journaled() {
    let p = Project::new();
    let server = MockServer::start(vec![
        execute("return await everything.getSum({ a: 40, b: 2 })"),
        Step::text("The sum is 42."),
    ])
    .unwrap();
    let out = run(&p, &server, "Add 40 and 2.", &["--model", "openai:gpt-4o"]);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let list = p.isola(&["journal", "list", "--json"]);
    assert_eq!(list.code(), 0, "{}", list.stderr());
    let rows: Value = serde_json::from_str(&list.stdout()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["origin"], "agent", "{rows:?}");
    assert!(
        rows[0]["session"].as_str().unwrap().starts_with("run-"),
        "{rows:?}"
    );
    assert_eq!(rows[0]["calls"].as_array().unwrap().len(), 1, "{rows:?}");

    let p = Project::new();
    let server = MockServer::start(vec![
        execute("return await everything.getSum({ a: 1, b: 2 })"),
        Step::text("3."),
    ])
    .unwrap();
    let args = ["--model", "openai:gpt-4o", "--store", "none"];
    let out = run(&p, &server, "Add 1 and 2.", &args);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert!(!p.path().join(".isola-data").exists());
}

/// A multi-tool task over Anthropic's wire format (streamed).
#[test]
fn anthropic_wire_format_completes_a_multi_tool_task() {
    let p = Project::new();
    let d = p.data().display().to_string();
    let code = read_text_files_then(
        &d,
        "const lines = files.map((f) => f.content.trim().split(\"\\n\").length);\n\
         const total = await everything.getSum({ a: lines[0] + lines[1], b: lines[2] });\n\
         return { names, lines, total };",
    );
    let server = MockServer::start(vec![
        Step::call("execute", json!({"code": code}))
            .with_text("I'll count the lines in one script."),
        Step::text("There are 3 files with 2, 1 and 3 lines: 6 lines in all."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "How many lines do the text files have in all?",
        &["--model", "anthropic:claude-sonnet-4-5", "--json"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let t = out.json();
    assert_eq!(
        t["answer"],
        "There are 3 files with 2, 1 and 3 lines: 6 lines in all."
    );
    let exec = execution_step(&t);
    assert_eq!(
        exec["record"]["result"]["lines"],
        json!([2, 1, 3]),
        "{exec}"
    );
    assert_eq!(exec["record"]["calls"].as_array().unwrap().len(), 5);
    let reqs = server.requests();
    assert!(
        reqs.iter()
            .all(|r| r.format == Some(Format::Anthropic) && r.stream && r.path == "/v1/messages")
    );
    assert_eq!(reqs[0].header("x-api-key"), Some("ak-test"));
    assert_eq!(reqs[0].body["tools"][0]["name"], "execute");
    // The result went back as a tool_result block.
    let last = last_entry(&reqs[1].body, "messages");
    assert_eq!(last["content"][0]["type"], "tool_result", "{last}");
    assert!(
        last["content"][0]["content"]
            .as_str()
            .unwrap()
            .contains("\"lines\":[2,1,3]"),
        "{last}"
    );
}

/// The same kind of task over Gemini's wire format (`streamGenerateContent`, function calls and
/// responses as parts).
#[test]
fn gemini_wire_format_completes_a_multi_tool_task() {
    let p = Project::new();
    let d = p.data().display().to_string();
    let code = read_text_files_then(
        &d,
        "return files.map((f) => f.content.trim().split(\"\\n\").length);",
    );
    let server = MockServer::start(vec![
        Step::call("execute", json!({"code": code})),
        Step::text("The files have 2, 1 and 3 lines."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "How many lines does each text file have?",
        &["--model", "gemini:gemini-2.5-flash", "--json"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let t = out.json();
    assert_eq!(t["answer"], "The files have 2, 1 and 3 lines.");
    let exec = execution_step(&t);
    assert_eq!(exec["record"]["result"], json!([2, 1, 3]), "{exec}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.format == Some(Format::Gemini)
        && r.path.contains("gemini-2.5-flash:streamGenerateContent")));
    assert_eq!(reqs[0].header("x-goog-api-key"), Some("gk-test"));
    // The execution's result went back as a functionResponse part.
    let last = last_entry(&reqs[1].body, "contents");
    let response = &last["parts"][0]["functionResponse"];
    assert_eq!(response["name"], "execute", "{last}");
    assert!(response.to_string().contains("[2,1,3]"), "{last}");
}

/// Two-step: the agent model describes, the code model writes, the script runs.
#[test]
fn two_step_mode() {
    let p = Project::new();
    let d = p.data().display().to_string();
    let task = format!("Read {d}/c.txt with fs.readTextFile and return the number of lines.");
    let server = MockServer::start(vec![
        Step::call("run_task", json!({"task": task})),
        Step::text("Here it is:\n```ts\nconst f = await fs.readTextFile({ path: \"C\" });\nreturn f.content.trim().split(\"\\n\").length;\n```".replace('C', &format!("{d}/c.txt"))),
        Step::text("c.txt has 3 lines."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "How many lines does c.txt have?",
        &[
            "--model",
            "openai:agent-model",
            "--code-model",
            "openai:code-model",
            "--mode",
            "two-step",
            "--json",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let t = out.json();
    assert_eq!(t["mode"], "two-step");
    assert_eq!(t["answer"], "c.txt has 3 lines.");
    let reqs = server.requests();
    let models: Vec<String> = reqs.iter().map(|r| r.model().unwrap()).collect();
    assert_eq!(models, ["agent-model", "code-model", "agent-model"]);
    assert_eq!(reqs[0].body["tools"][0]["function"]["name"], "run_task");
    // The code model got the API and the description, and no tools.
    let code_req = &reqs[1].body;
    assert!(
        code_req["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("declare namespace fs")
    );
    assert_eq!(code_req["messages"][1]["content"], task);
    assert!(code_req.get("tools").is_none());
    assert_eq!(
        tool_results(&reqs[2])[0].trim_end().lines().next(),
        Some("3")
    );
    assert_eq!(t["summary"]["llmCalls"], 3);
}

/// Tools mode: one MCP tool per JSON tool, one call per round trip.
#[test]
fn tools_mode() {
    let p = Project::new();
    let d = p.data().display().to_string();
    let server = MockServer::start(vec![
        Step::call("fs__read_text_file", json!({"path": format!("{d}/c.txt")})),
        Step::call("everything__get-sum", json!({"a": 3, "b": 1})),
        Step::text("c.txt has 3 lines; plus one makes 4."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "Count the lines of c.txt and add one.",
        &["--model", "openai:gpt-4o-mini", "--mode", "tools", "--json"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let t = out.json();
    assert_eq!(t["summary"]["executions"], 2);
    assert_eq!(t["summary"]["llmCalls"], 3);
    let reqs = server.requests();
    let names: Vec<&str> = reqs[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"fs__read_text_file") && names.contains(&"everything__get-sum"),
        "{names:?}"
    );
    assert!(
        tool_results(&reqs[1])[0].contains("gamma\nthird\nfile"),
        "{:?}",
        tool_results(&reqs[1])
    );
    assert!(
        tool_results(&reqs[2])[1].contains('4'),
        "{:?}",
        tool_results(&reqs[2])
    );
}

/// 429 with Retry-After, then success: the wait is honoured and recorded.
#[test]
fn rate_limited_then_answered() {
    let p = Project::new();
    let server = MockServer::start(vec![
        Step::status(429).retry_after("1"),
        Step::text("Hello."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "Say hello.",
        &["--model", "openai:gpt-4o-mini", "--json"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let t = out.json();
    let calls = t["llmCalls"].as_array().unwrap();
    assert_eq!(
        (calls[0]["outcome"].as_str(), calls[0]["status"].as_u64()),
        (Some("rateLimited"), Some(429))
    );
    assert_eq!(
        (calls[1]["outcome"].as_str(), calls[1]["waitedMs"].as_f64()),
        (Some("ok"), Some(1000.0))
    );
    assert_eq!(t["summary"]["providerRetries"], 1);
    let reqs = server.requests();
    assert!(reqs[1].at - reqs[0].at >= std::time::Duration::from_secs(1));
}

/// A 500 from the primary (no retries configured): the fallback, another provider, answers.
#[test]
fn server_error_falls_back_to_the_secondary() {
    let p = Project::new();
    with_agent(
        &p,
        json!({"retry": {"maxRetries": 0}, "fallback": ["anthropic:claude-haiku-4-5"]}),
    );
    let server =
        MockServer::start(vec![Step::status(500), Step::text("From the secondary.")]).unwrap();
    let out = run(
        &p,
        &server,
        "Say something.",
        &["--model", "openai:primary"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert_eq!(out.stdout(), "From the secondary.\n");
    assert!(
        out.stderr()
            .contains("↻ openai:primary serverError: HTTP 500"),
        "{}",
        out.stderr()
    );
    let reqs = server.requests();
    assert_eq!(
        (reqs[0].format, reqs[0].model().as_deref()),
        (Some(Format::OpenAi), Some("primary"))
    );
    assert_eq!(
        (reqs[1].format, reqs[1].model().as_deref()),
        (Some(Format::Anthropic), Some("claude-haiku-4-5"))
    );
}

/// Malformed tool-call JSON from the model: a clear error goes back, the model retries.
#[test]
fn malformed_tool_call_gets_a_clear_error() {
    let p = Project::new();
    let server = MockServer::start(vec![
        Step::raw_call("execute", r#"{"code": "return 6 * 7"#),
        execute("return 6 * 7"),
        Step::text("42"),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "Compute 6 × 7 in the sandbox.",
        &["--model", "openai:gpt-4o-mini", "--json"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let feedback = &tool_results(&server.requests()[1])[0];
    assert!(
        feedback.starts_with(
            "error: the arguments of `execute` are not valid JSON (EOF while parsing a string"
        ),
        "{feedback}"
    );
    assert!(feedback.contains("nothing was run"), "{feedback}");
    let t = out.json();
    assert_eq!(
        t["summary"]["executions"], 1,
        "the malformed call ran nothing"
    );
    assert_eq!(t["steps"][1]["type"], "tool");
    assert_eq!(t["steps"][1]["ok"], false);
}

/// A stream cut mid-answer: a clear error, exit 1, and no call recorded as a success.
#[test]
fn cut_stream_is_reported_and_not_counted_as_success() {
    let p = Project::new();
    let server = MockServer::start(vec![
        Step::text("This answer is going to be cut somewhere in the middle.").cut_after(3),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "Tell me something long.",
        &["--model", "openai:gpt-4o-mini", "--json"],
    );
    assert_eq!(out.code(), 1, "{}", out.stderr());
    let t = out.json();
    assert_eq!(t["stop"]["reason"], "llmFailed");
    assert!(
        t["stop"]["message"]
            .as_str()
            .unwrap()
            .contains("the stream was cut"),
        "{}",
        t["stop"]
    );
    assert_eq!(t["answer"], Value::Null);
    assert!(
        t["llmCalls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["outcome"] == "streamCut"),
        "{}",
        t["llmCalls"]
    );
    assert_eq!(t["summary"]["llmCalls"], 0);

    let server = MockServer::start(vec![
        Step::text("Cut again, this time on the terminal.").cut_after(3),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "Tell me something long.",
        &["--model", "openai:gpt-4o-mini"],
    );
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr()
            .contains("stopped: the model openai:gpt-4o-mini failed: the stream was cut"),
        "{}",
        out.stderr()
    );
}

/// No model anywhere: the error says how to name one.
#[test]
fn no_model_is_a_usage_error() {
    let p = Project::new();
    let out = Run(Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["run", "Hi."])
        .current_dir(p.path())
        .env("XDG_DATA_HOME", p.path().join(".isola-data"))
        .env_remove("ISOLA_STORE")
        .env_remove("ISOLA_MODEL")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_BASE_URL")
        .output()
        .unwrap());
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr()
            .contains("error: no model for the agent\nhint: pass --model"),
        "{}",
        out.stderr()
    );
}

/// `OPENAI_BASE_URL=... isola run "..."` and nothing else: the one model the server lists is
/// used, and a multi-tool task completes.
#[test]
fn a_local_servers_only_model_is_used_when_none_is_named() {
    let p = Project::new();
    let d = p.data().display().to_string();
    let code = format!(
        "const [a, c] = await Promise.all([fs.readTextFile({{ path: \"{d}/a.txt\" }}), fs.readTextFile({{ path: \"{d}/c.txt\" }})]);\n\
         return await everything.getSum({{ a: a.content.length, b: c.content.length }});"
    );
    let server = MockServer::start(vec![
        execute(&code),
        Step::text("Together they are 34 characters."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "How many characters do a.txt and c.txt have together?",
        &[],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert!(
        out.stderr()
            .contains("(model: openai:scripted, the only one http://127.0.0.1:"),
        "{}",
        out.stderr()
    );
    assert_eq!(out.stdout(), "Together they are 34 characters.\n");
    assert!(
        tool_results(&server.requests()[1])[0].contains("The sum of 17 and 17 is 34"),
        "{:?}",
        tool_results(&server.requests()[1])
    );
    assert_eq!(server.requests()[0].model().as_deref(), Some("scripted"));
}

/// `isola chat` over a pipe: one turn per line, history kept, a summary per turn.
#[test]
fn chat_keeps_history_and_summarises_each_turn() {
    use std::io::Write as _;
    let p = Project::new();
    let server = MockServer::start(vec![
        Step::text("Hello, Ada."),
        Step::text("Your name is Ada."),
    ])
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["chat", "--model", "openai:gpt-4o-mini"])
        .current_dir(p.path())
        .env("XDG_DATA_HOME", p.path().join(".isola-data"))
        .env_remove("ISOLA_STORE")
        .env("OPENAI_BASE_URL", server.openai_base())
        .env("OPENAI_API_KEY", "sk-test")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"I am Ada.\n\nWhat is my name?\n/exit\n")
        .unwrap();
    let out = Run(child.wait_with_output().unwrap());
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert_eq!(out.stdout(), "Hello, Ada.\nYour name is Ada.\n");
    assert_eq!(
        out.stderr().matches("— 1 LLM call · ").count(),
        2,
        "{}",
        out.stderr()
    );
    let second = &server.requests()[1].body["messages"];
    assert_eq!(second.as_array().unwrap().len(), 4, "{second}");
    assert_eq!(second[1]["content"], "I am Ada.");
}

/// stdout is the final answer alone: what the model says before its tool calls, and an answer
/// cut at the output cap (asked again), go to stderr or nowhere.
#[test]
fn stdout_is_the_final_answer_alone() {
    let p = Project::new();
    let server = MockServer::start(vec![
        execute("return await everything.getSum({ a: 40, b: 2 })")
            .with_text("Let me add them with the tool first."),
        Step::text("The sum is forty").finish("length"),
        Step::text("The sum is 42."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "Add 40 and 2 with the tool.",
        &["--model", "openai:gpt-4o"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert_eq!(out.stdout(), "The sum is 42.\n");
    let err = out.stderr();
    let said = err
        .find("Let me add them with the tool first.")
        .expect(&err);
    assert!(said < err.find("▸ execute #1").unwrap(), "{err}");
    assert!(
        err.contains(
            "✂ the agent model's answer was cut at the output limit of 2048 tokens; asking again with 4096"
        ),
        "{err}"
    );
}

/// llama.cpp's failed generation inside a stream (`data: {"error": {"code": 500}}`) is retried
/// like an HTTP 500, and the text of the failed attempt never reaches stdout.
#[test]
fn a_server_error_inside_the_stream_is_retried() {
    let p = Project::new();
    let server = MockServer::start(vec![
        Step {
            stream_error: Some(500),
            ..Step::text("Half an ans")
        },
        Step::text("The whole answer."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "Say something.",
        &["--model", "openai:gpt-4o-mini"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert_eq!(out.stdout(), "The whole answer.\n");
    assert!(
        out.stderr().contains(
            "↻ openai:gpt-4o-mini serverError: the provider reported an error mid-stream (code 500)"
        ),
        "{}",
        out.stderr()
    );
}

/// The flags for slow local servers: the tool choice and the output cap are sent; a silence
/// longer than --idle-timeout (streamed) or an answer later than --timeout (not streamed) ends
/// the run with the setting to raise.
#[test]
fn local_server_flags() {
    let p = Project::new();
    let silent = || execute("return 1").silence_ms(2000);
    // One streamed run, then a run not streamed: a timeout is retried twice.
    let server = MockServer::start(vec![silent(), silent(), silent(), silent()]).unwrap();
    let out = run(
        &p,
        &server,
        "Run it.",
        &[
            "--model",
            "openai:local",
            "--tool-choice",
            "required",
            "--max-output-tokens",
            "64",
            "--idle-timeout",
            "400ms",
        ],
    );
    assert_eq!(out.code(), 1, "{}", out.stderr());
    let err = out.stderr();
    assert!(
        err.contains("stopped: the model openai:local failed: the stream went silent for 0.4 s (the idle timeout)")
            && err.contains("hint: a local server can be silent for minutes")
            && err.contains("--idle-timeout"),
        "{err}"
    );
    let sent = &server.requests()[0].body;
    assert_eq!(
        (sent["tool_choice"].as_str(), sent["max_tokens"].as_u64()),
        (Some("required"), Some(64))
    );
    let out = run(
        &p,
        &server,
        "Run it.",
        &[
            "--model",
            "openai:local",
            "--no-stream",
            "--timeout",
            "400ms",
            "--json",
        ],
    );
    assert_eq!(out.code(), 1, "{}", out.stderr());
    let t = out.json();
    assert_eq!(t["llmCalls"][0]["outcome"], "timeout", "{}", t["llmCalls"]);
    assert_eq!(t["llmCalls"].as_array().unwrap().len(), 3);
    assert!(
        t["stop"]["message"]
            .as_str()
            .unwrap()
            .contains("no answer within 0.4 s (the request timeout)"),
        "{}",
        t["stop"]
    );
    let parsed = Run(Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["run", "x", "--tool-choice", "always"])
        .current_dir(p.path())
        .env("XDG_DATA_HOME", p.path().join(".isola-data"))
        .env_remove("ISOLA_STORE")
        .output()
        .unwrap());
    assert_eq!(parsed.code(), 2);
    assert!(
        parsed
            .stderr()
            .contains("`always` is not a tool choice (use auto, required or none)"),
        "{}",
        parsed.stderr()
    );
}

/// `isola run --plan`: the model's script runs as a plan (the destructive write held back); it
/// is applied only once a person approves the plan from another process, and the model is told
/// the plan, the decision and the outcome. A refused plan reaches the model as an error, and
/// nothing is written.
#[test]
fn in_plan_mode_a_script_is_applied_only_once_its_plan_is_approved() {
    for approve in [true, false] {
        let p = Project::new();
        let d = p.data().display().to_string();
        let script = format!(
            "const a = await fs.readTextFile({{ path: \"{d}/a.txt\" }});\n\
             const w = await fs.writeFile({{ path: \"{d}/summary.txt\", content: a.content.split(\"\\n\")[0] }});\n\
             return \"written\";"
        );
        // A script that only reads is not applied again: its plan run is its result.
        let look = format!("return (await fs.readTextFile({{ path: \"{d}/b.txt\" }})).content;");
        let server = MockServer::start(vec![
            execute(&look),
            execute(&script),
            Step::text("Done: summary.txt holds the first line of a.txt."),
        ])
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_isola"))
            .args([
                "run",
                "Summarise a.txt into summary.txt",
                "--plan",
                "--json",
            ])
            .args(["--model", "openai:gpt-4o-mini"])
            .current_dir(p.path())
            .env("XDG_DATA_HOME", p.path().join(".isola-data"))
            .env_remove("ISOLA_STORE")
            .env("OPENAI_BASE_URL", server.openai_base())
            .env("OPENAI_API_KEY", "sk-test")
            .env_remove("ISOLA_MODEL")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let plan = loop {
            let list = p.isola(&["approvals", "list", "--json"]).json();
            if let Some(plan) = list.as_array().and_then(|a| a.first().cloned()) {
                break plan;
            }
            assert!(
                std::time::Instant::now() < until,
                "no plan to decide within 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert_eq!(plan["kind"], "plan", "{plan}");
        // Whoever decides sees which run and which prompt the script is for.
        let purpose = plan["subject"]["purpose"].as_str().unwrap_or_default();
        assert!(
            purpose.starts_with("agent run run-")
                && purpose.ends_with(": Summarise a.txt into summary.txt"),
            "{plan}"
        );
        assert!(
            !p.data().join("summary.txt").exists(),
            "not written while planned"
        );
        let id = plan["id"].as_str().unwrap();
        let decided = if approve {
            p.isola(&["approvals", "approve", id])
        } else {
            p.isola(&["approvals", "deny", id, "--reason", "use notes/ instead"])
        };
        assert_eq!(decided.code(), 0, "{}", decided.stderr());
        let out = Run(child.wait_with_output().unwrap());
        assert_eq!(out.code(), 0, "{}", out.stderr());
        assert!(
            out.stderr().contains(&format!("plan {id}")),
            "{}",
            out.stderr()
        );
        let requests = server.requests();
        let looked = &tool_results(&requests[1])[0];
        assert!(
            looked.contains("It changes nothing, so its plan run is its result")
                && looked.contains("beta"),
            "{looked}"
        );
        let told = &tool_results(&requests[2])[1];
        assert!(
            told.contains(&format!("Your script ran as plan {id}"))
                && told.contains("#1 fs.writeFile("),
            "{told}"
        );
        if approve {
            assert!(
                told.contains("It was approved by") && told.contains("Applied 1 of 1 change(s)"),
                "{told}"
            );
            assert!(told.contains("written"), "{told}");
            assert_eq!(
                std::fs::read_to_string(p.data().join("summary.txt")).unwrap(),
                "alpha"
            );
        } else {
            assert!(
                told.contains("PlanRefused") && told.contains("use notes/ instead"),
                "{told}"
            );
            assert!(!p.data().join("summary.txt").exists());
        }
    }
}

/// With a compiler, the agent's scripts are type-checked before they run (`isola.check.agent`
/// is `error` by default): a script that would make a directory and then pass a number where
/// a string goes comes back to the model as the compiler's error, nothing made; the model fixes
/// it and the fixed one runs.
#[test]
fn a_script_with_a_type_error_is_fixed_before_anything_runs() {
    let tsc = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tsc7/node_modules/.bin/tsc");
    assert!(tsc.exists(), "run `npm ci --prefix fixtures/tsc7`");
    let p = Project::new().with_isola(json!({"check": {"compiler": tsc}}));
    let d = p.data().display().to_string();
    let buggy = format!(
        "await fs.createDirectory({{ path: \"{d}/deployed\" }});\n\
         return await everything.echo({{ message: 42 }});"
    );
    let fixed = buggy.replace("message: 42", "message: \"42\"");
    let server = MockServer::start(vec![
        execute(&buggy),
        execute(&fixed),
        Step::text("Deployed, and the echo said 42."),
    ])
    .unwrap();
    let out = run(
        &p,
        &server,
        "Deploy and echo 42.",
        &["--model", "openai:gpt-4o-mini", "--json"],
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let t = out.json();
    let executions: Vec<&Value> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["type"] == "execution")
        .collect();
    assert_eq!(executions.len(), 2, "{t}");
    let first = &executions[0]["record"];
    assert_eq!(first["error"]["kind"], "type", "{first}");
    assert_eq!(
        first["calls"],
        json!([]),
        "the refused script called something"
    );
    assert_eq!(executions[1]["record"]["ok"], true);
    assert_eq!(
        executions[1]["record"]["calls"].as_array().unwrap().len(),
        2
    );
    // The model was shown the compiler's error at its line.
    let reqs = server.requests();
    let shown = tool_results(&reqs[1]).join("\n");
    assert!(shown.contains("error[type]"), "{shown}");
    assert!(shown.contains("TS2322"), "{shown}");
    assert!(shown.contains("script.ts:2:"), "{shown}");
    // Made by the fixed script: its call is the first `createDirectory` the server got.
    assert!(p.data().join("deployed").is_dir());
    assert_eq!(executions[1]["record"]["calls"][0]["ok"], true);
}
