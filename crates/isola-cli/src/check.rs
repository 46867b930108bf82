//! Type-checking scripts before they run (`isola.check`, `isola check`, `isola exec --check`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use isola_config::Config;
use isola_engine::{CheckError, Checker, Compiler, Engine};
use isola_protocol::CheckMode;

use crate::error::{UserInputExt, user_input};

/// The front ends, each with its own mode in `isola.check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// `isola exec`, `plan`, `apply`, `resume`, `replay`.
    Exec,
    /// The agent.
    Agent,
    /// `isola mcp`, `isola serve`.
    Mcp,
}

impl Front {
    fn mode(self, config: &Config) -> CheckMode {
        let check = &config.settings.check;
        match self {
            Front::Exec => check.exec,
            Front::Agent => check.agent,
            Front::Mcp => check.mcp,
        }
    }
}

/// The checker of `config`'s compiler: `Ok(None)` when none is configured or found; an error
/// when the configured one is not there.
pub fn checker(config: &Config) -> Result<Option<Arc<Checker>>> {
    let check = &config.settings.check;
    let base = config.path.parent().unwrap_or(Path::new("."));
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let Some(compiler) = Compiler::find(check.compiler.as_deref(), base).user_input()? else {
        return Ok(None);
    };
    let limits = isola_check::CheckLimits {
        timeout: Duration::from_millis(check.timeout_ms),
        memory_bytes: check.memory_mb.saturating_mul(1024 * 1024),
    };
    Ok(Some(Arc::new(Checker::new(compiler, limits)?)))
}

/// `engine` with the checker `front` uses, its mode the engine's default. `exec` always gets
/// one when there is a compiler (`--check` may ask), the servers when their agent runs
/// (`isola serve`'s `/v1/runs`, [`agent_mode`]) are checked. Without a compiler the agent and
/// the servers go on unchecked (said at `-v`); `exec` is told by [`require`] when it asks.
pub fn attach(engine: Engine, config: &Config, front: Front) -> Result<Engine> {
    let mode = front.mode(config);
    let wanted = mode != CheckMode::Off
        || front == Front::Exec
        || (front == Front::Mcp && agent_mode(config) != CheckMode::Off);
    if !wanted {
        return Ok(engine);
    }
    match checker(config)? {
        Some(checker) => Ok(engine.with_checker(checker, mode)),
        None => {
            if mode != CheckMode::Off && config.settings.check.compiler.is_none() {
                // The agent's default: quiet unless asked about (-v).
                tracing::info!(
                    "isola.check.{} is `{}` but no TypeScript compiler was found: scripts run unchecked ({})",
                    match front {
                        Front::Exec => "exec",
                        Front::Agent => "agent",
                        Front::Mcp => "mcp",
                    },
                    mode.as_str(),
                    isola_check::INSTALL_HINT
                );
            }
            Ok(engine)
        }
    }
}

/// The agent's mode, for an engine that serves other front ends too (`isola serve`).
pub fn agent_mode(config: &Config) -> CheckMode {
    Front::Agent.mode(config)
}

/// A command that asks for a check (`--check`) on an engine with no compiler: say how to get one.
pub fn require(engine: &Engine, mode: Option<CheckMode>) -> Result<()> {
    match mode {
        Some(CheckMode::Warn | CheckMode::Error) if engine.checker().is_none() => {
            Err(user_input(anyhow::anyhow!("{}", CheckError::NotFound)))
        }
        _ => Ok(()),
    }
}

/// `--check[=MODE]`: `error` when given bare.
#[derive(Args, Debug, Default, Clone)]
pub struct CheckArg {
    /// Type-check the script against the API first: `error` (the default when given) refuses a
    /// script with type errors without running it, `warn` runs it and prints them, `off` skips
    /// the check `isola.check.exec` asks for.
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "error", value_parser = parse_mode)]
    pub check: Option<CheckMode>,
}

fn parse_mode(text: &str) -> Result<CheckMode, String> {
    CheckMode::parse(text).ok_or_else(|| format!("`{text}`: the modes are off, warn and error"))
}

#[derive(Args, Debug)]
pub struct CheckCommand {
    /// The script file, or - for standard input.
    pub file: std::path::PathBuf,
    /// Print the diagnostics as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `isola check FILE`: the compiler's verdict on a script against the configured servers' API,
/// calling nothing. Exit 0 when it checks, 1 when it does not, 2 when it cannot be checked.
pub async fn check(
    config_path: Option<&Path>,
    store: Option<&str>,
    args: CheckCommand,
) -> Result<ExitCode> {
    let (source, file_name) = crate::commands::read_script(&args.file)?;
    let config = crate::commands::load_config(config_path)?;
    let transpiled = match isola_transpile::transpile(&source, &file_name) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(crate::exit::SCRIPT_FAILED));
        }
    };
    let Some(checker) = checker(&config)? else {
        eprintln!(
            "isola check: no TypeScript compiler found\nhint: {}",
            isola_check::INSTALL_HINT
        );
        return Ok(ExitCode::from(crate::exit::USAGE));
    };
    let api = crate::commands::api_of(&config, store).await?;
    let report = checker
        .check(&transpiled.checkable(), api.declarations())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        let diagnostics: Vec<_> = report
            .diagnostics
            .iter()
            .map(|d| {
                serde_json::json!({
                    "file": file_name, "line": d.line, "column": d.column,
                    "code": d.code, "message": d.message,
                })
            })
            .collect();
        let out = serde_json::json!({
            "ok": report.is_clean(),
            "diagnostics": diagnostics,
            "more": report.more,
            "ms": report.elapsed.as_secs_f64() * 1000.0,
        });
        crate::commands::print(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
    } else if report.is_clean() {
        eprintln!(
            "{file_name}: no type errors ({} ms, {})",
            report.elapsed.as_millis(),
            checker.compiler().program.display()
        );
    } else {
        let text = report.render(&source, &file_name);
        eprint!("{}", crate::term::clean(&text, crate::term::Stream::Stderr));
        let n = report.diagnostics.len() + report.more;
        eprintln!("{n} type error{}", if n == 1 { "" } else { "s" });
    }
    Ok(match report.is_clean() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(crate::exit::SCRIPT_FAILED),
    })
}
