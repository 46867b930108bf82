//! The tools Isola exposes to an MCP host, and the texts that tell a model how to use them.
//!
//! Two shapes, chosen by the size of the API ([`Mode`]): a small API is embedded whole in
//! `execute`'s description and `execute` is the only tool; a large one is found with `search`,
//! read with `describe` and called from `execute`.

use std::borrow::Cow;
use std::sync::Arc;

use isola_protocol::Limits;
use isola_typegen::Api;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

/// Tool names.
pub const EXECUTE: &str = "execute";
pub const RESUME: &str = "resume";
pub const SEARCH: &str = "search";
pub const DESCRIBE: &str = "describe";

/// Default of [`crate::ServerOptions::embed_max_tokens`]: an API up to this many tokens
/// (tiktoken o200k) is embedded in `execute`'s description.
pub const DEFAULT_EMBED_MAX_TOKENS: usize = 4000;

/// Results `search` returns when the request does not say.
pub const DEFAULT_SEARCH_LIMIT: usize = 10;
/// The most results one `search` returns.
pub const MAX_SEARCH_LIMIT: usize = 50;

/// How the API reaches the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The declarations are in `execute`'s description; `execute` is the only tool.
    Embedded,
    /// `search` and `describe` find and show the API; `execute` runs scripts.
    Search,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Search => "search",
        }
    }
}

/// The tools exposed in `mode`. `declarations` is the whole API's `.d.ts` (embedded in
/// `execute` in [`Mode::Embedded`]).
pub fn tools(api: &Api, mode: Mode, declarations: &str, limits: &Limits) -> Vec<Tool> {
    let execute = tool(
        EXECUTE,
        execute_description(mode, declarations, limits),
        execute_schema(),
    )
    .with_title("Run a TypeScript script against the tools")
    .with_annotations(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(true)
            .idempotent(false)
            .open_world(true),
    );
    match mode {
        Mode::Embedded => vec![execute],
        Mode::Search => vec![
            tool(SEARCH, search_description(api), search_schema())
                .with_title("Search the tool API")
                .with_annotations(read_only()),
            tool(
                DESCRIBE,
                describe_description().to_string(),
                describe_schema(),
            )
            .with_title("Show TypeScript declarations")
            .with_annotations(read_only()),
            execute,
        ],
    }
}

/// The `resume` tool, listed by a server that keeps a journal: it continues an execution that
/// was suspended while a call waited for a person's approval.
pub fn resume_tool() -> Tool {
    tool(
        RESUME,
        "Continue an execution that `execute` returned as suspended (a call waited for a person's \
         approval). The calls it made before are answered from Isola's journal and none is sent \
         again; the call that waited is sent if it was approved (the script's await throws if it \
         was denied), and the script runs on to its end. Pass the execution id the suspended \
         result named."
            .to_string(),
        serde_json::json!({
            "type": "object",
            "properties": {
                "execution": {"type": "string", "description": "The suspended execution's id."}
            },
            "required": ["execution"],
            "additionalProperties": false
        }),
    )
    .with_title("Continue a suspended execution")
    .with_annotations(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(true)
            .idempotent(false)
            .open_world(true),
    )
}

fn read_only() -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false)
}

fn tool(name: &'static str, description: String, schema: Value) -> Tool {
    let schema: JsonObject = match schema {
        Value::Object(o) => o,
        _ => JsonObject::new(),
    };
    Tool::new(Cow::Borrowed(name), description, Arc::new(schema))
}

/// `execute`'s description: what a script may use, how to return data, the limits; in
/// [`Mode::Embedded`] followed by the declarations.
pub fn execute_description(mode: Mode, declarations: &str, limits: &Limits) -> String {
    let mut s = String::from(match mode {
        Mode::Embedded => "Run a TypeScript script against the tool API declared below",
        Mode::Search => "Run a TypeScript script against the tool API",
    });
    s.push_str(
        " and get back what it returns, its console output and a summary of its calls. One script \
         can make many calls (in parallel with Promise.all), loop, filter and join their results: use \
         it instead of calling tools one at a time, keep intermediate data in the script and return \
         only what you need.",
    );
    if mode == Mode::Search {
        s.push_str(" Find the functions with `search` and read their types with `describe` first.");
    }
    s.push_str(
        "\n\nThe script:\n\
         - is the body of an async function: use `await`, and `return` JSON-compatible values.\n\
         - calls tools as `namespace.function({ ...args })`: one object argument, returns a Promise. \
         Besides them it has standard JavaScript, `console` and `setTimeout` only: no fetch, import, \
         require, file system or network.\n",
    );
    s.push_str(&format!(
        "- limits: {} run time, {} memory, {} tool calls; the result is cut at {} and console output at {}.\n",
        duration(limits.deadline_ms),
        bytes(limits.memory_bytes),
        limits.max_tool_calls,
        bytes(limits.max_result_bytes),
        bytes(limits.max_log_bytes),
    ));
    s.push_str(
        "\nA failed run returns the error with its position in your script and often a hint: fix the script \
         and run it again.\n",
    );
    if mode == Mode::Embedded {
        s.push_str("\nThe API:\n```ts\n");
        s.push_str(declarations.trim_end());
        s.push_str("\n```\n");
    }
    s
}

/// `search`'s description, naming the namespaces.
pub fn search_description(api: &Api) -> String {
    format!(
        "Find functions of the tool API to call from `execute` scripts. Give a few keywords of the task (\"create \
         issue\", \"read file\"); get the best matches as one-line TypeScript signatures with a short description. \
         Then `describe` the ones you will use. Namespaces: {}.",
        namespace_list(api)
    )
}

/// `describe`'s description.
pub fn describe_description() -> &'static str {
    "Get the full TypeScript declarations of API functions (parameter and result types, docs, and hints such as \
     @effect read or @effect destructive) to call them correctly from `execute`. Pass names as `search` shows them \
     (\"github.createIssue\"), or a namespace (\"github\") for all its functions."
}

/// The server's `instructions` for the host.
pub fn instructions(api: &Api, mode: Mode) -> String {
    let api_part = if api.namespaces.is_empty() {
        "No MCP server with tools is connected.".to_string()
    } else {
        format!("Namespaces: {}.", namespace_list(api))
    };
    let how = match mode {
        Mode::Embedded => {
            "Use `execute` to run one TypeScript script that calls many tools; its description declares the API."
        }
        Mode::Search => {
            "Use `search` to find functions, `describe` to read their types, and `execute` to run one TypeScript script that calls many tools."
        }
    };
    format!(
        "Isola fronts your MCP servers with Code Mode: their tools are a typed TypeScript API. {how} {api_part}"
    )
}

/// `github (26 functions), fs (14 functions)`.
pub fn namespace_list(api: &Api) -> String {
    if api.namespaces.is_empty() {
        return "no namespaces: no MCP server with tools is connected".to_string();
    }
    api.namespaces
        .iter()
        .map(|ns| {
            let n = ns.functions.len();
            format!(
                "{} ({n} function{})",
                ns.ident,
                if n == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn execute_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "code": {
                "type": "string",
                "description": "TypeScript: the body of an async function; `return` the result."
            }
        },
        "required": ["code"],
        "additionalProperties": false
    })
}

fn search_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "Keywords of what you want to do, e.g. \"list open pull requests\"."},
            "server": {"type": "string", "description": "Only search this namespace."},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT, "default": DEFAULT_SEARCH_LIMIT}
        },
        "required": ["query"],
        "additionalProperties": false
    })
}

fn describe_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "names": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "Functions (\"github.createIssue\") or namespaces (\"github\")."
            }
        },
        "required": ["names"],
        "additionalProperties": false
    })
}

/// `30 s`, `500 ms`, `2 min`.
pub fn duration(ms: u64) -> String {
    if ms.is_multiple_of(60_000) && ms >= 120_000 {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// `128 MiB`, `64 KiB`, `1000 bytes`.
pub fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(duration(30_000), "30 s");
        assert_eq!(duration(1500), "1500 ms");
        assert_eq!(duration(300_000), "5 min");
        assert_eq!(bytes(128 * 1024 * 1024), "128 MiB");
        assert_eq!(bytes(65536), "64 KiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }
}
