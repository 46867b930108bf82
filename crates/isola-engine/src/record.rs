//! Turning what came out of the sandbox into the user's [`ExecRecord`] terms: MCP results
//! unwrapped, errors mapped back to TypeScript positions, truncation marked.

use isola_protocol::{
    Diagnostic, ErrorKind, ExecError, JsError, Payload, Position, truncation_marker,
};
use isola_transpile::{SyntaxError, Transpiled, code_frame};
use serde_json::Value;

/// What a tool call returns to the script, from an MCP `CallToolResult` (as JSON):
/// `structuredContent` when present; else a single text item parsed as JSON when it parses, else
/// the text; else the content items as they are (`[]` → `null`). The TypeScript declarations
/// describe exactly this (see `isola-typegen`).
pub fn unwrap_result(result: &Value) -> Value {
    if let Some(sc) = result.get("structuredContent") {
        return sc.clone();
    }
    let content = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    match content {
        [] => Value::Null,
        [one] if one.get("type").and_then(Value::as_str) == Some("text") => {
            let text = one.get("text").and_then(Value::as_str).unwrap_or_default();
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        }
        many => Value::Array(many.to_vec()),
    }
}

/// The message of an `isError` result: its text items joined.
pub fn error_text(result: &Value) -> String {
    let content = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let texts: Vec<&str> = content
        .iter()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    if texts.is_empty() {
        "the tool reported an error without a message".to_string()
    } else {
        texts.join("\n")
    }
}

/// How deep a value from the sandbox may be nested: serde_json's own bound, which keeps the
/// host's stack safe (its recursion limit of 128 admits 127 levels of arrays and objects).
pub const MAX_DEPTH: usize = 127;

/// Why a value from the sandbox is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestJsonError {
    #[error("it is nested more than {MAX_DEPTH} levels deep; the limit is {MAX_DEPTH}")]
    TooDeep,
    #[error("it is not valid JSON: {0}")]
    Invalid(String),
}

/// JSON text from the sandbox as a value. The sandbox's `JSON.stringify` writes a lone
/// surrogate (half of an emoji) as an escape serde rejects; such escapes are kept as the text
/// of the escape (`"\ud83d"` comes back as the six characters `\ud83d`), the rest unchanged.
pub fn parse_guest_json(text: &str) -> Result<Value, GuestJsonError> {
    let first = match serde_json::from_str(text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let message = first.to_string();
    if message.contains("recursion limit") {
        return Err(GuestJsonError::TooDeep);
    }
    if text.contains("\\ud") || text.contains("\\uD") {
        let fixed = escape_lone_surrogates(text);
        return serde_json::from_str(&fixed).map_err(|e| {
            if e.to_string().contains("recursion limit") {
                GuestJsonError::TooDeep
            } else {
                GuestJsonError::Invalid(e.to_string())
            }
        });
    }
    Err(GuestJsonError::Invalid(message))
}

/// `\uD8xx`..`\uDFxx` escapes that are not a high-low pair, with their backslash escaped.
fn escape_lone_surrogates(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut i = 0;
    let mut last = 0;
    let hex = |at: usize| -> Option<u16> {
        let s = text.get(at..at + 4)?;
        u16::from_str_radix(s, 16).ok()
    };
    while i + 1 < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        if b[i + 1] != b'u' {
            i += 2; // an escape of another character (\\ included)
            continue;
        }
        let Some(unit) = hex(i + 2) else {
            i += 2;
            continue;
        };
        let high = (0xD800..0xDC00).contains(&unit);
        let low = (0xDC00..0xE000).contains(&unit);
        let paired = high
            && text.get(i + 6..i + 8) == Some("\\u")
            && hex(i + 8).is_some_and(|n| (0xDC00..0xE000).contains(&n));
        if paired {
            i += 12;
            continue;
        }
        if high || low {
            out.push_str(&text[last..i]);
            out.push('\\');
            last = i;
        }
        i += 6;
    }
    out.push_str(&text[last..]);
    out
}

/// The longest error text of a tool that reaches the script and the record.
pub const MAX_ERROR_TEXT: usize = 8 * 1024;

/// `text` cut to [`MAX_ERROR_TEXT`] with a marker saying how much was dropped.
pub fn capped(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_ERROR_TEXT {
        return std::borrow::Cow::Borrowed(text);
    }
    let kept = cut(text, MAX_ERROR_TEXT);
    std::borrow::Cow::Owned(format!(
        "{kept}{}",
        truncation_marker((text.len() - kept.len()) as u64)
    ))
}

/// `text` cut to at most `max` bytes, on a char boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The result value and its truncation, from the sandbox's payload.
pub fn result_value(
    payload: Option<Payload>,
    limit: u64,
) -> (Value, Option<isola_protocol::Truncation>) {
    match payload {
        None => (Value::Null, None),
        Some(p) if p.dropped_bytes == 0 => match parse_guest_json(&p.json) {
            Ok(v) => (v, None),
            // The sandbox serialised it; only a value too deep for the host gets here.
            Err(e) => (
                Value::String(format!("[isola: the result cannot be returned: {e}]")),
                None,
            ),
        },
        Some(p) => {
            let text = format!("{}{}", p.json, truncation_marker(p.dropped_bytes));
            (
                Value::String(text),
                Some(isola_protocol::Truncation {
                    limit_bytes: limit,
                    dropped_bytes: p.dropped_bytes,
                }),
            )
        }
    }
}

pub fn syntax_error(e: &SyntaxError, file: &str) -> ExecError {
    ExecError {
        kind: ErrorKind::Syntax,
        limit: None,
        name: "SyntaxError".into(),
        message: e.message.clone(),
        position: Some(Position {
            file: file.to_string(),
            line: e.line,
            column: e.column,
        }),
        code_frame: Some(e.code_frame.clone()),
        stack: None,
        tool: None,
        hint: None,
    }
}

/// The type check's findings as the record has them.
pub fn diagnostics(report: &isola_check::Report, file: &str) -> Vec<Diagnostic> {
    report
        .diagnostics
        .iter()
        .map(|d| Diagnostic {
            position: Position {
                file: file.to_string(),
                line: d.line,
                column: d.column,
            },
            code: d.code.clone(),
            message: d.message.clone(),
        })
        .collect()
}

/// A script the type check refused: the first error's position and frame, every error in the
/// message (the record's `diagnostics` has them one by one).
pub fn type_error(report: &isola_check::Report, source: &str, file: &str) -> ExecError {
    let first = report.diagnostics.first();
    let count = report.diagnostics.len() + report.more;
    let mut message = match count {
        1 => "the script does not type-check against the API (nothing ran):".to_string(),
        n => format!("the script does not type-check against the API, {n} errors (nothing ran):"),
    };
    for d in &report.diagnostics {
        message.push_str(&format!(
            "\n{file}:{}:{} {}: {}",
            d.line, d.column, d.code, d.message
        ));
    }
    if report.more > 0 {
        message.push_str(&format!("\n... and {} more", report.more));
    }
    ExecError {
        kind: ErrorKind::Type,
        limit: None,
        name: "TypeCheckError".into(),
        message,
        position: first.map(|d| Position {
            file: file.to_string(),
            line: d.line,
            column: d.column,
        }),
        code_frame: first.map(|d| code_frame(source, d.line, d.column)),
        stack: None,
        tool: None,
        hint: Some(
            "fix the types (the API's declarations are what `isola types` prints) and run it again"
                .into(),
        ),
    }
}

/// The type check could not run, and the execution asked for it to decide.
pub fn check_failed(e: &isola_check::CheckError) -> ExecError {
    ExecError {
        hint: Some("run it without the type check (`isola.check` in the config, or --check=off), or fix the compiler".into()),
        ..internal_error(format!("the type check could not run, so the script did not: {e}"))
    }
}

/// A sandbox error in the user's terms: stack and position mapped to their TypeScript.
pub fn exec_error(e: JsError, transpiled: &Transpiled, source: &str, file: &str) -> ExecError {
    let stack = e
        .stack
        .as_deref()
        .map(|s| {
            // The prelude's own frames (the API wrappers) are Isola's, not the user's.
            let prelude = format!("({}:", isola_sandbox::PRELUDE_NAME);
            transpiled
                .map_stack(s)
                .lines()
                .filter(|l| !l.contains(&prelude))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        })
        .filter(|s| !s.trim().is_empty());
    let position = e
        .stack
        .as_deref()
        .and_then(|s| transpiled.first_position(s));
    ExecError {
        kind: e.kind,
        limit: e.limit,
        name: e.name,
        message: e.message,
        position: position.map(|(line, column)| Position {
            file: file.to_string(),
            line,
            column,
        }),
        code_frame: position.map(|(line, column)| code_frame(source, line, column)),
        stack,
        tool: e.tool,
        hint: None,
    }
}

/// A script over the size limit, refused before it is parsed.
pub fn too_large(len: usize, limit: u64, file: &str) -> ExecError {
    ExecError {
        kind: ErrorKind::Syntax,
        limit: None,
        name: "SyntaxError".into(),
        message: format!("the script is {len} bytes; the limit is {limit} bytes"),
        position: Some(Position {
            file: file.to_string(),
            line: 1,
            column: 1,
        }),
        code_frame: None,
        stack: None,
        tool: None,
        hint: Some("raise `isola.maxScriptBytes` in the config, or keep data out of the script (read it with a tool)".into()),
    }
}

/// An error of Isola's own machinery.
pub fn internal_error(message: String) -> ExecError {
    ExecError {
        kind: ErrorKind::Internal,
        limit: None,
        name: "InternalError".into(),
        message,
        position: None,
        code_frame: None,
        stack: None,
        tool: None,
        hint: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(result: Value, expect: Value) {
        assert_eq!(unwrap_result(&result), expect, "for {result}");
    }

    #[test]
    fn unwrapping() {
        check(
            json!({"content": [], "structuredContent": {"a": 1}}),
            json!({"a": 1}),
        );
        check(
            json!({"content": [{"type": "text", "text": "{\"n\": 3}"}]}),
            json!({"n": 3}),
        );
        check(
            json!({"content": [{"type": "text", "text": "hello"}]}),
            json!("hello"),
        );
        check(
            json!({"content": [{"type": "text", "text": "42"}]}),
            json!(42),
        );
        check(json!({"content": []}), Value::Null);
        check(
            json!({"content": [{"type": "text", "text": "a"}, {"type": "image", "data": "AA==", "mimeType": "image/png"}]}),
            json!([{"type": "text", "text": "a"}, {"type": "image", "data": "AA==", "mimeType": "image/png"}]),
        );
    }

    #[test]
    fn guest_json_with_lone_surrogates_and_depth() {
        assert_eq!(
            parse_guest_json(r#""a\ud83d\ude00b""#).unwrap(),
            json!("a😀b")
        );
        assert_eq!(parse_guest_json(r#""a\ud83d""#).unwrap(), json!("a\\ud83d"));
        assert_eq!(
            parse_guest_json(r#"["\ude00", "x\\ud83d"]"#).unwrap(),
            json!(["\\ude00", "x\\ud83d"])
        );
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse_guest_json(&deep), Err(GuestJsonError::TooDeep));
        // Found by the generator below: 128 levels were refused as "more than 128".
        let at = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_guest_json(&at(MAX_DEPTH)).is_ok());
        assert_eq!(
            parse_guest_json(&at(MAX_DEPTH + 1)),
            Err(GuestJsonError::TooDeep)
        );
        assert!(matches!(
            parse_guest_json("{"),
            Err(GuestJsonError::Invalid(_))
        ));
    }

    /// Property test on the stable toolchain (a bounded number of cases from a seed: random,
    /// printed on failure, or `ISOLA_FUZZ_SEED`): JSON text as the sandbox writes it, from
    /// generated values with strings of arbitrary UTF-16 (lone surrogates written as escapes,
    /// pairs as characters, a backslash before `ud83d`), nested up to past the limit, wide and
    /// long, comes back as the value with each lone surrogate kept as the text of its escape;
    /// past [`MAX_DEPTH`] it is refused as too deep; damaged text is refused, never a panic.
    #[test]
    fn generated_guest_json_comes_back_as_written() {
        let seed = std::env::var("ISOLA_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..));
        let mut rng = fastrand::Rng::with_seed(seed);
        for case in 0..600 {
            let depth = match rng.u8(..4) {
                0 => rng.usize(MAX_DEPTH - 3..MAX_DEPTH + 4),
                _ => rng.usize(..6),
            };
            let (text, expect) = guest_value(&mut rng, depth);
            let got = parse_guest_json(&text);
            let short: String = text.chars().take(300).collect();
            if nesting(&expect) > MAX_DEPTH {
                assert!(
                    got == Err(GuestJsonError::TooDeep),
                    "seed {seed}, case {case}: {short}"
                );
            } else if got.as_ref() != Ok(&expect) {
                panic!("seed {seed}, case {case}: got {got:?} for {short}");
            }
            // The same text damaged: any answer but a panic.
            let mut bytes = text.into_bytes();
            let i = rng.usize(..bytes.len());
            const DAMAGE: &[u8] = b"\\\"u{}[],:d8";
            bytes[i] = DAMAGE[rng.usize(..DAMAGE.len())];
            if let Ok(damaged) = String::from_utf8(bytes) {
                let _ = parse_guest_json(&damaged);
            }
        }
        // Big: a 16 MiB string of escapes, a million-item array.
        let big = format!("\"{}\"", "\\ud800".repeat(16 * 1024 * 1024 / 6));
        assert!(parse_guest_json(&big).is_ok());
        let wide = format!("[{}1]", "1,".repeat(1_000_000));
        assert_eq!(
            parse_guest_json(&wide).map(|v| v.as_array().map(Vec::len)),
            Ok(Some(1_000_001))
        );
    }

    /// Levels of arrays and objects in `v` (a scalar is 0).
    fn nesting(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(nesting).max().unwrap_or(0),
            Value::Object(o) => 1 + o.values().map(nesting).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// A value `depth` levels deep as the sandbox's `JSON.stringify` writes it, and the value
    /// the host should make of it.
    fn guest_value(rng: &mut fastrand::Rng, depth: usize) -> (String, Value) {
        if depth == 0 {
            return match rng.u8(..5) {
                0 => guest_string(rng),
                1 => ("null".into(), Value::Null),
                2 => {
                    let n = rng.i32(..);
                    (n.to_string(), json!(n))
                }
                3 => ("true".into(), json!(true)),
                _ => {
                    // A long string: a big value is not a different value.
                    let s = "x".repeat(rng.usize(..2_000));
                    (format!("\"{s}\""), json!(s))
                }
            };
        }
        let width = rng.usize(1..4);
        if rng.bool() {
            let items: Vec<(String, Value)> = (0..width)
                .map(|i| {
                    let d = child_depth(rng, i, depth);
                    guest_value(rng, d)
                })
                .collect();
            let text = items
                .iter()
                .map(|(t, _)| t.as_str())
                .collect::<Vec<_>>()
                .join(",");
            (
                format!("[{text}]"),
                Value::Array(items.into_iter().map(|(_, v)| v).collect()),
            )
        } else {
            let mut text = Vec::new();
            let mut map = serde_json::Map::new();
            for i in 0..width {
                let (kt, kv) = guest_string(rng);
                let Value::String(key) = kv else {
                    unreachable!()
                };
                if map.contains_key(&key) {
                    continue;
                }
                let d = child_depth(rng, i, depth);
                let (vt, vv) = guest_value(rng, d);
                text.push(format!("{kt}:{vt}"));
                map.insert(key, vv);
            }
            if map.is_empty() {
                return ("[]".into(), json!([]));
            }
            (format!("{{{}}}", text.join(",")), Value::Object(map))
        }
    }

    /// The depth of child `i` of a value `depth` deep: the first carries the depth, the others
    /// stay shallow (so the values stay small).
    fn child_depth(rng: &mut fastrand::Rng, i: usize, depth: usize) -> usize {
        if i == 0 {
            depth - 1
        } else {
            rng.usize(..depth.min(3))
        }
    }

    /// A string of random UTF-16 units as the sandbox writes it, and the string the host makes.
    fn guest_string(rng: &mut fastrand::Rng) -> (String, Value) {
        let mut text = String::from("\"");
        let mut value = String::new();
        let mut after_high = false;
        for _ in 0..rng.usize(..8) {
            let pick = rng.u8(..9);
            // A lone high surrogate then a low one would be a pair: not lone any more.
            let pick = if after_high && pick == 1 { 8 } else { pick };
            after_high = pick == 0;
            match pick {
                0 => {
                    let unit = rng.u16(0xD800..0xDC00);
                    text.push_str(&format!("\\u{unit:x}"));
                    value.push_str(&format!("\\u{unit:x}"));
                }
                1 => {
                    let unit = rng.u16(0xDC00..0xE000);
                    text.push_str(&format!("\\u{unit:x}"));
                    value.push_str(&format!("\\u{unit:x}"));
                }
                2 => {
                    text.push('😀');
                    value.push('😀');
                }
                3 => {
                    text.push_str("\\\\ud83d");
                    value.push_str("\\ud83d");
                }
                4 => {
                    text.push_str("\\\"");
                    value.push('"');
                }
                5 => {
                    text.push_str("\\n\\u0000");
                    value.push_str("\n\0");
                }
                6 => {
                    // A pair written as escapes is one character.
                    text.push_str("\\ud83d\\ude00");
                    value.push('😀');
                }
                _ => {
                    let c = ['a', 'é', '\u{2028}', 'ж', ' '][rng.usize(..5)];
                    text.push(c);
                    value.push(c);
                }
            }
        }
        text.push('"');
        (text, Value::String(value))
    }

    #[test]
    fn truncated_results_are_marked() {
        let (v, t) = result_value(
            Some(Payload {
                json: "\"abc".into(),
                dropped_bytes: 10,
            }),
            4,
        );
        assert_eq!(v, json!("\"abc…[isola: truncated, 10 more bytes dropped]"));
        assert_eq!(t.unwrap().dropped_bytes, 10);
    }
}
