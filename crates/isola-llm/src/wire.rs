//! One HTTP call to one model: the request in the provider's wire format, the response (a JSON
//! body or a server-sent event stream) back in ours. No retries here: see [`crate::Gateway`].

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::error::CallError;
use crate::provider::{ProviderKind, Route};
use crate::types::{ChatRequest, ChatResponse};
use crate::{anthropic, gemini, openai};

/// What a stream parser wants after an event.
pub enum StreamStep {
    More,
    /// The format's end marker (`[DONE]`, `message_stop`): stop reading.
    Done,
}

pub fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub fn u64_at(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// The message of a provider's error body, whatever its shape.
pub fn error_message(v: &Value) -> String {
    for p in ["/error/message", "/error", "/message", "/detail"] {
        if let Some(s) = str_at(v, p) {
            return s.to_string();
        }
    }
    clip(&v.to_string(), 500)
}

/// The HTTP status an error body stands for, when it says: a numeric `code` (llama.cpp, Gemini,
/// vLLM), else a known error type (Anthropic's `overloaded_error`, OpenAI's `server_error`,
/// Gemini's `UNAVAILABLE`...).
pub fn error_status(v: &Value) -> Option<u16> {
    let e = v.get("error").filter(|e| e.is_object()).unwrap_or(v);
    let code = e.get("code");
    if let Some(n) = code
        .and_then(Value::as_u64)
        .or_else(|| code.and_then(Value::as_str).and_then(|s| s.parse().ok()))
        && (100..600).contains(&n)
    {
        return u16::try_from(n).ok();
    }
    let names = [
        str_at(e, "/type"),
        str_at(e, "/status"),
        code.and_then(Value::as_str),
    ];
    names.into_iter().flatten().find_map(|name| match name {
        "overloaded_error" => Some(529),
        "api_error" | "server_error" | "internal_error" | "INTERNAL" => Some(500),
        "UNAVAILABLE" | "service_unavailable" => Some(503),
        "timeout_error" | "DEADLINE_EXCEEDED" => Some(504),
        "rate_limit_error" | "rate_limit_exceeded" | "RESOURCE_EXHAUSTED" => Some(429),
        _ => None,
    })
}

/// A provider's error inside a stream.
pub fn stream_error(v: &Value) -> CallError {
    CallError::StreamError {
        status: error_status(v),
        message: error_message(v),
    }
}

/// A stream chunk that is not JSON.
pub fn bad_chunk(e: &serde_json::Error, data: &str) -> CallError {
    CallError::Protocol(format!(
        "a stream chunk is not JSON ({e}): {}",
        clip(data, 300)
    ))
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

enum Parser {
    OpenAi(openai::Stream),
    Anthropic(anthropic::Stream),
    Gemini(gemini::Stream),
}

impl Parser {
    fn new(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::OpenAi => Parser::OpenAi(Default::default()),
            ProviderKind::Anthropic => Parser::Anthropic(Default::default()),
            ProviderKind::Gemini => Parser::Gemini(Default::default()),
        }
    }

    fn event(
        &mut self,
        event: Option<&str>,
        data: &str,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<StreamStep, CallError> {
        match self {
            Parser::OpenAi(s) => s.event(event, data, on_text),
            Parser::Anthropic(s) => s.event(event, data, on_text),
            Parser::Gemini(s) => s.event(event, data, on_text),
        }
    }

    fn finish(self) -> Result<ChatResponse, String> {
        match self {
            Parser::OpenAi(s) => s.finish(),
            Parser::Anthropic(s) => s.finish(),
            Parser::Gemini(s) => s.finish(),
        }
    }
}

/// The output-token cap a request to `route` carries: the request's own, else the provider's.
pub fn max_output_tokens(route: &Route, req: &ChatRequest) -> u32 {
    req.max_output_tokens
        .unwrap_or(route.provider.limits.max_output_tokens)
}

/// The URL and body of a request.
pub fn request(route: &Route, req: &ChatRequest, stream: bool) -> (String, Value) {
    let base = &route.provider.base_url;
    let max = max_output_tokens(route, req);
    match route.provider.kind {
        ProviderKind::OpenAi => (
            openai::url(base),
            openai::body(req, &route.model, stream, max),
        ),
        ProviderKind::Anthropic => (
            anthropic::url(base),
            anthropic::body(req, &route.model, stream, max),
        ),
        ProviderKind::Gemini => (
            gemini::url(base, &route.model, stream),
            gemini::body(req, max),
        ),
    }
}

/// How long one call may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// The whole response when not streamed; the response head when streamed.
    pub request: Duration,
    /// The longest silence between two events of a stream.
    pub idle: Duration,
}

/// Parse a complete (non-streamed) response body.
pub fn parse(kind: ProviderKind, body: &Value) -> Result<ChatResponse, String> {
    match kind {
        ProviderKind::OpenAi => openai::parse(body),
        ProviderKind::Anthropic => anthropic::parse(body),
        ProviderKind::Gemini => gemini::parse(body),
    }
}

/// Send one request and read the whole answer. Text is passed to `on_text` as it streams in.
/// Not streamed, the whole response must arrive within `timeouts.request`; streamed, its head
/// must, and then no two events may be further apart than `timeouts.idle`.
pub async fn call(
    http: &reqwest::Client,
    route: &Route,
    req: &ChatRequest,
    stream: bool,
    timeouts: Timeouts,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Result<ChatResponse, CallError> {
    let provider = &route.provider;
    let (url, body) = request(route, req, stream);
    let mut builder = http.post(&url).json(&body);
    if let Some(key) = &provider.api_key {
        builder = match provider.kind {
            ProviderKind::OpenAi => builder.bearer_auth(key),
            ProviderKind::Anthropic => builder.header("x-api-key", key),
            ProviderKind::Gemini => builder.header("x-goog-api-key", key),
        };
    }
    if provider.kind == ProviderKind::Anthropic {
        builder = builder.header("anthropic-version", anthropic::VERSION);
    }
    for (k, v) in &provider.headers {
        builder = builder.header(k, v);
    }
    tracing::debug!(%url, model = %route.model, stream, "LLM request");
    let deadline = tokio::time::Instant::now() + timeouts.request;
    let response = match tokio::time::timeout_at(deadline, builder.send()).await {
        Err(_) => return Err(CallError::Timeout(timeouts.request)),
        Ok(Err(e)) if e.is_timeout() => return Err(CallError::Timeout(timeouts.request)),
        Ok(Err(e)) => return Err(CallError::Connect(error_chain(&e))),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if !status.is_success() {
        let retry_after = retry_after(response.headers());
        let text = tokio::time::timeout(
            timeouts.request.min(Duration::from_secs(30)),
            response.text(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
        let message = match serde_json::from_str::<Value>(&text) {
            Ok(v) => error_message(&v),
            Err(_) if text.trim().is_empty() => {
                status.canonical_reason().unwrap_or("error").to_string()
            }
            Err(_) => clip(text.trim(), 500),
        };
        return Err(CallError::Status {
            status: status.as_u16(),
            message,
            retry_after,
        });
    }
    let is_sse = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !(stream && is_sse) {
        // Not streamed (or a server that ignored `stream: true`): one JSON body, due by the
        // same deadline as the head.
        let bytes = match tokio::time::timeout_at(deadline, response.bytes()).await {
            Err(_) => return Err(CallError::Timeout(timeouts.request)),
            Ok(Err(e)) => {
                return Err(CallError::StreamCut {
                    events: 0,
                    message: error_chain(&e),
                });
            }
            Ok(Ok(b)) => b,
        };
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            CallError::Protocol(format!(
                "the body is not JSON ({e}): {}",
                clip(&String::from_utf8_lossy(&bytes), 300)
            ))
        })?;
        let answer = parse(provider.kind, &value).map_err(CallError::Protocol)?;
        if !answer.text.is_empty() {
            on_text(&answer.text);
        }
        return Ok(answer);
    }
    let mut events = sse_stream::SseStream::from_bytes_stream(response.bytes_stream());
    let mut parser = Parser::new(provider.kind);
    let mut count = 0usize;
    loop {
        let next = match tokio::time::timeout(timeouts.idle, events.next()).await {
            Err(_) => {
                return Err(CallError::Idle {
                    after: timeouts.idle,
                    events: count,
                });
            }
            Ok(n) => n,
        };
        match next {
            None => break,
            Some(Err(e)) => {
                return Err(CallError::StreamCut {
                    events: count,
                    message: sse_error(e),
                });
            }
            Some(Ok(event)) => {
                let Some(data) = event.data else { continue };
                count += 1;
                match parser.event(event.event.as_deref(), &data, on_text)? {
                    StreamStep::More => {}
                    StreamStep::Done => break,
                }
            }
        }
    }
    parser.finish().map_err(|message| CallError::StreamCut {
        events: count,
        message,
    })
}

fn sse_error(e: sse_stream::Error) -> String {
    match e {
        sse_stream::Error::Body(inner) => {
            let mut s = inner.to_string();
            let mut source = inner.source();
            while let Some(c) = source {
                s.push_str(&format!(": {c}"));
                source = c.source();
            }
            s
        }
        other => other.to_string(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(&format!(": {c}"));
        source = c.source();
    }
    s
}

/// `Retry-After` in seconds (integer or decimal) or as an HTTP-date, or `retry-after-ms`.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(
            ms.clamp(0.0, 86_400_000.0) / 1000.0,
        ));
    }
    parse_retry_after(get("retry-after")?, std::time::SystemTime::now())
}

/// A `Retry-After` value: delay-seconds, or an HTTP-date (a date already past means now).
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.clamp(0.0, 86_400.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The models a provider serves (`GET {base}/models` for OpenAI-compatible servers,
/// `{base}/v1/models` for Anthropic, `{base}/v1beta/models` for Gemini), by id.
pub async fn list_models(
    provider: &crate::Provider,
    timeout: Duration,
) -> Result<Vec<String>, CallError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| CallError::Connect(error_chain(&e)))?;
    let base = &provider.base_url;
    let url = match provider.kind {
        ProviderKind::OpenAi => format!("{base}/models"),
        ProviderKind::Anthropic => {
            format!("{}/v1/models", base.strip_suffix("/v1").unwrap_or(base))
        }
        ProviderKind::Gemini => format!(
            "{}/v1beta/models",
            base.strip_suffix("/v1beta").unwrap_or(base)
        ),
    };
    let mut builder = http.get(&url);
    if let Some(key) = &provider.api_key {
        builder = match provider.kind {
            ProviderKind::OpenAi => builder.bearer_auth(key),
            ProviderKind::Anthropic => builder
                .header("x-api-key", key)
                .header("anthropic-version", anthropic::VERSION),
            ProviderKind::Gemini => builder.header("x-goog-api-key", key),
        };
    }
    let response = match tokio::time::timeout(timeout, builder.send()).await {
        Err(_) => return Err(CallError::Timeout(timeout)),
        Ok(Err(e)) => return Err(CallError::Connect(error_chain(&e))),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    let text = tokio::time::timeout(timeout, response.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(CallError::Status {
            status: status.as_u16(),
            message: error_message(&value),
            retry_after: None,
        });
    }
    let items = value
        .get("data")
        .or_else(|| value.get("models"))
        .and_then(Value::as_array);
    Ok(items
        .into_iter()
        .flatten()
        .filter_map(|m| str_at(m, "/id").or_else(|| str_at(m, "/name")))
        .map(|id| id.strip_prefix("models/").unwrap_or(id).to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::parse_retry_after;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
            .unwrap_or(SystemTime::UNIX_EPOCH);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date already past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
