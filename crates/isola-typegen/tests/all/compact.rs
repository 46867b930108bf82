//! The compact one-line rendering used in listings.

use serde_json::{Value, json};

use crate::support::{api_of, assert_text};

/// Tools of one server `s` (MCP JSON) → `Api::compact`.
fn check(tools: Value, expect: &str) {
    let Value::Array(tools) = tools else {
        panic!("tools must be an array")
    };
    let api = api_of(tools);
    let compact = api.compact(None);
    assert_text("compact", &compact, expect);
    // `compact` is `compact_signature` line by line.
    let lines: Vec<String> = (0..api.namespaces[0].functions.len())
        .map(|i| api.compact_signature(0, i))
        .collect();
    assert_eq!(compact.lines().collect::<Vec<_>>(), lines);
}

#[test]
fn small_types_inline() {
    check(
        json!([
            {"name": "create_issue", "description": "Create a new issue. Needs push access.",
             "inputSchema": {"type": "object", "properties": {"owner": {"type": "string"}, "repo": {"type": "string"},
                "title": {"type": "string"}, "body": {"type": "string"}}, "required": ["owner", "repo", "title"]}},
            {"name": "ping"},
            {"name": "search", "description": "Search.",
             "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}},
             "outputSchema": {"type": "object", "properties": {"hits": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}}, "required": ["hits"]}}
        ]),
        r#"
s.createIssue(input: { owner: string; repo: string; title: string; body?: string }): Promise<ToolOutput> — Create a new issue.
s.ping(): Promise<ToolOutput>
s.search(input?: { q?: string }): Promise<{ hits: { id: string }[] }> — Search.
"#,
    );
}

#[test]
fn deep_and_large_types_are_abbreviated() {
    check(
        json!([
            {"name": "deep", "inputSchema": {"type": "object", "properties": {
                "a": {"type": "object", "properties": {"b": {"type": "object", "properties": {"c": {"type": "string"}}}}},
                "big": {"type": "object", "properties": {
                    "one": {"type": "string"}, "two": {"type": "string"}, "three": {"type": "string"}, "four": {"type": "string"},
                    "five": {"type": "string"}, "six": {"type": "string"}, "seven": {"type": "string"}, "eight": {"type": "string"}}},
                "open": {"type": "object"},
                "openWithProps": {"type": "object", "properties": {"x": {"type": "number"}}, "additionalProperties": true},
                "map": {"type": "object", "additionalProperties": {"type": "number"}},
                "color": {"enum": ["red", "green", "blue", "cyan", "magenta", "yellow", "black"]},
                "few": {"enum": ["a", "b", "c", "d", "e", "f"]},
                "ref": {"$ref": "#/$defs/thing"},
                "tuple": {"type": "array", "prefixItems": [{"type": "number"}, {"anyOf": [{"type": "string"}, {"type": "null"}]}]}
            }, "required": ["a"], "$defs": {"thing": {"type": "object", "properties": {"z": {"type": "string"}}}}}}
        ]),
        r#"
s.deep(input: { a: { b?: {...} }; big?: {...}; open?: object; openWithProps?: { x?: number }; map?: { [key: string]: number }; color?: "red" | "green" | "blue" | "cyan" | "magenta" | ...; few?: "a" | "b" | "c" | "d" | "e" | "f"; ref?: Thing; tuple?: [number?, (string | null)?, ...unknown[]] }): Promise<ToolOutput>
"#,
    );
}

#[test]
fn descriptions_are_cut_to_their_first_sentence() {
    let long = "word ".repeat(60);
    check(
        json!([
            {"name": "a", "description": "First sentence. Second sentence."},
            {"name": "b", "description": "Use e.g. this or i.e. that. Then more."},
            {"name": "c", "description": "First line without period\nsecond line."},
            {"name": "d", "description": "  Spaces   collapse\tinside.  "},
            {"name": "e", "description": "Version 1.2 is out! Really."},
            {"name": "f", "description": long},
            {"name": "g", "description": ""}
        ]),
        r#"
s.a(): Promise<ToolOutput> — First sentence.
s.b(): Promise<ToolOutput> — Use e.g. this or i.e. that.
s.c(): Promise<ToolOutput> — First line without period
s.d(): Promise<ToolOutput> — Spaces collapse inside.
s.e(): Promise<ToolOutput> — Version 1.2 is out!
s.f(): Promise<ToolOutput> — word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word…
s.g(): Promise<ToolOutput>
"#,
    );
}

#[test]
fn out_of_range_signature_is_empty() {
    let api = api_of(vec![json!({"name": "a"})]);
    assert_eq!(api.compact_signature(0, 1), "");
    assert_eq!(api.compact_signature(1, 0), "");
    assert_eq!(api.compact_signature(0, 0), "s.a(): Promise<ToolOutput>");
}
