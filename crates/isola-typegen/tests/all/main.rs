//! Integration tests for isola-typegen: one binary, one module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod compact;
mod fixtures;
mod fuzz;
mod idents;
mod schema;
mod support;
mod tsc;
