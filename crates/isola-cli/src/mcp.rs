//! `isola mcp`: serve Code Mode to an MCP host over stdio, or Streamable HTTP with `--http`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use isola_codemode::ViewOptions;
use isola_codemode::descriptions::DEFAULT_EMBED_MAX_TOKENS;
use isola_engine::CancellationToken;
use isola_server::IsolaServer;
use isola_server::http::{ApiToken, HttpOptions, HttpServer, Role};

use crate::cli::LimitArgs;
use crate::commands::{backend, connect, load_config};

#[derive(Args, Debug)]
pub struct McpArgs {
    /// Serve Streamable HTTP at http://ADDR/mcp instead of stdio. ADDR is `host:port`, or a port
    /// alone for 127.0.0.1.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub http: Option<SocketAddr>,
    /// Require `Authorization: Bearer TOKEN` on every HTTP request.
    #[arg(
        long,
        env = "ISOLA_MCP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Serve a non-loopback --http address without a token.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Also accept this `Host` header (repeatable), e.g. the machine's name when serving 0.0.0.0.
    #[arg(long, value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// At most this many HTTP requests a second from one token (or the local user), in bursts
    /// of twice that; beyond, 429 with Retry-After [default: no limit].
    #[arg(long, value_name = "PER_SECOND", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: Option<u32>,
    /// Embed the API's declarations in `execute`'s description when they take at most this many
    /// tokens (tiktoken o200k); above, serve them through `search` and `describe`.
    #[arg(long, env = "ISOLA_MCP_EMBED_MAX_TOKENS", value_name = "TOKENS", default_value_t = DEFAULT_EMBED_MAX_TOKENS)]
    pub embed_max_tokens: usize,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Run sandboxes inside this process instead of worker processes (a native operation that
    /// never returns cannot be stopped, nor a cancelled one).
    #[arg(long)]
    pub in_process: bool,
}

/// `8080` → 127.0.0.1:8080; `host:port` as given (names resolved).
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("`{s}` is not an address (try 127.0.0.1:8080 or 8080): {e}"))?
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

/// Where `isola serve` listens without --http.
const SERVE_DEFAULT: &str = "127.0.0.1:8760";

/// The bearer tokens: `--token` (named `default`, an admin's) and the config's `isola.tokens`.
fn tokens(config: &isola_config::Config, flag: Option<&str>) -> Vec<ApiToken> {
    let mut tokens: Vec<ApiToken> = flag
        .map(|secret| ApiToken {
            name: "default".into(),
            secret: secret.to_string(),
            role: Role::Admin,
        })
        .into_iter()
        .collect();
    tokens.extend(config.settings.tokens.iter().filter_map(|(name, t)| {
        Some(ApiToken {
            name: name.clone(),
            secret: t.token.clone(),
            role: Role::parse(&t.role)?,
        })
    }));
    tokens
}

/// `isola mcp`, or with `api` `isola serve` (HTTP always, the API beside `/mcp`).
pub async fn run(
    config_path: Option<&Path>,
    store: Option<&str>,
    mut args: McpArgs,
    api: bool,
) -> Result<ExitCode> {
    if api && args.http.is_none() {
        args.http = SERVE_DEFAULT.parse().ok();
    }
    let config = load_config(config_path)?;
    let mut limits = config.settings.limits.clone();
    args.limits.apply(&mut limits);
    let backend = backend(&config, args.in_process)?;
    // The journal (recovering what a crashed run left) before any server starts, and with it
    // the tokens kept in the store (`isola tokens`), which `isola serve` takes besides the
    // config's.
    let journaled = crate::journal::Journaled::open(store, &config, None).await?;
    let stored_tokens = match (&journaled, api) {
        (Some(j), true) => {
            let stored = Arc::new(isola_server::http::StoredTokens::default());
            isola_http::tokens::load(&*j.store(), &stored).await?;
            Some(stored)
        }
        _ => None,
    };
    // Bind before any MCP server starts: a wrong address fails at once.
    let http = match args.http {
        Some(addr) => Some(
            HttpServer::bind(HttpOptions {
                addr,
                tokens: tokens(&config, args.token.as_deref()),
                stored_tokens: stored_tokens.clone(),
                allow_unauthenticated: args.allow_unauthenticated,
                allowed_hosts: args.allow_host.clone(),
                rate_limit: args.rate_limit,
            })
            .await?,
        ),
        None => None,
    };
    let hub = connect(&config).await;
    let engine = Arc::new(crate::commands::engine(
        &config,
        journaled.as_ref(),
        hub.clone(),
        backend,
        limits,
        crate::check::Front::Mcp,
    )?);
    let mut server = IsolaServer::new(
        engine.clone(),
        ViewOptions {
            embed_max_tokens: args.embed_max_tokens,
        },
    );
    // Never the terminal: an MCP host's user decides through `isola approvals`.
    let governor = crate::govern::governor_within(
        &config,
        journaled.as_ref().map(|j| j.store()),
        false,
        Some(crate::govern::MCP_SUSPEND_AFTER),
    )?;
    server = server.with_hook(Arc::new(crate::journal::McpHook::new(
        journaled.as_ref(),
        engine.clone(),
        governor.clone(),
    )));
    let routes: Option<Arc<dyn isola_server::http::Routes>> = match api {
        true => {
            let journal = journaled.as_ref().map(|j| j.journal().clone());
            let agents = crate::agent::ServeAgents::new(
                &config,
                engine.clone(),
                hub.clone(),
                journal.clone(),
                governor.clone(),
            )?;
            let plans = journal.clone().map(|journal| {
                Arc::new(crate::plan::ServePlans {
                    journal,
                    governor: governor.clone(),
                    engine: engine.clone(),
                    ttl_ms: config.settings.approvals.timeout_ms,
                }) as Arc<dyn isola_http::Plans>
            });
            Some(Arc::new(isola_http::Api::new(
                server.clone(),
                journal,
                Some(Arc::new(agents)),
                plans,
                stored_tokens.clone(),
            )))
        }
        false => None,
    };
    let watcher = server.watch_hub(&hub);
    // One node among several on one store: it says it is alive, and takes over what a node
    // that died left running.
    let sweeper = match (&journaled, api) {
        (Some(j), true) => Some(tokio::spawn(sweep(j.store()))),
        _ => None,
    };
    let token_refresher = match (&journaled, &stored_tokens) {
        (Some(j), Some(stored)) => Some(tokio::spawn(isola_http::tokens::refresh(
            j.store(),
            stored.clone(),
        ))),
        _ => None,
    };
    let view = server.view();
    eprintln!(
        "isola: {} functions in {} namespaces, {} tokens of declarations: {} mode",
        view.index.len(),
        view.api.api.namespaces.len(),
        view.tokens,
        view.mode.as_str()
    );
    drop(view);
    let shutdown = CancellationToken::new();
    let result = match http {
        Some(http) => {
            eprintln!("isola: serving MCP (Streamable HTTP) at {}", http.url());
            if routes.is_some() {
                eprintln!(
                    "isola: serving the API at http://{}/v1 (its OpenAPI document: /v1/openapi.json)",
                    http.local_addr()
                );
                eprintln!(
                    "isola: the web UI is at http://{}/ (open it in a browser)",
                    http.local_addr()
                );
            }
            tokio::select! {
                r = http.run_with(server, routes, shutdown.clone()) => r,
                () = stop_signal() => Ok(()),
            }
        }
        None => tokio::select! {
            r = isola_server::serve_stdio(server) => r,
            () = stop_signal() => Ok(()),
        },
    };
    shutdown.cancel();
    watcher.abort();
    for task in [sweeper, token_refresher].into_iter().flatten() {
        task.abort();
    }
    if let Some(j) = journaled {
        j.close().await;
    }
    hub.shutdown().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Every [`isola_journal::NODE_BEAT_MS`]: this node's heartbeat, then the executions of nodes
/// that are gone (a process of this host that died; a node of another whose heartbeat is
/// older than [`isola_journal::NODE_TTL_MS`]) marked interrupted, or suspended when only a held
/// call was out.
async fn sweep(store: Arc<dyn isola_store::Store>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(
        isola_journal::NODE_BEAT_MS,
    ));
    loop {
        tick.tick().await;
        if let Err(e) = isola_journal::node_beat(&*store).await {
            tracing::warn!("could not write this node's heartbeat: {e}");
        }
        match isola_journal::recover(&*store).await {
            Ok(done) => {
                for (id, status) in done {
                    eprintln!("isola: execution {id}, of a node that is gone, was marked {status}");
                }
            }
            Err(e) => {
                tracing::warn!("could not look for the executions of nodes that are gone: {e}")
            }
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("8080"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        assert_eq!(
            parse_addr("0.0.0.0:80"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 80)))
        );
        assert!(parse_addr("[::1]:9000").is_ok_and(|a| a.ip().is_loopback()));
        assert!(parse_addr("nonsense").is_err());
    }
}
