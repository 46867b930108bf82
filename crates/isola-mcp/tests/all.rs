//! isola-mcp integration tests, one binary; the modules live in `tests/all/`. Hub tests run
//! real MCP servers from `fixtures/servers` (`npm ci --prefix fixtures/servers`) and the
//! crate's own `isola-mcp-test-server`.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "all/everything.rs"]
mod everything;
#[path = "all/hostile.rs"]
mod hostile;
#[path = "all/http.rs"]
mod http;
#[path = "all/support.rs"]
mod support;
#[path = "all/test_server.rs"]
mod test_server;
