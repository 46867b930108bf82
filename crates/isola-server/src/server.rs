//! [`IsolaServer`]: the MCP server handler (rmcp) over an [`Engine`].

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use isola_engine::{Engine, Event, ExecOptions, Flow, Observer};
use isola_mcp::{HubEvent, McpHub};
use isola_protocol::ExecRecord;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListPromptsRequestMethod, ListPromptsResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
    ServerConfig, SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};
use serde_json::Value;
use tokio::sync::broadcast;
use tracing::Instrument;

use isola_codemode::descriptions::{
    self, DEFAULT_SEARCH_LIMIT, DESCRIBE, EXECUTE, MAX_SEARCH_LIMIT, RESUME, SEARCH,
};
use isola_codemode::{View, ViewOptions};

use crate::render;

/// URI of the resource with the whole API's declarations; one namespace's are at
/// `isola://types/<namespace>`.
pub const TYPES_URI: &str = "isola://types";
const TYPES_MIME: &str = "application/typescript";
/// Progress notifications sent for one execution at most; later events are only in the result.
const MAX_PROGRESS_NOTIFICATIONS: u32 = 1000;
/// Longest progress message, in characters.
const PROGRESS_MESSAGE_MAX: usize = 200;

/// What changed for the host.
#[derive(Clone, Copy, Debug)]
struct Change {
    tools: bool,
    resources: bool,
}

/// Isola as an MCP server: `execute` (and `search`/`describe` for a large API) over an
/// [`Engine`], the declarations as resources, and change notifications. Cheap to clone: clones
/// share everything (the HTTP transport makes one per session or request).
#[derive(Clone)]
pub struct IsolaServer {
    shared: Arc<Shared>,
}

/// Told of each `execute` before it runs (the journal attaches itself to the options).
pub trait ExecHook: Send + Sync {
    fn before(&self, exec: &ExecContext<'_>, options: &mut ExecOptions);

    /// Whether [`ExecHook::resume`] works (a journal is kept): the `resume` tool is listed.
    fn resumes(&self) -> bool {
        false
    }

    /// Take over the suspended execution `execution` for the `resume` tool: its code and the
    /// options that replay it, or why it cannot go on (told to the client).
    fn resume<'a>(
        &'a self,
        _exec: &'a ExecContext<'a>,
        _execution: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Resumption, String>> + Send + 'a>>
    {
        Box::pin(std::future::ready(Err(
            "this server keeps no journal: there is nothing to resume".to_string(),
        )))
    }
}

/// A suspended execution ready to go on: run `code` with `options`.
pub struct Resumption {
    pub code: String,
    pub options: ExecOptions,
}

/// What a hook learns of one `execute`.
#[derive(Clone)]
pub struct ExecContext<'a> {
    pub code: &'a str,
    /// The client's name (`clientInfo.name`), when it gave one.
    pub client: Option<String>,
    /// The Streamable HTTP session (`Mcp-Session-Id`); `None` over stdio (one client).
    pub http_session: Option<String>,
    /// The host's user can be asked (the client supports elicitation).
    pub elicitor: Option<Elicitor>,
    /// Another front-end than MCP (`isola serve`'s API): who started it (`http:<token>`),
    /// which session the caller named. `None` for MCP, whose client and session say.
    pub origin: Option<String>,
    pub session: Option<String>,
    /// The id the caller chose for the execution (so it can cancel it by id); else the hook
    /// picks one.
    pub execution: Option<String>,
}

/// Asks the MCP host's user to approve or deny a call, with an elicitation form (`approve`, and
/// an optional `reason`). Only for a client that declared form elicitation.
#[derive(Clone)]
pub struct Elicitor {
    peer: Peer<RoleServer>,
}

/// The host's user's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Elicited {
    Approve,
    Deny { reason: Option<String> },
}

impl Elicitor {
    fn of(peer: &Peer<RoleServer>) -> Option<Elicitor> {
        peer.supported_elicitation_modes()
            .contains(&rmcp::service::ElicitationMode::Form)
            .then(|| Elicitor { peer: peer.clone() })
    }

    /// Ask; `None` when there is no answer (the user dismissed the form, or the client or the
    /// protocol refused the request: the caller waits for a decision elsewhere).
    pub async fn approve(&self, message: String) -> Option<Elicited> {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "approve": {"type": "boolean", "title": "Approve this call",
                            "description": "Yes lets the call through; no denies it."},
                "reason": {"type": "string", "title": "Reason (optional)"}
            },
            "required": ["approve"]
        });
        let Value::Object(schema) = schema else {
            return None;
        };
        let requested_schema = rmcp::model::ElicitationSchema::from_json_schema(schema).ok()?;
        let result = self
            .peer
            .create_elicitation(rmcp::model::ElicitRequestParams::FormElicitationParams {
                meta: None,
                message,
                requested_schema,
            })
            .await;
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::info!("the host did not answer the approval form: {e}");
                return None;
            }
        };
        let reason = |c: &Value| c.get("reason").and_then(Value::as_str).map(str::to_string);
        match result.action {
            rmcp::model::ElicitationAction::Accept => {
                let content = result.content.unwrap_or(Value::Null);
                match content.get("approve").and_then(Value::as_bool) {
                    Some(true) => Some(Elicited::Approve),
                    Some(false) => Some(Elicited::Deny {
                        reason: reason(&content),
                    }),
                    None => None,
                }
            }
            rmcp::model::ElicitationAction::Decline => Some(Elicited::Deny { reason: None }),
            _ => None,
        }
    }
}

struct Shared {
    engine: Arc<Engine>,
    hook: Option<Arc<dyn ExecHook>>,
    options: ViewOptions,
    view: RwLock<Arc<View>>,
    /// For `subscriptions/listen` streams (protocol 2026-07-28).
    changes: broadcast::Sender<Change>,
    /// Hosts that connected with `initialize` (older protocols): they get notifications directly.
    peers: Mutex<Vec<Peer<RoleServer>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl IsolaServer {
    pub fn new(engine: Arc<Engine>, options: ViewOptions) -> IsolaServer {
        let view = View::build(engine.api(), engine.limits(), &options);
        tracing::info!(
            mode = view.mode.as_str(),
            tokens = view.tokens,
            functions = view.index.len(),
            "API ready"
        );
        let (changes, _) = broadcast::channel(64);
        IsolaServer {
            shared: Arc::new(Shared {
                engine,
                hook: None,
                options,
                view: RwLock::new(Arc::new(view)),
                changes,
                peers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Call `hook` before every execution. Only on a server not yet cloned.
    pub fn with_hook(mut self, hook: Arc<dyn ExecHook>) -> IsolaServer {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.hook = Some(hook);
        } else {
            tracing::error!("IsolaServer::with_hook on a shared server: the hook is ignored");
        }
        self
    }

    /// The current view of the API.
    pub fn view(&self) -> Arc<View> {
        match self.shared.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.shared.engine
    }

    /// Rebuild the API from the tools' current lists and tell connected hosts what changed
    /// (`notifications/tools/list_changed`, `notifications/resources/list_changed`). Returns
    /// whether the tool list changed.
    pub async fn refresh(&self) -> bool {
        self.shared.engine.refresh();
        let new = Arc::new(View::build(
            self.shared.engine.api(),
            self.shared.engine.limits(),
            &self.shared.options,
        ));
        let old = match self.shared.view.write() {
            Ok(mut g) => std::mem::replace(&mut *g, new.clone()),
            Err(p) => std::mem::replace(&mut *p.into_inner(), new.clone()),
        };
        let change = Change {
            tools: old.tools != new.tools,
            resources: old.declarations != new.declarations,
        };
        tracing::info!(
            mode = new.mode.as_str(),
            tokens = new.tokens,
            tools_changed = change.tools,
            api_changed = change.resources,
            "API refreshed"
        );
        if change.tools || change.resources {
            self.notify(change).await;
        }
        change.tools
    }

    /// Refresh whenever the hub reports a changed tool list or a restarted server. The task
    /// ends when the hub is dropped.
    pub fn watch_hub(&self, hub: &McpHub) -> tokio::task::JoinHandle<()> {
        let mut events = hub.subscribe();
        let server = self.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(HubEvent::ToolsChanged { .. } | HubEvent::ServerRestarted { .. })
                    | Err(broadcast::error::RecvError::Lagged(_)) => {
                        server.refresh().await;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }

    async fn notify(&self, change: Change) {
        let _ = self.shared.changes.send(change);
        let peers: Vec<Peer<RoleServer>> = {
            let mut peers = lock(&self.shared.peers);
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        for peer in peers {
            if change.tools
                && let Err(e) = peer.notify_tool_list_changed().await
            {
                tracing::debug!("could not send tools/list_changed: {e}");
            }
            if change.resources
                && let Err(e) = peer.notify_resource_list_changed().await
            {
                tracing::debug!("could not send resources/list_changed: {e}");
            }
        }
    }

    async fn execute(
        &self,
        args: &JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let Some(code) = args.get("code").and_then(Value::as_str) else {
            return text_error(
                "`code` is missing: pass the TypeScript to run as `code` (a string)",
            );
        };
        let mut observers: Vec<Box<dyn Observer>> = Vec::new();
        let forwarder = context.meta.get_progress_token().map(|token| {
            let (tx, rx) = tokio::sync::mpsc::channel(MAX_PROGRESS_NOTIFICATIONS as usize);
            observers.push(Box::new(Progress { tx }));
            tokio::spawn(forward_progress(rx, token, context.peer.clone()))
        });
        let mut options = ExecOptions {
            file_name: "script.ts".into(),
            cancel: Some(context.ct.clone()),
            observers,
            ..ExecOptions::default()
        };
        if let Some(hook) = &self.shared.hook {
            hook.before(&exec_context(code, context), &mut options);
        }
        self.run(code.to_string(), options, forwarder, context)
            .await
    }

    /// Run `code` for another front-end than MCP (`isola serve`'s API) through the same hook
    /// (journal, governor) as `execute`: `origin` says who (`http:<token>`), `session` which
    /// session it belongs to; `observers` see its events (the API's live streams). The record,
    /// and the execution's id when it is journaled.
    pub async fn execute_code(
        &self,
        code: &str,
        origin: String,
        session: Option<String>,
        execution: Option<String>,
        cancel: tokio_util::sync::CancellationToken,
        observers: Vec<Box<dyn Observer>>,
    ) -> (ExecRecord, Option<String>) {
        let mut options = ExecOptions {
            file_name: "script.ts".into(),
            cancel: Some(cancel),
            observers,
            ..ExecOptions::default()
        };
        if let Some(hook) = &self.shared.hook {
            let exec = ExecContext {
                code,
                client: None,
                http_session: None,
                elicitor: None,
                origin: Some(origin.clone()),
                session,
                execution,
            };
            hook.before(&exec, &mut options);
        }
        let id = options.execution_id.clone();
        let span = tracing::info_span!("api.execute", %origin);
        let record = self
            .shared
            .engine
            .execute(code, options)
            .instrument(span)
            .await;
        (record, id)
    }

    /// Resume the suspended execution `execution` for another front-end than MCP, as the
    /// `resume` tool does: the hook takes it over (or says why it cannot), and it runs on.
    pub async fn resume_code(
        &self,
        execution: &str,
        origin: String,
        cancel: tokio_util::sync::CancellationToken,
        observers: Vec<Box<dyn Observer>>,
    ) -> Result<ExecRecord, String> {
        let Some(hook) = &self.shared.hook else {
            return Err("this server keeps no journal: there is nothing to resume".into());
        };
        let exec = ExecContext {
            code: "",
            client: None,
            http_session: None,
            elicitor: None,
            origin: Some(origin.clone()),
            session: None,
            execution: None,
        };
        let Resumption { code, mut options } = hook.resume(&exec, execution).await?;
        options.cancel = Some(cancel);
        options.observers.extend(observers);
        let span = tracing::info_span!("api.resume", %origin, %execution);
        Ok(self
            .shared
            .engine
            .execute(&code, options)
            .instrument(span)
            .await)
    }

    /// The `resume` tool: the hook takes the suspended execution over; it runs on from there.
    async fn resume(
        &self,
        args: &JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let Some(execution) = args.get("execution").and_then(Value::as_str) else {
            return text_error(
                "`execution` is missing: pass the id of the suspended execution as `execution` (a string)",
            );
        };
        let Some(hook) = &self.shared.hook else {
            return text_error("this server keeps no journal: there is nothing to resume");
        };
        let exec = exec_context("", context);
        let Resumption { code, mut options } = match hook.resume(&exec, execution).await {
            Ok(r) => r,
            Err(message) => return text_error(&message),
        };
        options.cancel = Some(context.ct.clone());
        self.run(code, options, None, context).await
    }

    async fn run(
        &self,
        code: String,
        options: ExecOptions,
        forwarder: Option<tokio::task::JoinHandle<()>>,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let span = tracing::info_span!("mcp.execute", request = %context.id);
        let record = self
            .shared
            .engine
            .execute(&code, options)
            .instrument(span)
            .await;
        if let Some(forwarder) = forwarder {
            // Every progress notification goes out before the result.
            let _ = forwarder.await;
        }
        render::exec_result(&record, &self.shared.engine.api().api)
    }

    fn search(&self, args: &JsonObject) -> CallToolResult {
        let Some(query) = args.get("query").and_then(Value::as_str) else {
            return text_error(
                "`query` is missing: pass a few keywords of the task as `query` (a string)",
            );
        };
        let server = args
            .get("server")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let limit = args
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_SEARCH_LIMIT, |n| {
                (n as usize).clamp(1, MAX_SEARCH_LIMIT)
            });
        match self.view().search(query, server, limit) {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(message) => text_error(&message),
        }
    }

    fn describe(&self, args: &JsonObject) -> CallToolResult {
        let names: Vec<String> = match args.get("names") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        if names.is_empty() {
            return text_error(
                "`names` is missing: pass function names (\"github.createIssue\") or namespaces (\"github\") as `names`",
            );
        }
        match self.view().describe(&names) {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(message) => text_error(&message),
        }
    }
}

/// Who is asking, for the hook.
fn exec_context<'a>(code: &'a str, context: &RequestContext<RoleServer>) -> ExecContext<'a> {
    ExecContext {
        code,
        elicitor: Elicitor::of(&context.peer),
        client: context.peer.peer_info().map(|i| i.client_info.name.clone()),
        http_session: context
            .extensions
            .get::<::http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        origin: None,
        session: None,
        execution: None,
    }
}

fn text_error(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_string())])
}

/// Turns finished calls and console lines into progress messages. The queue holds as many as
/// are ever sent ([`MAX_PROGRESS_NOTIFICATIONS`]); the rest are only in the result.
struct Progress {
    tx: tokio::sync::mpsc::Sender<String>,
}

impl Observer for Progress {
    fn event(&mut self, event: &Event<'_>) -> Flow {
        let message = match event {
            Event::CallEnded { trace: c, .. } => match &c.error {
                None => format!("{} done ({} ms)", c.function, c.duration_ms.round() as u64),
                Some(e) => format!(
                    "{} failed ({} ms): {e}",
                    c.function,
                    c.duration_ms.round() as u64
                ),
            },
            Event::Log(l) => match l.level {
                isola_protocol::LogLevel::Log => l.text.clone(),
                level => format!("[{}] {}", level.as_str(), l.text),
            },
            _ => return Flow::Continue,
        };
        // Full: the host has had all it will get; the execution goes on.
        let _ = self.tx.try_send(cut(&message));
        Flow::Continue
    }
}

/// Send the progress notifications of one execution.
async fn forward_progress(
    mut messages: tokio::sync::mpsc::Receiver<String>,
    token: ProgressToken,
    peer: Peer<RoleServer>,
) {
    let mut sent: u32 = 0;
    while let Some(message) = messages.recv().await {
        sent += 1;
        let param =
            ProgressNotificationParam::new(token.clone(), f64::from(sent)).with_message(message);
        if let Err(e) = peer.notify_progress(param).await {
            tracing::debug!("could not send a progress notification: {e}");
        }
    }
}

fn cut(s: &str) -> String {
    if s.chars().count() <= PROGRESS_MESSAGE_MAX {
        return s.to_string();
    }
    let mut t: String = s.chars().take(PROGRESS_MESSAGE_MAX).collect();
    t.push('…');
    t
}

impl ServerHandler for IsolaServer {
    fn get_info(&self) -> ServerConfig {
        let view = self.view();
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("isola", env!("CARGO_PKG_VERSION")))
        .with_instructions(descriptions::instructions(&view.api.api, view.mode))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = self.view().tools.clone();
        if self.shared.hook.as_ref().is_some_and(|h| h.resumes()) {
            tools.push(descriptions::resume_tool());
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.clone().unwrap_or_default();
        let result = match request.name.as_ref() {
            EXECUTE => self.execute(&args, &context).await,
            SEARCH => self.search(&args),
            DESCRIBE => self.describe(&args),
            RESUME if self.shared.hook.as_ref().is_some_and(|h| h.resumes()) => {
                self.resume(&args, &context).await
            }
            other => {
                return Err(McpError::invalid_params(
                    format!(
                        "unknown tool `{other}`: Isola has `{EXECUTE}`, `{SEARCH}` and `{DESCRIBE}`"
                    ),
                    None,
                ));
            }
        };
        Ok(result.into())
    }

    /// Isola declares no prompts capability, so `prompts/list` is not a method it has (rmcp's
    /// default would answer an empty list, which claims the capability).
    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Err(McpError::method_not_found::<ListPromptsRequestMethod>())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let view = self.view();
        let mut resources = vec![
            Resource::new(TYPES_URI, "api.d.ts")
                .with_title("Isola API: TypeScript declarations of every server")
                .with_description(
                    "The functions `execute` scripts can call, one namespace per MCP server.",
                )
                .with_mime_type(TYPES_MIME)
                .with_size(view.declarations.len() as u64),
        ];
        for ns in &view.api.api.namespaces {
            resources.push(
                Resource::new(
                    format!("{TYPES_URI}/{}", ns.ident),
                    format!("{}.d.ts", ns.ident),
                )
                .with_title(format!("Isola API: namespace {}", ns.ident))
                .with_description(format!(
                    "TypeScript declarations of the tools of MCP server `{}`.",
                    ns.server
                ))
                .with_mime_type(TYPES_MIME),
            );
        }
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let view = self.view();
        let uri = request.uri.as_str();
        let text = if uri == TYPES_URI {
            Some(view.declarations.clone())
        } else {
            uri.strip_prefix(TYPES_URI)
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|ns| view.api.api.namespaces.iter().any(|n| n.ident == *ns))
                .map(|ns| view.api.api.declarations(Some(&[ns])))
        };
        let Some(text) = text else {
            let known: Vec<String> = std::iter::once(TYPES_URI.to_string())
                .chain(
                    view.api
                        .api
                        .namespaces
                        .iter()
                        .map(|n| format!("{TYPES_URI}/{}", n.ident)),
                )
                .collect();
            return Err(McpError::resource_not_found(
                format!("no resource `{uri}`; Isola has: {}", known.join(", ")),
                None,
            ));
        };
        let contents = ResourceContents::text(text, uri).with_mime_type(TYPES_MIME);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        lock(&self.shared.peers).push(context.peer);
    }

    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(
            SubscriptionFilter::builder()
                .tools_list_changed()
                .resources_list_changed()
                .build(),
        )
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut changes = self.shared.changes.subscribe();
        loop {
            let change = tokio::select! {
                () = context.cancelled() => return Ok(()),
                change = changes.recv() => match change {
                    Ok(change) => change,
                    Err(broadcast::error::RecvError::Lagged(_)) => Change { tools: true, resources: true },
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            };
            let sink = context.sink();
            // The sink drops what the host did not ask for.
            if change.tools {
                let _ = sink.notify_tool_list_changed().await;
            }
            if change.resources {
                let _ = sink.notify_resource_list_changed().await;
            }
        }
    }
}
