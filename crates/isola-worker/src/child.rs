//! The worker side: what runs inside a worker process.
//!
//! The process holds nothing but the script. It is started with an empty environment and only
//! its channel (stdin for host → worker frames, stdout for worker → host frames; stderr is
//! `/dev/null`). Before it reads its first request it hardens itself: its own namespaces where
//! the kernel allows them (see `namespaces`), no new privileges, no core dumps, no file
//! writes, no new file descriptors, and the system-call filter.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use isola_protocol::{
    CallResult, FrameDecoder, HostMsg, Layer, LogLevel, PROTOCOL_VERSION, Ready, SandboxMsg,
    encode_frame,
};
use isola_sandbox::{Host, Wake};

use crate::SpinBudget;
use crate::spin::poll_until;

/// Answers slower than this are waited for asleep.
const ANSWER_POLL_CAP: Duration = Duration::from_millis(1);

/// Entry point of a worker process. Returns the process exit code.
///
/// With `--self-check` among its arguments the worker hardens itself, tries what it must not be
/// able to do, and exits 0 only if all of it was refused (used by the tests).
pub fn worker_main() -> i32 {
    // Read before the filter forbids opening files.
    crate::several_cpus();
    // Namespaces first: they need system calls the filter forbids (and may fork, see there).
    let mut hardening = crate::namespaces::enter();
    if std::env::args().any(|a| a == "--probe") {
        print!("{}", crate::namespaces::probe());
        return 0;
    }
    hardening.extend(harden());
    if std::env::args().any(|a| a == "--self-check") {
        return if crate::seccomp::forbidden_calls_fail() {
            0
        } else {
            1
        };
    }
    let chan = Rc::new(RefCell::new(Channel {
        input: io::stdin().lock(),
        frames: FrameDecoder::new(),
        chunk: vec![0u8; 64 * 1024].into_boxed_slice(),
        output: io::stdout().lock(),
        answers: SpinBudget::new(ANSWER_POLL_CAP),
    }));
    let ready = SandboxMsg::Ready(Ready {
        protocol: PROTOCOL_VERSION,
        hardening,
    });
    if chan.borrow_mut().send(&ready).is_err() {
        return 1;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    // The runtime for the next script, made while there is nothing else to do (see Fresh): not
    // right after a run, when the host is busy with its outcome and the next request may follow
    // at once, but once the channel has been quiet for a moment.
    let mut next = None;
    loop {
        if next.is_none() && !chan.borrow_mut().readable(Duration::from_millis(1)) {
            next = isola_sandbox::Fresh::new().ok();
        }
        let request = match chan.borrow_mut().recv() {
            Ok(Some(HostMsg::Exec(request))) => request,
            // A late input or clock message of a finished run.
            Ok(Some(HostMsg::CallDone { .. } | HostMsg::Fire { .. })) => continue,
            Ok(Some(HostMsg::Hold | HostMsg::Resume)) => continue,
            Ok(None) => return 0, // the host closed the channel
            Err(_) => return 2,
        };
        set_address_space_limit(request.limits.memory_bytes);
        let (outcome, spent) = isola_sandbox::run_in(next.take(), &request, chan.clone(), &cancel);
        if chan.borrow_mut().send(&SandboxMsg::Done(outcome)).is_err() {
            return 1;
        }
        // Freed after the outcome is on its way.
        drop(spent);
    }
}

struct Channel<R: Read, W: Write> {
    input: R,
    frames: FrameDecoder,
    /// Where reads land before they are fed to `frames`.
    chunk: Box<[u8]>,
    output: W,
    /// How long to poll for an answer before sleeping (see `SpinBudget`).
    answers: SpinBudget,
}

impl<R: Read + AsRawFd, W: Write> Channel<R, W> {
    fn send(&mut self, msg: &SandboxMsg) -> io::Result<()> {
        let frame = encode_frame(msg).map_err(io::Error::other)?;
        self.output.write_all(&frame)?;
        self.output.flush()
    }

    /// Read one message; `None` at a clean end of input.
    fn recv(&mut self) -> io::Result<Option<HostMsg>> {
        loop {
            if let Some(msg) = self.frames.decode().map_err(io::Error::other)? {
                return Ok(Some(msg));
            }
            let n = match self.input.read(&mut self.chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return if self.frames.has_buffered() {
                    Err(io::ErrorKind::UnexpectedEof.into())
                } else {
                    Ok(None)
                };
            }
            self.frames.feed(&self.chunk[..n]);
        }
    }

    /// Wait up to `timeout` for input to be readable.
    fn readable(&mut self, timeout: Duration) -> bool {
        if self.frames.has_buffered() {
            return true;
        }
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        poll_in(self.input.as_raw_fd(), ms)
    }

    /// Wait up to `timeout` for an answer: poll first, then sleep (see `SpinBudget`).
    fn answered(&mut self, timeout: Duration) -> bool {
        if self.frames.has_buffered() {
            return true;
        }
        let since = Instant::now();
        let fd = self.input.as_raw_fd();
        let polled = self
            .answers
            .until()
            .and_then(|until| {
                poll_until(until.min(since + timeout), || poll_in(fd, 0).then_some(()))
            })
            .is_some();
        let ready = polled || self.readable(timeout.saturating_sub(since.elapsed()));
        if ready {
            self.answers.ended(since.elapsed());
        }
        ready
    }
}

impl<R: Read + AsRawFd, W: Write> Host for Channel<R, W> {
    fn call(&mut self, id: u32, binding: u32, args: String) -> Option<CallResult> {
        // If the host is gone, the run sees Disconnected on its next wait.
        let _ = self.send(&SandboxMsg::Call { id, binding, args });
        None
    }

    fn timer(&mut self, id: u32, ms: f64) {
        let _ = self.send(&SandboxMsg::Timer { id, ms });
    }

    fn clear_timer(&mut self, id: u32) {
        let _ = self.send(&SandboxMsg::ClearTimer { id });
    }

    fn log(&mut self, level: LogLevel, text: String) {
        let _ = self.send(&SandboxMsg::Log { level, text });
    }

    fn wait(&mut self, timeout: Duration) -> Wake {
        if !self.answered(timeout) {
            return Wake::TimedOut;
        }
        match self.recv() {
            Ok(Some(msg)) => crate::wake(msg),
            Ok(None) | Err(_) => Wake::Disconnected,
        }
    }
}

/// Defence in depth for the worker process. QuickJS gives the script no way to reach the OS;
/// these make sure that even a QuickJS bug finds little to use. Returns every layer with
/// whether it is active, for the `Ready` message: a layer that failed is reported, not hidden.
fn harden() -> Vec<Layer> {
    let layer = |name: &str, result: Result<(), String>| Layer {
        name: name.into(),
        active: result.is_ok(),
        detail: result.err(),
    };
    let os_error = |what: &str| Err(format!("{what}: {}", io::Error::last_os_error()));
    // SAFETY: plain syscalls with constant arguments.
    let (no_new_privs, rlimits) = unsafe {
        let no_new_privs = if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 {
            Ok(())
        } else {
            os_error("prctl(PR_SET_NO_NEW_PRIVS)")
        };
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        // Anything beyond the channel (0, 1, 2) that slipped through is closed.
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        let limited = set_rlimit(libc::RLIMIT_CORE, 0, true)
            & set_rlimit(libc::RLIMIT_FSIZE, 0, true)
            // No new descriptors: the three standard ones are all a worker needs.
            & set_rlimit(libc::RLIMIT_NOFILE, 3, true);
        let rlimits = if limited {
            Ok(())
        } else {
            os_error("setrlimit")
        };
        (no_new_privs, rlimits)
    };
    // Last: the system-call filter. A kernel without seccomp still gets the layers above.
    let seccomp = crate::seccomp::install();
    vec![
        layer("no_new_privs", no_new_privs),
        layer("rlimits", rlimits),
        layer("seccomp", seccomp),
    ]
}

/// Backstop for the JS heap limit: the whole process may map at most a generous multiple of it.
fn set_address_space_limit(memory_bytes: u64) {
    let limit = memory_bytes.saturating_mul(2).saturating_add(1 << 30);
    // SAFETY: plain syscall.
    unsafe { set_rlimit(libc::RLIMIT_AS, limit, false) };
}

/// Set a limit's soft value (and, when `hard`, its hard value too, which cannot be raised again).
/// The address-space limit stays soft so the next request can set its own. Whether it took.
unsafe fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64, hard: bool) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to locals.
    unsafe {
        if libc::getrlimit(resource, &mut lim) != 0 {
            return false;
        }
        lim.rlim_cur = value.min(lim.rlim_max);
        if hard {
            lim.rlim_max = lim.rlim_cur;
        }
        libc::setrlimit(resource, &lim) == 0
    }
}

/// Whether `fd` has input, waiting up to `ms` milliseconds (0: just look).
fn poll_in(fd: std::os::fd::RawFd, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}
