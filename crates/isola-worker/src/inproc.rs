//! The in-process backend: a sandbox on a dedicated thread, bridged to async code by channels.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use isola_protocol::{CallResult, ExecRequest, LogLevel, SandboxMsg};
use isola_sandbox::{Host, Wake};
use tokio::sync::mpsc as tmpsc;

use crate::BackendError;
use crate::spin::SpinWait;

/// Stack for sandbox threads: QuickJS's own stack limit must fit well inside it.
const THREAD_STACK: usize = 64 * 1024 * 1024;

pub struct InProcess {
    events: tmpsc::UnboundedReceiver<SandboxMsg>,
    answers: mpsc::Sender<(u32, CallResult)>,
    cancel: Arc<AtomicBool>,
}

impl InProcess {
    pub fn start(request: ExecRequest) -> Result<Self, BackendError> {
        let (event_tx, events) = tmpsc::unbounded_channel();
        let (answers, answer_rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        std::thread::Builder::new()
            .name("isola-sandbox".into())
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let events = event_tx.clone();
                let host = Rc::new(RefCell::new(ChannelHost {
                    events: event_tx,
                    answers: answer_rx,
                    cancel: flag.clone(),
                    spin: SpinWait::sandbox(),
                }));
                let outcome = isola_sandbox::run(&request, host, &flag);
                let _ = events.send(SandboxMsg::Done(outcome));
            })
            .map_err(BackendError::Thread)?;
        Ok(Self {
            events,
            answers,
            cancel,
        })
    }

    pub async fn next(&mut self) -> Result<SandboxMsg, BackendError> {
        self.events
            .recv()
            .await
            .ok_or_else(|| BackendError::Channel("the sandbox thread ended".into()))
    }

    pub fn has_message(&self) -> bool {
        !self.events.is_empty()
    }

    pub fn settle(&mut self, id: u32, result: CallResult) -> Result<(), BackendError> {
        // The thread may have finished already; a late answer is simply dropped.
        let _ = self.answers.send((id, result));
        Ok(())
    }

    pub fn abort(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

struct ChannelHost {
    events: tmpsc::UnboundedSender<SandboxMsg>,
    answers: mpsc::Receiver<(u32, CallResult)>,
    cancel: Arc<AtomicBool>,
    spin: SpinWait,
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
        let since = Instant::now();
        let answers = &self.answers;
        let quick = self.spin.spin(timeout, || match answers.try_recv() {
            Err(mpsc::TryRecvError::Empty) => None,
            other => Some(other),
        });
        let got = match quick {
            Some(Ok(answer)) => Ok(answer),
            Some(Err(_)) => Err(mpsc::RecvTimeoutError::Disconnected),
            // Wake at least every 50 ms to notice cancellation.
            None => self.answers.recv_timeout(
                timeout
                    .saturating_sub(since.elapsed())
                    .min(Duration::from_millis(50)),
            ),
        };
        match got {
            Ok((id, result)) => {
                self.spin.answered(since);
                Wake::Settled { id, result }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if self.cancel.load(Ordering::Relaxed) {
                    Wake::Cancelled
                } else {
                    Wake::TimedOut
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Wake::Disconnected,
        }
    }
}
