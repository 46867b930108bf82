//! The in-process backend: a sandbox on a dedicated thread, bridged to async code by channels.
//!
//! Answers go to the thread through a plain queue and `Thread::unpark`: the thread runs on the
//! engine's CPU (see [`Placement`]), and a channel whose receiver spins on a contended lock
//! there only delays the sender it waits for (measured: a quarter of a call's time went to
//! `std::sync::mpsc`'s locking).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::unix::thread::JoinHandleExt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isola_protocol::{CallResult, ExecRequest, LogLevel, SandboxMsg};
use isola_sandbox::{Host, Wake};
use tokio::sync::mpsc as tmpsc;

use crate::BackendError;
use crate::Placement;

/// Stack for sandbox threads: QuickJS's own stack limit must fit well inside it.
const THREAD_STACK: usize = 64 * 1024 * 1024;

pub struct InProcess {
    /// Kept so the thread can be placed while it runs (its handle stays valid until dropped).
    thread: std::thread::JoinHandle<()>,
    events: tmpsc::UnboundedReceiver<SandboxMsg>,
    inbox: Arc<Inbox>,
    cancel: Arc<AtomicBool>,
}

/// Answers on their way to the sandbox thread.
#[derive(Default)]
struct Inbox {
    answers: Mutex<VecDeque<(u32, CallResult)>>,
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
                }));
                let outcome = isola_sandbox::run(&request, host, &flag);
                let _ = events.send(SandboxMsg::Done(outcome));
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

    pub fn settle(&mut self, id: u32, result: CallResult) -> Result<(), BackendError> {
        // The thread may have finished already; a late answer is simply never read.
        if let Ok(mut q) = self.inbox.answers.lock() {
            q.push_back((id, result));
        }
        self.thread.thread().unpark();
        Ok(())
    }

    pub fn place(&self, placement: Placement) {
        placement.apply_to_thread(self.thread.as_pthread_t());
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
}

impl Host for ChannelHost {
    fn call(&mut self, id: u32, binding: u32, args: String) -> Option<CallResult> {
        let _ = self.events.send(SandboxMsg::Call { id, binding, args });
        None
    }

    fn log(&mut self, level: LogLevel, text: String) {
        let _ = self.events.send(SandboxMsg::Log { level, text });
    }

    fn wait(&mut self, timeout: Duration) -> Wake {
        let until = Instant::now() + timeout;
        loop {
            let answer = self
                .inbox
                .answers
                .lock()
                .ok()
                .and_then(|mut q| q.pop_front());
            if let Some((id, result)) = answer {
                return Wake::Settled { id, result };
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
            // Woken by an answer, an abort or the end of the engine side (or spuriously).
            std::thread::park_timeout(until - now);
        }
    }
}
