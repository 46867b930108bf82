//! Streamable HTTP: rmcp's [`StreamableHttpService`] on hyper, at `/mcp`.
//!
//! - Binds a loopback address unless told otherwise; a non-loopback address needs a bearer
//!   token or an explicit `allow_unauthenticated`.
//! - DNS rebinding: the `Host` header must name a loopback host (`localhost`, `127.0.0.1`,
//!   `[::1]`), the bound address, or an extra allowed host; an `Origin` header, when present,
//!   must be a loopback origin (`http(s)://localhost|127.0.0.1|[::1]:*`). Otherwise 403.
//! - With a token, every request needs `Authorization: Bearer <token>` (401 otherwise).

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

/// How to serve over HTTP.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Serve a non-loopback address without a token.
    pub allow_unauthenticated: bool,
    /// `Host` values accepted besides the loopback names and the bound address.
    pub allowed_hosts: Vec<String>,
}

/// A bound listener, ready to [`HttpServer::run`].
pub struct HttpServer {
    listener: TcpListener,
    addr: SocketAddr,
    options: HttpOptions,
}

impl HttpServer {
    pub async fn bind(options: HttpOptions) -> Result<HttpServer, ServeError> {
        if options.token.as_deref().is_some_and(str::is_empty) {
            return Err(ServeError::EmptyToken);
        }
        if !options.addr.ip().is_loopback()
            && options.token.is_none()
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
            .with_allowed_hosts(hosts)
            .with_allowed_origins(origins)
            .enforce_origin_validation()
            .with_cancellation_token(shutdown.child_token());
        let service: StreamableHttpService<IsolaServer, LocalSessionManager> =
            StreamableHttpService::new(
                move || Ok(server.clone()),
                Arc::new(LocalSessionManager::default()),
                config,
            );
        let token: Option<Arc<str>> = self.options.token.as_deref().map(Arc::from);
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
            let token = token.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let mut service = service.clone();
                    let token = token.clone();
                    async move {
                        if req.uri().path() != MCP_PATH {
                            return Ok::<_, Infallible>(plain(
                                StatusCode::NOT_FOUND,
                                &format!("not found: the MCP endpoint is {MCP_PATH}"),
                            ));
                        }
                        if let Some(token) = &token
                            && !authorized(&req, token)
                        {
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

fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let Some(value) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, given)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn plain(status: StatusCode, text: &str) -> Response<BoxBody<Bytes, Infallible>> {
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
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
