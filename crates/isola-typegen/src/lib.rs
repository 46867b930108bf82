//! Turns MCP tool lists into the typed TypeScript API that Code Mode scripts call.
//!
//! Each MCP server becomes one namespace (`github`), each tool one async function
//! (`github.createIssue(input)`), and each JSON Schema a TypeScript type. [`Api::build`] assigns
//! the identifiers; [`Api::declarations`] renders the full `.d.ts` text, [`Api::compact`] one line
//! per tool for listings, and [`Api::function_declaration`] one tool with its types (for
//! `describe`). Rendering never fails: what a schema says that TypeScript cannot is dropped with a
//! `/* dropped: … */` comment.
//!
//! ```
//! use isola_typegen::{Api, ServerSpec, ToolSpec};
//! use serde_json::json;
//!
//! let api = Api::build(&[ServerSpec {
//!     name: "github".into(),
//!     tools: vec![ToolSpec {
//!         name: "create_issue".into(),
//!         title: None,
//!         description: Some("Create a new issue. Needs push access.".into()),
//!         input_schema: json!({
//!             "type": "object",
//!             "properties": {"repo": {"type": "string"}, "body": {"type": "string"}},
//!             "required": ["repo"]
//!         }),
//!         output_schema: None,
//!         annotations: None,
//!     }],
//! }]);
//! assert_eq!(
//!     api.compact(None),
//!     "github.createIssue(input: { repo: string; body?: string }): Promise<ToolOutput> — Create a new issue.\n"
//! );
//! let dts = api.declarations(None);
//! assert!(dts.contains("function createIssue(input: CreateIssueInput): Promise<ToolOutput>;"));
//! assert_eq!(api.find("github", "createIssue").map(|(_, f)| f.tool.as_str()), Some("create_issue"));
//! ```
//!
//! # Identifiers
//!
//! - **Functions**: [`to_identifier`] of the tool name: camelCase over the ASCII letter/digit runs
//!   (`get-sum` → `getSum`, `create_issue` → `createIssue`, `API-get-user` → `apiGetUser`); every
//!   other character (`-_./ $`, spaces, non-ASCII) separates words; a leading digit gets a `_`
//!   prefix (`2fa` → `_2fa`); reserved words (incl. strict-mode ones, `await`, `eval`,
//!   `arguments`) get a `_` suffix (`delete` → `delete_`); a name with no ASCII letter or digit
//!   becomes `unnamed`.
//! - **Namespaces**: the same for the server name (its key in the `mcpServers` config), plus a
//!   `_` suffix when the result would shadow a standard ECMAScript global or a sandbox global
//!   (`console` → `console_`, `setTimeout` → `setTimeout_`, `undefined` → `undefined_`).
//!   Contextual keywords (`type`, `get`, `async`, `of`) and TypeScript type keywords (`string`,
//!   `object`) are valid namespace and function names and are kept.
//! - **Collisions** (two names mapping to one identifier) are resolved without regard to listing
//!   order: the colliding names are sorted by their raw name; the first keeps the identifier, the
//!   others get `_2`, `_3`, … in that order. [`ApiFunction::tool`] keeps the original MCP name.
//! - **Type names** (inside a namespace): `<Function>Input`, `<Function>Output`, and for each `$ref`
//!   target its `$defs`/`definitions` key in PascalCase (`richTextRequest` → `RichTextRequest`; other
//!   JSON pointers use their last non-keyword segment). Being PascalCase, they never hit a TypeScript
//!   type keyword (`string`, `number`, …). Equal definitions repeated across tools (same schema
//!   text, same referenced definitions) share one type. Clashes get `2`, `3`, … appended, in
//!   tool-name order; `JsonValue`, `McpContent`, `ToolOutput`, `Promise`, `Record`, `Array` are never
//!   used.
//! - **Repeated objects**: an object type written over several lines (documented properties, or
//!   too long for one) that occurs more than once inside a namespace's types is written once, as a
//!   named type: the `$defs` type it equals, else a new one named after the property where it
//!   first occurs, singular for array elements (`entities: {…}[]` → `Entity`, `matches` →
//!   `Match`; `Item` appended when the name does not look plural), after every other name is
//!   given. Outer objects are shared before the objects inside them; roots (`…Input`,
//!   `…Output`) stay as they are.
//!
//! # Schema mapping
//!
//! - `required` decides `?`; a tool whose input has no required property takes `input?`.
//! - `additionalProperties: false` → closed object; a schema → index signature `[key: string]: T`
//!   (widened by the property types, as TypeScript requires); `true` → `[key: string]: unknown`.
//!   **Absent** → closed when the schema lists `properties`, else a free-form
//!   `{ [key: string]: unknown }`. This holds for inputs and outputs alike.
//! - Arrays → `T[]`; tuples (`prefixItems`, array `items`) → `[A, B?, ...R[]]`: elements past
//!   `minItems` are optional, the rest comes from `items`/`additionalItems` (`false` closes it).
//! - `enum`/`const` → literal unions; `anyOf`/`oneOf` → union; `allOf` → intersection; `type` arrays
//!   and OpenAPI `nullable: true` → unions with `null`.
//! - `$ref` into `$defs`/`definitions` (or any `#/…` JSON pointer, `#` for the root) → named types,
//!   recursion included. A cycle of aliases TypeScript cannot express degrades to `unknown`.
//! - `not`, `if`/`then`/`else`, `patternProperties`, `dependentSchemas`, `propertyNames`,
//!   `contains`, external `$ref`s and the like are dropped with a `/* dropped: … */` comment (the type
//!   keeps what the rest of the schema says, `unknown` if nothing).
//! - Descriptions become JSDoc; so do `@default`, `@example`, `@format`, `@integer`, `@minimum`,
//!   `@maximum`, `@exclusiveMinimum`, `@exclusiveMaximum`, `@multipleOf`, `@minLength`,
//!   `@maxLength`, `@minItems`, `@maxItems`, `@uniqueItems`, `@pattern`, `@deprecated`. Schema
//!   `title`s are not rendered (generators derive them from property names). A function whose
//!   effect ([`ToolEffect::from_annotations`]) is not a write gets `@effect read` or
//!   `@effect destructive`; `@idempotent` and `@openWorld` follow those hints when `true`.
//! - Without an `outputSchema` a function returns `Promise<ToolOutput>`; the prelude
//!   ([`Api::prelude`]) declares it and documents how Isola unwraps an MCP result into it. The
//!   declarations include the prelude only when some function returns `ToolOutput`.

mod effect;
mod ident;
mod render;
mod schema;
mod share;
mod ty;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use effect::{EffectClass, ToolEffect};
pub use ident::to_identifier;
use render::Plan;

/// One tool as listed by an MCP server (`tools/list`); deserialises from the MCP JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// MCP `ToolAnnotations` (`readOnlyHint`, `destructiveHint`, `idempotentHint`,
    /// `openWorldHint`, `title`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
}

/// An MCP server and its tools.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpec {
    /// The server's key in the `mcpServers` config.
    pub name: String,
    pub tools: Vec<ToolSpec>,
}

/// The typed API over a set of servers.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    pub namespaces: Vec<ApiNamespace>,
}

/// One server as a JavaScript global.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiNamespace {
    /// The JavaScript global.
    pub ident: String,
    /// The server's key in the `mcpServers` config.
    pub server: String,
    pub functions: Vec<ApiFunction>,
}

/// One tool as a member function of its namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiFunction {
    /// The JavaScript member name.
    pub ident: String,
    /// The original MCP tool name.
    pub tool: String,
    /// The tool's description (its title when it has no description).
    pub description: Option<String>,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    pub annotations: Option<Value>,
}

/// The input-schema keyword with which a tool Isola itself serves (the `state` namespace) also
/// takes its leading properties as arguments in order: `"x-isola-positional": ["key", "value"]`
/// makes `set(key, value)` the same call as `set({ key, value })`.
pub const POSITIONAL_KEY: &str = "x-isola-positional";

/// Most arguments a function takes in order.
const MAX_POSITIONAL: usize = 4;

impl ApiFunction {
    /// What calling it does, from its annotations.
    pub fn effect(&self) -> ToolEffect {
        ToolEffect::from_annotations(self.annotations.as_ref())
    }

    /// The properties it also takes as arguments in order, each with whether it is required
    /// ([`POSITIONAL_KEY`]). Empty unless the keyword names at most four distinct properties of
    /// the schema, each a plain identifier (not reserved, not `__`-prefixed), no required one
    /// after an optional one: anything else is ignored whole, so a server cannot make the
    /// declarations or the prelude say something odd.
    pub fn positional(&self) -> Vec<(String, bool)> {
        let schema = &self.input_schema;
        let Some(names) = schema.get(POSITIONAL_KEY).and_then(Value::as_array) else {
            return Vec::new();
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out: Vec<(String, bool)> = Vec::new();
        for name in names {
            let usable = name.as_str().filter(|n| {
                ident::is_identifier_name(n)
                    && !ident::is_js_reserved(n)
                    && !n.starts_with("__")
                    && properties.is_some_and(|p| p.contains_key(*n))
                    && !out.iter().any(|(o, _)| o == n)
            });
            match usable {
                Some(n) if out.len() < MAX_POSITIONAL => {
                    out.push((n.to_owned(), required.contains(&n)));
                }
                _ => return Vec::new(),
            }
        }
        if out.windows(2).any(|w| !w[0].1 && w[1].1) {
            return Vec::new();
        }
        out
    }
}

impl Api {
    /// Assigns identifiers (see the crate docs); namespaces and functions keep the given order.
    pub fn build(servers: &[ServerSpec]) -> Api {
        let server_names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        let ns_idents = ident::dedupe(
            servers
                .iter()
                .map(|s| ident::namespace_identifier(&s.name))
                .collect(),
            &server_names,
        );
        let namespaces = servers
            .iter()
            .zip(ns_idents)
            .map(|(server, ident)| {
                let tool_names: Vec<&str> = server.tools.iter().map(|t| t.name.as_str()).collect();
                let fn_idents = ident::dedupe(
                    server
                        .tools
                        .iter()
                        .map(|t| to_identifier(&t.name))
                        .collect(),
                    &tool_names,
                );
                let functions = server
                    .tools
                    .iter()
                    .zip(fn_idents)
                    .map(|(tool, ident)| ApiFunction {
                        ident,
                        tool: tool.name.clone(),
                        description: tool
                            .description
                            .clone()
                            .filter(|d| !d.trim().is_empty())
                            .or_else(|| tool.title.clone())
                            .or_else(|| {
                                tool.annotations
                                    .as_ref()
                                    .and_then(|a| a.get("title"))
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                            }),
                        input_schema: tool.input_schema.clone(),
                        output_schema: tool.output_schema.clone(),
                        annotations: tool.annotations.clone(),
                    })
                    .collect();
                ApiNamespace {
                    ident,
                    server: server.name.clone(),
                    functions,
                }
            })
            .collect();
        Api { namespaces }
    }

    /// The full `.d.ts` text: a header line, the shared prelude ([`Api::prelude`]) when a selected
    /// function returns `ToolOutput`, then every namespace (or those whose ident or server name is
    /// in `only`).
    pub fn declarations(&self, only: Option<&[&str]>) -> String {
        let needs_prelude = self
            .selected(only)
            .any(|ns| ns.functions.iter().any(|f| f.output_schema.is_none()));
        let mut out = String::from(if needs_prelude {
            render::PRELUDE
        } else {
            render::HEADER
        });
        for ns in self.selected(only) {
            out.push('\n');
            let all: Vec<usize> = (0..ns.functions.len()).collect();
            Plan::build(ns).write_namespace(ns, &all, &mut out);
        }
        out
    }

    /// The top of the declarations when some function returns `ToolOutput`: their header line,
    /// then the shared types: `ToolOutput` (what a function without an outputSchema returns,
    /// documented with how Isola unwraps an MCP result into it) and the `JsonValue` and
    /// `McpContent` it is made of. [`Api::declarations`] starts with it when it needs it; put it
    /// before a [`Api::function_declaration`] or [`Api::functions_declaration`] that returns
    /// `ToolOutput` to make it stand alone.
    pub fn prelude() -> &'static str {
        render::PRELUDE
    }

    /// One tool's declaration with every type it uses, inside its `declare namespace` (type names
    /// as in [`Api::declarations`]; `ToolOutput` is in [`Api::prelude`]). `None` if no such
    /// namespace/function identifier.
    pub fn function_declaration(&self, ns: &str, func: &str) -> Option<String> {
        let namespace = self.namespaces.iter().find(|n| n.ident == ns)?;
        let index = namespace.functions.iter().position(|f| f.ident == func)?;
        let mut out = String::new();
        Plan::build(namespace).write_namespace(namespace, &[index], &mut out);
        Some(out)
    }

    /// Several functions of one namespace (by identifier, in the given order) in one
    /// `declare namespace`, each type they use written once (type names as in
    /// [`Api::declarations`]). `None` if the namespace or any function is unknown.
    pub fn functions_declaration(&self, ns: &str, funcs: &[&str]) -> Option<String> {
        let namespace = self.namespaces.iter().find(|n| n.ident == ns)?;
        let indices = funcs
            .iter()
            .map(|func| namespace.functions.iter().position(|f| f.ident == *func))
            .collect::<Option<Vec<usize>>>()?;
        let mut out = String::new();
        Plan::build(namespace).write_namespace(namespace, &indices, &mut out);
        Some(out)
    }

    /// One line per tool (see [`Api::compact_signature`]) for every namespace, or those whose
    /// ident or server name is in `only`.
    pub fn compact(&self, only: Option<&[&str]>) -> String {
        let mut out = String::new();
        for ns in self.selected(only) {
            let plan = Plan::build(ns);
            for i in 0..ns.functions.len() {
                out.push_str(&plan.compact_signature(ns, i));
                out.push('\n');
            }
        }
        out
    }

    /// `ns.fn(input: { a: string; b?: number }): Promise<ToolOutput> — First sentence.`: small
    /// types inline, objects nested deeper than one level (or long ones) as `{...}`, named types by
    /// name, long unions cut with `...`. Empty string for an out-of-range index.
    ///
    /// Each call builds the namespace's type table (type names are namespace-wide): fine for a
    /// handful of lines, use [`Api::compact`] for whole listings.
    pub fn compact_signature(&self, ns_index: usize, fn_index: usize) -> String {
        match self.namespaces.get(ns_index) {
            Some(ns) if fn_index < ns.functions.len() => {
                Plan::build(ns).compact_signature(ns, fn_index)
            }
            _ => String::new(),
        }
    }

    /// Looks a function up by its namespace and function identifiers.
    pub fn find(&self, ns_ident: &str, fn_ident: &str) -> Option<(&ApiNamespace, &ApiFunction)> {
        let ns = self.namespaces.iter().find(|n| n.ident == ns_ident)?;
        let f = ns.functions.iter().find(|f| f.ident == fn_ident)?;
        Some((ns, f))
    }

    fn selected<'a>(
        &'a self,
        only: Option<&'a [&'a str]>,
    ) -> impl Iterator<Item = &'a ApiNamespace> {
        self.namespaces.iter().filter(move |ns| {
            only.is_none_or(|only| only.iter().any(|o| *o == ns.ident || *o == ns.server))
        })
    }
}
