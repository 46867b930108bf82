//! The typed API as the engine uses it: the generated TypeScript plus, per binding, where a call
//! goes and how its arguments are checked.

use isola_typegen::{Api, ServerSpec, ToolEffect, ToolSpec};
use serde_json::Value;

/// One callable function of the API.
pub struct Binding {
    /// `github.createIssue`.
    pub function: String,
    pub server: String,
    /// The MCP tool name.
    pub tool: String,
    /// What calling it does (from its annotations, which carry the config's overrides).
    pub effect: ToolEffect,
    /// `None` when the tool's input schema could not be compiled (the call is then unchecked).
    validator: Option<jsonschema::Validator>,
}

/// The API of every connected server, ready to execute against. Immutable: rebuilt whole when a
/// server's tool list changes.
pub struct ApiState {
    pub api: Api,
    pub bindings: Vec<Binding>,
    pub namespaces: Vec<isola_protocol::Namespace>,
    /// [`Api::declarations`] of the whole API, made when first needed (the type check).
    declarations: std::sync::OnceLock<String>,
}

impl ApiState {
    pub fn build(servers: &[ServerSpec]) -> Self {
        let api = Api::build(servers);
        let mut bindings = Vec::new();
        let mut namespaces = Vec::new();
        for ns in &api.namespaces {
            let mut functions = Vec::new();
            let mut positional = std::collections::BTreeMap::new();
            for f in &ns.functions {
                let validator = match jsonschema::validator_for(&f.input_schema) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::warn!(
                            server = %ns.server, tool = %f.tool,
                            "the tool's inputSchema does not compile; its arguments will not be checked: {e}"
                        );
                        None
                    }
                };
                bindings.push(Binding {
                    function: format!("{}.{}", ns.ident, f.ident),
                    server: ns.server.clone(),
                    tool: f.tool.clone(),
                    effect: f.effect(),
                    validator,
                });
                functions.push(f.ident.clone());
                let names: Vec<String> = f.positional().into_iter().map(|(n, _)| n).collect();
                if !names.is_empty() {
                    positional.insert(f.ident.clone(), names);
                }
            }
            namespaces.push(isola_protocol::Namespace {
                name: ns.ident.clone(),
                functions,
                positional,
            });
        }
        Self {
            api,
            bindings,
            namespaces,
            declarations: std::sync::OnceLock::new(),
        }
    }

    /// The whole API's TypeScript declarations (what `isola types` prints).
    pub fn declarations(&self) -> &str {
        self.declarations
            .get_or_init(|| self.api.declarations(None))
    }

    /// The binding a script names as `namespace.function`.
    pub fn binding(&self, function: &str) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.function == function)
    }
}

/// A plan's reference to a step's result (`{"$isola.ref": "#1.id"}`, or a string with `⟦#1.id⟧`
/// in it): a value known after apply, which no schema check can judge yet.
pub fn is_reference(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.len() == 1 && m.get(REF_KEY).is_some_and(Value::is_string),
        Value::String(s) => s.contains("\u{27e6}#"),
        _ => false,
    }
}

/// The key of a reference to a planned step's result, in a plan's arguments.
pub const REF_KEY: &str = "$isola.ref";

impl Binding {
    /// Check arguments against the tool's input schema. The error names every offending path.
    pub fn validate(&self, args: &Value) -> Result<(), String> {
        self.check(args, false)
    }

    /// [`Binding::validate`] in plan mode: a reference to a planned result passes where it
    /// stands (its value is known only after apply, when the call is checked again).
    pub fn validate_planned(&self, args: &Value) -> Result<(), String> {
        self.check(args, true)
    }

    fn check(&self, args: &Value, references: bool) -> Result<(), String> {
        let Some(v) = &self.validator else {
            return Ok(());
        };
        // The fast check first: collecting errors costs more, and almost every call is valid.
        if v.is_valid(args) {
            return Ok(());
        }
        let problems: Vec<String> = v
            .iter_errors(args)
            .filter(|e| !(references && is_reference(e.instance())))
            .take(5)
            .map(|e| {
                let path = e.instance_path().to_string();
                let at = if path.is_empty() {
                    "the argument object".to_string()
                } else {
                    format!("`{path}`")
                };
                format!("{at}: {e}")
            })
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "invalid arguments for {} (tool `{}` of server `{}`): {}",
            self.function,
            self.tool,
            self.server,
            problems.join("; ")
        ))
    }
}

/// Convert an MCP tool (as JSON) to the generator's input.
pub fn tool_spec(tool: &Value) -> ToolSpec {
    let text = |k: &str| tool.get(k).and_then(Value::as_str).map(str::to_string);
    ToolSpec {
        name: text("name").unwrap_or_default(),
        title: text("title"),
        description: text("description"),
        input_schema: tool
            .get("inputSchema")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object"})),
        output_schema: tool.get("outputSchema").cloned(),
        annotations: tool.get("annotations").cloned(),
    }
}
