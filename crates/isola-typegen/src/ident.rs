//! Identifier assignment: raw MCP names to valid, stable JavaScript/TypeScript names.

use std::collections::{BTreeMap, HashSet};

/// JavaScript reserved words (ES2015+ incl. strict mode and module code) plus `arguments` and `eval`,
/// which strict mode forbids as binding names. None of these can name a function or namespace.
const JS_RESERVED: &[&str] = &[
    "arguments",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "eval",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

/// Globals a namespace must not shadow: the standard ECMAScript globals plus what the sandbox adds.
const GLOBALS: &[&str] = &[
    "AggregateError",
    "Array",
    "ArrayBuffer",
    "Atomics",
    "BigInt",
    "BigInt64Array",
    "BigUint64Array",
    "Boolean",
    "DataView",
    "Date",
    "Error",
    "EvalError",
    "FinalizationRegistry",
    "Float16Array",
    "Float32Array",
    "Float64Array",
    "Function",
    "Infinity",
    "Int16Array",
    "Int32Array",
    "Int8Array",
    "Intl",
    "Iterator",
    "JSON",
    "Map",
    "Math",
    "NaN",
    "Number",
    "Object",
    "Promise",
    "Proxy",
    "RangeError",
    "ReferenceError",
    "Reflect",
    "RegExp",
    "Set",
    "SharedArrayBuffer",
    "String",
    "Symbol",
    "SyntaxError",
    "TypeError",
    "URIError",
    "Uint16Array",
    "Uint32Array",
    "Uint8Array",
    "Uint8ClampedArray",
    "WeakMap",
    "WeakRef",
    "WeakSet",
    "atob",
    "btoa",
    "clearInterval",
    "clearTimeout",
    "console",
    "decodeURI",
    "decodeURIComponent",
    "encodeURI",
    "encodeURIComponent",
    "escape",
    "fetch",
    "globalThis",
    "isFinite",
    "isNaN",
    "parseFloat",
    "parseInt",
    "print",
    "queueMicrotask",
    "setInterval",
    "setTimeout",
    "structuredClone",
    "undefined",
    "unescape",
];

/// Type names every namespace body refers to or could shadow; generated types never take them.
pub(crate) const RESERVED_TYPE_NAMES: &[&str] = &[
    "Array",
    "JsonValue",
    "McpContent",
    "Promise",
    "Record",
    "ToolOutput",
];

pub(crate) fn is_js_reserved(s: &str) -> bool {
    JS_RESERVED.contains(&s)
}

/// Whether `s` is an ASCII identifier (`[A-Za-z_$][A-Za-z0-9_$]*`) usable unquoted as a property name.
pub(crate) fn is_identifier_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Turns a raw MCP name into a camelCase JavaScript identifier.
///
/// Words are the runs of ASCII letters and digits; everything else (`-`, `_`, `.`, `/`, spaces,
/// `$`, non-ASCII characters) separates words. The first word's leading capitals are lowered
/// (`API-get` → `apiGet`, `HTTPServer` → `httpServer`), later words are capitalised
/// (`create_issue` → `createIssue`). A leading digit gets a `_` prefix (`2fa` → `_2fa`), a reserved
/// word a `_` suffix (`delete` → `delete_`), and a name with no letters or digits becomes `unnamed`.
///
/// ```
/// use isola_typegen::to_identifier;
/// assert_eq!(to_identifier("get-sum"), "getSum");
/// assert_eq!(to_identifier("create_issue"), "createIssue");
/// assert_eq!(to_identifier("API-get-user"), "apiGetUser");
/// assert_eq!(to_identifier("delete"), "delete_");
/// ```
pub fn to_identifier(raw: &str) -> String {
    let mut out = camel_case(raw);
    if out.is_empty() {
        out.push_str("unnamed");
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if is_js_reserved(&out) {
        out.push('_');
    }
    out
}

fn camel_case(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for (i, word) in raw
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        if i == 0 {
            lower_leading_caps(word, &mut out);
        } else {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

/// `API` → `api`, `HTTPServer` → `httpServer`, `GetUser` → `getUser`, `getUser` unchanged.
fn lower_leading_caps(word: &str, out: &mut String) {
    let bytes = word.as_bytes();
    let run = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    // Keep the last capital of a run when it starts the next word (`HTTPServer`: the `S`).
    let lower = if run > 1 && bytes.get(run).is_some_and(u8::is_ascii_lowercase) {
        run - 1
    } else {
        run
    };
    out.push_str(&word[..lower].to_ascii_lowercase());
    out.push_str(&word[lower..]);
}

/// PascalCase type name for a raw name (a `$defs` key or a function identifier).
pub(crate) fn to_type_name(raw: &str) -> String {
    let mut out = camel_case(raw);
    if out.is_empty() {
        out.push_str("Type");
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    } else if let Some(first) = out.get(..1) {
        let upper = first.to_ascii_uppercase();
        out.replace_range(..1, &upper);
    }
    out
}

/// Identifier for a namespace (a server): [`to_identifier`], then a `_` suffix if the result would
/// shadow a global (`console` → `console_`).
pub(crate) fn namespace_identifier(raw: &str) -> String {
    let mut out = to_identifier(raw);
    if GLOBALS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// Makes `bases` unique, independently of their order: names that collide are ranked by
/// `(sort_key, position)`; the first keeps its name, the others get `_2`, `_3`, … (skipping names
/// already in use).
pub(crate) fn dedupe(bases: Vec<String>, sort_keys: &[&str]) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, base) in bases.iter().enumerate() {
        groups.entry(base.as_str()).or_default().push(i);
    }
    let mut used: HashSet<String> = bases.iter().cloned().collect();
    let mut out = bases.clone();
    for (base, mut members) in groups {
        if members.len() < 2 {
            continue;
        }
        members.sort_by_key(|&i| (sort_keys.get(i).copied().unwrap_or(""), i));
        let mut n = 2usize;
        for &i in &members[1..] {
            let name = loop {
                let candidate = format!("{base}_{n}");
                n += 1;
                if !used.contains(&candidate) {
                    break candidate;
                }
            };
            used.insert(name.clone());
            out[i] = name;
        }
    }
    out
}
