//! `isola bench ...`: the measurements live in `isola-bench`; this prints them.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use isola_worker::WorkerCommand;

use crate::cli::{BenchArgs, BenchCommand};
use crate::commands::{connect, load_config, print, worker_backend};

pub async fn run(config: Option<&Path>, args: BenchArgs) -> Result<ExitCode> {
    match args.which {
        BenchCommand::Agent(args) => return crate::agent::bench(args).await,
        BenchCommand::Exec { iterations, deno } => {
            let worker = WorkerCommand::current_exe("__worker")?;
            let report = isola_bench::exec_latency(Some(worker), iterations, deno.as_deref()).await;
            print(&report)?;
        }
        BenchCommand::Mcp { server, calls, rounds } => {
            let config = load_config(config)?;
            let server_config = config
                .server(&server)
                .ok_or_else(|| anyhow!("no server `{server}` in {}", config.path.display()))?
                .clone();
            let hub = connect(&config).await;
            let backend = worker_backend(&config)?;
            let report = isola_bench::mcp_overhead(hub.clone(), backend, &server_config, &server, calls, rounds)
                .await
                .map_err(|e| anyhow!(e))?;
            hub.shutdown().await;
            print(&report)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
