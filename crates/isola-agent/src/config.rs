//! The agent's settings: `isola.agent` in the config file, then environment variables, then
//! command-line flags (each overriding the one before).
//!
//! ```json
//! "isola": {
//!   "agent": {
//!     "model": "openai:gpt-4o-mini",
//!     "codeModel": "openai:gpt-4.1-mini",
//!     "fallback": ["anthropic:claude-haiku-4-5"],
//!     "mode": "code",
//!     "providers": {
//!       "ollama": { "kind": "openai", "baseUrl": "http://localhost:11434/v1",
//!                   "maxOutputTokens": 2048, "timeoutMs": 1200000, "idleTimeoutMs": 600000 }
//!     },
//!     "maxAttempts": 4,
//!     "limits": { "maxLlmCalls": 20, "maxExecutions": 10, "maxTokens": 200000, "maxCostUsd": 0.5 },
//!     "retry": { "maxRetries": 2, "initialBackoffMs": 500, "maxBackoffMs": 8000, "maxRetryAfterMs": 60000 },
//!     "stream": true,
//!     "toolChoice": "auto",
//!     "cache": { "enabled": false, "ttlSecs": 3600, "dir": ".isola/cache" },
//!     "prices": { "my-model": { "input": 0.5, "output": 1.5, "cached": 0.1 } },
//!     "embedMaxTokens": 4000,
//!     "instructions": "Answer in French.",
//!     "plan": false
//!   }
//! }
//! ```
//!
//! The output-token cap and the timeouts have defaults per provider
//! ([`isola_llm::CallLimits`]): a hosted API gets 4096 tokens, a 300 s request timeout and a
//! 120 s idle timeout; a server on this machine or a private network (llama.cpp, Ollama, vLLM)
//! gets 2048 tokens, 1200 s and 600 s, since a CPU reads a long prompt for minutes and
//! llama.cpp sends nothing while it generates a tool call. `providers.NAME.maxOutputTokens`,
//! `timeoutMs`, `idleTimeoutMs` (and `local`) change one provider's; `maxOutputTokens`,
//! `timeoutMs` and `idleTimeoutMs` directly under `isola.agent` (or `--max-output-tokens`,
//! `--timeout`, `--idle-timeout`) apply to every model and win over the provider's.
//!
//! No model is built in: without `model` (or `ISOLA_MODEL`, or `--model`) the agent does not
//! start, and says how to name one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use isola_llm::{
    Gateway, GatewaySettings, LlmError, Price, PriceTable, ProviderSettings, Providers,
    ResponseCache, RetryPolicy, Route, ToolChoice,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Environment variables the agent reads (besides each provider's key and base URL, see
/// [`isola_llm::ProviderKind`]).
pub const ENV_MODEL: &str = "ISOLA_MODEL";
pub const ENV_CODE_MODEL: &str = "ISOLA_CODE_MODEL";

/// How the model reaches the tools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// One step: the model writes TypeScript against the typed API and `execute`s it.
    #[default]
    Code,
    /// The agent model describes the function it wants; the code model writes it.
    TwoStep,
    /// Classic JSON tool calling of the same MCP tools, one call per round trip.
    Tools,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Code => "code",
            Mode::TwoStep => "two-step",
            Mode::Tools => "tools",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Code, Mode::TwoStep, Mode::Tools]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// Limits of one run (one user prompt). Hitting one ends the run with what was done so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RunLimits {
    /// Model requests (each answered request counts once, whatever its retries).
    pub max_llm_calls: u32,
    /// Script executions (code modes) or tool calls (tools mode).
    pub max_executions: u32,
    /// Input plus output tokens over all calls.
    pub max_tokens: Option<u64>,
    /// USD over all calls (calls to models without a price count as 0).
    pub max_cost_usd: Option<f64>,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            max_llm_calls: 20,
            max_executions: 10,
            max_tokens: None,
            max_cost_usd: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RetrySettings {
    pub max_retries: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub max_retry_after_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        let d = RetryPolicy::default();
        Self {
            max_retries: d.max_retries,
            initial_backoff_ms: d.initial_backoff.as_millis() as u64,
            max_backoff_ms: d.max_backoff.as_millis() as u64,
            max_retry_after_ms: d.max_retry_after.as_millis() as u64,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheSettings {
    /// Off by default for `run` and `chat`; the benchmark turns it on.
    pub enabled: bool,
    pub ttl_secs: u64,
    /// Keep entries on disk here (relative to the config file's directory); in memory when
    /// absent.
    pub dir: Option<PathBuf>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            ttl_secs: 3600,
            dir: None,
        }
    }
}

/// Everything the agent can be told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentConfig {
    /// `provider:model` of the agent model.
    pub model: Option<String>,
    /// `provider:model` of the code model (two-step mode); the agent model when absent.
    pub code_model: Option<String>,
    /// Tried in order when the model fails with 429, 5xx or a timeout after its retries.
    pub fallback: Vec<String>,
    pub mode: Mode,
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Failed executions in a row before the run gives up.
    pub max_attempts: u32,
    pub limits: RunLimits,
    pub retry: RetrySettings,
    /// The request timeout of every model (the whole answer when not streamed, its first
    /// byte when streamed), over each provider's own.
    pub timeout_ms: Option<u64>,
    /// The longest silence of a streamed answer, for every model, over each provider's own.
    pub idle_timeout_ms: Option<u64>,
    pub stream: bool,
    /// Whether the agent model may (`auto`), must (`required`) or must not (`none`) call a
    /// tool; the provider's default (auto) when unset. `required` suits small local models that
    /// otherwise answer without using their tools: every answer is then a tool call, and the
    /// run ends at a limit or when the model is stuck.
    pub tool_choice: Option<ToolChoice>,
    pub cache: CacheSettings,
    /// USD per million tokens, by model name or prefix; added to (and overriding) the defaults.
    pub prices: BTreeMap<String, Price>,
    /// The output-token cap of every model, over each provider's own. An answer cut at the cap
    /// is asked for again once with twice the cap; cut again, the run stops and says so.
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// An API whose declarations take at most this many tokens is embedded in `execute`'s
    /// description; a larger one is reached through `search` and `describe` (as `isola mcp`).
    pub embed_max_tokens: usize,
    /// Added to the system prompt.
    pub instructions: Option<String>,
    /// Plan mode: each script runs as a plan first, and is applied only once the plan is
    /// allowed by the policy or approved (the front-end carries this out; `--plan`).
    pub plan: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            model: None,
            code_model: None,
            fallback: Vec::new(),
            mode: Mode::Code,
            providers: BTreeMap::new(),
            max_attempts: 4,
            limits: RunLimits::default(),
            retry: RetrySettings::default(),
            timeout_ms: None,
            idle_timeout_ms: None,
            stream: true,
            tool_choice: None,
            cache: CacheSettings::default(),
            prices: BTreeMap::new(),
            max_output_tokens: None,
            temperature: None,
            embed_max_tokens: isola_codemode::descriptions::DEFAULT_EMBED_MAX_TOKENS,
            instructions: None,
            plan: false,
        }
    }
}

/// Why the agent could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `isola.agent` does not have the expected shape.
    #[error("{}: isola.agent: {message}\nhint: the `isola.agent` keys are model, codeModel, fallback, mode, providers, maxAttempts, limits, retry, timeoutMs, idleTimeoutMs, stream, toolChoice, cache, prices, maxOutputTokens, temperature, embedMaxTokens, instructions, plan (see crates/isola-agent/src/config.rs)", file.display())]
    Invalid { file: PathBuf, message: String },

    /// No agent model anywhere.
    #[error(
        "no model for the agent\nhint: pass --model provider:model (e.g. --model openai:gpt-4o-mini, or --model openai:NAME with OPENAI_BASE_URL for an OpenAI-compatible server), set {ENV_MODEL}, or set isola.agent.model in the config"
    )]
    NoModel,

    /// A value that parses but cannot work (zero attempts...).
    #[error("{key}: {message}")]
    Value { key: &'static str, message: String },

    /// A model name that does not resolve.
    #[error(transparent)]
    Model(#[from] LlmError),
}

impl AgentConfig {
    /// Parse `isola.agent` (as the config file has it) from `file`.
    pub fn from_value(value: Option<&Value>, file: &Path) -> Result<AgentConfig, ConfigError> {
        let Some(value) = value else {
            return Ok(AgentConfig::default());
        };
        let config: AgentConfig =
            serde_json::from_value(value.clone()).map_err(|e| ConfigError::Invalid {
                file: file.to_path_buf(),
                message: e.to_string(),
            })?;
        let mut config = config;
        if let Some(dir) = &config.cache.dir
            && dir.is_relative()
            && let Some(parent) = file.parent()
        {
            config.cache.dir = Some(parent.join(dir));
        }
        Ok(config)
    }

    /// Models from the environment, where the file named none (flags are applied after).
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(m) = get(ENV_MODEL) {
            self.model = Some(m);
        }
        if let Some(m) = get(ENV_CODE_MODEL) {
            self.code_model = Some(m);
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::Value {
                key: "maxAttempts",
                message: "must be at least 1".into(),
            });
        }
        if self.limits.max_llm_calls == 0 {
            return Err(ConfigError::Value {
                key: "limits.maxLlmCalls",
                message: "must be at least 1".into(),
            });
        }
        let zero = |key: &'static str| {
            Err(ConfigError::Value {
                key,
                message: "must be at least 1".into(),
            })
        };
        if self.timeout_ms == Some(0) {
            return zero("timeoutMs");
        }
        if self.idle_timeout_ms == Some(0) {
            return zero("idleTimeoutMs");
        }
        if self.max_output_tokens == Some(0) {
            return zero("maxOutputTokens");
        }
        for (name, p) in &self.providers {
            for (key, value) in [
                ("maxOutputTokens", p.max_output_tokens.map(u64::from)),
                ("timeoutMs", p.timeout_ms),
                ("idleTimeoutMs", p.idle_timeout_ms),
            ] {
                if value == Some(0) {
                    return Err(ConfigError::Value {
                        key: "providers",
                        message: format!("{name}.{key} must be at least 1"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The gateway and the model chains these settings describe.
    pub fn build(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Models, ConfigError> {
        self.check()?;
        let providers = Providers {
            configured: &self.providers,
            env,
        };
        let model = self.model.as_deref().ok_or(ConfigError::NoModel)?;
        let mut agent_chain = vec![providers.route(model)?];
        for f in &self.fallback {
            agent_chain.push(providers.route(f)?);
        }
        let code_chain = match &self.code_model {
            Some(m) => {
                let mut chain = vec![providers.route(m)?];
                chain.extend(agent_chain.iter().skip(1).cloned());
                chain
            }
            None => agent_chain.clone(),
        };
        let mut prices = PriceTable::default();
        prices.extend(self.prices.clone());
        let cache = self.cache.enabled.then(|| {
            let ttl = Duration::from_secs(self.cache.ttl_secs.max(1));
            match &self.cache.dir {
                Some(dir) => ResponseCache::on_disk(dir.clone(), ttl),
                None => ResponseCache::in_memory(ttl),
            }
        });
        let gateway = Gateway::new(GatewaySettings {
            retry: RetryPolicy {
                max_retries: self.retry.max_retries,
                initial_backoff: Duration::from_millis(self.retry.initial_backoff_ms),
                max_backoff: Duration::from_millis(self.retry.max_backoff_ms),
                max_retry_after: Duration::from_millis(self.retry.max_retry_after_ms),
            },
            request_timeout: self.timeout_ms.map(Duration::from_millis),
            idle_timeout: self.idle_timeout_ms.map(Duration::from_millis),
            stream: self.stream,
            prices,
            cache,
        })?;
        Ok(Models {
            gateway,
            agent_chain,
            code_chain,
        })
    }
}

/// The gateway and who to ask.
pub struct Models {
    pub gateway: Gateway,
    /// The agent model, then its fallbacks.
    pub agent_chain: Vec<Route>,
    /// The code model (two-step), then the same fallbacks.
    pub code_chain: Vec<Route>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(value: Value, expect: &str) {
        let err = AgentConfig::from_value(Some(&value), Path::new("/p/isola.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{err}");
        assert!(err.starts_with("/p/isola.json: isola.agent: "), "{err}");
    }

    #[test]
    fn bad_settings_are_named() {
        check(json!({"modle": "x"}), "unknown field `modle`");
        check(
            json!({"mode": "fast"}),
            "unknown variant `fast`, expected one of `code`, `two-step`, `tools`",
        );
        check(
            json!({"limits": {"maxCalls": 3}}),
            "unknown field `maxCalls`",
        );
        check(
            json!({"prices": {"m": {"input": 1}}}),
            "missing field `output`",
        );
        check(json!({"maxAttempts": -1}), "invalid value");
        check(
            json!({"toolChoice": "always"}),
            "unknown variant `always`, expected one of `auto`, `required`, `none`",
        );
        check(
            json!({"providers": {"local": {"idleTimeout": 5}}}),
            "unknown field `idleTimeout`",
        );
    }

    /// A local server's provider gets the slow defaults; its settings and the agent-wide ones
    /// (flags write those) win in that order.
    #[test]
    fn per_provider_limits() {
        let c = AgentConfig::from_value(
            Some(&json!({
                "model": "llama:gemma",
                "fallback": ["openai:gpt-4o-mini"],
                "providers": {"llama": {"kind": "openai", "baseUrl": "http://127.0.0.1:8080/v1", "idleTimeoutMs": 900000}},
            })),
            Path::new("/p/isola.json"),
        )
        .unwrap();
        let models = c.build(&|_| None).unwrap();
        let [local, hosted] = [&models.agent_chain[0], &models.agent_chain[1]];
        assert_eq!(
            (
                local.provider.local,
                local.provider.limits.max_output_tokens
            ),
            (true, isola_llm::CallLimits::LOCAL.max_output_tokens)
        );
        assert_eq!(
            models.gateway.timeouts(local).idle,
            Duration::from_secs(900)
        );
        assert_eq!(
            models.gateway.timeouts(local).request,
            isola_llm::CallLimits::LOCAL.request_timeout
        );
        assert_eq!(
            models.gateway.timeouts(hosted).idle,
            isola_llm::CallLimits::HOSTED.idle_timeout
        );
        let mut c = c;
        c.idle_timeout_ms = Some(1000);
        let models = c.build(&|_| None).unwrap();
        assert_eq!(
            models.gateway.timeouts(&models.agent_chain[0]).idle,
            Duration::from_secs(1)
        );
        c.providers.get_mut("llama").unwrap().timeout_ms = Some(0);
        assert!(
            c.build(&|_| None)
                .err()
                .unwrap()
                .to_string()
                .contains("providers: llama.timeoutMs must be at least 1")
        );
    }

    #[test]
    fn defaults_and_env() {
        let mut c = AgentConfig::from_value(
            Some(&json!({"mode": "tools", "cache": {"enabled": true, "dir": "cache"}})),
            Path::new("/p/isola.json"),
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Tools);
        assert_eq!(c.cache.dir.as_deref(), Some(Path::new("/p/cache")));
        assert!(matches!(c.build(&|_| None), Err(ConfigError::NoModel)));
        c.apply_env(&|k| (k == ENV_MODEL).then(|| "openai:m".to_string()));
        let models = c.build(&|_| None).unwrap();
        assert_eq!(models.agent_chain[0].to_string(), "openai:m");
        assert_eq!(models.code_chain[0].to_string(), "openai:m");
    }
}
