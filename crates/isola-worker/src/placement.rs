//! Which CPU a sandbox runs on.
//!
//! A script that awaits its tool calls one after another hands control back and forth with the
//! engine twice per call: the sandbox sends a call and waits, the engine answers and waits for
//! the next one. The two never run at the same time, so nothing is lost by running them on the
//! same CPU, and much is gained: on a virtual machine, waking a thread on another CPU costs tens
//! of microseconds (an inter-processor interrupt and, when that vCPU had halted, the host
//! scheduling it again), while a hand-over on the same CPU is a context switch of about a
//! microsecond (measured on the 2-vCPU machines this is developed on: 25 µs against 1.1 µs per
//! hand-over through a pipe).
//!
//! So the engine places the sandbox of a lone execution on the CPU its own thread runs on
//! ([`Placement::Cpu`]), and follows that thread if it moves. Concurrent executions are left
//! to the kernel ([`Placement::Anywhere`]), which spreads them over the CPUs.

use std::sync::OnceLock;

/// Where a sandbox may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On any CPU this process may use.
    Anywhere,
    /// On this CPU only.
    Cpu(usize),
}

impl Placement {
    /// Next to the calling thread, when that can help: the process may use several CPUs and
    /// the caller knows which one it is on. Otherwise [`Placement::Anywhere`].
    pub fn here() -> Self {
        if !several_cpus() {
            return Placement::Anywhere;
        }
        // SAFETY: no arguments; reads the current CPU (via rseq or vDSO, no system call).
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).map_or(Placement::Anywhere, Placement::Cpu)
    }

    /// The CPU set this placement stands for.
    fn cpu_set(self) -> Option<libc::cpu_set_t> {
        match self {
            Placement::Anywhere => allowed().copied(),
            Placement::Cpu(cpu) if cpu < libc::CPU_SETSIZE as usize => {
                // SAFETY: cpu_set_t is a plain bit set; all zeroes is the empty set, and `cpu` is
                // within it (checked above).
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    Some(set)
                }
            }
            Placement::Cpu(_) => None,
        }
    }

    /// Apply to a process (or thread) id. Best effort: placement is an optimisation, and a
    /// sandbox that already exited has nowhere to go.
    pub(crate) fn apply_to(self, id: libc::pid_t) {
        if let Some(set) = self.cpu_set() {
            // SAFETY: a valid set and its size.
            unsafe { libc::sched_setaffinity(id, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        }
    }

    /// Apply to a thread of this process.
    pub(crate) fn apply_to_thread(self, thread: libc::pthread_t) {
        if let Some(set) = self.cpu_set() {
            // SAFETY: a thread handle that is still joinable (its JoinHandle is alive), a valid
            // set and its size.
            unsafe {
                libc::pthread_setaffinity_np(thread, std::mem::size_of::<libc::cpu_set_t>(), &set)
            };
        }
    }
}

/// The CPUs this process may use, as it started (so `taskset` and cgroups are respected).
fn allowed() -> Option<&'static libc::cpu_set_t> {
    static ALLOWED: OnceLock<Option<libc::cpu_set_t>> = OnceLock::new();
    ALLOWED
        .get_or_init(|| {
            // SAFETY: cpu_set_t is a plain bit set; the kernel fills it.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            // SAFETY: a valid set and its size; pid 0 is this process's main thread.
            let ok = unsafe {
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
            };
            (ok == 0).then_some(set)
        })
        .as_ref()
}

/// Whether this process may run on more than one CPU. With one, there is nothing to place, and
/// waiting by spinning would only delay the very work waited for.
pub fn several_cpus() -> bool {
    static SEVERAL: OnceLock<bool> = OnceLock::new();
    *SEVERAL.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_runs_where_it_is_placed() {
        if !several_cpus() {
            return; // one CPU: nothing to place (the assertion below needs two)
        }
        let Placement::Cpu(cpu) = Placement::here() else {
            panic!("several CPUs but no current one");
        };
        let handle = std::thread::spawn(|| {
            std::thread::park();
            // SAFETY: plain call.
            unsafe { libc::sched_getcpu() }
        });
        use std::os::unix::thread::JoinHandleExt;
        Placement::Cpu(cpu).apply_to_thread(handle.as_pthread_t());
        handle.thread().unpark();
        assert_eq!(usize::try_from(handle.join().unwrap()).unwrap(), cpu);
    }
}
