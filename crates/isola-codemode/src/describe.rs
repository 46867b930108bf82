//! `describe`: function or namespace names → their full TypeScript declarations.

use isola_typegen::{Api, ApiNamespace};

use crate::search::SearchIndex;

/// What `describe` made of the names it was given.
#[derive(Debug, Default)]
pub struct Described {
    /// The declarations of every name found (with the shared prelude when they use its types).
    pub text: String,
    /// The names not found, each with a suggestion where there is one.
    pub unknown: Vec<String>,
}

/// The declarations of `names`: `namespace.function` (or the MCP tool name,
/// `namespace.tool_name`), or a namespace alone for all its functions. Namespaces may be given
/// by identifier or server name. Functions of one namespace share one `declare namespace`.
pub fn describe(api: &Api, index: &SearchIndex, names: &[String]) -> Described {
    // Per namespace, in order of first mention: the functions wanted.
    let mut wanted: Vec<(&ApiNamespace, Vec<&str>)> = Vec::new();
    let mut unknown = Vec::new();
    for raw in names {
        let name = raw.trim().trim_end_matches("()").trim();
        let found = resolve(api, name);
        let Some((ns, funcs)) = found else {
            unknown.push(match suggest(api, index, name) {
                Some(best) => format!("`{name}` (did you mean `{best}`?)"),
                None => format!("`{name}`"),
            });
            continue;
        };
        match wanted.iter_mut().find(|(n, _)| n.ident == ns.ident) {
            Some((_, list)) => {
                for f in funcs {
                    if !list.contains(&f) {
                        list.push(f);
                    }
                }
            }
            None => wanted.push((ns, funcs)),
        }
    }
    let mut body = String::new();
    for (ns, funcs) in &wanted {
        if let Some(text) = api.functions_declaration(&ns.ident, funcs) {
            if !body.is_empty() {
                body.push('\n');
            }
            body.push_str(&text);
        }
    }
    let mut text = String::new();
    if ["ToolOutput", "JsonValue", "McpContent"]
        .iter()
        .any(|t| body.contains(t))
    {
        // The prelude alone: the shared types and how results are unwrapped.
        text.push_str(Api::prelude());
        text.push('\n');
    }
    text.push_str(&body);
    Described { text, unknown }
}

fn resolve<'a>(api: &'a Api, name: &str) -> Option<(&'a ApiNamespace, Vec<&'a str>)> {
    let namespace = |n: &str| {
        api.namespaces
            .iter()
            .find(|ns| ns.ident == n || ns.server == n)
    };
    if let Some(ns) = namespace(name) {
        return Some((ns, ns.functions.iter().map(|f| f.ident.as_str()).collect()));
    }
    let (n, f) = name.rsplit_once('.')?;
    let ns = namespace(n)?;
    let func = ns
        .functions
        .iter()
        .find(|func| func.ident == f || func.tool == f)?;
    Some((ns, vec![func.ident.as_str()]))
}

/// The function `name` most likely meant: the closest name by edit distance when it is close,
/// else the best search hit.
fn suggest(api: &Api, index: &SearchIndex, name: &str) -> Option<String> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric() || *c == '.')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let target = norm(name);
    let close = api
        .namespaces
        .iter()
        .flat_map(|ns| {
            ns.functions
                .iter()
                .map(move |f| format!("{}.{}", ns.ident, f.ident))
        })
        .map(|full| (isola_engine::edit_distance(&target, &norm(&full)), full))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= (target.chars().count() / 4).max(2))
        .map(|(_, full)| full);
    close.or_else(|| {
        index
            .search(name, None, 1)
            .into_iter()
            .next()
            .map(|hit| hit.name)
    })
}
