//! Errors: of one HTTP call ([`CallError`]) and of a whole request after retries and fallbacks
//! ([`LlmError`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How one call to one model failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The provider answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        /// The provider's own message (`error.message`), or the start of the body.
        message: String,
        /// From `Retry-After` (seconds or an HTTP-date) or `retry-after-ms`.
        retry_after: Option<Duration>,
    },
    /// No response within the request timeout (the whole response when not streamed, its head
    /// when streamed).
    #[error("no answer within {} s (the request timeout)", .0.as_secs_f64())]
    Timeout(Duration),
    /// A streamed answer went silent for longer than the idle timeout.
    #[error("the stream went silent for {} s (the idle timeout) after {events} events", .after.as_secs_f64())]
    Idle { after: Duration, events: usize },
    /// The connection could not be made or broke before a response.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// A streamed answer ended before it was complete.
    #[error("the stream was cut after {events} events, before the answer was complete: {message}")]
    StreamCut { events: usize, message: String },
    /// The provider reported an error inside the stream: llama.cpp's and OpenAI's
    /// `{"error": {"code": 500, ...}}` chunk, Anthropic's `error` event, Gemini's error chunk.
    /// `status` is the HTTP status the error stands for, when it says (a numeric `code`, or an
    /// error type such as `overloaded_error` or `rate_limit_error`).
    #[error("the provider reported an error mid-stream{}: {message}", .status.map(|s| format!(" (code {s})")).unwrap_or_default())]
    StreamError {
        status: Option<u16>,
        message: String,
    },
    /// The response is not what the wire format says it should be.
    #[error("unreadable response: {0}")]
    Protocol(String),
}

/// Statuses worth another try: rate limits, server errors, timeouts and conflicts.
fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

impl CallError {
    /// Worth another try (same model after a pause, or the next in the chain): rate limits and
    /// server errors (as an HTTP status, or as a code inside a stream), request timeouts,
    /// connection failures.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Status { status, .. } => retryable_status(*status),
            CallError::StreamError {
                status: Some(status),
                ..
            } => retryable_status(*status),
            CallError::Timeout(_) | CallError::Connect(_) => true,
            CallError::StreamCut { .. }
            | CallError::Idle { .. }
            | CallError::StreamError { status: None, .. }
            | CallError::Protocol(_) => false,
        }
    }

    /// The HTTP status the failure carries (as a status, or as a code inside a stream).
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            CallError::StreamError { status, .. } => *status,
            _ => None,
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self.status() {
            Some(429) => Outcome::RateLimited,
            Some(s) if s >= 500 => Outcome::ServerError,
            _ => match self {
                CallError::Status { .. } => Outcome::Rejected,
                CallError::Timeout(_) => Outcome::Timeout,
                CallError::Idle { .. } => Outcome::IdleTimeout,
                CallError::Connect(_) => Outcome::ConnectError,
                CallError::StreamCut { .. } => Outcome::StreamCut,
                CallError::StreamError { .. } => Outcome::StreamError,
                CallError::Protocol(_) => Outcome::ProtocolError,
            },
        }
    }
}

/// How one recorded call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Ok,
    /// Answered from the response cache; no request was sent.
    Cached,
    RateLimited,
    ServerError,
    /// A 4xx other than 408, 409 and 429: the request (or key, or model name) is wrong.
    Rejected,
    /// No response (or, streamed, no response head) within the request timeout.
    Timeout,
    /// A stream silent for longer than the idle timeout.
    IdleTimeout,
    ConnectError,
    StreamCut,
    StreamError,
    ProtocolError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Cached => "cached",
            Outcome::RateLimited => "rateLimited",
            Outcome::ServerError => "serverError",
            Outcome::Rejected => "rejected",
            Outcome::Timeout => "timeout",
            Outcome::IdleTimeout => "idleTimeout",
            Outcome::ConnectError => "connectError",
            Outcome::StreamCut => "streamCut",
            Outcome::StreamError => "streamError",
            Outcome::ProtocolError => "protocolError",
        }
    }

    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Cached)
    }
}

/// Why a request to the models failed, or could not be made.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// `provider:model` names a provider that is neither built in nor configured.
    #[error(
        "unknown provider `{provider}` in the model name `{spec}`\nhint: use one of: {}; or define `{provider}` under isola.agent.providers in the config",
        known.join(", ")
    )]
    UnknownProvider {
        spec: String,
        provider: String,
        known: Vec<String>,
    },

    /// A bare model name whose provider cannot be guessed.
    #[error(
        "cannot tell which provider serves the model `{spec}`\nhint: write it as provider:model, e.g. openai:{spec} for an OpenAI-compatible server (providers: {})",
        known.join(", ")
    )]
    AmbiguousModel { spec: String, known: Vec<String> },

    /// A configured provider whose name is not a wire format and that has no `kind`.
    #[error(
        "the provider `{provider}` has no kind\nhint: set isola.agent.providers.{provider}.kind to \"openai\", \"anthropic\" or \"gemini\""
    )]
    ProviderKindMissing { provider: String },

    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),

    /// Every model of the chain failed (after retries where they help).
    #[error("{}", failure_text(.route, .error, .earlier))]
    Failed {
        /// The last model tried (`provider:model`).
        route: String,
        error: CallError,
        /// `provider:model: reason` of the models tried before it.
        earlier: Vec<String>,
    },
}

fn failure_text(route: &str, error: &CallError, earlier: &[String]) -> String {
    let mut s = format!("the model {route} failed: {error}");
    if !earlier.is_empty() {
        s.push_str(&format!(" (after: {})", earlier.join("; ")));
    }
    match error {
        CallError::Status { status: 401 | 403, .. } => {
            s.push_str("\nhint: check the API key (OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY, or the provider's apiKeyEnv)");
        }
        CallError::Status { status: 404, .. } => {
            s.push_str("\nhint: check the model name and the base URL (an OpenAI-compatible base URL usually ends in /v1)");
        }
        CallError::Connect(_) => s.push_str("\nhint: check the base URL (OPENAI_BASE_URL, ANTHROPIC_BASE_URL, GEMINI_BASE_URL or the provider's baseUrl)"),
        CallError::Status { status: 429, .. } => {
            s.push_str("\nhint: add a fallback model (--fallback or isola.agent.fallback) or raise isola.agent.retry.maxRetries")
        }
        CallError::Timeout(_) => s.push_str(
            "\nhint: a slow (local) server needs a longer request timeout: --timeout, isola.agent.timeoutMs or isola.agent.providers.NAME.timeoutMs; or stream the answer (a stream only has to keep talking)",
        ),
        CallError::Idle { .. } => s.push_str(
            "\nhint: a local server can be silent for minutes while it generates a tool call: raise the idle timeout (--idle-timeout, isola.agent.idleTimeoutMs or isola.agent.providers.NAME.idleTimeoutMs)",
        ),
        _ => {}
    }
    s
}
