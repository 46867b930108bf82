//! The Code Mode view of an API: what a model is shown and how its results read.
//!
//! Both fronts that put a model in front of the API use this crate: Isola's MCP server
//! (`isola mcp`, crate `isola-server`) and Isola's own agent (`isola-agent`). It holds
//!
//! - [`View`]: one version of the API as a model sees it: `execute` alone with the
//!   declarations embedded in its description when they are small ([`Mode::Embedded`]), or
//!   `search` + `describe` + `execute` ([`Mode::Search`]); the texts are in [`descriptions`];
//! - [`search`]: the BM25F index behind `search`, and [`describe`];
//! - [`render`]: an execution record as a model reads it (result, console, the error with its
//!   position, code frame and hint, a one-line summary of the calls).
//!
//! ```
//! use std::sync::Arc;
//! use isola_codemode::{View, ViewOptions, Mode};
//! let api = Arc::new(isola_engine::ApiState::build(&[]));
//! let view = View::build(api, &isola_protocol::Limits::default(), &ViewOptions::default());
//! assert_eq!(view.mode, Mode::Embedded);
//! assert_eq!(view.tools.len(), 1); // execute
//! ```

pub mod describe;
pub mod descriptions;
pub mod render;
pub mod search;

use std::sync::Arc;

use isola_engine::ApiState;
use rmcp::model::Tool;

use crate::describe::describe;
pub use crate::descriptions::Mode;
use crate::search::SearchIndex;

/// How the API is presented to a model.
#[derive(Clone, Debug)]
pub struct ViewOptions {
    /// An API whose declarations take at most this many tokens (tiktoken o200k) is embedded in
    /// `execute`'s description and `execute` is the only tool; a larger one is served through
    /// `search` and `describe`.
    pub embed_max_tokens: usize,
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self {
            embed_max_tokens: descriptions::DEFAULT_EMBED_MAX_TOKENS,
        }
    }
}

/// What a model sees of one version of the API: the tools, their descriptions, the
/// declarations and the search index.
pub struct View {
    pub mode: Mode,
    pub api: Arc<ApiState>,
    /// The whole API's `.d.ts`.
    pub declarations: String,
    /// Tokens of [`View::declarations`] (tiktoken o200k).
    pub tokens: usize,
    /// The tools listed to the host.
    pub tools: Vec<Tool>,
    pub index: SearchIndex,
}

impl View {
    pub fn build(
        api: Arc<ApiState>,
        engine_limits: &isola_protocol::Limits,
        options: &ViewOptions,
    ) -> View {
        let declarations = api.api.declarations(None);
        let tokens = isola_tokens::count_tokens(&declarations);
        let mode = if tokens <= options.embed_max_tokens {
            Mode::Embedded
        } else {
            Mode::Search
        };
        let tools = descriptions::tools(&api.api, mode, &declarations, engine_limits);
        let index = SearchIndex::build(&api.api);
        View {
            mode,
            api,
            declarations,
            tokens,
            tools,
            index,
        }
    }

    /// The text `search` returns: one compact signature per match, best first.
    pub fn search(
        &self,
        query: &str,
        server: Option<&str>,
        limit: usize,
    ) -> Result<String, String> {
        let api = &self.api.api;
        if let Some(s) = server
            && !self.index.has_namespace(s)
        {
            return Err(format!(
                "no namespace `{s}`; the namespaces are: {}",
                descriptions::namespace_list(api)
            ));
        }
        let hits = self.index.search(query, server, limit);
        if hits.is_empty() {
            return Ok(format!(
                "no function matches `{query}`; try other words, or `describe` a whole namespace: {}\n",
                descriptions::namespace_list(api)
            ));
        }
        let mut out = String::new();
        for hit in &hits {
            out.push_str(&api.compact_signature(hit.namespace, hit.function));
            out.push('\n');
        }
        Ok(out)
    }

    /// The text `describe` returns; `Err` when no name was found.
    pub fn describe(&self, names: &[String]) -> Result<String, String> {
        let d = describe(&self.api.api, &self.index, names);
        if d.text.trim().is_empty() || !d.text.contains("declare namespace") {
            return Err(format!(
                "not found: {}\nhint: use names as `search` shows them (`namespace.function`) or a namespace: {}",
                d.unknown.join(", "),
                descriptions::namespace_list(&self.api.api)
            ));
        }
        let mut text = d.text;
        if !d.unknown.is_empty() {
            text.push_str(&format!("\n// not found: {}\n", d.unknown.join(", ")));
        }
        Ok(text)
    }
}
