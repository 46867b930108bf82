//! Ranking the API's functions for a query: BM25F over each function's names, parameter names
//! and description, with identifiers split into words.
//!
//! Every function is one document with four fields, each weighted and length-normalised on its
//! own (BM25F): its names (function identifier and MCP tool name), its namespace (identifier and
//! server name), its parameter names, and its description. Text is split into words at
//! punctuation and at case changes inside identifiers (`createIssue`, `read_text_file`,
//! `API-get-user` all give their words), lowercased, stripped of stop words and of plural
//! endings (`branches` → `branch`, `entities` → `entity`). A query naming a function exactly
//! (`github.createIssue`, `create_issue`) puts it first.
//!
//! ```
//! use isola_typegen::{Api, ServerSpec, ToolSpec};
//! use isola_codemode::search::SearchIndex;
//! use serde_json::json;
//!
//! let tool = |name: &str, description: &str| ToolSpec {
//!     name: name.into(),
//!     title: None,
//!     description: Some(description.into()),
//!     input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
//!     output_schema: None,
//!     annotations: None,
//! };
//! let api = Api::build(&[ServerSpec {
//!     name: "fs".into(),
//!     tools: vec![tool("read_text_file", "Read a file as text."), tool("move_file", "Move or rename a file.")],
//! }]);
//! let index = SearchIndex::build(&api);
//! let hits = index.search("rename files", None, 5);
//! assert_eq!(hits[0].name, "fs.moveFile");
//! ```

use std::collections::HashMap;

use isola_typegen::Api;
use serde_json::Value;

/// The fields of a document.
const NAME: usize = 0;
const NAMESPACE: usize = 1;
const PARAMS: usize = 2;
const DESCRIPTION: usize = 3;
const FIELDS: usize = 4;

/// How much a word counts in each field.
const WEIGHT: [f64; FIELDS] = [3.0, 1.0, 1.5, 1.0];
/// How much each field's length normalises its counts (BM25 `b`).
const LENGTH_NORM: [f64; FIELDS] = [0.3, 0.0, 0.5, 0.75];
/// Term-frequency saturation (BM25 `k1`).
const K1: f64 = 1.2;
/// Added to the score of a function the query names exactly.
const EXACT_BONUS: f64 = 1000.0;

/// How much a word added by [`SYNONYMS`] counts, against one the query has.
const SYNONYM_WEIGHT: f64 = 0.5;

/// Verbs tools and people name differently: a query word adds these (stemmed) words, at
/// [`SYNONYM_WEIGHT`].
const SYNONYMS: &[(&str, &[&str])] = &[
    ("open", &["create"]),
    ("new", &["create"]),
    ("make", &["create"]),
    ("add", &["create", "append", "insert"]),
    ("remove", &["delete"]),
    ("erase", &["delete"]),
    ("rename", &["move"]),
    ("fetch", &["get", "retrieve", "read"]),
    ("retrieve", &["get", "read"]),
    ("read", &["get", "retrieve"]),
    ("show", &["get", "list"]),
    ("find", &["search", "query"]),
    ("lookup", &["search", "get"]),
    ("query", &["search"]),
    ("modify", &["update", "edit"]),
    ("change", &["update", "edit"]),
    ("edit", &["update"]),
];

/// Score factor of a function whose description says it is deprecated.
const DEPRECATED_FACTOR: f64 = 0.5;

/// Words that carry no meaning for ranking.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "any", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
    "how", "i", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "some", "that",
    "the", "their", "them", "these", "this", "those", "to", "via", "was", "what", "when", "which",
    "will", "with", "you", "your",
];

/// One function of the API, ranked for a query.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// Index of its namespace in [`Api::namespaces`].
    pub namespace: usize,
    /// Index of the function in its namespace.
    pub function: usize,
    /// `namespace.function`, as a script calls it.
    pub name: String,
    pub score: f64,
}

struct Doc {
    namespace: usize,
    function: usize,
    name: String,
    /// Normalised spellings a query can name the function by exactly.
    exact: Vec<String>,
    deprecated: bool,
    /// Per field: word → count.
    terms: [HashMap<String, u32>; FIELDS],
    lengths: [f64; FIELDS],
}

/// A BM25F index over the functions of an [`Api`].
pub struct SearchIndex {
    docs: Vec<Doc>,
    /// Documents containing each word, in any field.
    document_frequency: HashMap<String, usize>,
    average_length: [f64; FIELDS],
    /// Per namespace: its identifier and server name, for the server filter.
    namespaces: Vec<(String, String)>,
}

impl SearchIndex {
    pub fn build(api: &Api) -> SearchIndex {
        let mut docs = Vec::new();
        for (n, ns) in api.namespaces.iter().enumerate() {
            let ns_words = union(&[identifier_words(&ns.ident), identifier_words(&ns.server)]);
            for (f, func) in ns.functions.iter().enumerate() {
                let name_words =
                    union(&[identifier_words(&func.ident), identifier_words(&func.tool)]);
                let param_words: Vec<String> = parameter_names(&func.input_schema)
                    .iter()
                    .flat_map(|p| identifier_words(p))
                    .collect();
                let description_words = text_words(func.description.as_deref().unwrap_or(""));
                let mut fields: [Vec<String>; FIELDS] = Default::default();
                fields[NAME] = name_words;
                fields[NAMESPACE] = ns_words.clone();
                fields[PARAMS] = param_words;
                fields[DESCRIPTION] = description_words;
                let lengths = fields.clone().map(|w| w.len() as f64);
                let terms = fields.map(|words| {
                    let mut counts = HashMap::new();
                    for w in words {
                        *counts.entry(w).or_insert(0) += 1;
                    }
                    counts
                });
                let exact = [
                    format!("{}.{}", ns.ident, func.ident),
                    format!("{}.{}", ns.server, func.tool),
                    format!("{}.{}", ns.ident, func.tool),
                    func.ident.clone(),
                    func.tool.clone(),
                ]
                .iter()
                .map(|s| normalise(s))
                .collect();
                docs.push(Doc {
                    namespace: n,
                    function: f,
                    name: format!("{}.{}", ns.ident, func.ident),
                    exact,
                    deprecated: func
                        .description
                        .as_deref()
                        .is_some_and(|d| d.to_lowercase().contains("deprecated")),
                    terms,
                    lengths,
                });
            }
        }
        let mut document_frequency: HashMap<String, usize> = HashMap::new();
        for doc in &docs {
            let mut words: Vec<&String> = doc.terms.iter().flat_map(HashMap::keys).collect();
            words.sort();
            words.dedup();
            for w in words {
                *document_frequency.entry(w.clone()).or_insert(0) += 1;
            }
        }
        let mut average_length = [0.0; FIELDS];
        if !docs.is_empty() {
            for (f, avg) in average_length.iter_mut().enumerate() {
                *avg = docs.iter().map(|d| d.lengths[f]).sum::<f64>() / docs.len() as f64;
            }
        }
        let namespaces = api
            .namespaces
            .iter()
            .map(|ns| (ns.ident.clone(), ns.server.clone()))
            .collect();
        SearchIndex {
            docs,
            document_frequency,
            average_length,
            namespaces,
        }
    }

    /// Number of functions indexed.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Whether `server` names a namespace (by identifier or server name).
    pub fn has_namespace(&self, server: &str) -> bool {
        self.namespaces
            .iter()
            .any(|(ident, name)| ident == server || name == server)
    }

    /// The best `limit` functions for `query`, best first, optionally only those of one
    /// namespace (identifier or server name). Functions matching no word of the query are
    /// left out; a query without words lists the functions in API order.
    pub fn search(&self, query: &str, server: Option<&str>, limit: usize) -> Vec<Hit> {
        let in_scope = |doc: &Doc| {
            server.is_none_or(|s| {
                let (ident, name) = &self.namespaces[doc.namespace];
                ident == s || name == s
            })
        };
        let mut words: Vec<(String, f64)> = Vec::new();
        let given = text_words(query);
        for w in &given {
            if !words.iter().any(|(x, _)| x == w) {
                words.push((w.clone(), 1.0));
            }
        }
        for w in &given {
            let extra = SYNONYMS
                .iter()
                .find(|(from, _)| from == w)
                .map_or(&[][..], |(_, to)| *to);
            for s in extra {
                if !words.iter().any(|(x, _)| x == s) {
                    words.push(((*s).to_string(), SYNONYM_WEIGHT));
                }
            }
        }
        let exact = normalise(query.trim().trim_end_matches("()"));
        let mut hits: Vec<Hit> = self
            .docs
            .iter()
            .filter(|d| in_scope(d))
            .filter_map(|doc| {
                let mut score = self.score(doc, &words);
                if doc.deprecated {
                    score *= DEPRECATED_FACTOR;
                }
                if !exact.is_empty() && doc.exact.contains(&exact) {
                    score += EXACT_BONUS;
                }
                let keep = score > 0.0 || words.is_empty();
                keep.then(|| Hit {
                    namespace: doc.namespace,
                    function: doc.function,
                    name: doc.name.clone(),
                    score,
                })
            })
            .collect();
        // Stable: equal scores keep API order.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(limit);
        hits
    }

    fn score(&self, doc: &Doc, words: &[(String, f64)]) -> f64 {
        let n = self.docs.len() as f64;
        words
            .iter()
            .map(|(w, weight)| {
                let df = self.document_frequency.get(w).copied().unwrap_or(0) as f64;
                if df == 0.0 {
                    return 0.0;
                }
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                let tf: f64 = (0..FIELDS)
                    .map(|f| {
                        let count = f64::from(doc.terms[f].get(w).copied().unwrap_or(0));
                        if count == 0.0 {
                            return 0.0;
                        }
                        let avg = self.average_length[f].max(1.0);
                        let norm = 1.0 - LENGTH_NORM[f] + LENGTH_NORM[f] * doc.lengths[f] / avg;
                        WEIGHT[f] * count / norm
                    })
                    .sum();
                weight * idf * tf * (K1 + 1.0) / (K1 + tf)
            })
            .sum()
    }
}

/// The top-level property names of an input schema.
fn parameter_names(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

fn union(lists: &[Vec<String>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in lists.iter().flatten() {
        if !out.contains(w) {
            out.push(w.clone());
        }
    }
    out
}

/// Lowercase letters and digits only: how exact names are compared.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric() || *c == '.')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words of an identifier: split at punctuation, at lower→upper case changes
/// (`createIssue`), before the last capital of a capital run (`HTMLParser` → `html parser`) and
/// between letters and digits.
pub fn identifier_words(s: &str) -> Vec<String> {
    split(s, true)
}

/// The words of prose (descriptions, queries): split at punctuation; words written as
/// identifiers (`readTextFile`, `dry_run`) are split like identifiers, capitalised words
/// (`GitHub`) are kept whole.
pub fn text_words(s: &str) -> Vec<String> {
    split(s, false)
}

fn split(s: &str, identifier: bool) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in s.split(|c: char| !c.is_alphanumeric()) {
        if chunk.is_empty() {
            continue;
        }
        let camel = identifier || chunk.chars().next().is_some_and(char::is_lowercase);
        if camel {
            for part in camel_parts(chunk) {
                push_word(&mut out, &part);
            }
        } else {
            push_word(&mut out, chunk);
        }
    }
    out
}

fn camel_parts(chunk: &str) -> Vec<String> {
    let chars: Vec<char> = chunk.chars().collect();
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..chars.len() {
        let (prev, cur) = (chars[i - 1], chars[i]);
        let next_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
        let boundary = (prev.is_lowercase() && cur.is_uppercase())
            || (prev.is_uppercase() && cur.is_uppercase() && next_lower)
            || (prev.is_alphabetic() && cur.is_ascii_digit())
            || (prev.is_ascii_digit() && cur.is_alphabetic());
        if boundary {
            parts.push(chars[start..i].iter().collect());
            start = i;
        }
    }
    parts.push(chars[start..].iter().collect());
    parts
}

fn push_word(out: &mut Vec<String>, word: &str) {
    let lower = word.to_lowercase();
    if STOP_WORDS.contains(&lower.as_str()) {
        return;
    }
    out.push(stem(&lower));
}

/// Strips English plural endings.
pub fn stem(word: &str) -> String {
    let n = word.len();
    if n > 4 && word.ends_with("ies") {
        return format!("{}y", &word[..n - 3]);
    }
    if n > 4
        && ["sses", "ches", "shes", "xes"]
            .iter()
            .any(|e| word.ends_with(e))
    {
        return word[..n - 2].to_string();
    }
    if n > 3 && word.ends_with('s') && !["ss", "us", "is"].iter().any(|e| word.ends_with(e)) {
        return word[..n - 1].to_string();
    }
    word.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(identifier_words("createIssue"), ["create", "issue"]);
        assert_eq!(identifier_words("API-get-user"), ["api", "get", "user"]);
        assert_eq!(identifier_words("read_text_file"), ["read", "text", "file"]);
        assert_eq!(identifier_words("HTMLParser2"), ["html", "parser", "2"]);
        assert_eq!(
            identifier_words("git_diff_staged"),
            ["git", "diff", "staged"]
        );
        assert_eq!(
            text_words("Create a new issue in a GitHub repository"),
            ["create", "new", "issue", "github", "repository"]
        );
        assert_eq!(
            text_words("Switches branches; see dryRun"),
            ["switch", "branch", "see", "dry", "run"]
        );
        assert_eq!(
            text_words("list directories with sizes"),
            ["list", "directory", "size"]
        );
    }

    #[test]
    fn stems() {
        for (w, s) in [
            ("entities", "entity"),
            ("files", "file"),
            ("status", "status"),
            ("access", "access"),
            ("boxes", "box"),
            ("is", "is"),
        ] {
            assert_eq!(stem(w), s, "{w}");
        }
    }
}
