//! `isola bench ...`: the measurements live in `isola-bench`; this prints them.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use isola_worker::WorkerCommand;

use crate::cli::{BenchArgs, BenchCommand};
use crate::commands::{backend, connect, load_config, print};

pub async fn run(config: Option<&Path>, args: BenchArgs) -> Result<ExitCode> {
    match args.which {
        BenchCommand::Agent(args) => return crate::agent::bench(args).await,
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
        BenchCommand::Tokens { fs_server, json } => {
            tokens(config, fs_server.as_deref(), json).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `isola bench tokens`: definitions of the configured servers, then the workflow.
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
