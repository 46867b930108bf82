//! Providers and routes: which wire format, where, with which key, for which model.
//!
//! A model is named `provider:model` (`openai:gpt-4o-mini`, `anthropic:claude-sonnet-4-5`,
//! `ollama:llama3.1` for a provider defined in the config). A bare model name is given to the
//! provider its prefix suggests (`gpt-`, `o1`..`o4` → openai, `claude` → anthropic, `gemini` →
//! gemini).
//!
//! Keys and base URLs come from the usual environment variables unless the config names others:
//!
//! | provider kind | key | base URL (default) |
//! | --- | --- | --- |
//! | `openai` | `OPENAI_API_KEY` | `OPENAI_BASE_URL` (`https://api.openai.com/v1`) |
//! | `anthropic` | `ANTHROPIC_API_KEY` | `ANTHROPIC_BASE_URL` (`https://api.anthropic.com`) |
//! | `gemini` | `GEMINI_API_KEY`, else `GOOGLE_API_KEY` | `GEMINI_BASE_URL` (`https://generativelanguage.googleapis.com`) |
//!
//! Each provider has [`CallLimits`]: the output-token cap sent when a request sets none, the
//! request timeout and the stream's idle timeout. A provider whose base URL is on this machine
//! or a private network (`localhost`, `127.0.0.1`, `10.x`, `192.168.x`, `*.local`, a host name
//! without a dot such as a container's) is a local server (llama.cpp, Ollama, vLLM on a CPU or
//! a small GPU) and gets [`CallLimits::LOCAL`]; any other gets [`CallLimits::HOSTED`]. The
//! provider's settings (`local`, `maxOutputTokens`, `timeoutMs`, `idleTimeoutMs`) override
//! them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::LlmError;

/// The wire format a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions, and every server compatible with it (Ollama, vLLM, llama.cpp
    /// server, LM Studio, OpenRouter...).
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
            ProviderKind::Gemini => "https://generativelanguage.googleapis.com",
        }
    }

    /// Environment variables holding the key, in order of preference.
    pub fn key_vars(self) -> &'static [&'static str] {
        match self {
            ProviderKind::OpenAi => &["OPENAI_API_KEY"],
            ProviderKind::Anthropic => &["ANTHROPIC_API_KEY"],
            ProviderKind::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        }
    }

    /// The environment variable overriding the default base URL.
    pub fn base_url_var(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "OPENAI_BASE_URL",
            ProviderKind::Anthropic => "ANTHROPIC_BASE_URL",
            ProviderKind::Gemini => "GEMINI_BASE_URL",
        }
    }

    /// The provider a bare model name suggests.
    pub fn guess(model: &str) -> Option<Self> {
        let m = model.to_ascii_lowercase();
        if m.starts_with("gpt-")
            || m.starts_with("chatgpt")
            || ["o1", "o3", "o4"].iter().any(|p| m.starts_with(p))
        {
            Some(ProviderKind::OpenAi)
        } else if m.starts_with("claude") {
            Some(ProviderKind::Anthropic)
        } else if m.starts_with("gemini") {
            Some(ProviderKind::Gemini)
        } else {
            None
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider as configured (`isola.agent.providers.NAME` in the config file).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderSettings {
    /// The wire format; defaults to the provider's name when that is `openai`, `anthropic` or
    /// `gemini`.
    pub kind: Option<ProviderKind>,
    /// Overrides the environment variable and the default.
    pub base_url: Option<String>,
    /// The environment variable holding the key (instead of the kind's usual one). Keys are
    /// never written in the config file itself.
    pub api_key_env: Option<String>,
    /// Extra HTTP headers (OpenRouter's `HTTP-Referer`, a proxy's auth...).
    pub headers: BTreeMap<String, String>,
    /// Whether this is a local server (slow defaults, see [`CallLimits::LOCAL`]); by default,
    /// whether the base URL's host is on this machine or a private network.
    pub local: Option<bool>,
    /// The output-token cap sent when a request sets none.
    pub max_output_tokens: Option<u32>,
    /// The request timeout: the whole response when not streamed, the response head when
    /// streamed.
    pub timeout_ms: Option<u64>,
    /// The longest silence between two events of a streamed answer.
    pub idle_timeout_ms: Option<u64>,
}

/// The output-token cap and the timeouts of calls to one provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallLimits {
    /// Sent as the cap when a request sets none.
    pub max_output_tokens: u32,
    /// The whole response when not streamed; the response head when streamed.
    pub request_timeout: Duration,
    /// The longest silence between two events of a stream.
    pub idle_timeout: Duration,
}

impl CallLimits {
    /// Hosted APIs: fast, and answering within seconds.
    pub const HOSTED: CallLimits = CallLimits {
        max_output_tokens: 4096,
        request_timeout: Duration::from_secs(300),
        idle_timeout: Duration::from_secs(120),
    };

    /// A local server on a CPU: a few tokens a second, a long prompt takes minutes to read,
    /// and llama.cpp sends nothing while it generates a tool call (its parser holds the deltas
    /// back: a 232 s silence was seen). A smaller cap keeps a model that never stops from
    /// running until its context is full.
    pub const LOCAL: CallLimits = CallLimits {
        max_output_tokens: 2048,
        request_timeout: Duration::from_secs(1200),
        idle_timeout: Duration::from_secs(600),
    };
}

/// Whether a base URL's host is on this machine or a private network: loopback, private and
/// link-local addresses, `localhost`, `*.local`, `*.internal`, and a host name without a dot
/// (a container or LAN name).
pub fn is_local_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return false;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
            }
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    // fc00::/7 (unique local) and fe80::/10 (link-local)
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
    }
    host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".local")
        || host.ends_with(".internal")
        || !host.contains('.')
}

/// A provider ready to call.
#[derive(Clone)]
pub struct Provider {
    /// The name used in `provider:model` (`openai`, `ollama`...).
    pub name: String,
    pub kind: ProviderKind,
    /// Without a trailing `/`.
    pub base_url: String,
    pub api_key: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// A local server (see [`is_local_url`] and [`ProviderSettings::local`]).
    pub local: bool,
    pub limits: CallLimits,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("local", &self.local)
            .field("limits", &self.limits)
            .finish()
    }
}

/// One model at one provider: an element of a fallback chain.
#[derive(Clone, Debug)]
pub struct Route {
    pub provider: Arc<Provider>,
    pub model: String,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider.name, self.model)
    }
}

/// Resolves `provider:model` names against the configured providers and the environment.
pub struct Providers<'a> {
    pub configured: &'a BTreeMap<String, ProviderSettings>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Providers<'_> {
    /// The route a model name means.
    pub fn route(&self, spec: &str) -> Result<Route, LlmError> {
        let spec = spec.trim();
        let (provider, model) = match spec.split_once(':') {
            Some((p, m)) if self.configured.contains_key(p) || ProviderKind::parse(p).is_some() => {
                (p.to_string(), m)
            }
            Some((p, _)) => {
                return Err(LlmError::UnknownProvider {
                    spec: spec.to_string(),
                    provider: p.to_string(),
                    known: self.known(),
                });
            }
            None => match ProviderKind::guess(spec) {
                Some(kind) => (kind.as_str().to_string(), spec),
                None => {
                    return Err(LlmError::AmbiguousModel {
                        spec: spec.to_string(),
                        known: self.known(),
                    });
                }
            },
        };
        if model.is_empty() {
            return Err(LlmError::AmbiguousModel {
                spec: spec.to_string(),
                known: self.known(),
            });
        }
        Ok(Route {
            provider: Arc::new(self.provider(&provider)?),
            model: model.to_string(),
        })
    }

    fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = ProviderKind::ALL
            .iter()
            .map(|k| k.as_str().to_string())
            .collect();
        for name in self.configured.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    fn provider(&self, name: &str) -> Result<Provider, LlmError> {
        let settings = self.configured.get(name).cloned().unwrap_or_default();
        let kind = settings
            .kind
            .or_else(|| ProviderKind::parse(name))
            .ok_or_else(|| LlmError::ProviderKindMissing {
                provider: name.to_string(),
            })?;
        let env = |k: &str| (self.env)(k).filter(|v| !v.trim().is_empty());
        let base_url = settings
            .base_url
            .clone()
            .or_else(|| env(kind.base_url_var()))
            .unwrap_or_else(|| kind.default_base_url().to_string());
        let api_key = match &settings.api_key_env {
            Some(var) => env(var),
            None => kind.key_vars().iter().find_map(|v| env(v)),
        };
        let local = settings.local.unwrap_or_else(|| is_local_url(&base_url));
        let defaults = if local {
            CallLimits::LOCAL
        } else {
            CallLimits::HOSTED
        };
        let limits = CallLimits {
            max_output_tokens: settings
                .max_output_tokens
                .unwrap_or(defaults.max_output_tokens),
            request_timeout: settings
                .timeout_ms
                .map_or(defaults.request_timeout, Duration::from_millis),
            idle_timeout: settings
                .idle_timeout_ms
                .map_or(defaults.idle_timeout, Duration::from_millis),
        };
        Ok(Provider {
            name: name.to_string(),
            kind,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            headers: settings.headers,
            local,
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(spec: &str, env: &[(&str, &str)]) -> Result<Route, LlmError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut configured = BTreeMap::new();
        configured.insert(
            "ollama".to_string(),
            ProviderSettings {
                kind: Some(ProviderKind::OpenAi),
                base_url: Some("http://localhost:11434/v1/".into()),
                ..Default::default()
            },
        );
        let lookup = move |k: &str| env.get(k).cloned();
        Providers {
            configured: &configured,
            env: &lookup,
        }
        .route(spec)
    }

    #[test]
    fn names_resolve_to_routes() {
        let r = route(
            "openai:gpt-4o",
            &[
                ("OPENAI_API_KEY", "k"),
                ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ],
        )
        .unwrap();
        assert_eq!(
            (
                r.provider.kind,
                r.provider.base_url.as_str(),
                r.model.as_str()
            ),
            (ProviderKind::OpenAi, "http://127.0.0.1:9/v1", "gpt-4o")
        );
        assert_eq!(r.provider.api_key.as_deref(), Some("k"));
        let r = route("claude-sonnet-4-5", &[]).unwrap();
        assert_eq!(
            (r.provider.kind, r.provider.base_url.as_str()),
            (ProviderKind::Anthropic, "https://api.anthropic.com")
        );
        let r = route("ollama:llama3.1:8b", &[]).unwrap();
        assert_eq!(
            (
                r.provider.name.as_str(),
                r.provider.base_url.as_str(),
                r.model.as_str()
            ),
            ("ollama", "http://localhost:11434/v1", "llama3.1:8b")
        );
        let r = route("gemini-2.5-flash", &[("GOOGLE_API_KEY", "g")]).unwrap();
        assert_eq!(r.provider.api_key.as_deref(), Some("g"));
        // A model name with a colon that is no provider (Ollama tags) is ambiguous without one.
        let e = route("mistral:7b", &[]).unwrap_err().to_string();
        assert!(
            e.contains("unknown provider `mistral`") && e.contains("ollama"),
            "{e}"
        );
        let e = route("llama3", &[]).unwrap_err().to_string();
        assert!(e.contains("hint:"), "{e}");
    }

    /// A base URL on this machine or a private network gets the slow server's defaults.
    #[test]
    fn local_servers_get_local_limits() {
        for url in [
            "http://127.0.0.1:8080/v1",
            "http://localhost:11434/v1",
            "http://[::1]:8000/v1",
            "http://192.168.1.20:8000/v1",
            "http://10.0.0.5/v1",
            "http://ollama:11434/v1",
            "http://gpu-box.local:8000/v1",
            "http://user:pw@172.16.0.9:8000",
        ] {
            assert!(is_local_url(url), "{url}");
        }
        for url in [
            "https://api.openai.com/v1",
            "https://openrouter.ai/api/v1",
            "http://8.8.8.8/v1",
            "https://api.anthropic.com",
        ] {
            assert!(!is_local_url(url), "{url}");
        }
        let r = route("openai:m", &[("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")]).unwrap();
        assert!(r.provider.local);
        assert_eq!(r.provider.limits, CallLimits::LOCAL);
        let r = route("openai:m", &[]).unwrap();
        assert_eq!(r.provider.limits, CallLimits::HOSTED);
    }
}
