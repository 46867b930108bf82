//! The gateway every model call goes through: cache, retries with backoff, the fallback chain,
//! and one [`CallRecord`] per attempt (tokens, latency, cost, outcome).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cache::ResponseCache;
use crate::error::{CallError, LlmError, Outcome};
use crate::price::PriceTable;
use crate::provider::{ProviderKind, Route};
use crate::types::{ChatRequest, ChatResponse, Finish, Usage};
use crate::wire::{self, Timeouts};

/// When and how often to try again.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Further attempts on the same model after a retryable failure (429, 5xx, timeout,
    /// connection error), before moving to the next model of the chain.
    pub max_retries: u32,
    /// The first pause; doubled for each further retry.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the next model is tried instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `n` (1-based) when the provider did not say: the
    /// backoff with "equal jitter" (a random point in its upper half), so that clients which
    /// failed together do not retry together.
    pub fn pause(&self, n: u32) -> Duration {
        self.backoff(n).mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// The backoff before retry number `n` (1-based), before jitter: doubling up to the cap.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

pub struct GatewaySettings {
    pub retry: RetryPolicy,
    /// The request timeout of every call (the whole response when not streamed, the response
    /// head when streamed), over each provider's own ([`crate::CallLimits`]).
    pub request_timeout: Option<Duration>,
    /// The longest silence within a stream, over each provider's own.
    pub idle_timeout: Option<Duration>,
    /// Stream answers (text reaches the caller as it is generated).
    pub stream: bool,
    pub prices: PriceTable,
    pub cache: Option<ResponseCache>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            request_timeout: None,
            idle_timeout: None,
            stream: true,
            prices: PriceTable::default(),
            cache: None,
        }
    }
}

/// What a streamed request passes to its caller as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streamed<'a> {
    /// A piece of the answer's text.
    Text(&'a str),
    /// The text passed so far belongs to an attempt that failed; another attempt follows, and
    /// its text comes from the start.
    Discard,
}

/// One attempt at one model (or one answer from the cache).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// What the call was for (`agent`, `code`).
    pub role: String,
    pub provider: String,
    pub kind: ProviderKind,
    pub model: String,
    /// 1 for the first attempt at this model, 2 for the first retry...
    pub attempt: u32,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the model stopped (an answered call): `stop`, `toolCalls`, `length`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish: Option<Finish>,
    /// The output-token cap the request carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    pub usage: Usage,
    pub latency_ms: f64,
    /// `None` when the model has no price in the table.
    pub cost_usd: Option<f64>,
    /// The pause before this attempt (backoff or `Retry-After`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waited_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// A successful request.
#[derive(Debug)]
pub struct Reply {
    pub response: ChatResponse,
    /// `provider:model` that answered.
    pub route: String,
    /// Every attempt it took, failed ones included.
    pub calls: Vec<CallRecord>,
}

/// A failed request, with the attempts it made.
#[derive(Debug)]
pub struct Failure {
    pub error: LlmError,
    pub calls: Vec<CallRecord>,
}

pub struct Gateway {
    http: reqwest::Client,
    settings: GatewaySettings,
}

impl Gateway {
    pub fn new(settings: GatewaySettings) -> Result<Self, LlmError> {
        // reqwest is built without a TLS provider (as for the MCP client); install ring once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let connect = settings
            .request_timeout
            .unwrap_or(Duration::from_secs(30))
            .min(Duration::from_secs(30));
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .build()
            .map_err(|e| LlmError::Client(e.to_string()))?;
        Ok(Self { http, settings })
    }

    pub fn settings(&self) -> &GatewaySettings {
        &self.settings
    }

    /// Ask the first model of `chain` that answers. Text is passed to `on_text` as it arrives
    /// (that of a failed attempt included: see [`Gateway::chat_streaming`] to be told).
    pub async fn chat(
        &self,
        role: &str,
        chain: &[Route],
        req: &ChatRequest,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Reply, Failure> {
        self.chat_streaming(role, chain, req, &mut |s| {
            if let Streamed::Text(t) = s {
                on_text(t)
            }
        })
        .await
    }

    /// The effective timeouts of a call to `route`.
    pub fn timeouts(&self, route: &Route) -> Timeouts {
        let limits = &route.provider.limits;
        Timeouts {
            request: self
                .settings
                .request_timeout
                .unwrap_or(limits.request_timeout),
            idle: self.settings.idle_timeout.unwrap_or(limits.idle_timeout),
        }
    }

    /// [`Gateway::chat`], telling `on` when text already passed must be discarded because its
    /// attempt failed and another follows.
    pub async fn chat_streaming(
        &self,
        role: &str,
        chain: &[Route],
        req: &ChatRequest,
        on: &mut (dyn FnMut(Streamed<'_>) + Send),
    ) -> Result<Reply, Failure> {
        let mut calls = Vec::new();
        let mut earlier: Vec<String> = Vec::new();
        let mut last: Option<(String, CallError)> = None;
        let policy = &self.settings.retry;
        for route in chain {
            let key = self
                .settings
                .cache
                .as_ref()
                .map(|_| ResponseCache::key(route, req));
            if let (Some(cache), Some(key)) = (&self.settings.cache, &key)
                && let Some(response) = cache.get(key)
            {
                if !response.text.is_empty() {
                    on(Streamed::Text(&response.text));
                }
                let mut record = self.record(
                    role,
                    route,
                    1,
                    Outcome::Cached,
                    Duration::ZERO,
                    Duration::ZERO,
                    None,
                    &response.usage,
                    Some(0.0),
                    None,
                );
                record.finish = Some(response.finish.clone());
                record.max_output_tokens = Some(wire::max_output_tokens(route, req));
                calls.push(record);
                return Ok(Reply {
                    response,
                    route: route.to_string(),
                    calls,
                });
            }
            if let Some((r, e)) = last.take() {
                earlier.push(format!("{r}: {e}"));
            }
            let mut attempt = 0;
            let mut waited = Duration::ZERO;
            loop {
                attempt += 1;
                let span = tracing::info_span!("llm_call", route = %route, attempt);
                let _guard = span.enter();
                let started = Instant::now();
                let max_output_tokens = wire::max_output_tokens(route, req);
                let mut shown = false;
                let result = wire::call(
                    &self.http,
                    route,
                    req,
                    self.settings.stream,
                    self.timeouts(route),
                    &mut |t: &str| {
                        shown = true;
                        on(Streamed::Text(t))
                    },
                )
                .await;
                let latency = started.elapsed();
                match result {
                    Ok(response) => {
                        let cost = self.settings.prices.cost(&route.model, &response.usage);
                        let mut record = self.record(
                            role,
                            route,
                            attempt,
                            Outcome::Ok,
                            latency,
                            waited,
                            None,
                            &response.usage,
                            cost,
                            None,
                        );
                        record.finish = Some(response.finish.clone());
                        record.max_output_tokens = Some(max_output_tokens);
                        calls.push(record);
                        if let (Some(cache), Some(key)) = (&self.settings.cache, &key) {
                            cache.put(key, &response);
                        }
                        return Ok(Reply {
                            response,
                            route: route.to_string(),
                            calls,
                        });
                    }
                    Err(error) => {
                        tracing::warn!("{route} failed (attempt {attempt}): {error}");
                        let mut record = self.record(
                            role,
                            route,
                            attempt,
                            error.outcome(),
                            latency,
                            waited,
                            error.status(),
                            &Usage::default(),
                            // Failed calls are not billed.
                            Some(0.0),
                            Some(error.to_string()),
                        );
                        record.max_output_tokens = Some(max_output_tokens);
                        calls.push(record);
                        if shown && error.retryable() {
                            // Whatever comes next (a retry or the next model) starts afresh.
                            on(Streamed::Discard);
                        }
                        if !error.retryable() {
                            return Err(Failure {
                                error: LlmError::Failed {
                                    route: route.to_string(),
                                    error,
                                    earlier,
                                },
                                calls,
                            });
                        }
                        if attempt > policy.max_retries {
                            last = Some((route.to_string(), error));
                            break;
                        }
                        let pause = match &error {
                            CallError::Status {
                                retry_after: Some(d),
                                ..
                            } if *d > policy.max_retry_after => {
                                // Not worth waiting for: try the next model.
                                last = Some((route.to_string(), error));
                                break;
                            }
                            CallError::Status {
                                retry_after: Some(d),
                                ..
                            } => *d,
                            _ => policy.pause(attempt),
                        };
                        tokio::time::sleep(pause).await;
                        waited = pause;
                    }
                }
            }
        }
        match last {
            Some((route, error)) => Err(Failure {
                error: LlmError::Failed {
                    route,
                    error,
                    earlier,
                },
                calls,
            }),
            None => Err(Failure {
                error: LlmError::Failed {
                    route: "(none)".into(),
                    error: CallError::Protocol("no model to call: the chain is empty".into()),
                    earlier,
                },
                calls,
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        role: &str,
        route: &Route,
        attempt: u32,
        outcome: Outcome,
        latency: Duration,
        waited: Duration,
        status: Option<u16>,
        usage: &Usage,
        cost_usd: Option<f64>,
        error: Option<String>,
    ) -> CallRecord {
        CallRecord {
            role: role.to_string(),
            provider: route.provider.name.clone(),
            kind: route.provider.kind,
            model: route.model.clone(),
            attempt,
            outcome,
            status,
            finish: None,
            max_output_tokens: None,
            usage: *usage,
            latency_ms: latency.as_secs_f64() * 1000.0,
            cost_usd,
            waited_ms: waited.as_secs_f64() * 1000.0,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..Default::default()
        };
        assert_eq!(
            [1, 2, 3, 9].map(|n| p.backoff(n).as_millis()),
            [100, 200, 350, 350]
        );
        for n in 1..6 {
            let (b, pause) = (p.backoff(n), p.pause(n));
            assert!(
                pause >= b / 2 && pause <= b,
                "retry {n}: {pause:?} outside [{b:?}/2, {b:?}]"
            );
        }
    }
}
