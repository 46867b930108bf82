//! Where sandboxes run: in worker processes (the default), or in-process for library users.
//!
//! Both backends present the same [`Session`]: send one [`ExecRequest`], then read
//! [`SandboxMsg`]s (tool calls, timers, console lines, the final outcome) with
//! [`Session::next`] and send the run's inputs with [`Session::send`], which never waits (what
//! a worker's pipe does not take at once goes out while [`Session::next`] waits).
//! [`Session::abort`] stops the run however far it got:
//!
//! * **workers** ([`WorkerPool`]): each execution borrows a warm worker process. Aborting kills
//!   the process, which stops even native operations that never return to the interpreter
//!   (`Array(2**32-1).join()`); the pool starts a replacement in the background. Workers hold
//!   nothing but the script: empty environment, no descriptors but their channel.
//! * **in-process**: the sandbox runs on a thread of this process. Fast, but an abort can only
//!   interrupt the interpreter, so a script stuck in a native operation keeps its thread busy
//!   until the operation ends. Use it only where scripts are trusted or for benchmarks.
//!
//! The worker process side is [`worker_main`]; the `isola` binary runs it as `isola __worker`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), isola_worker::BackendError> {
//! use isola_worker::{Backend, WorkerCommand, WorkerPool};
//! let pool = WorkerPool::new(WorkerCommand::current_exe("__worker")?, 2);
//! let backend = Backend::Workers(pool);
//! # Ok(()) }
//! ```

mod child;
mod inproc;
mod namespaces;
mod pool;
mod seccomp;
mod spin;

use std::time::Duration;

pub use child::worker_main;
use isola_protocol::{ExecRequest, HostMsg, Ready, SandboxMsg};
pub use pool::{WorkerCommand, WorkerPool, default_max_workers};
pub use spin::{SpinBudget, several_cpus};

/// A failure of the machinery, never of the script.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The worker program could not be started.
    #[error("cannot start a sandbox worker ({program}): {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// The worker did not come up with its ready message.
    #[error("the sandbox worker ({program}) did not start properly: {reason}")]
    Handshake { program: String, reason: String },
    /// The path of the running executable is unknown.
    #[error("cannot find the isola executable to start workers: {0}")]
    CurrentExe(std::io::Error),
    /// The in-process sandbox thread could not be started.
    #[error("cannot start the sandbox thread: {0}")]
    Thread(std::io::Error),
    /// The worker speaks another version of the protocol (a standalone worker binary out of
    /// step with the host).
    #[error(
        "the sandbox worker ({program}) speaks protocol version {found}, this host speaks {expected}\nhint: use the worker of the same Isola build (`isola __worker`)"
    )]
    Protocol {
        program: String,
        expected: u32,
        found: u32,
    },
    /// A hardening layer the configuration requires is not active in the worker.
    #[error(
        "the sandbox worker ({program}) runs without `{layer}`, which the config requires: {reason}\nhint: remove it from `isola.requireHardening` to run without it"
    )]
    Hardening {
        program: String,
        layer: String,
        reason: String,
    },
    /// Talking to a worker failed.
    #[error("lost the sandbox worker: {0}")]
    Channel(String),
}

/// What an input from the host means to the sandbox; `Exec` in the middle of a run breaks the
/// protocol and ends it.
fn wake(msg: HostMsg) -> isola_sandbox::Wake {
    use isola_sandbox::Wake;
    match msg {
        HostMsg::CallDone { id, result, now_ms } => Wake::Settled { id, result, now_ms },
        HostMsg::Fire { id, now_ms } => Wake::Fired { id, now_ms },
        HostMsg::Hold => Wake::Hold,
        HostMsg::Resume => Wake::Resume,
        HostMsg::Exec(_) => Wake::Disconnected,
    }
}

/// Where executions run.
pub enum Backend {
    InProcess,
    Workers(WorkerPool),
}

impl Backend {
    /// Start one execution.
    pub async fn start(&self, request: ExecRequest) -> Result<Session, BackendError> {
        match self {
            Backend::InProcess => Ok(Session::InProcess(inproc::InProcess::start(request)?)),
            Backend::Workers(pool) => {
                // The session owns the worker from here: if sending fails, or this future is
                // dropped half-way, the session's Drop gives it back to the pool (discarded),
                // so the pool's count of busy workers stays true.
                let mut session = Session::Worker {
                    worker: Some(Box::new(pool.checkout().await?)),
                    pool: pool.clone(),
                };
                session.send(&HostMsg::Exec(request))?;
                Ok(session)
            }
        }
    }

    /// How long to wait past the deadline for the sandbox's own graceful stop before forcing it.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(150)
    }
}

/// One execution in progress.
pub enum Session {
    InProcess(inproc::InProcess),
    Worker {
        worker: Option<Box<pool::Worker>>,
        pool: WorkerPool,
    },
}

impl Session {
    /// The next message from the sandbox; `Err` when it died. Cancel-safe.
    pub async fn next(&mut self) -> Result<SandboxMsg, BackendError> {
        match self {
            Session::InProcess(s) => s.next().await,
            Session::Worker { worker, .. } => match worker {
                Some(w) => w.recv().await,
                None => Err(BackendError::Channel(
                    "the worker was already released".into(),
                )),
            },
        }
    }

    /// The worker's process id (for diagnostics and tests); `None` in-process.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Session::Worker {
                worker: Some(w), ..
            } => w.pid(),
            _ => None,
        }
    }

    /// What the worker said of itself (protocol version, hardening); `None` in-process.
    pub fn ready(&self) -> Option<&Ready> {
        match self {
            Session::Worker {
                worker: Some(w), ..
            } => Some(w.ready()),
            _ => None,
        }
    }

    /// Send the sandbox an input (or hold/resume). Never waits: what a worker's pipe does not
    /// take at once is queued, and written while [`Session::next`] waits.
    pub fn send(&mut self, msg: &HostMsg) -> Result<(), BackendError> {
        match self {
            Session::InProcess(s) => {
                s.send(msg.clone());
                Ok(())
            }
            Session::Worker { worker, .. } => match worker {
                Some(w) => w.send(msg),
                None => Ok(()),
            },
        }
    }

    /// Stop the run now. A worker is killed and replaced.
    pub fn abort(mut self) {
        match &mut self {
            Session::InProcess(s) => s.abort(),
            Session::Worker { worker, pool } => {
                if let Some(w) = worker.take() {
                    pool.discard(*w);
                }
            }
        }
    }

    /// The run ended normally (after [`SandboxMsg::Done`]): keep the worker for the next one.
    pub fn finish(mut self) {
        if let Session::Worker { worker, pool } = &mut self
            && let Some(w) = worker.take()
        {
            pool.checkin(*w);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A session dropped without finish() (e.g. its future was cancelled) must not leave a
        // worker running someone's script.
        match self {
            Session::InProcess(s) => s.abort(),
            Session::Worker { worker, pool } => {
                if let Some(w) = worker.take() {
                    pool.discard(*w);
                }
            }
        }
    }
}
