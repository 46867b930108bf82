//! Poll, then sleep: how both ends of a sandbox's channel wait for each other.
//!
//! A script awaiting fast tools one after another hands control back and forth with the engine
//! twice per call. A thread that sleeps must be woken, and on a virtual machine waking a thread
//! on another CPU costs ~25 µs (an inter-processor interrupt, and the host scheduling a halted
//! vCPU again), against ~1 µs for a thread that is still polling (measured with a pipe
//! ping-pong on the 2-vCPU machines this is developed on). So a waiting side first polls, for a
//! short adaptive budget: about twice its typical wait, and none once waits are longer than the
//! cap, where polling would only burn the CPU. Each round yields the CPU, so whatever else is
//! runnable there (the tool's server, the other side) goes first.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether this process may run on more than one CPU. With one, a poller would hold up the
/// very work it waits for, so nothing polls. Worker processes ask before their system-call
/// filter is installed (it reads `/sys/fs/cgroup` and the affinity mask).
pub fn several_cpus() -> bool {
    static SEVERAL: OnceLock<bool> = OnceLock::new();
    *SEVERAL.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// The polling budget for one kind of wait.
pub struct SpinBudget {
    cap: Duration,
    /// A moving average of recent waits; `None` before the first.
    typical: Option<Duration>,
}

impl SpinBudget {
    /// Waits longer than `cap` are waited asleep; with one CPU, all of them are.
    pub fn new(cap: Duration) -> Self {
        Self {
            cap: if several_cpus() { cap } else { Duration::ZERO },
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
    pub fn until(&self) -> Option<Instant> {
        let budget = self.budget();
        (!budget.is_zero()).then(|| Instant::now() + budget)
    }

    /// A wait ended after `took`.
    pub fn ended(&mut self, took: Duration) {
        self.typical = Some(match self.typical {
            None => took,
            Some(t) => (t * 3 + took) / 4,
        });
    }
}

/// Check `ready` until it yields something or `until` passes, yielding the CPU between checks.
pub(crate) fn poll_until<T>(until: Instant, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(v) = ready() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_waits() {
        let cap = Duration::from_millis(1);
        let mut s = SpinBudget::new(cap);
        s.cap = cap; // as on several CPUs
        assert_eq!(s.budget(), cap, "poll before anything is known");
        s.ended(Duration::from_micros(100));
        assert_eq!(s.budget(), Duration::from_micros(200));
        for _ in 0..20 {
            s.ended(Duration::from_millis(5));
        }
        assert!(s.until().is_none(), "slow waits: sleep at once");
        for _ in 0..20 {
            s.ended(Duration::from_micros(10));
        }
        assert!(s.budget() < Duration::from_micros(100), "{:?}", s.budget());
        s.cap = Duration::ZERO; // one CPU
        assert!(s.until().is_none());
    }

    #[test]
    fn polling_stops_at_the_deadline_or_when_ready() {
        let t = Instant::now();
        assert_eq!(
            poll_until(t + Duration::from_micros(50), || None::<()>),
            None
        );
        let mut n = 0;
        let got = poll_until(t + Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, Some(3));
    }
}
