//! The in-process backend: a sandbox on a dedicated thread, bridged to async code by channels.
//!
//! Answers go to the thread through a plain queue and `Thread::unpark` (measured: a quarter of
//! a call's time went to `std::sync::mpsc`'s locking, its receiver spinning on a contended
//! lock), which the thread polls for a while before it parks (see `SpinBudget`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isola_protocol::{CallResult, ExecRequest, HostMsg, LogLevel, SandboxMsg};
use isola_sandbox::{Host, Wake};
use tokio::sync::mpsc as tmpsc;

use crate::BackendError;
use crate::SpinBudget;

/// Answers slower than this are waited for asleep.
const ANSWER_POLL_CAP: Duration = Duration::from_millis(1);

/// Stack for sandbox threads: QuickJS's own stack limit must fit well inside it.
const THREAD_STACK: usize = 64 * 1024 * 1024;

pub struct InProcess {
    /// Kept to wake the thread when an answer comes.
    thread: std::thread::JoinHandle<()>,
    events: tmpsc::UnboundedReceiver<SandboxMsg>,
    inbox: Arc<Inbox>,
    cancel: Arc<AtomicBool>,
}

/// Inputs on their way to the sandbox thread.
#[derive(Default)]
struct Inbox {
    answers: Mutex<VecDeque<HostMsg>>,
    /// The engine side is gone.
    closed: AtomicBool,
}

impl InProcess {
    pub fn start(request: ExecRequest) -> Result<Self, BackendError> {
        let (event_tx, events) = tmpsc::unbounded_channel();
        let inbox = Arc::new(Inbox::default());
        let answers = inbox.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("isola-sandbox".into())
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let events = event_tx.clone();
                let host = Rc::new(RefCell::new(ChannelHost {
                    events: event_tx,
                    inbox: answers,
                    cancel: flag.clone(),
                    answers: SpinBudget::new(ANSWER_POLL_CAP),
                }));
                let (outcome, spent) = isola_sandbox::run_in(None, &request, host, &flag);
                let _ = events.send(SandboxMsg::Done(outcome));
                // Freed after the outcome is on its way.
                drop(spent);
            })
            .map_err(BackendError::Thread)?;
        Ok(Self {
            thread,
            events,
            inbox,
            cancel,
        })
    }

    pub async fn next(&mut self) -> Result<SandboxMsg, BackendError> {
        self.events
            .recv()
            .await
            .ok_or_else(|| BackendError::Channel("the sandbox thread ended".into()))
    }

    pub fn send(&mut self, msg: HostMsg) {
        // The thread may have finished already; a late input is simply never read.
        if let Ok(mut q) = self.inbox.answers.lock() {
            q.push_back(msg);
        }
        self.thread.thread().unpark();
    }

    pub fn abort(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.inbox.closed.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
    }
}

struct ChannelHost {
    events: tmpsc::UnboundedSender<SandboxMsg>,
    inbox: Arc<Inbox>,
    cancel: Arc<AtomicBool>,
    /// How long to poll for an answer before parking.
    answers: SpinBudget,
}

impl ChannelHost {
    fn take_answer(&self) -> Option<HostMsg> {
        self.inbox
            .answers
            .lock()
            .ok()
            .and_then(|mut q| q.pop_front())
    }
}

impl Host for ChannelHost {
    fn call(&mut self, id: u32, binding: u32, args: String) -> Option<CallResult> {
        let _ = self.events.send(SandboxMsg::Call { id, binding, args });
        None
    }

    fn timer(&mut self, id: u32, ms: f64) {
        let _ = self.events.send(SandboxMsg::Timer { id, ms });
    }

    fn clear_timer(&mut self, id: u32) {
        let _ = self.events.send(SandboxMsg::ClearTimer { id });
    }

    fn log(&mut self, level: LogLevel, text: String) {
        let _ = self.events.send(SandboxMsg::Log { level, text });
    }

    fn wait(&mut self, timeout: Duration) -> Wake {
        let since = Instant::now();
        let until = since + timeout;
        // Poll (yielding the CPU) until then, park after (see SpinBudget).
        let poll = self.answers.until().map(|p| p.min(until));
        loop {
            if let Some(msg) = self.take_answer() {
                self.answers.ended(since.elapsed());
                return crate::wake(msg);
            }
            if self.inbox.closed.load(Ordering::Relaxed) {
                return Wake::Disconnected;
            }
            if self.cancel.load(Ordering::Relaxed) {
                return Wake::Cancelled;
            }
            let now = Instant::now();
            if now >= until {
                return Wake::TimedOut;
            }
            match poll {
                Some(p) if now < p => std::thread::yield_now(),
                // Woken by an answer, an abort or the end of the engine side (or spuriously).
                _ => std::thread::park_timeout(until - now),
            }
        }
    }
}
