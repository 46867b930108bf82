//! Isola's configuration: the config file (the de-facto `mcpServers` JSON plus an optional
//! `isola` section) and, in [`env`], every environment variable Isola reads.
//!
//! ```json
//! {
//!   "mcpServers": {
//!     "github": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
//!                 "env": { "GITHUB_TOKEN": "${GITHUB_TOKEN}" } },
//!     "remote": { "url": "https://example.com/mcp",
//!                 "headers": { "Authorization": "Bearer ${REMOTE_TOKEN}" } }
//!   },
//!   "isola": { "callTimeoutMs": 60000, "startupTimeoutMs": 30000, "workers": 4,
//!              "limits": { "deadlineMs": 30000 } }
//! }
//! ```
//!
//! The `mcpServers` shape is the one Claude Desktop, Cursor and Claude Code read, so an
//! existing file can be pointed at directly:
//!
//! - A **stdio** server has `command` (required), `args` (default `[]`), `env` (default `{}`)
//!   and `cwd` (a relative `cwd` is resolved against the directory of the config file). The
//!   server starts with a *cleared* environment: only the variables the official MCP SDKs pass
//!   on ([`env::INHERITED`]: `HOME`, `LOGNAME`, `PATH`, `SHELL`, `TERM`, `USER`), then its own
//!   `env`. `"inheritEnv": true` gives it the whole of Isola's environment instead (the old
//!   behaviour of some hosts; every secret Isola can see then reaches that server).
//! - An **HTTP** server (Streamable HTTP) has `url` and `headers` (default `{}`).
//! - Claude Code's `"type": "stdio" | "http" | "streamable-http"` is accepted; `"sse"` is an
//!   error (the legacy SSE transport is not supported). `"disabled": true` skips a server: a
//!   disabled entry is only checked for unknown keys, so it may name variables that are not set.
//! - Any other key inside a server entry is an error naming the file, the server and the key.
//!
//! **Top-level keys other than `mcpServers` and `isola` are ignored** with a
//! `tracing::warn!`: the file is often shared with other hosts (Claude Desktop keeps its own
//! settings next to `mcpServers`), and rejecting their keys would make sharing impossible.
//! Inside the sections isola owns, unknown keys are errors.
//!
//! `${VAR}` and `${VAR:-default}` are expanded from the environment in `command`, `args`,
//! `env` values, `cwd`, `url` and header values, so secrets stay out of the file. As in the
//! shell, the default is used when the variable is unset *or empty*. A variable that is unset
//! and has no default is an error naming the key and the variable. Put secrets in `env` or
//! `headers`: their values are never shown, while `command` and `args` appear in messages and
//! in [`ServerConfig::describe`].
//!
//! The file is parsed to a [`serde_json::Value`] first and then walked by hand, so every error
//! names the file, the key path (`mcpServers.fs.args`) and what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use isola_protocol::{CheckMode, Limits};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The file read when no `--config` is given, relative to the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "isola.json";

/// A small example config, shown in the hint when the file is missing.
pub const EXAMPLE_CONFIG: &str = r#"{
  "mcpServers": {
    "everything": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"] }
  }
}"#;

pub mod env;
pub mod ranges;
mod strict;

const SERVER_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "cwd",
    "inheritEnv",
    "url",
    "headers",
    "type",
    "disabled",
];
const STDIO_ONLY_KEYS: &[&str] = &["command", "args", "env", "cwd", "inheritEnv"];
const HTTP_ONLY_KEYS: &[&str] = &["url", "headers"];
const SETTINGS_KEYS: &[&str] = &[
    "limits",
    "workers",
    "maxWorkers",
    "maxScriptBytes",
    "callTimeoutMs",
    "startupTimeoutMs",
    "requireHardening",
    "agent",
    "store",
    "effects",
    "policy",
    "approvals",
    "tokens",
    "check",
];
const CHECK_KEYS: &[&str] = &["compiler", "exec", "agent", "mcp", "timeoutMs", "memoryMb"];
const TOKEN_KEYS: &[&str] = &["token", "role"];
/// The roles a token of `isola serve` can have (`isola.tokens`), least first.
pub const TOKEN_ROLES: &[&str] = &["viewer", "operator", "admin"];
/// The shortest token secret accepted.
pub const MIN_TOKEN_BYTES: usize = 16;
const POLICY_KEYS: &[&str] = &["files", "data", "timeLimitMs"];
const APPROVALS_KEYS: &[&str] = &["timeoutMs", "suspendAfterMs"];
const EFFECT_KEYS: &[&str] = &["effect", "idempotent", "openWorld"];
/// The effect classes a tool can be given (`isola.effects`).
pub const EFFECT_CLASSES: &[&str] = &["read", "write", "destructive"];

/// The default of `isola.maxScriptBytes`: 1 MiB of TypeScript.
pub const DEFAULT_MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// The hardening layers of a worker process, by the names its `Ready` message gives them: its
/// own namespaces (where the kernel allows them), then the process limits and the filter.
pub const HARDENING_LAYERS: &[&str] = &[
    "user_ns",
    "mount_ns",
    "net_ns",
    "ipc_ns",
    "uts_ns",
    "pid_ns",
    "no_new_privs",
    "rlimits",
    "seccomp",
];
/// Headers the Streamable HTTP transport sets itself; a config may not override them.
const RESERVED_HEADERS: &[&str] = &["accept", "mcp-session-id", "last-event-id"];

/// A loaded config file.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it came from (absolute).
    pub path: PathBuf,
    /// The enabled servers, in file order.
    pub servers: Vec<(String, ServerConfig)>,
    /// Names of the servers marked `"disabled": true`, in file order.
    pub disabled: Vec<String>,
    /// The `isola` section, or its defaults.
    pub settings: IsolaSettings,
}

impl Config {
    /// The enabled server called `name`.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, server)| server)
    }
}

/// How to reach one MCP server. `${VAR}` references are already expanded.
///
/// `Debug` prints the names of `env` entries and headers but not their values: they are
/// usually secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerConfig {
    /// A child process speaking MCP over its stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        /// Set on top of the inherited variables ([`env::INHERITED`], or all of Isola's with
        /// `inherit_env`).
        env: BTreeMap<String, String>,
        /// Absolute when the config gave a relative path.
        cwd: Option<PathBuf>,
        /// `"inheritEnv": true`: the server gets Isola's whole environment, not just
        /// [`env::INHERITED`].
        inherit_env: bool,
    },
    /// A Streamable HTTP endpoint.
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

impl ServerConfig {
    /// A one-line description for messages: `stdio: npx -y pkg` or `http: https://...`.
    /// Never contains `env` or header values.
    pub fn describe(&self) -> String {
        match self {
            ServerConfig::Stdio { command, args, .. } => {
                let mut line = format!("stdio: {}", shell_word(command));
                for arg in args {
                    line.push(' ');
                    line.push_str(&shell_word(arg));
                }
                line
            }
            ServerConfig::Http { url, .. } => format!("http: {}", redact_url(url)),
        }
    }

    /// `text` with the password of this server's URL (`http://user:password@host`) replaced by
    /// `***`, wherever it appears (error messages quote the URL).
    pub fn redact(&self, text: &str) -> String {
        match self {
            ServerConfig::Http { url, .. } => match url_password(url) {
                Some(password) if !password.is_empty() => text.replace(password, "***"),
                _ => text.to_owned(),
            },
            ServerConfig::Stdio { .. } => text.to_owned(),
        }
    }
}

/// The password in the userinfo of `url` (`scheme://user:password@host...`).
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1)
}

/// `url` with the password in its userinfo shown as `***`.
pub fn redact_url(url: &str) -> String {
    match url_password(url) {
        Some(password) if !password.is_empty() => url.replacen(password, "***", 1),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod redact_tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_url("http://user:s3cret@example.com:8080/mcp?x=1"),
            "http://user:***@example.com:8080/mcp?x=1"
        );
        assert_eq!(
            redact_url("http://user@example.com/mcp"),
            "http://user@example.com/mcp"
        );
        assert_eq!(
            redact_url("https://example.com/a@b"),
            "https://example.com/a@b"
        );
        let server = ServerConfig::Http {
            url: "http://u:pw9@127.0.0.1:1/mcp".into(),
            headers: BTreeMap::new(),
        };
        assert_eq!(
            server.redact("error sending request for url (http://u:pw9@127.0.0.1:1/mcp)"),
            "error sending request for url (http://u:***@127.0.0.1:1/mcp)"
        );
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerConfig::Stdio {
                command,
                args,
                env,
                cwd,
                inherit_env,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &Redacted(env))
                .field("cwd", cwd)
                .field("inherit_env", inherit_env)
                .finish(),
            ServerConfig::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", url)
                .field("headers", &Redacted(headers))
                .finish(),
        }
    }
}

struct Redacted<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// Quote a word for display when it would not read back as one shell word.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The `isola` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct IsolaSettings {
    /// Limits of one execution.
    pub limits: Limits,
    /// Worker processes kept warm; `None` lets the engine choose.
    pub workers: Option<usize>,
    /// The most worker processes alive at once, under load; `None` lets the engine choose.
    pub max_workers: Option<usize>,
    /// The largest script accepted, in bytes; larger ones are refused before parsing.
    pub max_script_bytes: u64,
    /// Timeout of one tool call, in milliseconds.
    pub call_timeout_ms: u64,
    /// Timeout for starting one server (spawn or connect, `initialize`, `tools/list`), in
    /// milliseconds.
    pub startup_timeout_ms: u64,
    /// Hardening layers a sandbox worker must have active, or it is not used
    /// ([`HARDENING_LAYERS`]). Without, a missing layer is reported and the worker used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_hardening: Vec<String>,
    /// The agent's settings (`isola run`, `isola chat`), as written: `isola-agent` parses and
    /// checks them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Value>,
    /// Where the journal, sessions and state are kept (`sqlite:PATH`, `postgres://...`,
    /// `none`), as written: `isola-store` parses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Effects given to tools, by server then tool name (`*` for every tool of the server): they
    /// win over the server's own annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub effects: BTreeMap<String, BTreeMap<String, EffectOverride>>,
    /// The policy every call passes.
    pub policy: PolicySettings,
    /// How long a call waits for a person's approval.
    pub approvals: ApprovalSettings,
    /// `isola serve`'s bearer tokens, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, TokenSettings>,
    /// `isola.check`.
    pub check: CheckSettings,
}

/// One token of `isola serve` (`isola.tokens.<name>`): its secret (from the environment, as
/// `${VAR}`) and its role ([`TOKEN_ROLES`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    #[serde(skip_serializing)]
    pub token: String,
    pub role: String,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The effect the config gives a tool (`isola.effects.<server>.<tool>`): a class, and the flags.
/// What it leaves out comes from the server's annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EffectOverride {
    /// `read`, `write` or `destructive` ([`EFFECT_CLASSES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_world: Option<bool>,
}

impl EffectOverride {
    /// Write this override into MCP tool annotations (`readOnlyHint`, `destructiveHint`,
    /// `idempotentHint`, `openWorldHint`), so that everything reading the hints sees the config's
    /// word.
    pub fn apply(&self, annotations: &mut Map<String, Value>) {
        if let Some(class) = &self.effect {
            annotations.insert("readOnlyHint".into(), Value::Bool(class == "read"));
            annotations.insert(
                "destructiveHint".into(),
                Value::Bool(class == "destructive"),
            );
        }
        if let Some(b) = self.idempotent {
            annotations.insert("idempotentHint".into(), Value::Bool(b));
        }
        if let Some(b) = self.open_world {
            annotations.insert("openWorldHint".into(), Value::Bool(b));
        }
    }
}

/// `isola.policy`: the Rego files every call and plan is checked against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySettings {
    /// Policy files (absolute: a relative path is resolved against the config's directory).
    /// None: the built-in default policy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// The policies' `data` document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// How long one evaluation may take before it counts as an error (and denies).
    pub time_limit_ms: u64,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            data: None,
            time_limit_ms: 100,
        }
    }
}

/// `isola.check`: type-checking scripts against the API with the TypeScript compiler before
/// they run, per front end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckSettings {
    /// The compiler (absolute: a relative path is resolved against the config's directory).
    /// None: `node_modules/.bin/tsc` in the config's directory or above, else `tsc` on `PATH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiler: Option<PathBuf>,
    /// `isola exec`, `plan` and `apply` (their `--check` overrides it).
    pub exec: CheckMode,
    /// The agent (`isola run`, `chat`, `/v1/runs`): its scripts with type errors go back to the
    /// model before anything runs.
    pub agent: CheckMode,
    /// `execute` of `isola mcp` and `isola serve`, and `POST /v1/executions`.
    pub mcp: CheckMode,
    pub timeout_ms: u64,
    /// The compiler's address space, in MiB.
    pub memory_mb: u64,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            compiler: None,
            exec: CheckMode::Off,
            agent: CheckMode::Error,
            mcp: CheckMode::Off,
            timeout_ms: 20_000,
            memory_mb: 4096,
        }
    }
}

/// `isola.approvals`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ApprovalSettings {
    /// How long a call waits for a decision; then the request expires and the call is denied.
    pub timeout_ms: u64,
    /// How long a journaled execution keeps its worker while a call waits; then it is
    /// suspended (nothing lost: `isola resume` continues it once the call is decided). At
    /// least `timeoutMs`: never.
    pub suspend_after_ms: u64,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 15 * 60 * 1000,
            suspend_after_ms: 10 * 60 * 1000,
        }
    }
}

impl Default for IsolaSettings {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            workers: None,
            max_workers: None,
            max_script_bytes: DEFAULT_MAX_SCRIPT_BYTES,
            call_timeout_ms: 60_000,
            startup_timeout_ms: 30_000,
            require_hardening: Vec::new(),
            agent: None,
            store: None,
            effects: BTreeMap::new(),
            policy: PolicySettings::default(),
            approvals: ApprovalSettings::default(),
            tokens: BTreeMap::new(),
            check: CheckSettings::default(),
        }
    }
}

impl IsolaSettings {
    /// [`Self::call_timeout_ms`] as a duration.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// [`Self::startup_timeout_ms`] as a duration.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.startup_timeout_ms)
    }
}

/// Why a config file could not be loaded. Every message names the file; most name the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file does not exist.
    #[error(
        "config file not found: {}\nhint: pass `--config PATH`, or create {DEFAULT_CONFIG_FILE} in the working directory, for example:\n{EXAMPLE_CONFIG}",
        path.display()
    )]
    NotFound { path: PathBuf },

    /// The file exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// A value has the wrong JSON type.
    #[error("{}: {key}: expected {expected}, found {found}", path.display())]
    WrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        found: &'static str,
    },

    /// An object has a key isola does not know.
    #[error(
        "{}: {key}: unknown key `{name}`\nhint: expected one of: {}",
        path.display(),
        expected.join(", ")
    )]
    UnknownKey {
        path: PathBuf,
        /// The object holding the key.
        key: String,
        name: String,
        expected: &'static [&'static str],
    },

    /// There is no `mcpServers` object.
    #[error(
        "{}: no `mcpServers` key\nhint: list the MCP servers to use, for example:\n{EXAMPLE_CONFIG}",
        path.display()
    )]
    MissingServers { path: PathBuf },

    /// A server entry has neither `command` nor `url`.
    #[error(
        "{}: {key}: the server has neither `command` nor `url`\nhint: give `command` (and `args`) to run a stdio server, or `url` for a Streamable HTTP server",
        path.display()
    )]
    NoTransport { path: PathBuf, key: String },

    /// A server entry has both `command` and `url`.
    #[error(
        "{}: {key}: the server has both `command` and `url`\nhint: keep `command` for a stdio server or `url` for a Streamable HTTP server, not both",
        path.display()
    )]
    BothTransports { path: PathBuf, key: String },

    /// A server entry lacks the key its `type` needs.
    #[error("{}: {key}: `\"type\": \"{kind}\"` needs `{needed}`", path.display())]
    MissingKey {
        path: PathBuf,
        key: String,
        kind: String,
        needed: &'static str,
    },

    /// A key of the other transport (`url` on a stdio server, `args` on an HTTP server...).
    #[error(
        "{}: {key}: `{name}` does not apply to {transport} servers\nhint: {transport} servers take: {}",
        path.display(),
        allowed.join(", ")
    )]
    KeyNotForTransport {
        path: PathBuf,
        key: String,
        name: String,
        transport: &'static str,
        allowed: &'static [&'static str],
    },

    /// `"type": "sse"`.
    #[error(
        "{}: {key}: the SSE transport is not supported\nhint: use the server's Streamable HTTP endpoint (often ending in /mcp) as `url`, with `\"type\": \"http\"` or no `type`",
        path.display()
    )]
    SseNotSupported { path: PathBuf, key: String },

    /// A `type` other than stdio, http, streamable-http or sse.
    #[error(
        "{}: {key}: unknown transport type {value:?}\nhint: use \"stdio\", \"http\" or \"streamable-http\"",
        path.display()
    )]
    UnknownType {
        path: PathBuf,
        key: String,
        value: String,
    },

    /// `${VAR}` names a variable that is not set, and gives no default.
    #[error(
        "{}: {key}: environment variable `{var}` is not set\nhint: set {var} in the environment isola runs in, or give a default: ${{{var}:-default}}",
        path.display()
    )]
    UnsetVariable {
        path: PathBuf,
        key: String,
        var: String,
    },

    /// A malformed `${...}` reference.
    #[error(
        "{}: {key}: bad variable reference in {value:?}: {problem}\nhint: write ${{NAME}} or ${{NAME:-default}}, NAME made of letters, digits and _",
        path.display()
    )]
    BadVariable {
        path: PathBuf,
        key: String,
        value: String,
        problem: String,
    },

    /// A value of the right type that is still wrong (an empty command, a zero timeout...).
    #[error("{}: {key}: {message}", path.display())]
    InvalidValue {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// Read and check the config file at `path`.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse_config(&text, path)
}

/// Check config `text` as if read from `origin`, expanding `${VAR}` from the process
/// environment.
pub fn parse_config(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    parse_config_with_env(text, origin, &|name| std::env::var(name).ok())
}

/// [`parse_config`] with `env` standing in for the process environment.
pub fn parse_config_with_env(
    text: &str,
    origin: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let path = std::path::absolute(origin).unwrap_or_else(|_| origin.to_owned());
    // Editors on Windows write a byte-order mark; it is not part of the JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root: Value = serde_json::from_str::<strict::Strict>(text)
        .map(|s| s.0)
        .map_err(|e| {
            let (line, column) = (e.line(), e.column());
            let full = e.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            ConfigError::Json {
                path: path.clone(),
                line,
                column,
                message,
            }
        })?;
    Walker { path: &path, env }.config(&root)
}

struct Walker<'a> {
    path: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// `a string`, `an array`, ... for messages about a JSON value of the wrong type.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `parent.key`, or `parent["key"]` when the key does not read as an identifier.
fn child_key(parent: &str, key: &str) -> String {
    let ident = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), ident) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

impl Walker<'_> {
    fn wrong_type(&self, key: &str, expected: &'static str, found: &Value) -> ConfigError {
        ConfigError::WrongType {
            path: self.path.to_owned(),
            key: key.to_owned(),
            expected,
            found: json_kind(found),
        }
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn object<'v>(
        &self,
        value: &'v Value,
        key: &str,
        expected: &'static str,
    ) -> Result<&'v Map<String, Value>, ConfigError> {
        value
            .as_object()
            .ok_or_else(|| self.wrong_type(key, expected, value))
    }

    fn check_keys(
        &self,
        object: &Map<String, Value>,
        key: &str,
        allowed: &'static [&'static str],
    ) -> Result<(), ConfigError> {
        match object.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(name) => Err(ConfigError::UnknownKey {
                path: self.path.to_owned(),
                key: key.to_owned(),
                name: name.clone(),
                expected: allowed,
            }),
            None => Ok(()),
        }
    }

    fn string<'v>(&self, value: &'v Value, key: &str) -> Result<&'v str, ConfigError> {
        value
            .as_str()
            .ok_or_else(|| self.wrong_type(key, "a string", value))
    }

    fn config(&self, root: &Value) -> Result<Config, ConfigError> {
        let top = self.object(root, "top level", "an object")?;
        let mut servers = Vec::new();
        let mut disabled = Vec::new();
        let mut settings = IsolaSettings::default();
        let mut seen_servers = false;
        for (key, value) in top {
            match key.as_str() {
                "mcpServers" => {
                    seen_servers = true;
                    let entries = self.object(
                        value,
                        "mcpServers",
                        "an object mapping server names to server entries",
                    )?;
                    for (name, entry) in entries {
                        let key = child_key("mcpServers", name);
                        if name.trim().is_empty() {
                            return Err(self.invalid(&key, "a server name may not be empty"));
                        }
                        match self.server(entry, &key)? {
                            Some(server) => servers.push((name.clone(), server)),
                            None => disabled.push(name.clone()),
                        }
                    }
                }
                "isola" => settings = self.settings(value)?,
                other => tracing::warn!(
                    file = %self.path.display(),
                    key = other,
                    "ignoring top-level config key `{other}`: isola reads only `mcpServers` and `isola`"
                ),
            }
        }
        if !seen_servers {
            return Err(ConfigError::MissingServers {
                path: self.path.to_owned(),
            });
        }
        Ok(Config {
            path: self.path.to_owned(),
            servers,
            disabled,
            settings,
        })
    }

    /// One `mcpServers` entry; `None` when it is disabled.
    fn server(&self, value: &Value, key: &str) -> Result<Option<ServerConfig>, ConfigError> {
        let entry = self.object(value, key, "an object (a server entry)")?;
        self.check_keys(entry, key, SERVER_KEYS)?;
        if let Some(flag) = entry.get("disabled") {
            let disabled = flag
                .as_bool()
                .ok_or_else(|| self.wrong_type(&child_key(key, "disabled"), "a boolean", flag))?;
            if disabled {
                return Ok(None);
            }
        }

        let stdio = match entry.get("type") {
            Some(ty) => match self.string(ty, &child_key(key, "type"))? {
                "stdio" => true,
                "http" | "streamable-http" | "streamableHttp" => false,
                "sse" => {
                    return Err(ConfigError::SseNotSupported {
                        path: self.path.to_owned(),
                        key: child_key(key, "type"),
                    });
                }
                other => {
                    return Err(ConfigError::UnknownType {
                        path: self.path.to_owned(),
                        key: child_key(key, "type"),
                        value: other.to_owned(),
                    });
                }
            },
            None => match (entry.contains_key("command"), entry.contains_key("url")) {
                (true, false) => true,
                (false, true) => false,
                (true, true) => {
                    return Err(ConfigError::BothTransports {
                        path: self.path.to_owned(),
                        key: key.to_owned(),
                    });
                }
                (false, false) => {
                    return Err(ConfigError::NoTransport {
                        path: self.path.to_owned(),
                        key: key.to_owned(),
                    });
                }
            },
        };
        let (transport, allowed, other_keys, needed) = if stdio {
            ("stdio", STDIO_ONLY_KEYS, HTTP_ONLY_KEYS, "command")
        } else {
            ("HTTP", HTTP_ONLY_KEYS, STDIO_ONLY_KEYS, "url")
        };
        if let Some(name) = other_keys.iter().find(|k| entry.contains_key(**k)) {
            return Err(ConfigError::KeyNotForTransport {
                path: self.path.to_owned(),
                key: key.to_owned(),
                name: (*name).to_owned(),
                transport,
                allowed,
            });
        }
        if !entry.contains_key(needed) {
            return Err(ConfigError::MissingKey {
                path: self.path.to_owned(),
                key: key.to_owned(),
                kind: if stdio { "stdio" } else { "http" }.to_owned(),
                needed,
            });
        }

        if stdio {
            self.stdio_server(entry, key).map(Some)
        } else {
            self.http_server(entry, key).map(Some)
        }
    }

    fn stdio_server(
        &self,
        entry: &Map<String, Value>,
        key: &str,
    ) -> Result<ServerConfig, ConfigError> {
        let command_key = child_key(key, "command");
        let command = match entry.get("command") {
            Some(value) => self.expand(self.string(value, &command_key)?, &command_key)?,
            None => String::new(),
        };
        if command.trim().is_empty() {
            return Err(self.invalid(
                &command_key,
                "the command is empty\nhint: name the program to run, e.g. \"npx\"",
            ));
        }

        let args_key = child_key(key, "args");
        let mut args = Vec::new();
        if let Some(value) = entry.get("args") {
            let items = value
                .as_array()
                .ok_or_else(|| self.wrong_type(&args_key, "an array of strings", value))?;
            for (i, item) in items.iter().enumerate() {
                let item_key = format!("{args_key}[{i}]");
                args.push(self.expand(self.string(item, &item_key)?, &item_key)?);
            }
        }

        let env = match entry.get("env") {
            Some(value) => self.string_map(value, &child_key(key, "env"))?,
            None => BTreeMap::new(),
        };

        let cwd_key = child_key(key, "cwd");
        let cwd = match entry.get("cwd") {
            Some(value) => {
                let raw = self.expand(self.string(value, &cwd_key)?, &cwd_key)?;
                if raw.is_empty() {
                    return Err(self.invalid(&cwd_key, "the working directory is empty"));
                }
                let base = self.path.parent().unwrap_or(Path::new(""));
                Some(base.join(raw))
            }
            None => None,
        };

        let inherit_key = child_key(key, "inheritEnv");
        let inherit_env = match entry.get("inheritEnv") {
            Some(value) => value
                .as_bool()
                .ok_or_else(|| self.wrong_type(&inherit_key, "a boolean", value))?,
            None => false,
        };

        Ok(ServerConfig::Stdio {
            command,
            args,
            env,
            cwd,
            inherit_env,
        })
    }

    fn http_server(
        &self,
        entry: &Map<String, Value>,
        key: &str,
    ) -> Result<ServerConfig, ConfigError> {
        let url_key = child_key(key, "url");
        let url = match entry.get("url") {
            Some(value) => self.expand(self.string(value, &url_key)?, &url_key)?,
            None => String::new(),
        };
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(self.invalid(
                &url_key,
                format!(
                    "{url:?} is not an http:// or https:// URL\nhint: give the full Streamable HTTP endpoint, e.g. \"https://example.com/mcp\""
                ),
            ));
        }

        let headers_key = child_key(key, "headers");
        let headers = match entry.get("headers") {
            Some(value) => self.string_map(value, &headers_key)?,
            None => BTreeMap::new(),
        };
        for (name, value) in &headers {
            let header_key = child_key(&headers_key, name);
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                return Err(self.invalid(
                    &header_key,
                    format!("{name:?} is not a valid HTTP header name"),
                ));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(self.invalid(
                    &header_key,
                    format!(
                        "the {name} header is set by the MCP transport itself\nhint: remove it"
                    ),
                ));
            }
            if !value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            {
                // The value is not shown: it is usually a secret.
                return Err(self.invalid(
                    &header_key,
                    "the header value contains a control or non-ASCII character",
                ));
            }
        }

        Ok(ServerConfig::Http { url, headers })
    }

    fn string_map(
        &self,
        value: &Value,
        key: &str,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let object = self.object(value, key, "an object of strings")?;
        let mut map = BTreeMap::new();
        for (name, item) in object {
            let item_key = child_key(key, name);
            let text = item
                .as_str()
                .ok_or_else(|| self.wrong_type(&item_key, "a string", item))?;
            map.insert(name.clone(), self.expand(text, &item_key)?);
        }
        Ok(map)
    }

    fn settings(&self, value: &Value) -> Result<IsolaSettings, ConfigError> {
        let object = self.object(value, "isola", "an object")?;
        self.check_keys(object, "isola", SETTINGS_KEYS)?;
        let mut settings = IsolaSettings::default();
        if let Some(limits) = object.get("limits") {
            self.object(limits, "isola.limits", "an object")?;
            settings.limits = serde_json::from_value(limits.clone()).map_err(|e| {
                self.invalid(
                    "isola.limits",
                    format!("{e}\nhint: limits take deadlineMs, memoryBytes, stackBytes, maxToolCalls, maxConcurrency, maxLogBytes, maxResultBytes (non-negative integers)"),
                )
            })?;
            ranges::check_limits(&settings.limits)
                .map_err(|(key, message)| self.invalid(&format!("isola.limits.{key}"), message))?;
        }
        if let Some(n) = object.get("workers") {
            settings.workers = Some(self.in_range(n, &ranges::WORKERS)? as usize);
        }
        if let Some(n) = object.get("maxWorkers") {
            settings.max_workers = Some(self.in_range(n, &ranges::MAX_WORKERS)? as usize);
        }
        if let (Some(warm), Some(max)) = (settings.workers, settings.max_workers)
            && warm > max
        {
            return Err(self.invalid(
                "isola.workers",
                format!("{warm} workers kept warm is more than maxWorkers ({max})"),
            ));
        }
        if let Some(n) = object.get("maxScriptBytes") {
            settings.max_script_bytes = self.in_range(n, &ranges::MAX_SCRIPT_BYTES)?;
        }
        if let Some(ms) = object.get("callTimeoutMs") {
            settings.call_timeout_ms = self.in_range(ms, &ranges::CALL_TIMEOUT_MS)?;
        }
        if let Some(ms) = object.get("startupTimeoutMs") {
            settings.startup_timeout_ms = self.in_range(ms, &ranges::STARTUP_TIMEOUT_MS)?;
        }
        if let Some(value) = object.get("requireHardening") {
            let key = "isola.requireHardening";
            let items = value
                .as_array()
                .ok_or_else(|| self.wrong_type(key, "an array of layer names", value))?;
            for (i, item) in items.iter().enumerate() {
                let name = self.string(item, &format!("{key}[{i}]"))?;
                if !HARDENING_LAYERS.contains(&name) {
                    return Err(self.invalid(
                        &format!("{key}[{i}]"),
                        format!(
                            "no hardening layer `{name}`\nhint: the layers are {}",
                            HARDENING_LAYERS.join(", ")
                        ),
                    ));
                }
                settings.require_hardening.push(name.to_string());
            }
        }
        if let Some(store) = object.get("store") {
            let text = self.string(store, "isola.store")?;
            settings.store = Some(self.expand(text, "isola.store")?);
        }
        if let Some(agent) = object.get("agent") {
            self.object(agent, "isola.agent", "an object")?;
            settings.agent = Some(agent.clone());
        }
        if let Some(effects) = object.get("effects") {
            settings.effects = self.effects(effects)?;
        }
        if let Some(policy) = object.get("policy") {
            settings.policy = self.policy(policy)?;
        }
        if let Some(tokens) = object.get("tokens") {
            settings.tokens = self.tokens(tokens)?;
        }
        if let Some(check) = object.get("check") {
            settings.check = self.check(check)?;
        }
        if let Some(approvals) = object.get("approvals") {
            let object = self.object(approvals, "isola.approvals", "an object")?;
            self.check_keys(object, "isola.approvals", APPROVALS_KEYS)?;
            if let Some(ms) = object.get("timeoutMs") {
                settings.approvals.timeout_ms = self.in_range(ms, &ranges::APPROVAL_TIMEOUT_MS)?;
            }
            if let Some(ms) = object.get("suspendAfterMs") {
                settings.approvals.suspend_after_ms =
                    self.in_range(ms, &ranges::APPROVAL_SUSPEND_AFTER_MS)?;
            }
        }
        Ok(settings)
    }

    /// `isola.effects`: `{ "<server>": { "<tool>" | "*": "read" | { "effect": ..., ... } } }`.
    fn effects(
        &self,
        value: &Value,
    ) -> Result<BTreeMap<String, BTreeMap<String, EffectOverride>>, ConfigError> {
        let key = "isola.effects";
        let servers = self.object(value, key, "an object mapping server names to their tools")?;
        let mut out = BTreeMap::new();
        for (server, tools) in servers {
            let server_key = child_key(key, server);
            let tools = self.object(
                tools,
                &server_key,
                "an object mapping tool names to effects",
            )?;
            let mut map = BTreeMap::new();
            for (tool, effect) in tools {
                let tool_key = child_key(&server_key, tool);
                let parsed = match effect {
                    Value::String(class) => EffectOverride {
                        effect: Some(self.effect_class(class, &tool_key)?),
                        ..EffectOverride::default()
                    },
                    Value::Object(object) => {
                        self.check_keys(object, &tool_key, EFFECT_KEYS)?;
                        let flag = |name: &str| -> Result<Option<bool>, ConfigError> {
                            object
                                .get(name)
                                .map(|v| {
                                    v.as_bool().ok_or_else(|| {
                                        self.wrong_type(&child_key(&tool_key, name), "a boolean", v)
                                    })
                                })
                                .transpose()
                        };
                        let class_key = child_key(&tool_key, "effect");
                        EffectOverride {
                            effect: object
                                .get("effect")
                                .map(|v| self.effect_class(self.string(v, &class_key)?, &class_key))
                                .transpose()?,
                            idempotent: flag("idempotent")?,
                            open_world: flag("openWorld")?,
                        }
                    }
                    other => {
                        return Err(self.wrong_type(
                            &tool_key,
                            "an effect class (\"read\", \"write\", \"destructive\") or an object",
                            other,
                        ));
                    }
                };
                map.insert(tool.clone(), parsed);
            }
            out.insert(server.clone(), map);
        }
        Ok(out)
    }

    fn effect_class(&self, class: &str, key: &str) -> Result<String, ConfigError> {
        if EFFECT_CLASSES.contains(&class) {
            Ok(class.to_owned())
        } else {
            Err(self.invalid(
                key,
                format!(
                    "`{class}` is not an effect class\nhint: use one of {}",
                    EFFECT_CLASSES.join(", ")
                ),
            ))
        }
    }

    /// `isola.policy`: `{ "files": [...], "data": {...}, "timeLimitMs": N }`.
    /// `isola.tokens`: `{ "<name>": { "token": "${VAR}", "role": "viewer" | "operator" | "admin" } }`.
    fn tokens(&self, value: &Value) -> Result<BTreeMap<String, TokenSettings>, ConfigError> {
        let key = "isola.tokens";
        let tokens = self.object(value, key, "an object mapping token names to tokens")?;
        let mut out: BTreeMap<String, TokenSettings> = BTreeMap::new();
        for (name, token) in tokens {
            let token_key = child_key(key, name);
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(self.invalid(
                    &token_key,
                    "a token's name is 1 to 64 letters, digits, `.`, `_` or `-` (the journal records it as who acted)",
                ));
            }
            let object = self.object(token, &token_key, "an object with `token` and `role`")?;
            self.check_keys(object, &token_key, TOKEN_KEYS)?;
            let secret_key = child_key(&token_key, "token");
            let secret = match object.get("token") {
                Some(v) => self.expand(self.string(v, &secret_key)?, &secret_key)?,
                None => return Err(self.invalid(&token_key, "`token` is missing\nhint: \"token\": \"${ISOLA_TOKEN_NAME}\" keeps the secret in the environment")),
            };
            if secret.len() < MIN_TOKEN_BYTES {
                return Err(self.invalid(
                    &secret_key,
                    format!("the token is {} bytes; at least {MIN_TOKEN_BYTES} are needed\nhint: openssl rand -hex 32", secret.len()),
                ));
            }
            if let Some((other, _)) = out.iter().find(|(_, t)| t.token == secret) {
                return Err(self.invalid(
                    &secret_key,
                    format!("the same secret as token `{other}`: each token needs its own"),
                ));
            }
            let role_key = child_key(&token_key, "role");
            let role = match object.get("role") {
                Some(v) => self.string(v, &role_key)?.to_string(),
                None => {
                    return Err(self.invalid(
                        &token_key,
                        format!("`role` is missing: one of {}", TOKEN_ROLES.join(", ")),
                    ));
                }
            };
            if !TOKEN_ROLES.contains(&role.as_str()) {
                return Err(self.invalid(
                    &role_key,
                    format!("no role `{role}`: one of {}", TOKEN_ROLES.join(", ")),
                ));
            }
            out.insert(
                name.clone(),
                TokenSettings {
                    token: secret,
                    role,
                },
            );
        }
        Ok(out)
    }

    fn check(&self, value: &Value) -> Result<CheckSettings, ConfigError> {
        let key = "isola.check";
        let object = self.object(value, key, "an object")?;
        self.check_keys(object, key, CHECK_KEYS)?;
        let mut check = CheckSettings::default();
        if let Some(path) = object.get("compiler") {
            let path_key = child_key(key, "compiler");
            let raw = self.expand(self.string(path, &path_key)?, &path_key)?;
            if raw.is_empty() {
                return Err(self.invalid(&path_key, "the path is empty"));
            }
            check.compiler = Some(self.path.parent().unwrap_or(Path::new("")).join(raw));
        }
        for (name, mode) in [
            ("exec", &mut check.exec),
            ("agent", &mut check.agent),
            ("mcp", &mut check.mcp),
        ] {
            if let Some(value) = object.get(name) {
                let mode_key = child_key(key, name);
                let text = self.string(value, &mode_key)?;
                *mode = CheckMode::parse(text).ok_or_else(|| {
                    self.invalid(
                        &mode_key,
                        format!(
                            "`{text}` is not a check mode: it takes \"off\", \"warn\" or \"error\""
                        ),
                    )
                })?;
            }
        }
        if let Some(ms) = object.get("timeoutMs") {
            check.timeout_ms = self.in_range(ms, &ranges::CHECK_TIMEOUT_MS)?;
        }
        if let Some(mb) = object.get("memoryMb") {
            check.memory_mb = self.in_range(mb, &ranges::CHECK_MEMORY_MB)?;
        }
        Ok(check)
    }

    fn policy(&self, value: &Value) -> Result<PolicySettings, ConfigError> {
        let key = "isola.policy";
        let object = self.object(value, key, "an object")?;
        self.check_keys(object, key, POLICY_KEYS)?;
        let mut policy = PolicySettings::default();
        if let Some(files) = object.get("files") {
            let files_key = child_key(key, "files");
            let items = files
                .as_array()
                .ok_or_else(|| self.wrong_type(&files_key, "an array of file paths", files))?;
            let base = self.path.parent().unwrap_or(Path::new(""));
            for (i, item) in items.iter().enumerate() {
                let item_key = format!("{files_key}[{i}]");
                let raw = self.expand(self.string(item, &item_key)?, &item_key)?;
                if raw.is_empty() {
                    return Err(self.invalid(&item_key, "the path is empty"));
                }
                policy.files.push(base.join(raw));
            }
        }
        if let Some(data) = object.get("data") {
            self.object(data, &child_key(key, "data"), "an object")?;
            policy.data = Some(data.clone());
        }
        if let Some(ms) = object.get("timeLimitMs") {
            policy.time_limit_ms = self.in_range(ms, &ranges::POLICY_TIME_LIMIT_MS)?;
        }
        Ok(policy)
    }

    /// An integer of `isola.<range.key>` within its range.
    fn in_range(&self, value: &Value, range: &ranges::Range) -> Result<u64, ConfigError> {
        let key = format!("isola.{}", range.key);
        let n = value
            .as_u64()
            .ok_or_else(|| self.wrong_type(&key, "a non-negative integer", value))?;
        range.check(n).map_err(|m| self.invalid(&key, m))
    }

    /// Expand `${VAR}` and `${VAR:-default}` in `raw`.
    fn expand(&self, raw: &str, key: &str) -> Result<String, ConfigError> {
        let bad = |problem: String| ConfigError::BadVariable {
            path: self.path.to_owned(),
            key: key.to_owned(),
            value: raw.to_owned(),
            problem,
        };
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| bad("`${` is not closed by `}`".to_owned()))?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(bad(format!("`{name}` is not a variable name")));
            }
            match ((self.env)(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(ConfigError::UnsetVariable {
                        path: self.path.to_owned(),
                        key: key.to_owned(),
                        var: name.to_owned(),
                    });
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}
