//! Newline-delimited JSON-RPC over a byte stream (MCP's stdio transport), read with every
//! buffer bounded. Both ends of Isola use it: the hub reading a stdio server's stdout, and
//! `isola mcp` reading its host's stdin.
//!
//! - [`LineReader`] never holds more than [`MAX_MESSAGE_BYTES`] of one line: a longer line is
//!   dropped as it is read, and reported as [`Frame::TooLarge`] with its size and, when it can
//!   be recovered, its top-level `id` (so the request it answers, or the request itself, can
//!   get an error at once instead of waiting for a timeout).
//! - [`scan`] reads the shape of a message without building it (top-level `id`, whether it
//!   has a `method`, its nesting depth), in one pass and without recursion.
//! - [`resync`] finds a whole message at the end of a line that starts with something else
//!   (the rest of a half line a server wrote before it), so that message is not lost.
//! - [`prune`] replaces what nests deeper than a limit with a marker, so a message too deep
//!   for serde_json's recursion limit can still be parsed and its deep parts refused by name.
//!
//! ```
//! # async fn demo() {
//! use isola_mcp::framing::{Frame, LineReader};
//! let input: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}\n";
//! let mut reader = LineReader::new(input);
//! assert!(matches!(reader.next().await, Frame::Line(_)));
//! # }
//! ```

use std::borrow::Cow;

use rmcp::model::RequestId;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The longest message (one line, without its newline) either end of Isola reads: rmcp's own
/// limit for stdio lines and for HTTP bodies and events (16 MiB).
pub const MAX_MESSAGE_BYTES: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;

/// serde_json's recursion limit: a message nesting deeper than this does not parse.
pub const PARSE_DEPTH: usize = 128;

/// The key of the marker object [`prune`] puts where a deeper value was.
pub const TOO_DEEP_KEY: &str = "isola/tooDeep";

/// Longest top-level `id` kept while scanning, in bytes.
const ID_MAX: usize = 256;

/// One read from a [`LineReader`].
#[derive(Debug)]
pub enum Frame {
    /// A whole line, without its `\n` and a trailing `\r`.
    Line(Vec<u8>),
    /// A line over the limit, dropped as it was read.
    TooLarge {
        /// Its length without the newline (the bytes read so far when the stream ended).
        bytes: u64,
        /// Its top-level `id`, when there was one in a usable form.
        id: Option<RequestId>,
        /// Whether it had a top-level `method` (a request or notification, not an answer).
        has_method: bool,
    },
    /// The stream ended. `partial` bytes of an unfinished last line were dropped.
    Eof { partial: usize },
    /// Reading failed.
    Io(std::io::Error),
}

/// Reads lines of at most `limit` bytes. Cancel-safe: a read dropped half-way keeps what it
/// read for the next call.
pub struct LineReader<R> {
    read: BufReader<R>,
    limit: usize,
    line: Vec<u8>,
    /// Set while the rest of an over-long line is skipped.
    discard: Option<Discard>,
}

struct Discard {
    bytes: u64,
    scanner: Scanner,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader with the limit [`MAX_MESSAGE_BYTES`].
    pub fn new(read: R) -> Self {
        Self::with_limit(read, MAX_MESSAGE_BYTES)
    }

    pub fn with_limit(read: R, limit: usize) -> Self {
        LineReader {
            read: BufReader::new(read),
            limit,
            line: Vec::new(),
            discard: None,
        }
    }

    /// The limit of one line, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The next line (or what happened instead).
    pub async fn next(&mut self) -> Frame {
        loop {
            let available = match self.read.fill_buf().await {
                Ok(available) => available,
                Err(error) => return Frame::Io(error),
            };
            if available.is_empty() {
                if let Some(discard) = self.discard.take() {
                    let (id, has_method) = discard.scanner.finish();
                    return Frame::TooLarge {
                        bytes: discard.bytes,
                        id,
                        has_method,
                    };
                }
                let partial = std::mem::take(&mut self.line).len();
                return Frame::Eof { partial };
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |at| at + 1);
            let chunk = &available[..newline.unwrap_or(available.len())];
            // Everything below is synchronous up to `consume`, so a cancelled call loses nothing.
            let done = if let Some(discard) = &mut self.discard {
                discard.bytes += chunk.len() as u64;
                discard.scanner.feed(chunk);
                newline.is_some()
            } else if self.line.len() + chunk.len() > self.limit {
                let mut scanner = Scanner::default();
                scanner.feed(&self.line);
                scanner.feed(chunk);
                self.discard = Some(Discard {
                    bytes: (self.line.len() + chunk.len()) as u64,
                    scanner,
                });
                self.line = Vec::new();
                newline.is_some()
            } else {
                self.line.extend_from_slice(chunk);
                newline.is_some()
            };
            self.read.consume(take);
            if !done {
                continue;
            }
            if let Some(discard) = self.discard.take() {
                let (id, has_method) = discard.scanner.finish();
                return Frame::TooLarge {
                    bytes: discard.bytes,
                    id,
                    has_method,
                };
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Frame::Line(line);
        }
    }
}

/// The shape of a message, read without parsing it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scan {
    /// The top-level `id`, when it is a number or a string.
    pub id: Option<RequestId>,
    /// Whether there is a top-level `method`.
    pub has_method: bool,
    /// The deepest nesting of objects and arrays (a flat object is 1).
    pub depth: usize,
}

/// Scan `bytes` (one message) for its top-level `id`, `method` and depth.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut scanner = Scanner::default();
    scanner.feed(bytes);
    let depth = scanner.max_depth;
    let (id, has_method) = scanner.finish();
    Scan {
        id,
        has_method,
        depth,
    }
}

/// Where the scanner is in the top-level object.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Slot {
    /// Before a key (after `{` or `,`).
    #[default]
    Key,
    /// After a key, before its `:`.
    Colon,
    /// In a value.
    Value,
}

/// A streaming scan of a JSON text for the keys of its top-level object. No recursion, and
/// bounded memory whatever it is fed.
#[derive(Default)]
struct Scanner {
    depth: usize,
    max_depth: usize,
    in_string: bool,
    escaped: bool,
    slot: Slot,
    /// The top-level key being read (only its first bytes matter).
    key: Vec<u8>,
    /// The raw text of the top-level `id` value while it is read.
    id_text: Option<Vec<u8>>,
    id: Option<RequestId>,
    has_method: bool,
}

impl Scanner {
    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.byte(byte);
        }
    }

    fn byte(&mut self, byte: u8) {
        let top = self.depth == 1;
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if byte == b'\\' {
                self.escaped = true;
            } else if byte == b'"' {
                self.in_string = false;
                if top && self.slot == Slot::Key {
                    self.slot = Slot::Colon;
                    self.record_id_text(byte);
                    return;
                }
            } else if top && self.slot == Slot::Key {
                if self.key.len() < 8 {
                    self.key.push(byte);
                }
                return;
            }
            self.record_id_text(byte);
            return;
        }
        match byte {
            b'"' => {
                self.in_string = true;
                if top && self.slot == Slot::Key {
                    self.key.clear();
                    return;
                }
            }
            b'{' | b'[' => {
                self.depth += 1;
                self.max_depth = self.max_depth.max(self.depth);
                if self.depth == 1 {
                    self.slot = Slot::Key;
                    return;
                }
            }
            b'}' | b']' => {
                if top {
                    self.end_value();
                }
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    return;
                }
            }
            b':' if top && self.slot == Slot::Colon => {
                self.slot = Slot::Value;
                match self.key.as_slice() {
                    b"id" => self.id_text = Some(Vec::new()),
                    b"method" => self.has_method = true,
                    _ => {}
                }
                return;
            }
            b',' if top => {
                self.end_value();
                self.slot = Slot::Key;
                return;
            }
            _ => {}
        }
        self.record_id_text(byte);
    }

    fn record_id_text(&mut self, byte: u8) {
        if let Some(text) = &mut self.id_text {
            if text.len() < ID_MAX {
                text.push(byte);
            } else {
                // Too long to be a usable id.
                self.id_text = None;
            }
        }
    }

    fn end_value(&mut self) {
        if let Some(text) = self.id_text.take()
            && self.id.is_none()
        {
            self.id = serde_json::from_slice::<RequestId>(&text).ok();
        }
    }

    fn finish(self) -> (Option<RequestId>, bool) {
        (self.id, self.has_method)
    }
}

/// Parse one line as `T` (a leading UTF-8 byte order mark is ignored, as RFC 8259 allows).
pub fn parse<T: DeserializeOwned>(line: &[u8]) -> Result<T, serde_json::Error> {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    serde_json::from_slice(line)
}

/// Attempts [`resync`] makes on one line at most.
const RESYNC_ATTEMPTS: usize = 16;

/// A whole message that ends `line` after something else (what is left of a half line written
/// before it). Returns where it starts and the message. Only tries the starts of objects whose
/// first key is a JSON-RPC one, at most [`RESYNC_ATTEMPTS`] of them.
pub fn resync<T: DeserializeOwned>(line: &[u8]) -> Option<(usize, T)> {
    const STARTS: [&[u8]; 6] = [
        b"{\"jsonrpc\"",
        b"{\"id\"",
        b"{\"result\"",
        b"{\"error\"",
        b"{\"method\"",
        b"{\"params\"",
    ];
    line.iter()
        .enumerate()
        .skip(1)
        .filter(|(at, byte)| {
            **byte == b'{' && STARTS.iter().any(|start| line[*at..].starts_with(start))
        })
        .take(RESYNC_ATTEMPTS)
        .find_map(|(at, _)| parse::<T>(&line[at..]).ok().map(|message| (at, message)))
}

/// `bytes` with every object or array that opens deeper than `max_depth` replaced by
/// `{"isola/tooDeep": N}`, N being how deep the replaced value nested (1 for a flat one). The
/// result nests at most `max_depth + 1` deep. Borrowed when nothing is that deep.
pub fn prune(bytes: &[u8], max_depth: usize) -> Cow<'_, [u8]> {
    if scan(bytes).depth <= max_depth {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len().min(1 << 20));
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // While skipping a too-deep value: the depth it started at, and its deepest point.
    let mut skipping: Option<(usize, usize)> = None;
    for &byte in bytes {
        let keep = skipping.is_none();
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            if keep {
                out.push(byte);
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                match &mut skipping {
                    Some((_, deepest)) => *deepest = (*deepest).max(depth),
                    None if depth > max_depth => {
                        skipping = Some((depth, depth));
                        continue;
                    }
                    None => {}
                }
            }
            b'}' | b']' => {
                if let Some((start, deepest)) = skipping
                    && depth == start
                {
                    skipping = None;
                    depth -= 1;
                    out.extend_from_slice(
                        format!("{{\"{TOO_DEEP_KEY}\":{}}}", deepest - start + 1).as_bytes(),
                    );
                    continue;
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        if skipping.is_none() {
            out.push(byte);
        }
    }
    Cow::Owned(out)
}

/// How deep `value` nests (a scalar is 0, a flat object or array 1), counting a
/// `{"isola/tooDeep": N}` marker left by [`prune`] as N.
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => {
            if map.len() == 1
                && let Some(n) = map.get(TOO_DEEP_KEY).and_then(Value::as_u64)
            {
                return usize::try_from(n).unwrap_or(usize::MAX);
            }
            1 + map.values().map(depth).max().unwrap_or(0)
        }
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The start of `line` for a message: at most 120 characters, control characters escaped.
pub fn preview(line: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(line);
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == MAX {
            out.push_str(&format!("… ({} bytes in all)", line.len()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rmcp::model::NumberOrString;

    #[test]
    fn scan_finds_the_top_level_id_anywhere() {
        let cases: [(&str, Option<RequestId>, bool, usize); 7] = [
            (
                r#"{"jsonrpc":"2.0","id":7,"result":{"id":99}}"#,
                Some(NumberOrString::Number(7)),
                false,
                2,
            ),
            (
                r#"{"result":{"content":[{"id":1,"text":"a\"id\":3"}]},"jsonrpc":"2.0","id":"x-1"}"#,
                Some(NumberOrString::String("x-1".into())),
                false,
                4,
            ),
            (
                r#"{"method":"tools/call","params":{"id":5}}"#,
                None,
                true,
                2,
            ),
            (r#"{"id":1.5,"method":"x"}"#, None, true, 1),
            (r#"{"id":{"a":1},"method":"x"}"#, None, true, 2),
            (r#"[{"id":1}]"#, None, false, 2),
            (
                r#"{ "id" : 12 , "result" : [] }"#,
                Some(NumberOrString::Number(12)),
                false,
                2,
            ),
        ];
        for (text, id, has_method, depth) in cases {
            assert_eq!(
                scan(text.as_bytes()),
                Scan {
                    id,
                    has_method,
                    depth
                },
                "{text}"
            );
        }
    }

    #[test]
    fn prune_keeps_shallow_text_and_marks_deep_values() {
        let shallow = br#"{"a":[1,{"b":2}]}"#;
        assert!(matches!(prune(shallow, 3), Cow::Borrowed(_)));
        let deep = br#"{"a":[1,{"b":[[["x]]"]]]}],"c":{"d":1}}"#;
        let pruned = prune(deep, 3);
        let value: Value = serde_json::from_slice(&pruned).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": [1, {"b": {"isola/tooDeep": 3}}], "c": {"d": 1}})
        );
        assert_eq!(depth(&value), 6);
    }

    #[test]
    fn resync_finds_the_message_after_a_half_line() {
        let line = br#"{"jsonrpc":"2.0","id":{"jsonrpc":"2.0","id":3,"result":{"a":{"id":1}}}"#;
        let (at, value) = resync::<Value>(line).unwrap();
        assert_eq!(at, 22);
        assert_eq!(value["id"], 3);
        assert!(resync::<Value>(b"garbage only").is_none());
    }

    #[tokio::test]
    async fn long_lines_are_dropped_and_the_next_ones_read() {
        let mut input = Vec::new();
        input.extend_from_slice(b"{\"result\":\"");
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b"\",\"id\":4}\nshort\r\n");
        input.extend(std::iter::repeat_n(b'y', 50));
        let mut reader = LineReader::with_limit(&input[..], 32);
        match reader.next().await {
            Frame::TooLarge {
                bytes,
                id,
                has_method,
            } => {
                assert_eq!(bytes, 120);
                assert_eq!(id, Some(NumberOrString::Number(4)));
                assert!(!has_method);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(reader.next().await, Frame::Line(l) if l == b"short"));
        assert!(matches!(
            reader.next().await,
            Frame::TooLarge {
                bytes: 50,
                id: None,
                ..
            }
        ));
        assert!(matches!(reader.next().await, Frame::Eof { partial: 0 }));
    }
}
