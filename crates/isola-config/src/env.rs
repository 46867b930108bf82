//! Every environment variable Isola reads, in one place.
//!
//! The list is the source of the table in `ARCHITECTURE.md` ("Configuration"); a test checks
//! that the document names each variable, so a variable added here cannot go undocumented.
//! `${VAR}` references in the config file read whatever variable they name; those are the
//! user's, not listed here.

/// One variable Isola reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvVar {
    pub name: &'static str,
    /// Which part of Isola reads it.
    pub read_by: &'static str,
    /// What it does, in one line.
    pub what: &'static str,
}

const fn var(name: &'static str, read_by: &'static str, what: &'static str) -> EnvVar {
    EnvVar {
        name,
        read_by,
        what,
    }
}

pub const ISOLA_CONFIG: &str = "ISOLA_CONFIG";
pub const ISOLA_MCP_TOKEN: &str = "ISOLA_MCP_TOKEN";
pub const ISOLA_MCP_EMBED_MAX_TOKENS: &str = "ISOLA_MCP_EMBED_MAX_TOKENS";
pub const ISOLA_MODEL: &str = "ISOLA_MODEL";
pub const ISOLA_CODE_MODEL: &str = "ISOLA_CODE_MODEL";
pub const ISOLA_DENO: &str = "ISOLA_DENO";
pub const ISOLA_FIXTURE_SERVERS: &str = "ISOLA_FIXTURE_SERVERS";
pub const RUST_LOG: &str = "RUST_LOG";
pub const ISOLA_STORE: &str = "ISOLA_STORE";
pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";

/// Every variable Isola itself reads.
pub const VARS: &[EnvVar] = &[
    var(
        ISOLA_CONFIG,
        "every command",
        "the config file (default: isola.json in the working directory); --config wins",
    ),
    var(
        RUST_LOG,
        "every command",
        "log filter for stderr (tracing's syntax); -v and -vv set a default",
    ),
    var(
        ISOLA_STORE,
        "exec, run, chat, mcp, serve, journal, sessions, replay, resume, plan, apply, approvals",
        "where the journal, sessions and state live (sqlite:PATH, postgres://..., none); --store wins",
    ),
    var(
        XDG_DATA_HOME,
        "exec, run, chat, mcp, serve, journal, sessions, replay, resume, plan, apply, approvals",
        "the default store is $XDG_DATA_HOME/isola/isola.db (else ~/.local/share/isola/isola.db)",
    ),
    var(
        ISOLA_MCP_TOKEN,
        "isola mcp --http, isola serve",
        "the bearer token HTTP clients must send; --token wins",
    ),
    var(
        ISOLA_MCP_EMBED_MAX_TOKENS,
        "isola mcp, isola serve",
        "the largest API (in tokens) embedded in execute's description",
    ),
    var(
        ISOLA_MODEL,
        "isola run, isola chat",
        "the agent's model (provider:model); --model wins",
    ),
    var(
        ISOLA_CODE_MODEL,
        "isola run, isola chat",
        "the model that writes scripts in two-step mode",
    ),
    var(
        "OPENAI_API_KEY",
        "isola run, isola chat",
        "key for OpenAI and OpenAI-compatible servers",
    ),
    var(
        "OPENAI_BASE_URL",
        "isola run, isola chat",
        "base URL of an OpenAI-compatible server",
    ),
    var(
        "ANTHROPIC_API_KEY",
        "isola run, isola chat",
        "key for Anthropic",
    ),
    var(
        "ANTHROPIC_BASE_URL",
        "isola run, isola chat",
        "base URL of the Anthropic API",
    ),
    var(
        "GEMINI_API_KEY",
        "isola run, isola chat",
        "key for Gemini (GOOGLE_API_KEY also works)",
    ),
    var(
        "GOOGLE_API_KEY",
        "isola run, isola chat",
        "key for Gemini when GEMINI_API_KEY is not set",
    ),
    var(
        "GEMINI_BASE_URL",
        "isola run, isola chat",
        "base URL of the Gemini API",
    ),
    var(
        ISOLA_DENO,
        "isola-bench exec",
        "a deno binary to compare against",
    ),
    var(
        ISOLA_FIXTURE_SERVERS,
        "isola-bench agent",
        "where the fixture MCP servers are installed",
    ),
];

/// What a stdio MCP server inherits of Isola's environment unless its entry says
/// `"inheritEnv": true`: the list the official MCP SDKs (TypeScript and Python) use on Unix.
/// Values that start with `()` (exported shell functions) are not passed, as the SDKs do.
pub const INHERITED: &[&str] = &["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/// The inherited part of a stdio server's environment, from `vars` (Isola's environment).
pub fn inherited<I>(vars: I, inherit_all: bool) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (String, String)>,
{
    vars.into_iter()
        .filter(|(name, value)| {
            (inherit_all || INHERITED.contains(&name.as_str())) && !value.starts_with("()")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allowlist_is_inherited() {
        let vars = [
            ("PATH", "/bin"),
            ("HOME", "/h"),
            ("OPENAI_API_KEY", "sk"),
            ("USER", "() { evil; }"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let names = |all| -> Vec<String> {
            inherited(vars.clone(), all)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(names(false), ["PATH", "HOME"]);
        assert_eq!(names(true), ["PATH", "HOME", "OPENAI_API_KEY"]);
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = VARS.iter().map(|v| v.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
