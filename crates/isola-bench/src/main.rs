//! `isola-bench`: Isola's benchmarks as a command (see BENCHMARKS.md). A development tool,
//! not part of the shipped `isola` binary: it carries the scripted LLM server of the agent
//! benchmark. The measurements live in the library (`isola_bench`); this prints them.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use isola_config::Config;
use isola_mcp::{McpHub, ServerState};
use isola_worker::{Backend, WorkerCommand, WorkerPool};

#[derive(Parser, Debug)]
#[command(
    name = "isola-bench",
    about = "Isola's benchmarks (see BENCHMARKS.md)."
)]
struct Cli {
    /// The mcpServers config file [default: isola.json in the working directory].
    #[arg(long, global = true, env = "ISOLA_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    which: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// The agent in code mode vs classic tool calling on scripted multi-step tasks: LLM round
    /// trips, tokens in and out, wall time.
    Agent {
        /// Where the fixture MCP servers are installed (`npm ci --prefix fixtures/servers`).
        #[arg(
            long,
            env = "ISOLA_FIXTURE_SERVERS",
            value_name = "DIR",
            default_value = "fixtures/servers/node_modules/.bin"
        )]
        servers: PathBuf,
        /// Runs of each task in each mode (the median wall time is reported).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Simulated model latency per answer, in milliseconds.
        #[arg(long, default_value_t = 0, value_name = "MS")]
        latency_ms: u64,
        /// Also print the per-task table as JSON on stdout after the report.
        #[arg(long)]
        json: bool,
    },
    /// Trivial-script latency (in-process and warm worker), binding round trip, sandbox memory,
    /// and the same script through `deno run` as the peer.
    Exec {
        /// Executions per measurement.
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
        /// Path of a deno binary for the peer comparison.
        #[arg(long, env = "ISOLA_DENO")]
        deno: Option<PathBuf>,
    },
    /// Concurrent clients of `isola mcp --http`, each running executions of a script with three
    /// tool calls to server-everything: executions/s, worker processes started, isola's RSS.
    Load {
        /// The isola binary to measure [default: `isola` next to this binary]; run twice with
        /// an older build to compare.
        #[arg(long, value_name = "PATH")]
        isola: Option<PathBuf>,
        #[arg(long, default_value_t = 20)]
        clients: usize,
        /// Executions in all (split evenly between the clients).
        #[arg(long, default_value_t = 200)]
        executions: u64,
        /// Warm workers (`isola.workers`).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// `isola.maxWorkers` (left out of the config when not given: older builds reject it).
        #[arg(long)]
        max_workers: Option<usize>,
        /// The checkout whose fixtures/ to use.
        #[arg(long, value_name = "DIR", default_value = ".")]
        root: PathBuf,
        /// Through `isola serve`'s `POST /v1/executions` instead of MCP's `execute`.
        #[arg(long)]
        api: bool,
        /// Journal to a throwaway PostgreSQL cluster (Debian's postgresql, started for the
        /// run) instead of SQLite.
        #[arg(long)]
        postgres: bool,
    },
    /// Server-sent events of `isola serve`: executions of `console.log('ping')` one after
    /// another, each timed from its POST to its `started` and `log` events reaching a client
    /// of `GET /v1/events` (p50/p99).
    Sse {
        /// The isola binary to measure [default: `isola` next to this binary].
        #[arg(long, value_name = "PATH")]
        isola: Option<PathBuf>,
        #[arg(long, default_value_t = 500)]
        executions: usize,
        /// The checkout whose fixtures/ to use.
        #[arg(long, value_name = "DIR", default_value = ".")]
        root: PathBuf,
    },
    /// 100 sequential calls to a real MCP server through Isola vs directly with rmcp.
    Mcp {
        /// Server name in the config (must have an `echo` tool, e.g. server-everything).
        #[arg(long, default_value = "everything")]
        server: String,
        #[arg(long, default_value_t = 100)]
        calls: u32,
        #[arg(long, default_value_t = 10)]
        rounds: u32,
        /// Run the script in-process instead of in a worker process.
        #[arg(long)]
        in_process: bool,
    },
    /// What the journal costs: read-only MCP calls with it off and on, side-effecting calls per
    /// second on SQLite and PostgreSQL at concurrency 1 and 16, replay of 1,000 calls, bytes per
    /// call.
    Journal {
        /// Server name in the config (must have an `echo` tool, e.g. server-everything).
        #[arg(long, default_value = "everything")]
        server: String,
        #[arg(long, default_value_t = 100)]
        calls: u32,
        #[arg(long, default_value_t = 10)]
        rounds: u32,
        /// Side-effecting calls per measurement.
        #[arg(long, default_value_t = 1000)]
        side_calls: u32,
        /// Skip PostgreSQL (otherwise a throwaway cluster is started, see isola-test-support).
        #[arg(long)]
        no_postgres: bool,
        #[arg(long)]
        in_process: bool,
    },
    /// Isola against the Code Mode engines users would pick instead (Cloudflare's codemode on
    /// workerd, UTCP code-mode, quickjs-emscripten, Monty and FastMCP's CodeMode, deno), side by
    /// side in one run: the peers installed by scripts/setup-peers.sh.
    Peers {
        /// Few iterations, for the smoke test: results are checked, timings mean nothing.
        #[arg(long)]
        smoke: bool,
        /// Print the raw figures as JSON instead of the tables.
        #[arg(long)]
        json: bool,
        /// Also write the raw figures as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json_out: Option<PathBuf>,
        /// Only the rows whose label contains this (repeatable), e.g. `--only isola --only deno`.
        #[arg(long, value_name = "TEXT")]
        only: Vec<String>,
        /// The checkout whose fixtures/ to use [default: the working directory].
        #[arg(long, value_name = "DIR", default_value = ".")]
        root: PathBuf,
        /// Most executions of the trivial script per row (within a 10 s budget).
        #[arg(long)]
        iterations: Option<u32>,
        /// Rounds of the MCP workload.
        #[arg(long)]
        rounds: Option<u32>,
    },
    /// The type check: a 30-line script against a 100-tool API with each compiler of the
    /// fixtures (TypeScript 7's native one, TypeScript 5.9 on Node), cold and warm.
    Check {
        #[arg(long, default_value_t = 20)]
        rounds: u32,
        /// The checkout whose fixtures/ to use.
        #[arg(long, value_name = "DIR", default_value = ".")]
        root: PathBuf,
    },
    /// Context tokens spent on tools, classic tool calling vs Isola: the tool definitions of the
    /// configured servers, and a list-read-rank workflow over server-filesystem.
    Tokens {
        /// The server-filesystem of the config to run the workflow with (started again on a
        /// temporary directory) [default: the first with `list_directory` and `read_text_file`].
        #[arg(long, value_name = "NAME")]
        fs_server: Option<String>,
        /// Print the figures as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // The benchmarks' worker processes are this binary too.
    if std::env::args_os().nth(1).as_deref() == Some(OsStr::new("__worker")) {
        let code = isola_worker::worker_main();
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // Isola's adapter of `isola-bench peers`: a job on stdin, its events on stdout.
    if std::env::args_os().nth(1).as_deref() == Some(OsStr::new("__peer")) {
        return peer_adapter();
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let code = runtime.block_on(run(cli.config.as_deref(), cli.which));
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match code {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn peer_adapter() -> ExitCode {
    let run = || -> Result<()> {
        let job: isola_bench::peers::Job = serde_json::from_reader(std::io::stdin().lock())
            .context("reading the job of `isola-bench __peer` from stdin")?;
        let worker = WorkerCommand::current_exe("__worker")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut out = std::io::stdout();
        runtime.block_on(isola_bench::peers::isola_adapter(job, worker, &mut out));
        // A runaway in-process sandbox thread must not keep the adapter alive.
        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
        Ok(())
    };
    match run() {
        Ok(()) => {
            let _ = std::io::stdout().flush();
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `--isola`, else the `isola` next to this binary.
fn isola_or_sibling(isola: Option<PathBuf>) -> Result<PathBuf> {
    isola
        .or_else(isola_bench::load::sibling_isola)
        .ok_or_else(|| anyhow!("no isola binary next to isola-bench\nhint: build it (cargo build --release -p isola-cli) or pass --isola"))
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    let path = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(isola_config::DEFAULT_CONFIG_FILE));
    Ok(isola_config::load_config(&path)?)
}

async fn connect(config: &Config) -> Arc<McpHub> {
    let hub = McpHub::connect(config).await;
    for s in hub.servers() {
        if let ServerState::Failed(reason) = &s.state {
            eprintln!("warning: MCP server `{}` is unavailable: {reason}", s.name);
        }
    }
    Arc::new(hub)
}

fn backend(config: &Config, in_process: bool) -> Result<Backend> {
    if in_process {
        return Ok(Backend::InProcess);
    }
    let command = WorkerCommand::current_exe("__worker")?;
    Ok(Backend::Workers(WorkerPool::new(
        command,
        config.settings.workers.unwrap_or(2),
    )))
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

async fn run(config: Option<&Path>, which: BenchCommand) -> Result<ExitCode> {
    match which {
        BenchCommand::Agent {
            servers,
            rounds,
            latency_ms,
            json,
        } => {
            let options = isola_agent_bench::Options {
                servers,
                rounds: rounds.max(1),
                worker: Some(WorkerCommand::current_exe("__worker")?),
                latency_ms,
            };
            let report = isola_agent_bench::run(&options).await?;
            print(&report.text())?;
            if json {
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            }
            return Ok(if report.all_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        BenchCommand::Exec { iterations, deno } => {
            let worker = WorkerCommand::current_exe("__worker")?;
            let report = isola_bench::exec_latency(Some(worker), iterations, deno.as_deref()).await;
            print(&report)?;
        }
        BenchCommand::Mcp {
            server,
            calls,
            rounds,
            in_process,
        } => {
            let config = load_config(config)?;
            let server_config = config
                .server(&server)
                .ok_or_else(|| anyhow!("no server `{server}` in {}", config.path.display()))?
                .clone();
            let hub = connect(&config).await;
            let backend = backend(&config, in_process)?;
            let report = isola_bench::mcp_overhead(
                hub.clone(),
                backend,
                &server_config,
                &server,
                calls,
                rounds,
            )
            .await
            .map_err(|e| anyhow!(e))?;
            hub.shutdown().await;
            print(&report)?;
        }
        BenchCommand::Journal {
            server,
            calls,
            rounds,
            side_calls,
            no_postgres,
            in_process,
        } => {
            let config = load_config(config)?;
            let hub = connect(&config).await;
            let backend = backend(&config, in_process)?;
            let path = std::env::temp_dir().join(format!("isola-bench-{}.db", std::process::id()));
            let sqlite: Arc<dyn isola_store::Store> =
                Arc::new(isola_store::SqliteStore::open(&path).await?);
            let api = isola_engine::ApiState::build(&isola_engine::Tools::servers(hub.as_ref()));
            let ns = api
                .api
                .namespaces
                .iter()
                .find(|n| n.server == server)
                .map(|n| n.ident.clone())
                .ok_or_else(|| anyhow!("server `{server}` has no tools (is it connected?)"))?;
            let mut out = isola_bench::journal::mcp_on_off(
                hub.clone(),
                backend,
                &ns,
                sqlite.clone(),
                calls,
                rounds,
            )
            .await
            .map_err(|e| anyhow!(e))?;
            let mut stores = vec![sqlite.clone()];
            let _pg = if no_postgres {
                None
            } else {
                let mut pg = isola_test_support::postgres::PgCluster::start()?;
                let url = pg.create_db("bench")?;
                stores.push(isola_store::open(&isola_store::StoreUrl::parse(&url)?).await?);
                Some(pg)
            };
            for store in &stores {
                for concurrency in [1, 16] {
                    out +=
                        &isola_bench::journal::side_effects(store.clone(), side_calls, concurrency)
                            .await
                            .map_err(|e| anyhow!(e))?;
                }
            }
            for store in &stores {
                out += &isola_bench::journal::replay(store.clone(), 1000, rounds)
                    .await
                    .map_err(|e| anyhow!(e))?;
            }
            for store in &stores {
                for (label, backend) in [
                    ("in-process sandbox", isola_worker::Backend::InProcess),
                    ("a warm worker process", crate::backend(&config, false)?),
                ] {
                    out +=
                        &isola_bench::journal::resume(store.clone(), backend, label, 100, rounds)
                            .await
                            .map_err(|e| anyhow!(e))?;
                }
            }
            hub.shutdown().await;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            print(&out)?;
        }
        BenchCommand::Load {
            isola,
            clients,
            executions,
            workers,
            max_workers,
            root,
            api,
            postgres,
        } => {
            // Kept alive for the run.
            let mut pg = None;
            let store = match postgres {
                true => {
                    let cluster = pg.insert(isola_test_support::postgres::PgCluster::start()?);
                    Some(cluster.create_db("load")?)
                }
                false => None,
            };
            let isola = isola_or_sibling(isola)?;
            let options = isola_bench::load::LoadOptions {
                label: isola.display().to_string(),
                isola,
                server: isola_bench::load::everything_in(&root),
                clients: clients.max(1),
                executions,
                max_workers,
                workers,
                api,
                store,
            };
            let report = isola_bench::load::run(&options)
                .await
                .map_err(|e| anyhow!(e))?;
            print(&report.text(&options.label))?;
        }
        BenchCommand::Sse {
            isola,
            executions,
            root,
        } => {
            let isola = isola_or_sibling(isola)?;
            let options = isola_bench::load::LoadOptions {
                label: isola.display().to_string(),
                isola,
                server: isola_bench::load::everything_in(&root),
                clients: 1,
                executions: executions as u64,
                max_workers: None,
                workers: 2,
                api: true,
                store: None,
            };
            let report = isola_bench::load::sse_latency(&options, executions.max(1))
                .await
                .map_err(|e| anyhow!(e))?;
            print(&report.text(&options.label))?;
        }
        BenchCommand::Peers {
            smoke,
            json,
            json_out,
            only,
            root,
            iterations,
            rounds,
        } => {
            let isola = std::env::current_exe().context("locating isola-bench itself")?;
            let mut options = isola_bench::peers::Options::new(&root, isola, smoke);
            options.only = only;
            if let Some(n) = iterations {
                options.iterations = n;
            }
            if let Some(n) = rounds {
                options.rounds = n;
            }
            if !options.server.exists() {
                return Err(anyhow!(
                    "{} is missing\nhint: npm ci --prefix fixtures/servers (and scripts/setup-peers.sh for the peers), run from the checkout or pass --root",
                    options.server.display()
                ));
            }
            let report = isola_bench::peers::run(&options).await;
            if let Some(path) = json_out {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if json {
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            } else {
                print(&report.text())?;
            }
        }
        BenchCommand::Check { rounds, root } => isola_bench::check::run(&root, rounds).await?,
        BenchCommand::Tokens { fs_server, json } => {
            tokens(config, fs_server.as_deref(), json).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `isola-bench tokens`: definitions of the configured servers, then the workflow.
async fn tokens(config: Option<&Path>, fs_server: Option<&str>, json: bool) -> Result<()> {
    use isola_bench::tokens;

    let config = load_config(config)?;
    let limits = config.settings.limits.clone();
    let hub = connect(&config).await;
    let servers = hub.servers();
    let engine = isola_engine::Engine::new(
        hub.clone(),
        isola_worker::Backend::InProcess,
        limits.clone(),
    );
    let definitions = tokens::definitions(&servers, engine.api(), &limits);
    hub.shutdown().await;
    if !json {
        print(&format!("{definitions}\n"))?;
    }

    let has = |s: &isola_mcp::ServerInfo, tool: &str| s.tools.iter().any(|t| t.name == tool);
    let name = match fs_server {
        Some(name) => name.to_string(),
        None => servers
            .iter()
            .find(|s| has(s, "list_directory") && has(s, "read_text_file"))
            .map(|s| s.name.clone())
            .ok_or_else(|| {
                anyhow!(
                    "no configured server has `list_directory` and `read_text_file` for the workflow\nhint: add @modelcontextprotocol/server-filesystem to {}, or pass --fs-server",
                    config.path.display()
                )
            })?,
    };
    let fs = config
        .server(&name)
        .ok_or_else(|| anyhow!("no server `{name}` in {}", config.path.display()))?;
    let dir = std::env::temp_dir().join(format!("isola-bench-tokens-{}", std::process::id()));
    let workflow = tokens::workflow(fs, &dir, isola_worker::Backend::InProcess, &limits).await;
    let _ = std::fs::remove_dir_all(&dir);
    let workflow = workflow
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("the workflow over server `{name}`"))?;
    if json {
        let both = serde_json::json!({ "definitions": definitions.to_json(), "workflow": workflow.to_json() });
        print(&format!("{}\n", serde_json::to_string_pretty(&both)?))?;
    } else {
        print(&format!("{workflow}"))?;
    }
    Ok(())
}
