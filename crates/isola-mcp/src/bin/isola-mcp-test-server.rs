//! A tiny stdio MCP server for isola-mcp's own tests, written with rmcp's server side.
//!
//! Tools: `echo {text}`, `sleep {ms}`, `fail {message}` (an `isError` result), `env {name}` (`*`: every variable),
//! `add_tool {name}` (adds a tool and sends `notifications/tools/list_changed`), `exit {code}`,
//! `notify` (sends progress and log notifications), `client` (the client's name, version and
//! protocol version). Added tools answer `dynamic: <name>`.
//!
//! Flags: `--page-size N` (paginate `tools/list`), `--endless-pages` (always return a
//! `nextCursor`), `--exit-at-start` (write to stderr and exit 2 before `initialize`),
//! `--hang-at-start` (never answer).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};

#[derive(Clone)]
struct TestServer {
    tools: Arc<Mutex<Vec<Tool>>>,
    page_size: usize,
    endless: bool,
}

fn tool(name: &str, description: &str, schema: Value) -> Tool {
    let schema: JsonObject = match schema {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    };
    Tool::new(name.to_owned(), description.to_owned(), Arc::new(schema))
}

fn string_schema(field: &str) -> Value {
    json!({"type": "object", "properties": {field: {"type": "string"}}, "required": [field]})
}

fn text(result: impl Into<String>) -> Result<CallToolResponse, McpError> {
    Ok(CallToolResult::success(vec![ContentBlock::text(result)]).into())
}

fn arg<'a>(request: &'a CallToolRequestParams, name: &str) -> Option<&'a Value> {
    request.arguments.as_ref().and_then(|args| args.get(name))
}

impl TestServer {
    fn new(page_size: usize, endless: bool) -> Self {
        let tools = vec![
            tool("echo", "Returns `text`.", string_schema("text")),
            tool(
                "sleep",
                "Sleeps `ms` milliseconds.",
                json!({"type": "object", "properties": {"ms": {"type": "integer"}}, "required": ["ms"]}),
            ),
            tool(
                "fail",
                "Returns an isError result carrying `message`.",
                string_schema("message"),
            ),
            tool(
                "env",
                "Returns the environment variable `name`, or <unset>; `*`: all of them, as a JSON object.",
                string_schema("name"),
            ),
            tool(
                "add_tool",
                "Adds a tool called `name` and notifies list_changed.",
                string_schema("name"),
            ),
            tool(
                "exit",
                "Exits the process with `code`.",
                json!({"type": "object", "properties": {"code": {"type": "integer"}}}),
            ),
            tool(
                "notify",
                "Sends progress and log notifications.",
                json!({"type": "object"}),
            ),
            tool(
                "client",
                "Returns the client's name, version and protocol version.",
                json!({"type": "object"}),
            ),
        ];
        TestServer {
            tools: Arc::new(Mutex::new(tools)),
            page_size,
            endless,
        }
    }

    fn snapshot(&self) -> Vec<Tool> {
        self.tools
            .lock()
            .map(|tools| tools.clone())
            .unwrap_or_default()
    }
}

#[allow(deprecated)] // logging notifications are deprecated by SEP-2577 but still in use
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new("isola-mcp-test-server", "1.2.3"))
        .with_instructions("Test server for isola-mcp.")
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self.snapshot();
        let start: usize = request
            .and_then(|r| r.cursor)
            .map(|cursor| cursor.parse())
            .transpose()
            .map_err(|_| McpError::invalid_params("bad cursor", None))?
            .unwrap_or(0);
        let end = (start + self.page_size).min(tools.len());
        let page = tools
            .get(start..end)
            .map(<[Tool]>::to_vec)
            .unwrap_or_default();
        let mut result = ListToolsResult::with_all_items(page);
        if self.endless || end < tools.len() {
            result.next_cursor = Some((start + self.page_size).to_string());
        }
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let str_arg = |name: &str| arg(&request, name).and_then(Value::as_str).unwrap_or("");
        match request.name.as_ref() {
            "echo" => text(str_arg("text")),
            "sleep" => {
                let ms = arg(&request, "ms").and_then(Value::as_u64).unwrap_or(0);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => text(format!("slept {ms} ms")),
                    _ = context.ct.cancelled() => Err(McpError::internal_error("cancelled", None)),
                }
            }
            "fail" => {
                Ok(CallToolResult::error(vec![ContentBlock::text(str_arg("message"))]).into())
            }
            "env" if str_arg("name") == "*" => {
                let all: serde_json::Map<String, Value> = std::env::vars()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                text(Value::Object(all).to_string())
            }
            "env" => text(std::env::var(str_arg("name")).unwrap_or_else(|_| "<unset>".to_owned())),
            "add_tool" => {
                let name = str_arg("name").to_owned();
                if let Ok(mut tools) = self.tools.lock() {
                    tools.push(tool(&name, "Added at run time.", json!({"type": "object"})));
                }
                context
                    .peer
                    .notify_tool_list_changed()
                    .await
                    .map_err(|e| McpError::internal_error(e.to_string(), None))?;
                text(format!("added {name}"))
            }
            "exit" => {
                let code = arg(&request, "code").and_then(Value::as_i64).unwrap_or(1);
                std::process::exit(i32::try_from(code).unwrap_or(1));
            }
            "notify" => {
                let progress = ProgressNotificationParam::new(
                    rmcp::model::ProgressToken(rmcp::model::NumberOrString::Number(1)),
                    0.5,
                );
                let _ = context.peer.notify_progress(progress).await;
                let log = rmcp::model::LoggingMessageNotificationParam::new(
                    rmcp::model::LoggingLevel::Info,
                    json!("hello from the test server"),
                );
                let _ = context.peer.notify_logging_message(log).await;
                text("notified")
            }
            "client" => {
                let info = context.client_info();
                let version = context.protocol_version();
                text(format!(
                    "{} {} {}",
                    info.as_ref().map_or("?", |i| i.name.as_str()),
                    info.as_ref().map_or("?", |i| i.version.as_str()),
                    version.as_ref().map_or("?", |v| v.as_str()),
                ))
            }
            other if self.snapshot().iter().any(|t| t.name == other) => {
                text(format!("dynamic: {other}"))
            }
            other => Err(McpError::invalid_params(
                format!("unknown tool {other}"),
                None,
            )),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let page_size = args
        .iter()
        .position(|a| a == "--page-size")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);

    eprintln!(
        "isola-mcp-test-server: starting, pid {}",
        std::process::id()
    );
    if flag("--exit-at-start") {
        eprintln!("isola-mcp-test-server: fatal: TEST_API_KEY is missing");
        return ExitCode::from(2);
    }
    if flag("--hang-at-start") {
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }

    let server = TestServer::new(page_size, flag("--endless-pages"));
    match server.serve(rmcp::transport::stdio()).await {
        Ok(running) => {
            let _ = running.waiting().await;
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("isola-mcp-test-server: {error}");
            ExitCode::FAILURE
        }
    }
}
