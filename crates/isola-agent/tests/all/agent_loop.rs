//! The agent loop against the scripted LLM server and a real MCP server (server-filesystem):
//! stuck detection, every run limit, the large-API tools, chat history.

use std::path::Path;
use std::sync::Arc;

use isola_agent::{Agent, AgentConfig, Mode, StopReason, Transcript};
use isola_engine::Engine;
use isola_llm::Message;
use isola_llm_mock::{MockServer, Step};
use isola_mcp::McpHub;
use isola_worker::Backend;
use serde_json::{Value, json};

pub struct Setup {
    _dir: tempfile::TempDir,
    pub data: String,
    pub hub: Arc<McpHub>,
    pub engine: Arc<Engine>,
}

/// server-filesystem on a temporary `data/` holding `a.txt`, behind an in-process engine.
pub async fn setup() -> Setup {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/servers/node_modules/.bin/mcp-server-filesystem");
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci --prefix fixtures/servers`",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let data = dir.path().join("data").canonicalize().unwrap();
    std::fs::write(data.join("a.txt"), "alpha\n").unwrap();
    let config = json!({"mcpServers": {"fs": {"command": bin, "args": [data]}}});
    let config =
        isola_config::parse_config(&config.to_string(), &dir.path().join("isola.json")).unwrap();
    let hub = Arc::new(McpHub::connect(&config).await);
    let engine = Arc::new(Engine::new(
        hub.clone(),
        Backend::InProcess,
        config.settings.limits.clone(),
    ));
    Setup {
        _dir: dir,
        data: data.display().to_string(),
        hub,
        engine,
    }
}

fn agent(s: &Setup, server: &MockServer, tweak: impl FnOnce(&mut AgentConfig)) -> Agent {
    let mut config = AgentConfig {
        model: Some("openai:gpt-4o-mini".into()),
        ..AgentConfig::default()
    };
    config
        .providers
        .entry("openai".into())
        .or_default()
        .base_url = Some(server.openai_base());
    config.retry.initial_backoff_ms = 10;
    tweak(&mut config);
    let models = config.build(&|_| None).unwrap();
    Agent::new(s.engine.clone(), s.hub.clone(), config, models)
}

async fn run(agent: &Agent, prompt: &str) -> Transcript {
    agent.run(&mut Vec::new(), prompt, &mut |_| {}).await
}

fn execute(code: &str) -> Step {
    Step::call("execute", json!({"code": code}))
}

fn last_tool_result(server: &MockServer) -> String {
    let reqs = server.requests();
    let messages = reqs.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .clone();
    messages.iter().rev().find(|m| m["role"] == "tool").unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_same_error_twice_in_a_row_stops_the_run() {
    let s = setup().await;
    let server = MockServer::start(vec![
        execute("return missing.x"),
        execute("const y = 1;\nreturn missing.x + y"),
        Step::text("unused"),
    ])
    .unwrap();
    let t = run(&agent(&s, &server, |_| {}), "Do it.").await;
    assert_eq!(t.stop.reason, StopReason::SameError, "{:?}", t.stop);
    assert!(t.stop.message.contains("the model is stuck, the same error came back twice in a row: runtime: ReferenceError: missing is not defined"), "{}", t.stop.message);
    assert_eq!(t.summary.executions, 2);
    assert_eq!(t.answer, None);
    assert_eq!(server.remaining(), 1);
}

#[tokio::test]
async fn resubmitting_failed_code_stops_the_run() {
    let s = setup().await;
    let server = MockServer::start(vec![
        execute("return nope()"),
        execute("return  nope( )".replace("( )", "()").as_str()),
        Step::text("unused"),
    ])
    .unwrap();
    let t = run(&agent(&s, &server, |_| {}), "Do it.").await;
    assert_eq!(t.stop.reason, StopReason::SameCode, "{:?}", t.stop);
    assert!(
        t.stop
            .message
            .contains("sent again a script that had already failed"),
        "{}",
        t.stop.message
    );
    assert_eq!(t.summary.executions, 1, "the repeated script is not run");
    // The conversation stays well-formed: every tool call has its result.
    let Some(Message::Tool {
        content, is_error, ..
    }) = t.messages.last()
    else {
        panic!("{:?}", t.messages.last())
    };
    assert!(*is_error && content.contains("already failed"));
}

#[tokio::test]
async fn failures_in_a_row_are_bounded_by_max_attempts() {
    let s = setup().await;
    let server = MockServer::start(vec![
        execute("throw new Error('first')"),
        execute("throw new Error('second')"),
        Step::text("unused"),
    ])
    .unwrap();
    let t = run(&agent(&s, &server, |c| c.max_attempts = 2), "Do it.").await;
    assert_eq!(t.stop.reason, StopReason::Attempts, "{:?}", t.stop);
    assert!(
        t.stop
            .message
            .starts_with("stopped after 2 failed attempts in a row"),
        "{}",
        t.stop.message
    );
    assert!(
        t.stop.message.contains("Error: second"),
        "{}",
        t.stop.message
    );
}

#[tokio::test]
async fn llm_call_limit() {
    let s = setup().await;
    let server = MockServer::start(vec![
        execute("return 1"),
        execute("return 2"),
        Step::text("unused"),
    ])
    .unwrap();
    let t = run(
        &agent(&s, &server, |c| c.limits.max_llm_calls = 2),
        "Do it.",
    )
    .await;
    assert_eq!(t.stop.reason, StopReason::LlmCalls, "{:?}", t.stop);
    assert!(
        t.stop.message.contains("limit of 2 LLM calls")
            && t.stop.message.contains("--max-llm-calls"),
        "{}",
        t.stop.message
    );
    assert_eq!(
        (t.summary.llm_calls, t.summary.executions),
        (2, 2),
        "what was done so far is kept"
    );
    assert_eq!(server.remaining(), 1);
}

#[tokio::test]
async fn execution_limit() {
    let s = setup().await;
    let server = MockServer::start(vec![
        execute("return 1"),
        execute("return 2"),
        Step::text("unused"),
    ])
    .unwrap();
    let t = run(
        &agent(&s, &server, |c| c.limits.max_executions = 1),
        "Do it.",
    )
    .await;
    assert_eq!(t.stop.reason, StopReason::Executions, "{:?}", t.stop);
    assert!(
        t.stop.message.contains("limit of 1 executions"),
        "{}",
        t.stop.message
    );
    assert_eq!(t.summary.executions, 1);
}

#[tokio::test]
async fn token_limit() {
    let s = setup().await;
    let server = MockServer::start(vec![execute("return 1"), Step::text("unused")]).unwrap();
    let t = run(
        &agent(&s, &server, |c| c.limits.max_tokens = Some(500)),
        "Do it.",
    )
    .await;
    assert_eq!(t.stop.reason, StopReason::Tokens, "{:?}", t.stop);
    assert!(
        t.stop.message.contains("the limit is 500"),
        "{}",
        t.stop.message
    );
    assert_eq!(t.summary.llm_calls, 1);
    assert!(t.summary.input_tokens > 500);
}

#[tokio::test]
async fn cost_limit() {
    let s = setup().await;
    let server = MockServer::start(vec![execute("return 1"), Step::text("unused")]).unwrap();
    let t = run(
        &agent(&s, &server, |c| {
            c.model = Some("openai:gpt-4o".into());
            c.limits.max_cost_usd = Some(0.001);
        }),
        "Do it.",
    )
    .await;
    assert_eq!(t.stop.reason, StopReason::Cost, "{:?}", t.stop);
    assert!(
        t.stop.message.contains("the limit is $0.001"),
        "{}",
        t.stop.message
    );
    assert!(t.summary.cost_usd >= 0.001);
}

#[tokio::test]
async fn tools_mode_repeating_a_failed_call_stops_the_run() {
    let s = setup().await;
    let bad = json!({"path": "/outside/the/allowed/dir.txt"});
    let server = MockServer::start(vec![
        Step::call("fs__read_text_file", bad.clone()),
        Step::call("fs__read_text_file", bad),
        Step::text("unused"),
    ])
    .unwrap();
    let t = run(&agent(&s, &server, |c| c.mode = Mode::Tools), "Read it.").await;
    assert_eq!(t.stop.reason, StopReason::SameCode, "{:?}", t.stop);
    assert!(
        t.stop
            .message
            .contains("repeated a call that had already failed: fs__read_text_file"),
        "{}",
        t.stop.message
    );
    assert_eq!((t.summary.executions, t.summary.failed_executions), (1, 1));
}

#[tokio::test]
async fn tools_mode_invalid_arguments_go_back_to_the_model() {
    let s = setup().await;
    let server = MockServer::start(vec![
        Step::call("fs__read_text_file", json!({"file": "a.txt"})),
        Step::call(
            "fs__read_text_file",
            json!({"path": format!("{}/a.txt", s.data)}),
        ),
        Step::text("It says alpha."),
    ])
    .unwrap();
    let t = run(&agent(&s, &server, |c| c.mode = Mode::Tools), "Read a.txt.").await;
    assert_eq!(t.stop.reason, StopReason::Answered, "{:?}", t.stop);
    let reqs = server.requests();
    let feedback = reqs[1].body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        feedback.contains("invalid arguments for fs.readTextFile")
            && feedback.contains("\"path\" is a required property"),
        "{feedback}"
    );
    assert!(last_tool_result(&server).contains("alpha"));
    assert_eq!(t.summary.debug_retries, 1);
}

/// A large API (over `embedMaxTokens`): `search`, `describe` and `execute`, as `isola mcp`.
#[tokio::test]
async fn large_apis_are_searched_and_described() {
    let s = setup().await;
    let server = MockServer::start(vec![
        Step::call("search", json!({"query": "read a text file"})),
        Step::call("describe", json!({"names": ["fs.readTextFile"]})),
        execute(&format!(
            "return (await fs.readTextFile({{ path: \"{}/a.txt\" }})).content.trim()",
            s.data
        )),
        Step::text("alpha"),
    ])
    .unwrap();
    let t = run(
        &agent(&s, &server, |c| c.embed_max_tokens = 10),
        "What does a.txt say?",
    )
    .await;
    assert_eq!(t.answer.as_deref(), Some("alpha"), "{:?}", t.stop);
    let reqs = server.requests();
    let tools: Vec<&str> = reqs[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["search", "describe", "execute"]);
    let results = |i: usize| -> Vec<String> {
        reqs[i].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        results(1)[0].contains("fs.readTextFile("),
        "{:?}",
        results(1)
    );
    assert!(
        results(2)[1].contains("function readTextFile(input: ReadTextFileInput)"),
        "{:?}",
        results(2)
    );
    assert_eq!(t.summary.executions, 1, "lookups are not executions");
}

/// A chat: the second prompt is sent with the first turn's messages.
#[tokio::test]
async fn chat_history_carries_over() {
    let s = setup().await;
    let server = MockServer::start(vec![
        Step::text("Hello, Ada."),
        Step::text("Your name is Ada."),
    ])
    .unwrap();
    let a = agent(&s, &server, |_| {});
    let mut history = Vec::new();
    let first = a.run(&mut history, "I am Ada.", &mut |_| {}).await;
    assert_eq!(first.answer.as_deref(), Some("Hello, Ada."));
    let second = a.run(&mut history, "What is my name?", &mut |_| {}).await;
    assert_eq!(second.answer.as_deref(), Some("Your name is Ada."));
    let sent: Vec<Value> = server.requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .clone();
    let roles: Vec<&str> = sent.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(history.len(), 4);
}

/// The output-token cap each request carried (`max_tokens`).
fn caps(server: &MockServer) -> Vec<Option<u64>> {
    server
        .requests()
        .iter()
        .map(|r| r.body["max_tokens"].as_u64())
        .collect()
}

/// An answer cut at the output-token cap (`finish_reason: "length"`) is not the final answer:
/// it is asked for again with twice the cap, and every call records its finish reason.
#[tokio::test]
async fn an_answer_cut_at_the_cap_is_asked_again_with_twice_the_cap() {
    let s = setup().await;
    let server = MockServer::start(vec![
        Step::text("The file says alp").finish("length"),
        Step::text("The file says alpha."),
    ])
    .unwrap();
    let mut events = Vec::new();
    let t = agent(&s, &server, |_| {})
        .run(&mut Vec::new(), "What does a.txt say?", &mut |e| {
            events.push(format!("{e:?}"))
        })
        .await;
    assert_eq!(t.stop.reason, StopReason::Answered, "{:?}", t.stop);
    assert_eq!(t.answer.as_deref(), Some("The file says alpha."));
    // A local server (the scripted one is on 127.0.0.1) gets a cap of 2048 by default.
    assert_eq!(caps(&server), [Some(2048), Some(4096)]);
    let finishes: Vec<Option<isola_llm::Finish>> =
        t.llm_calls.iter().map(|c| c.finish.clone()).collect();
    assert_eq!(
        finishes,
        [
            Some(isola_llm::Finish::Length),
            Some(isola_llm::Finish::Stop)
        ]
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("Truncated") && e.contains("retrying: true")),
        "{events:?}"
    );
    // The cut answer is not part of the conversation.
    assert_eq!(t.messages.len(), 2, "{:?}", t.messages);
    assert_eq!(t.summary.llm_calls, 2);
}

/// Cut again with twice the cap: the run stops and says so, with no answer.
#[tokio::test]
async fn an_answer_cut_twice_stops_the_run_saying_so() {
    let s = setup().await;
    let server = MockServer::start(vec![
        Step::text("It was the best of").finish("length"),
        Step::text("It was the best of times, it was the worst").finish("length"),
        Step::text("unused"),
    ])
    .unwrap();
    let t = run(
        &agent(&s, &server, |c| c.max_output_tokens = Some(100)),
        "Tell me a story.",
    )
    .await;
    assert_eq!(t.stop.reason, StopReason::Truncated, "{:?}", t.stop);
    assert_eq!(t.answer, None);
    assert!(
        t.stop.message.contains(
            "the agent model's answer was cut at the output-token limit (200 tokens), also when asked again with twice that"
        ) && t.stop.message.contains("hint: raise it with --max-output-tokens"),
        "{}",
        t.stop.message
    );
    assert_eq!(caps(&server), [Some(100), Some(200)]);
    assert_eq!(server.remaining(), 1);
}

/// Several identical calls in one answer (llama.cpp's small models do this), the first of
/// which fails: all of them run, the model sees every error, and stuck detection waits for its
/// next turn. The model then fixes the script and answers.
#[tokio::test]
async fn identical_parallel_calls_are_judged_per_turn() {
    let s = setup().await;
    let server = MockServer::start(vec![
        execute("return missing.x").repeated(3),
        execute("return 1 + 1"),
        Step::text("It is 2."),
    ])
    .unwrap();
    let t = run(&agent(&s, &server, |_| {}), "Compute 1 + 1.").await;
    assert_eq!(t.stop.reason, StopReason::Answered, "{:?}", t.stop);
    assert_eq!((t.summary.executions, t.summary.failed_executions), (4, 3));
    let reqs = server.requests();
    let results: Vec<String> = reqs[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(results.len(), 3);
    for r in &results {
        assert!(
            r.contains("ReferenceError: missing is not defined")
                && r.contains("failed attempt 1 of 4"),
            "{r}"
        );
    }
}

/// The same in tools mode: identical failing calls in one turn are not "a repeated call".
#[tokio::test]
async fn tools_mode_identical_parallel_calls_are_judged_per_turn() {
    let s = setup().await;
    let bad = json!({"path": "/outside/the/allowed/dir.txt"});
    let server = MockServer::start(vec![
        Step::call("fs__read_text_file", bad).repeated(2),
        Step::call(
            "fs__read_text_file",
            json!({"path": format!("{}/a.txt", s.data)}),
        ),
        Step::text("It says alpha."),
    ])
    .unwrap();
    let t = run(&agent(&s, &server, |c| c.mode = Mode::Tools), "Read it.").await;
    assert_eq!(t.stop.reason, StopReason::Answered, "{:?}", t.stop);
    assert_eq!((t.summary.executions, t.summary.failed_executions), (3, 2));
}

/// The code model of two-step mode echoed its instruction (with a fence mid-line) before the
/// script: the script is the block that starts a line.
#[tokio::test]
async fn two_step_takes_the_fenced_block_not_an_echoed_fence() {
    let s = setup().await;
    let server = MockServer::start(vec![
        Step::call("run_task", json!({"task": "Return 6 times 7."})),
        Step::text(
            "Reply with the script only, in one ```ts code block.\n```ts\nreturn 6 * 7;\n```",
        ),
        Step::text("42"),
    ])
    .unwrap();
    let t = run(&agent(&s, &server, |c| c.mode = Mode::TwoStep), "6 × 7?").await;
    assert_eq!(t.stop.reason, StopReason::Answered, "{:?}", t.stop);
    let code: Vec<&str> = t
        .steps
        .iter()
        .filter_map(|s| match s {
            isola_agent::Step::Execution { code, record, .. } => {
                assert!(record.ok, "{record:?}");
                Some(code.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(code, ["return 6 * 7;"]);
}

/// `toolChoice` goes to the agent model (not to the code model, which has no tools).
#[tokio::test]
async fn tool_choice_is_sent_to_the_agent_model() {
    let s = setup().await;
    let server = MockServer::start(vec![
        Step::call("run_task", json!({"task": "Return 1."})),
        Step::text("```ts\nreturn 1;\n```"),
        Step::text("1"),
    ])
    .unwrap();
    let t = run(
        &agent(&s, &server, |c| {
            c.mode = Mode::TwoStep;
            c.tool_choice = Some(isola_llm::ToolChoice::Required);
        }),
        "One?",
    )
    .await;
    assert_eq!(t.stop.reason, StopReason::Answered, "{:?}", t.stop);
    let reqs = server.requests();
    assert_eq!(reqs[0].body["tool_choice"], "required");
    assert_eq!(reqs[1].body.get("tool_choice"), None);
}
