//! `isola run` and `isola chat`: Isola's own agent over real LLM providers.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use isola_agent::{Agent, AgentConfig, AgentEvent, Mode, StopReason, Transcript};
use isola_config::Config;
use isola_llm::{ProviderKind, ToolChoice};
use isola_mcp::McpHub;

use crate::commands::{backend, connect, load_config, print};
use crate::exit;

/// Options shared by `run` and `chat`. Each overrides `isola.agent` in the config.
#[derive(Args, Debug, Default)]
pub struct AgentArgs {
    /// The agent model, as provider:model (openai:gpt-4o-mini, anthropic:claude-sonnet-4-5,
    /// gemini:gemini-2.5-flash, or a provider defined in isola.agent.providers).
    #[arg(long, short = 'm', value_name = "PROVIDER:MODEL")]
    pub model: Option<String>,
    /// The code model of two-step mode [default: the agent model].
    #[arg(long, value_name = "PROVIDER:MODEL")]
    pub code_model: Option<String>,
    /// A model to fall back to on 429, 5xx or timeouts (repeat for a chain).
    #[arg(long = "fallback", value_name = "PROVIDER:MODEL")]
    pub fallback: Vec<String>,
    /// code (the model writes TypeScript), two-step (it describes, the code model writes), or
    /// tools (classic JSON tool calling).
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub mode: Option<Mode>,
    /// Base URL of the agent model's provider (overrides OPENAI_BASE_URL / ANTHROPIC_BASE_URL /
    /// GEMINI_BASE_URL).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Failed executions in a row before giving up.
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Most model calls per prompt.
    #[arg(long, value_name = "N")]
    pub max_llm_calls: Option<u32>,
    /// Most executions (or tool calls in tools mode) per prompt.
    #[arg(long, value_name = "N")]
    pub max_executions: Option<u32>,
    /// Most tokens (in + out) per prompt.
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u64>,
    /// Most USD per prompt.
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<f64>,
    /// Answer repeated identical requests from the response cache.
    #[arg(long, overrides_with = "no_cache")]
    pub cache: bool,
    #[arg(long, hide = true)]
    pub no_cache: bool,
    /// Ask for whole answers instead of streamed ones.
    #[arg(long)]
    pub no_stream: bool,
    /// Whether the agent model may (auto), must (required) or must not (none) call a tool
    /// [default: the provider's, auto]. `required` gets tool calls out of small local models;
    /// the run then ends at a limit.
    #[arg(long, value_name = "CHOICE", value_parser = parse_tool_choice)]
    pub tool_choice: Option<ToolChoice>,
    /// The output-token cap of every model [default: per provider, 4096 hosted, 2048 local].
    #[arg(long, value_name = "N")]
    pub max_output_tokens: Option<u32>,
    /// The request timeout of every model: the whole answer when not streamed, its first byte
    /// when streamed, e.g. 5m [default: per provider, 5m hosted, 20m local].
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::parse_duration_ms)]
    pub timeout: Option<u64>,
    /// The longest silence of a streamed answer, e.g. 10m [default: per provider, 2m hosted,
    /// 10m local: llama.cpp sends nothing while it generates a tool call].
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::parse_duration_ms)]
    pub idle_timeout: Option<u64>,
    /// Run scripts inside this process instead of worker processes.
    #[arg(long)]
    pub in_process: bool,
    /// Plan mode: each script the model writes runs as a plan first (reads made, changes held
    /// back); only a plan the policy allows, or a person approves (`isola approvals`), is
    /// applied. The model is told the plan, the decision and the outcome.
    #[arg(long)]
    pub plan: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The task for the agent; - reads it from standard input.
    pub prompt: String,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Print the whole transcript as JSON (messages, code, execution records, model calls,
    /// usage) instead of streaming the answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s).ok_or_else(|| format!("`{s}` is not a mode (use code, two-step or tools)"))
}

fn parse_tool_choice(s: &str) -> Result<ToolChoice, String> {
    ToolChoice::parse(s)
        .ok_or_else(|| format!("`{s}` is not a tool choice (use auto, required or none)"))
}

/// The agent settings: the config's `isola.agent`, then the environment, then the flags.
pub fn agent_config(config: &Config, args: &AgentArgs) -> Result<AgentConfig> {
    let mut c = AgentConfig::from_value(config.settings.agent.as_ref(), &config.path)?;
    c.apply_env(&|k| std::env::var(k).ok());
    if let Some(m) = &args.model {
        c.model = Some(m.clone());
    }
    if let Some(m) = &args.code_model {
        c.code_model = Some(m.clone());
    }
    if !args.fallback.is_empty() {
        c.fallback = args.fallback.clone();
    }
    if let Some(m) = args.mode {
        c.mode = m;
    }
    if let Some(url) = &args.base_url {
        let model = c.model.clone().ok_or(isola_agent::ConfigError::NoModel)?;
        let provider = match model.split_once(':') {
            Some((p, _)) => p.to_string(),
            None => ProviderKind::guess(&model)
                .map(|k| k.as_str().to_string())
                .ok_or_else(|| crate::error::user_input(anyhow!("--base-url: cannot tell the provider of `{model}`\nhint: name the model as provider:model")))?,
        };
        c.providers.entry(provider).or_default().base_url = Some(url.clone());
    }
    if let Some(n) = args.max_attempts {
        c.max_attempts = n;
    }
    if let Some(n) = args.max_llm_calls {
        c.limits.max_llm_calls = n;
    }
    if let Some(n) = args.max_executions {
        c.limits.max_executions = n;
    }
    if let Some(n) = args.max_tokens {
        c.limits.max_tokens = Some(n);
    }
    if let Some(n) = args.max_cost {
        c.limits.max_cost_usd = Some(n);
    }
    if args.cache {
        c.cache.enabled = true;
    }
    if args.no_cache {
        c.cache.enabled = false;
    }
    if args.no_stream {
        c.stream = false;
    }
    if let Some(choice) = args.tool_choice {
        c.tool_choice = Some(choice);
    }
    if let Some(n) = args.max_output_tokens {
        c.max_output_tokens = Some(n);
    }
    if let Some(ms) = args.timeout {
        c.timeout_ms = Some(ms);
    }
    if let Some(ms) = args.idle_timeout {
        c.idle_timeout_ms = Some(ms);
    }
    c.plan |= args.plan;
    Ok(c)
}

struct Session {
    agent: Agent,
    hub: Arc<McpHub>,
    journal: Option<crate::journal::Journaled>,
}

impl Session {
    /// Keep the run's calls to models in the store (when there is one).
    async fn record(&self, transcript: &Transcript) {
        if let Some(j) = &self.journal {
            record_llm_calls(
                &*j.store(),
                &format!("cli:{}", crate::govern::user()),
                transcript,
            )
            .await;
        }
    }

    /// Commit the journal, then stop the servers.
    async fn end(self) {
        if let Some(j) = self.journal {
            j.close().await;
        }
        self.hub.shutdown().await;
    }
}

/// `kind` names the journal's session (`run`, `chat`).
async fn start(
    config_path: Option<&Path>,
    store: Option<&str>,
    args: &AgentArgs,
    kind: &str,
) -> Result<Session> {
    let config = load_config(config_path)?;
    let mut agent_config = agent_config(&config, args)?;
    if agent_config.model.is_none() {
        agent_config.model = discover_model(&agent_config).await?;
    }
    let models = agent_config
        .build(&|k| std::env::var(k).ok())
        .map_err(crate::error::user_input)?;
    // The journal's store (recovering what a crashed run left), before any server starts.
    let journal = crate::journal::Journaled::open(store, &config, None).await?;
    let backend = backend(&config, args.in_process)?;
    let hub = connect(&config).await;
    let limits = config.settings.limits.clone();
    let engine = Arc::new(crate::commands::engine(
        &config,
        journal.as_ref(),
        hub.clone(),
        backend,
        limits,
        crate::check::Front::Agent,
    )?);
    let governor = crate::govern::governor(
        &config,
        journal.as_ref().map(|j| j.store()),
        crate::govern::on_terminal(),
    )?;
    let mut hook = crate::journal::AgentHook::new(
        journal.as_ref().map(|j| j.journal().clone()),
        engine.clone(),
        governor,
        kind,
    );
    if agent_config.plan {
        if journal.is_none() {
            return Err(crate::error::user_input(anyhow!(
                "plan mode keeps its plans in the store, and the store is `none`\nhint: drop --store none, or --plan"
            )));
        }
        hook = hook.planning(config.settings.approvals.timeout_ms);
    }
    let agent = Agent::new(engine, hub.clone(), agent_config, models).with_hook(Arc::new(hook));
    Ok(Session {
        agent,
        hub,
        journal,
    })
}

/// No model named anywhere, but a local server's base URL is set (`OPENAI_BASE_URL`, else
/// `ANTHROPIC_BASE_URL`): use the model it serves when it serves exactly one.
async fn discover_model(c: &AgentConfig) -> Result<Option<String>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let Some(kind) = [ProviderKind::OpenAi, ProviderKind::Anthropic]
        .into_iter()
        .find(|k| env(k.base_url_var()).is_some())
    else {
        return Ok(None);
    };
    // Out of scope before the await: `Providers` holds a `&dyn Fn` (not `Send`).
    let route = isola_llm::Providers {
        configured: &c.providers,
        env: &env,
    }
    .route(&format!("{kind}:_"))
    .map_err(crate::error::user_input)?;
    let url = &route.provider.base_url;
    let timeout = std::time::Duration::from_millis(c.timeout_ms.unwrap_or(10_000).min(10_000));
    let models = isola_llm::list_models(&route.provider, timeout)
        .await
        .map_err(|e| crate::error::user_input(anyhow!("no model is set, and listing the models at {url} failed: {e}\nhint: pass --model {kind}:NAME")))?;
    match models.as_slice() {
        [one] => {
            eprintln!("(model: {kind}:{one}, the only one {url} serves)");
            Ok(Some(format!("{kind}:{one}")))
        }
        [] => Ok(None),
        many => Err(crate::error::user_input(anyhow!(
            "no model is set, and {url} serves several: {}\nhint: pass --model {kind}:NAME (or set ISOLA_MODEL)",
            many.join(", ")
        ))),
    }
}

pub async fn run(
    config_path: Option<&Path>,
    store: Option<&str>,
    args: RunArgs,
) -> Result<ExitCode> {
    let prompt = if args.prompt == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the prompt from standard input")?;
        s
    } else {
        args.prompt.clone()
    };
    if prompt.trim().is_empty() {
        return Err(crate::error::user_input(anyhow!(
            "the prompt is empty\nhint: isola run \"what to do\""
        )));
    }
    let session = start(config_path, store, &args.agent, "run").await?;
    let mut history = Vec::new();
    let transcript = if args.json {
        session.agent.run(&mut history, &prompt, &mut |_| {}).await
    } else {
        let mut printer = Printer::new();
        let t = session
            .agent
            .run(&mut history, &prompt, &mut |e| printer.event(e))
            .await;
        printer.end(&t)?;
        t
    };
    session.record(&transcript).await;
    session.end().await;
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&transcript)?))?;
    }
    Ok(exit_code(&transcript))
}

fn exit_code(t: &Transcript) -> ExitCode {
    match t.stop.reason {
        StopReason::Answered => ExitCode::SUCCESS,
        _ => ExitCode::from(exit::SCRIPT_FAILED),
    }
}

pub async fn chat(
    config_path: Option<&Path>,
    store: Option<&str>,
    args: ChatArgs,
) -> Result<ExitCode> {
    use tokio::io::AsyncBufReadExt;
    let session = start(config_path, store, &args.agent, "chat").await?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        let c = session.agent.config();
        eprintln!(
            "isola chat: {} in {} mode. /reset clears the history, /exit (or Ctrl-D) leaves.",
            c.model.as_deref().unwrap_or("?"),
            c.mode.as_str()
        );
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut history = Vec::new();
    let mut code = ExitCode::SUCCESS;
    loop {
        if interactive {
            eprint!("› ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = lines.next_line().await.context("reading standard input")? else {
            break;
        };
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.clear();
                eprintln!("(history cleared)");
                continue;
            }
            _ => {}
        }
        let mut printer = Printer::new();
        let t = session
            .agent
            .run(&mut history, line, &mut |e| printer.event(e))
            .await;
        printer.end(&t)?;
        session.record(&t).await;
        code = exit_code(&t);
    }
    session.end().await;
    Ok(code)
}

/// Writes the final answer to stdout and everything else to stderr: the progress, and the
/// text a model writes before its tool calls. When stdout is a terminal, text streams there as
/// it arrives (a person is watching; the turns read in order); otherwise each turn's text is
/// held until the turn ends, then goes to stdout if it is the final answer and to stderr if
/// tool calls follow, so `isola run ... > answer.txt` captures the answer alone.
struct Printer {
    /// Stream text to stdout as it arrives.
    live: bool,
    /// The text of the current turn (not live).
    turn: String,
    /// The last text written to stdout did not end a line.
    open_line: bool,
}

impl Printer {
    fn new() -> Self {
        Printer {
            live: std::io::stdout().is_terminal(),
            turn: String::new(),
            open_line: false,
        }
    }

    fn out(&mut self, text: &str) {
        let text = crate::term::clean(text, crate::term::Stream::Stdout);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        self.open_line = !text.ends_with('\n');
    }

    fn note(&mut self, text: &str) {
        if self.open_line {
            self.out("\n");
        }
        eprintln!("{}", crate::term::clean(text, crate::term::Stream::Stderr));
    }

    fn event(&mut self, e: AgentEvent) {
        match e {
            AgentEvent::Text(t) if self.live => self.out(&t),
            AgentEvent::Text(t) => self.turn.push_str(&t),
            AgentEvent::Discard if self.live => {
                if self.open_line {
                    self.out("\n");
                }
            }
            AgentEvent::Discard => self.turn.clear(),
            AgentEvent::Turn { .. } if self.live => {}
            AgentEvent::Turn { tool_calls: 0 } => {
                let answer = std::mem::take(&mut self.turn);
                self.out(&answer);
            }
            AgentEvent::Turn { .. } => {
                let said = std::mem::take(&mut self.turn);
                if !said.trim().is_empty() {
                    self.note(said.trim_end());
                }
            }
            AgentEvent::Truncated {
                role,
                max_output_tokens,
                retrying,
            } => {
                let cap = max_output_tokens.map_or_else(String::new, |n| format!(" of {n} tokens"));
                let next = match (retrying, max_output_tokens) {
                    (true, Some(n)) => format!("; asking again with {}", n.saturating_mul(2)),
                    (true, None) => "; asking again".to_string(),
                    (false, _) => String::new(),
                };
                self.note(&format!(
                    "  ✂ the {role} model's answer was cut at the output limit{cap}{next}"
                ));
            }
            AgentEvent::Execution { attempt, code } => {
                let lines = code.lines().count();
                self.note(&format!(
                    "▸ execute #{attempt} ({lines} line{})",
                    if lines == 1 { "" } else { "s" }
                ));
            }
            AgentEvent::ToolCall { name } => self.note(&format!("▸ {name}")),
            AgentEvent::Done { ok: true, summary } => self.note(&format!("  ✓ {summary}")),
            AgentEvent::Done { ok: false, summary } => self.note(&format!("  ✗ {summary}")),
            AgentEvent::ProviderRetry { message } => self.note(&format!("  ↻ {message}")),
        }
    }

    fn end(&mut self, t: &Transcript) -> Result<()> {
        if self.open_line {
            self.out("\n");
        }
        if t.stop.reason != StopReason::Answered {
            eprintln!(
                "stopped: {}",
                t.stop
                    .message
                    .strip_prefix("stopped: ")
                    .unwrap_or(&t.stop.message)
            );
        }
        eprintln!("— {}", t.summary.line());
        Ok(())
    }
}

/// Keep a run's calls to models in the store, for usage by model and day (`GET /v1/usage`).
/// A store that refuses is logged: the run's answer is not lost for it.
async fn record_llm_calls(store: &dyn isola_store::Store, origin: &str, transcript: &Transcript) {
    let run = isola_journal::new_execution_id();
    let at_ms = isola_journal::now_ms();
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let rows: Vec<isola_store::LlmCallRow> = transcript
        .llm_calls
        .iter()
        .enumerate()
        .map(|(i, c)| isola_store::LlmCallRow {
            id: format!("{run}-{i}"),
            at_ms,
            origin: origin.to_string(),
            provider: c.provider.clone(),
            model: c.model.clone(),
            ok: matches!(
                c.outcome,
                isola_llm::Outcome::Ok | isola_llm::Outcome::Cached
            ),
            input_tokens: tokens(c.usage.input_tokens),
            output_tokens: tokens(c.usage.output_tokens),
            cached_tokens: tokens(c.usage.cached_tokens),
            latency_ms: c.latency_ms,
            cost_usd: c.cost_usd,
        })
        .collect();
    if let Err(e) = store.llm_calls_add(&rows).await {
        tracing::warn!("could not keep the run's calls to models: {e}");
    }
}

/// `isola serve`'s agent runs (`POST /v1/runs`): Isola's agent over the server's own engine
/// and servers, its scripts journaled and governed as the server's other executions, on behalf
/// of the token that asked. The agent's settings are the config's (`isola.agent`), read once;
/// the run may name another model.
pub struct ServeAgents {
    pub config: AgentConfig,
    /// `isola.check.agent` (the engine's own mode is the servers').
    pub check: isola_protocol::CheckMode,
    pub engine: Arc<isola_engine::Engine>,
    pub hub: Arc<McpHub>,
    pub journal: Option<isola_journal::Journal>,
    pub governor: Arc<isola_control::Governor>,
}

impl ServeAgents {
    pub fn new(
        config: &Config,
        engine: Arc<isola_engine::Engine>,
        hub: Arc<McpHub>,
        journal: Option<isola_journal::Journal>,
        governor: Arc<isola_control::Governor>,
    ) -> Result<Self> {
        Ok(Self {
            config: agent_config(config, &AgentArgs::default())?,
            check: crate::check::agent_mode(config),
            engine,
            hub,
            journal,
            governor,
        })
    }
}

impl isola_http::Agents for ServeAgents {
    fn run<'a>(
        &'a self,
        who: &'a str,
        model: Option<&'a str>,
        history: &'a mut Vec<isola_llm::Message>,
        prompt: &'a str,
        on_event: &'a mut (dyn FnMut(AgentEvent) + Send),
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Transcript, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let mut config = self.config.clone();
            if let Some(model) = model {
                config.model = Some(model.to_string());
            }
            if config.model.is_none() {
                config.model = discover_model(&config)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
            }
            let models = config
                .build(&|k| std::env::var(k).ok())
                .map_err(|e| e.to_string())?;
            let hook = crate::journal::AgentHook::new(
                self.journal.clone(),
                self.engine.clone(),
                self.governor.clone(),
                "serve",
            )
            .on_behalf_of(who)
            .checking(self.check);
            let agent = Agent::new(self.engine.clone(), self.hub.clone(), config, models)
                .with_hook(Arc::new(hook));
            let transcript = agent.run(history, prompt, on_event).await;
            if let Some(journal) = &self.journal {
                record_llm_calls(&**journal.store(), who, &transcript).await;
            }
            Ok(transcript)
        })
    }
}
