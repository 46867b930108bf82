//! End-to-end tests of the `isola` binary against real MCP servers (from
//! `fixtures/servers`, installed by `npm ci --prefix fixtures/servers`).

mod config;
mod exec;
mod support;
mod tools;
