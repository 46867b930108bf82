//! Turning what came out of the sandbox into the user's [`ExecRecord`] terms: MCP results
//! unwrapped, errors mapped back to TypeScript positions, truncation marked.

use isola_protocol::{ErrorKind, ExecError, JsError, Payload, Position, truncation_marker};
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
        Some(p) if p.dropped_bytes == 0 => (
            serde_json::from_str(&p.json).unwrap_or(Value::String(p.json)),
            None,
        ),
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
