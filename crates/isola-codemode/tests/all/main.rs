//! isola-codemode integration tests: search quality over the captured real tool lists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod search;
mod support;
