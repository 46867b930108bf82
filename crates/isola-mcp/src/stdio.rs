//! MCP's stdio transport with every buffer bounded, for both ends of Isola: [`LineTransport`]
//! (newline-delimited JSON-RPC over any byte stream, read with [`framing::LineReader`]) and
//! [`ChildTransport`] (a stdio server's process: its stdin and stdout, and its end).
//!
//! What it does that rmcp's own stdio transport does not:
//! - A message over [`MAX_MESSAGE_BYTES`] is never buffered whole. An *answer* over it
//!   (client side) becomes at once an error answer to its request, naming the size and the limit
//!   (see [`oversized`]), instead of a silent drop and a timeout. A *request* over it (server
//!   side, `isola mcp`) is answered with a JSON-RPC error naming the size and the limit, and
//!   the next requests are served.
//! - A message nesting deeper than serde_json can parse ([`PARSE_DEPTH`]) is not dropped: a
//!   `tools/list` answer has its too-deep parts replaced by a marker
//!   ([`framing::TOO_DEEP_KEY`]), so the hub refuses just those tools by name; any other answer
//!   becomes an error naming its depth; a request gets a JSON-RPC error saying so.
//! - A line that starts with the rest of a half line (a server wrote part of a line, then a
//!   whole message) still yields the message at its end ([`framing::resync`]).
//!
//! ```no_run
//! # async fn demo(server: impl rmcp::ServerHandler) -> Result<(), Box<dyn std::error::Error>> {
//! use rmcp::ServiceExt;
//! let transport = isola_mcp::stdio::LineTransport::new(tokio::io::stdin(), tokio::io::stdout());
//! server.serve(transport).await?.waiting().await?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{ErrorData, RequestId};
use rmcp::service::{RxJsonRpcMessage, ServiceRole, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::framing::{self, Frame, LineReader, MAX_MESSAGE_BYTES, PARSE_DEPTH};

/// The key in an error's `data` that says Isola made the error itself because the answer was
/// over a limit: `{"isola/refused": {"bytes": N, "limit": L}}` or `{"depth": N, "limit": L}`.
pub const REFUSED_KEY: &str = "isola/refused";

/// JSON-RPC code of an error Isola put in place of an answer it refused to read.
pub const REFUSED_CODE: i32 = -32001;

/// How deep a `tools/list` answer is kept before its deeper parts are replaced by a marker:
/// enough below [`PARSE_DEPTH`] for the envelope around the tool schemas.
pub(crate) const TOOLS_LIST_KEEP_DEPTH: usize = PARSE_DEPTH - 8;

/// How deep a tool's `inputSchema` may nest (counting the schema object as 1) and still be read
/// from a stdio server: [`TOOLS_LIST_KEEP_DEPTH`] less the envelope (message, `result`,
/// `tools`, the tool).
pub const MAX_SCHEMA_DEPTH: usize = TOOLS_LIST_KEEP_DEPTH - 4;

/// How long [`ChildTransport::close`] waits for the process after closing its stdin, and again
/// after `SIGTERM`, before killing it.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// An answer Isola refused to read, as the hub sees it in the error that replaced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversized {
    /// The answer was `bytes` long (when known); one message may be `limit` bytes.
    Bytes { bytes: Option<u64>, limit: u64 },
    /// The answer nested `depth` levels deep (when known); `limit` levels can be read.
    Depth { depth: Option<u64>, limit: u64 },
}

/// Whether `error` is one Isola made in place of an answer over a limit, and which limit.
pub fn oversized(error: &ErrorData) -> Option<Oversized> {
    if error.code.0 != REFUSED_CODE {
        return None;
    }
    let refused = error.data.as_ref()?.get(REFUSED_KEY)?;
    let limit = refused.get("limit")?.as_u64()?;
    let known = |key: &str| refused.get(key).and_then(Value::as_u64);
    if refused.get("depth").is_some() {
        return Some(Oversized::Depth {
            depth: known("depth"),
            limit,
        });
    }
    Some(Oversized::Bytes {
        bytes: known("bytes"),
        limit,
    })
}

/// `16 MiB` for a size that is a whole number of MiB, else `N bytes`.
pub fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB ({bytes} bytes)", bytes as f64 / MIB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

/// Newline-delimited JSON-RPC over `R` and `W`, for either role (see the module docs).
pub struct LineTransport<Role, R, W> {
    reader: LineReader<R>,
    writer: Arc<tokio::sync::Mutex<Option<W>>>,
    /// Ids of the `tools/list` requests sent and not yet answered (client side).
    tools_lists: Arc<Mutex<HashSet<RequestId>>>,
    _role: PhantomData<fn() -> Role>,
}

impl<Role, R, W> LineTransport<Role, R, W>
where
    Role: ServiceRole,
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// Messages of at most [`MAX_MESSAGE_BYTES`].
    pub fn new(read: R, write: W) -> Self {
        Self::with_limit(read, write, MAX_MESSAGE_BYTES)
    }

    /// Messages of at most `limit` bytes (tests use a small one).
    pub fn with_limit(read: R, write: W, limit: usize) -> Self {
        LineTransport {
            reader: LineReader::with_limit(read, limit),
            writer: Arc::new(tokio::sync::Mutex::new(Some(write))),
            tools_lists: Arc::new(Mutex::new(HashSet::new())),
            _role: PhantomData,
        }
    }

    fn limit(&self) -> u64 {
        self.reader.limit() as u64
    }

    /// Write `bytes` (one message and its newline) without holding up `receive`.
    fn send_raw(&self, bytes: Vec<u8>) {
        let writer = self.writer.clone();
        tokio::spawn(async move {
            if let Err(error) = write_line(&writer, &bytes).await {
                tracing::debug!(%error, "could not send an error answer");
            }
        });
    }

    /// Answer the request `id` with an error (server side).
    fn answer_error(&self, id: RequestId, code: i32, message: String, data: Value) {
        let answer = json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": code, "message": message, "data": data},
        });
        let mut bytes = answer.to_string().into_bytes();
        bytes.push(b'\n');
        self.send_raw(bytes);
    }

    fn was_tools_list(&self, id: Option<&RequestId>) -> bool {
        id.is_some_and(|id| lock(&self.tools_lists).remove(id))
    }

    /// What to hand rmcp for a line that was over the limit.
    fn on_too_large(
        &self,
        bytes: u64,
        id: Option<RequestId>,
        has_method: bool,
    ) -> Option<RxJsonRpcMessage<Role>> {
        let limit = self.limit();
        let refused = json!({REFUSED_KEY: {"bytes": bytes, "limit": limit}});
        if Role::IS_CLIENT {
            match id {
                Some(id) if !has_method => {
                    self.was_tools_list(Some(&id));
                    tracing::warn!(
                        bytes,
                        limit,
                        "an MCP answer over the size limit was refused"
                    );
                    let message = format!(
                        "the answer is {} long, over the limit of {} on one MCP message",
                        size_text(bytes),
                        size_text(limit)
                    );
                    synthesized::<Role>(id, REFUSED_CODE, message, refused)
                }
                _ => {
                    tracing::warn!(
                        bytes,
                        limit,
                        "dropped a message from the MCP server over the size limit"
                    );
                    None
                }
            }
        } else {
            let message = format!(
                "the request is {} long, over the limit of {} on one MCP message",
                size_text(bytes),
                size_text(limit)
            );
            match id {
                Some(id) if has_method => {
                    tracing::warn!(bytes, limit, "refused an MCP request over the size limit");
                    self.answer_error(id, -32600, message, refused);
                }
                _ => tracing::warn!(bytes, limit, "dropped an MCP message over the size limit"),
            }
            None
        }
    }

    /// The message of one whole line, if it is one.
    fn decode(&self, line: &[u8]) -> Option<RxJsonRpcMessage<Role>> {
        let shape = framing::scan(line);
        let id = shape.id.clone();
        let pruned;
        let mut text = line;
        if shape.depth >= PARSE_DEPTH {
            let limit = (PARSE_DEPTH - 1) as u64;
            let depth = shape.depth as u64;
            let refused = json!({REFUSED_KEY: {"depth": depth, "limit": limit}});
            match (Role::IS_CLIENT, shape.id, shape.has_method) {
                (true, Some(id), false) if self.was_tools_list(Some(&id)) => {
                    // Keep the tools that can be read; the hub refuses the others by name.
                    pruned = framing::prune(line, TOOLS_LIST_KEEP_DEPTH);
                    text = &pruned;
                }
                (true, Some(id), false) => {
                    tracing::warn!(depth, limit, "an MCP answer nesting too deep was refused");
                    let message = format!(
                        "the answer nests {depth} levels deep, over the limit of {limit} levels"
                    );
                    return synthesized::<Role>(id, REFUSED_CODE, message, refused);
                }
                (false, Some(id), true) => {
                    let message = format!(
                        "the request nests {depth} levels deep, over the limit of {limit} levels"
                    );
                    self.answer_error(id, -32600, message, refused);
                    return None;
                }
                _ => {
                    tracing::warn!(depth, limit, "dropped an MCP message nesting too deep");
                    return None;
                }
            }
        }
        match framing::parse::<RxJsonRpcMessage<Role>>(text) {
            Ok(message) => {
                if Role::IS_CLIENT && !shape.has_method {
                    self.was_tools_list(id.as_ref());
                }
                Some(message)
            }
            Err(error) => {
                if let Some((at, message)) = framing::resync::<RxJsonRpcMessage<Role>>(text) {
                    tracing::warn!(
                        dropped = at,
                        "a broken line preceded a message (the rest of a half line?): {}",
                        framing::preview(&text[..at])
                    );
                    return Some(message);
                }
                let notification = shape.has_method && id.is_none();
                match (Role::IS_CLIENT, id, shape.has_method) {
                    (false, Some(id), true) if error.is_data() => {
                        self.answer_error(
                            id,
                            -32600,
                            format!("invalid request: {error}"),
                            json!(null),
                        );
                    }
                    _ if notification => {
                        tracing::debug!(%error, "ignored a notification that does not parse: {}", framing::preview(text))
                    }
                    _ => {
                        tracing::warn!(%error, "ignored a line that is not a JSON-RPC message: {}", framing::preview(text))
                    }
                }
                None
            }
        }
    }
}

/// An error answer to `id`, as if the peer had sent it.
fn synthesized<Role: ServiceRole>(
    id: RequestId,
    code: i32,
    message: String,
    data: Value,
) -> Option<RxJsonRpcMessage<Role>> {
    let answer = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": code, "message": message, "data": data},
    });
    serde_json::from_value(answer).ok()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn write_line<W: AsyncWrite + Unpin>(
    writer: &tokio::sync::Mutex<Option<W>>,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut guard = writer.lock().await;
    let Some(write) = guard.as_mut() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the transport is closed",
        ));
    };
    write.write_all(bytes).await?;
    write.flush().await
}

impl<Role, R, W> Transport<Role> for LineTransport<Role, R, W>
where
    Role: ServiceRole,
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<Role>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let writer = self.writer.clone();
        let encoded = serde_json::to_vec(&item);
        if Role::IS_CLIENT
            && let Ok(bytes) = &encoded
        {
            let shape = framing::scan(bytes);
            if let Some(id) = shape.id
                && shape.has_method
                && is_tools_list(bytes)
            {
                lock(&self.tools_lists).insert(id);
            }
        }
        async move {
            let mut bytes = encoded.map_err(std::io::Error::other)?;
            bytes.push(b'\n');
            write_line(&writer, &bytes).await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<Role>> {
        loop {
            match self.reader.next().await {
                Frame::Line(line) => {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    if let Some(message) = self.decode(&line) {
                        return Some(message);
                    }
                }
                Frame::TooLarge {
                    bytes,
                    id,
                    has_method,
                } => {
                    if let Some(message) = self.on_too_large(bytes, id, has_method) {
                        return Some(message);
                    }
                }
                Frame::Eof { partial } => {
                    if partial > 0 {
                        tracing::debug!(partial, "the stream ended inside a line");
                    }
                    return None;
                }
                Frame::Io(error) => {
                    tracing::debug!(%error, "reading the MCP stream failed");
                    return None;
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let taken = self.writer.lock().await.take();
        if let Some(mut write) = taken {
            let _ = write.shutdown().await;
        }
        Ok(())
    }
}

/// Whether the encoded request is a `tools/list` (its top-level `method`).
fn is_tools_list(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Method<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Method>(bytes)
        .ok()
        .and_then(|m| m.method)
        .is_some_and(|m| m == "tools/list")
}

/// A stdio server's process as a client transport: [`LineTransport`] over its stdout and
/// stdin. Closing it closes stdin, waits, sends `SIGTERM` to its process group, waits, kills;
/// dropping it kills the process group at once.
pub struct ChildTransport {
    lines: LineTransport<rmcp::RoleClient, ChildStdout, ChildStdin>,
    child: Child,
    exited: bool,
}

impl ChildTransport {
    /// Take over `child`, spawned with piped stdin and stdout (and `kill_on_drop`).
    pub fn new(mut child: Child) -> std::io::Result<Self> {
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("the child's stdout is not piped"))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("the child's stdin is not piped"))?;
        Ok(ChildTransport {
            lines: LineTransport::new(stdout, stdin),
            child,
            exited: false,
        })
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Signal the process group the child leads (it was spawned with `process_group(0)`).
    fn signal_group(&mut self, signal: libc::c_int) {
        if self.exited {
            return;
        }
        if let Some(pid) = self
            .child
            .id()
            .and_then(|pid| libc::pid_t::try_from(pid).ok())
        {
            // SAFETY: kill(2) has no memory effects; the child is not reaped yet, so its pid
            // (and process group id) is still ours.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }

    async fn wait_exit(&mut self, grace: Duration) -> bool {
        if matches!(
            tokio::time::timeout(grace, self.child.wait()).await,
            Ok(Ok(_))
        ) {
            self.exited = true;
        }
        self.exited
    }
}

impl Transport<rmcp::RoleClient> for ChildTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<rmcp::RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.lines.send(item)
    }

    fn receive(
        &mut self,
    ) -> impl Future<Output = Option<RxJsonRpcMessage<rmcp::RoleClient>>> + Send {
        self.lines.receive()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.lines.close().await?;
        if self.exited || self.wait_exit(EXIT_GRACE).await {
            return Ok(());
        }
        self.signal_group(libc::SIGTERM);
        if self.wait_exit(EXIT_GRACE).await {
            return Ok(());
        }
        self.signal_group(libc::SIGKILL);
        self.child.kill().await?;
        self.exited = true;
        Ok(())
    }
}

impl Drop for ChildTransport {
    fn drop(&mut self) {
        if !self.exited && !matches!(self.child.try_wait(), Ok(Some(_))) {
            // The group, so the server's own children go too; tokio reaps the child.
            self.signal_group(libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rmcp::RoleServer;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    #[test]
    fn sizes_read_well() {
        assert_eq!(size_text(16 << 20), "16 MiB");
        assert_eq!(size_text(17_000_000), "16.2 MiB (17000000 bytes)");
        assert_eq!(size_text(10), "10 bytes");
    }

    /// serde_json parses 127 levels and refuses 128: the limit [`decode`] works from.
    #[test]
    fn parse_depth_is_serde_jsons() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<Value>(&nest(PARSE_DEPTH - 1)).is_ok());
        assert!(serde_json::from_str::<Value>(&nest(PARSE_DEPTH)).is_err());
    }

    #[tokio::test]
    async fn a_request_over_the_limit_gets_an_error_and_the_next_one_is_read() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (server_read, server_write) = tokio::io::split(server);
        let mut transport: LineTransport<RoleServer, _, _> =
            LineTransport::with_limit(server_read, server_write, 64);
        let (client_read, mut client_write) = tokio::io::split(client);
        let big = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{{\"x\":\"{}\"}}}}\n",
            "a".repeat(200)
        );
        client_write.write_all(big.as_bytes()).await.unwrap();
        client_write
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}\n")
            .await
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), transport.receive())
            .await
            .expect("the request after the long one was not read")
            .unwrap();
        assert!(serde_json::to_string(&next).unwrap().contains("\"id\":8"));
        let mut lines = tokio::io::BufReader::new(client_read).lines();
        let answer: Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["error"]["code"], -32600);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("264 bytes") && message.contains("64 bytes"),
            "{message}"
        );
    }
}
