//! The agent loop against the scripted LLM server and a real MCP server (from
//! `fixtures/servers`, installed by `npm ci --prefix fixtures/servers`), and against a real
//! llama.cpp server (`scripts/setup-llama.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_loop;
mod llama;
