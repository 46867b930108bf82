//! [`McpHub`]: one MCP client connection per configured server.
//!
//! - Servers start concurrently, each within `startupTimeoutMs`. A server that fails is kept
//!   as [`ServerState::Failed`] with the reason; the others work.
//! - Calls are concurrent: many can be in flight on one connection. Each has its own timeout
//!   (`callTimeoutMs`); on timeout the request is cancelled on the server.
//! - A tool result with `isError: true` is a successful [`McpHub::call`]: it is the tool's
//!   answer, not a transport failure.
//! - When a connection dies (the process exited, the transport closed), the next call
//!   reconnects once (spawn, `initialize`, `tools/list`) before it is made.
//! - `notifications/tools/list_changed` re-lists that server's tools and sends
//!   [`HubEvent::ToolsChanged`] to subscribers.
//!
//! Stdio servers start with a cleared environment: the variables of
//! [`isola_config::env::INHERITED`] (or all of Isola's, with `"inheritEnv": true`), then their
//! configured `env`; no server sees another's secrets or Isola's own. Their stderr goes
//! to `tracing` (target `isola_mcp::server_stderr`, level debug), never to isola's stdout; the
//! last lines are kept for error messages.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientRequest,
    CustomResult, Implementation, ListToolsRequest, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProtocolVersion, ServerResult, Tool,
};
use rmcp::service::{
    ClientInitializeError, NotificationContext, RoleClient, RunningService, RxJsonRpcMessage,
    TxJsonRpcMessage,
};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{StreamableHttpClientTransport, Transport};
use rmcp::{ClientHandler, Peer, ServiceError, ServiceExt};
use serde_json::{Map, Value};
use tokio::io::AsyncBufReadExt;
use tokio::process::ChildStderr;
use tokio::sync::broadcast;
use tracing::Instrument;

use isola_config::{Config, EffectOverride, ServerConfig};

use crate::stdio::{ChildTransport, Oversized, size_text};

/// Give up on a `tools/list` that keeps returning a `nextCursor` after this many pages.
pub const MAX_TOOL_PAGES: usize = 1000;
/// Lines of a server's stderr kept for error messages.
const STDERR_TAIL_LINES: usize = 12;
/// Longest stderr line kept, in bytes.
const STDERR_LINE_MAX: usize = 400;
/// How long to wait for the rest of a dead server's stderr before reporting it.
const STDERR_GRACE: Duration = Duration::from_millis(500);
/// How long [`McpHub::shutdown`] waits for a connection to close and its process to exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one server stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerState {
    /// Initialized; its tools are listed.
    Connected,
    /// The connection was lost (reason inside); the next call reconnects.
    Disconnected(String),
    /// It could not be started, or restarting it failed (reason inside). Calls fail with
    /// [`CallError::ServerUnavailable`].
    Failed(String),
    /// `"disabled": true` in the config.
    Disabled,
}

/// A snapshot of one server.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// Its key in `mcpServers`.
    pub name: String,
    pub state: ServerState,
    /// The last tool list received (kept while [`ServerState::Disconnected`]).
    pub tools: Vec<Tool>,
    /// Tools of that list Isola could not take (no or a broken `inputSchema`, too deep), and why.
    pub skipped: Vec<SkippedTool>,
    /// `stdio: npx -y pkg` or `http: https://...`.
    pub transport: String,
    /// The name and version the server reported in `initialize`.
    pub server_info: Option<Implementation>,
    /// The server's `instructions` from `initialize`.
    pub instructions: Option<String>,
    /// Process id of a stdio server's child process.
    pub pid: Option<u32>,
}

/// A tool of a server's list that Isola left out, and why; the server's other tools work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedTool {
    /// Its `name`, or `#N` (its place in the list) when it has none.
    pub name: String,
    /// Why, e.g. "it has no `inputSchema`".
    pub reason: String,
}

/// Something that happened to a server, for [`McpHub::subscribe`]rs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubEvent {
    /// The server's tool list changed; [`McpHub::servers`] has the new one.
    ToolsChanged { server: String },
    /// The connection was lost; the next call reconnects.
    ServerDied { server: String, reason: String },
    /// A lost connection was re-established.
    ServerRestarted { server: String },
}

/// Why [`McpHub::call`] produced no tool result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No server of that name in the config.
    #[error(
        "unknown MCP server `{server}`\nhint: configured servers: {}",
        list(known)
    )]
    UnknownServer { server: String, known: Vec<String> },

    /// The server failed to start, is disabled, or died and could not be restarted.
    #[error("MCP server `{server}` is unavailable: {reason}")]
    ServerUnavailable { server: String, reason: String },

    /// No answer within `callTimeoutMs`; the request was cancelled.
    #[error(
        "call to `{server}.{tool}` timed out after {ms} ms\nhint: raise `isola.callTimeoutMs` in the config if the tool is just slow"
    )]
    Timeout {
        server: String,
        tool: String,
        ms: u64,
    },

    /// The server's answer was over the size limit of one MCP message; Isola did not read it.
    /// `bytes` is its size when it is known (a stdio line; an HTTP body is cut off unread).
    #[error(
        "the answer of `{server}.{tool}` is {}over the limit of {} on one MCP message; it was not read\nhint: ask the tool for less at a time (a page, a filter, a smaller range)",
        bytes.map(|b| format!("{}, ", size_text(b))).unwrap_or_default(),
        size_text(*limit)
    )]
    TooLarge {
        server: String,
        tool: String,
        bytes: Option<u64>,
        limit: u64,
    },

    /// The server's answer nested deeper than Isola parses; it was not read. `depth` is how
    /// deep, when it is known (it is not for an HTTP body serde_json gave up on).
    #[error(
        "the answer of `{server}.{tool}` nests {} levels deep, over the limit of {limit} levels; it was not read",
        depth.map_or_else(|| format!("more than {limit}"), |d| d.to_string())
    )]
    TooDeep {
        server: String,
        tool: String,
        depth: Option<u64>,
        limit: u64,
    },

    /// The server answered with a JSON-RPC error or something that is not a tool result.
    #[error("MCP server `{server}` rejected the call to `{tool}`: {message}")]
    Protocol {
        server: String,
        tool: String,
        message: String,
    },

    /// The connection failed while the call was in flight.
    #[error("connection to MCP server `{server}` failed during the call to `{tool}`: {message}")]
    Transport {
        server: String,
        tool: String,
        message: String,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// The MCP client side of isola. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct McpHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    slots: Vec<Arc<Slot>>,
    shared: Arc<Shared>,
}

struct Shared {
    events: broadcast::Sender<HubEvent>,
    shutting_down: AtomicBool,
    call_timeout_ms: u64,
    startup_timeout: Duration,
}

impl Shared {
    fn emit(&self, event: HubEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }
}

/// One configured server and its current connection.
struct Slot {
    name: String,
    /// `None` when disabled.
    config: Option<ServerConfig>,
    transport: String,
    shared: Arc<Shared>,
    link: tokio::sync::Mutex<Link>,
    view: Mutex<View>,
    /// Bumped for every connection attempt; callbacks of older connections are ignored.
    generation: AtomicU64,
    /// Orders `tools/list` results: only a list requested later than the shown one replaces it.
    tools_seq: AtomicU64,
    /// The config's effects for this server's tools (`isola.effects.<server>`).
    effects: BTreeMap<String, EffectOverride>,
}

enum Link {
    Up(Arc<Conn>),
    Down { reason: String },
    Failed { reason: String },
    Disabled,
    Closed,
}

struct View {
    state: ServerState,
    tools: Vec<Tool>,
    skipped: Vec<SkippedTool>,
    tools_seq: u64,
    server_info: Option<Implementation>,
    instructions: Option<String>,
    pid: Option<u32>,
}

struct Conn {
    service: RunningService<RoleClient, Handler>,
    closed: Arc<AtomicBool>,
}

impl Conn {
    fn is_alive(&self) -> bool {
        !self.closed.load(Ordering::SeqCst) && !self.service.peer().is_transport_closed()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl McpHub {
    /// Connect to every enabled server of `config`, concurrently. Never fails as a whole: a
    /// server that cannot be started is recorded as [`ServerState::Failed`].
    pub async fn connect(config: &Config) -> McpHub {
        // reqwest is built without a TLS provider; install ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let (events, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            events,
            shutting_down: AtomicBool::new(false),
            call_timeout_ms: config.settings.call_timeout_ms,
            startup_timeout: config.settings.startup_timeout(),
        });
        let enabled = config
            .servers
            .iter()
            .map(|(name, server)| (name, Some(server)));
        let disabled = config.disabled.iter().map(|name| (name, None));
        let slots: Vec<Arc<Slot>> = enabled
            .chain(disabled)
            .map(|(name, server)| {
                let (transport, link, state) = match server {
                    Some(server) => (
                        server.describe(),
                        Link::Failed {
                            reason: "not started".to_owned(),
                        },
                        ServerState::Failed("not started".to_owned()),
                    ),
                    None => ("disabled".to_owned(), Link::Disabled, ServerState::Disabled),
                };
                Arc::new(Slot {
                    name: name.clone(),
                    config: server.cloned(),
                    transport,
                    shared: shared.clone(),
                    link: tokio::sync::Mutex::new(link),
                    view: Mutex::new(View {
                        state,
                        tools: Vec::new(),
                        skipped: Vec::new(),
                        tools_seq: 0,
                        server_info: None,
                        instructions: None,
                        pid: None,
                    }),
                    generation: AtomicU64::new(0),
                    tools_seq: AtomicU64::new(0),
                    effects: config
                        .settings
                        .effects
                        .get(name)
                        .cloned()
                        .unwrap_or_default(),
                })
            })
            .collect();

        futures::future::join_all(slots.iter().filter(|s| s.config.is_some()).map(|slot| {
            let span = tracing::info_span!("mcp.connect", server = %slot.name);
            async move {
                let mut link = slot.link.lock().await;
                match slot.establish(&mut link).await {
                    Ok(_) => tracing::info!(transport = %slot.transport, "MCP server connected"),
                    Err(reason) => tracing::warn!(%reason, "MCP server failed to start"),
                }
            }
            .instrument(span)
        }))
        .await;

        McpHub {
            inner: Arc::new(HubInner { slots, shared }),
        }
    }

    /// Every configured server: enabled ones in file order, then disabled ones.
    pub fn servers(&self) -> Vec<ServerInfo> {
        self.inner.slots.iter().map(|slot| slot.info()).collect()
    }

    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<ServerInfo> {
        self.slot(name).map(|slot| slot.info())
    }

    /// Events about servers from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.inner.shared.events.subscribe()
    }

    fn slot(&self, name: &str) -> Option<&Arc<Slot>> {
        self.inner.slots.iter().find(|slot| slot.name == name)
    }

    /// The rmcp peer of `server`'s live connection, for calls Isola does not wrap (the
    /// benchmarks compare `call` with it). Connects or reconnects as [`McpHub::call`] does.
    pub async fn peer(&self, server: &str) -> Option<rmcp::service::Peer<RoleClient>> {
        let conn = self.slot(server)?.connection().await.ok()?;
        Some(conn.service.peer().clone())
    }

    /// Call `tool` on `server`. A result with `is_error: Some(true)` is returned as `Ok`.
    pub async fn call(
        &self,
        server: &str,
        tool: &str,
        args: Map<String, Value>,
    ) -> Result<CallToolResult, CallError> {
        let span = tracing::info_span!("mcp.call", server, tool);
        self.call_inner(server, tool, args, None)
            .instrument(span)
            .await
    }

    /// [`McpHub::call`] with the request's `_meta` (an idempotency key, say).
    pub async fn call_with_meta(
        &self,
        server: &str,
        tool: &str,
        args: Map<String, Value>,
        meta: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, CallError> {
        let span = tracing::info_span!("mcp.call", server, tool);
        self.call_inner(server, tool, args, meta)
            .instrument(span)
            .await
    }

    async fn call_inner(
        &self,
        server: &str,
        tool: &str,
        args: Map<String, Value>,
        meta: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, CallError> {
        let slot = self.slot(server).ok_or_else(|| CallError::UnknownServer {
            server: server.to_owned(),
            known: self.inner.slots.iter().map(|s| s.name.clone()).collect(),
        })?;
        let conn = slot
            .connection()
            .await
            .map_err(|reason| CallError::ServerUnavailable {
                server: server.to_owned(),
                reason,
            })?;
        let ms = self.inner.shared.call_timeout_ms;
        let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
        if let Some(meta) = meta {
            params.meta = Some(rmcp::model::RequestMetaObject::from(meta));
        }
        let started = std::time::Instant::now();
        // Dropping the call future on timeout sends `notifications/cancelled`.
        let outcome =
            tokio::time::timeout(Duration::from_millis(ms), conn.service.call_tool(params)).await;
        let elapsed_ms = started.elapsed().as_millis();
        match outcome {
            Ok(Ok(result)) => {
                tracing::debug!(elapsed_ms, is_error = ?result.is_error, "tool call done");
                Ok(result)
            }
            Ok(Err(error)) => {
                let mut error = map_service_error(error, server, tool);
                if let (
                    CallError::Transport { message, .. } | CallError::Protocol { message, .. },
                    Some(config),
                ) = (&mut error, &slot.config)
                {
                    *message = config.redact(message);
                }
                tracing::debug!(elapsed_ms, %error, "tool call failed");
                Err(error)
            }
            Err(_) => {
                tracing::debug!(elapsed_ms, "tool call timed out");
                Err(CallError::Timeout {
                    server: server.to_owned(),
                    tool: tool.to_owned(),
                    ms,
                })
            }
        }
    }

    /// Close every connection and stop every child process. Later calls fail with
    /// [`CallError::ServerUnavailable`].
    pub async fn shutdown(&self) {
        self.inner
            .shared
            .shutting_down
            .store(true, Ordering::SeqCst);
        let conns = futures::future::join_all(self.inner.slots.iter().map(|slot| async move {
            let mut link = slot.link.lock().await;
            let old = std::mem::replace(&mut *link, Link::Closed);
            let mut view = lock(&slot.view);
            if slot.config.is_some() {
                view.state = ServerState::Failed("the hub was shut down".to_owned());
            }
            view.pid = None;
            match old {
                Link::Up(conn) => Some((slot.name.clone(), conn)),
                _ => None,
            }
        }))
        .await;
        futures::future::join_all(conns.into_iter().flatten().map(|(name, conn)| {
            close_conn(conn).instrument(tracing::info_span!("mcp.shutdown", server = %name))
        }))
        .await;
    }
}

async fn close_conn(conn: Arc<Conn>) {
    // Cancelling ends the service loop, which fails calls still in flight and closes the
    // transport (for a child: close stdin, wait, SIGTERM, kill).
    conn.service.cancellation_token().cancel();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut conn = conn;
    loop {
        match Arc::try_unwrap(conn) {
            Ok(owned) => {
                let mut service = owned.service;
                match service.close_with_timeout(CLOSE_TIMEOUT).await {
                    Ok(Some(_)) => tracing::debug!("connection closed"),
                    Ok(None) => tracing::warn!("connection did not close in time"),
                    Err(error) => tracing::warn!(%error, "closing the connection failed"),
                }
                return;
            }
            Err(shared) if tokio::time::Instant::now() < deadline => {
                conn = shared;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                // Calls still hold it; the cancelled service closes the transport on its own.
                tracing::debug!("connection still referenced; left to close in the background");
                return;
            }
        }
    }
}

fn map_service_error(error: ServiceError, server: &str, tool: &str) -> CallError {
    let (server, tool) = (server.to_owned(), tool.to_owned());
    match error {
        ServiceError::McpError(data) => match crate::stdio::oversized(&data) {
            Some(Oversized::Bytes { bytes, limit }) => CallError::TooLarge {
                server,
                tool,
                bytes,
                limit,
            },
            Some(Oversized::Depth { depth, limit }) => CallError::TooDeep {
                server,
                tool,
                depth,
                limit,
            },
            None => CallError::Protocol {
                server,
                tool,
                message: format!("{} (JSON-RPC error {})", data.message, data.code.0),
            },
        },
        ServiceError::TransportClosed => CallError::Transport {
            server,
            tool,
            message: "the connection closed before the answer came (did the server exit?); the next call reconnects".to_owned(),
        },
        ServiceError::TransportSend(error) => CallError::Transport {
            server,
            tool,
            message: error_chain(&*error.error),
        },
        ServiceError::Timeout { timeout } => CallError::Timeout {
            server,
            tool,
            ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        },
        ServiceError::Cancelled { reason } => CallError::Transport {
            server,
            tool,
            message: format!(
                "the request was cancelled: {}",
                reason.as_deref().unwrap_or("no reason given")
            ),
        },
        other => CallError::Protocol {
            server,
            tool,
            message: other.to_string(),
        },
    }
}

/// `error: source: source...`, skipping sources already quoted by their parent.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl Slot {
    fn info(&self) -> ServerInfo {
        let view = lock(&self.view);
        ServerInfo {
            name: self.name.clone(),
            state: view.state.clone(),
            tools: view.tools.clone(),
            skipped: view.skipped.clone(),
            transport: self.transport.clone(),
            server_info: view.server_info.clone(),
            instructions: view.instructions.clone(),
            pid: view.pid,
        }
    }

    fn next_tools_seq(&self) -> u64 {
        self.tools_seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Show `tools` if they come from the current connection and were requested after the
    /// list shown now. Returns whether the shown list changed.
    fn commit_tools(&self, generation: u64, seq: u64, mut listing: Listing) -> bool {
        if self.generation.load(Ordering::SeqCst) != generation {
            return false;
        }
        apply_effects(&self.name, &mut listing.tools, &self.effects);
        let mut view = lock(&self.view);
        if seq <= view.tools_seq {
            return false;
        }
        view.tools_seq = seq;
        let changed = view.tools != listing.tools;
        view.tools = listing.tools;
        if view.skipped != listing.skipped {
            for skipped in &listing.skipped {
                tracing::warn!(server = %self.name, tool = %skipped.name, reason = %skipped.reason, "tool left out");
            }
        }
        view.skipped = listing.skipped;
        changed
    }

    /// A live connection, reconnecting once if the last one died.
    async fn connection(self: &Arc<Self>) -> Result<Arc<Conn>, String> {
        let mut link = self.link.lock().await;
        let reason = match &*link {
            Link::Up(conn) if conn.is_alive() => return Ok(conn.clone()),
            Link::Up(_) => "the connection closed".to_owned(),
            Link::Down { reason } => reason.clone(),
            Link::Failed { reason } => return Err(reason.clone()),
            Link::Disabled => {
                return Err("it is disabled in the config (`\"disabled\": true`)".to_owned());
            }
            Link::Closed => return Err("the hub was shut down".to_owned()),
        };
        tracing::info!(%reason, "reconnecting to the MCP server");
        let before = lock(&self.view).tools.clone();
        match self.establish(&mut link).await {
            Ok(conn) => {
                self.shared.emit(HubEvent::ServerRestarted {
                    server: self.name.clone(),
                });
                if lock(&self.view).tools != before {
                    self.shared.emit(HubEvent::ToolsChanged {
                        server: self.name.clone(),
                    });
                }
                Ok(conn)
            }
            Err(error) => Err(format!(
                "the connection was lost ({reason}) and reconnecting failed: {error}"
            )),
        }
    }

    /// Start a new connection in place of whatever `link` holds. The caller holds the lock.
    async fn establish(self: &Arc<Self>, link: &mut Link) -> Result<Arc<Conn>, String> {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        // Error messages quote the URL; a password in it is not shown.
        let opened = self
            .open(generation)
            .await
            .map_err(|reason| match &self.config {
                Some(config) => config.redact(&reason),
                None => reason,
            });
        match opened {
            Ok(started) => {
                let conn = Arc::new(started.conn);
                *link = Link::Up(conn.clone());
                self.commit_tools(generation, started.tools_seq, started.tools);
                let peer_info = conn.service.peer().peer_info();
                let mut view = lock(&self.view);
                view.state = ServerState::Connected;
                view.server_info = peer_info.as_ref().and_then(|i| i.server_info.clone());
                view.instructions = peer_info.as_ref().and_then(|i| i.instructions.clone());
                view.pid = started.pid;
                Ok(conn)
            }
            Err(reason) => {
                *link = Link::Failed {
                    reason: reason.clone(),
                };
                let mut view = lock(&self.view);
                view.state = ServerState::Failed(reason.clone());
                view.pid = None;
                Err(reason)
            }
        }
    }

    /// The connection of `generation` closed by itself.
    async fn mark_down(self: Arc<Self>, generation: u64, reason: String) {
        let mut link = self.link.lock().await;
        if self.generation.load(Ordering::SeqCst) != generation
            || !matches!(&*link, Link::Up(_))
            || self.shared.shutting_down.load(Ordering::SeqCst)
        {
            return;
        }
        tracing::warn!(server = %self.name, %reason, "MCP server connection lost");
        *link = Link::Down {
            reason: reason.clone(),
        };
        {
            let mut view = lock(&self.view);
            view.state = ServerState::Disconnected(reason.clone());
            view.pid = None;
        }
        self.shared.emit(HubEvent::ServerDied {
            server: self.name.clone(),
            reason,
        });
    }

    /// Re-list the tools after `notifications/tools/list_changed`.
    async fn relist(self: Arc<Self>, generation: u64, peer: Peer<RoleClient>) {
        let seq = self.next_tools_seq();
        match tokio::time::timeout(self.shared.startup_timeout, list_all_tools(&peer)).await {
            Ok(Ok(tools)) => {
                let count = tools.tools.len();
                if self.commit_tools(generation, seq, tools) {
                    tracing::info!(server = %self.name, tools = count, "tool list changed");
                    self.shared.emit(HubEvent::ToolsChanged {
                        server: self.name.clone(),
                    });
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(server = %self.name, %error, "re-listing tools failed");
            }
            Err(_) => tracing::warn!(server = %self.name, "re-listing tools timed out"),
        }
    }

    async fn open(self: &Arc<Self>, generation: u64) -> Result<Started, String> {
        let handler = Handler {
            slot: Arc::downgrade(self),
            generation,
        };
        let closed = Arc::new(AtomicBool::new(false));
        let timeout = self.shared.startup_timeout;
        let timeout_ms = timeout.as_millis();
        match &self.config {
            None => Err("it is disabled in the config".to_owned()),
            Some(ServerConfig::Stdio {
                command,
                args,
                env,
                cwd,
                inherit_env,
            }) => {
                let (process, stderr) = spawn(
                    &self.transport,
                    command,
                    args,
                    env,
                    *inherit_env,
                    cwd.as_ref(),
                )?;
                let pid = process.id();
                let tail = StderrTail::start(stderr, self.name.clone());
                let transport = Watched {
                    inner: process,
                    watch: Some(DeathWatch {
                        slot: Arc::downgrade(self),
                        generation,
                        closed: closed.clone(),
                        tail: Some(tail.clone()),
                    }),
                };
                let outcome =
                    tokio::time::timeout(timeout, self.initialize(handler, transport)).await;
                let failure = match outcome {
                    Ok(Ok((service, tools, tools_seq))) => {
                        return Ok(Started {
                            conn: Conn { service, closed },
                            tools,
                            tools_seq,
                            pid,
                        });
                    }
                    Ok(Err(failure)) => failure,
                    Err(_) => InitFailure::Timeout,
                };
                // A process that exits at once shows up as a closed connection or a broken
                // pipe; its stderr reaching EOF tells the two stories apart.
                let exited = match &failure {
                    InitFailure::Handshake(error)
                        if matches!(
                            **error,
                            ClientInitializeError::ConnectionClosed(_)
                                | ClientInitializeError::TransportError { .. }
                        ) =>
                    {
                        tail.wait_eof(STDERR_GRACE).await
                    }
                    _ => false,
                };
                let run_by_hand = format!(
                    "hint: run the command by hand to see why: {}",
                    self.transport.trim_start_matches("stdio: ")
                );
                let (cause, hint) = match failure {
                    InitFailure::Handshake(_) if exited => (
                        "the process exited (or closed its stdout) before answering `initialize`"
                            .to_owned(),
                        run_by_hand,
                    ),
                    InitFailure::Handshake(error) => (handshake_error(&error, None), run_by_hand),
                    InitFailure::List(error) => (format!("`tools/list` failed: {error}"), run_by_hand),
                    InitFailure::Timeout => (
                        format!("no answer to `initialize` + `tools/list` within {timeout_ms} ms"),
                        "hint: raise `isola.startupTimeoutMs` (npx may need to download the package on first run), or run the command by hand to see what it does".to_owned(),
                    ),
                };
                Err(format!(
                    "{}: {cause}{}\n{hint}",
                    self.transport,
                    tail.render()
                ))
            }
            Some(ServerConfig::Http { url, headers }) => {
                let custom_headers =
                    header_map(headers).map_err(|e| format!("{}: {e}", self.transport))?;
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(custom_headers)
                    .max_concurrent_requests(64);
                let client = crate::http::BoundedClient::new()
                    .map_err(|e| format!("{}: {e}", self.transport))?;
                let inner = StreamableHttpClientTransport::with_client(client, config);
                let detail = http_error_detail(&inner);
                let transport = Watched {
                    inner,
                    watch: Some(DeathWatch {
                        slot: Arc::downgrade(self),
                        generation,
                        closed: closed.clone(),
                        tail: None,
                    }),
                };
                let outcome =
                    tokio::time::timeout(timeout, self.initialize(handler, transport)).await;
                let failure = match outcome {
                    Ok(Ok((service, tools, tools_seq))) => {
                        return Ok(Started {
                            conn: Conn { service, closed },
                            tools,
                            tools_seq,
                            pid: None,
                        });
                    }
                    Ok(Err(failure)) => failure,
                    Err(_) => InitFailure::Timeout,
                };
                let (cause, hint) = match &failure {
                    InitFailure::Handshake(error) if error.is_authorization_required() => (
                        format!(
                            "the server requires authorization: {}",
                            handshake_error(error, Some(detail))
                        ),
                        "hint: add the credential to `headers`, e.g. \"Authorization\": \"Bearer ${TOKEN}\"".to_owned(),
                    ),
                    InitFailure::Handshake(error) => (
                        handshake_error(error, Some(detail)),
                        "hint: check that the server is running and that `url` is its Streamable HTTP endpoint (SSE-only servers are not supported)".to_owned(),
                    ),
                    InitFailure::List(error) => (
                        format!("`tools/list` failed: {error}"),
                        "hint: the server accepted `initialize` but could not list its tools; check its logs".to_owned(),
                    ),
                    InitFailure::Timeout => (
                        format!("no answer to `initialize` + `tools/list` within {timeout_ms} ms"),
                        "hint: check that the server is up, or raise `isola.startupTimeoutMs`".to_owned(),
                    ),
                };
                Err(format!("{}: {cause}\n{hint}", self.transport))
            }
        }
    }

    async fn initialize<T>(
        &self,
        handler: Handler,
        transport: T,
    ) -> Result<(RunningService<RoleClient, Handler>, Listing, u64), InitFailure>
    where
        T: Transport<RoleClient> + 'static,
    {
        let service = handler
            .serve(transport)
            .await
            .map_err(|error| InitFailure::Handshake(Box::new(error)))?;
        let seq = self.next_tools_seq();
        let tools = list_all_tools(service.peer())
            .await
            .map_err(InitFailure::List)?;
        Ok((service, tools, seq))
    }
}

struct Started {
    conn: Conn,
    tools: Listing,
    tools_seq: u64,
    pid: Option<u32>,
}

enum InitFailure {
    Handshake(Box<ClientInitializeError>),
    List(ListError),
    Timeout,
}

/// Renders a boxed transport error with the causes its `Display` leaves out.
type ErrorDetail = fn(&(dyn std::error::Error + 'static)) -> Option<String>;

/// An [`ErrorDetail`] for the HTTP transport `_transport`: its client errors (connection
/// refused, DNS, TLS) keep their cause out of the chain of sources.
fn http_error_detail<C: StreamableHttpClient>(
    _transport: &StreamableHttpClientTransport<C>,
) -> ErrorDetail {
    fn detail<E: std::error::Error + Send + Sync + 'static>(
        error: &(dyn std::error::Error + 'static),
    ) -> Option<String> {
        match error.downcast_ref::<StreamableHttpError<E>>()? {
            StreamableHttpError::Client(inner) => Some(error_chain(inner)),
            _ => None,
        }
    }
    detail::<C::Error>
}

fn handshake_error(error: &ClientInitializeError, detail: Option<ErrorDetail>) -> String {
    match error {
        ClientInitializeError::TransportError { error, context } => {
            let inner: &(dyn std::error::Error + 'static) = &*error.error;
            let text = detail
                .and_then(|detail| detail(inner))
                .unwrap_or_else(|| error_chain(inner));
            format!("{context}: {text}")
        }
        ClientInitializeError::ConnectionClosed(waiting_for) => {
            format!("the connection closed while waiting for the {waiting_for}")
        }
        ClientInitializeError::JsonRpcError(data) => format!(
            "the server rejected `initialize`: {} (JSON-RPC error {})",
            data.message, data.code.0
        ),
        other => error_chain(other),
    }
}

/// Why a paginated `tools/list` failed.
#[derive(Debug, thiserror::Error)]
enum ListError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("the server returned more than {MAX_TOOL_PAGES} pages of tools (a `nextCursor` loop?)")]
    TooManyPages,
    #[error("{0}")]
    Shape(String),
}

/// A server's tool list as Isola takes it.
#[derive(Default)]
struct Listing {
    tools: Vec<Tool>,
    skipped: Vec<SkippedTool>,
}

/// Give `tools` the effects the config names (`*` first, then the tool's own entry): annotations
/// are the server's hints, and the config's word wins.
fn apply_effects(server: &str, tools: &mut [Tool], effects: &BTreeMap<String, EffectOverride>) {
    if effects.is_empty() {
        return;
    }
    for name in effects.keys().filter(|k| *k != "*") {
        if !tools.iter().any(|t| t.name == name.as_str()) {
            tracing::warn!(server, tool = %name, "isola.effects names a tool the server does not list");
        }
    }
    for tool in tools {
        let chosen: Vec<&EffectOverride> = ["*", tool.name.as_ref()]
            .iter()
            .filter_map(|k| effects.get(*k))
            .collect();
        if chosen.is_empty() {
            continue;
        }
        let mut hints = match tool.annotations.as_ref().map(serde_json::to_value) {
            Some(Ok(Value::Object(map))) => map,
            _ => Map::new(),
        };
        for o in chosen {
            o.apply(&mut hints);
        }
        match serde_json::from_value(Value::Object(hints)) {
            Ok(a) => tool.annotations = Some(a),
            Err(error) => {
                tracing::warn!(server, tool = %tool.name, %error, "cannot apply isola.effects")
            }
        }
    }
}

/// Every tool of the server, following `nextCursor`. The list is read tool by tool: one that
/// does not parse (no `inputSchema`, a schema that is not an object, too deep) is left out
/// and reported, not the whole list.
async fn list_all_tools(peer: &Peer<RoleClient>) -> Result<Listing, ListError> {
    let mut listing = Listing::default();
    let mut cursor = None;
    for _ in 0..MAX_TOOL_PAGES {
        let params = PaginatedRequestParams::default().with_cursor(cursor);
        let request = ClientRequest::ListToolsRequest(ListToolsRequest::with_param(params));
        let page = match peer.send_request(request).await? {
            ServerResult::ListToolsResult(page) => page_of_tools(page, &mut listing),
            ServerResult::CustomResult(CustomResult(value)) => lenient_page(&value, &mut listing)?,
            other => {
                let value = serde_json::to_value(&other).unwrap_or(Value::Null);
                lenient_page(&value, &mut listing)?
            }
        };
        match page {
            Some(next) => cursor = Some(next),
            None => return Ok(listing),
        }
    }
    Err(ListError::TooManyPages)
}

/// Take the tools of a page rmcp parsed whole; its `nextCursor`.
fn page_of_tools(page: ListToolsResult, listing: &mut Listing) -> Option<String> {
    for tool in page.tools {
        match too_deep(&tool) {
            Some(reason) => listing.skipped.push(SkippedTool {
                name: tool.name.to_string(),
                reason,
            }),
            None => listing.tools.push(tool),
        }
    }
    page.next_cursor
}

/// Read a page that did not parse as a whole, one tool at a time; its `nextCursor`.
fn lenient_page(value: &Value, listing: &mut Listing) -> Result<Option<String>, ListError> {
    let Some(tools) = value.get("tools").and_then(Value::as_array) else {
        return Err(ListError::Shape(
            "the answer to `tools/list` has no `tools` array".to_owned(),
        ));
    };
    for (at, item) in tools.iter().enumerate() {
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{}", at + 1), isola_name);
        let reason = match item.get("inputSchema") {
            _ if !item.is_object() => Some(format!(
                "it is {}, not an object",
                isola_config::json_kind(item)
            )),
            None => Some("it has no `inputSchema`".to_owned()),
            Some(schema) if !schema.is_object() => Some(format!(
                "its `inputSchema` is {}, not an object",
                isola_config::json_kind(schema)
            )),
            Some(_) => None,
        };
        let parsed = match reason {
            Some(reason) => Err(reason),
            None => serde_json::from_value::<Tool>(item.clone())
                .map_err(|error| format!("it does not parse as an MCP tool: {error}")),
        };
        match parsed.and_then(|tool| too_deep(&tool).map_or(Ok(tool), Err)) {
            Ok(tool) => listing.tools.push(tool),
            Err(reason) => listing.skipped.push(SkippedTool { name, reason }),
        }
    }
    Ok(value
        .get("nextCursor")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// A tool name from the server, shortened and with control characters escaped for messages.
fn isola_name(name: &str) -> String {
    crate::framing::preview(name.as_bytes())
}

/// Why `tool` is refused for nesting too deep: the transport replaced its deepest parts with a
/// marker ([`crate::framing::TOO_DEEP_KEY`]) to read the rest of the list.
fn too_deep(tool: &Tool) -> Option<String> {
    let check = |label: &str, schema: &Map<String, Value>| {
        let value = Value::Object(schema.clone());
        has_marker(&value).then(|| {
            format!(
                "its `{label}` nests {} levels deep; Isola reads tool schemas up to {} levels",
                crate::framing::depth(&value),
                crate::stdio::MAX_SCHEMA_DEPTH
            )
        })
    };
    check("inputSchema", &tool.input_schema).or_else(|| {
        tool.output_schema
            .as_ref()
            .and_then(|schema| check("outputSchema", schema))
    })
}

fn has_marker(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            map.contains_key(crate::framing::TOO_DEEP_KEY) || map.values().any(has_marker)
        }
        Value::Array(items) => items.iter().any(has_marker),
        _ => false,
    }
}

/// Spawn a stdio server (`line` describes it in messages) with a cleared environment: the
/// inherited variables, then the configured `env`; stderr piped.
fn spawn(
    line: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    inherit_env: bool,
    cwd: Option<&PathBuf>,
) -> Result<(ChildTransport, Option<ChildStderr>), String> {
    if let Some(dir) = cwd
        && !dir.is_dir()
    {
        return Err(format!(
            "{line}: the working directory {} does not exist or is not a directory\nhint: fix `cwd` in the config (a relative `cwd` is relative to the config file)",
            dir.display()
        ));
    }
    let mut cmd = tokio::process::Command::new(command);
    let inherited = isola_config::env::inherited(std::env::vars(), inherit_env);
    cmd.args(args).env_clear().envs(inherited).envs(env);
    die_with_parent(&mut cmd);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => format!(
                "{line}: command not found: {command}\nhint: install it, or check PATH (the server inherits isola's PATH), or give the full path in `command`"
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "{line}: permission denied running {command}\nhint: check that it is an executable file (chmod +x)"
            ),
            _ => format!("{line}: cannot start {command}: {error}"),
        })?;
    let stderr = child.stderr.take();
    let transport = ChildTransport::new(child)
        .map_err(|error| format!("{line}: cannot start {command}: {error}"))?;
    Ok((transport, stderr))
}

/// Make a stdio server killed when Isola dies, however it dies (`kill -9` included), and put
/// it in a process group of its own, so a terminal's Ctrl-C reaches Isola alone (which closes
/// its servers in order) and a shutdown can stop the server's own children with it. The
/// signal is tied to the thread that spawns the child, which is the runtime's own.
fn die_with_parent(cmd: &mut tokio::process::Command) {
    cmd.process_group(0);
    // SAFETY: getpid is async-signal-safe.
    let parent = unsafe { libc::getpid() };
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Convert config headers to the transport's header map (types inferred from the caller, so
/// this crate needs no direct `http` dependency). The config already checked them.
fn header_map<K, V>(headers: &BTreeMap<String, String>) -> Result<HashMap<K, V>, String>
where
    K: for<'a> TryFrom<&'a str> + Eq + Hash,
    V: for<'a> TryFrom<&'a str>,
{
    headers
        .iter()
        .map(|(name, value)| {
            let key = K::try_from(name.as_str())
                .map_err(|_| format!("invalid HTTP header name `{name}`"))?;
            let value = V::try_from(value.as_str())
                .map_err(|_| format!("invalid value for HTTP header `{name}`"))?;
            Ok((key, value))
        })
        .collect()
}

/// One line of a child's stderr as it is read: its first [`STDERR_LINE_MAX`] bytes and the
/// count of the rest, so a line without end costs no more memory than a short one.
#[derive(Default)]
struct BoundedLine {
    kept: Vec<u8>,
    cut: u64,
}

impl BoundedLine {
    fn feed(&mut self, bytes: &[u8]) {
        let room = STDERR_LINE_MAX.saturating_sub(self.kept.len());
        let keep = bytes.len().min(room);
        self.kept.extend_from_slice(&bytes[..keep]);
        self.cut += (bytes.len() - keep) as u64;
    }

    fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.cut == 0
    }

    /// The line (a cut one ends with `… [N more bytes cut]`); starts the next.
    fn take(&mut self) -> String {
        let mut bytes = std::mem::take(&mut self.kept);
        let mut cut = std::mem::take(&mut self.cut);
        if cut == 0 && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        // A character split by the cut is dropped whole.
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text.to_owned(),
            Err(error) if cut > 0 && error.error_len().is_none() => {
                cut += (bytes.len() - error.valid_up_to()) as u64;
                String::from_utf8_lossy(&bytes[..error.valid_up_to()]).into_owned()
            }
            Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        let mut text = text.trim_end().to_owned();
        if cut > 0 {
            text.push_str(&format!("… [{cut} more bytes cut]"));
        }
        text
    }
}

/// The last lines a child wrote to stderr, also forwarded to `tracing`.
struct StderrTail {
    lines: Mutex<VecDeque<String>>,
    eof: tokio::sync::watch::Sender<bool>,
}

impl StderrTail {
    fn start(stderr: Option<ChildStderr>, server: String) -> Arc<Self> {
        let tail = Arc::new(StderrTail {
            lines: Mutex::new(VecDeque::new()),
            eof: tokio::sync::watch::Sender::new(false),
        });
        let Some(stderr) = stderr else {
            tail.eof.send_replace(true);
            return tail;
        };
        let writer = tail.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stderr);
            let mut line = BoundedLine::default();
            loop {
                let available = match reader.fill_buf().await {
                    Ok([]) | Err(_) => break,
                    Ok(available) => available,
                };
                let newline = available.iter().position(|b| *b == b'\n');
                let take = newline.map_or(available.len(), |at| at + 1);
                line.feed(&available[..newline.unwrap_or(available.len())]);
                reader.consume(take);
                if newline.is_some() {
                    let text = line.take();
                    tracing::debug!(target: "isola_mcp::server_stderr", server = %server, "{text}");
                    writer.push(&text);
                }
            }
            if !line.is_empty() {
                let text = line.take();
                tracing::debug!(target: "isola_mcp::server_stderr", server = %server, "{text}");
                writer.push(&text);
            }
            writer.eof.send_replace(true);
        });
        tail
    }

    fn push(&self, line: &str) {
        let mut lines = lock(&self.lines);
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_owned());
    }

    /// Wait up to `grace` for the child to close stderr; whether it did.
    async fn wait_eof(&self, grace: Duration) -> bool {
        let mut eof = self.eof.subscribe();
        matches!(
            tokio::time::timeout(grace, eof.wait_for(|done| *done)).await,
            Ok(Ok(_))
        )
    }

    /// `\nstderr (last lines):\n  ...`, or nothing when the server wrote nothing.
    fn render(&self) -> String {
        let lines = lock(&self.lines);
        if lines.is_empty() {
            return String::new();
        }
        let mut text = String::from("\nstderr (last lines):");
        for line in lines.iter() {
            text.push_str("\n  ");
            text.push_str(line);
        }
        text
    }
}

/// Notices when the server side of a transport closes.
struct DeathWatch {
    slot: Weak<Slot>,
    generation: u64,
    closed: Arc<AtomicBool>,
    tail: Option<Arc<StderrTail>>,
}

impl DeathWatch {
    fn fire(self) {
        self.closed.store(true, Ordering::SeqCst);
        let Some(slot) = self.slot.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            let reason = match &self.tail {
                Some(tail) => {
                    tail.wait_eof(STDERR_GRACE).await;
                    format!(
                        "the server process exited (or closed its stdout){}",
                        tail.render()
                    )
                }
                None => "the HTTP transport closed".to_owned(),
            };
            slot.mark_down(self.generation, reason).await;
        });
    }
}

/// A transport that reports when its peer goes away.
struct Watched<T> {
    inner: T,
    watch: Option<DeathWatch>,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Watched<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await;
        if message.is_none()
            && let Some(watch) = self.watch.take()
        {
            watch.fire();
        }
        message
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        // Closing on purpose is not a death.
        self.watch = None;
        self.inner.close()
    }
}

/// The client side of one connection: identifies isola, follows list changes, and turns
/// progress and log notifications into tracing events.
#[derive(Clone)]
struct Handler {
    slot: Weak<Slot>,
    generation: u64,
}

#[allow(deprecated)] // `LoggingMessageNotificationParam` is deprecated by SEP-2577 but still sent.
impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        // The newest version that still has the `initialize` handshake: what servers speak
        // today, and the one where list-changed notifications arrive unsolicited.
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("isola", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        if let Some(slot) = self.slot.upgrade() {
            let span = tracing::info_span!("mcp.tools_changed", server = %slot.name);
            slot.relist(self.generation, context.peer)
                .instrument(span)
                .await;
        }
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let server = self
            .slot
            .upgrade()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        tracing::debug!(
            server,
            progress = params.progress,
            total = ?params.total,
            message = params.message.as_deref().unwrap_or(""),
            "MCP progress"
        );
    }

    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        use rmcp::model::LoggingLevel;
        let server = self
            .slot
            .upgrade()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let logger = params.logger.as_deref().unwrap_or("");
        let data = match &params.data {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        match params.level {
            LoggingLevel::Debug => tracing::debug!(server, logger, "MCP log: {data}"),
            LoggingLevel::Info | LoggingLevel::Notice => {
                tracing::info!(server, logger, "MCP log: {data}")
            }
            LoggingLevel::Warning => tracing::warn!(server, logger, "MCP log: {data}"),
            _ => tracing::error!(server, logger, "MCP log: {data}"),
        }
    }
}
