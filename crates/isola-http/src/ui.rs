//! The web UI: three static files in the binary (no build step, no Node at run time), served
//! without a token (they hold no data: the page asks the API for everything, with the token
//! its user signs in with, sent as `Authorization`, never as a cookie, so another site cannot
//! make a browser act with it: no CSRF).
//!
//! Served with a strict Content-Security-Policy: only this server's own script and style, no
//! inline script, no framing. The page builds the DOM with `textContent`, never `innerHTML`
//! of what the API answers (scripts, logs and tool results are untrusted).

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use isola_server::http::{Body, json_error};

const INDEX: &str = include_str!("../ui/index.html");
const APP: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/style.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The files: path, content type, content.
const FILES: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", INDEX),
    ("/ui/app.js", "text/javascript; charset=utf-8", APP),
    ("/ui/style.css", "text/css; charset=utf-8", STYLE),
];

pub fn serves(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

pub fn answer(path: &str, method: &Method) -> Response<Body> {
    let Some((_, content_type, content)) = FILES.iter().find(|(p, _, _)| *p == path) else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no file {path} in the web UI"),
        );
    };
    if method != Method::GET && method != Method::HEAD {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{path} takes GET, not {method}"),
        );
    }
    let body = match *method == Method::HEAD {
        true => Bytes::new(),
        false => Bytes::from_static(content.as_bytes()),
    };
    let mut response = Response::new(Full::new(body).boxed());
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-type", *content_type),
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-cache"),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
    response
}
