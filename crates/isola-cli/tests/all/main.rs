//! End-to-end tests of the `isola` binary against real MCP servers (from
//! `fixtures/servers`, installed by `npm ci --prefix fixtures/servers`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod check;
mod config;
mod conformance;
mod exec;
mod govern;
mod hostile;
mod hostile_mcp;
mod inspector;
mod journal;
mod lifetime;
mod mcp;
mod mcp_http;
mod nodes;
mod plan;
mod resume;
mod serve;
mod support;
mod tools;
mod ui;
