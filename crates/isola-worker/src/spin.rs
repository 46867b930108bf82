//! Spin, then block: how a sandbox waits for the answers to its tool calls.
//!
//! A thread that blocks gives its CPU up, and on a virtual machine an idle vCPU halts; waking
//! it again costs tens of microseconds. A script awaiting fast tools one after another pays that
//! twice per call (measured: a 250 µs tool call grew by ~90 µs between calls, most of it
//! wake-ups). So a waiting sandbox first spins politely — checks for the answer, then yields the
//! CPU to anything else runnable — and blocks only when the answer is slow to come. The spin
//! budget adapts to the answers seen: about twice the typical wait, and none at all once waits
//! are longer than the cap, where the spin would only burn CPU.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether this process may run on more than one CPU. Spinning only pays when another CPU can
/// make progress meanwhile: on one CPU the spinner would delay the very work it waits for.
/// Worker processes call this before their system-call filter is installed (it reads
/// `/sys/fs/cgroup` and the affinity mask).
pub fn several_cpus() -> bool {
    static SEVERAL: OnceLock<bool> = OnceLock::new();
    *SEVERAL.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

///
/// The engine uses the same policy on its side, for the sandbox's next call after it answered
/// one: a shorter cap, and it keeps the CPU rather than yield it (its waits are a few µs, and
/// yielding would hand the CPU to whatever the tool's server still does after answering).
pub struct SpinWait {
    cap: Duration,
    /// Yield the CPU between checks.
    polite: bool,
    /// A moving average of recent waits that ended with an answer; `None` before the first.
    typical: Option<Duration>,
}

impl SpinWait {
    /// A sandbox waiting for answers: up to 500 µs, yielding between checks (none on one CPU).
    pub fn sandbox() -> Self {
        Self {
            cap: Self::cap(Duration::from_micros(500)),
            polite: true,
            typical: None,
        }
    }

    /// The engine waiting for a sandbox's next call: up to 60 µs, holding the CPU (none on one
    /// CPU).
    pub fn engine() -> Self {
        Self {
            cap: Self::cap(Duration::from_micros(60)),
            polite: false,
            typical: None,
        }
    }

    fn cap(cap: Duration) -> Duration {
        if several_cpus() { cap } else { Duration::ZERO }
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
            if self.polite {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
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
        let mut s = SpinWait::sandbox();
        assert_eq!(s.budget(), s.cap, "spin before anything is known");
        s.cap = Duration::from_micros(500);
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
        let mut s = SpinWait::engine();
        s.cap = Duration::from_micros(60); // as on several CPUs
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
