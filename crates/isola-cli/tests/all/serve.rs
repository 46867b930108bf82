//! `isola serve`: the HTTP API beside `/mcp`. Scripts run through it are journaled and
//! governed as MCP's are; a held call is approved through the API while its request waits;
//! errors are JSON with a status that says which side is wrong; Host, Origin and the token are
//! checked as for `/mcp`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{McpHttp, Project, serve_http, serve_http_with};

/// One request with `Connection: close`: the status and the body (JSON, or the text as a
/// string).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| *k == "Host") {
        text.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(text.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, value)
}

/// Read the server-sent events of `path` until one of kind `until` (or the stream ends): each
/// as (kind, data). `connected` is told once the response's head arrived (the server has
/// subscribed).
pub fn sse(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    until: &str,
    connected: Option<std::sync::mpsc::Sender<()>>,
) -> Vec<(String, Value)> {
    use std::io::BufRead;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut text =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains(" 200 "), "{path}: {line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if line.to_ascii_lowercase().starts_with("content-type:") {
            assert!(line.contains("text/event-stream"), "{line}");
        }
    }
    if let Some(tx) = connected {
        tx.send(()).unwrap();
    }
    // Each event is one chunk of the chunked body: the chunk-size lines are skipped.
    let (mut events, mut kind) = (Vec::new(), String::new());
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            return events;
        }
        let line = line.trim_end();
        if let Some(k) = line.strip_prefix("event: ") {
            kind = k.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let value: Value = serde_json::from_str(data).unwrap();
            let done = kind == until;
            events.push((std::mem::take(&mut kind), value));
            if done {
                return events;
            }
        }
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A request and what it must get: method, path, body, headers, status, error kind.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    u16,
    &'a str,
);

fn serve(p: &Project, extra: &[&str]) -> McpHttp {
    serve_http(p.path(), "serve", extra)
}

#[test]
fn scripts_run_through_the_api_are_journaled_and_keep_their_session_state() {
    let p = Project::new();
    let s = serve(&p, &[]);
    let (status, health) = request(s.port, "GET", "/v1/health", "", &[]);
    assert_eq!(
        (status, &health["journal"]),
        (200, &json!(true)),
        "{health}"
    );

    let run = |code: &str| {
        let body = json!({"code": code, "session": "demo"}).to_string();
        request(s.port, "POST", "/v1/executions", &body, &[])
    };
    let (status, first) = run(
        "await state.set('n', 41); console.log('set'); return (await everything.echo({ message: 'x' })) ",
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["record"]["ok"], true, "{first}");
    assert_eq!(first["record"]["result"], "Echo: x", "{first}");
    assert_eq!(first["session"], "demo");
    let (_, second) = run("return (await state.get('n')) + 1");
    assert_eq!(second["record"]["result"], 42, "{second}");

    // What the API answered is in the journal at once.
    let id = first["execution"].as_str().unwrap();
    let (status, shown) = request(s.port, "GET", &format!("/v1/executions/{id}"), "", &[]);
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["status"], "ok");
    assert_eq!(shown["origin"], "http:local", "no tokens: the local user");
    assert_eq!(shown["chain"]["intact"], true, "{shown}");
    // Usage and sessions count them.
    let (status, usage) = request(s.port, "GET", "/v1/usage?days=3", "", &[]);
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["days"].as_array().map(Vec::len), Some(3), "{usage}");
    assert_eq!(usage["days"][2]["ok"], 2, "today's: {usage}");
    assert_eq!(
        usage["days"][2]["calls"], 3,
        "state.set, echo, state.get: {usage}"
    );
    assert_eq!(usage["origins"][0]["origin"], "http:local", "{usage}");
    assert_eq!(usage["origins"][0]["executions"], 2, "{usage}");
    // By server: state.set and state.get went to `state`, echo to `everything`, none failed.
    let servers = usage["servers"].as_array().unwrap();
    let of = |name: &str| servers.iter().find(|x| x["server"] == name).cloned();
    assert_eq!(
        of("everything").map(|x| (x["calls"].clone(), x["failed"].clone())),
        Some((json!(1), json!(0))),
        "{usage}"
    );
    assert_eq!(
        of("state").map(|x| x["calls"].clone()),
        Some(json!(2)),
        "{usage}"
    );
    let (_, sessions) = request(s.port, "GET", "/v1/sessions", "", &[]);
    assert!(
        sessions["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "demo" && x["executions"] == 2),
        "{sessions}"
    );
    let kinds: Vec<&str> = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"finished"), "{kinds:?}");
    assert!(
        kinds.contains(&"log") && kinds.contains(&"call"),
        "{kinds:?}"
    );
    assert_eq!(shown["nextSeq"], Value::Null, "one page holds them all");
    // Pages: two entries, then the rest from where the first page said.
    let (_, page) = request(
        s.port,
        "GET",
        &format!("/v1/executions/{id}?limit=2"),
        "",
        &[],
    );
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2), "{page}");
    assert_eq!(page["nextSeq"], 2, "{page}");
    let (_, rest) = request(
        s.port,
        "GET",
        &format!("/v1/executions/{id}?fromSeq=2"),
        "",
        &[],
    );
    assert_eq!(
        rest["entries"].as_array().map(Vec::len),
        Some(kinds.len() - 2),
        "{rest}"
    );
    assert_eq!(rest["entries"][0]["seq"], 2, "{rest}");
    let (_, listed) = request(
        s.port,
        "GET",
        "/v1/executions?session=demo&limit=10",
        "",
        &[],
    );
    let ids: Vec<&str> = listed["executions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert!(ids.contains(&id), "{listed}");

    // A failing script is a record that says so, not an HTTP error.
    let (status, failed) = run("throw new Error('nope')");
    assert_eq!(status, 200);
    assert_eq!(failed["record"]["ok"], false, "{failed}");
    let (_, metrics) = request(s.port, "GET", "/metrics", "", &[]);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("isola_http_executions_total{outcome=\"ok\"} 2")
            && metrics.contains("isola_http_executions_total{outcome=\"failed\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_held_call_is_approved_through_the_api_while_its_request_waits() {
    let p =
        Project::new().with_isola(json!({"effects": {"fs": {"create_directory": "destructive"}}}));
    let s = serve(&p, &[]);
    let port = s.port;
    let dir = p.data().join("made").display().to_string();
    let code = format!("await fs.createDirectory({{ path: {dir:?} }}); return 'made'");
    let waiting = std::thread::spawn(move || {
        request(
            port,
            "POST",
            "/v1/executions",
            &json!({"code": code}).to_string(),
            &[],
        )
    });
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let pending = loop {
        let (status, list) = request(port, "GET", "/v1/approvals", "", &[]);
        assert_eq!(status, 200, "{list}");
        if let Some(first) = list["approvals"]
            .as_array()
            .and_then(|a| a.first().cloned())
        {
            break first;
        }
        assert!(
            std::time::Instant::now() < until,
            "no approval request within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(
        pending["subject"]["function"], "fs.createDirectory",
        "{pending}"
    );
    assert!(
        !p.data().join("made").exists(),
        "not made before the approval"
    );
    let id = pending["id"].as_str().unwrap();
    let path = format!("/v1/approvals/{id}");
    let (status, decided) = request(
        port,
        "POST",
        &path,
        r#"{"approve": true, "reason": "ok"}"#,
        &[],
    );
    assert_eq!(status, 200, "{decided}");
    assert_eq!(
        (&decided["status"], &decided["decidedBy"]),
        (&json!("approved"), &json!("http:local"))
    );
    let (status, ran) = waiting.join().unwrap();
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["record"]["result"], "made", "{ran}");
    assert!(p.data().join("made").is_dir());
    // Deciding it again is a conflict, not a second decision.
    let (status, again) = request(port, "POST", &path, r#"{"approve": false}"#, &[]);
    assert_eq!(
        (status, &again["error"]["kind"]),
        (409, &json!("conflict")),
        "{again}"
    );
}

#[test]
fn bad_requests_get_json_errors_and_the_checks_of_mcp() {
    let p = Project::new();
    let s = serve(&p, &["--token", "sesame"]);
    let auth = [("Authorization", "Bearer sesame")];
    let cases: [Case; 9] = [
        ("GET", "/v1/health", "", &[], 401, "unauthorized"),
        (
            "GET",
            "/v1/health",
            "",
            &[("Authorization", "Bearer wrong")],
            401,
            "unauthorized",
        ),
        (
            "GET",
            "/v1/health",
            "",
            &[("Authorization", "Bearer sesame"), ("Host", "evil.example")],
            403,
            "forbidden",
        ),
        (
            "GET",
            "/v1/health",
            "",
            &[
                ("Authorization", "Bearer sesame"),
                ("Origin", "http://evil.example"),
            ],
            403,
            "forbidden",
        ),
        (
            "POST",
            "/v1/executions",
            "{not json",
            &auth,
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/executions",
            r#"{"code": "1", "mode": "x"}"#,
            &auth,
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/executions",
            r#"{"code": "1", "session": "../x"}"#,
            &auth,
            400,
            "bad_request",
        ),
        ("DELETE", "/v1/health", "", &auth, 405, "method_not_allowed"),
        ("GET", "/v1/executions/nope", "", &auth, 404, "not_found"),
    ];
    for (method, path, body, headers, want, kind) in cases {
        let (status, answer) = request(s.port, method, path, body, headers);
        assert_eq!(
            (status, &answer["error"]["kind"]),
            (want, &json!(kind)),
            "{method} {path} {headers:?}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    let big = format!(r#"{{"code": "{}"}}"#, "x".repeat(2 << 20));
    let (status, answer) = request(s.port, "POST", "/v1/executions", &big, &auth);
    assert_eq!(
        (status, &answer["error"]["kind"]),
        (413, &json!("too_large")),
        "{answer}"
    );
    // The document lists every route the server answers.
    let (status, doc) = request(s.port, "GET", "/v1/openapi.json", "", &auth);
    assert_eq!((status, &doc["openapi"]), (200, &json!("3.1.0")));
    for path in [
        "/v1/executions",
        "/v1/executions/{id}",
        "/v1/approvals/{id}",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the document"
        );
    }
}

/// A call held longer than `approvals.suspendAfterMs` suspends the execution; once the request
/// is approved through the API, `POST /v1/executions/{id}/resume` runs it on to its end, the
/// call made before answered from the journal (the first directory is not made twice).
#[test]
fn a_suspended_execution_is_approved_and_resumed_through_the_api() {
    let p = Project::new().with_isola(json!({
        "effects": {"fs": {"create_directory": "destructive", "write_file": "write"}},
        "approvals": {"suspendAfterMs": 200}
    }));
    let s = serve(&p, &[]);
    let (first, made) = (p.data().join("first.txt"), p.data().join("made"));
    let code = format!(
        "await fs.writeFile({{ path: {:?}, content: '1' }});\nawait fs.createDirectory({{ path: {:?} }});\nreturn 'made'",
        first.display().to_string(),
        made.display().to_string()
    );
    let (status, suspended) = request(
        s.port,
        "POST",
        "/v1/executions",
        &json!({"code": code}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{suspended}");
    assert_eq!(
        suspended["record"]["error"]["kind"], "suspended",
        "{suspended}"
    );
    let id = suspended["execution"].as_str().unwrap().to_string();
    let resume = format!("/v1/executions/{id}/resume");
    let (_, list) = request(
        s.port,
        "GET",
        &format!("/v1/approvals?execution={id}"),
        "",
        &[],
    );
    let approval = list["approvals"][0]["id"].as_str().unwrap().to_string();
    std::fs::remove_file(&first).unwrap();
    let (status, decided) = request(
        s.port,
        "POST",
        &format!("/v1/approvals/{approval}"),
        r#"{"approve": true}"#,
        &[],
    );
    assert_eq!(status, 200, "{decided}");
    let (status, resumed) = request(s.port, "POST", &resume, "", &[]);
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["record"]["result"], "made", "{resumed}");
    assert!(made.is_dir());
    assert!(
        !first.exists(),
        "the write before the suspension was sent again"
    );
    // Done: it cannot be resumed twice.
    let (status, again) = request(s.port, "POST", &resume, "", &[]);
    assert_eq!(
        (status, &again["error"]["kind"]),
        (409, &json!("not_resumable")),
        "{again}"
    );
    let (_, shown) = request(s.port, "GET", &format!("/v1/executions/{id}"), "", &[]);
    assert_eq!(shown["status"], "ok", "{shown}");
}

/// `POST /v1/executions/{id}/cancel` stops a running execution: its own request answers with a
/// `cancelled` record; then there is nothing to cancel.
#[test]
fn a_running_execution_is_cancelled_by_its_id() {
    let p = Project::new();
    let s = serve(&p, &[]);
    let port = s.port;
    let waiting = std::thread::spawn(move || {
        request(
            port,
            "POST",
            "/v1/executions",
            r#"{"code": "while (true) {}"}"#,
            &[],
        )
    });
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let id = loop {
        let (_, list) = request(port, "GET", "/v1/executions?status=running", "", &[]);
        if let Some(id) = list["executions"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(std::time::Instant::now() < until, "not running within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let cancel = format!("/v1/executions/{id}/cancel");
    let (status, answer) = request(port, "POST", &cancel, "", &[]);
    assert_eq!(
        (status, &answer["cancelled"]),
        (202, &json!(id)),
        "{answer}"
    );
    let (status, ran) = waiting.join().unwrap();
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["execution"], json!(id));
    assert_eq!(ran["record"]["error"]["kind"], "cancelled", "{ran}");
    let (status, again) = request(port, "POST", &cancel, "", &[]);
    assert_eq!(
        (status, &again["error"]["kind"]),
        (404, &json!("not_found")),
        "{again}"
    );
}

/// `wait: false` answers at once; the execution's events stream from its first one (logs,
/// calls, the finished record), to late subscribers too, and from `Last-Event-ID` on; the
/// all-activity stream carries them as well.
#[test]
fn an_execution_started_without_waiting_streams_its_events() {
    let p = Project::new();
    let s = serve(&p, &[]);
    let port = s.port;
    let (tx, rx) = std::sync::mpsc::channel();
    let all = std::thread::spawn(move || sse(port, "/v1/events", &[], "finished", Some(tx)));
    rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let code = "console.log('one'); const r = await everything.echo({ message: 'x' }); console.log('two'); return r";
    let (status, started) = request(
        port,
        "POST",
        "/v1/executions",
        &json!({"code": code, "wait": false}).to_string(),
        &[],
    );
    assert_eq!(status, 202, "{started}");
    let id = started["execution"].as_str().unwrap().to_string();
    let path = started["events"].as_str().unwrap().to_string();
    assert_eq!(path, format!("/v1/executions/{id}/events"));
    let events = sse(port, &path, &[], "finished", None);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "queued",
            "started",
            "log",
            "call",
            "answer",
            "callEnded",
            "log",
            "finished"
        ],
        "{events:?}"
    );
    assert_eq!(events[0].1["code"], code);
    assert_eq!(events[2].1["text"], "one");
    assert_eq!(events[3].1["function"], "everything.echo");
    assert_eq!(events[3].1["arguments"], json!({"message": "x"}));
    assert_eq!(events[4].1["result"]["value"], "\"Echo: x\"");
    assert_eq!(events[5].1["ok"], true);
    let record = &events[7].1["record"];
    assert_eq!(record["result"], "Echo: x", "{record}");
    assert!(record.get("logs").is_none(), "the lines came as events");
    assert!(events.iter().all(|(_, d)| d["execution"] == json!(id)));
    // After the third event: the rest, again (it finished; its events are kept).
    let last = format!("{id}/2");
    let rest = sse(port, &path, &[("Last-Event-ID", &last)], "finished", None);
    assert_eq!(
        rest.first().map(|(_, d)| d["seq"].clone()),
        Some(json!(3)),
        "{rest:?}"
    );
    assert_eq!(rest.len(), 5);
    let seen = all.join().unwrap();
    assert_eq!(seen.last().unwrap().1["execution"], json!(id), "{seen:?}");
    assert_eq!(seen.len(), 8, "{seen:?}");
    // Not an execution of this node: 404 with where the record is.
    let (status, missing) = request(port, "GET", "/v1/executions/nope/events", "", &[]);
    assert_eq!(status, 404, "{missing}");
}

/// Tokens have roles: a viewer's reads, an operator's also runs scripts (and `/mcp`); the
/// journal records which token started an execution and which decided an approval.
#[test]
fn tokens_have_roles_and_the_journal_records_which_token_acted() {
    const VIEWER: &str = "viewer-secret-0123456789";
    const OPERATOR: &str = "operator-secret-0123456789";
    let p = Project::new().with_isola(json!({"tokens": {
        "watcher": {"token": VIEWER, "role": "viewer"},
        "ops": {"token": OPERATOR, "role": "operator"}
    }}));
    let s = serve(&p, &[]);
    let bearer = |t: &str| format!("Bearer {t}");
    let (viewer, operator) = (bearer(VIEWER), bearer(OPERATOR));
    let as_viewer = [("Authorization", viewer.as_str())];
    let as_operator = [("Authorization", operator.as_str())];
    let run = json!({"code": "return 1"}).to_string();

    let (status, _) = request(s.port, "GET", "/v1/executions", "", &[]);
    assert_eq!(status, 401, "no token, no answer");
    let (status, list) = request(s.port, "GET", "/v1/executions", "", &as_viewer);
    assert_eq!(status, 200, "{list}");
    let (status, refused) = request(s.port, "POST", "/v1/executions", &run, &as_viewer);
    assert_eq!(
        (status, &refused["error"]["kind"]),
        (403, &json!("forbidden")),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`watcher` is a viewer's") && message.contains("operator"),
        "{message}"
    );
    let (status, _) = request(
        s.port,
        "POST",
        "/mcp",
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        &[
            ("Authorization", viewer.as_str()),
            ("Accept", "application/json, text/event-stream"),
        ],
    );
    assert_eq!(status, 403, "/mcp runs scripts: not a viewer's");

    let (status, ran) = request(s.port, "POST", "/v1/executions", &run, &as_operator);
    assert_eq!(status, 200, "{ran}");
    let id = ran["execution"].as_str().unwrap();
    let (_, shown) = request(
        s.port,
        "GET",
        &format!("/v1/executions/{id}"),
        "",
        &as_viewer,
    );
    assert_eq!(shown["origin"], "http:ops", "{shown}");
    let (_, doc) = request(s.port, "GET", "/v1/openapi.json", "", &as_viewer);
    assert_eq!(
        doc["paths"]["/v1/executions"]["post"]["x-isola-role"],
        "operator"
    );
}

/// The web UI's files are served without a token (they hold no data), under a strict
/// Content-Security-Policy; the API behind them still wants the token.
#[test]
fn the_web_ui_is_served_without_a_token_under_a_strict_policy() {
    let p = Project::new();
    let s = serve(&p, &["--token", "sesame-sesame-sesame"]);
    let head = |path: &str| {
        let mut stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            s.port
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.to_ascii_lowercase()
    };
    let index = head("/");
    assert!(index.starts_with("http/1.1 200"), "{index}");
    assert!(index.contains("content-type: text/html"), "{index}");
    assert!(
        index.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{index}"
    );
    assert!(index.contains("x-frame-options: deny"), "{index}");
    assert!(index.contains("/ui/app.js"), "{index}");
    let app = head("/ui/app.js");
    assert!(
        app.starts_with("http/1.1 200") && app.contains("text/javascript"),
        "{app}"
    );
    assert!(head("/ui/nope.js").starts_with("http/1.1 404"));
    let (status, _) = request(s.port, "POST", "/", "{}", &[]);
    assert_eq!(status, 405);
    let (status, _) = request(s.port, "GET", "/v1/health", "", &[]);
    assert_eq!(status, 401, "the API still wants the token");
    let (status, _) = request(s.port, "GET", "/", "", &[("Host", "evil.example")]);
    assert_eq!(status, 403, "the Host check holds for the UI too");
}

/// `POST /v1/runs`: Isola's agent against the scripted LLM server; its text, scripts and their
/// outcomes stream as events; the chat goes on with its earlier turns; a bad model is a clear
/// error.
#[test]
fn an_agent_run_streams_its_steps_and_its_chat_goes_on() {
    use isola_llm_mock::{MockServer, Step};
    let llm = MockServer::start(vec![
        Step::call(
            "execute",
            json!({"code": "console.log('looking'); return await everything.echo({ message: 'hi' })"}),
        ),
        Step::text("The server said: Echo: hi"),
        Step::text("Still Echo: hi"),
    ])
    .unwrap();
    let p = Project::new();
    let base = llm.openai_base();
    let s = serve_http_with(
        p.path(),
        "serve",
        &[],
        &[("OPENAI_BASE_URL", &base), ("OPENAI_API_KEY", "sk-test")],
    );
    let body =
        json!({"prompt": "Say hi through the server", "model": "openai:gpt-test", "wait": false});
    let (status, started) = request(s.port, "POST", "/v1/runs", &body.to_string(), &[]);
    assert_eq!(status, 202, "{started}");
    let chat = started["chat"].as_str().unwrap().to_string();
    let events = sse(
        s.port,
        started["events"].as_str().unwrap(),
        &[],
        "finished",
        None,
    );
    let of = |kind: &'static str| {
        events
            .iter()
            .filter(move |(k, _)| k == kind)
            .map(|(_, d)| d)
    };
    let code = of("execution").next().expect("an execution event")["code"].clone();
    assert!(code.as_str().unwrap().contains("everything.echo"), "{code}");
    let done = of("done").next().expect("a done event");
    assert_eq!(done["ok"], true, "{done}");
    let text: String = of("text").filter_map(|d| d["text"].as_str()).collect();
    assert!(text.contains("Echo: hi"), "{text}");
    let transcript = &of("finished").next().unwrap()["transcript"];
    assert_eq!(
        transcript["answer"], "The server said: Echo: hi",
        "{transcript}"
    );
    assert!(
        transcript.get("messages").is_none(),
        "the chat keeps the conversation"
    );

    // The next turn of the chat: the model gets the earlier ones.
    let body = json!({"prompt": "And again?", "model": "openai:gpt-test", "chat": chat});
    let (status, second) = request(s.port, "POST", "/v1/runs", &body.to_string(), &[]);
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["transcript"]["answer"], "Still Echo: hi", "{second}");
    assert_eq!(second["chat"], json!(chat));
    let last = llm.requests().last().unwrap().body.to_string();
    assert!(
        last.contains("Say hi through the server") && last.contains("And again?"),
        "{last}"
    );

    // The calls to the model count in the usage, by model.
    let (_, usage) = request(s.port, "GET", "/v1/usage?days=1", "", &[]);
    let model = &usage["models"]["byModel"][0];
    assert_eq!(model["model"], "gpt-test", "{usage}");
    assert_eq!(
        model["calls"], 3,
        "two calls for the first turn, one for the second: {usage}"
    );
    assert!(model["inputTokens"].as_i64().unwrap() > 0, "{usage}");
    assert_eq!(usage["models"]["byDay"][0]["calls"], 3, "{usage}");

    let body = json!({"prompt": "x", "model": "nosuch:model"});
    let (status, bad) = request(s.port, "POST", "/v1/runs", &body.to_string(), &[]);
    assert_eq!(
        (status, &bad["error"]["kind"]),
        (400, &json!("agent")),
        "{bad}"
    );
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("nosuch"),
        "{bad}"
    );
}

/// `/v1/plans`: a script with a destructive change is planned (nothing changed), waits for
/// approval, cannot be applied before it, is approved through `/v1/approvals`, then applied
/// (every change sent, no drift), and only once.
#[test]
fn a_plan_is_made_approved_and_applied_through_the_api() {
    let p =
        Project::new().with_isola(json!({"effects": {"fs": {"create_directory": "destructive"}}}));
    let s = serve(&p, &[]);
    let (dir, file) = (p.data().join("planned"), p.data().join("planned/note.txt"));
    let code = format!(
        "await fs.createDirectory({{ path: {:?} }});\nawait fs.writeFile({{ path: {:?}, content: 'n' }});\nreturn 'done'",
        dir.display().to_string(),
        file.display().to_string()
    );
    let (status, made) = request(
        s.port,
        "POST",
        "/v1/plans",
        &json!({"code": code}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{made}");
    let plan = &made["plan"];
    assert_eq!(plan["status"], "pending", "{made}");
    assert_eq!(plan["steps"].as_array().map(Vec::len), Some(2), "{made}");
    assert_eq!(plan["steps"][0]["function"], "fs.createDirectory");
    assert!(!dir.exists(), "planning changed something");
    let id = plan["plan"].as_str().unwrap().to_string();
    let (_, list) = request(s.port, "GET", "/v1/plans", "", &[]);
    assert_eq!(list["plans"][0]["plan"], json!(id), "{list}");
    let (status, shown) = request(s.port, "GET", &format!("/v1/plans/{id}"), "", &[]);
    assert_eq!(
        (status, &shown["steps"][1]["uses"]),
        (200, &json!([])),
        "{shown}"
    );

    let apply = format!("/v1/plans/{id}/apply");
    let (status, early) = request(s.port, "POST", &apply, "", &[]);
    assert_eq!(
        (status, &early["error"]["kind"]),
        (409, &json!("conflict")),
        "{early}"
    );
    let (status, _) = request(
        s.port,
        "POST",
        &format!("/v1/approvals/{id}"),
        r#"{"approve": true}"#,
        &[],
    );
    assert_eq!(status, 200);
    let (status, applied) = request(s.port, "POST", &apply, "{}", &[]);
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["record"]["result"], "done", "{applied}");
    assert_eq!(
        (&applied["apply"]["applied"], &applied["apply"]["planned"]),
        (&json!(2), &json!(2)),
        "{applied}"
    );
    assert_eq!(applied["apply"]["drift"], json!([]));
    assert!(file.is_file());
    let (status, again) = request(s.port, "POST", &apply, "", &[]);
    assert_eq!(status, 409, "applied once: {again}");
}

/// `--rate-limit N`: a burst of 2N requests from one principal, then 429 (JSON, with the
/// reason) until its bucket refills.
#[test]
fn a_rate_limit_refuses_a_flood_with_429() {
    let p = Project::new();
    let s = serve(&p, &["--rate-limit", "1"]);
    for _ in 0..2 {
        let (status, _) = request(s.port, "GET", "/v1/health", "", &[]);
        assert_eq!(status, 200);
    }
    let (status, refused) = request(s.port, "GET", "/v1/health", "", &[]);
    assert_eq!(
        (status, &refused["error"]["kind"]),
        (429, &json!("rate_limited")),
        "{refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`local`"),
        "{refused}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    let (status, _) = request(s.port, "GET", "/v1/health", "", &[]);
    assert_eq!(status, 200, "refilled");
}

/// Approving with `session: true` grants the function's later calls in that session: the next
/// one is not held; once the grant is revoked, the one after is held again.
#[test]
fn a_session_grant_approves_later_calls_until_it_is_revoked() {
    let p =
        Project::new().with_isola(json!({"effects": {"fs": {"create_directory": "destructive"}}}));
    let s = serve(&p, &[]);
    let port = s.port;
    let make = |name: &str, wait: bool| {
        let dir = p.data().join(name).display().to_string();
        json!({"code": format!("await fs.createDirectory({{ path: {dir:?} }}); return 'made'"), "session": "ops", "wait": wait}).to_string()
    };
    let pending = || {
        let until = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, list) = request(port, "GET", "/v1/approvals", "", &[]);
            if let Some(id) = list["approvals"][0]["id"].as_str() {
                break id.to_string();
            }
            assert!(std::time::Instant::now() < until, "no approval request");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (status, _) = request(port, "POST", "/v1/executions", &make("one", false), &[]);
    assert_eq!(status, 202);
    let (status, decided) = request(
        port,
        "POST",
        &format!("/v1/approvals/{}", pending()),
        r#"{"approve": true, "session": true, "reason": "all of today's"}"#,
        &[],
    );
    assert_eq!(status, 200, "{decided}");
    assert_eq!(
        decided["grant"]["function"], "fs.createDirectory",
        "{decided}"
    );
    let (_, grants) = request(port, "GET", "/v1/grants?session=ops", "", &[]);
    let grant = grants["grants"][0]["id"].as_str().unwrap().to_string();
    // Granted: not held.
    let (status, ran) = request(port, "POST", "/v1/executions", &make("two", true), &[]);
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["record"]["result"], "made", "{ran}");
    assert!(p.data().join("two").is_dir());
    let (status, _) = request(port, "DELETE", &format!("/v1/grants/{grant}"), "", &[]);
    assert_eq!(status, 200);
    let (status, _) = request(port, "POST", "/v1/executions", &make("three", false), &[]);
    assert_eq!(status, 202);
    pending();
    assert!(!p.data().join("three").exists(), "held again once revoked");
    // A deny cannot grant.
    let (status, bad) = request(
        port,
        "POST",
        &format!("/v1/approvals/{}", pending()),
        r#"{"approve": false, "session": true}"#,
        &[],
    );
    assert_eq!(status, 400, "{bad}");
}

/// Tokens kept in the store (`isola tokens`, `/v1/tokens` for admins): taken by the server
/// besides the config's, their secret shown once and kept only as a hash, revoked within
/// seconds; only an admin manages them.
#[test]
fn tokens_kept_in_the_store_are_made_used_and_revoked() {
    const BOSS: &str = "boss-secret-0123456789";
    let p =
        Project::new().with_isola(json!({"tokens": {"boss": {"token": BOSS, "role": "admin"}}}));
    let made = p.isola(&["tokens", "add", "ci", "--role", "operator", "--json"]);
    assert_eq!(made.code(), 0, "{}", made.stderr());
    let ci = made.json()["token"].as_str().unwrap().to_string();
    assert!(ci.starts_with("isola_") && ci.len() > 40, "{ci}");
    let s = serve(&p, &[]);
    let bearer = |t: &str| format!("Bearer {t}");
    let (ci_auth, boss_auth) = (bearer(&ci), bearer(BOSS));
    let as_ci = [("Authorization", ci_auth.as_str())];
    let as_boss = [("Authorization", boss_auth.as_str())];

    let (status, ran) = request(
        s.port,
        "POST",
        "/v1/executions",
        r#"{"code": "return 1"}"#,
        &as_ci,
    );
    assert_eq!(status, 200, "{ran}");
    let (status, _) = request(s.port, "GET", "/v1/tokens", "", &as_ci);
    assert_eq!(status, 403, "tokens are an admin's");

    let (status, watch) = request(
        s.port,
        "POST",
        "/v1/tokens",
        r#"{"name": "watch", "role": "viewer"}"#,
        &as_boss,
    );
    assert_eq!(status, 201, "{watch}");
    let watch_auth = bearer(watch["token"].as_str().unwrap());
    let as_watch = [("Authorization", watch_auth.as_str())];
    let (status, _) = request(s.port, "GET", "/v1/executions", "", &as_watch);
    assert_eq!(status, 200, "taken at once on the node that made it");
    let (status, _) = request(
        s.port,
        "POST",
        "/v1/executions",
        r#"{"code": "1"}"#,
        &as_watch,
    );
    assert_eq!(status, 403, "a viewer's");
    let (_, list) = request(s.port, "GET", "/v1/tokens", "", &as_boss);
    let text = list.to_string();
    assert!(
        text.contains("\"watch\"") && text.contains("\"ci\""),
        "{text}"
    );
    assert!(
        !text.contains("isola_") && !text.contains("sha256"),
        "a secret or hash shown: {text}"
    );

    // Revoked from the CLI: the server refuses it once it reloads (every 2 s).
    let revoked = p.isola(&["tokens", "revoke", "ci"]);
    assert_eq!(revoked.code(), 0, "{}", revoked.stderr());
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = request(s.port, "GET", "/v1/health", "", &as_ci);
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "still taken 20 s after its revocation"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = request(s.port, "DELETE", "/v1/tokens/watch", "", &as_boss);
    assert_eq!(status, 200);
    let (status, _) = request(s.port, "GET", "/v1/health", "", &as_watch);
    assert_eq!(status, 401, "revoked through the API: at once");
    let (status, _) = request(s.port, "GET", "/v1/health", "", &[]);
    assert_eq!(
        status, 401,
        "a server that started with tokens never becomes open"
    );
}
