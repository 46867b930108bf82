//! Host side of worker processes: spawning, the warm pool, framing.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use isola_protocol::{FrameDecoder, HostMsg, PROTOCOL_VERSION, Ready, SandboxMsg, encode_frame};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdout, Command};

use crate::BackendError;

/// Bytes the host queues for a worker that does not read its channel before giving up on it.
const MAX_OUTBOX_BYTES: usize = 256 * 1024 * 1024;

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
    /// Hardening layers a worker must report active, or it is refused.
    required: Vec<String>,
    /// What the last worker started reported.
    ready: Mutex<Option<Ready>>,
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
        Self::with_required(command, warm, Vec::new())
    }

    /// A pool whose workers must report every layer named in `required` (`seccomp`, ...) as
    /// active; a worker that does not is refused ([`BackendError::Hardening`]).
    pub fn with_required(command: WorkerCommand, warm: usize, required: Vec<String>) -> Self {
        let pool = Self {
            inner: Arc::new(Inner {
                command,
                warm,
                required,
                ready: Mutex::new(None),
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
            let w = self.spawn().await?;
            self.offer(w);
        }
    }

    pub fn idle_count(&self) -> usize {
        self.inner.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// What the last worker started said of itself (protocol, hardening); `None` before one
    /// came up.
    pub fn ready(&self) -> Option<Ready> {
        self.inner.ready.lock().ok().and_then(|r| r.clone())
    }

    async fn spawn(&self) -> Result<Worker, BackendError> {
        let worker = Worker::spawn(&self.inner.command, &self.inner.required).await?;
        if let Ok(mut ready) = self.inner.ready.lock() {
            *ready = Some(worker.ready.clone());
        }
        Ok(worker)
    }

    /// A ready worker: an idle one, or a new one. Give it back with [`WorkerPool::checkin`] or
    /// [`WorkerPool::discard`].
    pub async fn checkout(&self) -> Result<Worker, BackendError> {
        let ready = self.inner.idle.lock().ok().and_then(|mut v| v.pop());
        let worker = match ready {
            Some(w) => w,
            None => self.spawn().await?,
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
                let spawned = pool.spawn().await;
                pool.inner.starting.fetch_sub(1, Ordering::Relaxed);
                match spawned {
                    Ok(w) => pool.offer(w),
                    Err(e) => tracing::warn!("could not start a spare worker: {e}"),
                }
            });
        }
    }
}

/// Make the child killed when this process dies, however it dies (`kill -9` included): a
/// worker stuck in a native operation would otherwise go on burning a CPU. The signal is tied
/// to the thread that spawns the child, which is the runtime's own.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: getpid is async-signal-safe.
    let parent = unsafe { libc::getpid() };
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            // The parent may have died before the prctl: then nobody would send the signal.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// One worker process and its channel.
///
/// Reads are cancel-safe: frames are decoded by a [`FrameDecoder`] that keeps a half-read
/// frame, so the engine can wait on [`Worker::recv`] inside `select!` without ever losing its
/// framing (reading in the engine's own task, rather than in a reader task, saves a wake-up per
/// message). Writes never block: [`Worker::send`] writes what the pipe takes at once and queues
/// the rest, which [`Worker::recv`] writes as the worker reads, while it waits for the worker's
/// next message. A worker that stops reading while it writes (a script flooding its console
/// while a large result is on its way) therefore cannot stall the host: the engine keeps
/// reading and keeps its deadline.
pub struct Worker {
    child: Child,
    stdin: pipe::Sender,
    stdout: ChildStdout,
    frames: FrameDecoder,
    /// Frames (or what is left of the first one) not yet taken by the pipe.
    outbox: VecDeque<Vec<u8>>,
    /// How much of the first frame in `outbox` is already written.
    written: usize,
    queued: usize,
    ready: Ready,
}

impl Worker {
    async fn spawn(command: &WorkerCommand, required: &[String]) -> Result<Self, BackendError> {
        let describe = command.describe();
        let mut cmd = Command::new(&command.program);
        cmd.args(&command.args)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| BackendError::Spawn {
            program: describe.clone(),
            source,
        })?;
        let handshake = |reason: String| BackendError::Handshake {
            program: describe.clone(),
            reason,
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(handshake("no pipes".into()));
        };
        let stdin = stdin
            .into_owned_fd()
            .and_then(pipe::Sender::from_owned_fd)
            .map_err(|e| handshake(format!("cannot set up its input pipe: {e}")))?;
        let mut worker = Worker {
            child,
            stdin,
            stdout,
            frames: FrameDecoder::new(),
            outbox: VecDeque::new(),
            written: 0,
            queued: 0,
            ready: Ready::default(),
        };
        let ready = match worker.recv().await {
            Ok(SandboxMsg::Ready(ready)) => ready,
            Ok(other) => return Err(handshake(format!("unexpected {other:?}"))),
            Err(e) => return Err(handshake(e.to_string())),
        };
        if ready.protocol != PROTOCOL_VERSION {
            return Err(BackendError::Protocol {
                program: describe,
                expected: PROTOCOL_VERSION,
                found: ready.protocol,
            });
        }
        for name in required {
            match ready.layer(name) {
                Some(layer) if layer.active => {}
                layer => {
                    return Err(BackendError::Hardening {
                        program: describe,
                        layer: name.clone(),
                        reason: layer
                            .and_then(|l| l.detail.clone())
                            .unwrap_or_else(|| "the worker does not have it".into()),
                    });
                }
            }
        }
        for layer in ready.hardening.iter().filter(|l| !l.active) {
            tracing::warn!(
                layer = %layer.name,
                reason = layer.detail.as_deref().unwrap_or(""),
                "a sandbox worker runs without one of its hardening layers"
            );
        }
        worker.ready = ready;
        Ok(worker)
    }

    /// What the worker said of itself when it came up.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// Send `msg` without waiting: what the pipe does not take now is queued for
    /// [`Worker::flush`].
    pub fn send(&mut self, msg: &HostMsg) -> Result<(), BackendError> {
        let frame = encode_frame(msg).map_err(|e| BackendError::Channel(e.to_string()))?;
        self.queued += frame.len();
        if self.queued > MAX_OUTBOX_BYTES {
            return Err(BackendError::Channel(format!(
                "the sandbox stopped reading its input ({} bytes queued for it)",
                self.queued
            )));
        }
        self.outbox.push_back(frame);
        self.write_ready()
    }

    /// Write what the pipe takes without blocking.
    fn write_ready(&mut self) -> Result<(), BackendError> {
        while let Some(frame) = self.outbox.front() {
            match self.stdin.try_write(&frame[self.written..]) {
                Ok(n) => {
                    self.written += n;
                    self.queued -= n;
                    if self.written == frame.len() {
                        self.outbox.pop_front();
                        self.written = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(BackendError::Channel(e.to_string())),
            }
        }
        Ok(())
    }

    /// The next message from the worker, writing queued messages meanwhile. Cancel-safe. A
    /// worker is untrusted: frames are bounded and must parse.
    pub async fn recv(&mut self) -> Result<SandboxMsg, BackendError> {
        loop {
            match self.frames.decode() {
                Ok(Some(msg)) => return Ok(msg),
                Ok(None) => {}
                Err(e) => {
                    return Err(BackendError::Channel(format!(
                        "bad frame from the worker: {e}"
                    )));
                }
            }
            let read = if self.outbox.is_empty() {
                self.stdout.read_buf(self.frames.spare()).await
            } else {
                let (stdin, stdout, frames) = (&self.stdin, &mut self.stdout, &mut self.frames);
                tokio::select! {
                    writable = stdin.writable() => {
                        writable.map_err(|e| BackendError::Channel(e.to_string()))?;
                        self.write_ready()?;
                        continue;
                    }
                    read = stdout.read_buf(frames.spare()) => read,
                }
            };
            match read {
                Ok(0) => {
                    return Err(BackendError::Channel(
                        "the worker exited or closed its channel".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(BackendError::Channel(format!(
                        "the worker's channel failed: {e}"
                    )));
                }
            }
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
