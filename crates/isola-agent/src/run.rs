//! The loop: ask the model, carry out its tool calls, feed the results (and errors) back, until
//! it answers or a limit, a failure streak or a stuck model ends the run.
//!
//! Failures are judged per model turn, not per call: the tool calls of one answer all run
//! (several identical parallel calls included) and the model sees every result before
//! anything is decided. A turn with a failed call is one failed attempt; the run stops when two
//! turns in a row bring back the same error, when `maxAttempts` turns in a row failed, or when
//! a script (or tool call) that failed in an earlier turn is sent again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use isola_codemode::descriptions::{DESCRIBE, EXECUTE, SEARCH};
use isola_codemode::{View, ViewOptions};
use isola_engine::{Engine, ExecOptions, Tools, unwrap_result};
use isola_llm::{
    CallRecord, ChatRequest, Finish, Message, Reply, Route, Streamed, ToolCall, ToolDef,
};
use isola_protocol::{ExecError, ExecRecord};
use serde_json::{Map, Value};

use crate::Mode;
use crate::config::{AgentConfig, Models};
use crate::prompts;
use crate::transcript::{Step, Stop, StopReason, Summary, Transcript};

/// Something the caller may want to show while the run goes on.
#[derive(Clone, Debug)]
pub enum AgentEvent {
    /// A piece of the agent model's text, as it streams in.
    Text(String),
    /// The text since the last [`AgentEvent::Turn`] is void: its attempt failed and was
    /// retried, or it was cut at the output-token cap and is asked for again.
    Discard,
    /// The agent model's answer is complete. Without tool calls its text is the final answer;
    /// with them, it was what the model said before calling them.
    Turn { tool_calls: usize },
    /// A model's answer was cut at the output-token cap (`max_output_tokens`); it is asked
    /// again with twice the cap when `retrying`, else the run stops.
    Truncated {
        role: String,
        max_output_tokens: Option<u32>,
        retrying: bool,
    },
    /// A script is about to run.
    Execution { attempt: u32, code: String },
    /// A script or tool call finished: `summary` is its first line (result or error).
    Done { ok: bool, summary: String },
    /// A tool is about to be called (tools mode, `search`, `describe`).
    ToolCall { name: String },
    /// A model call failed and was retried or passed to the next model.
    ProviderRetry { message: String },
}

/// The agent: models, tools, settings. One [`Agent::run`] per user prompt.
pub struct Agent {
    engine: Arc<Engine>,
    tools: Arc<dyn Tools>,
    models: Models,
    config: AgentConfig,
    hook: Option<Arc<dyn ExecHook>>,
}

/// Told of each script the agent is about to run, with the options it will run with (the
/// journal attaches itself to them).
pub trait ExecHook: Send + Sync {
    /// A run of `prompt` begins: the scripts until the next one are for it.
    fn prompt(&self, _prompt: &str) {}

    fn before(&self, code: &str, options: &mut ExecOptions);

    /// Carry the script out itself, instead of the agent running it after
    /// [`ExecHook::before`]: plan mode plans it, has the plan decided, and applies it.
    /// `None` (the default): the agent runs it.
    fn execute<'a>(
        &'a self,
        _code: &'a str,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = Executed> + Send + 'a>>> {
        None
    }
}

/// What [`ExecHook::execute`] did with a script.
pub struct Executed {
    /// The record of what ran (the apply, or the plan run when nothing was applied).
    pub record: ExecRecord,
    /// What the model is told before the record: the plan, its decision, the apply's outcome.
    pub note: Option<String>,
}

impl Executed {
    /// Nothing ran: Isola could not carry the script out (`error` says why).
    pub fn failed(
        kind: isola_protocol::ErrorKind,
        name: &str,
        error: &dyn std::fmt::Display,
    ) -> Self {
        Executed {
            record: ExecRecord {
                ok: false,
                result: serde_json::Value::Null,
                result_truncated: None,
                logs: Vec::new(),
                logs_truncated: None,
                calls: Vec::new(),
                timings: isola_protocol::Timings::default(),
                error: Some(ExecError {
                    kind,
                    limit: None,
                    name: name.into(),
                    message: error.to_string(),
                    position: None,
                    code_frame: None,
                    stack: None,
                    tool: None,
                    hint: None,
                }),
                sandbox: None,
                diagnostics: Vec::new(),
            },
            note: None,
        }
    }
}

/// What carrying out one tool call gave.
struct Handled {
    content: String,
    is_error: bool,
    /// Ends the run at once (the calls after it in the turn are not run).
    stop: Option<Stop>,
    /// A failed attempt: if the run goes on, the result says which attempt it was.
    attempt: bool,
}

impl Handled {
    fn ok(content: String) -> Self {
        Handled {
            content,
            is_error: false,
            stop: None,
            attempt: false,
        }
    }

    /// Not carried out, and ending the run.
    fn stopped(content: String, stop: Stop) -> Self {
        Handled {
            content,
            is_error: true,
            stop: Some(stop),
            attempt: false,
        }
    }
}

/// What the calls of the current model turn did, judged when the turn ends.
#[derive(Default)]
struct Turn {
    /// Signatures of the failures.
    errors: Vec<String>,
    /// Normalised scripts (or `tool(arguments)`) that failed.
    failed: Vec<String>,
    succeeded: bool,
}

impl Agent {
    /// `tools` is where the engine's calls go too (the MCP hub); tools mode calls it directly.
    pub fn new(
        engine: Arc<Engine>,
        tools: Arc<dyn Tools>,
        config: AgentConfig,
        models: Models,
    ) -> Self {
        Self {
            engine,
            tools,
            models,
            config,
            hook: None,
        }
    }

    /// Tell `hook` of every execution before it runs.
    pub fn with_hook(mut self, hook: Arc<dyn ExecHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    pub fn models(&self) -> &Models {
        &self.models
    }

    /// Run one prompt. `history` holds the earlier turns (of a chat) and gets this turn's
    /// messages appended. Never fails: how the run ended is in [`Transcript::stop`].
    pub async fn run(
        &self,
        history: &mut Vec<Message>,
        prompt: &str,
        on_event: &mut (dyn FnMut(AgentEvent) + Send),
    ) -> Transcript {
        let started = Instant::now();
        if let Some(hook) = &self.hook {
            hook.prompt(prompt);
        }
        let view = View::build(
            self.engine.api(),
            self.engine.limits(),
            &ViewOptions {
                embed_max_tokens: self.config.embed_max_tokens,
            },
        );
        let mode = self.config.mode;
        let classic = if mode == Mode::Tools {
            prompts::classic_tools(&view.api)
        } else {
            Vec::new()
        };
        let tools: Vec<ToolDef> = match mode {
            Mode::Code => prompts::code_mode_tools(&view),
            Mode::TwoStep => prompts::two_step_tools(),
            Mode::Tools => classic.iter().map(|(t, _)| t.clone()).collect(),
        };
        let system = prompts::system(mode, &view, self.config.instructions.as_deref());
        let base = ChatRequest {
            system: system.clone(),
            messages: Vec::new(),
            tools,
            max_output_tokens: self.config.max_output_tokens,
            temperature: self.config.temperature,
            tool_choice: self.config.tool_choice,
        };
        let mut messages = history.clone();
        messages.push(Message::User {
            content: prompt.to_string(),
        });
        let mut run = Run {
            agent: self,
            view,
            classic,
            steps: Vec::new(),
            calls: Vec::new(),
            summary: Summary::default(),
            failures_in_a_row: 0,
            last_errors: Vec::new(),
            failed: HashSet::new(),
            turn: Turn::default(),
        };
        let mut answer = None;
        let stop = loop {
            let request = ChatRequest {
                messages: messages.clone(),
                ..base.clone()
            };
            let reply = match run
                .ask("agent", &self.models.agent_chain, request, on_event)
                .await
            {
                Ok(reply) => reply,
                Err(stop) => break stop,
            };
            let response = reply.response;
            on_event(AgentEvent::Turn {
                tool_calls: response.tool_calls.len(),
            });
            messages.push(response.to_message());
            if response.tool_calls.is_empty() {
                answer = Some(response.text);
                break Stop {
                    reason: StopReason::Answered,
                    message: "the model answered".into(),
                };
            }
            // Every call of the turn is carried out before anything is judged, unless one
            // ends the run outright (a limit, a script that failed in an earlier turn).
            let mut stop = None;
            let mut results = Vec::new();
            for call in &response.tool_calls {
                let mut handled = match &stop {
                    Some(_) => Handled {
                        content: "not run: the run was stopped before this call".into(),
                        is_error: true,
                        stop: None,
                        attempt: false,
                    },
                    None => run.handle(call, on_event).await,
                };
                if stop.is_none() {
                    stop = handled.stop.take();
                }
                results.push((call, handled));
            }
            let stop = stop
                .or_else(|| run.end_turn())
                .or_else(|| run.over_budget());
            let max = self.config.max_attempts;
            for (call, handled) in results {
                let mut content = handled.content;
                if handled.attempt && stop.is_none() {
                    content.push_str(&format!(
                        "\nThis was failed attempt {} of {max}: fix it and try again.\n",
                        run.failures_in_a_row
                    ));
                }
                messages.push(Message::Tool {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    content,
                    is_error: handled.is_error,
                });
            }
            if let Some(stop) = stop {
                break stop;
            }
        };
        *history = messages.clone();
        run.summary.wall_ms = started.elapsed().as_secs_f64() * 1000.0;
        Transcript {
            prompt: prompt.to_string(),
            mode,
            answer,
            stop,
            system,
            messages,
            steps: run.steps,
            llm_calls: run.calls,
            summary: run.summary,
        }
    }
}

/// The state of one run.
struct Run<'a> {
    agent: &'a Agent,
    view: View,
    /// Tools mode: each JSON tool and its binding.
    classic: Vec<(ToolDef, usize)>,
    steps: Vec<Step>,
    calls: Vec<CallRecord>,
    summary: Summary,
    /// Model turns in a row with a failed call.
    failures_in_a_row: u32,
    /// The failures of the last turn, when it had any: "the same error twice in a row".
    last_errors: Vec<String>,
    /// Normalised scripts (or `tool(arguments)`) that failed in earlier turns.
    failed: HashSet<String>,
    turn: Turn,
}

fn normalise(code: &str) -> String {
    code.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn first_line(s: &str) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line.to_string()
    }
}

fn error_signature(e: &ExecError) -> String {
    format!("{}: {}: {}", e.kind.as_str(), e.name, e.message)
}

impl Run<'_> {
    fn config(&self) -> &AgentConfig {
        &self.agent.config
    }

    /// Record a finished non-execute tool call as a step and an event; returns whether it
    /// succeeded and the text that goes back to the model.
    fn tool_step(
        &mut self,
        name: &str,
        args: serde_json::Map<String, Value>,
        result: Result<String, String>,
        on_event: &mut (dyn FnMut(AgentEvent) + Send),
    ) -> (bool, String) {
        let ok = result.is_ok();
        let text = result.unwrap_or_else(|e| e);
        on_event(AgentEvent::Done {
            ok,
            summary: first_line(&text),
        });
        self.steps.push(Step::Tool {
            name: name.to_string(),
            arguments: Value::Object(args),
            ok,
            result: text.clone(),
        });
        (ok, text)
    }

    fn account(&mut self, calls: &[CallRecord], on_event: &mut (dyn FnMut(AgentEvent) + Send)) {
        for c in calls.iter().filter(|c| !c.outcome.is_success()) {
            on_event(AgentEvent::ProviderRetry {
                message: format!(
                    "{}:{} {}: {}",
                    c.provider,
                    c.model,
                    c.outcome.as_str(),
                    c.error.as_deref().unwrap_or("")
                ),
            });
        }
        self.summary.add_calls(calls);
        self.calls.extend_from_slice(calls);
    }

    fn before_llm_call(&self) -> Option<Stop> {
        let max = self.config().limits.max_llm_calls;
        (self.summary.llm_calls >= max).then(|| Stop {
            reason: StopReason::LlmCalls,
            message: format!(
                "stopped at the limit of {max} LLM calls (raise it with --max-llm-calls or isola.agent.limits.maxLlmCalls)"
            ),
        })
    }

    fn over_budget(&self) -> Option<Stop> {
        let limits = &self.config().limits;
        let used = self.summary.input_tokens + self.summary.output_tokens;
        if let Some(max) = limits.max_tokens
            && used >= max
        {
            return Some(Stop {
                reason: StopReason::Tokens,
                message: format!(
                    "stopped at the token limit: {used} tokens used, the limit is {max} (raise it with --max-tokens or isola.agent.limits.maxTokens)"
                ),
            });
        }
        if let Some(max) = limits.max_cost_usd
            && self.summary.cost_usd >= max
        {
            return Some(Stop {
                reason: StopReason::Cost,
                message: format!(
                    "stopped at the cost limit: ${:.4} spent, the limit is ${max} (raise it with --max-cost or isola.agent.limits.maxCostUsd)",
                    self.summary.cost_usd
                ),
            });
        }
        None
    }

    fn execution_limit(&self) -> Option<Stop> {
        let max = self.config().limits.max_executions;
        (self.summary.executions >= max).then(|| Stop {
            reason: StopReason::Executions,
            message: format!(
                "stopped at the limit of {max} executions (raise it with --max-executions or isola.agent.limits.maxExecutions)"
            ),
        })
    }

    /// Ask a model. Text streams to `on_event` for the agent model. An answer cut at the
    /// output-token cap is asked for once more with twice the cap; cut again (or with no room
    /// left in the run's limits), the run stops and says so.
    async fn ask(
        &mut self,
        role: &str,
        chain: &[Route],
        mut request: ChatRequest,
        on_event: &mut (dyn FnMut(AgentEvent) + Send),
    ) -> Result<Reply, Stop> {
        let agent = self.agent;
        let show = role == "agent";
        let mut retried = false;
        loop {
            if let Some(stop) = self.before_llm_call() {
                return Err(stop);
            }
            let result = agent
                .models
                .gateway
                .chat_streaming(role, chain, &request, &mut |s| match s {
                    Streamed::Text(t) if show => on_event(AgentEvent::Text(t.to_string())),
                    Streamed::Discard if show => on_event(AgentEvent::Discard),
                    _ => {}
                })
                .await;
            let reply = match result {
                Ok(reply) => reply,
                Err(failure) => {
                    self.account(&failure.calls, on_event);
                    return Err(Stop {
                        reason: StopReason::LlmFailed,
                        message: failure.error.to_string(),
                    });
                }
            };
            self.account(&reply.calls, on_event);
            self.summary.llm_calls += 1;
            let response = &reply.response;
            self.steps.push(Step::Llm {
                role: role.into(),
                route: reply.route.clone(),
                text: response.text.clone(),
                tool_calls: response.tool_calls.clone(),
                usage: response.usage,
                finish: Some(response.finish.clone()),
            });
            if response.finish != Finish::Length {
                return Ok(reply);
            }
            let cap = reply
                .calls
                .last()
                .and_then(|c| c.max_output_tokens)
                .or(request.max_output_tokens);
            let retrying = !retried
                && cap.is_some()
                && self.before_llm_call().is_none()
                && self.over_budget().is_none();
            if show {
                on_event(AgentEvent::Discard);
            }
            on_event(AgentEvent::Truncated {
                role: role.to_string(),
                max_output_tokens: cap,
                retrying,
            });
            if retrying {
                retried = true;
                request.max_output_tokens = cap.map(|c| c.saturating_mul(2));
                continue;
            }
            let cap = cap.map_or_else(|| "its".to_string(), |c| format!("{c}"));
            return Err(Stop {
                reason: StopReason::Truncated,
                message: format!(
                    "stopped: the {role} model's answer was cut at the output-token limit ({cap} tokens){}\nhint: raise it with --max-output-tokens or isola.agent.maxOutputTokens (one provider's: isola.agent.providers.NAME.maxOutputTokens)",
                    if retried {
                        ", also when asked again with twice that"
                    } else {
                        ""
                    }
                ),
            });
        }
    }

    /// A failure goes back to the model; whether it ends the run is decided when the turn
    /// ends ([`Run::end_turn`]).
    fn failure(&mut self, content: String, signature: String) -> Handled {
        self.turn.errors.push(signature);
        Handled {
            content,
            is_error: true,
            stop: None,
            attempt: true,
        }
    }

    fn success(&mut self, content: String) -> Handled {
        self.turn.succeeded = true;
        Handled::ok(content)
    }

    /// Judge the turn whose calls were all carried out: a turn with a failure is one failed
    /// attempt; it stops the run when it repeats an error of the turn before, or when
    /// `maxAttempts` turns in a row failed. A turn without failures (and a success) ends the
    /// streak.
    fn end_turn(&mut self) -> Option<Stop> {
        let turn = std::mem::take(&mut self.turn);
        self.failed.extend(turn.failed);
        if turn.errors.is_empty() {
            if turn.succeeded {
                self.failures_in_a_row = 0;
                self.last_errors.clear();
            }
            return None;
        }
        self.failures_in_a_row += 1;
        let repeated = turn
            .errors
            .iter()
            .find(|e| self.last_errors.contains(e))
            .cloned();
        let last = turn.errors.last().cloned().unwrap_or_default();
        self.last_errors = turn.errors;
        let max = self.config().max_attempts;
        if let Some(signature) = repeated {
            return Some(Stop {
                reason: StopReason::SameError,
                message: format!(
                    "stopped: the model is stuck, the same error came back twice in a row: {}",
                    first_line(&signature)
                ),
            });
        }
        (self.failures_in_a_row >= max).then(|| Stop {
            reason: StopReason::Attempts,
            message: format!(
                "stopped after {max} failed attempts in a row (raise it with --max-attempts or isola.agent.maxAttempts); the last error: {}",
                first_line(&last)
            ),
        })
    }

    /// A call that could not be carried out (unknown tool, malformed arguments).
    fn malformed(&mut self, call: &ToolCall, message: String) -> Handled {
        self.steps.push(Step::Tool {
            name: call.name.clone(),
            arguments: Value::String(call.arguments.clone()),
            ok: false,
            result: message.clone(),
        });
        let signature = format!("call: {message}");
        self.failure(format!("error: {message}\n"), signature)
    }

    async fn handle(
        &mut self,
        call: &ToolCall,
        on_event: &mut (dyn FnMut(AgentEvent) + Send),
    ) -> Handled {
        match self.agent.config.mode {
            Mode::Tools => self.classic_call(call, on_event).await,
            Mode::Code | Mode::TwoStep => match call.name.as_str() {
                EXECUTE if self.agent.config.mode == Mode::Code => {
                    match string_argument(&call.arguments, "code", EXECUTE) {
                        Ok(code) => self.execute(code, on_event).await,
                        Err(message) => self.malformed(call, message),
                    }
                }
                SEARCH | DESCRIBE
                    if self.agent.config.mode == Mode::Code && self.view.tools.len() > 1 =>
                {
                    self.lookup(call, on_event)
                }
                prompts::RUN_TASK if self.agent.config.mode == Mode::TwoStep => {
                    match string_argument(&call.arguments, "task", prompts::RUN_TASK) {
                        Ok(task) => self.two_step(task, on_event).await,
                        Err(message) => self.malformed(call, message),
                    }
                }
                other => {
                    let names: Vec<String> = match self.agent.config.mode {
                        Mode::TwoStep => vec![prompts::RUN_TASK.to_string()],
                        _ => self.view.tools.iter().map(|t| t.name.to_string()).collect(),
                    };
                    self.malformed(
                        call,
                        format!(
                            "there is no tool `{other}`; the tools are: {}",
                            names.join(", ")
                        ),
                    )
                }
            },
        }
    }

    /// `search` and `describe` (code mode, large APIs).
    fn lookup(
        &mut self,
        call: &ToolCall,
        on_event: &mut (dyn FnMut(AgentEvent) + Send),
    ) -> Handled {
        let args = match object_arguments(&call.arguments, &call.name) {
            Ok(a) => a,
            Err(message) => return self.malformed(call, message),
        };
        on_event(AgentEvent::ToolCall {
            name: call.name.clone(),
        });
        let result = if call.name == SEARCH {
            match args.get("query").and_then(Value::as_str) {
                Some(q) => {
                    let limit = args
                        .get("limit")
                        .and_then(Value::as_u64)
                        .unwrap_or(10)
                        .clamp(1, 50) as usize;
                    self.view
                        .search(q, args.get("server").and_then(Value::as_str), limit)
                }
                None => Err("`search` needs a `query` string".to_string()),
            }
        } else {
            match args.get("names").and_then(Value::as_array) {
                Some(names) => {
                    let names: Vec<String> = names
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect();
                    self.view.describe(&names)
                }
                None => Err("`describe` needs `names`, an array of strings".to_string()),
            }
        };
        let (ok, text) = self.tool_step(&call.name, args, result, on_event);
        // Lookups are not executions: a failed one is feedback, not a failed attempt.
        Handled {
            content: text,
            is_error: !ok,
            stop: None,
            attempt: false,
        }
    }

    async fn execute(
        &mut self,
        code: String,
        on_event: &mut (dyn FnMut(AgentEvent) + Send),
    ) -> Handled {
        if let Some(stop) = self.execution_limit() {
            return Handled::stopped(format!("not run: {}", stop.message), stop);
        }
        let key = normalise(&code);
        if self.failed.contains(&key) {
            let stop = Stop {
                reason: StopReason::SameCode,
                message:
                    "stopped: the model is stuck, it sent again a script that had already failed"
                        .into(),
            };
            return Handled::stopped("not run: this script already failed".into(), stop);
        }
        self.summary.executions += 1;
        if self.failures_in_a_row > 0 {
            self.summary.debug_retries += 1;
        }
        let attempt = self.summary.executions;
        on_event(AgentEvent::Execution {
            attempt,
            code: code.clone(),
        });
        let span = tracing::info_span!("agent_execution", attempt);
        let hook = self.agent.hook.clone();
        let executed = match hook.as_deref().and_then(|h| h.execute(&code)) {
            Some(carried_out) => carried_out.await,
            None => {
                let mut options = ExecOptions {
                    file_name: "script.ts".into(),
                    ..ExecOptions::default()
                };
                if let Some(hook) = &hook {
                    hook.before(&code, &mut options);
                }
                let _guard = span.enter();
                Executed {
                    record: self.agent.engine.execute(&code, options).await,
                    note: None,
                }
            }
        };
        let record = executed.record;
        let mut text = isola_codemode::render::record_text(&record, &self.view.api.api);
        if let Some(note) = executed.note {
            text = format!("{note}\n{text}");
        }
        on_event(AgentEvent::Done {
            ok: record.ok,
            summary: first_line(&text),
        });
        let error = record.error.clone();
        self.steps.push(Step::Execution {
            attempt,
            code,
            record: Box::new(record),
        });
        match error {
            None => self.success(text),
            Some(e) => {
                self.summary.failed_executions += 1;
                self.turn.failed.push(key);
                self.failure(text, error_signature(&e))
            }
        }
    }

    /// Two-step: the code model writes the script from the agent model's description.
    async fn two_step(
        &mut self,
        task: String,
        on_event: &mut (dyn FnMut(AgentEvent) + Send),
    ) -> Handled {
        let request = ChatRequest {
            system: prompts::code_model_system(&self.view),
            messages: vec![Message::User { content: task }],
            tools: Vec::new(),
            max_output_tokens: self.config().max_output_tokens,
            temperature: self.config().temperature,
            tool_choice: None,
        };
        let chain = &self.agent.models.code_chain;
        let reply = match self.ask("code", chain, request, on_event).await {
            Ok(r) => r,
            // A script cut at the cap is not run; the agent model hears why and may describe a
            // smaller function.
            Err(stop) if stop.reason == StopReason::Truncated => {
                return self.failure(
                    format!(
                        "error: no script was run: {}\n",
                        stop.message.trim_start_matches("stopped: ")
                    ),
                    "code model: cut at the output-token limit".into(),
                );
            }
            Err(stop) => {
                let content = match stop.reason {
                    StopReason::LlmFailed => format!("the code model failed: {}", stop.message),
                    _ => format!("not run: {}", stop.message),
                };
                return Handled::stopped(content, stop);
            }
        };
        let code = prompts::extract_code(&reply.response.text);
        if code.is_empty() {
            return self.failure(
                "error: the code model returned no code\n".into(),
                "code model: no code".into(),
            );
        }
        let mut handled = self.execute(code.clone(), on_event).await;
        if handled.is_error {
            // The agent model never saw the script: show it what failed.
            handled.content = format!(
                "The script written from your description:\n```ts\n{code}\n```\n{}",
                handled.content
            );
        }
        handled
    }

    /// Tools mode: one MCP tool, called directly.
    async fn classic_call(
        &mut self,
        call: &ToolCall,
        on_event: &mut (dyn FnMut(AgentEvent) + Send),
    ) -> Handled {
        let Some(&(_, index)) = self.classic.iter().find(|(t, _)| t.name == call.name) else {
            let message = format!("there is no tool `{}`", call.name);
            return self.malformed(call, message);
        };
        let args = match object_arguments(&call.arguments, &call.name) {
            Ok(a) => a,
            Err(message) => return self.malformed(call, message),
        };
        if let Some(stop) = self.execution_limit() {
            return Handled::stopped(format!("not run: {}", stop.message), stop);
        }
        let key = format!("{}({})", call.name, Value::Object(args.clone()));
        if self.failed.contains(&key) {
            let stop = Stop {
                reason: StopReason::SameCode,
                message: format!(
                    "stopped: the model is stuck, it repeated a call that had already failed: {}",
                    call.name
                ),
            };
            return Handled::stopped("not run: this call already failed".into(), stop);
        }
        let Some(binding) = self.view.api.bindings.get(index) else {
            return self.malformed(call, format!("there is no tool `{}`", call.name));
        };
        let (server, tool) = (binding.server.clone(), binding.tool.clone());
        let checked = binding.validate(&Value::Object(args.clone()));
        self.summary.executions += 1;
        if self.failures_in_a_row > 0 {
            self.summary.debug_retries += 1;
        }
        on_event(AgentEvent::ToolCall {
            name: call.name.clone(),
        });
        let result = match checked {
            Err(message) => Err(message),
            Ok(()) => match self.agent.tools.call(&server, &tool, args.clone()).await {
                Err(e) => Err(e.to_string()),
                Ok(result) if result.get("isError").and_then(Value::as_bool) == Some(true) => {
                    Err(result_text(&result))
                }
                Ok(result) => Ok(result_text(&result)),
            },
        };
        let (ok, text) = self.tool_step(&call.name, args, result, on_event);
        if ok {
            self.success(text)
        } else {
            self.summary.failed_executions += 1;
            self.turn.failed.push(key);
            let signature = format!("{}: {}", call.name, text);
            self.failure(format!("error: {text}\n"), signature)
        }
    }
}

/// What a classic MCP host shows the model: the text items of the result, else its JSON.
fn result_text(result: &Value) -> String {
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    if !texts.is_empty() {
        return texts.join("\n");
    }
    match unwrap_result(result) {
        Value::String(s) => s,
        v => v.to_string(),
    }
}

/// The arguments object of a call, or a message saying what is wrong with it.
fn object_arguments(arguments: &str, tool: &str) -> Result<Map<String, Value>, String> {
    let text = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "the arguments of `{tool}` must be a JSON object, not {}",
            json_kind(&other)
        )),
        Err(e) => Err(format!(
            "the arguments of `{tool}` are not valid JSON ({e}); nothing was run. Send the arguments as one JSON object, with strings escaped (quotes as \\\", newlines as \\n)"
        )),
    }
}

/// A required string argument.
fn string_argument(arguments: &str, key: &str, tool: &str) -> Result<String, String> {
    let args = object_arguments(arguments, tool)?;
    match args.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("`{key}` of `{tool}` is empty")),
        Some(other) => Err(format!(
            "`{key}` of `{tool}` must be a string, not {}",
            json_kind(other)
        )),
        None => Err(format!(
            "`{tool}` needs `{key}` (a string); nothing was run"
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_errors_say_what_to_send() {
        let e = string_argument(r#"{"code": "return 1"#, "code", "execute").unwrap_err();
        assert!(
            e.starts_with("the arguments of `execute` are not valid JSON (EOF while parsing"),
            "{e}"
        );
        assert_eq!(
            string_argument(r#"{"code": 5}"#, "code", "execute").unwrap_err(),
            "`code` of `execute` must be a string, not a number"
        );
        assert_eq!(
            string_argument("{}", "code", "execute").unwrap_err(),
            "`execute` needs `code` (a string); nothing was run"
        );
        assert_eq!(
            string_argument(r#"{"code": "x"}"#, "code", "execute").unwrap(),
            "x"
        );
    }
}
