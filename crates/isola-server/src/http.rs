//! Streamable HTTP: rmcp's [`StreamableHttpService`] on hyper, at `/mcp`.
//!
//! - Binds a loopback address unless told otherwise; a non-loopback address needs a bearer
//!   token or an explicit `allow_unauthenticated`.
//! - DNS rebinding: the `Host` header must name a loopback host (`localhost`, `127.0.0.1`,
//!   `[::1]`), the bound address, or an extra allowed host; an `Origin` header, when present,
//!   must be a loopback origin (`http(s)://localhost|127.0.0.1|[::1]:*`). Otherwise 403.
//! - With tokens, every request needs `Authorization: Bearer <token>` (401 otherwise), of a
//!   role that may do it (403 otherwise): `/mcp` runs scripts, so it takes an `operator` or
//!   `admin` token. Routes learn who asked from the request's [`Principal`] extension.
//! - Other routes than `/mcp` ([`Routes`], `isola serve`'s API) get the same checks (Host and
//!   Origin by this module, not rmcp's), and a request body of at most [`MAX_BODY_BYTES`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::{IsolaServer, ServeError};

/// The path the MCP endpoint is served at.
pub const MCP_PATH: &str = "/mcp";

/// The longest request body [`Routes`] are given (413 beyond).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A response body.
pub type Body = BoxBody<Bytes, Infallible>;

/// Routes served beside `/mcp` (`isola serve`'s API), after the Host, Origin and token checks.
pub trait Routes: Send + Sync + 'static {
    /// Whether `path` is one of its.
    fn serves(&self, path: &str) -> bool;
    /// Whether `path` is answered without a token (the web UI's static files, which hold no
    /// data: what they show comes from the API, with the token the user gives them).
    fn public(&self, _path: &str) -> bool {
        false
    }
    /// Answer one request (its body already read, at most [`MAX_BODY_BYTES`]).
    fn call(
        &self,
        request: Request<Bytes>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send + 'static>>;
}

/// What a token may do, each role everything the one before may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read the journal, sessions, approvals and usage.
    Viewer,
    /// Also run executions and agent runs, and decide approvals.
    Operator,
    /// Also tokens (`/v1/tokens`).
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// A bearer token: its name (what the journal records as who did something), its secret, its
/// role.
#[derive(Clone)]
pub struct ApiToken {
    pub name: String,
    pub secret: String,
    pub role: Role,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Who made a request, in its extensions: the token's name and role; `local` with the admin
/// role on a server that takes no tokens (loopback only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// A token kept in the store (`isola tokens`): its name, the hash of its secret
/// ([`token_hash`]), its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    pub name: String,
    pub hash: String,
    pub role: Role,
}

/// The store's tokens as the server knows them: refreshed while it runs (by whoever holds the
/// store), so a token added or revoked on one node counts on every node soon after.
#[derive(Debug, Default)]
pub struct StoredTokens(std::sync::RwLock<Vec<StoredToken>>);

impl StoredTokens {
    pub fn replace(&self, tokens: Vec<StoredToken>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tokens;
    }

    pub fn is_empty(&self) -> bool {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    }

    /// The token whose secret has `hash`.
    fn find(&self, hash: &str) -> Option<Principal> {
        let tokens = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut found = None;
        for t in tokens.iter() {
            if constant_time_eq(hash.as_bytes(), t.hash.as_bytes()) {
                found = Some(Principal {
                    name: t.name.clone(),
                    role: t.role,
                });
            }
        }
        found
    }
}

/// A new token secret: `isola_` and 64 hex digits from the kernel's random source.
pub fn new_token_secret() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("isola_{hex}"))
}

/// What the store keeps of a token's secret: `sha256:<hex>`.
pub fn token_hash(secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The tokens a server takes: the configured ones, the store's, and whether it is open (it
/// took none when it started: loopback, or `allow_unauthenticated`). A server that started
/// with tokens never becomes open, whatever is revoked.
struct Keys {
    tokens: Vec<ApiToken>,
    stored: Option<Arc<StoredTokens>>,
    open: bool,
}

/// How to serve over HTTP.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// Require `Authorization: Bearer <token>` with one of these.
    pub tokens: Vec<ApiToken>,
    /// The store's tokens too (`isola tokens`), kept fresh by the caller.
    pub stored_tokens: Option<Arc<StoredTokens>>,
    /// Serve a non-loopback address without a token.
    pub allow_unauthenticated: bool,
    /// `Host` values accepted besides the loopback names and the bound address.
    pub allowed_hosts: Vec<String>,
    /// Requests per second one principal (a token, or the local user) may make, in bursts of
    /// twice that; beyond, 429 with `Retry-After`. `None`: no limit.
    pub rate_limit: Option<u32>,
}

/// A token bucket per principal: `rate` requests a second, up to `2 × rate` at once. The
/// principals are the configured tokens and `local`/`anonymous`: a bounded set.
struct RateLimit {
    rate: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
}

impl RateLimit {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            buckets: std::sync::Mutex::default(),
        }
    }

    /// Take one request of `who`'s; `Err(seconds)`: over the limit, try again in that long.
    fn take(&self, who: &str) -> Result<(), u64> {
        let burst = self.rate * 2.0;
        let now = std::time::Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, at) = buckets.entry(who.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// 429 for `who`, to retry after `seconds`.
fn too_many(who: &str, seconds: u64, json: bool) -> Response<Body> {
    let message = format!(
        "too many requests from `{who}` (the server's --rate-limit): try again in {seconds} s"
    );
    let mut response = match json {
        true => json_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", &message),
        false => plain(StatusCode::TOO_MANY_REQUESTS, &message),
    };
    if let Ok(v) = http::HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    response
}

/// A bound listener, ready to [`HttpServer::run`].
pub struct HttpServer {
    listener: TcpListener,
    addr: SocketAddr,
    options: HttpOptions,
}

impl HttpServer {
    pub async fn bind(options: HttpOptions) -> Result<HttpServer, ServeError> {
        if options.tokens.iter().any(|t| t.secret.is_empty()) {
            return Err(ServeError::EmptyToken);
        }
        if !options.addr.ip().is_loopback()
            && options.tokens.is_empty()
            && options.stored_tokens.as_ref().is_none_or(|s| s.is_empty())
            && !options.allow_unauthenticated
        {
            return Err(ServeError::Unauthenticated { addr: options.addr });
        }
        let listener =
            TcpListener::bind(options.addr)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: options.addr,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: options.addr,
            source,
        })?;
        Ok(HttpServer {
            listener,
            addr,
            options,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.addr)
    }

    /// Serve until `shutdown` is cancelled.
    pub async fn run(
        self,
        server: IsolaServer,
        shutdown: CancellationToken,
    ) -> Result<(), ServeError> {
        self.run_with(server, None, shutdown).await
    }

    /// [`HttpServer::run`], with `routes` beside `/mcp`.
    pub async fn run_with(
        self,
        server: IsolaServer,
        routes: Option<Arc<dyn Routes>>,
        shutdown: CancellationToken,
    ) -> Result<(), ServeError> {
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if !self.addr.ip().is_unspecified() {
            hosts.push(self.addr.ip().to_string());
        }
        hosts.extend(self.options.allowed_hosts.iter().cloned());
        let origins: Vec<String> = ["http", "https"]
            .iter()
            .flat_map(|scheme| {
                ["localhost", "127.0.0.1", "[::1]"]
                    .iter()
                    .map(move |host| format!("{scheme}://{host}:*"))
            })
            .collect();
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(hosts.clone())
            .with_allowed_origins(origins)
            .enforce_origin_validation()
            .with_cancellation_token(shutdown.child_token());
        let service: StreamableHttpService<IsolaServer, LocalSessionManager> =
            StreamableHttpService::new(
                move || Ok(server.clone()),
                Arc::new(LocalSessionManager::default()),
                config,
            );
        let open = self.options.tokens.is_empty()
            && self
                .options
                .stored_tokens
                .as_ref()
                .is_none_or(|s| s.is_empty());
        let tokens = Arc::new(Keys {
            tokens: self.options.tokens,
            stored: self.options.stored_tokens,
            open,
        });
        let limit: Option<Arc<RateLimit>> =
            self.options.rate_limit.map(|r| Arc::new(RateLimit::new(r)));
        let hosts: Arc<[String]> = hosts.into();
        loop {
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                },
            };
            let service = service.clone();
            let tokens = tokens.clone();
            let limit = limit.clone();
            let shutdown = shutdown.clone();
            let (routes, hosts) = (routes.clone(), hosts.clone());
            tokio::spawn(async move {
                let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let mut service = service.clone();
                    let tokens = tokens.clone();
                    let limit = limit.clone();
                    let (routes, hosts) = (routes.clone(), hosts.clone());
                    async move {
                        if let Some(routes) = routes.filter(|r| r.serves(req.uri().path())) {
                            return Ok(
                                route(&*routes, req, &tokens, &hosts, limit.as_deref()).await
                            );
                        }
                        if req.uri().path() != MCP_PATH {
                            return Ok::<_, Infallible>(plain(
                                StatusCode::NOT_FOUND,
                                &format!("not found: the MCP endpoint is {MCP_PATH}"),
                            ));
                        }
                        match principal(&req, &tokens) {
                            None => {
                                let mut response = plain(
                                    StatusCode::UNAUTHORIZED,
                                    "unauthorized: a bearer token is required",
                                );
                                response.headers_mut().insert(
                                    http::header::WWW_AUTHENTICATE,
                                    http::HeaderValue::from_static("Bearer"),
                                );
                                return Ok(response);
                            }
                            Some(p) if p.role < Role::Operator => {
                                return Ok(plain(
                                    StatusCode::FORBIDDEN,
                                    &format!(
                                        "forbidden: token `{}` is a viewer's; /mcp runs scripts, which takes an operator's",
                                        p.name
                                    ),
                                ));
                            }
                            Some(p) => {
                                if let Some(Err(seconds)) = limit.as_ref().map(|l| l.take(&p.name))
                                {
                                    return Ok(too_many(&p.name, seconds, false));
                                }
                            }
                        }
                        let ends_session = req.method() == http::Method::DELETE;
                        let mut response = service.call(req).await?;
                        // rmcp answers the DELETE that ends a session 202; clients (the
                        // Python SDK) expect 200 or 204 and log a failure otherwise.
                        if ends_session && response.status() == StatusCode::ACCEPTED {
                            *response.status_mut() = StatusCode::OK;
                        }
                        Ok(response)
                    }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), handler);
                tokio::select! {
                    result = connection => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, "HTTP connection ended: {e}");
                        }
                    }
                    () = shutdown.cancelled() => {}
                }
            });
        }
    }
}

/// One request to `routes`, once its Host, Origin, token and size pass.
async fn route(
    routes: &dyn Routes,
    req: Request<Incoming>,
    tokens: &Keys,
    hosts: &[String],
    limit: Option<&RateLimit>,
) -> Response<Body> {
    if !host_allowed(&req, hosts) {
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the Host header is not this server's (DNS rebinding?)",
        );
    }
    if !origin_allowed(&req) {
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "requests from other origins than loopback ones are refused",
        );
    }
    let public = routes.public(req.uri().path());
    let Some(principal) = principal(&req, tokens).or_else(|| {
        public.then(|| Principal {
            name: "anonymous".into(),
            role: Role::Viewer,
        })
    }) else {
        let mut response = json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a bearer token is required (Authorization: Bearer TOKEN)",
        );
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return response;
    };
    if let Some(Err(seconds)) = limit.map(|l| l.take(&principal.name)) {
        return too_many(&principal.name, seconds, true);
    }
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(principal);
    let bytes = match http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!(
                    "the request body is over the limit of {MAX_BODY_BYTES} bytes, or was cut off"
                ),
            );
        }
    };
    routes.call(Request::from_parts(parts, bytes)).await
}

/// The `Host` header names one of `hosts` (any port).
fn host_allowed<B>(req: &Request<B>, hosts: &[String]) -> bool {
    let Some(host) = req
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// No `Origin`, or a loopback one (a browser page served from this machine).
fn origin_allowed<B>(req: &Request<B>) -> bool {
    let Some(origin) = req.headers().get(http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(r) => r.split(']').next().unwrap_or_default(),
        None => rest.rsplit_once(':').map_or(rest, |(name, _)| name),
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// Who `req` is: the token it bears (`None`: none of `keys`), or `local` on an open server
/// while it takes no tokens.
fn principal<B>(req: &Request<B>, keys: &Keys) -> Option<Principal> {
    if keys.open && keys.stored.as_ref().is_none_or(|s| s.is_empty()) {
        return Some(Principal {
            name: "local".into(),
            role: Role::Admin,
        });
    }
    let tokens = &keys.tokens;
    let value = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let (scheme, given) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    // Every token is compared, so the time taken does not say which one came close.
    let given = given.trim().as_bytes();
    let mut found = None;
    for token in tokens {
        if constant_time_eq(given, token.secret.as_bytes()) {
            found = Some(token);
        }
    }
    match found {
        Some(t) => Some(Principal {
            name: t.name.clone(),
            role: t.role,
        }),
        None => keys
            .stored
            .as_ref()
            .and_then(|s| s.find(&token_hash(&String::from_utf8_lossy(given)))),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `{"error": {"kind", "message"}}`, the API's error shape.
pub fn json_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"error": {"kind": kind, "message": message}}).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_allows_a_burst_then_a_rate_per_principal() {
        let limit = RateLimit::new(5);
        for _ in 0..10 {
            assert_eq!(limit.take("a"), Ok(()));
        }
        assert_eq!(limit.take("a"), Err(1), "a burst is twice the rate");
        assert_eq!(limit.take("b"), Ok(()), "each principal has its own");
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(limit.take("a"), Ok(()), "refilled at the rate");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
