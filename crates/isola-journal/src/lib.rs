//! The journal: every execution recorded as an append-only, hash-chained sequence of
//! [`Entry`]s in an [`isola_store::Store`].
//!
//! A [`Journal`] owns one writer task that takes batches of writes from a bounded channel and
//! commits whatever is waiting in one transaction (group commit). For each execution,
//! [`Journal::begin`] gives an [`ExecJournal`]: an observer of the engine (it turns events into
//! entries) and a gate (it makes the intent of a call that is not known to be read-only durable
//! *before* the call is sent: the gate answers [`isola_engine::Verdict::After`] with the flush,
//! so the call waits for the commit while the script runs on).
//!
//! ```no_run
//! # async fn demo(engine: &isola_engine::Engine, store: std::sync::Arc<dyn isola_store::Store>) {
//! use isola_journal::{Begin, Journal, JournalConfig};
//! let journal = Journal::start(store, JournalConfig::default());
//! let code = "return 1";
//! let exec = journal.begin(Begin::new(code, "cli"), &engine.api());
//! let mut options = isola_engine::ExecOptions::default();
//! exec.attach(&mut options);
//! let record = engine.execute(code, options).await;
//! journal.close().await;
//! # let _ = record; }
//! ```
//!
//! After a crash, [`recover`] marks the executions of dead processes `interrupted` and lists
//! the calls whose intent has no outcome as *unknown* (never re-sent); one that died while a
//! call waited for a decision, with nothing else out, is `suspended` instead, and
//! [`Journal::resume`] continues a suspended execution (see [`resumable`]). [`verify`] checks every
//! chain. [`replay`] runs a recorded execution again from its entries alone.

mod entry;
mod replay;
mod resume;
mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use isola_engine::observer::Input;
use isola_engine::{
    ApiState, CallGate, CallIntent, Decision, Denial, Event, ExecOptions, Flow, Observer, Verdict,
};
use isola_protocol::{CallResult, ExecRecord};
use isola_store::{EntryRow, ExecQuery, ExecRow, Store, StoreError, WriteOp};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};

pub use entry::{Entry, FORMAT, Omitted, UnknownCall, chain_hash, sha256};
pub use replay::{Replayed, recording, replay};
pub use resume::{RESUMABLE_STATUSES, Resumable, resumable, unknown_calls};
pub use state::{STATE_SERVER, StateLimits, StateTools, state_server};

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry in the store is not one this version reads.
    #[error("entry {seq} of execution {execution} cannot be read: {problem}")]
    BadEntry {
        execution: String,
        seq: i64,
        problem: String,
    },
    /// No such execution.
    #[error("no execution `{0}` in the journal\nhint: `isola journal list` shows the ids")]
    NoExecution(String),
    /// The execution cannot be replayed (what it lacks is said).
    #[error("execution {execution} cannot be replayed: {problem}")]
    NotReplayable { execution: String, problem: String },
    /// The execution cannot be resumed (why is said).
    #[error("execution {execution} cannot be resumed: {problem}")]
    NotResumable { execution: String, problem: String },
}

/// What the journal keeps and hides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    /// Call results larger than this (bytes of JSON) are stored as their hash and size.
    pub max_result_bytes: u64,
    /// Object keys whose values are replaced by `"[redacted]"` before anything is stored: a
    /// key matches a pattern when, lower-cased without `_`, `-` and spaces, it ends with the
    /// pattern (so `password`, `db_password` and `dbPassword` match `password`; `max_tokens`
    /// does not match `token`).
    pub redact: Vec<String>,
    /// Writes waiting for the writer at most; an execution whose events find it full is
    /// stopped (the store is stalled) rather than run unrecorded.
    pub capacity: usize,
    /// How long entries no flush waits for (read-only calls, logs) may be gathered before
    /// they are committed, in milliseconds: a crash can lose at most this much of them (an
    /// acknowledged flush, so every side-effecting call's intent, is never lost). Commits
    /// during an execution compete with it for the CPU: at 5 ms the journal cost 100
    /// read-only calls +22–45%, at 100 ms a median +4% (`isola-bench journal`, BENCHMARKS.md).
    /// A queue half full is committed at once, whatever this says.
    pub gather_ms: u64,
}

/// The keys redacted by default.
pub const DEFAULT_REDACT: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "privatekey",
    "credential",
    "credentials",
];

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            max_result_bytes: 256 * 1024,
            redact: DEFAULT_REDACT.iter().map(|s| s.to_string()).collect(),
            capacity: 16 * 1024,
            gather_ms: 100,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new execution id: 12 hex digits of milliseconds then 8 random ones (sortable by time).
pub fn new_execution_id() -> String {
    format!("{:012x}{:08x}", now_ms(), fastrand::u32(..))
}

enum Cmd {
    Write(Vec<WriteOp>),
    /// Entries of one execution, to be redacted, encoded and chained by the writer (off the
    /// engine's critical path), between `pre` and `extra` ops.
    Append(Append),
    /// Acknowledged once everything sent before it is committed.
    Flush(oneshot::Sender<Result<(), String>>),
}

/// Most writes and entries in one transaction.
const MAX_BATCH: usize = 4096;

struct Append {
    shared: Arc<Shared>,
    pre: Vec<WriteOp>,
    entries: Vec<Entry>,
    extra: Vec<WriteOp>,
    at_ms: i64,
}

impl Append {
    /// The writer's half of [`Shared::write`]: redact, encode and chain the entries into
    /// `ops`. The chain's state is only touched here, in queue order.
    fn encode(self, ops: &mut Vec<WriteOp>, failed: &Mutex<Option<String>>) {
        let Append {
            shared,
            pre,
            entries,
            extra,
            at_ms,
        } = self;
        ops.extend(pre);
        let mut st = match shared.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        for mut entry in entries {
            shared.redact(&mut entry);
            let body = match serde_json::to_string(&entry) {
                Ok(b) => b,
                Err(e) => {
                    let message = format!("the journal cannot encode an entry: {e}");
                    tracing::error!("{message}");
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(message);
                    }
                    return;
                }
            };
            let hash = chain_hash(&st.prev, &shared.id, st.next, &body);
            ops.push(WriteOp::Entry(EntryRow {
                exec_id: shared.id.clone(),
                seq: st.next,
                kind: entry.kind().to_string(),
                at_ms,
                body,
                prev: std::mem::replace(&mut st.prev, hash.clone()),
                hash,
            }));
            st.next += 1;
        }
        ops.extend(extra);
    }
}

/// Counters of a journal's writer (for benchmarks and `--json` reports).
#[derive(Debug, Default)]
pub struct Stats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Entries written.
    pub entries: AtomicU64,
    /// Bytes of entry bodies written.
    pub bytes: AtomicU64,
}

/// The journal of one process: the writer task and what executions share.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Queue,
    store: Arc<dyn Store>,
    config: JournalConfig,
    redactor: Redactor,
    owner: String,
    /// Set when a write failed: every execution stops, no call is sent unrecorded.
    failed: Arc<Mutex<Option<String>>>,
    stats: Arc<Stats>,
    /// The API fingerprints already written by this process, by API.
    apis: Mutex<Vec<(usize, String, Arc<ApiState>)>>,
}

impl Journal {
    /// Start the writer task (on the current tokio runtime).
    pub fn start(store: Arc<dyn Store>, config: JournalConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.capacity.max(16));
        let flushing = Arc::new(Notify::new());
        let failed = Arc::new(Mutex::new(None));
        let stats = Arc::new(Stats::default());
        tokio::spawn(writer(
            store.clone(),
            rx,
            flushing.clone(),
            std::time::Duration::from_millis(config.gather_ms),
            failed.clone(),
            stats.clone(),
        ));
        let redactor = Redactor::new(&config.redact);
        Self {
            inner: Arc::new(Inner {
                queue: Queue { tx, flushing },
                store,
                config,
                redactor,
                owner: owner(),
                failed,
                stats,
                apis: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Wait until everything sent so far is committed.
    pub async fn flush(&self) -> Result<(), String> {
        self.inner.queue.flush().await
    }

    /// Flush; the writer ends when the last clone is dropped.
    pub async fn close(self) {
        if let Err(e) = self.flush().await {
            tracing::error!("the journal's last writes failed: {e}");
        }
    }

    /// Journal one execution: attach the result to its [`ExecOptions`].
    pub fn begin(&self, begin: Begin, api: &Arc<ApiState>) -> ExecJournal {
        let id = begin.execution.clone().unwrap_or_else(new_execution_id);
        let fingerprint = self.fingerprint(api);
        let read_only = read_only_set(api);
        let shared = Arc::new(Shared {
            journal: self.inner.clone(),
            id: id.clone(),
            state: Mutex::new(ExecState {
                next: 0,
                prev: String::new(),
                started: false,
                seqs: HashMap::new(),
                replayed: None,
            }),
            read_only,
            fingerprint,
            begin,
        });
        ExecJournal { id, shared }
    }

    /// Take over the suspended execution `r` (see [`resumable`]) and journal its
    /// continuation, from `origin`, in the same chain. Of two processes resuming one execution,
    /// one gets it; the other is told it is taken.
    pub async fn resume(
        &self,
        r: &Resumable,
        origin: &str,
        api: &Arc<ApiState>,
    ) -> Result<ExecJournal, JournalError> {
        let fingerprint = self.fingerprint(api);
        if fingerprint != r.api {
            // Its recorded calls and answers are of the API it ran against; another API may
            // mean other tools behind the same names.
            return Err(JournalError::NotResumable {
                execution: r.execution.clone(),
                problem: "the servers' API changed since it ran (a tool was added, removed or changed); it resumes only against the API it was recorded with".into(),
            });
        }
        let store = &self.inner.store;
        if !store
            .execution_claim(&r.execution, RESUMABLE_STATUSES, &self.inner.owner)
            .await?
        {
            return Err(JournalError::NotResumable {
                execution: r.execution.clone(),
                problem: "another process resumed it first".into(),
            });
        }
        let shared = Arc::new(Shared {
            journal: self.inner.clone(),
            id: r.execution.clone(),
            state: Mutex::new(ExecState {
                next: r.next,
                prev: r.prev.clone(),
                started: false,
                seqs: HashMap::new(),
                replayed: Some(r.replayed.clone()),
            }),
            read_only: read_only_set(api),
            fingerprint,
            begin: Begin {
                execution: Some(r.execution.clone()),
                session: r.session.clone(),
                origin: origin.to_string(),
                file: r.file.clone(),
                code: r.code.clone(),
                replay_of: None,
            },
        });
        Ok(ExecJournal {
            id: r.execution.clone(),
            shared,
        })
    }

    /// The fingerprint of `api` (the SHA-256 of its tool lists), stored with the API itself.
    pub fn fingerprint(&self, api: &Arc<ApiState>) -> String {
        let key = Arc::as_ptr(api) as usize;
        let mut apis = match self.inner.apis.lock() {
            Ok(a) => a,
            Err(p) => p.into_inner(),
        };
        if let Some((_, fp, _)) = apis.iter().find(|(k, _, _)| *k == key) {
            return fp.clone();
        }
        let body = api_snapshot(api);
        let fp = sha256(body.as_bytes());
        let _ = self.inner.queue.tx.try_send(Cmd::Write(vec![WriteOp::Api {
            fingerprint: fp.clone(),
            body,
        }]));
        // Keep the Arc, so the pointer is not reused by another API while cached.
        apis.push((key, fp.clone(), api.clone()));
        if apis.len() > 16 {
            apis.remove(0);
        }
        fp
    }
}

/// The writer's queue. Entries go in without waking it (it gathers them on a timer, so the
/// engine's task pays no cross-thread wake-up per entry); a flush also rings `flushing`, which
/// cuts the gathering short.
#[derive(Clone)]
struct Queue {
    tx: mpsc::Sender<Cmd>,
    flushing: Arc<Notify>,
}

impl Queue {
    async fn flush(&self) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Cmd::Flush(ack))
            .await
            .map_err(|_| "the journal's writer has stopped".to_string())?;
        self.flushing.notify_one();
        done.await
            .map_err(|_| "the journal's writer has stopped".to_string())?
    }
}

/// The writer: commit whatever is waiting, in one transaction, then acknowledge the flushes
/// that were waiting behind it.
async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Cmd>,
    flushing: Arc<Notify>,
    gather: std::time::Duration,
    failed: Arc<Mutex<Option<String>>>,
    stats: Arc<Stats>,
) {
    let mut batch = Vec::new();
    let mut acks = Vec::new();
    // The last batch was cut at its size: more is waiting, maybe a flush behind it.
    let mut backlog = false;
    while let Some(cmd) = rx.recv().await {
        let take = |cmd: Cmd, batch: &mut Vec<Cmd>, acks: &mut Vec<_>| match cmd {
            Cmd::Flush(a) => acks.push(a),
            other => batch.push(other),
        };
        take(cmd, &mut batch, &mut acks);
        // Entries nobody waits for (read-only calls, logs) are gathered for up to
        // `gather` before they are committed; a flush (a call about to be sent, the end)
        // commits at once. The writer sleeps rather than waits on the queue meanwhile, so
        // the entries sent while it sleeps do not wake it one by one.
        if acks.is_empty() && !backlog {
            tokio::select! {
                () = tokio::time::sleep(gather) => {}
                () = flushing.notified() => {}
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => take(cmd, &mut batch, &mut acks),
                Err(_) => break,
            }
        }
        backlog = batch.len() >= MAX_BATCH;
        // Redacting, encoding and hashing a batch nobody waits for take another thread:
        // Isola's runtime has one, and the executions' engines need it (a few hundred entries
        // take a millisecond or so, enough to delay the answers of calls arriving meanwhile).
        // A batch a flush waits for is encoded here: its caller is waiting for the commit, and
        // a thread hop would cost it more than the encoding (1,000 side-effecting calls at
        // concurrency 16 ran 30% slower with it).
        let items = std::mem::take(&mut batch);
        let mut ops = if acks.is_empty() {
            let fail = failed.clone();
            let encoded = tokio::task::spawn_blocking(move || encode_all(items, &fail)).await;
            match encoded {
                Ok(ops) => ops,
                Err(e) => {
                    let message = format!("the journal's encoder failed: {e}");
                    tracing::error!("{message}");
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(message);
                    }
                    Vec::new()
                }
            }
        } else {
            encode_all(items, &failed)
        };
        let already = match failed.lock() {
            Ok(f) => f.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let result = match already {
            Some(e) => Err(e),
            None if ops.is_empty() => Ok(()),
            None => {
                let (n, bytes) = ops.iter().fold((0, 0), |(n, b), op| match op {
                    WriteOp::Entry(e) => (n + 1, b + e.body.len() as u64),
                    _ => (n, b),
                });
                match store.apply(std::mem::take(&mut ops)).await {
                    Ok(()) => {
                        stats.commits.fetch_add(1, Ordering::Relaxed);
                        stats.entries.fetch_add(n, Ordering::Relaxed);
                        stats.bytes.fetch_add(bytes, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) => {
                        let message = e.to_string();
                        tracing::error!("the journal cannot write: {message}");
                        if let Ok(mut f) = failed.lock() {
                            *f = Some(message.clone());
                        }
                        Err(message)
                    }
                }
            }
        };
        for ack in acks.drain(..) {
            let _ = ack.send(result.clone());
        }
    }
}

/// The store's operations for a batch of writes and entries, in order.
fn encode_all(items: Vec<Cmd>, failed: &Mutex<Option<String>>) -> Vec<WriteOp> {
    let mut ops = Vec::with_capacity(items.len() * 2);
    for item in items {
        match item {
            Cmd::Write(w) => ops.extend(w),
            Cmd::Append(a) => a.encode(&mut ops, failed),
            Cmd::Flush(_) => {}
        }
    }
    ops
}

/// What an execution is, for its `started` entry.
#[derive(Clone, Debug, Default)]
pub struct Begin {
    /// Its id (a new one when `None`).
    pub execution: Option<String>,
    pub session: Option<String>,
    pub origin: String,
    pub file: String,
    pub code: String,
    pub replay_of: Option<String>,
}

impl Begin {
    pub fn new(code: &str, origin: &str) -> Self {
        Self {
            code: code.to_string(),
            origin: origin.to_string(),
            ..Self::default()
        }
    }

    pub fn session(mut self, session: Option<String>) -> Self {
        self.session = session;
        self
    }

    pub fn file(mut self, file: &str) -> Self {
        self.file = file.to_string();
        self
    }
}

struct Shared {
    journal: Arc<Inner>,
    id: String,
    state: Mutex<ExecState>,
    read_only: Vec<(String, String)>,
    fingerprint: String,
    begin: Begin,
}

struct ExecState {
    next: i64,
    prev: String,
    started: bool,
    /// The seq of each call under way, by sandbox id.
    seqs: HashMap<u32, u32>,
    /// Resuming: what the replay goes through again, not to be written twice.
    replayed: Option<resume::Replayed>,
}

/// One execution's journal: its id, an observer and a gate for [`ExecOptions`].
pub struct ExecJournal {
    pub id: String,
    shared: Arc<Shared>,
}

impl ExecJournal {
    /// Add the observer and the write-ahead gate (last: stricter gates decide first), and set
    /// the execution id and session (the idempotency key's source, `state`'s session).
    pub fn attach(&self, options: &mut ExecOptions) {
        options.observers.push(Box::new(JournalObserver {
            shared: self.shared.clone(),
        }));
        options.gates.push(Arc::new(WriteAhead {
            shared: self.shared.clone(),
        }));
        options.execution_id = Some(self.id.clone());
        options.session = self.shared.begin.session.clone();
    }
}

struct JournalObserver {
    shared: Arc<Shared>,
}

impl Shared {
    fn failure(&self) -> Option<String> {
        match self.journal.failed.lock() {
            Ok(f) => f.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Queue `entries` for the writer, after the `pre` ops and before the `extra` ones.
    fn write(
        self: &Arc<Self>,
        pre: Vec<WriteOp>,
        entries: Vec<Entry>,
        extra: Vec<WriteOp>,
    ) -> Flow {
        if let Some(e) = self.failure() {
            return Flow::Stop(format!("the journal cannot write: {e}"));
        }
        let append = Append {
            shared: self.clone(),
            pre,
            entries,
            extra,
            at_ms: now_ms(),
        };
        // A hold can last: what led to it is committed now, not after the gathering, so a
        // process that dies while it waits leaves the hold on record (and the execution
        // resumable).
        // And a queue half full is drained now, not when the gathering ends: a burst of
        // entries (a script logging in a loop) must not fill it and stop the execution.
        let queue = &self.journal.queue;
        let urgent = queue.tx.capacity() < queue.tx.max_capacity() / 2
            || append
                .entries
                .iter()
                .any(|e| matches!(e, Entry::Gate { decision, .. } if decision == "held"));
        match queue.tx.try_send(Cmd::Append(append)) {
            Ok(()) => {
                if urgent {
                    queue.flushing.notify_one();
                }
                Flow::Continue
            }
            Err(mpsc::error::TrySendError::Full(_)) => Flow::Stop(format!(
                "the journal's store is not keeping up ({} writes waiting); stopped rather than run unrecorded",
                self.journal.config.capacity
            )),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Flow::Stop("the journal's writer has stopped".into())
            }
        }
    }

    /// What of `entry` is not stored: secrets in arguments and results, answers too large.
    fn redact(&self, entry: &mut Entry) {
        let redactor = &self.journal.redactor;
        match entry {
            Entry::Call { arguments, .. } => {
                redactor.redact(arguments);
            }
            Entry::Input {
                result: result @ Some(_),
                omitted,
                redacted,
                ..
            } => {
                if let Some(answer) = result.take() {
                    (*result, *omitted, *redacted) = self.stored_result(answer);
                }
            }
            Entry::Finished { record, .. } => {
                redactor.redact(&mut record.result);
            }
            _ => {}
        }
    }

    /// A call's answer as stored: redacted, or hash and size when too large.
    fn stored_result(&self, result: CallResult) -> (Option<CallResult>, Option<Omitted>, bool) {
        let journal = &self.journal;
        if let CallResult::Ok { value } = &result {
            if value.len() as u64 > journal.config.max_result_bytes {
                let omitted = Omitted {
                    sha256: sha256(value.as_bytes()),
                    bytes: value.len() as u64,
                };
                return (None, Some(omitted), false);
            }
            if journal.redactor.may_match(value)
                && let Ok(mut v) = serde_json::from_str::<Value>(value)
                && journal.redactor.redact(&mut v)
            {
                let value = v.to_string();
                return (Some(CallResult::Ok { value }), None, true);
            }
        }
        (Some(result), None, false)
    }

    /// The `started` entry and the execution row, the first time.
    fn start_ops(
        &self,
        request: Option<&isola_protocol::ExecRequest>,
    ) -> (Vec<Entry>, Vec<WriteOp>) {
        let b = &self.begin;
        let resumed = match self.state.lock() {
            Ok(st) => st.replayed.clone(),
            Err(p) => p.into_inner().replayed.clone(),
        };
        if let Some(r) = resumed {
            // The row is there (claimed); the chain goes on.
            let entry = Entry::Resumed {
                origin: b.origin.clone(),
                replayed: r.answered.len() as u32,
                waiting: r.waiting,
            };
            return (vec![entry], Vec::new());
        }
        let started = Entry::Started {
            format: FORMAT,
            execution: self.id.clone(),
            session: b.session.clone(),
            origin: b.origin.clone(),
            file: b.file.clone(),
            code: b.code.clone(),
            code_hash: sha256(b.code.as_bytes()),
            api: self.fingerprint.clone(),
            limits: request.map(|r| r.limits.clone()),
            clock_ms: request.map(|r| r.clock_ms),
            seed: request.map(|r| r.seed),
            replay_of: b.replay_of.clone(),
        };
        let at = now_ms();
        let mut pre = Vec::new();
        if let Some(s) = &b.session {
            pre.push(WriteOp::Session {
                name: s.clone(),
                at_ms: at,
            });
        }
        pre.push(WriteOp::Execution(ExecRow {
            id: self.id.clone(),
            session: b.session.clone(),
            origin: b.origin.clone(),
            status: "running".into(),
            started_ms: at,
            ended_ms: None,
            code_hash: sha256(b.code.as_bytes()),
            owner: self.journal.owner.clone(),
            entries: 0,
            head: String::new(),
            summary: None,
        }));
        (vec![started], pre)
    }

    fn is_read_only(&self, server: &str, tool: &str) -> bool {
        self.read_only.iter().any(|(s, t)| s == server && t == tool)
    }
}

impl Observer for JournalObserver {
    fn event(&mut self, event: &Event<'_>) -> Flow {
        let sh = &self.shared;
        let (first, repeats) = {
            let mut st = match sh.state.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            let first = !std::mem::replace(&mut st.started, true);
            if let Event::Call { id, call } = event {
                st.seqs.insert(*id, call.seq);
            }
            let repeats = st.replayed.as_mut().is_some_and(|r| r.repeats(event));
            (first, repeats)
        };
        let (mut entries, pre) = if first {
            let request = match event {
                Event::Started { request } => Some(*request),
                _ => None,
            };
            sh.start_ops(request)
        } else {
            (Vec::new(), Vec::new())
        };
        if repeats {
            return match entries.is_empty() {
                true => Flow::Continue,
                false => sh.write(pre, entries, Vec::new()),
            };
        }
        let mut extra = Vec::new();
        match event {
            Event::Started { .. } => {}
            Event::Call { id, call } => {
                entries.push(Entry::Call {
                    seq: call.seq,
                    id: *id,
                    function: call.function.clone(),
                    server: call.server.clone(),
                    tool: call.tool.clone(),
                    arguments: call.arguments.clone(),
                    read_only: sh.is_read_only(&call.server, &call.tool),
                    idempotency_key: format!("{}:{}", sh.id, call.seq),
                });
            }
            Event::Denied { id, denial } => entries.push(Entry::Gate {
                id: *id,
                decision: "denied".into(),
                reason: Some(format!("{}: {}", denial.name, denial.message)),
            }),
            Event::Held { id, reason } => entries.push(Entry::Gate {
                id: *id,
                decision: "held".into(),
                reason: Some(reason.to_string()),
            }),
            Event::Decided { id, decision } => entries.push(Entry::Gate {
                id: *id,
                decision: match decision {
                    Decision::Allow => "allowed".into(),
                    Decision::Deny(_) => "denied".into(),
                    Decision::Simulate(_) => "simulated".into(),
                    Decision::Suspend(_) => "suspended".into(),
                },
                reason: match decision {
                    Decision::Deny(d) => Some(format!("{}: {}", d.name, d.message)),
                    Decision::Suspend(message) => Some(message.clone()),
                    _ => None,
                },
            }),
            Event::CallEnded { id, trace } => {
                let seq = sh
                    .state
                    .lock()
                    .ok()
                    .and_then(|mut st| st.seqs.remove(id))
                    .unwrap_or(u32::MAX);
                entries.push(Entry::Outcome {
                    seq,
                    id: *id,
                    ok: trace.ok,
                    error: trace.error.clone(),
                    duration_ms: trace.duration_ms,
                    request_bytes: trace.request_bytes,
                    response_bytes: trace.response_bytes,
                    sent: trace.sent,
                });
            }
            Event::Input { input } => entries.push(match input {
                Input::CallDone { id, result, now_ms } => Entry::Input {
                    t: "callDone".into(),
                    id: *id,
                    now_ms: *now_ms,
                    result: Some(result.clone()),
                    omitted: None,
                    redacted: false,
                },
                Input::Fire { id, now_ms } => Entry::Input {
                    t: "fire".into(),
                    id: *id,
                    now_ms: *now_ms,
                    result: None,
                    omitted: None,
                    redacted: false,
                },
            }),
            Event::Log(line) => entries.push(Entry::Log {
                level: line.level,
                text: line.text.clone(),
                at_ms: line.at_ms,
            }),
            Event::Finished(record) => {
                let status = match &record.error {
                    None => "ok",
                    Some(e) if e.kind == isola_protocol::ErrorKind::Suspended => "suspended",
                    Some(_) => "failed",
                };
                let rec = ExecRecord {
                    logs: Vec::new(),
                    calls: Vec::new(),
                    ..(*record).clone()
                };
                entries.push(Entry::Finished {
                    status: status.into(),
                    record: Box::new(rec),
                });
                extra.push(WriteOp::Status {
                    id: sh.id.clone(),
                    status: status.into(),
                    ended_ms: now_ms(),
                    summary: Some(summary(record)),
                });
            }
        }
        sh.write(pre, entries, extra)
    }
}

/// The short summary kept on the execution's row.
fn summary(record: &ExecRecord) -> String {
    // Calls and failed calls by server: `{"fs": [3, 1]}`.
    let mut servers = serde_json::Map::new();
    for call in &record.calls {
        let counts = servers
            .entry(call.server.clone())
            .or_insert_with(|| serde_json::json!([0, 0]));
        counts[0] = serde_json::json!(counts[0].as_u64().unwrap_or(0) + 1);
        if !call.ok {
            counts[1] = serde_json::json!(counts[1].as_u64().unwrap_or(0) + 1);
        }
    }
    serde_json::json!({
        "calls": record.calls.len(),
        "servers": servers,
        "error": record.error.as_ref().map(|e| serde_json::to_value(e.kind).unwrap_or(Value::Null)),
        "message": record.error.as_ref().map(|e| e.message.chars().take(200).collect::<String>()),
        "ms": record.timings.total_ms,
    })
    .to_string()
}

/// The write-ahead gate: a call not known to be read-only is sent only once its intent is
/// committed.
struct WriteAhead {
    shared: Arc<Shared>,
}

impl CallGate for WriteAhead {
    fn check(&self, call: &CallIntent) -> Verdict {
        if let Some(e) = self.shared.failure() {
            return Verdict::Deny(not_durable(&e));
        }
        if self.shared.is_read_only(&call.server, &call.tool) {
            return Verdict::Allow;
        }
        let queue = self.shared.journal.queue.clone();
        let wait: BoxFuture<'static, Decision> = Box::pin(async move {
            match queue.flush().await {
                Ok(()) => Decision::Allow,
                Err(e) => Decision::Deny(not_durable(&e)),
            }
        });
        Verdict::After(wait)
    }
}

fn not_durable(e: &str) -> Denial {
    Denial::new(
        "JournalError",
        format!("the call was not sent: its intent could not be recorded ({e})"),
    )
}

/// The `(server, tool)`s that say `readOnlyHint: true`.
fn read_only_set(api: &ApiState) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for ns in &api.api.namespaces {
        for f in &ns.functions {
            let ro = f
                .annotations
                .as_ref()
                .and_then(|a| a.get("readOnlyHint"))
                .and_then(Value::as_bool)
                == Some(true);
            if ro {
                out.push((ns.server.clone(), f.tool.clone()));
            }
        }
    }
    out
}

/// The API as stored: `[{"name": server, "tools": [ToolSpec]}]`, enough to build it again.
pub fn api_snapshot(api: &ApiState) -> String {
    let servers: Vec<Value> = api
        .api
        .namespaces
        .iter()
        .map(|ns| {
            let tools: Vec<Value> = ns
                .functions
                .iter()
                .filter_map(|f| {
                    serde_json::to_value(isola_typegen::ToolSpec {
                        name: f.tool.clone(),
                        title: None,
                        description: f.description.clone(),
                        input_schema: f.input_schema.clone(),
                        output_schema: f.output_schema.clone(),
                        annotations: f.annotations.clone(),
                    })
                    .ok()
                })
                .collect();
            serde_json::json!({"name": ns.server, "tools": tools})
        })
        .collect();
    Value::Array(servers).to_string()
}

/// Replaces the values of secret-looking keys.
#[derive(Clone, Debug)]
pub struct Redactor {
    patterns: Vec<String>,
}

fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

impl Redactor {
    pub fn new(patterns: &[String]) -> Self {
        Self {
            patterns: patterns
                .iter()
                .map(|p| normalize(p))
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    pub fn matches(&self, key: &str) -> bool {
        let k = normalize(key);
        self.patterns.iter().any(|p| k.ends_with(p.as_str()))
    }

    /// Could `json` hold a key to redact (a cheap test before parsing)?
    fn may_match(&self, json: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let lower = json.to_ascii_lowercase();
        self.patterns.iter().any(|p| {
            // The pattern's last few letters appear in any matching key.
            let tail: String = p
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            lower.contains(&tail)
        })
    }

    /// Redact in place; whether anything was.
    pub fn redact(&self, v: &mut Value) -> bool {
        match v {
            Value::Object(map) => {
                let mut any = false;
                for (k, item) in map.iter_mut() {
                    if self.matches(k) {
                        if *item != Value::String("[redacted]".into()) {
                            *item = Value::String("[redacted]".into());
                            any = true;
                        }
                    } else {
                        any |= self.redact(item);
                    }
                }
                any
            }
            Value::Array(items) => items.iter_mut().fold(false, |a, i| self.redact(i) | a),
            _ => false,
        }
    }
}

/// This process, as an execution's owner: `host:pid:start` (the start time tells a reused
/// pid from the same process).
fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let pid = std::process::id();
    format!("{host}:{pid}:{}", start_time(pid).unwrap_or_default())
}

/// A process's start time (clock ticks since boot), field 22 of `/proc/PID/stat`.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// How long a node ([`node_beat`]) may stay silent before the executions it owns are taken
/// for orphans by the others.
pub const NODE_TTL_MS: i64 = 30_000;
/// How often a node says it is alive: well within [`NODE_TTL_MS`].
pub const NODE_BEAT_MS: u64 = 5_000;

/// Say, in the store, that this process is alive: what lets the nodes on other machines tell,
/// once it stops saying so, that the executions it owned are orphans ([`recover`]).
pub async fn node_beat(store: &dyn Store) -> Result<(), JournalError> {
    Ok(store.node_beat(&owner(), now_ms()).await?)
}

/// Is the owner of an execution gone? A process of this host, by its pid and start time; one
/// of another host, when it is a node whose last heartbeat is older than [`NODE_TTL_MS`]. A
/// process of another host that never beat (a CLI run there) cannot be told dead from here.
async fn owner_is_gone(store: &dyn Store, owner: &str) -> Result<bool, JournalError> {
    if let Some(dead) = local_owner_is_dead(owner) {
        return Ok(dead);
    }
    let seen = store.node_seen(owner).await?;
    Ok(seen.is_some_and(|seen| now_ms() - seen > NODE_TTL_MS))
}

/// Whether a process of this host is gone; `None` for another host's (or a malformed owner).
fn local_owner_is_dead(owner: &str) -> Option<bool> {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if host != here {
        return None;
    }
    let pid = pid.parse::<u32>().ok()?;
    Some(start_time(pid).as_deref() != Some(start))
}

/// One entry as a line of the journal's export (JSON Lines, `isola journal export` and
/// `GET /v1/export`): its execution, place, kind, time, chain hashes and the entry itself.
pub fn export_line(e: &EntryRow) -> String {
    let entry: serde_json::Value = serde_json::from_str(&e.body).unwrap_or(serde_json::Value::Null);
    let mut line = serde_json::json!({
        "execution": e.exec_id,
        "seq": e.seq,
        "kind": e.kind,
        "atMs": e.at_ms,
        "prev": e.prev,
        "hash": e.hash,
        "entry": entry,
    })
    .to_string();
    line.push('\n');
    line
}

/// Parse the entries of an execution.
pub fn parse_entries(rows: &[EntryRow]) -> Result<Vec<Entry>, JournalError> {
    rows.iter()
        .map(|r| {
            serde_json::from_str(&r.body).map_err(|e| JournalError::BadEntry {
                execution: r.exec_id.clone(),
                seq: r.seq,
                problem: e.to_string(),
            })
        })
        .collect()
}

/// Mark the executions whose process died `interrupted` (an `interrupted` entry lists their
/// unknown calls), or `suspended` when they died while a call waited for a decision and no
/// other call was out (`isola resume` can go on with those). Returns their ids and new
/// statuses. Executions of live processes, or of other hosts, are left alone.
pub async fn recover(store: &dyn Store) -> Result<Vec<(String, &'static str)>, JournalError> {
    let running = store
        .executions(&ExecQuery {
            status: Some("running".into()),
            ..ExecQuery::default()
        })
        .await?;
    let mut done = Vec::new();
    for row in running {
        if !owner_is_gone(store, &row.owner).await? {
            continue;
        }
        let rows = store.entries(&row.id).await?;
        let entries = parse_entries(&rows).unwrap_or_default();
        let calls = resume::calls_of(&entries);
        let unknown = unknown_calls(&entries);
        let held: Vec<String> = calls
            .iter()
            .filter(|c| c.state == resume::CallState::Held)
            .map(|c| format!("#{} {}", c.seq + 1, c.function))
            .collect();
        // Died while a call waited for a decision, and nothing else out: nothing is lost, and
        // `isola resume` can go on from there.
        let status = if unknown.is_empty() && !held.is_empty() {
            "suspended"
        } else {
            "interrupted"
        };
        let reason = match status {
            "suspended" => format!(
                "the process running it ({}) is gone while {} waited for a decision (never sent); `isola resume {}` continues it",
                row.owner,
                held.join(", "),
                row.id
            ),
            _ => format!("the process running it ({}) is gone", row.owner),
        };
        let entry = Entry::Interrupted { reason, unknown };
        let body = serde_json::to_string(&entry).map_err(|e| JournalError::BadEntry {
            execution: row.id.clone(),
            seq: row.entries,
            problem: e.to_string(),
        })?;
        let prev = rows.last().map(|r| r.hash.clone()).unwrap_or_default();
        let seq = rows.last().map(|r| r.seq + 1).unwrap_or(0);
        let at = now_ms();
        // Another node recovering it at the same time writes the same entry: one batch wins,
        // the other fails whole (the entry's key), and this one moves on.
        let written = store
            .apply(vec![
                WriteOp::Entry(EntryRow {
                    exec_id: row.id.clone(),
                    seq,
                    kind: "interrupted".into(),
                    at_ms: at,
                    hash: chain_hash(&prev, &row.id, seq, &body),
                    body,
                    prev,
                }),
                WriteOp::Status {
                    id: row.id.clone(),
                    status: status.into(),
                    ended_ms: at,
                    summary: None,
                },
            ])
            .await;
        if let Err(e) = written {
            tracing::info!(execution = %row.id, "not marked {status} (another node did, or the store refused: {e}); the next sweep looks again");
            continue;
        }
        tracing::warn!(execution = %row.id, "marked {status}");
        done.push((row.id, status));
    }
    Ok(done)
}

/// A problem `verify` found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub execution: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    pub problem: String,
}

/// Check one execution's chain: contiguous seqs from 0, each `prev` the previous hash, each
/// hash recomputed, and the count and last hash the execution row holds.
pub fn verify_chain(row: &ExecRow, entries: &[EntryRow]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let p = |seq: Option<i64>, problem: String| Problem {
        execution: row.id.clone(),
        seq,
        problem,
    };
    let mut prev = String::new();
    for (i, e) in entries.iter().enumerate() {
        if e.seq != i as i64 {
            problems.push(p(
                Some(e.seq),
                format!("entry {i} is missing (the next is {})", e.seq),
            ));
            break;
        }
        if e.prev != prev {
            problems.push(p(Some(e.seq), "its previous hash does not match".into()));
        }
        let hash = chain_hash(&e.prev, &row.id, e.seq, &e.body);
        if hash != e.hash {
            problems.push(p(
                Some(e.seq),
                "its content does not match its hash (edited)".into(),
            ));
        }
        if serde_json::from_str::<Entry>(&e.body).is_err() {
            problems.push(p(Some(e.seq), "it is not a readable entry".into()));
        }
        prev = e.hash.clone();
    }
    if entries.len() as i64 != row.entries {
        problems.push(p(
            None,
            format!(
                "it has {} entries, the execution says {} (entries were deleted)",
                entries.len(),
                row.entries
            ),
        ));
    } else if prev != row.head {
        problems.push(p(None, "its last entry is not the one recorded".into()));
    }
    problems
}

/// Verify every execution (or those listed); the problems found.
pub async fn verify(
    store: &dyn Store,
    ids: &[String],
) -> Result<(usize, Vec<Problem>), JournalError> {
    let rows = if ids.is_empty() {
        store.executions(&ExecQuery::default()).await?
    } else {
        let mut rows = Vec::new();
        for id in ids {
            rows.push(
                store
                    .execution(id)
                    .await?
                    .ok_or_else(|| JournalError::NoExecution(id.clone()))?,
            );
        }
        rows
    };
    let mut problems = Vec::new();
    for row in &rows {
        let entries = store.entries(&row.id).await?;
        problems.extend(verify_chain(row, &entries));
    }
    Ok((rows.len(), problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_by_key_name() {
        let r = Redactor::new(&JournalConfig::default().redact);
        let mut v = serde_json::json!({
            "user": "ann", "password": "x", "db_password": "y", "accessToken": "z",
            "max_tokens": 5, "nested": [{"Authorization": "Bearer q", "ok": 1}],
            "api-key": "k"
        });
        assert!(r.redact(&mut v));
        assert_eq!(
            v,
            serde_json::json!({
                "user": "ann", "password": "[redacted]", "db_password": "[redacted]",
                "accessToken": "[redacted]", "max_tokens": 5,
                "nested": [{"Authorization": "[redacted]", "ok": 1}], "api-key": "[redacted]"
            })
        );
        let mut clean = serde_json::json!({"a": 1});
        assert!(!r.redact(&mut clean));
    }

    #[test]
    fn owners() {
        let me = owner();
        assert_eq!(local_owner_is_dead(&me), Some(false), "{me}");
        let host = me.split(':').next().unwrap_or_default();
        assert_eq!(
            local_owner_is_dead(&format!("{host}:{}:1", std::process::id())),
            Some(true)
        );
        assert_eq!(local_owner_is_dead("another-host:1:1"), None);
    }
}
