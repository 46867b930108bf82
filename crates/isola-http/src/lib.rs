//! `isola serve`'s HTTP API, served beside `/mcp` by [`isola_server::http::HttpServer`] (which
//! checks Host, Origin, the bearer token and the body size first). One route table, [`ROUTES`],
//! is both what requests are matched against and where the OpenAPI 3.1 document at
//! `/v1/openapi.json` comes from, so the two cannot drift apart.
//!
//! - Executions run through the same [`IsolaServer`] and hook (journal, policy, approvals) as
//!   MCP's `execute`; an execution started here has origin `http` and the session it names
//!   (else one of its own).
//! - Approvals are decided in the store, where the waiting execution (on this node or another)
//!   sees the decision.
//! - Errors are `{"error": {"kind", "message"}}` with a status that says which side is wrong.
//! - `/metrics` is Prometheus text: requests by route and status, executions by outcome.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use isola_journal::{Journal, now_ms};
use isola_server::IsolaServer;
use isola_server::http::{Body, Principal, Role, Routes};
use isola_store::{ApprovalQuery, ApprovalRow, ExecQuery, ExecRow, Store, StoreError};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

mod live;
mod plans;
mod runs;
pub mod tokens;
mod ui;
use live::Live;
pub use plans::{PlanError, PlanFuture, Plans};
pub use runs::{Agents, MAX_CHATS};

/// What an operation does; each [`Route`] names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Health,
    OpenApi,
    Metrics,
    StartExecution,
    ListExecutions,
    GetExecution,
    ResumeExecution,
    CancelExecution,
    ExecutionEvents,
    Events,
    ListApprovals,
    DecideApproval,
    Usage,
    ListSessions,
    Export,
    StartRun,
    RunEvents,
    ListGrants,
    RevokeGrant,
    ListTokens,
    AddToken,
    RemoveToken,
    MakePlan,
    ListPlans,
    GetPlan,
    ApplyPlan,
}

/// One route: matched by method and path (`{id}` segments match any one segment), and
/// described in the OpenAPI document.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub op: Op,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// Query parameters (all optional strings), each with its description.
    pub query: &'static [(&'static str, &'static str)],
    /// The JSON Schema of the request body, as JSON text.
    pub body: Option<&'static str>,
    /// The status of success, and what its body is.
    pub ok: (u16, &'static str),
    /// The least role a token needs for it.
    pub role: Role,
}

/// Every route of the API.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/v1/health",
        op: Op::Health,
        operation_id: "health",
        summary: "Whether the server is up, and whether its journal is on.",
        query: &[],
        body: None,
        ok: (200, "`{status: \"ok\", journal: bool, version}`"),
        role: Role::Viewer,
    },
    Route {
        method: "GET",
        path: "/v1/openapi.json",
        op: Op::OpenApi,
        operation_id: "openapi",
        summary: "This document.",
        query: &[],
        body: None,
        ok: (200, "the OpenAPI 3.1 document"),
        role: Role::Viewer,
    },
    Route {
        method: "GET",
        path: "/metrics",
        op: Op::Metrics,
        operation_id: "metrics",
        summary: "Prometheus text: requests by route and status, executions by outcome.",
        query: &[],
        body: None,
        ok: (200, "Prometheus exposition text"),
        role: Role::Viewer,
    },
    Route {
        method: "POST",
        path: "/v1/executions",
        op: Op::StartExecution,
        operation_id: "startExecution",
        summary: "Run a script (TypeScript) through the journal, the policy and approvals, and answer its record.",
        query: &[],
        body: Some(
            r#"{"type":"object","properties":{"code":{"type":"string","description":"The script."},"session":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,128}$","description":"The session it belongs to (its `state`); a new one when absent."},"wait":{"type":"boolean","default":true,"description":"Answer once it ended (200, with its record). `false`: answer at once (202) and let it run; its events stream from `events`."}},"required":["code"],"additionalProperties":false}"#,
        ),
        ok: (
            200,
            "`{execution, session, record}`: its id (for the journal, and to cancel it) and the ExecRecord; with `wait: false`, 202 and `{execution, session, events}`",
        ),
        role: Role::Operator,
    },
    Route {
        method: "GET",
        path: "/v1/executions",
        op: Op::ListExecutions,
        operation_id: "listExecutions",
        summary: "Recorded executions, newest first.",
        query: &[
            ("session", "only this session's"),
            ("status", "running, ok, failed, interrupted or suspended"),
            (
                "sinceMs",
                "started at or after this time (ms since the epoch)",
            ),
            ("limit", "at most this many (default 50, at most 1000)"),
        ],
        body: None,
        ok: (200, "`{executions: [...]}`"),
        role: Role::Viewer,
    },
    Route {
        method: "GET",
        path: "/v1/executions/{id}",
        op: Op::GetExecution,
        operation_id: "getExecution",
        summary: "One recorded execution with a page of its journal entries.",
        query: &[
            (
                "fromSeq",
                "entries from this sequence number on (default 0)",
            ),
            (
                "limit",
                "at most this many entries (default 1000, at most 1000); `nextSeq` says where the next page starts",
            ),
        ],
        body: None,
        ok: (200, "the execution, with `entries`"),
        role: Role::Viewer,
    },
    Route {
        method: "POST",
        path: "/v1/executions/{id}/resume",
        op: Op::ResumeExecution,
        operation_id: "resumeExecution",
        summary: "Go on with a suspended execution (its held call decided): the calls made before are answered from the journal, and the script runs on.",
        query: &[],
        body: None,
        ok: (200, "`{execution, record}`"),
        role: Role::Operator,
    },
    Route {
        method: "POST",
        path: "/v1/executions/{id}/cancel",
        op: Op::CancelExecution,
        operation_id: "cancelExecution",
        summary: "Cancel an execution this node is running (its request answers with a `cancelled` record).",
        query: &[],
        body: None,
        ok: (202, "`{cancelled: id}`"),
        role: Role::Operator,
    },
    Route {
        method: "GET",
        path: "/v1/executions/{id}/events",
        op: Op::ExecutionEvents,
        operation_id: "executionEvents",
        summary: "Server-sent events of an execution, from its first: queued, started, call, held, decided, denied, answer, callEnded, log, finished (then the stream ends). Live from the node that runs it; on another node, from the journal as its entries are committed. `Last-Event-ID` goes on after that event (from the same node).",
        query: &[],
        body: None,
        ok: (
            200,
            "`text/event-stream`; each event's data is JSON with `execution` and `seq`",
        ),
        role: Role::Viewer,
    },
    Route {
        method: "GET",
        path: "/v1/events",
        op: Op::Events,
        operation_id: "events",
        summary: "Server-sent events of every execution this node runs, from now on (the same events as one execution's).",
        query: &[],
        body: None,
        ok: (200, "`text/event-stream`"),
        role: Role::Viewer,
    },
    Route {
        method: "GET",
        path: "/v1/approvals",
        op: Op::ListApprovals,
        operation_id: "listApprovals",
        summary: "Approval requests (held calls and plans), newest first.",
        query: &[
            (
                "status",
                "pending (the default), approved, denied, expired, applied or all",
            ),
            ("execution", "only this execution's"),
            ("limit", "at most this many (default 50, at most 1000)"),
        ],
        body: None,
        ok: (200, "`{approvals: [...]}`"),
        role: Role::Viewer,
    },
    Route {
        method: "POST",
        path: "/v1/approvals/{id}",
        op: Op::DecideApproval,
        operation_id: "decideApproval",
        summary: "Approve or deny a pending request; the waiting execution goes on, on whichever node holds it.",
        query: &[],
        body: Some(
            r#"{"type":"object","properties":{"approve":{"type":"boolean"},"reason":{"type":"string","maxLength":2000},"session":{"type":"boolean","default":false,"description":"With `approve`: also approve the later calls of this function in the execution's session (a grant)."}},"required":["approve"],"additionalProperties":false}"#,
        ),
        ok: (200, "the decided request"),
        role: Role::Operator,
    },
    Route {
        method: "GET",
        path: "/v1/usage",
        op: Op::Usage,
        operation_id: "usage",
        summary: "Over the last days: executions by day (UTC) and by origin (how many, how many failed, their tool calls, median time), tool calls by server (how many, how many failed, the error rate), and the agent's calls to models by model and by day (calls, tokens in and out, cost, latency).",
        query: &[(
            "days",
            "how many days back, today included (default 14, at most 366)",
        )],
        body: None,
        ok: (
            200,
            "`{days: [{day, ok, failed, calls}], origins: [{origin, executions, failed, calls, p50Ms}], servers: [{server, calls, failed, errorRate}], models: {byModel: [...], byDay: [...]}}`",
        ),
        role: Role::Viewer,
    },
    Route {
        method: "POST",
        path: "/v1/runs",
        op: Op::StartRun,
        operation_id: "startRun",
        summary: "Run Isola's agent on a prompt: the model writes scripts against the API (journaled and governed as any execution) until it answers. `chat` continues a chat this node keeps.",
        query: &[],
        body: Some(
            r#"{"type":"object","properties":{"prompt":{"type":"string","minLength":1},"model":{"type":"string","description":"`provider:model` (e.g. `openai:gpt-4.1`); the configured one when absent."},"chat":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,128}$","description":"Continue this chat (its earlier turns); a new one when absent."},"wait":{"type":"boolean","default":true,"description":"Answer once it ended (200, with its transcript). `false`: answer at once (202); its text and steps stream from `events`."}},"required":["prompt"],"additionalProperties":false}"#,
        ),
        ok: (
            200,
            "`{run, chat, transcript}`; with `wait: false`, 202 and `{run, chat, events}`",
        ),
        role: Role::Operator,
    },
    Route {
        method: "GET",
        path: "/v1/runs/{id}/events",
        op: Op::RunEvents,
        operation_id: "runEvents",
        summary: "Server-sent events of an agent run this node runs or ran lately, from its first: queued, text (the answer as it streams), discard, turn, execution (a script), done (its outcome), toolCall, retry, truncated, finished (the transcript, or an error).",
        query: &[],
        body: None,
        ok: (200, "`text/event-stream`"),
        role: Role::Viewer,
    },
    Route {
        method: "GET",
        path: "/v1/grants",
        op: Op::ListGrants,
        operation_id: "listGrants",
        summary: "A session's grants: the functions whose calls in it are approved without asking.",
        query: &[("session", "the session (required)")],
        body: None,
        ok: (200, "`{grants: [...]}`"),
        role: Role::Viewer,
    },
    Route {
        method: "DELETE",
        path: "/v1/grants/{id}",
        op: Op::RevokeGrant,
        operation_id: "revokeGrant",
        summary: "Revoke a grant: the function's next calls in its session ask again.",
        query: &[],
        body: None,
        ok: (200, "`{revoked: id}`"),
        role: Role::Operator,
    },
    Route {
        method: "GET",
        path: "/v1/tokens",
        op: Op::ListTokens,
        operation_id: "listTokens",
        summary: "The tokens kept in the store (not those of the config): names, roles, who made them. Never a secret.",
        query: &[],
        body: None,
        ok: (200, "`{tokens: [{name, role, createdMs, createdBy}]}`"),
        role: Role::Admin,
    },
    Route {
        method: "POST",
        path: "/v1/tokens",
        op: Op::AddToken,
        operation_id: "addToken",
        summary: "Make a token and keep it in the store (its hash only); every node takes it within seconds. The secret is in this answer and nowhere else.",
        query: &[],
        body: Some(
            r#"{"type":"object","properties":{"name":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,64}$"},"role":{"enum":["viewer","operator","admin"]}},"required":["name","role"],"additionalProperties":false}"#,
        ),
        ok: (201, "`{name, role, token}`"),
        role: Role::Admin,
    },
    Route {
        method: "DELETE",
        path: "/v1/tokens/{name}",
        op: Op::RemoveToken,
        operation_id: "removeToken",
        summary: "Revoke a token kept in the store: every node refuses it within seconds.",
        query: &[],
        body: None,
        ok: (200, "`{revoked: name}`"),
        role: Role::Admin,
    },
    Route {
        method: "POST",
        path: "/v1/plans",
        op: Op::MakePlan,
        operation_id: "makePlan",
        summary: "Run a script as a plan: its reads are made, its changes recorded as steps and not sent; the plan policy approves it, refuses it, or asks a person (decide it with POST /v1/approvals/{id}).",
        query: &[],
        body: Some(
            r#"{"type":"object","properties":{"code":{"type":"string"},"session":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,128}$"}},"required":["code"],"additionalProperties":false}"#,
        ),
        ok: (
            200,
            "`{execution, record, plan}`: the plan run and the plan (null when the run failed)",
        ),
        role: Role::Operator,
    },
    Route {
        method: "GET",
        path: "/v1/plans",
        op: Op::ListPlans,
        operation_id: "listPlans",
        summary: "Plans, newest first.",
        query: &[
            (
                "status",
                "pending, approved, denied, expired, applied, or all (the default)",
            ),
            ("limit", "at most this many (default 50, at most 1000)"),
        ],
        body: None,
        ok: (200, "`{plans: [...]}`"),
        role: Role::Viewer,
    },
    Route {
        method: "GET",
        path: "/v1/plans/{id}",
        op: Op::GetPlan,
        operation_id: "getPlan",
        summary: "One plan: its steps (changes, with their effects and arguments), the reads made, the counts by effect, and its decision.",
        query: &[],
        body: None,
        ok: (200, "the plan"),
        role: Role::Viewer,
    },
    Route {
        method: "POST",
        path: "/v1/plans/{id}/apply",
        op: Op::ApplyPlan,
        operation_id: "applyPlan",
        summary: "Apply an approved plan: the script runs again, its reads checked against the plan's (drift stops it unless allowed), its changes sent as planned.",
        query: &[],
        body: Some(
            r#"{"type":"object","properties":{"allowDrift":{"type":"boolean","default":false}},"additionalProperties":false}"#,
        ),
        ok: (
            200,
            "`{execution, record, apply: {applied, planned, drift}}`",
        ),
        role: Role::Operator,
    },
    Route {
        method: "GET",
        path: "/v1/export",
        op: Op::Export,
        operation_id: "exportJournal",
        summary: "The journal as JSON Lines (what `isola journal export` prints): every entry of the executions asked for, oldest execution first, each line with its execution, seq, kind, time, chain hashes and the entry.",
        query: &[
            ("session", "only this session's"),
            (
                "sinceMs",
                "started at or after this time (ms since the epoch)",
            ),
        ],
        body: None,
        ok: (200, "`application/x-ndjson`, streamed"),
        role: Role::Viewer,
    },
    Route {
        method: "GET",
        path: "/v1/sessions",
        op: Op::ListSessions,
        operation_id: "listSessions",
        summary: "The sessions, with when each was last used.",
        query: &[],
        body: None,
        ok: (200, "`{sessions: [...]}`"),
        role: Role::Viewer,
    },
];

/// Most rows a list answers.
const MAX_LIMIT: i64 = 1000;
const DEFAULT_LIMIT: i64 = 50;
/// Entries one `GET /v1/executions/{id}` answers by default.
const MAX_ENTRIES_PAGE: i64 = 1000;

/// The API over one server and its journal (`None`: it is off). Cheap to clone.
#[derive(Clone)]
pub struct Api(Arc<Inner>);

struct Inner {
    server: IsolaServer,
    journal: Option<Journal>,
    store: Option<Arc<dyn Store>>,
    metrics: Metrics,
    /// What this node runs for the API, by execution id: their cancellation.
    running: RunningMap,
    live: Arc<Live>,
    agents: Option<Arc<dyn Agents>>,
    plans: Option<Arc<dyn Plans>>,
    stored_tokens: Option<Arc<isola_server::http::StoredTokens>>,
    chats: runs::Chats,
}

#[derive(Default)]
struct Metrics {
    /// Requests by (operation, status).
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    executions_ok: AtomicU64,
    executions_failed: AtomicU64,
}

/// An error answer: its status, kind and message.
struct Failure(StatusCode, &'static str, String);

type Answer = Result<Response<Body>, Failure>;

impl Api {
    /// The API over `server`, its `journal` (`None`: off), the agent it runs for `POST
    /// /v1/runs` and the planner of `/v1/plans` (`None`: those routes answer 501), and the
    /// store's tokens the HTTP server checks (reloaded at once when `/v1/tokens` changes them).
    pub fn new(
        server: IsolaServer,
        journal: Option<Journal>,
        agents: Option<Arc<dyn Agents>>,
        plans: Option<Arc<dyn Plans>>,
        stored_tokens: Option<Arc<isola_server::http::StoredTokens>>,
    ) -> Self {
        let store = journal.as_ref().map(|j| j.store().clone());
        Self(Arc::new(Inner {
            server,
            journal,
            store,
            metrics: Metrics::default(),
            running: Arc::default(),
            live: Live::new(),
            agents,
            plans,
            stored_tokens,
            chats: runs::Chats::default(),
        }))
    }

    /// The OpenAPI 3.1 document of [`ROUTES`].
    pub fn openapi() -> Value {
        let mut paths = Map::new();
        for route in ROUTES {
            let mut operation = json!({
                "operationId": route.operation_id,
                "summary": route.summary,
                "x-isola-role": route.role.as_str(),
                "responses": {
                    route.ok.0.to_string(): {"description": route.ok.1},
                    "default": {
                        "description": "An error: `{error: {kind, message}}`.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                    }
                }
            });
            let mut parameters: Vec<Value> = path_params(route.path)
                .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
                .collect();
            parameters.extend(route.query.iter().map(|(name, description)| {
                json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
            }));
            if !parameters.is_empty() {
                operation["parameters"] = Value::Array(parameters);
            }
            if let Some(schema) = route
                .body
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
            {
                operation["requestBody"] = json!({
                    "required": true,
                    "content": {"application/json": {"schema": schema}}
                });
            }
            let entry = paths
                .entry(route.path.to_string())
                .or_insert_with(|| json!({}));
            entry[route.method.to_ascii_lowercase()] = operation;
        }
        json!({
            "openapi": "3.1.0",
            "info": {"title": "Isola", "version": env!("CARGO_PKG_VERSION")},
            "paths": paths,
            "components": {
                "schemas": {
                    "Error": {
                        "type": "object",
                        "properties": {"error": {"type": "object", "properties": {
                            "kind": {"type": "string"}, "message": {"type": "string"}
                        }, "required": ["kind", "message"]}},
                        "required": ["error"]
                    }
                },
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
            },
            "security": [{"bearer": []}]
        })
    }
}

impl Inner {
    async fn answer(
        self: &Arc<Self>,
        route: &Route,
        params: Vec<String>,
        request: Request<Bytes>,
        who: String,
    ) -> Answer {
        let query = query_of(request.uri().query());
        match route.op {
            Op::Health => Ok(json_response(
                StatusCode::OK,
                &json!({"status": "ok", "journal": self.store.is_some(), "version": env!("CARGO_PKG_VERSION")}),
            )),
            Op::OpenApi => Ok(json_response(StatusCode::OK, &Api::openapi())),
            Op::Metrics => Ok(self.metrics_text()),
            Op::StartExecution => self.start_execution(request.body(), who).await,
            Op::StartRun => self.start_run(request.body(), who).await,
            Op::ListGrants => {
                let store = self.store()?;
                let session = query
                    .get("session")
                    .ok_or_else(|| bad("`session` is missing: the grants of which session?"))?;
                let rows = store
                    .grants(session, now_ms())
                    .await
                    .map_err(store_failure)?;
                let rows: Vec<Value> = rows.iter().map(grant_json).collect();
                Ok(json_response(StatusCode::OK, &json!({"grants": rows})))
            }
            Op::RevokeGrant => {
                let store = self.store()?;
                let id = &params[0];
                match store.grant_revoke(id).await.map_err(store_failure)? {
                    true => Ok(json_response(StatusCode::OK, &json!({"revoked": id}))),
                    false => Err(not_found(format!("no grant `{id}`"))),
                }
            }
            Op::ListTokens => {
                let store = self.store()?;
                let rows = store.tokens().await.map_err(store_failure)?;
                let rows: Vec<Value> = rows
                    .iter()
                    .map(|r| json!({"name": r.name, "role": r.role, "createdMs": r.created_ms, "createdBy": r.created_by}))
                    .collect();
                Ok(json_response(StatusCode::OK, &json!({"tokens": rows})))
            }
            Op::AddToken => {
                let store = self.store()?;
                let body = body_object(request.body(), &["name", "role"])?;
                let name = body
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| tokens::valid_name(n))
                    .ok_or_else(|| {
                        bad("`name` must be 1 to 64 letters, digits, `.`, `_` or `-`")
                    })?;
                let role = body
                    .get("role")
                    .and_then(Value::as_str)
                    .and_then(Role::parse)
                    .ok_or_else(|| bad("`role` must be viewer, operator or admin"))?;
                let (row, secret) = tokens::make(name, role, &who, now_ms()).map_err(|e| {
                    Failure(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "random",
                        format!("no random bytes for a secret: {e}"),
                    )
                })?;
                if !store.token_add(&row).await.map_err(store_failure)? {
                    return Err(Failure(
                        StatusCode::CONFLICT,
                        "conflict",
                        format!("a token named `{name}` is kept already: revoke it first"),
                    ));
                }
                self.reload_tokens().await;
                Ok(json_response(
                    StatusCode::CREATED,
                    &json!({"name": name, "role": role.as_str(), "token": secret}),
                ))
            }
            Op::RemoveToken => {
                let store = self.store()?;
                let name = &params[0];
                if !store.token_remove(name).await.map_err(store_failure)? {
                    return Err(not_found(format!(
                        "no token `{name}` in the store (the config's tokens are changed in the config)"
                    )));
                }
                self.reload_tokens().await;
                Ok(json_response(StatusCode::OK, &json!({"revoked": name})))
            }
            Op::MakePlan => {
                let planner = self.planner()?;
                let body = body_object(request.body(), &["code", "session"])?;
                let code = body
                    .get("code")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("`code` is missing: pass the script to plan as `code`"))?;
                let session = name_field(&body, "session")?;
                let made = planner
                    .plan(&who, code, session)
                    .await
                    .map_err(plan_failure)?;
                self.flush().await?;
                Ok(json_response(StatusCode::OK, &made))
            }
            Op::ListPlans => {
                let store = self.store()?;
                let status = query.get("status").cloned().unwrap_or_else(|| "all".into());
                let wanted = limit(&query)?;
                // Plans are approval requests of kind `plan`; the store lists all kinds.
                let rows = store
                    .approvals(
                        &ApprovalQuery {
                            status: (status != "all").then_some(status),
                            execution: None,
                            limit: Some(MAX_LIMIT * 10),
                        },
                        now_ms(),
                    )
                    .await
                    .map_err(store_failure)?;
                let plans: Vec<Value> = rows
                    .iter()
                    .filter(|r| r.kind == "plan")
                    .take(usize::try_from(wanted).unwrap_or(0))
                    .map(isola_control::plan::plan_json)
                    .collect();
                Ok(json_response(StatusCode::OK, &json!({"plans": plans})))
            }
            Op::GetPlan => {
                let store = self.store()?;
                let id = &params[0];
                let row = store
                    .approval(id, now_ms())
                    .await
                    .map_err(store_failure)?
                    .filter(|r| r.kind == "plan")
                    .ok_or_else(|| not_found(format!("no plan `{id}`")))?;
                Ok(json_response(
                    StatusCode::OK,
                    &isola_control::plan::plan_json(&row),
                ))
            }
            Op::ApplyPlan => {
                let planner = self.planner()?;
                let body = match request.body().is_empty() {
                    true => Map::new(),
                    false => body_object(request.body(), &["allowDrift"])?,
                };
                let allow_drift = flag(&body, "allowDrift", false)?;
                let applied = planner
                    .apply(&who, &params[0], allow_drift)
                    .await
                    .map_err(plan_failure)?;
                self.flush().await?;
                Ok(json_response(StatusCode::OK, &applied))
            }
            Op::RunEvents => {
                let id = &params[0];
                match id.starts_with("run-") {
                    true => self.feed(id, &request),
                    false => None,
                }
                .ok_or_else(|| {
                    not_found(format!(
                        "no agent run `{id}` on this node (runs are kept while they go on and for a while after)"
                    ))
                })
            }
            Op::ListExecutions => {
                let store = self.fresh_store().await?;
                let query = ExecQuery {
                    session: query.get("session").cloned(),
                    since_ms: number(&query, "sinceMs")?,
                    status: query.get("status").cloned(),
                    limit: Some(limit(&query)?),
                };
                let rows = store.executions(&query).await.map_err(store_failure)?;
                let rows: Vec<Value> = rows.iter().map(execution_json).collect();
                Ok(json_response(StatusCode::OK, &json!({"executions": rows})))
            }
            Op::GetExecution => {
                let store = self.fresh_store().await?;
                let id = &params[0];
                let Some(row) = store.execution(id).await.map_err(store_failure)? else {
                    return Err(not_found(format!("no execution `{id}` in the journal")));
                };
                let from = number(&query, "fromSeq")?.unwrap_or(0);
                let page = match query.contains_key("limit") {
                    true => limit(&query)?,
                    false => MAX_ENTRIES_PAGE,
                };
                let entries = store.entries(id).await.map_err(store_failure)?;
                let mut out = execution_json(&row);
                let problems = isola_journal::verify_chain(&row, &entries);
                out["chain"] = json!({"intact": problems.is_empty(), "problems": problems});
                // A page, so a script that logged a million lines cannot make one answer of them.
                let shown: Vec<_> = entries
                    .iter()
                    .filter(|e| e.seq >= from)
                    .take(usize::try_from(page).unwrap_or(0))
                    .collect();
                out["nextSeq"] = match shown.last() {
                    Some(last) if entries.last().is_some_and(|e| e.seq > last.seq) => {
                        json!(last.seq + 1)
                    }
                    _ => Value::Null,
                };
                out["entries"] = shown
                    .iter()
                    .map(|e| {
                        json!({
                            "seq": e.seq, "kind": e.kind, "atMs": e.at_ms,
                            "body": serde_json::from_str::<Value>(&e.body).unwrap_or(Value::Null),
                            "hash": e.hash,
                        })
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, &out))
            }
            Op::ResumeExecution => {
                self.fresh_store().await?;
                let id = &params[0];
                let cancel = CancellationToken::new();
                let _cancel_on_drop = cancel.clone().drop_guard();
                let _running = Running::register(&self.running, id, &cancel);
                let observers = vec![self.live.observer(id, "", "")];
                let record = self
                    .server
                    .resume_code(id, who, cancel, observers)
                    .await
                    .map_err(|message| Failure(StatusCode::CONFLICT, "not_resumable", message))?;
                self.finished(&record).await?;
                let record = serde_json::to_value(&record).unwrap_or(Value::Null);
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"execution": id, "record": record}),
                ))
            }
            Op::CancelExecution => {
                let id = &params[0];
                let tokens = lock(&self.running).get(id).cloned().unwrap_or_default();
                match tokens.is_empty() {
                    false => {
                        for (_, token) in tokens {
                            token.cancel();
                        }
                        Ok(json_response(
                            StatusCode::ACCEPTED,
                            &json!({"cancelled": id}),
                        ))
                    }
                    true => Err(not_found(format!(
                        "execution `{id}` is not running on this node (finished, never started, or on another node)"
                    ))),
                }
            }
            Op::ExecutionEvents => {
                let id = &params[0];
                if let Some(feed) = self.feed(id, &request) {
                    return Ok(feed);
                }
                // Another node's (or one this node ran long ago): from the journal.
                let Some(store) = self.store.clone() else {
                    return Err(not_found(format!(
                        "execution `{id}` is not running on this node, and the journal is off"
                    )));
                };
                self.flush().await?;
                if store.execution(id).await.map_err(store_failure)?.is_none() {
                    return Err(not_found(format!(
                        "no execution `{id}`, on this node or in the journal"
                    )));
                }
                let after = live::last_seq(
                    request
                        .headers()
                        .get("last-event-id")
                        .and_then(|v| v.to_str().ok()),
                    id,
                );
                Ok(live::from_journal(store, id.clone(), after))
            }
            Op::Events => Ok(live::stream(
                Vec::new(),
                0,
                Some(self.live.subscribe_all()),
                None,
            )),
            Op::Usage => {
                let store = self.fresh_store().await?;
                let days = match number(&query, "days")? {
                    None => 14,
                    Some(n) if (1..=366).contains(&n) => n,
                    Some(n) => return Err(bad(format!("`days` must be 1 to 366, not {n}"))),
                };
                let today = now_ms().div_euclid(DAY_MS);
                let query = ExecQuery {
                    since_ms: Some((today - days + 1) * DAY_MS),
                    limit: Some(MAX_USAGE_ROWS),
                    ..ExecQuery::default()
                };
                let rows = store.executions(&query).await.map_err(store_failure)?;
                let calls = store
                    .llm_calls((today - days + 1) * DAY_MS, MAX_USAGE_ROWS)
                    .await
                    .map_err(store_failure)?;
                let mut out = usage(&rows, today, days);
                out["models"] = model_usage(&calls, today, days);
                Ok(json_response(StatusCode::OK, &out))
            }
            Op::Export => {
                let store = self.fresh_store().await?.clone();
                let query = ExecQuery {
                    session: query.get("session").cloned(),
                    since_ms: number(&query, "sinceMs")?,
                    ..ExecQuery::default()
                };
                let rows = store.executions(&query).await.map_err(store_failure)?;
                // Streamed an execution at a time: the whole journal is never in memory.
                let (tx, body) = live::channel_body();
                tokio::spawn(async move {
                    for row in rows.iter().rev() {
                        let text: String = match store.entries(&row.id).await {
                            Ok(entries) => entries.iter().map(isola_journal::export_line).collect(),
                            Err(e) => {
                                // Cut short, and said so on the last line: a reader never takes
                                // a partial export for a whole one.
                                let error =
                                    json!({"error": {"kind": "store", "message": e.to_string()}});
                                let _ = tx.send(Bytes::from(format!("{error}\n"))).await;
                                return;
                            }
                        };
                        if tx.send(Bytes::from(text)).await.is_err() {
                            return;
                        }
                    }
                });
                let mut response = Response::new(body);
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/x-ndjson"),
                );
                Ok(response)
            }
            Op::ListSessions => {
                let store = self.fresh_store().await?;
                let rows = store.sessions().await.map_err(store_failure)?;
                let rows: Vec<Value> = rows
                    .iter()
                    .map(|s| {
                        json!({
                            "name": s.name, "createdMs": s.created_ms, "lastMs": s.last_ms,
                            "executions": s.executions, "stateKeys": s.state_keys,
                            "stateBytes": s.state_bytes,
                        })
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, &json!({"sessions": rows})))
            }
            Op::ListApprovals => {
                let store = self.store()?;
                let status = query
                    .get("status")
                    .cloned()
                    .unwrap_or_else(|| "pending".into());
                let query = ApprovalQuery {
                    status: (status != "all").then_some(status),
                    execution: query.get("execution").cloned(),
                    limit: Some(limit(&query)?),
                };
                let rows = store
                    .approvals(&query, now_ms())
                    .await
                    .map_err(store_failure)?;
                let rows: Vec<Value> = rows.iter().map(approval_json).collect();
                Ok(json_response(StatusCode::OK, &json!({"approvals": rows})))
            }
            Op::DecideApproval => {
                let store = self.store()?;
                let body = body_object(request.body(), &["approve", "reason", "session"])?;
                let approve = body
                    .get("approve")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| bad("`approve` is missing: true approves, false denies"))?;
                let reason = match body.get("reason") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.len() <= 2000 => Some(s.as_str()),
                    Some(_) => return Err(bad("`reason` must be a string of at most 2000 bytes")),
                };
                let for_session = flag(&body, "session", false)?;
                if for_session && !approve {
                    return Err(bad(
                        "`session: true` grants the function's later calls: it goes with `approve: true`",
                    ));
                }
                if for_session
                    && let Some(row) = store
                        .approval(&params[0], now_ms())
                        .await
                        .map_err(store_failure)?
                    && (row.kind != "call" || row.session.is_none())
                {
                    return Err(bad(format!(
                        "`session: true` needs a held call of an execution with a session; {} is {}",
                        row.id,
                        match row.kind.as_str() {
                            "call" => "a call without a session",
                            _ => "a plan, approved alone",
                        }
                    )));
                }
                let row = store
                    .approval_decide(&params[0], approve, &who, reason, now_ms())
                    .await
                    .map_err(store_failure)?;
                let mut out = approval_json(&row);
                if for_session && let Some(session) = &row.session {
                    let subject: Value = serde_json::from_str(&row.subject).unwrap_or(Value::Null);
                    let function = subject["function"].as_str().unwrap_or_default();
                    let grant = isola_control::approval::session_grant(
                        session,
                        function,
                        &who,
                        reason.map(str::to_string),
                        now_ms(),
                    );
                    store.grant_create(&grant).await.map_err(store_failure)?;
                    out["grant"] = grant_json(&grant);
                }
                Ok(json_response(StatusCode::OK, &out))
            }
        }
    }

    async fn start_execution(self: &Arc<Self>, body: &Bytes, who: String) -> Answer {
        let body = body_object(body, &["code", "session", "wait"])?;
        let code = body
            .get("code")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("`code` is missing: pass the script to run as `code` (a string)"))?
            .to_string();
        let wait = flag(&body, "wait", true)?;
        let session =
            name_field(&body, "session")?.unwrap_or_else(|| format!("http-{}", fresh_id()));
        let id = isola_journal::new_execution_id();
        let observers = vec![self.live.observer(&id, &session, &code)];
        if !wait {
            // It runs on by itself: only `POST /v1/executions/{id}/cancel` (or the server
            // stopping) ends it early.
            let inner = self.clone();
            let cancel = CancellationToken::new();
            let running = Running::register(&self.running, &id, &cancel);
            let (execution, in_session) = (id.clone(), session.clone());
            tokio::spawn(async move {
                let _running = running;
                let (record, _) = inner
                    .server
                    .execute_code(
                        &code,
                        who,
                        Some(in_session),
                        Some(execution),
                        cancel,
                        observers,
                    )
                    .await;
                if let Err(Failure(_, _, message)) = inner.finished(&record).await {
                    tracing::warn!("{message}");
                }
            });
            return Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({"execution": id, "session": session, "events": format!("/v1/executions/{id}/events")}),
            ));
        }
        // A client that goes away cancels its execution (the future is dropped with it), and
        // `POST /v1/executions/{id}/cancel` does, while it runs.
        let cancel = CancellationToken::new();
        let _cancel_on_drop = cancel.clone().drop_guard();
        let _running = Running::register(&self.running, &id, &cancel);
        let (record, journaled) = self
            .server
            .execute_code(
                &code,
                who,
                Some(session.clone()),
                Some(id.clone()),
                cancel,
                observers,
            )
            .await;
        let id = journaled.unwrap_or(id);
        self.finished(&record).await?;
        let record = serde_json::to_value(&record).unwrap_or(Value::Null);
        Ok(json_response(
            StatusCode::OK,
            &json!({"execution": id, "session": session, "record": record}),
        ))
    }

    async fn start_run(self: &Arc<Self>, body: &Bytes, who: String) -> Answer {
        let Some(agents) = self.agents.clone() else {
            return Err(Failure(
                StatusCode::NOT_IMPLEMENTED,
                "no_agent",
                "this server runs no agent".into(),
            ));
        };
        let body = body_object(body, &["prompt", "model", "chat", "wait"])?;
        let prompt = match body.get("prompt") {
            Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
            _ => {
                return Err(bad(
                    "`prompt` is missing or empty: say what the agent should do",
                ));
            }
        };
        let model = match body.get("model") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) if (1..=200).contains(&m.len()) => Some(m.clone()),
            Some(_) => {
                return Err(bad(
                    "`model` must be `provider:model`, e.g. `openai:gpt-4.1`",
                ));
            }
        };
        let chat = name_field(&body, "chat")?.unwrap_or_else(|| format!("chat-{}", fresh_id()));
        let wait = flag(&body, "wait", true)?;
        let Some(mut history) = self.chats.take(&chat) else {
            return Err(Failure(
                StatusCode::CONFLICT,
                "chat_busy",
                format!("a run of chat `{chat}` goes on: send the next turn once it ended"),
            ));
        };
        let run = format!("run-{}", fresh_id());
        self.live.open(
            &run,
            "queued",
            json!({"prompt": prompt, "chat": chat, "model": model}),
        );
        let inner = self.clone();
        let (id, in_chat) = (run.clone(), chat.clone());
        let task = async move {
            let live = inner.live.clone();
            let mut on_event = |e| runs::publish(&live, &id, e);
            let result = agents
                .run(&who, model.as_deref(), &mut history, &prompt, &mut on_event)
                .await;
            inner.chats.put(&in_chat, history);
            let finished = match &result {
                Ok(t) => json!({"transcript": runs::outcome(t)}),
                Err(message) => json!({"error": {"kind": "agent", "message": message}}),
            };
            inner.live.publish(&id, "finished", finished.clone());
            inner.live.close(&id);
            (result.is_ok(), finished)
        };
        // A task of its own, so that a client going away never leaves the chat taken.
        let handle = tokio::spawn(task);
        if !wait {
            return Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({"run": run, "chat": chat, "events": format!("/v1/runs/{run}/events")}),
            ));
        }
        let (ok, mut finished) = handle.await.map_err(|e| {
            Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "agent",
                format!("the run failed: {e}"),
            )
        })?;
        if !ok {
            let message = finished["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            return Err(Failure(StatusCode::BAD_REQUEST, "agent", message));
        }
        finished["run"] = json!(run);
        finished["chat"] = json!(chat);
        Ok(json_response(StatusCode::OK, &finished))
    }

    /// Count an execution that ended. Its answer does not wait for its journal's last entries
    /// to be committed (as MCP's `execute` does not: what is written ahead of a side effect
    /// already is); a read of the journal on this node commits them first ([`Self::fresh_store`]).
    /// A suspended one's does: its answer says it can be resumed, from any node.
    async fn finished(&self, record: &isola_protocol::ExecRecord) -> Result<(), Failure> {
        let counter = match record.ok {
            true => &self.metrics.executions_ok,
            false => &self.metrics.executions_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match &record.error {
            Some(e) if e.kind == isola_protocol::ErrorKind::Suspended => self.flush().await,
            _ => Ok(()),
        }
    }

    /// The store, once what this node's executions have written is committed: a read right
    /// after an answer sees it (an empty journal queue costs no write).
    async fn fresh_store(&self) -> Result<&Arc<dyn Store>, Failure> {
        let store = self.store()?;
        self.flush().await?;
        Ok(store)
    }

    /// The SSE stream of feed `id` (an execution's or a run's), from after the request's
    /// `Last-Event-ID`; `None` when this node has no such feed.
    fn feed(&self, id: &str, request: &Request<Bytes>) -> Option<Response<Body>> {
        let sub = self.live.subscribe(id)?;
        let after = live::last_seq(
            request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok()),
            id,
        );
        Some(live::stream(sub.past, sub.dropped, sub.live, after))
    }

    /// Take a change to the store's tokens at once on this node (the others reload soon).
    async fn reload_tokens(&self) {
        if let (Some(store), Some(stored)) = (&self.store, &self.stored_tokens)
            && let Err(e) = tokens::load(&**store, stored).await
        {
            tracing::warn!("could not reload the store's tokens: {e}");
        }
    }

    fn planner(&self) -> Result<&Arc<dyn Plans>, Failure> {
        self.store()?;
        self.plans.as_ref().ok_or_else(|| {
            Failure(
                StatusCode::NOT_IMPLEMENTED,
                "no_planner",
                "this server makes no plans".into(),
            )
        })
    }

    /// Commit the journal: what the client reads next is there.
    async fn flush(&self) -> Result<(), Failure> {
        if let Some(journal) = &self.journal
            && let Err(e) = journal.flush().await
        {
            return Err(Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "journal",
                format!("it ran, but its journal could not be written: {e}"),
            ));
        }
        Ok(())
    }

    fn store(&self) -> Result<&Arc<dyn Store>, Failure> {
        self.store.as_ref().ok_or_else(|| {
            Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "journal_off",
                "the journal is off (--store none): nothing is recorded here".into(),
            )
        })
    }

    fn count(&self, operation: &'static str, status: StatusCode) {
        let mut requests = lock(&self.metrics.requests);
        *requests.entry((operation, status.as_u16())).or_default() += 1;
    }

    fn metrics_text(&self) -> Response<Body> {
        let mut out = String::from(
            "# HELP isola_http_requests_total Requests to the API by operation and status.\n# TYPE isola_http_requests_total counter\n",
        );
        let requests = lock(&self.metrics.requests).clone();
        for ((operation, status), n) in requests {
            out += &format!(
                "isola_http_requests_total{{operation=\"{operation}\",status=\"{status}\"}} {n}\n"
            );
        }
        out += "# HELP isola_http_executions_total Executions started through the API by outcome.\n# TYPE isola_http_executions_total counter\n";
        for (outcome, n) in [
            ("ok", &self.metrics.executions_ok),
            ("failed", &self.metrics.executions_failed),
        ] {
            out += &format!(
                "isola_http_executions_total{{outcome=\"{outcome}\"}} {}\n",
                n.load(Ordering::Relaxed)
            );
        }
        let mut response = Response::new(Full::new(Bytes::from(out)).boxed());
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    }
}

impl Routes for Api {
    fn serves(&self, path: &str) -> bool {
        path.starts_with("/v1/") || path == "/v1" || path == "/metrics" || ui::serves(path)
    }

    fn public(&self, path: &str) -> bool {
        ui::serves(path)
    }

    fn call(
        &self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 'static>> {
        let api = self.0.clone();
        Box::pin(async move {
            let path = request.uri().path().to_string();
            if ui::serves(&path) {
                return ui::answer(&path, request.method());
            }
            let matched: Vec<(&Route, Vec<String>)> = ROUTES
                .iter()
                .filter_map(|r| matches(r.path, &path).map(|p| (r, p)))
                .collect();
            if matched.is_empty() {
                return error_response(&Failure(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no route {path}: see /v1/openapi.json"),
                ));
            }
            let method = request.method().clone();
            let Some((route, params)) = matched
                .iter()
                .find(|(r, _)| Method::from_bytes(r.method.as_bytes()).ok() == Some(method.clone()))
                .cloned()
            else {
                let allowed: Vec<&str> = matched.iter().map(|(r, _)| r.method).collect();
                let mut response = error_response(&Failure(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{path} takes {}, not {method}", allowed.join(", ")),
                ));
                if let Ok(v) = http::HeaderValue::from_str(&allowed.join(", ")) {
                    response.headers_mut().insert(http::header::ALLOW, v);
                }
                return response;
            };
            let principal = request
                .extensions()
                .get::<Principal>()
                .cloned()
                .unwrap_or(Principal {
                    name: "anonymous".into(),
                    role: Role::Viewer,
                });
            if principal.role < route.role {
                let failure = Failure(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "token `{}` is a {}'s; {} {path} takes a {}'s",
                        principal.name,
                        principal.role.as_str(),
                        route.method,
                        route.role.as_str()
                    ),
                );
                api.count(route.operation_id, failure.0);
                return error_response(&failure);
            }
            let who = format!("http:{}", principal.name);
            let response = match api.answer(route, params, request, who).await {
                Ok(r) => r,
                Err(failure) => error_response(&failure),
            };
            api.count(route.operation_id, response.status());
            response
        })
    }
}

/// What this node runs, by execution id: each run's serial and cancellation (two requests may
/// try to resume one execution at once; the store lets one go on, and each removes only its
/// own).
type RunningMap = Arc<Mutex<BTreeMap<String, Vec<(u64, CancellationToken)>>>>;

/// An execution in [`Inner::running`] while this lives.
struct Running {
    map: RunningMap,
    id: String,
    serial: u64,
}

impl Running {
    fn register(map: &RunningMap, id: &str, token: &CancellationToken) -> Self {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        lock(map)
            .entry(id.to_string())
            .or_default()
            .push((serial, token.clone()));
        Self {
            map: map.clone(),
            id: id.to_string(),
            serial,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut map = lock(&self.map);
        if let Some(runs) = map.get_mut(&self.id) {
            runs.retain(|(serial, _)| *serial != self.serial);
            if runs.is_empty() {
                map.remove(&self.id);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `{name}` segments of a route's path.
fn path_params(path: &'static str) -> impl Iterator<Item = &'static str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// The values of `template`'s `{…}` segments in `path`, if it matches.
fn matches(template: &str, path: &str) -> Option<Vec<String>> {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    if t.len() != p.len() {
        return None;
    }
    let mut params = Vec::new();
    for (t, p) in t.iter().zip(&p) {
        if t.starts_with('{') {
            if p.is_empty() {
                return None;
            }
            params.push(percent_decode(p));
        } else if t != p {
            return None;
        }
    }
    Some(params)
}

/// A query string's parameters (the last of repeated ones).
fn query_of(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn number(query: &BTreeMap<String, String>, key: &str) -> Result<Option<i64>, Failure> {
    query
        .get(key)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| bad(format!("`{key}` must be a whole number, not `{v}`")))
        })
        .transpose()
}

fn limit(query: &BTreeMap<String, String>) -> Result<i64, Failure> {
    match number(query, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(bad(format!("`limit` must be 1 to {MAX_LIMIT}, not {n}"))),
    }
}

/// The request body as a JSON object with only `allowed` keys.
fn body_object(body: &Bytes, allowed: &[&str]) -> Result<Map<String, Value>, Failure> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(bad("the body must be a JSON object"));
    };
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown field `{key}` (this request takes {})",
            allowed.join(", ")
        )));
    }
    Ok(map)
}

/// The optional boolean `key` of `body`: `default` when absent or null.
fn flag(body: &Map<String, Value>, key: &str, default: bool) -> Result<bool, Failure> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("`{key}` must be true or false"))),
    }
}

/// The optional name `key` of `body` (a session's or a chat's): 1 to 128 letters, digits, `.`,
/// `_` or `-`.
fn name_field(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Failure> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if valid_session(s) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!(
            "`{key}` must be 1 to 128 letters, digits, `.`, `_` or `-`"
        ))),
    }
}

fn valid_session(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn execution_json(row: &ExecRow) -> Value {
    json!({
        "id": row.id, "session": row.session, "origin": row.origin, "status": row.status,
        "startedMs": row.started_ms, "endedMs": row.ended_ms, "codeHash": row.code_hash,
        "entries": row.entries, "head": row.head,
        "summary": row.summary.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()),
    })
}

const DAY_MS: i64 = 86_400_000;
/// Most executions `GET /v1/usage` counts.
const MAX_USAGE_ROWS: i64 = 100_000;

/// `rows` by day (the `days` days up to `today`, days since the epoch) and by origin.
fn usage(rows: &[ExecRow], today: i64, days: i64) -> Value {
    #[derive(Default)]
    struct Day {
        ok: u64,
        failed: u64,
        calls: u64,
    }
    #[derive(Default)]
    struct Origin {
        executions: u64,
        failed: u64,
        calls: u64,
        ms: Vec<f64>,
    }
    let mut by_day: BTreeMap<i64, Day> = (today - days + 1..=today)
        .map(|d| (d, Day::default()))
        .collect();
    let mut by_origin: BTreeMap<&str, Origin> = BTreeMap::new();
    // Tool calls and failed ones by server.
    let mut by_server: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in rows {
        let summary: Value = row
            .summary
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let calls = summary["calls"].as_u64().unwrap_or(0);
        let failed = matches!(row.status.as_str(), "failed" | "interrupted");
        if let Some(day) = by_day.get_mut(&row.started_ms.div_euclid(DAY_MS)) {
            match failed {
                true => day.failed += 1,
                false => day.ok += u64::from(row.status == "ok"),
            }
            day.calls += calls;
        }
        if let Some(servers) = summary["servers"].as_object() {
            for (server, counts) in servers {
                let n = by_server.entry(server.clone()).or_default();
                n.0 += counts[0].as_u64().unwrap_or(0);
                n.1 += counts[1].as_u64().unwrap_or(0);
            }
        }
        let origin = by_origin.entry(&row.origin).or_default();
        origin.executions += 1;
        origin.failed += u64::from(failed);
        origin.calls += calls;
        if let Some(ms) = summary["ms"].as_f64() {
            origin.ms.push(ms);
        }
    }
    let days: Vec<Value> = by_day
        .into_iter()
        .map(|(d, n)| json!({"day": civil_date(d), "ok": n.ok, "failed": n.failed, "calls": n.calls}))
        .collect();
    let origins: Vec<Value> = by_origin
        .into_iter()
        .map(|(name, mut o)| {
            o.ms.sort_by(f64::total_cmp);
            let p50 = o.ms.get(o.ms.len() / 2).copied();
            json!({"origin": name, "executions": o.executions, "failed": o.failed, "calls": o.calls, "p50Ms": p50})
        })
        .collect();
    let servers: Vec<Value> = by_server
        .into_iter()
        .map(|(server, (calls, failed))| {
            let rate = if calls == 0 {
                0.0
            } else {
                failed as f64 / calls as f64
            };
            json!({"server": server, "calls": calls, "failed": failed, "errorRate": rate})
        })
        .collect();
    json!({"days": days, "origins": origins, "servers": servers})
}

/// The agent's calls to models by model, and by day and model.
fn model_usage(calls: &[isola_store::LlmCallRow], today: i64, days: i64) -> Value {
    #[derive(Default)]
    struct Sum {
        calls: u64,
        failed: u64,
        input: i64,
        output: i64,
        cached: i64,
        cost: f64,
        latency: Vec<f64>,
    }
    impl Sum {
        fn add(&mut self, c: &isola_store::LlmCallRow) {
            self.calls += 1;
            self.failed += u64::from(!c.ok);
            self.input += c.input_tokens;
            self.output += c.output_tokens;
            self.cached += c.cached_tokens;
            self.cost += c.cost_usd.unwrap_or(0.0);
            self.latency.push(c.latency_ms);
        }
        fn json(mut self) -> Value {
            self.latency.sort_by(f64::total_cmp);
            let at = |p: f64| {
                self.latency
                    .get(((self.latency.len() as f64 - 1.0) * p).round() as usize)
                    .copied()
            };
            json!({
                "calls": self.calls, "failed": self.failed, "inputTokens": self.input,
                "outputTokens": self.output, "cachedTokens": self.cached, "costUsd": self.cost,
                "p50LatencyMs": at(0.5), "p99LatencyMs": at(0.99),
            })
        }
    }
    let first = today - days + 1;
    let mut by_model: BTreeMap<&str, Sum> = BTreeMap::new();
    let mut by_day: BTreeMap<(i64, &str), Sum> = BTreeMap::new();
    for c in calls {
        let day = c.at_ms.div_euclid(DAY_MS);
        if day < first {
            continue;
        }
        by_model.entry(&c.model).or_default().add(c);
        by_day.entry((day, &c.model)).or_default().add(c);
    }
    let by_model: Vec<Value> = by_model
        .into_iter()
        .map(|(model, sum)| {
            let mut v = sum.json();
            v["model"] = json!(model);
            v
        })
        .collect();
    let by_day: Vec<Value> = by_day
        .into_iter()
        .map(|((day, model), sum)| {
            let mut v = sum.json();
            v["day"] = json!(civil_date(day));
            v["model"] = json!(model);
            v
        })
        .collect();
    json!({"byModel": by_model, "byDay": by_day})
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn approval_json(row: &ApprovalRow) -> Value {
    let parsed = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "id": row.id, "kind": row.kind, "execution": row.execution, "session": row.session,
        "subject": parsed(&row.subject), "reasons": parsed(&row.reasons),
        "createdMs": row.created_ms, "expiresMs": row.expires_ms, "status": row.status,
        "decidedBy": row.decided_by, "decidedMs": row.decided_ms, "note": row.note,
    })
}

fn grant_json(row: &isola_store::GrantRow) -> Value {
    json!({
        "id": row.id, "session": row.session, "function": row.function,
        "matcher": serde_json::from_str::<Value>(&row.matcher).unwrap_or(Value::Null),
        "createdBy": row.created_by, "createdMs": row.created_ms, "expiresMs": row.expires_ms,
        "note": row.note,
    })
}

fn store_failure(e: StoreError) -> Failure {
    let (status, kind) = match &e {
        StoreError::NotFound(_) | StoreError::ApprovalNotFound { .. } => {
            (StatusCode::NOT_FOUND, "not_found")
        }
        StoreError::ApprovalDecided { .. } | StoreError::ApprovalExpired { .. } => {
            (StatusCode::CONFLICT, "conflict")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
    };
    Failure(status, kind, e.to_string())
}

fn plan_failure(e: PlanError) -> Failure {
    match e {
        PlanError::Conflict(message) => Failure(StatusCode::CONFLICT, "conflict", message),
        PlanError::Failed(message) => Failure(StatusCode::INTERNAL_SERVER_ERROR, "plan", message),
    }
}

fn bad(message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, "bad_request", message.into())
}

fn not_found(message: String) -> Failure {
    Failure(StatusCode::NOT_FOUND, "not_found", message)
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(failure: &Failure) -> Response<Body> {
    let Failure(status, kind, message) = failure;
    json_response(
        *status,
        &json!({"error": {"kind": kind, "message": message}}),
    )
}

/// 16 hex digits: milliseconds and a counter, unique within the process.
fn fresh_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:x}{:04x}",
        now_ms(),
        NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(59), "1970-03-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(20_791), "2026-12-04");
        assert_eq!(civil_date(-1), "1969-12-31");
    }

    #[test]
    fn paths_match_their_templates() {
        assert_eq!(
            matches("/v1/executions/{id}", "/v1/executions/ab%2Fc"),
            Some(vec!["ab/c".into()])
        );
        assert_eq!(matches("/v1/executions/{id}", "/v1/executions/"), None);
        assert_eq!(matches("/v1/executions", "/v1/executions/x"), None);
        assert_eq!(matches("/v1/health", "/v1/health"), Some(vec![]));
    }

    #[test]
    fn the_document_has_every_route_once() {
        let doc = Api::openapi();
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
            assert_eq!(op["operationId"], route.operation_id, "{}", route.path);
        }
        let count: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(count, ROUTES.len());
        assert_eq!(
            doc["paths"]["/v1/executions/{id}"]["get"]["parameters"][0]["name"],
            "id"
        );
    }
}
