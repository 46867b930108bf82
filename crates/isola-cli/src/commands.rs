//! The subcommands.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use isola_config::Config;
use isola_engine::{Engine, ExecOptions};
use isola_mcp::{McpHub, ServerState};
use isola_worker::{Backend, WorkerCommand, WorkerPool};

use crate::check::Front;
use crate::cli::{Cli, Command, ExecArgs, ResumeArgs};
use crate::error::{UserInputExt, user_input};
use crate::{exit, render};

pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Tools { json } => tools(cli.config.as_deref(), json).await,
        Command::Types {
            servers,
            compact,
            tokens,
        } => {
            types(
                cli.config.as_deref(),
                cli.store.as_deref(),
                &servers,
                compact,
                tokens,
            )
            .await
        }
        Command::Exec(args) => exec(cli.config.as_deref(), cli.store.as_deref(), args).await,
        Command::Check(args) => {
            crate::check::check(cli.config.as_deref(), cli.store.as_deref(), args).await
        }
        Command::Run(args) => {
            crate::agent::run(cli.config.as_deref(), cli.store.as_deref(), args).await
        }
        Command::Chat(args) => {
            crate::agent::chat(cli.config.as_deref(), cli.store.as_deref(), args).await
        }
        Command::Mcp(args) => {
            crate::mcp::run(cli.config.as_deref(), cli.store.as_deref(), args, false).await
        }
        Command::Serve(args) => {
            crate::mcp::run(cli.config.as_deref(), cli.store.as_deref(), args, true).await
        }
        Command::Journal(c) => {
            crate::journal::journal(cli.config.as_deref(), cli.store.as_deref(), c).await
        }
        Command::Sessions(c) => {
            crate::journal::sessions(cli.config.as_deref(), cli.store.as_deref(), c).await
        }
        Command::Tokens(c) => {
            crate::tokens::tokens(cli.config.as_deref(), cli.store.as_deref(), c).await
        }
        Command::Policy(c) => crate::govern::policy(cli.config.as_deref(), c).await,
        Command::Approvals(c) => {
            crate::govern::approvals(cli.config.as_deref(), cli.store.as_deref(), c).await
        }
        Command::Resume(a) => resume(cli.config.as_deref(), cli.store.as_deref(), a).await,
        Command::Plan(a) => crate::plan::plan(cli.config.as_deref(), cli.store.as_deref(), a).await,
        Command::Apply(a) => {
            crate::plan::apply(cli.config.as_deref(), cli.store.as_deref(), a).await
        }
        Command::Replay(a) => {
            crate::journal::replay(cli.config.as_deref(), cli.store.as_deref(), a).await
        }
    }
}

/// Load the config: `--config PATH`, else `isola.json` in the working directory.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    let path: PathBuf = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(isola_config::DEFAULT_CONFIG_FILE));
    Ok(isola_config::load_config(&path)?)
}

/// Connect to every configured server, warning on stderr about those that failed.
pub async fn connect(config: &Config) -> Arc<McpHub> {
    let hub = McpHub::connect(config).await;
    for s in hub.servers() {
        if let ServerState::Failed(reason) = &s.state {
            eprintln!("warning: MCP server `{}` is unavailable: {reason}", s.name);
        }
    }
    Arc::new(hub)
}

/// Where the CLI runs scripts: worker processes of this same executable (the default), or, with
/// `--in-process`, threads of this process.
pub fn backend(config: &Config, in_process: bool) -> Result<Backend> {
    if in_process {
        return Ok(Backend::InProcess);
    }
    let command = WorkerCommand::current_exe("__worker")?;
    let warm = config.settings.workers.unwrap_or(2);
    let max = config
        .settings
        .max_workers
        .unwrap_or_else(|| isola_worker::default_max_workers(warm));
    let required = config.settings.require_hardening.clone();
    Ok(Backend::Workers(WorkerPool::with_options(
        command, warm, max, required,
    )))
}

/// What a command that runs scripts sets up once it has its journal: the governor (asking at
/// this terminal when there is one), the servers, and the engine over them.
pub struct Running {
    pub governor: Arc<isola_control::Governor>,
    pub hub: Arc<McpHub>,
    pub engine: Engine,
}

impl Running {
    pub async fn start(
        config: &Config,
        journaled: Option<&crate::journal::Journaled>,
        in_process: bool,
        limits: isola_protocol::Limits,
    ) -> Result<Running> {
        let governor = crate::govern::governor(
            config,
            journaled.map(|j| j.store()),
            crate::govern::on_terminal(),
        )?;
        let backend = backend(config, in_process)?;
        let hub = connect(config).await;
        let engine = engine(config, journaled, hub.clone(), backend, limits, Front::Exec)?;
        Ok(Running {
            governor,
            hub,
            engine,
        })
    }
}

/// The engine every command uses: the servers of `hub` (with the journal's `state` when there
/// is a journal), the config's settings applied, the type check `front`'s.
pub fn engine(
    config: &Config,
    journaled: Option<&crate::journal::Journaled>,
    hub: Arc<McpHub>,
    backend: Backend,
    limits: isola_protocol::Limits,
    front: Front,
) -> Result<Engine> {
    let tools: Arc<dyn isola_engine::Tools> = match journaled {
        Some(j) => j.tools(hub),
        None => hub,
    };
    let engine =
        Engine::new(tools, backend, limits).with_max_script_bytes(config.settings.max_script_bytes);
    crate::check::attach(engine, config, front)
}

async fn tools(config: Option<&Path>, json: bool) -> Result<ExitCode> {
    let config = load_config(config)?;
    let hub = McpHub::connect(&config).await;
    let servers = hub.servers();
    let api = isola_engine::ApiState::build(&isola_engine::Tools::servers(&hub));
    let sandbox = sandbox_status(&config).await;
    let text = if json {
        render::tools_json(&servers, &api, &sandbox)?
    } else {
        render::tools_text(&servers, &api, &sandbox)
    };
    hub.shutdown().await;
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The API scripts see with `config` and `store`: the servers' tools (connected, listed, let
/// go), and the durable `state` namespace whenever there is a store.
pub async fn api_of(config: &Config, store: Option<&str>) -> Result<isola_engine::ApiState> {
    let hub = connect(config).await;
    let mut servers = isola_engine::Tools::servers(hub.as_ref());
    hub.shutdown().await;
    if crate::journal::store_url(store, Some(config))? != isola_store::StoreUrl::None {
        servers.push(isola_journal::state_server());
    }
    Ok(isola_engine::ApiState::build(&servers))
}

/// Start one sandbox worker to see how it is hardened (what `isola tools` reports).
async fn sandbox_status(config: &Config) -> Result<isola_protocol::Ready, String> {
    let command = WorkerCommand::current_exe("__worker").map_err(|e| e.to_string())?;
    let pool = WorkerPool::with_required(command, 0, config.settings.require_hardening.clone());
    pool.checkout()
        .await
        .map(|w| {
            let ready = w.ready().clone();
            w.kill();
            ready
        })
        .map_err(|e| e.to_string())
}

async fn types(
    config: Option<&Path>,
    store: Option<&str>,
    only: &[String],
    compact: bool,
    tokens: bool,
) -> Result<ExitCode> {
    let config = load_config(config)?;
    let api = api_of(&config, store).await?;
    for name in only {
        if !api
            .api
            .namespaces
            .iter()
            .any(|n| &n.server == name || &n.ident == name)
        {
            let known: Vec<&str> = api
                .api
                .namespaces
                .iter()
                .map(|n| n.server.as_str())
                .collect();
            return Err(user_input(anyhow::anyhow!(
                "no server `{name}` in {}\nhint: configured servers with tools: {}",
                config.path.display(),
                if known.is_empty() {
                    "(none)".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let filter: Vec<&str> = only.iter().map(String::as_str).collect();
    let filter = (!filter.is_empty()).then_some(filter.as_slice());
    let text = if compact {
        api.api.compact(filter)
    } else {
        api.api.declarations(filter)
    };
    if tokens {
        eprintln!(
            "{} tokens (tiktoken o200k_base)",
            isola_tokens::count_tokens(&text)
        );
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

async fn exec(config_path: Option<&Path>, store: Option<&str>, args: ExecArgs) -> Result<ExitCode> {
    let (source, file_name) = read_script(&args.file)?;
    let config = load_config(config_path)?;
    let mut limits = config.settings.limits.clone();
    args.limits.apply(&mut limits);
    // The journal's store (recovering what a crashed run left), before any server starts.
    let journaled = crate::journal::Journaled::open(store, &config, args.session.clone()).await?;
    let Running {
        governor,
        hub,
        engine,
    } = Running::start(&config, journaled.as_ref(), args.in_process, limits).await?;
    crate::check::require(&engine, args.check.check)?;
    let mut options = ExecOptions {
        file_name: file_name.clone(),
        check: args.check.check,
        ..ExecOptions::default()
    };
    let exec_id = journaled
        .as_ref()
        .map(|j| j.begin(&engine, &source, &file_name, &mut options));
    crate::govern::attach(
        &governor,
        &mut options,
        &source,
        &format!("cli:{}", crate::govern::user()),
        args.session.clone(),
    );
    let record = engine.execute(&source, options).await;
    if let Some(j) = journaled {
        j.close().await;
    }
    hub.shutdown().await;
    finish(&record, exec_id.as_deref(), args.json, args.trace)
}

/// `isola resume`: go on with a suspended execution. Its calls so far are answered from the
/// journal (none is sent again); the calls that waited go through the gates again (an approved
/// request lets its call through); then it runs live to its end, in the same journal entry.
async fn resume(
    config_path: Option<&Path>,
    store: Option<&str>,
    args: ResumeArgs,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let Some(journaled) = crate::journal::Journaled::open(store, &config, None).await? else {
        return Err(user_input(anyhow::anyhow!(
            "the store is `none`: there is no journal to resume from\nhint: pass the store the execution ran with (--store sqlite:PATH or postgres://...)"
        )));
    };
    let store = journaled.store();
    let r = isola_journal::resumable(&*store, &args.id)
        .await
        .map_err(crate::journal::journal_error)?;
    for (seq, function) in &r.waiting {
        let id = isola_control::approval_id(&r.execution, *seq);
        if let Some(a) = store
            .approval(&id, isola_control::approval::now_ms())
            .await?
            && a.status == "pending"
        {
            eprintln!(
                "note: {function} (call #{}) still waits for approval {id}: `isola approvals approve {id}` decides it",
                seq + 1
            );
        }
    }
    let Running {
        governor,
        hub,
        engine,
    } = Running::start(
        &config,
        Some(&journaled),
        args.in_process,
        config.settings.limits.clone(),
    )
    .await?;
    let principal = format!("cli:{}", crate::govern::user());
    let options = match crate::journal::take_over(
        journaled.journal(),
        &governor,
        &engine,
        &r,
        "cli",
        &principal,
    )
    .await
    {
        Ok(options) => options,
        Err(e) => {
            hub.shutdown().await;
            return Err(crate::journal::journal_error(e));
        }
    };
    let waiting = r.waiting.len();
    eprintln!(
        "isola: resuming {} ({} recorded call(s) answered from the journal, {} to go through the gates again)",
        r.execution,
        r.recording.calls.len() - waiting.min(r.recording.calls.len()),
        waiting
    );
    let record = engine.execute(&r.code, options).await;
    journaled.close().await;
    hub.shutdown().await;
    finish(&record, Some(&r.execution), args.json, args.trace)
}

/// Print an execution's record (`--json`: all of it, with its journal id) and say how it ended.
pub fn finish(
    record: &isola_protocol::ExecRecord,
    exec_id: Option<&str>,
    json: bool,
    trace: bool,
) -> Result<ExitCode> {
    if json {
        let value = crate::journal::with_execution_id(record, exec_id)?;
        print(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    } else {
        // Both streams are cleaned when either is a terminal: 2>&1 is common.
        let tty = std::io::stdout().is_terminal() || std::io::stderr().is_terminal();
        render::record_text(
            record,
            trace,
            tty,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
        .context("writing the result")?;
    }
    Ok(exit_code(record))
}

/// How an execution ended, as an exit code.
pub fn exit_code(record: &isola_protocol::ExecRecord) -> ExitCode {
    use isola_protocol::ErrorKind;
    match &record.error {
        None => ExitCode::SUCCESS,
        Some(e) if e.kind == ErrorKind::Internal => ExitCode::from(exit::INTERNAL),
        Some(e) if e.kind == ErrorKind::Suspended => ExitCode::from(exit::SUSPENDED),
        Some(_) => ExitCode::from(exit::SCRIPT_FAILED),
    }
}

/// The script's text and the name errors should use for it.
pub fn read_script(path: &Path) -> Result<(String, String)> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the script from standard input")
            .user_input()?;
        return Ok((s, "stdin.ts".to_string()));
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the script {}", path.display()))
        .user_input()?;
    let text = String::from_utf8(bytes)
        .map_err(|e| {
            anyhow::anyhow!(
                "the script {} is not UTF-8 (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            )
        })
        .user_input()?;
    Ok((text, path.display().to_string()))
}

/// Write to stdout; a closed pipe is not an error worth a message (see main).
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
