//! The Streamable HTTP client side with the limits of the stdio side: [`BoundedClient`] wraps
//! reqwest's client so that an answer over a limit fails *its own call* with an error naming the
//! limit, as [`crate::stdio`] does, instead of taking the connection (and every call in flight
//! on it) down or waiting for a timeout.
//!
//! rmcp already reads at most 16 MiB of one JSON body or one SSE event, but what it does past
//! the limit depends on how the server answered: a JSON body fails the call with a transport
//! error, while an SSE event over the limit, or one nesting deeper than serde_json parses, ends
//! the stream and the connection. Here:
//!
//! - a JSON body over the size limit, or too deep to parse, becomes a refused-answer error for
//!   the request it answers ([`crate::stdio::oversized`] reads it back);
//! - an SSE event over the size limit does the same and ends that response's stream;
//! - an SSE event nesting too deep is replaced by a refused-answer error naming its depth
//!   (a `tools/list` answer instead has its deep parts pruned, so the hub refuses only the tools
//!   that are too deep, by name).

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, RequestId, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use serde_json::{Value, json};
use sse_stream::Sse;

use crate::framing::{self, MAX_MESSAGE_BYTES, PARSE_DEPTH};
use crate::stdio::{REFUSED_CODE, REFUSED_KEY, TOOLS_LIST_KEEP_DEPTH, size_text};

/// Redirects followed for one request (same origin, 307/308 only).
const MAX_REDIRECTS: usize = 10;

/// reqwest's client, answering over-limit responses as refused answers (see the module docs).
#[derive(Clone)]
pub struct BoundedClient {
    inner: reqwest::Client,
}

impl BoundedClient {
    /// The client rmcp would make (no idle pooling, same-origin 307/308 redirects only, so a
    /// redirect never replays the session and the configured headers to another host).
    pub fn new() -> Result<Self, String> {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let keeps_body = matches!(
                attempt.status(),
                reqwest::StatusCode::TEMPORARY_REDIRECT | reqwest::StatusCode::PERMANENT_REDIRECT
            );
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if !keeps_body || !same_origin {
                attempt.stop()
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                attempt.follow()
            }
        });
        let inner = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(redirects)
            .build()
            .map_err(|error| format!("could not set up the HTTP client: {error}"))?;
        Ok(Self { inner })
    }
}

/// The request a client message is, if it is one that gets an answer.
fn request_of(message: &ClientJsonRpcMessage) -> Option<(RequestId, bool)> {
    match message {
        ClientJsonRpcMessage::Request(request) => Some((
            request.id.clone(),
            matches!(request.request, ClientRequest::ListToolsRequest(_)),
        )),
        _ => None,
    }
}

/// The error answer Isola puts in place of an answer to `id` it refused to read.
fn refused(id: &RequestId, message: String, data: Value) -> Option<ServerJsonRpcMessage> {
    serde_json::from_value(json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": REFUSED_CODE, "message": message, "data": {REFUSED_KEY: data}},
    }))
    .ok()
}

fn too_large(id: &RequestId, limit: usize) -> Option<ServerJsonRpcMessage> {
    tracing::warn!(limit, "an MCP answer over the size limit was refused");
    refused(
        id,
        format!(
            "the answer is over the limit of {} on one MCP message",
            size_text(limit as u64)
        ),
        json!({"limit": limit}),
    )
}

fn too_deep(id: &RequestId, depth: Option<usize>) -> Option<ServerJsonRpcMessage> {
    let limit = PARSE_DEPTH - 1;
    tracing::warn!(?depth, limit, "an MCP answer nesting too deep was refused");
    let message = match depth {
        Some(depth) => format!("the answer nests {depth} levels deep, over the limit of {limit}"),
        None => format!("the answer nests deeper than the limit of {limit} levels"),
    };
    refused(id, message, json!({"depth": depth, "limit": limit}))
}

/// Whether `error` is rmcp's "SSE event exceeded the maximum size" (its type is private).
fn event_too_large(error: &SseError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error
            .to_string()
            .contains("event exceeded the maximum size")
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// `stream` with an event over a limit replaced by a refused answer (see the module docs).
/// `request` is the request whose answer the stream carries (`None` for the session's GET
/// stream, where an event's own `id` says what it answers and one over the size limit cannot
/// be attributed), and whether it was `tools/list`.
fn bounded_events(
    stream: BoxStream<'static, Result<Sse, SseError>>,
    request: Option<(RequestId, bool)>,
    max_event: usize,
) -> BoxStream<'static, Result<Sse, SseError>> {
    stream
        .map(move |item| match item {
            Err(error) if event_too_large(&error) => match &request {
                Some((id, _)) => Ok(event_of(too_large(id, max_event))),
                None => Err(error),
            },
            Ok(event) => Ok(within_depth(event, request.as_ref())),
            other => other,
        })
        .boxed()
}

/// `event`, or a refused answer in its place when its data nests too deep to parse.
fn within_depth(mut event: Sse, request: Option<&(RequestId, bool)>) -> Sse {
    let Some(data) = &event.data else {
        return event;
    };
    let shape = framing::scan(data.as_bytes());
    if shape.depth < PARSE_DEPTH || shape.has_method {
        // A request or notification from the server too deep to parse is dropped by rmcp,
        // which is all that can be done with it.
        return event;
    }
    let tools_list =
        request.is_some_and(|(id, tools_list)| *tools_list && shape.id.as_ref() == Some(id));
    if tools_list {
        // Keep the tools that can be read; the hub refuses the others by name.
        let pruned = framing::prune(data.as_bytes(), TOOLS_LIST_KEEP_DEPTH);
        event.data = Some(String::from_utf8_lossy(&pruned).into_owned());
        return event;
    }
    let Some(id) = shape.id.or_else(|| request.map(|(id, _)| id.clone())) else {
        return event;
    };
    Sse {
        id: event.id.take(),
        ..event_of(too_deep(&id, Some(shape.depth)))
    }
}

fn event_of(message: Option<ServerJsonRpcMessage>) -> Sse {
    Sse {
        event: None,
        data: message.and_then(|m| serde_json::to_string(&m).ok()),
        id: None,
        retry: None,
    }
}

impl StreamableHttpClient for BoundedClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.post_message_with_max_sse_event_size(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            MAX_MESSAGE_BYTES,
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let request = request_of(&message);
        let answer = self
            .inner
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id.clone(),
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await;
        let Some((id, _)) = request.clone() else {
            return answer;
        };
        let session = || session_id.as_deref().map(str::to_owned);
        match answer {
            Ok(StreamableHttpPostResponse::Sse(stream, session_id)) => {
                Ok(StreamableHttpPostResponse::Sse(
                    bounded_events(stream, request, max_sse_event_size),
                    session_id,
                ))
            }
            Err(StreamableHttpError::ResponseBodyTooLarge { max_size }) => {
                match too_large(&id, max_size) {
                    Some(message) => Ok(StreamableHttpPostResponse::Json(message, session())),
                    None => Err(StreamableHttpError::ResponseBodyTooLarge { max_size }),
                }
            }
            // rmcp keeps only serde_json's message of a JSON body it could not parse.
            Err(StreamableHttpError::UnexpectedServerResponse(text))
                if text.contains("recursion limit exceeded") =>
            {
                match too_deep(&id, None) {
                    Some(message) => Ok(StreamableHttpPostResponse::Json(message, session())),
                    None => Err(StreamableHttpError::UnexpectedServerResponse(text)),
                }
            }
            other => other,
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            MAX_MESSAGE_BYTES,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let stream = self
            .inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await?;
        Ok(bounded_events(stream, None, max_sse_event_size))
    }
}
