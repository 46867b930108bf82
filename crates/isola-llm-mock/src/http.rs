//! Just enough HTTP/1.1: read one request per connection, answer, close.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::render::{self, Usage};
use crate::{Format, Recorded, State, completion_tokens, prompt_tokens};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;

pub async fn serve(
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                if let Ok((socket, _)) = accepted {
                    tokio::spawn(handle(socket, state.clone()));
                }
            }
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request(socket: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn format_of(path: &str) -> Option<Format> {
    let path = path.split('?').next().unwrap_or(path);
    if path.ends_with("/chat/completions") {
        Some(Format::OpenAi)
    } else if path.ends_with("/messages") {
        Some(Format::Anthropic)
    } else if path.ends_with(":generateContent") || path.ends_with(":streamGenerateContent") {
        Some(Format::Gemini)
    } else {
        None
    }
}

async fn respond(socket: &mut TcpStream, status: u16, extra: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(body).await;
    let _ = socket.shutdown().await;
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn handle(mut socket: TcpStream, state: Arc<Mutex<State>>) {
    let Some(req) = read_request(&mut socket).await else {
        return;
    };
    if req.method == "GET" && req.path.ends_with("/models") {
        let body = json!({"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "isola-llm-mock"}]});
        respond(&mut socket, 200, &[], body.to_string().as_bytes()).await;
        return;
    }
    let format = format_of(&req.path);
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let stream = match format {
        Some(Format::Gemini) => req.path.contains(":streamGenerateContent"),
        _ => body.get("stream").and_then(Value::as_bool) == Some(true),
    };
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let prompt = prompt_tokens(&body);
    let (step, index) = {
        let Ok(mut s) = state.lock() else { return };
        let step = if format.is_some() {
            s.steps.pop_front()
        } else {
            None
        };
        s.requests.push(Recorded {
            method: req.method.clone(),
            path: req.path.clone(),
            headers: req.headers.clone(),
            body: body.clone(),
            format,
            stream,
            prompt_tokens: prompt,
            step: step.clone(),
            at: Instant::now(),
        });
        (step, s.requests.len())
    };
    let Some(format) = format else {
        let msg = json!({"error": {"message": format!("isola-llm-mock: no such endpoint: {} {}", req.method, req.path)}});
        respond(&mut socket, 404, &[], msg.to_string().as_bytes()).await;
        return;
    };
    let Some(step) = step else {
        let msg = render::error_body(
            format,
            500,
            &format!("isola-llm-mock: the script has no response left for request #{index}"),
        );
        respond(&mut socket, 500, &[], msg.to_string().as_bytes()).await;
        return;
    };
    if step.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
    }
    if !stream && step.silence_ms > 0 {
        tokio::time::sleep(Duration::from_millis(step.silence_ms)).await;
    }
    // A failed generation: an HTTP status when not streamed, an error event when streamed.
    if let Some(status) = step.status.or(step.stream_error.filter(|_| !stream)) {
        let msg = render::error_body(
            format,
            status,
            &format!("isola-llm-mock: scripted HTTP {status}"),
        );
        let extra: Vec<(&str, String)> = step
            .retry_after
            .iter()
            .map(|v| ("Retry-After", v.clone()))
            .collect();
        respond(&mut socket, status, &extra, msg.to_string().as_bytes()).await;
        return;
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            req.path
                .split("/models/")
                .nth(1)
                .and_then(|r| r.split(':').next())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "scripted".into());
    let usage = Usage {
        prompt,
        completion: completion_tokens(&step),
        cached: step.cached_tokens.min(prompt),
    };
    if !stream {
        let body = render::full(format, &step, &model, usage, index).to_string();
        match step.cut_after {
            Some(_) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body.as_bytes()[..body.len() / 2]).await;
                let _ = socket.flush().await;
            }
            None => respond(&mut socket, 200, &[], body.as_bytes()).await,
        }
        return;
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let (mut events, after_text) =
        render::events(format, &step, &model, usage, include_usage, index);
    if let Some(code) = step.stream_error {
        events.truncate(after_text);
        events.push(render::stream_error_event(format, code));
    }
    for (i, event) in events.into_iter().enumerate() {
        if i == after_text && step.silence_ms > 0 {
            tokio::time::sleep(Duration::from_millis(step.silence_ms)).await;
        }
        if step.cut_after == Some(i) {
            // Drop the connection without the terminating chunk: the body is incomplete.
            let _ = socket.flush().await;
            return;
        }
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            return;
        }
        let _ = socket.flush().await;
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let _ = socket.shutdown().await;
}
