//! A scripted LLM server for tests and benchmarks: it speaks the OpenAI Chat Completions,
//! Anthropic Messages and Gemini `generateContent` wire formats (streamed as server-sent events
//! or not) on `127.0.0.1`, and answers each request with the next [`Step`] of a script,
//! whatever the request says. It records every request it gets, so a test can check what the
//! client sent, and reports usage the way a real provider does: the prompt tokens of the
//! request it received and the tokens of the answer, counted with `isola-tokens`.
//!
//! Faults are steps too: an HTTP status with `Retry-After` ([`Step::status`]), a stream cut
//! after a number of events ([`Step::cut_after`]), a tool call whose arguments are not JSON
//! ([`Step::raw_call`]), a slow answer ([`Step::delay_ms`]). So are the ways of a local server
//! such as llama.cpp's: a failed generation reported inside the stream as
//! `{"error": {"code": 500, ...}}` (and as that HTTP status when not streamed,
//! [`Step::stream_error`]), an answer cut at the output-token limit ([`Step::finish`] with
//! `"length"`), a long silence while it generates a tool call ([`Step::silence_ms`]), and
//! several identical calls in one answer ([`Step::repeated`]).
//!
//! ```
//! use isola_llm_mock::{MockServer, Step};
//! use serde_json::json;
//!
//! let server = MockServer::start(vec![
//!     Step::status(429).retry_after("1"),
//!     Step::call("execute", json!({"code": "return 1 + 1"})),
//!     Step::text("The answer is 2."),
//! ]).unwrap();
//! // OPENAI_BASE_URL={server.openai_base()}  ANTHROPIC_BASE_URL={server.url()}
//! assert!(server.openai_base().starts_with("http://127.0.0.1:"));
//! assert_eq!(server.remaining(), 3);
//! ```
//!
//! It is a test fixture: plain HTTP/1.1, one request per connection, no TLS.

mod http;
mod render;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One scripted answer (or fault).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    /// The answer's text.
    pub text: String,
    /// Tool calls, in order.
    pub tool_calls: Vec<ScriptedCall>,
    /// Answer with this HTTP status and an error body in the request's format instead.
    pub status: Option<u16>,
    /// The `Retry-After` header of a status answer.
    pub retry_after: Option<String>,
    /// Streamed: send this many events, then drop the connection without the end marker. Not
    /// streamed: send half the body, then drop the connection.
    pub cut_after: Option<usize>,
    /// Input tokens reported as cached.
    pub cached_tokens: u64,
    /// Wait this long before answering.
    pub delay_ms: u64,
    /// The finish reason, in OpenAI's words (`stop`, `tool_calls`, `length`...; Anthropic's and
    /// Gemini's are mapped: `length` is `max_tokens` and `MAX_TOKENS`). By default `tool_calls`
    /// when there are calls, else `stop`.
    pub finish: Option<String>,
    /// Streamed: after the text, an error event carrying this code (llama.cpp's
    /// `data: {"error": {"code": 500, ...}}`, Anthropic's `error` event, Gemini's error chunk)
    /// ends the stream. Not streamed: this HTTP status, as the same server answers then.
    pub stream_error: Option<u16>,
    /// Streamed: after the text, this long without an event before the tool calls (or the
    /// finish), as llama.cpp holds the deltas back while its parser decides. Not streamed: a
    /// wait before answering.
    pub silence_ms: u64,
}

/// One tool call of a [`Step`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCall {
    pub name: String,
    /// An object is sent as its JSON text; a string is sent as it is (so it may be malformed).
    pub arguments: Value,
}

impl ScriptedCall {
    /// The arguments as the wire carries them.
    pub fn arguments_text(&self) -> String {
        match &self.arguments {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl Step {
    pub fn text(text: impl Into<String>) -> Self {
        Step {
            text: text.into(),
            ..Default::default()
        }
    }

    pub fn call(name: &str, arguments: Value) -> Self {
        Step::default().and_call(name, arguments)
    }

    /// A call whose arguments are sent exactly as given (malformed JSON included).
    pub fn raw_call(name: &str, arguments: &str) -> Self {
        Step::default().and_call(name, Value::String(arguments.to_string()))
    }

    pub fn and_call(mut self, name: &str, arguments: Value) -> Self {
        self.tool_calls.push(ScriptedCall {
            name: name.to_string(),
            arguments,
        });
        self
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    pub fn status(status: u16) -> Self {
        Step {
            status: Some(status),
            ..Default::default()
        }
    }

    pub fn retry_after(mut self, value: &str) -> Self {
        self.retry_after = Some(value.to_string());
        self
    }

    pub fn cut_after(mut self, events: usize) -> Self {
        self.cut_after = Some(events);
        self
    }

    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = ms;
        self
    }

    pub fn cached_tokens(mut self, n: u64) -> Self {
        self.cached_tokens = n;
        self
    }

    /// The finish reason in OpenAI's words (`"length"`: cut at the output-token limit).
    pub fn finish(mut self, reason: &str) -> Self {
        self.finish = Some(reason.to_string());
        self
    }

    /// An error event with `code` inside the stream (that HTTP status when not streamed).
    pub fn stream_error(code: u16) -> Self {
        Step {
            stream_error: Some(code),
            ..Default::default()
        }
    }

    pub fn silence_ms(mut self, ms: u64) -> Self {
        self.silence_ms = ms;
        self
    }

    /// The step's tool calls, `n` times over: identical parallel calls in one answer.
    pub fn repeated(mut self, n: usize) -> Self {
        let once = std::mem::take(&mut self.tool_calls);
        for _ in 0..n {
            self.tool_calls.extend(once.iter().cloned());
        }
        self
    }
}

/// The wire format of a request, from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    OpenAi,
    Anthropic,
    Gemini,
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`null` when there was none or it was not JSON).
    pub body: Value,
    pub format: Option<Format>,
    pub stream: bool,
    /// The prompt tokens reported back as usage.
    pub prompt_tokens: u64,
    /// The step that answered it (`None` past the end of the script).
    pub step: Option<Step>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `model` of the request (in the body, or Gemini's path).
    pub fn model(&self) -> Option<String> {
        if let Some(m) = self.body.get("model").and_then(Value::as_str) {
            return Some(m.to_string());
        }
        let rest = self.path.split("/models/").nth(1)?;
        Some(rest.split(':').next()?.to_string())
    }
}

#[derive(Default)]
struct State {
    steps: VecDeque<Step>,
    requests: Vec<Recorded>,
}

/// The running server. Stops when dropped.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    /// Listen on `127.0.0.1` (a free port) and serve `steps` in order, on a thread of its own.
    pub fn start(steps: Vec<Step>) -> std::io::Result<MockServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            steps: steps.into(),
            requests: Vec::new(),
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("isola-llm-mock".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    http::serve(listener, shared, stopped).await;
                });
            })?;
        Ok(MockServer {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: the Anthropic and Gemini base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`: the OpenAI base URL.
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Append steps to the script.
    pub fn push(&self, steps: impl IntoIterator<Item = Step>) {
        if let Ok(mut s) = self.state.lock() {
            s.steps.extend(steps);
        }
    }

    /// Steps not yet served.
    pub fn remaining(&self) -> usize {
        self.state.lock().map(|s| s.steps.len()).unwrap_or(0)
    }

    /// The requests received so far (model calls only; `GET /models` is not recorded).
    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Prompt tokens of a request as a provider would count them: the text of every message, the
/// system prompt and the tool definitions, plus a few tokens of framing per message.
pub fn prompt_tokens(body: &Value) -> u64 {
    let mut text = String::new();
    let mut messages = 0u64;
    for key in ["system", "systemInstruction"] {
        if let Some(v) = body.get(key) {
            collect_text(v, &mut text);
            messages += 1;
        }
    }
    for key in ["messages", "contents"] {
        for m in body
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect_text(m, &mut text);
            messages += 1;
        }
    }
    if let Some(tools) = body.get("tools") {
        text.push_str(&tools.to_string());
    }
    isola_tokens::count_tokens(&text) as u64 + 4 * messages
}

/// Keys that frame a message rather than carry its text.
const STRUCTURAL: &[&str] = &[
    "role",
    "type",
    "id",
    "tool_call_id",
    "tool_use_id",
    "is_error",
];

fn collect_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    (k, _) if STRUCTURAL.contains(&k) => {}
                    // Tool-call arguments given as objects (Anthropic, Gemini) count as their text.
                    ("input" | "args", Value::Object(_)) => {
                        out.push_str(&v.to_string());
                        out.push('\n');
                    }
                    _ => collect_text(v, out),
                }
            }
        }
        _ => {}
    }
}

/// Tokens of an answer: its text and its tool calls.
pub fn completion_tokens(step: &Step) -> u64 {
    let mut n = isola_tokens::count_tokens(&step.text) as u64;
    for c in &step.tool_calls {
        n += isola_tokens::count_tokens(&c.name) as u64
            + isola_tokens::count_tokens(&c.arguments_text()) as u64;
    }
    n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_tokens_count_text_not_framing() {
        let hello = isola_tokens::count_tokens("hello\n") as u64;
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]});
        assert_eq!(prompt_tokens(&body), hello + 4);
        let with_id = json!({"messages": [{"role": "tool", "tool_call_id": "call_123456", "content": "hello"}]});
        assert_eq!(prompt_tokens(&with_id), hello + 4);
        let tools = json!({"messages": [], "tools": [{"name": "t"}]});
        assert_eq!(
            prompt_tokens(&tools),
            isola_tokens::count_tokens(r#"[{"name":"t"}]"#) as u64
        );
    }
}
