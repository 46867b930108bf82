//! The handler driven by an rmcp client over an in-memory pipe: tools in both modes, search,
//! describe, execute (success, failure, hints), resources, and tools/list_changed after an
//! upstream change.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use isola_codemode::ViewOptions;
use isola_engine::Engine;
use isola_protocol::Limits;
use isola_server::IsolaServer;
use isola_worker::Backend;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ReadResourceRequestParams, ResourceContents,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::support::{FakeTools, fixture_servers, tool};

#[derive(Clone, Default)]
struct Counter {
    tools_changed: Arc<AtomicUsize>,
    resources_changed: Arc<AtomicUsize>,
}

impl ClientHandler for Counter {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.fetch_add(1, Ordering::SeqCst);
    }
    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.resources_changed.fetch_add(1, Ordering::SeqCst);
    }
}

async fn connect(server: IsolaServer, handler: Counter) -> RunningService<RoleClient, Counter> {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    handler.serve(client_io).await.unwrap()
}

fn engine(tools: Arc<FakeTools>) -> Arc<Engine> {
    Arc::new(Engine::new(
        tools,
        Backend::InProcess,
        Limits {
            deadline_ms: 5000,
            ..Limits::default()
        },
    ))
}

async fn call(
    client: &RunningService<RoleClient, Counter>,
    name: &str,
    args: Value,
) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args))
        .await
        .unwrap()
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_small_api_is_embedded_in_execute() {
    let tools = FakeTools::new(fixture_servers(&["time"]));
    let server = IsolaServer::new(engine(tools), ViewOptions::default());
    let client = connect(server, Counter::default()).await;
    let listed = client.list_all_tools().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>(),
        ["execute"]
    );
    let description = listed[0].description.as_deref().unwrap();
    assert!(
        description.contains("function getCurrentTime(input: GetCurrentTimeInput)"),
        "{description}"
    );

    let result = call(&client, "execute", json!({"code": "console.log('hi');\nreturn await time.convertTime({source_timezone: 'UTC', time: '10:00', target_timezone: 'Europe/Paris'})"})).await;
    assert_eq!(result.is_error, Some(false));
    let text = text(&result);
    assert!(
        text.starts_with(
            r#"{"server":"time","tool":"convert_time","args":{"source_timezone":"UTC""#
        ),
        "{text}"
    );
    assert!(text.contains("\nconsole:\nhi\n"), "{text}");
    assert!(text.contains("1 call: time.convertTime ×1 ("), "{text}");
    let structured = result.structured_content.unwrap();
    assert_eq!(structured["ok"], json!(true));
    assert!(structured["calls"][0].get("arguments").is_none());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn failures_are_rendered_for_the_model() {
    let tools = FakeTools::new(fixture_servers(&["time"]));
    let server = IsolaServer::new(engine(tools), ViewOptions::default());
    let client = connect(server, Counter::default()).await;

    let result = call(&client, "execute", json!({"code": "console.log('before');\nreturn await time.getCurentTime({timezone: 'UTC'});"})).await;
    assert_eq!(result.is_error, Some(true));
    insta::assert_snapshot!(filter_ms(&text(&result)), @r"
    error[runtime]: TypeError: time.getCurentTime is not a function
      --> script.ts:2:19
      1 | console.log('before');
    > 2 | return await time.getCurentTime({timezone: 'UTC'});
        |                   ^
    hint: did you mean `time.getCurrentTime`?

    console (before the error):
    before

    no tool calls (N ms)
    ");

    let result = call(
        &client,
        "execute",
        json!({"code": "return await time.getCurrentTime({timezone: 42});"}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    insta::assert_snapshot!(filter_ms(&text(&result)), @r#"
    error[tool]: ValidationError: invalid arguments for time.getCurrentTime (tool `get_current_time` of server `time`): `/timezone`: 42 is not of type "string"
      --> script.ts:1:19
    > 1 | return await time.getCurrentTime({timezone: 42});
        |                   ^
    hint: the function is declared as `time.getCurrentTime(input: { timezone: string }): Promise<{ timezone: string; datetime: string; day_of_week: string; is_dst: boolean }>`

    1 call: time.getCurrentTime ×1, 1 failed (N ms)
    "#);

    let result = call(&client, "execute", json!({"code": "return (1 +;"})).await;
    assert!(
        text(&result).starts_with("error[syntax]: SyntaxError:"),
        "{}",
        text(&result)
    );
    let result = call(&client, "execute", json!({})).await;
    assert!(
        text(&result).contains("`code` is missing"),
        "{}",
        text(&result)
    );
    client.cancel().await.unwrap();
}

fn filter_ms(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.rfind(" (") {
            Some(i) if line.ends_with(" ms)") => format!("{} (N ms)", &line[..i]),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn a_large_api_is_searched_and_described() {
    let tools = FakeTools::new(fixture_servers(&["github", "filesystem"]));
    let server = IsolaServer::new(engine(tools), ViewOptions::default());
    let client = connect(server, Counter::default()).await;
    let listed = client.list_all_tools().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>(),
        ["search", "describe", "execute"]
    );

    let found = text(
        &call(
            &client,
            "search",
            json!({"query": "open a pull request", "limit": 2}),
        )
        .await,
    );
    let lines: Vec<&str> = found.lines().collect();
    assert_eq!(lines.len(), 2, "{found}");
    assert!(
        lines.iter().any(|l| l
            .starts_with("github.createPullRequest(input: { owner: string; repo: string; title")),
        "{found}"
    );
    let filtered = text(
        &call(
            &client,
            "search",
            json!({"query": "file", "server": "filesystem"}),
        )
        .await,
    );
    assert!(
        filtered.lines().all(|l| l.starts_with("filesystem.")),
        "{filtered}"
    );
    let wrong = call(&client, "search", json!({"query": "x", "server": "gitlab"})).await;
    assert_eq!(wrong.is_error, Some(true));
    assert!(text(&wrong).contains("no namespace `gitlab`; the namespaces are: github (26 functions), filesystem (14 functions)"));

    let described = text(&call(&client, "describe", json!({"names": ["github.create_issue", "github.getIssue", "filesystem.readTextFile", "github.createIsue"]})).await);
    assert!(
        described.starts_with("// Isola tool API"),
        "the prelude comes first: {described}"
    );
    assert_eq!(
        described.matches("declare namespace github").count(),
        1,
        "{described}"
    );
    assert!(
        described.contains("function createIssue(input: CreateIssueInput): Promise<ToolOutput>;"),
        "{described}"
    );
    assert!(described.contains("function getIssue("), "{described}");
    assert!(described.contains("function readTextFile("), "{described}");
    assert!(
        described
            .contains("// not found: `github.createIsue` (did you mean `github.createIssue`?)"),
        "{described}"
    );
    let whole = text(&call(&client, "describe", json!({"names": ["filesystem"]})).await);
    assert_eq!(whole.matches("\n  function ").count(), 14, "{whole}");
    let none = call(&client, "describe", json!({"names": ["nothing.here"]})).await;
    assert_eq!(none.is_error, Some(true));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn resources_hold_the_declarations() {
    let tools = FakeTools::new(fixture_servers(&["time", "memory"]));
    let server = IsolaServer::new(engine(tools), ViewOptions::default());
    let client = connect(server, Counter::default()).await;
    let listed = client.list_all_resources().await.unwrap();
    let uris: Vec<&str> = listed.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "isola://types",
            "isola://types/time",
            "isola://types/memory"
        ]
    );
    let read = client
        .read_resource(ReadResourceRequestParams::new("isola://types/memory"))
        .await
        .unwrap();
    let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else {
        panic!("not text")
    };
    assert!(
        text.contains("declare namespace memory") && !text.contains("declare namespace time"),
        "{text}"
    );
    assert!(
        client
            .read_resource(ReadResourceRequestParams::new("isola://types/nope"))
            .await
            .is_err()
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_upstream_change_updates_the_api_and_notifies_the_host() {
    let tools = FakeTools::new(fixture_servers(&["time"]));
    let server = IsolaServer::new(engine(tools.clone()), ViewOptions::default());
    let counter = Counter::default();
    let client = connect(server.clone(), counter.clone()).await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), 1);

    tools.servers.lock().unwrap()[0].tools.push(tool(
        "get_week",
        "The ISO week of a date.",
        json!({"type": "object"}),
    ));
    assert!(
        server.refresh().await,
        "the tool list changed: execute's description embeds the API"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while counter.tools_changed.load(Ordering::SeqCst) == 0
        || counter.resources_changed.load(Ordering::SeqCst) == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no list_changed notifications"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = client.list_all_tools().await.unwrap();
    assert!(
        listed[0]
            .description
            .as_deref()
            .unwrap()
            .contains("function getWeek(")
    );
    let result = call(
        &client,
        "execute",
        json!({"code": "return (await time.getWeek({})).tool"}),
    )
    .await;
    assert_eq!(text(&result).lines().next(), Some("get_week"));

    // Nothing changed: no notification.
    assert!(!server.refresh().await);
    client.cancel().await.unwrap();
}
