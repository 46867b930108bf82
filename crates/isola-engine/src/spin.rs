//! The engine's side of poll-then-sleep (see `isola_worker::SpinBudget`): while a lone
//! execution waits for a tool's answer or for the script's next call, the engine's task keeps
//! the runtime polling for I/O instead of letting its thread sleep.

use std::time::Duration;

/// Waits longer than this are waited asleep. A fast local tool answers in about 100 µs, but
/// one answer in ten takes two to five times that (the server's own pauses); a cap that covers
/// them measured better than 300 µs (`isola-bench mcp`).
pub(crate) const CAP: Duration = Duration::from_millis(1);

/// One round of polling: let other threads on this CPU run, then let the runtime look for I/O
/// (a task that yields makes tokio poll its reactor without sleeping).
pub(crate) async fn poll_round() {
    std::thread::yield_now();
    tokio::task::yield_now().await;
}
