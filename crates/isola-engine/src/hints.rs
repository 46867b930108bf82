//! Hints for the mistakes scripts (and the models writing them) make most: a namespace or
//! function that does not exist. QuickJS says only "not a function"; the engine knows the API
//! and the source, so it can say which name was wrong and what was probably meant.

use isola_protocol::ExecError;

use crate::api::ApiState;

/// Improve `err` in place where the API explains it.
pub fn improve(err: &mut ExecError, source: &str, api: &ApiState) {
    if err.name == "ReferenceError"
        && let Some(name) = err.message.strip_suffix(" is not defined")
    {
        let namespaces: Vec<&str> = api
            .api
            .namespaces
            .iter()
            .map(|n| n.ident.as_str())
            .collect();
        if let Some(best) = suggest(name, &namespaces) {
            err.hint = Some(format!(
                "did you mean `{best}`? The API's namespaces are: {}",
                namespaces.join(", ")
            ));
        } else if !namespaces.is_empty() && looks_like_namespace_use(source, err) {
            err.hint = Some(format!(
                "the API's namespaces are: {}",
                namespaces.join(", ")
            ));
        }
        return;
    }
    if err.name == "TypeError" && err.message == "not a function" {
        let Some(pos) = &err.position else { return };
        let Some(callee) = callee_at(source, pos.line, pos.column) else {
            return;
        };
        err.message = format!("{callee} is not a function");
        let Some((ns, func)) = callee.rsplit_once('.') else {
            return;
        };
        let Some(namespace) = api.api.namespaces.iter().find(|n| n.ident == ns) else {
            return;
        };
        let functions: Vec<&str> = namespace
            .functions
            .iter()
            .map(|f| f.ident.as_str())
            .collect();
        // The MCP tool name written as is (`fs.read_text_file`) maps straight to its function.
        let by_tool = namespace
            .functions
            .iter()
            .find(|f| f.tool == func)
            .map(|f| f.ident.as_str());
        let best = by_tool.or_else(|| suggest(func, &functions));
        err.hint = Some(match best {
            Some(b) => format!("did you mean `{ns}.{b}`?"),
            None if functions.is_empty() => {
                format!("`{ns}` has no functions (its server has no tools)")
            }
            None => format!("`{ns}` has: {}", preview(&functions)),
        });
    }
}

fn looks_like_namespace_use(source: &str, err: &ExecError) -> bool {
    let Some(pos) = &err.position else {
        return false;
    };
    let line = source
        .lines()
        .nth(pos.line.saturating_sub(1) as usize)
        .unwrap_or("");
    let rest: String = line
        .chars()
        .skip(pos.column.saturating_sub(1) as usize)
        .collect();
    rest.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_' || c == '$')
        .starts_with('.')
}

fn preview(names: &[&str]) -> String {
    let mut s = names
        .iter()
        .take(12)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 12 {
        s.push_str(&format!(", … ({} in all)", names.len()));
    }
    s
}

/// The member expression (`a.b.c`) whose last part starts at (line, column), 1-based.
fn callee_at(source: &str, line: u32, column: u32) -> Option<String> {
    let text = source.lines().nth(line.checked_sub(1)? as usize)?;
    let chars: Vec<char> = text.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut end = column.checked_sub(1)? as usize;
    if end >= chars.len() {
        return None;
    }
    while end < chars.len() && ident(chars[end]) {
        end += 1;
    }
    let mut start = column as usize - 1;
    while start > 0 && (ident(chars[start - 1]) || chars[start - 1] == '.') {
        start -= 1;
    }
    let s: String = chars[start..end].iter().collect();
    (!s.is_empty() && !s.starts_with('.')).then_some(s)
}

/// The closest candidate, if it is close enough to be what was meant.
pub fn suggest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let target = norm(name);
    if let Some(exact) = candidates.iter().find(|c| norm(c) == target) {
        return Some(exact);
    }
    let (best, dist) = candidates
        .iter()
        .map(|c| (*c, distance(&target, &norm(c))))
        .min_by_key(|(_, d)| *d)?;
    let allowed = (target.chars().count() / 3).max(2);
    (dist <= allowed).then_some(best)
}

/// Levenshtein distance (in chars).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let c = ["readTextFile", "writeFile", "listDirectory"];
        assert_eq!(suggest("readFileText", &c), None);
        assert_eq!(suggest("readTextfile", &c), Some("readTextFile"));
        assert_eq!(suggest("read_text_file", &c), Some("readTextFile"));
        assert_eq!(suggest("listDirectry", &c), Some("listDirectory"));
        assert_eq!(suggest("zzz", &c), None);
    }

    #[test]
    fn callees() {
        assert_eq!(
            callee_at("return await ghost.any({})", 1, 20).as_deref(),
            Some("ghost.any")
        );
        assert_eq!(
            callee_at("  x = fs.read_file({})", 1, 10).as_deref(),
            Some("fs.read_file")
        );
        assert_eq!(callee_at("f()", 1, 1).as_deref(), Some("f"));
    }
}
