//! The provider clients and the gateway against the scripted LLM server (`isola-llm-mock`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway;
