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
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

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
/// The pool keeps `warm` workers alive and ready, and lets at most `max` be alive at once:
/// under load it grows to `max` and keeps them (a worker whose run ended normally goes back to
/// the pool rather than being replaced: starting a process per execution would compete with the
/// running scripts for the CPU); past `max` concurrent executions, an execution waits for a
/// worker to come back. Idle workers are handed out most recently used first: back to back, the
/// one that just finished is still awake (polling for its next message) and hot in the caches,
/// which measured ~200 µs faster per trivial execution than handing out the one idle longest
/// (BENCHMARKS.md, "Execution").
#[derive(Clone)]
pub struct WorkerPool {
    inner: Arc<Inner>,
}

struct Inner {
    command: WorkerCommand,
    /// How many workers to keep alive and ready.
    warm: usize,
    /// Hardening layers a worker must report active, or it is refused.
    required: Vec<String>,
    /// What the last worker started reported.
    ready: Mutex<Option<Ready>>,
    idle: Mutex<VecDeque<Worker>>,
    /// One permit per worker that may be alive (`max` in all); a worker holds its permit until
    /// it is killed.
    slots: Arc<Semaphore>,
    /// Signalled when a worker comes back.
    returned: Notify,
    /// Workers being started in the background, so refills don't overshoot.
    starting: AtomicUsize,
    /// Processes started so far.
    starts: AtomicUsize,
}

/// The most workers a pool of `warm` lets live by default: four per CPU, at least 8, at most
/// 64, and never fewer than `warm`.
pub fn default_max_workers(warm: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cpus * 4).clamp(8, 64).max(warm)
}

impl WorkerPool {
    /// A pool that keeps `warm` workers alive (and at most [`default_max_workers`]). Workers
    /// start in the background, so this must be called within a tokio runtime.
    pub fn new(command: WorkerCommand, warm: usize) -> Self {
        Self::with_options(command, warm, default_max_workers(warm), Vec::new())
    }

    /// A pool whose workers must report every layer named in `required` (`seccomp`, ...) as
    /// active; a worker that does not is refused ([`BackendError::Hardening`]).
    pub fn with_required(command: WorkerCommand, warm: usize, required: Vec<String>) -> Self {
        Self::with_options(command, warm, default_max_workers(warm), required)
    }

    /// A pool of `warm` workers kept ready, at most `max` alive (at least 1, at least `warm`).
    pub fn with_options(
        command: WorkerCommand,
        warm: usize,
        max: usize,
        required: Vec<String>,
    ) -> Self {
        let max = max.max(warm).max(1);
        let pool = Self {
            inner: Arc::new(Inner {
                command,
                warm,
                required,
                ready: Mutex::new(None),
                idle: Mutex::new(VecDeque::new()),
                slots: Arc::new(Semaphore::new(max)),
                returned: Notify::new(),
                starting: AtomicUsize::new(0),
                starts: AtomicUsize::new(0),
            }),
        };
        pool.refill();
        pool
    }

    /// Wait until `warm` workers are ready (for benchmarks and tests that measure warm starts).
    pub async fn warm_up(&self) -> Result<(), BackendError> {
        loop {
            let returned = self.inner.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            let idle = self.idle_count();
            if idle >= self.inner.warm {
                return Ok(());
            }
            if idle + self.inner.starting.load(Ordering::Relaxed) < self.inner.warm {
                let Ok(slot) = self.inner.slots.clone().try_acquire_owned() else {
                    return Ok(());
                };
                let w = self.spawn(slot).await?;
                self.checkin(w);
            } else {
                // Being started in the background: wait for it.
                returned.await;
            }
        }
    }

    pub fn idle_count(&self) -> usize {
        self.inner.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Worker processes started so far (for benchmarks and tests).
    pub fn starts(&self) -> usize {
        self.inner.starts.load(Ordering::Relaxed)
    }

    /// What the last worker started said of itself (protocol, hardening); `None` before one
    /// came up.
    pub fn ready(&self) -> Option<Ready> {
        self.inner.ready.lock().ok().and_then(|r| r.clone())
    }

    async fn spawn(&self, slot: OwnedSemaphorePermit) -> Result<Worker, BackendError> {
        self.inner.starts.fetch_add(1, Ordering::Relaxed);
        let mut worker = Worker::spawn(&self.inner.command, &self.inner.required).await?;
        worker.slot = Some(slot);
        if let Ok(mut ready) = self.inner.ready.lock() {
            *ready = Some(worker.ready.clone());
        }
        Ok(worker)
    }

    fn take_idle(&self) -> Option<Worker> {
        self.inner.idle.lock().ok().and_then(|mut v| v.pop_back())
    }

    /// A ready worker: an idle one, or a new one while fewer than `max` are alive, or the next
    /// one to come back. Give it back with [`WorkerPool::checkin`] or [`WorkerPool::discard`].
    pub async fn checkout(&self) -> Result<Worker, BackendError> {
        loop {
            if let Some(w) = self.take_idle() {
                return Ok(w);
            }
            if let Ok(slot) = self.inner.slots.clone().try_acquire_owned() {
                return self.spawn(slot).await;
            }
            // At the maximum: the first worker to come back (or a slot freed by one that was
            // killed). Registered before looking again, so a checkin in between is not missed.
            let returned = self.inner.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(w) = self.take_idle() {
                return Ok(w);
            }
            tokio::select! {
                () = returned => {}
                slot = self.inner.slots.clone().acquire_owned() => {
                    if let Ok(slot) = slot {
                        return self.spawn(slot).await;
                    }
                }
            }
        }
    }

    /// Give back a worker whose run ended normally: it stays alive for the next one.
    pub fn checkin(&self, worker: Worker) {
        match self.inner.idle.lock() {
            Ok(mut v) => v.push_back(worker),
            Err(_) => worker.kill(),
        }
        self.inner.returned.notify_one();
    }

    /// Kill a worker (deadline, cancellation, protocol error) and start a replacement.
    pub fn discard(&self, worker: Worker) {
        worker.kill();
        self.refill();
    }

    /// Start workers in the background until `warm` are ready.
    fn refill(&self) {
        let have = self.idle_count() + self.inner.starting.load(Ordering::Relaxed);
        let missing = self.inner.warm.saturating_sub(have);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for _ in 0..missing {
            let Ok(slot) = self.inner.slots.clone().try_acquire_owned() else {
                return;
            };
            let pool = self.clone();
            pool.inner.starting.fetch_add(1, Ordering::Relaxed);
            handle.spawn(async move {
                let spawned = pool.spawn(slot).await;
                pool.inner.starting.fetch_sub(1, Ordering::Relaxed);
                match spawned {
                    Ok(w) => pool.checkin(w),
                    Err(e) => {
                        tracing::warn!("could not start a spare worker: {e}");
                        // Whoever waits for it looks again (and starts one itself).
                        pool.inner.returned.notify_one();
                    }
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
    /// Its place among the workers the pool lets live; freed when the worker is dropped.
    slot: Option<OwnedSemaphorePermit>,
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
            slot: None,
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
        // Said once per process: every worker of this host has the same kernel to work with.
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let missing: Vec<&isola_protocol::Layer> =
            ready.hardening.iter().filter(|l| !l.active).collect();
        if !missing.is_empty() && !WARNED.swap(true, Ordering::Relaxed) {
            for layer in missing {
                tracing::warn!(
                    layer = %layer.name,
                    reason = layer.detail.as_deref().unwrap_or(""),
                    "sandbox workers run without one of their hardening layers"
                );
            }
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

    /// Kill the process now; it is reaped in the background, and its slot in the pool freed.
    pub fn kill(mut self) {
        self.slot = None;
        let _ = self.child.start_kill();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = self.child.wait().await;
            });
        }
    }
}
