//! Poll, then sleep: how the engine waits during a lone execution.
//!
//! It waits for two things in turn: a tool's answer, then the sandbox's next call. When its
//! thread sleeps, whatever ends the wait must wake it, and on a virtual machine a wake-up
//! costs tens of microseconds — a large share of a fast tool's round trip. Worse, the kernel
//! wakes a thread on an idle CPU when it can, which would pull the engine away from the sandbox
//! placed next to it (see `isola_worker::Placement`). So the engine first keeps polling, for a
//! short adaptive budget: about twice the typical wait, and none once waits are longer than
//! the cap, where polling would only burn the CPU. Each round yields the CPU, so the sandbox or
//! a tool server sharing it runs whenever it has work.

use std::time::{Duration, Instant};

/// Waits longer than this are waited asleep. A fast local tool answers in about 100 µs, but
/// one answer in ten takes two to five times that (the server's own pauses); a cap that covers
/// them measured better than 300 µs (`isola bench mcp`: +14% against +18-24%).
const CAP: Duration = Duration::from_millis(1);

/// The polling budget for one kind of wait.
pub(crate) struct Poll {
    cap: Duration,
    /// A moving average of recent waits; `None` before the first.
    typical: Option<Duration>,
}

impl Poll {
    /// No polling when the process can use only one CPU: the poller would hold up the very
    /// work it waits for.
    pub(crate) fn new() -> Self {
        Self {
            cap: if isola_worker::several_cpus() {
                CAP
            } else {
                Duration::ZERO
            },
            typical: None,
        }
    }

    fn budget(&self) -> Duration {
        match self.typical {
            None => self.cap,
            Some(t) if t <= self.cap => (t * 2).min(self.cap),
            Some(_) => Duration::ZERO,
        }
    }

    /// Until when to poll for a wait that starts now; `None`: sleep at once.
    pub(crate) fn until(&self) -> Option<Instant> {
        let budget = self.budget();
        (!budget.is_zero()).then(|| Instant::now() + budget)
    }

    /// A wait ended after `took`.
    pub(crate) fn ended(&mut self, took: Duration) {
        self.typical = Some(match self.typical {
            None => took,
            Some(t) => (t * 3 + took) / 4,
        });
    }
}

/// One round of polling: let other threads on this CPU run, then let the runtime look for I/O
/// (a task that yields makes tokio poll its reactor without sleeping).
pub(crate) async fn poll_round() {
    std::thread::yield_now();
    tokio::task::yield_now().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_answers() {
        let mut s = Poll::new();
        s.cap = CAP; // as on several CPUs
        assert_eq!(s.budget(), CAP, "poll before anything is known");
        s.ended(Duration::from_micros(100));
        assert_eq!(s.budget(), Duration::from_micros(200));
        for _ in 0..20 {
            s.ended(Duration::from_millis(5));
        }
        assert!(s.until().is_none(), "slow answers: sleep at once");
        for _ in 0..20 {
            s.ended(Duration::from_micros(10));
        }
        assert!(s.budget() < Duration::from_micros(100), "{:?}", s.budget());
        s.cap = Duration::ZERO; // one CPU
        assert!(s.until().is_none());
    }
}
