//! Host side of worker processes: spawning, the warm pool, framing.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use isola_protocol::{HostMsg, MAX_FRAME_BYTES, SandboxMsg, encode_frame};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use crate::BackendError;

/// How to start a worker process.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl WorkerCommand {
    /// This executable, with `subcommand` as its only argument (`isola __worker`).
    pub fn current_exe(subcommand: &str) -> Result<Self, BackendError> {
        let program = std::env::current_exe().map_err(BackendError::CurrentExe)?;
        Ok(Self {
            program,
            args: vec![subcommand.into()],
        })
    }

    fn describe(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// A pool of warm worker processes. Cheap to clone (shared).
///
/// The pool keeps `warm` workers alive — idle, busy or starting — so that many executions can
/// start at once without spawning a process. A worker whose run ended normally goes back to the
/// pool rather than being replaced: spawning a spare while a script runs would compete with it
/// for the CPU, and killing the returning worker would waste a warm process on every execution.
/// Past `warm` concurrent executions, workers are started on demand and the surplus is stopped
/// when they come back.
#[derive(Clone)]
pub struct WorkerPool {
    inner: Arc<Inner>,
}

struct Inner {
    command: WorkerCommand,
    /// How many workers to keep alive.
    warm: usize,
    idle: Mutex<Vec<Worker>>,
    /// Workers being started in the background, so refills don't overshoot.
    starting: AtomicUsize,
    /// Workers checked out and not yet back (checked in or discarded).
    busy: AtomicUsize,
}

impl WorkerPool {
    /// A pool that keeps `warm` workers alive. Workers start in the background,
    /// so this must be called within a tokio runtime.
    pub fn new(command: WorkerCommand, warm: usize) -> Self {
        let pool = Self {
            inner: Arc::new(Inner {
                command,
                warm,
                idle: Mutex::new(Vec::new()),
                starting: AtomicUsize::new(0),
                busy: AtomicUsize::new(0),
            }),
        };
        pool.refill();
        pool
    }

    /// Wait until `warm` workers are ready (for benchmarks and tests that measure warm starts).
    pub async fn warm_up(&self) -> Result<(), BackendError> {
        loop {
            let have = self.idle_count();
            if have >= self.inner.warm {
                return Ok(());
            }
            let w = Worker::spawn(&self.inner.command).await?;
            self.offer(w);
        }
    }

    pub fn idle_count(&self) -> usize {
        self.inner.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// A ready worker: an idle one, or a new one. Give it back with [`WorkerPool::checkin`] or
    /// [`WorkerPool::discard`].
    pub async fn checkout(&self) -> Result<Worker, BackendError> {
        let ready = self.inner.idle.lock().ok().and_then(|mut v| v.pop());
        let worker = match ready {
            Some(w) => w,
            None => Worker::spawn(&self.inner.command).await?,
        };
        self.inner.busy.fetch_add(1, Ordering::Relaxed);
        Ok(worker)
    }

    /// Give back a worker whose run ended normally.
    pub fn checkin(&self, worker: Worker) {
        self.inner.busy.fetch_sub(1, Ordering::Relaxed);
        self.offer(worker);
    }

    /// Kill a worker (deadline, cancellation, protocol error) and start a replacement.
    pub fn discard(&self, worker: Worker) {
        self.inner.busy.fetch_sub(1, Ordering::Relaxed);
        worker.kill();
        self.refill();
    }

    /// Keep a worker while fewer than `warm` are alive besides it (at least one, so a pool of
    /// zero still reuses), else kill it.
    fn offer(&self, worker: Worker) {
        let others =
            self.inner.busy.load(Ordering::Relaxed) + self.inner.starting.load(Ordering::Relaxed);
        let rejected = match self.inner.idle.lock() {
            Ok(mut v) if v.len() + others < self.inner.warm.max(1) => {
                v.push(worker);
                None
            }
            _ => Some(worker),
        };
        if let Some(w) = rejected {
            w.kill();
        }
    }

    /// Start workers in the background until `warm` are alive.
    fn refill(&self) {
        let have = self.idle_count()
            + self.inner.starting.load(Ordering::Relaxed)
            + self.inner.busy.load(Ordering::Relaxed);
        let missing = self.inner.warm.saturating_sub(have);
        if missing == 0 {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for _ in 0..missing {
            let pool = self.clone();
            pool.inner.starting.fetch_add(1, Ordering::Relaxed);
            handle.spawn(async move {
                let spawned = Worker::spawn(&pool.inner.command).await;
                pool.inner.starting.fetch_sub(1, Ordering::Relaxed);
                match spawned {
                    Ok(w) => pool.offer(w),
                    Err(e) => tracing::warn!("could not start a spare worker: {e}"),
                }
            });
        }
    }
}

/// One worker process and its channel.
///
/// Frames from the worker are decoded by a `FramedRead`, which keeps a half-read frame in its
/// own buffer, so [`Worker::recv`] is cancel-safe: the engine waits on it inside `select!`, and
/// a half-read frame must never be dropped (the channel would lose its framing). Reading in the
/// engine's own task, rather than in a reader task, saves a wake-up per message.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    frames: FramedRead<ChildStdout, LengthDelimitedCodec>,
}

impl Worker {
    async fn spawn(command: &WorkerCommand) -> Result<Self, BackendError> {
        let describe = command.describe();
        let mut cmd = Command::new(&command.program);
        cmd.args(&command.args)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| BackendError::Spawn {
            program: describe.clone(),
            source,
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BackendError::Handshake {
                program: describe,
                reason: "no pipes".into(),
            });
        };
        let codec = LengthDelimitedCodec::builder()
            .little_endian()
            .length_field_type::<u32>()
            .max_frame_length(MAX_FRAME_BYTES as usize)
            .new_codec();
        let frames = FramedRead::with_capacity(stdout, codec, 64 * 1024);
        let mut worker = Worker {
            child,
            stdin,
            frames,
        };
        match worker.recv().await {
            Ok(SandboxMsg::Ready) => Ok(worker),
            Ok(other) => Err(BackendError::Handshake {
                program: describe,
                reason: format!("unexpected {other:?}"),
            }),
            Err(e) => Err(BackendError::Handshake {
                program: describe,
                reason: e.to_string(),
            }),
        }
    }

    pub async fn send(&mut self, msg: &HostMsg) -> Result<(), BackendError> {
        let frame = encode_frame(msg).map_err(|e| BackendError::Channel(e.to_string()))?;
        self.stdin
            .write_all(&frame)
            .await
            .map_err(|e| BackendError::Channel(e.to_string()))?;
        self.stdin
            .flush()
            .await
            .map_err(|e| BackendError::Channel(e.to_string()))
    }

    /// The next message from the worker. Cancel-safe. A worker is untrusted: frames are
    /// bounded and must parse.
    pub async fn recv(&mut self) -> Result<SandboxMsg, BackendError> {
        match self.frames.next().await {
            Some(Ok(frame)) => serde_json::from_slice(&frame)
                .map_err(|e| BackendError::Channel(format!("bad frame from the worker: {e}"))),
            Some(Err(e)) => Err(BackendError::Channel(format!(
                "the worker's channel failed: {e}"
            ))),
            None => Err(BackendError::Channel(
                "the worker exited or closed its channel".into(),
            )),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kill the process now; it is reaped in the background.
    pub fn kill(mut self) {
        let _ = self.child.start_kill();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = self.child.wait().await;
            });
        }
    }
}
