//! isola-engine's tests: the execution state machine driven directly (no processes), and the
//! engine end to end in-process and in workers (real and fake).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gates;
mod machine;
mod plan;
mod replay;
mod truthful;
mod workers;
