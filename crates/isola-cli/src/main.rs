//! `isola`: parse arguments, load the config, call library code, map errors to exit codes.

mod agent;
mod check;
mod cli;
mod commands;
mod error;
mod govern;
mod journal;
mod mcp;
mod plan;
mod render;
mod term;
mod tokens;

use std::ffi::OsStr;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// Exit codes. 0: success. 1: the script failed (syntax, runtime, tool, limit, cancelled).
/// 2: the user's input is wrong (arguments, config, files). 3: Isola itself failed.
/// 4: the execution is suspended, waiting for an approval (`isola resume` goes on with it).
pub mod exit {
    pub const SCRIPT_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const INTERNAL: u8 = 3;
    pub const SUSPENDED: u8 = 4;
}

fn main() -> ExitCode {
    // A worker process: nothing else of the CLI runs (no tracing, no tokio, no config).
    if std::env::args_os().nth(1).as_deref() == Some(OsStr::new("__worker")) {
        let code = isola_worker::worker_main();
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    // One thread: the work is I/O between processes (MCP servers, workers); scripts run in
    // worker processes or on their own threads. A single-threaded runtime saves a cross-thread
    // wake-up on every message, which is most of a tool call's overhead.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let code = runtime.block_on(commands::run(cli));
    // Children (MCP servers, workers) are killed on drop; don't wait for stragglers.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match code {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {e}");
            for cause in e.chain().skip(1) {
                let _ = writeln!(stderr, "  caused by: {cause}");
            }
            ExitCode::from(error::exit_code(&e))
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // The CLI reports what a user must know itself (failed servers, errors); library
        // warnings are for -v.
        // rmcp logs a transport failure as a raw `ERROR ... reqwest::Error {..}` line before
        // Isola reports it in its own words: its own lines are for -v.
        0 => "error,rmcp=off",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
