//! `isola-bench tokens`: the context tokens (tiktoken o200k) a host spends on tools, classic
//! tool calling against Isola's Code Mode.
//!
//! Two measurements:
//!
//! - [`definitions`]: what the model is given before it starts. Classic: every tool's
//!   definition as a host sends it (name, description, input schema, as in a `tools/list`
//!   entry). Isola with the API embedded: `execute`, its description carrying the whole API's
//!   declarations. Isola with search and describe: its three tool definitions plus the results
//!   of the lookups a model makes for a task ([`SEARCHES`], then `describe` of the best hits of
//!   the first two). Every text is Isola's own ([`isola_codemode::descriptions`], [`View`]).
//! - [`workflow`]: one task, "list a directory, read ten files, return the three largest with
//!   their first lines", over a real server-filesystem on a directory of ten generated files.
//!   Classic: every call (its JSON) and every result text passes through the model's context.
//!   Code Mode: one `execute` call (the script) and its result, as Isola renders it.
//!
//! ```no_run
//! # async fn demo(hub: std::sync::Arc<isola_mcp::McpHub>, fs: isola_config::ServerConfig) -> Result<(), String> {
//! use isola_bench::tokens;
//! let limits = isola_protocol::Limits::default();
//! let engine = isola_engine::Engine::new(hub.clone(), isola_worker::Backend::InProcess, limits.clone());
//! let defs = tokens::definitions(&hub.servers(), engine.api(), &limits);
//! let dir = std::env::temp_dir().join("isola-tokens");
//! let flow = tokens::workflow(&fs, &dir, isola_worker::Backend::InProcess, &limits).await?;
//! println!("{defs}\n{flow}");
//! # Ok(()) }
//! ```

use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::Arc;

use isola_codemode::descriptions::{self, Mode};
use isola_codemode::{View, ViewOptions};
use isola_config::{Config, IsolaSettings, ServerConfig};
use isola_engine::{ApiState, Engine, ExecOptions};
use isola_mcp::{McpHub, ServerInfo, ServerState};
use isola_protocol::Limits;
use isola_tokens::count_tokens;
use isola_worker::Backend;
use serde_json::{Map, Value, json};

/// The searches a model makes for the workflow's task in search mode.
pub const SEARCHES: [&str; 3] = ["list files in a directory", "read a text file", "file size"];

/// Files the workflow reads, and how many it returns.
pub const WORKFLOW_FILES: usize = 10;
const LARGEST: usize = 3;

/// Tokens of one exchange: a tool call (its JSON: name and arguments) and its result text.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// What was called, for the report.
    pub label: String,
    pub call: usize,
    pub result: usize,
}

impl Exchange {
    fn new(label: String, tool: &str, arguments: Value, result: &str) -> Exchange {
        let call = json!({ "name": tool, "arguments": arguments }).to_string();
        Exchange {
            label,
            call: count_tokens(&call),
            result: count_tokens(result),
        }
    }

    pub fn total(&self) -> usize {
        self.call + self.result
    }
}

/// One server's part of the classic definitions.
#[derive(Clone, Debug)]
pub struct ServerTokens {
    pub name: String,
    pub tools: usize,
    /// Its tool definitions, classic style.
    pub classic: usize,
}

/// Tokens of the tool definitions a model is given ([`definitions`]).
#[derive(Clone, Debug)]
pub struct Definitions {
    pub servers: Vec<ServerTokens>,
    /// Every tool's definition (name, description, inputSchema).
    pub classic: usize,
    /// The API's TypeScript declarations alone (they decide Isola's mode).
    pub declarations: usize,
    /// The mode Isola serves for this API (with the default embedding threshold).
    pub served: Mode,
    /// `execute` with the declarations in its description.
    pub embedded: usize,
    /// `search`, `describe` and `execute` in search mode.
    pub search_tools: usize,
    /// The searches and describes of a task.
    pub lookups: Vec<Exchange>,
}

impl Definitions {
    pub fn tools(&self) -> usize {
        self.servers.iter().map(|s| s.tools).sum()
    }

    /// Search mode: the three tools and the lookups.
    pub fn search_total(&self) -> usize {
        self.search_tools + self.lookups.iter().map(Exchange::total).sum::<usize>()
    }
}

/// A tool definition as a host sends it to the model: a `tools/list` entry's name, description
/// and input schema, as JSON.
pub fn classic_definition(tool: &rmcp::model::Tool) -> String {
    let mut entry = Map::new();
    entry.insert("name".into(), Value::String(tool.name.to_string()));
    if let Some(description) = &tool.description {
        entry.insert("description".into(), Value::String(description.to_string()));
    }
    entry.insert(
        "inputSchema".into(),
        Value::Object((*tool.input_schema).clone()),
    );
    Value::Object(entry).to_string()
}

/// The tool-definition tokens of classic tool calling and of Isola's two modes, for the
/// connected servers among `servers` and their API.
pub fn definitions(servers: &[ServerInfo], api: Arc<ApiState>, limits: &Limits) -> Definitions {
    let servers: Vec<ServerTokens> = servers
        .iter()
        .filter(|s| s.state == ServerState::Connected && !s.tools.is_empty())
        .map(|s| ServerTokens {
            name: s.name.clone(),
            tools: s.tools.len(),
            classic: s
                .tools
                .iter()
                .map(|t| count_tokens(&classic_definition(t)))
                .sum(),
        })
        .collect();
    let classic = servers.iter().map(|s| s.classic).sum();
    let view = View::build(api, limits, &ViewOptions::default());
    let count = |mode: Mode| -> usize {
        descriptions::tools(&view.api.api, mode, &view.declarations, limits)
            .iter()
            .map(|t| count_tokens(&classic_definition(t)))
            .sum()
    };
    let embedded = count(Mode::Embedded);
    let search_tools = count(Mode::Search);

    let mut lookups = Vec::new();
    let mut best = Vec::new();
    for query in SEARCHES {
        let text = view
            .search(query, None, descriptions::DEFAULT_SEARCH_LIMIT)
            .unwrap_or_else(|e| e);
        best.extend(text.lines().next().and_then(signature_name));
        lookups.push(Exchange::new(
            format!("search \"{query}\""),
            descriptions::SEARCH,
            json!({ "query": query }),
            &text,
        ));
    }
    for name in best.into_iter().take(2) {
        let names = vec![name.clone()];
        let text = view.describe(&names).unwrap_or_else(|e| e);
        lookups.push(Exchange::new(
            format!("describe {name}"),
            descriptions::DESCRIBE,
            json!({ "names": names }),
            &text,
        ));
    }
    Definitions {
        servers,
        classic,
        declarations: view.tokens,
        served: view.mode,
        embedded,
        search_tools,
        lookups,
    }
}

/// `fs.readTextFile(input: ...` → `fs.readTextFile`.
fn signature_name(line: &str) -> Option<String> {
    let name = line.split('(').next()?.trim();
    (name.contains('.') && !name.contains(' ')).then(|| name.to_string())
}

/// Tokens of the workflow, both ways ([`workflow`]).
#[derive(Clone, Debug)]
pub struct Workflow {
    pub files: usize,
    pub bytes: u64,
    /// Classic: `list_directory`, then `read_text_file` per file.
    pub classic: Vec<Exchange>,
    /// Code Mode: one `execute`.
    pub code: Exchange,
    /// The answer (name, size in characters, first line), the same both ways.
    pub largest: Vec<(String, usize, String)>,
}

impl Workflow {
    pub fn classic_total(&self) -> usize {
        self.classic.iter().map(Exchange::total).sum()
    }
}

/// The Code Mode script of the workflow; `DIR` is replaced by the directory (a JSON string).
const SCRIPT: &str = r#"const dir = DIR;
const listing = await fs.listDirectory({ path: dir });
const names = listing.content.split("\n")
  .filter((line) => line.startsWith("[FILE] "))
  .map((line) => line.slice("[FILE] ".length));
const files = await Promise.all(names.map(async (name) => {
  const { content } = await fs.readTextFile({ path: `${dir}/${name}` });
  return { name, size: content.length, firstLine: content.split("\n")[0] };
}));
files.sort((a, b) => b.size - a.size);
return files.slice(0, 3);
"#;

/// Run the workflow over `fs` (a server-filesystem config: it is started again with `dir` as
/// its only directory) on [`WORKFLOW_FILES`] files written to `dir`, classic and in Code Mode.
pub async fn workflow(
    fs: &ServerConfig,
    dir: &Path,
    backend: Backend,
    limits: &Limits,
) -> Result<Workflow, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // The server reports canonical paths (/tmp may be a link).
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    let mut bytes = 0;
    for (name, text) in sample_files() {
        bytes += text.len() as u64;
        std::fs::write(dir.join(&name), text)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(&name).display()))?;
    }
    let dir_str = dir
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", dir.display()))?
        .to_string();
    let config = Config {
        path: dir.join("isola.json"),
        servers: vec![("fs".to_string(), on_directory(fs, &dir_str)?)],
        disabled: Vec::new(),
        settings: IsolaSettings::default(),
    };
    let hub = Arc::new(McpHub::connect(&config).await);
    let result = run_workflow(&hub, &dir_str, bytes, backend, limits).await;
    hub.shutdown().await;
    result
}

async fn run_workflow(
    hub: &Arc<McpHub>,
    dir: &str,
    bytes: u64,
    backend: Backend,
    limits: &Limits,
) -> Result<Workflow, String> {
    let info = hub
        .server("fs")
        .ok_or_else(|| "the filesystem server is missing".to_string())?;
    if let ServerState::Failed(reason) = &info.state {
        return Err(format!("the filesystem server did not start: {reason}"));
    }
    for tool in ["list_directory", "read_text_file"] {
        if !info.tools.iter().any(|t| t.name == tool) {
            return Err(format!(
                "the filesystem server has no `{tool}` tool\nhint: use @modelcontextprotocol/server-filesystem"
            ));
        }
    }

    // Classic: the model lists the directory, then reads each file.
    let mut classic = Vec::new();
    let args = json!({ "path": dir });
    let listing = call_text(hub, "list_directory", &args).await?;
    classic.push(Exchange::new(
        "list_directory".into(),
        "list_directory",
        args,
        &listing,
    ));
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("[FILE] "))
        .collect();
    let mut files = Vec::new();
    for name in names {
        let args = json!({ "path": format!("{dir}/{name}") });
        let text = call_text(hub, "read_text_file", &args).await?;
        classic.push(Exchange::new(
            format!("read_text_file {name}"),
            "read_text_file",
            args,
            &text,
        ));
        let first = text.lines().next().unwrap_or_default().to_string();
        files.push((name.to_string(), text.encode_utf16().count(), first));
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.1));
    files.truncate(LARGEST);

    // Code Mode: one script.
    let engine = Engine::new(hub.clone(), backend, limits.clone());
    let dir_json = serde_json::to_string(dir).map_err(|e| e.to_string())?;
    let script = SCRIPT.replace("DIR", &dir_json);
    let record = engine.execute(&script, ExecOptions::default()).await;
    let text = isola_codemode::render::record_text(&record, &engine.api().api);
    if !record.ok {
        return Err(format!("the Code Mode script failed:\n{text}"));
    }
    // Both ways must give the same answer.
    let answer: Vec<(String, usize, String)> = record
        .result
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or_default().to_string(),
                f["size"].as_u64().unwrap_or_default() as usize,
                f["firstLine"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    if answer != files {
        return Err(format!(
            "classic and Code Mode disagree: {files:?} vs {answer:?}"
        ));
    }
    let code = Exchange::new(
        "execute".into(),
        descriptions::EXECUTE,
        json!({ "code": script }),
        &text,
    );
    Ok(Workflow {
        files: classic.len() - 1,
        bytes,
        classic,
        code,
        largest: files,
    })
}

/// `fs` started on `dir` alone: its arguments without the directories it was given.
fn on_directory(fs: &ServerConfig, dir: &str) -> Result<ServerConfig, String> {
    let ServerConfig::Stdio {
        command,
        args,
        env,
        cwd,
        inherit_env,
    } = fs
    else {
        return Err(
            "the filesystem server must be a stdio server (it is started on a temporary directory)"
                .into(),
        );
    };
    let base = cwd.clone().unwrap_or_default();
    let mut args: Vec<String> = args
        .iter()
        .filter(|a| a.starts_with('-') || !base.join(a).is_dir())
        .cloned()
        .collect();
    args.push(dir.to_string());
    Ok(ServerConfig::Stdio {
        command: command.clone(),
        args,
        env: env.clone(),
        cwd: cwd.clone(),
        inherit_env: *inherit_env,
    })
}

/// Call `tool` on the workflow's server; its text.
async fn call_text(hub: &McpHub, tool: &str, args: &Value) -> Result<String, String> {
    let args = args.as_object().cloned().unwrap_or_default();
    let result = hub
        .call("fs", tool, args)
        .await
        .map_err(|e| e.to_string())?;
    let text: Vec<String> = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    if result.is_error == Some(true) {
        return Err(format!("{tool} failed: {}", text.join("\n")));
    }
    Ok(text.join("\n"))
}

/// Ten notes of 1.5 to 12 KB: a title line, then paragraphs (deterministic).
pub fn sample_files() -> Vec<(String, String)> {
    const TOPICS: [&str; 10] = [
        "release checklist",
        "incident review",
        "api migration",
        "quarterly planning",
        "onboarding guide",
        "database tuning",
        "design review",
        "support rotation",
        "security audit",
        "team retrospective",
    ];
    const WORDS: [&str; 48] = [
        "the",
        "service",
        "deploy",
        "latency",
        "request",
        "cache",
        "we",
        "should",
        "review",
        "before",
        "after",
        "customer",
        "error",
        "rate",
        "budget",
        "owner",
        "config",
        "rollout",
        "metric",
        "alert",
        "queue",
        "worker",
        "index",
        "query",
        "timeout",
        "retry",
        "schema",
        "migration",
        "backfill",
        "follow",
        "up",
        "on",
        "the",
        "dashboard",
        "with",
        "a",
        "new",
        "team",
        "decided",
        "to",
        "keep",
        "track",
        "of",
        "every",
        "change",
        "in",
        "this",
        "doc",
    ];
    const SIZES: [usize; 10] = [1500, 6200, 3100, 12000, 2400, 9800, 4700, 1900, 7600, 5300];
    let mut seed: u64 = 0x1501_a000;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize
    };
    TOPICS
        .iter()
        .zip(SIZES)
        .enumerate()
        .map(|(i, (topic, size))| {
            let mut text = format!("# {}: notes {}\n\n", capitalize(topic), i + 1);
            while text.len() < size {
                let words = 8 + next() % 14;
                let mut sentence = String::new();
                for w in 0..words {
                    let word = WORDS[next() % WORDS.len()];
                    if w == 0 {
                        sentence.push_str(&capitalize(word));
                    } else {
                        sentence.push(' ');
                        sentence.push_str(word);
                    }
                }
                sentence.push_str(". ");
                text.push_str(&sentence);
                if next() % 5 == 0 {
                    text.push_str("\n\n");
                }
            }
            text.push('\n');
            (format!("{}.md", topic.replace(' ', "-")), text)
        })
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// How much smaller `to` is than `from`, in percent.
pub fn reduction(from: usize, to: usize) -> f64 {
    if from == 0 {
        return 0.0;
    }
    (1.0 - to as f64 / from as f64) * 100.0
}

/// `91.0% fewer`, `45.3% more`.
fn versus(from: usize, to: usize) -> String {
    let r = reduction(from, to);
    if r >= 0.0 {
        format!("{r:.1}% fewer")
    } else {
        format!("{:.1}% more", -r)
    }
}

fn n(x: usize) -> String {
    let s = x.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Exchange {
    fn to_json(&self) -> Value {
        json!({ "label": self.label, "call": self.call, "result": self.result })
    }
}

impl Definitions {
    /// The figures as JSON (`isola-bench tokens --json`).
    pub fn to_json(&self) -> Value {
        json!({
            "tools": self.tools(),
            "servers": self.servers.iter().map(|s| json!({"name": s.name, "tools": s.tools, "classic": s.classic})).collect::<Vec<_>>(),
            "classic": self.classic,
            "declarations": self.declarations,
            "served": self.served.as_str(),
            "embedded": self.embedded,
            "search_tools": self.search_tools,
            "lookups": self.lookups.iter().map(Exchange::to_json).collect::<Vec<_>>(),
            "search_total": self.search_total(),
            "embedded_reduction_pct": reduction(self.classic, self.embedded),
            "search_reduction_pct": reduction(self.classic, self.search_total()),
        })
    }
}

impl Workflow {
    /// The figures as JSON (`isola-bench tokens --json`).
    pub fn to_json(&self) -> Value {
        json!({
            "files": self.files,
            "bytes": self.bytes,
            "classic": self.classic.iter().map(Exchange::to_json).collect::<Vec<_>>(),
            "classic_total": self.classic_total(),
            "code": self.code.to_json(),
            "code_total": self.code.total(),
            "reduction_pct": reduction(self.classic_total(), self.code.total()),
            "largest": self.largest.iter().map(|(name, size, first)| json!({"name": name, "size": size, "first_line": first})).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Definitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Tool definitions: {} tools of {} servers (tokens: tiktoken o200k)\n",
            self.tools(),
            self.servers.len()
        );
        let _ = writeln!(
            out,
            "| what the model is given | tokens | vs classic |\n| --- | ---: | ---: |"
        );
        let _ = writeln!(
            out,
            "| classic: every tool's definition (name, description, inputSchema) | {} | |",
            n(self.classic)
        );
        let _ = writeln!(
            out,
            "| Isola, API embedded: `execute` with the declarations in its description | {} | {} |",
            n(self.embedded),
            versus(self.classic, self.embedded)
        );
        let _ = writeln!(
            out,
            "| Isola, search/describe: 3 tool definitions + {} searches + {} describes | {} | {} |",
            self.lookups
                .iter()
                .filter(|l| l.label.starts_with("search"))
                .count(),
            self.lookups
                .iter()
                .filter(|l| l.label.starts_with("describe"))
                .count(),
            n(self.search_total()),
            versus(self.classic, self.search_total())
        );
        let _ = writeln!(
            out,
            "\nIsola serves {} mode here: the declarations take {} tokens (embedded up to {}).",
            self.served.as_str(),
            n(self.declarations),
            n(descriptions::DEFAULT_EMBED_MAX_TOKENS)
        );
        let _ = writeln!(
            out,
            "\n| server | tools | classic tokens |\n| --- | ---: | ---: |"
        );
        for s in &self.servers {
            let _ = writeln!(out, "| {} | {} | {} |", s.name, s.tools, n(s.classic));
        }
        let _ = writeln!(
            out,
            "\n| search mode, part by part | call | result | total |\n| --- | ---: | ---: | ---: |"
        );
        let _ = writeln!(
            out,
            "| `search`, `describe`, `execute` definitions | | | {} |",
            n(self.search_tools)
        );
        for l in &self.lookups {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                l.label,
                l.call,
                n(l.result),
                n(l.total())
            );
        }
        f.write_str(&out)
    }
}

impl fmt::Display for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Workflow: list a directory, read {} files ({} KB), return the {} largest with their first lines\n",
            self.files,
            self.bytes / 1000,
            self.largest.len()
        );
        let _ = writeln!(
            out,
            "| approach | what passes through the model's context | tokens | vs classic |\n| --- | --- | ---: | ---: |"
        );
        let _ = writeln!(
            out,
            "| classic | {} calls (list_directory, {} × read_text_file) and their results | {} | |",
            self.classic.len(),
            self.files,
            n(self.classic_total())
        );
        let _ = writeln!(
            out,
            "| Code Mode | 1 `execute` call (the script, {} tokens) and its result ({} tokens) | {} | {} |",
            self.code.call,
            self.code.result,
            n(self.code.total()),
            versus(self.classic_total(), self.code.total())
        );
        let _ = writeln!(
            out,
            "\nAnswer (both ways): {}.",
            self.largest
                .iter()
                .map(|(name, size, first)| format!("{name} ({size} chars, \"{first}\")"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_files_are_deterministic_and_sized() {
        let files = sample_files();
        assert_eq!(files.len(), WORKFLOW_FILES);
        assert_eq!(files, sample_files());
        for (name, text) in &files {
            assert!(name.ends_with(".md"));
            assert!(text.starts_with("# "), "{name}");
            assert!(
                (1500..13000).contains(&text.len()),
                "{name}: {}",
                text.len()
            );
        }
    }

    #[test]
    fn names_from_signatures() {
        assert_eq!(
            signature_name("fs.readTextFile(input: { path: string }): Promise<...> — Read"),
            Some("fs.readTextFile".to_string())
        );
        assert_eq!(signature_name("no function matches `x`"), None);
        assert_eq!(reduction(200, 20), 90.0);
        assert_eq!(n(1234567), "1,234,567");
    }
}
