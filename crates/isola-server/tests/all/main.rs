//! isola-server's tests: search quality over the captured real tool lists, the exposed tool
//! list in both modes, rendering, and the handler driven by an rmcp client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod descriptions;
mod handler;
mod search;
mod support;
