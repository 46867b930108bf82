//! isola-server's tests: the exposed tool list in both modes, rendering, and the handler driven
//! by an rmcp client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod descriptions;
mod handler;
mod support;
