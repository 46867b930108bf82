//! Spin, then block: how a sandbox waits for the answers to its tool calls.
//!
//! A thread that blocks gives its CPU up, and on a virtual machine an idle vCPU halts; waking
//! it again costs tens of microseconds. A script awaiting fast tools one after another pays that
//! twice per call (measured: a 250 µs tool call grew by ~90 µs between calls, most of it
//! wake-ups). So a waiting sandbox first spins politely — checks for the answer, then yields the
//! CPU to anything else runnable — and blocks only when the answer is slow to come. The spin
//! budget adapts to the answers seen: about twice the typical wait, and none at all once waits
//! are longer than the cap, where the spin would only burn CPU.

use std::time::{Duration, Instant};

///
/// The engine uses the same policy on its side, with a smaller cap, for the sandbox's next message
/// after it answered a call.
pub struct SpinWait {
    cap: Duration,
    /// A moving average of recent waits that ended with an answer; `None` before the first.
    typical: Option<Duration>,
}

impl SpinWait {
    /// The most a sandbox spins before blocking.
    pub const SANDBOX_CAP: Duration = Duration::from_micros(500);

    pub fn new(cap: Duration) -> Self {
        Self { cap, typical: None }
    }

    fn budget(&self) -> Duration {
        match self.typical {
            None => self.cap,
            Some(t) if t <= self.cap => (t * 2).min(self.cap),
            Some(_) => Duration::ZERO,
        }
    }

    /// Check `ready` until it yields something, for at most the current budget (and never longer
    /// than `limit`). `None` when the budget ran out: the caller then blocks.
    pub fn spin<T>(&self, limit: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
        let budget = self.budget().min(limit);
        let start = Instant::now();
        loop {
            if let Some(v) = ready() {
                return Some(v);
            }
            if start.elapsed() >= budget {
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// A wait that began at `since` ended with an answer (after spinning or blocking).
    pub fn answered(&mut self, since: Instant) {
        let waited = since.elapsed();
        self.typical = Some(match self.typical {
            None => waited,
            Some(t) => (t * 3 + waited) / 4,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_answers() {
        let mut s = SpinWait::new(SpinWait::SANDBOX_CAP);
        assert_eq!(
            s.budget(),
            SpinWait::SANDBOX_CAP,
            "spin before anything is known"
        );
        s.typical = Some(Duration::from_micros(100));
        assert_eq!(s.budget(), Duration::from_micros(200));
        s.typical = Some(Duration::from_millis(5));
        assert_eq!(s.budget(), Duration::ZERO, "slow answers: block at once");
        // Fast answers bring the spin back.
        for _ in 0..20 {
            s.answered(Instant::now());
        }
        assert!(s.budget() < Duration::from_micros(100), "{:?}", s.budget());
    }

    #[test]
    fn spinning_stops_at_the_budget_or_the_limit() {
        let s = SpinWait::new(SpinWait::SANDBOX_CAP);
        let t = Instant::now();
        assert_eq!(s.spin(Duration::from_micros(50), || None::<()>), None);
        assert!(t.elapsed() < Duration::from_millis(50));
        let mut n = 0;
        assert_eq!(
            s.spin(Duration::from_secs(1), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            Some(3)
        );
    }
}
