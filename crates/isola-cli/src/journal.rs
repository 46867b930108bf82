//! The journal in the CLI: which store (`--store` > `ISOLA_STORE` > `isola.store` > the
//! default SQLite file), journaling `isola exec`, and `isola journal`, `isola sessions`,
//! `isola replay`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use isola_config::Config;
use isola_engine::{Engine, ExecOptions, Tools};
use isola_journal::{Begin, Entry, Journal, JournalConfig, StateLimits, StateTools};
use isola_protocol::ExecRecord;
use isola_store::{ExecQuery, Store, StoreUrl};
use serde_json::{Value, json};

use crate::commands::{load_config, print};
use crate::error::{UserInputExt, user_input};
use crate::exit;

#[derive(Subcommand, Debug)]
pub enum JournalCommand {
    /// Executions, newest first.
    List {
        /// Only this session's.
        #[arg(long)]
        session: Option<String>,
        /// Only those started within this long (30m, 12h, 7d).
        #[arg(long, value_name = "AGE", value_parser = parse_age_ms)]
        since: Option<i64>,
        /// Only those with this status (running, ok, failed, interrupted).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One execution: its entries, its calls and, if interrupted, its unknown calls.
    Show {
        /// The execution id (or a unique start of it).
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Every entry as JSON Lines (one entry a line; format in docs/journal.md).
    Export {
        #[arg(long, value_name = "AGE", value_parser = parse_age_ms)]
        since: Option<i64>,
        #[arg(long)]
        session: Option<String>,
    },
    /// Check every execution's hash chain (or the listed ones): an edited, deleted or
    /// reordered entry is reported. Exit 1 when a problem is found.
    Verify {
        ids: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete executions that ended longer ago than AGE (7d, 12h), with their entries.
    Prune {
        #[arg(long, value_name = "AGE", value_parser = parse_age_ms)]
        older_than: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// Every session, most recently used first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One session: its executions and state keys.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a session: its state, executions and their entries.
    Rm {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The execution id (or a unique start of it).
    pub id: String,
    #[arg(long)]
    pub json: bool,
    /// Run the sandbox inside this process.
    #[arg(long)]
    pub in_process: bool,
}

/// `30s`, `30m`, `12h`, `7d` (or a bare number of seconds) in milliseconds.
pub fn parse_age_ms(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not an age (try 30m, 12h or 7d)"))?;
    let factor = match unit {
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m, h or d)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too long"))
}

/// The store the flags, environment and config name.
pub fn store_url(flag: Option<&str>, config: Option<&Config>) -> Result<StoreUrl> {
    let from_config = config.and_then(|c| c.settings.store.as_deref());
    match flag.or(from_config) {
        Some(u) => StoreUrl::parse(u).user_input(),
        None => Ok(StoreUrl::default_sqlite()),
    }
}

/// Open the store, recovering executions a crashed process left running.
async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>> {
    let store = isola_store::open(url)
        .await
        .with_context(|| format!("opening the store {}", url.display()))?;
    let recovered = isola_journal::recover(&*store).await?;
    for status in ["interrupted", "suspended"] {
        let ids: Vec<&str> = recovered
            .iter()
            .filter(|(_, s)| *s == status)
            .map(|(id, _)| id.as_str())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let what = if status == "suspended" {
            " (a call waited for a decision; `isola resume ID` goes on once it is decided)"
        } else {
            ""
        };
        eprintln!(
            "note: {} execution(s) of a process that died were marked {status}{what}: {}",
            ids.len(),
            ids.join(", ")
        );
    }
    Ok(store)
}

/// The store for the commands that read it: the config is optional (no isola.json is fine).
pub async fn store_for_reading(
    config: Option<&Path>,
    flag: Option<&str>,
) -> Result<Arc<dyn Store>> {
    let config = match config {
        Some(p) => Some(load_config(Some(p))?),
        None if Path::new(isola_config::DEFAULT_CONFIG_FILE).exists() => Some(load_config(None)?),
        None => None,
    };
    let url = store_url(flag, config.as_ref())?;
    if url == StoreUrl::None {
        return Err(user_input(anyhow::anyhow!(
            "the store is `none`: there is no journal to read\nhint: pass --store sqlite:PATH or postgres://..."
        )));
    }
    open(&url).await
}

/// `isola exec`'s journal: the store, the writer, the state tools.
pub struct Journaled {
    journal: Journal,
    session: Option<String>,
    state: std::sync::Mutex<Option<Arc<StateTools>>>,
}

impl Journaled {
    /// `None` when the store is `none` (no journal).
    pub async fn open(
        flag: Option<&str>,
        config: &Config,
        session: Option<String>,
    ) -> Result<Option<Self>> {
        let url = store_url(flag, Some(config))?;
        if url == StoreUrl::None {
            if session.is_some() {
                return Err(user_input(anyhow::anyhow!(
                    "--session needs a store, and the store is `none`\nhint: drop --store none (the default is a SQLite file)"
                )));
            }
            return Ok(None);
        }
        if let Some(s) = &session
            && (s.is_empty() || s.len() > 200 || s.chars().any(char::is_control))
        {
            return Err(user_input(anyhow::anyhow!(
                "`{}` is not a session name: 1 to 200 characters, no control characters",
                s.escape_debug()
            )));
        }
        let store = open(&url).await?;
        Ok(Some(Self {
            journal: Journal::start(store, JournalConfig::default()),
            session,
            state: std::sync::Mutex::new(None),
        }))
    }

    /// The journal itself.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Where the journal is kept (approval requests wait there too).
    pub fn store(&self) -> Arc<dyn Store> {
        self.journal.store().clone()
    }

    /// The tools of the engine: the servers', plus `state`.
    pub fn tools(&self, inner: Arc<dyn Tools>) -> Arc<dyn Tools> {
        let tools = Arc::new(StateTools::new(
            inner,
            self.journal.store().clone(),
            StateLimits::default(),
        ));
        if let Ok(mut s) = self.state.lock() {
            *s = Some(tools.clone());
        }
        tools
    }

    /// The same journal, for executions in `session`.
    pub fn in_session(mut self, session: Option<String>) -> Self {
        self.session = session;
        self
    }

    /// Journal the execution about to run; its id.
    pub fn begin(
        &self,
        engine: &Engine,
        source: &str,
        file: &str,
        options: &mut ExecOptions,
    ) -> String {
        let exec = self.journal.begin(
            Begin::new(source, "cli")
                .session(self.session.clone())
                .file(file),
            &engine.api(),
        );
        exec.attach(options);
        exec.id.clone()
    }

    /// Wait for every entry to be committed.
    pub async fn close(self) {
        self.journal.close().await;
    }
}

/// Take the suspended execution `r` over (journaled by `journal` as started by `origin`) and
/// make the options that continue it: its recording replayed, then live, governed by `governor`
/// for `principal`, the policy's counts going on from the calls it made before.
pub async fn take_over(
    journal: &Journal,
    governor: &isola_control::Governor,
    engine: &Engine,
    r: &isola_journal::Resumable,
    origin: &str,
    principal: &str,
) -> Result<ExecOptions, isola_journal::JournalError> {
    let api = engine.api();
    let mut options = ExecOptions {
        file_name: r.file.clone(),
        limits: r.limits.clone(),
        replay: Some(isola_engine::Replay {
            recording: r.recording.clone(),
            live_after: true,
        }),
        ..ExecOptions::default()
    };
    journal.resume(r, origin, &api).await?.attach(&mut options);
    let waiting: Vec<u32> = r.waiting.iter().map(|(seq, _)| *seq).collect();
    let mut counts = isola_policy::Counts::default();
    for call in r
        .recording
        .calls
        .iter()
        .filter(|c| !waiting.contains(&c.seq))
    {
        if let Some(b) = api.binding(&call.function) {
            counts.add(&call.function, isola_control::effect_of(b.effect.class));
        }
    }
    let who = crate::govern::Who {
        principal: principal.to_string(),
        session: r.session.clone(),
        purpose: None,
    };
    crate::govern::attach_in(
        governor,
        &mut options,
        &r.code,
        who,
        counts,
        isola_policy::Mode::Live,
    );
    Ok(options)
}

/// What `isola mcp` does before each `execute`: journal it (each client session, an HTTP
/// `Mcp-Session-Id` or the one stdio client of this process, is a session) and govern it.
pub struct McpHook {
    journal: Option<Journal>,
    engine: Arc<Engine>,
    governor: Arc<isola_control::Governor>,
    /// The stdio client's session: one per process.
    stdio_session: String,
}

impl McpHook {
    pub fn new(
        j: Option<&Journaled>,
        engine: Arc<Engine>,
        governor: Arc<isola_control::Governor>,
    ) -> Self {
        Self {
            journal: j.map(|j| j.journal.clone()),
            engine,
            governor,
            stdio_session: format!("mcp-{}", isola_journal::new_execution_id()),
        }
    }
}

impl McpHook {
    /// The governor of one client's execution: a client that can ask its user (elicitation)
    /// has the request decided right there, or through the store as ever.
    fn governor_for(
        &self,
        exec: &isola_server::ExecContext<'_>,
        origin: &str,
    ) -> Arc<isola_control::Governor> {
        match &exec.elicitor {
            Some(elicitor) => Arc::new(self.governor.asking(Arc::new(crate::govern::ElicitAsk {
                elicitor: elicitor.clone(),
                by: origin.to_string(),
            }))),
            None => self.governor.clone(),
        }
    }

    fn origin(exec: &isola_server::ExecContext<'_>) -> String {
        if let Some(origin) = &exec.origin {
            return origin.clone();
        }
        match &exec.client {
            Some(c) => format!("mcp:{c}"),
            None => "mcp".to_string(),
        }
    }
}

impl isola_server::ExecHook for McpHook {
    fn resumes(&self) -> bool {
        self.journal.is_some()
    }

    fn resume<'a>(
        &'a self,
        exec: &'a isola_server::ExecContext<'a>,
        execution: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<isola_server::Resumption, String>> + Send + 'a>,
    > {
        Box::pin(async move {
            let Some(journal) = &self.journal else {
                return Err("this server keeps no journal: there is nothing to resume".into());
            };
            let r = isola_journal::resumable(journal.store().as_ref(), execution)
                .await
                .map_err(|e| e.to_string())?;
            let origin = Self::origin(exec);
            let governor = self.governor_for(exec, &origin);
            let options = take_over(journal, &governor, &self.engine, &r, &origin, &origin)
                .await
                .map_err(|e| e.to_string())?;
            Ok(isola_server::Resumption {
                code: r.code,
                options,
            })
        })
    }

    fn before(&self, exec: &isola_server::ExecContext<'_>, options: &mut ExecOptions) {
        let session = match (&exec.session, &exec.http_session) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => format!("mcp-{s}"),
            (None, None) => self.stdio_session.clone(),
        };
        let origin = Self::origin(exec);
        if let Some(journal) = &self.journal {
            let mut begin = Begin::new(exec.code, &origin)
                .session(Some(session.clone()))
                .file("script.ts");
            begin.execution = exec.execution.clone();
            journal.begin(begin, &self.engine.api()).attach(options);
        }
        let governor = self.governor_for(exec, &origin);
        crate::govern::attach(&governor, options, exec.code, &origin, Some(session));
    }
}

/// What an agent run (`isola run`, or one `isola chat`) does before each script: journal it (the
/// run's executions are a session of their own, origin `agent`) and govern it.
pub struct AgentHook {
    journal: Option<Journal>,
    engine: Arc<Engine>,
    governor: Arc<isola_control::Governor>,
    session: String,
    /// Plan mode: how long a plan is good for (`approvals.timeoutMs`).
    plan_ttl_ms: Option<u64>,
    /// Who the policy and approvers see: `agent:<user>`, or `agent:http:<token>` for a run
    /// through `isola serve`.
    principal: String,
    /// What the current scripts are for: the run and its prompt (shown to approvers).
    purpose: std::sync::Mutex<Option<String>>,
    /// The type check of the agent's scripts; `None`: the engine's.
    check: Option<isola_protocol::CheckMode>,
}

impl AgentHook {
    /// `kind` starts the session's name (`run-…`, `chat-…`).
    pub fn new(
        journal: Option<Journal>,
        engine: Arc<Engine>,
        governor: Arc<isola_control::Governor>,
        kind: &str,
    ) -> Self {
        Self {
            journal,
            engine,
            governor,
            session: format!("{kind}-{}", isola_journal::new_execution_id()),
            plan_ttl_ms: None,
            principal: format!("agent:{}", crate::govern::user()),
            purpose: std::sync::Mutex::new(None),
            check: None,
        }
    }

    /// Type-check the scripts as `mode` says, whatever the engine's own mode (an engine that
    /// serves `/mcp` too).
    pub fn checking(mut self, mode: isola_protocol::CheckMode) -> Self {
        self.check = Some(mode);
        self
    }

    /// The run is on behalf of `who` (`http:<token>`): the principal is `agent:<who>`.
    pub fn on_behalf_of(mut self, who: &str) -> Self {
        self.principal = format!("agent:{who}");
        self
    }

    /// Run every script as a plan first (see [`crate::plan::agent_step`]); plans are good for
    /// `ttl_ms`. Needs the journal.
    pub fn planning(mut self, ttl_ms: u64) -> Self {
        self.plan_ttl_ms = Some(ttl_ms);
        self
    }

    fn who(&self) -> crate::govern::Who {
        crate::govern::Who {
            principal: self.principal.clone(),
            session: Some(self.session.clone()),
            purpose: self
                .purpose
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

impl isola_agent::ExecHook for AgentHook {
    fn prompt(&self, prompt: &str) {
        let purpose = format!("agent run {}: {prompt}", self.session);
        *self
            .purpose
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(purpose);
    }

    fn execute<'a>(
        &'a self,
        code: &'a str,
    ) -> Option<
        std::pin::Pin<Box<dyn std::future::Future<Output = isola_agent::Executed> + Send + 'a>>,
    > {
        let ttl_ms = self.plan_ttl_ms?;
        let journal = self.journal.as_ref()?;
        Some(Box::pin(async move {
            let who = self.who();
            let planning = crate::plan::Planning {
                journal,
                governor: &self.governor,
                engine: &self.engine,
                session: who.session,
                principal: who.principal,
                purpose: who.purpose,
                ttl_ms,
            };
            crate::plan::agent_step(&planning, code).await
        }))
    }

    fn before(&self, code: &str, options: &mut ExecOptions) {
        options.check = options.check.or(self.check);
        if let Some(journal) = &self.journal {
            let begin = Begin::new(code, "agent")
                .session(Some(self.session.clone()))
                .file("script.ts");
            journal.begin(begin, &self.engine.api()).attach(options);
        }
        crate::govern::attach_in(
            &self.governor,
            options,
            code,
            self.who(),
            isola_policy::Counts::default(),
            isola_policy::Mode::Live,
        );
    }
}

/// The record as JSON, with `execution` (its journal id) first.
pub fn with_execution_id(record: &ExecRecord, id: Option<&str>) -> Result<Value> {
    let value = serde_json::to_value(record)?;
    let Some(id) = id else {
        return Ok(value);
    };
    let mut out = serde_json::Map::new();
    out.insert("execution".into(), json!(id));
    if let Value::Object(m) = value {
        out.extend(m);
    }
    Ok(Value::Object(out))
}

fn exec_json(row: &isola_store::ExecRow, entries: &[Entry]) -> Value {
    let calls: Vec<Value> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Call {
                seq,
                function,
                read_only,
                ..
            } => {
                // The last outcome: a call not sent before a suspension has a second after it.
                let outcome = entries.iter().rev().find_map(|o| match o {
                    Entry::Outcome { seq: s, ok, error, duration_ms, .. } if s == seq => {
                        Some((*ok, error.clone(), *duration_ms))
                    }
                    _ => None,
                });
                Some(json!({
                    "seq": seq,
                    "function": function,
                    "readOnly": read_only,
                    "status": match &outcome { Some((true, _, _)) => "ok", Some((false, _, _)) => "failed", None => "unknown" },
                    "error": outcome.as_ref().and_then(|o| o.1.clone()),
                    "durationMs": outcome.map(|o| o.2),
                }))
            }
            _ => None,
        })
        .collect();
    json!({
        "id": row.id,
        "session": row.session,
        "origin": row.origin,
        "status": row.status,
        "startedMs": row.started_ms,
        "endedMs": row.ended_ms,
        "codeHash": row.code_hash,
        "entries": row.entries,
        "summary": row.summary.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()),
        "calls": calls,
    })
}

fn when(ms: i64) -> String {
    let ago = (isola_journal::now_ms() - ms).max(0) / 1000;
    match ago {
        0..60 => format!("{ago}s ago"),
        60..3600 => format!("{}m ago", ago / 60),
        3600..86400 => format!("{}h ago", ago / 3600),
        _ => format!("{}d ago", ago / 86400),
    }
}

/// Text of untrusted origin (ids and names from the store) made safe for a terminal.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub async fn journal(
    config: Option<&Path>,
    flag: Option<&str>,
    command: JournalCommand,
) -> Result<ExitCode> {
    let store = store_for_reading(config, flag).await?;
    match command {
        JournalCommand::List {
            session,
            since,
            status,
            limit,
            json,
        } => {
            let rows = store
                .executions(&ExecQuery {
                    session,
                    since_ms: since.map(|s| isola_journal::now_ms() - s),
                    status,
                    limit: Some(limit),
                })
                .await?;
            if json {
                let mut out = Vec::new();
                for row in &rows {
                    let entries = isola_journal::parse_entries(&store.entries(&row.id).await?)?;
                    out.push(exec_json(row, &entries));
                }
                print(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
            } else {
                let mut text = String::new();
                for r in &rows {
                    let calls = r
                        .summary
                        .as_deref()
                        .and_then(|s| serde_json::from_str::<Value>(s).ok())
                        .and_then(|v| v.get("calls").and_then(Value::as_u64));
                    text.push_str(&format!(
                        "{}  {:<11}  {:<12}  {:<10}  {:>8}  {}\n",
                        clean(&r.id),
                        r.status,
                        clean(r.session.as_deref().unwrap_or("-")),
                        clean(&r.origin),
                        when(r.started_ms),
                        calls.map_or(String::new(), |c| format!("{c} calls")),
                    ));
                }
                if rows.is_empty() {
                    text.push_str("no executions\n");
                }
                print(&text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalCommand::Show { id, json } => {
            let row = store
                .execution(&id)
                .await
                .user_input()?
                .ok_or_else(|| user_input(isola_journal::JournalError::NoExecution(id)))?;
            let rows = store.entries(&row.id).await?;
            let entries = isola_journal::parse_entries(&rows)?;
            let unknown = if row.status == "interrupted" {
                isola_journal::unknown_calls(&entries)
            } else {
                Vec::new()
            };
            if json {
                let mut v = exec_json(&row, &entries);
                v["unknown"] = serde_json::to_value(&unknown)?;
                v["journal"] = Value::Array(
                    rows.iter()
                        .zip(&entries)
                        .map(|(r, e)| json!({"seq": r.seq, "atMs": r.at_ms, "hash": r.hash, "entry": e}))
                        .collect(),
                );
                print(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
            } else {
                let mut text = format!(
                    "execution {}  {}  session {}  origin {}  {}\n",
                    clean(&row.id),
                    row.status,
                    clean(row.session.as_deref().unwrap_or("-")),
                    clean(&row.origin),
                    when(row.started_ms)
                );
                for (r, e) in rows.iter().zip(&entries) {
                    let line = match e {
                        Entry::Started { code_hash, .. } => format!("started {code_hash}"),
                        Entry::Call {
                            seq,
                            function,
                            arguments,
                            read_only,
                            ..
                        } => format!(
                            "call #{} {function}({}){}",
                            seq + 1,
                            arguments,
                            if *read_only { " [read-only]" } else { "" }
                        ),
                        Entry::Outcome {
                            seq,
                            ok,
                            error,
                            duration_ms,
                            ..
                        } => format!(
                            "outcome #{} {} {:.1} ms{}",
                            seq + 1,
                            if *ok { "ok" } else { "failed" },
                            duration_ms,
                            error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                        ),
                        Entry::Input { t, id, now_ms, .. } => {
                            format!("input {t} id {id} at {now_ms}")
                        }
                        Entry::Gate {
                            id,
                            decision,
                            reason,
                        } => format!(
                            "gate id {id} {decision}{}",
                            reason
                                .as_ref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        ),
                        Entry::Log { level, text, .. } => format!("log {level:?}: {text}"),
                        Entry::Finished { status, record } => format!(
                            "finished {status}: {}",
                            match &record.error {
                                Some(e) => e.message.clone(),
                                None => record.result.to_string(),
                            }
                        ),
                        Entry::Interrupted { reason, unknown } => {
                            format!("interrupted: {reason}; {} unknown call(s)", unknown.len())
                        }
                        Entry::Resumed {
                            origin,
                            replayed,
                            waiting,
                        } => format!(
                            "resumed by {origin}: {replayed} answer(s) replayed from the journal, call(s) {} sent through the gates again",
                            waiting
                                .iter()
                                .map(|s| format!("#{}", s + 1))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    let line = crate::render::shorten(&clean(&line), 300);
                    text.push_str(&format!("{:>4}  {line}\n", r.seq));
                }
                for u in &unknown {
                    text.push_str(&format!(
                        "unknown: call #{} {} (idempotency key {}) may or may not have happened\n",
                        u.seq + 1,
                        clean(&u.function),
                        clean(&u.idempotency_key)
                    ));
                }
                print(&text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalCommand::Export { since, session } => {
            let rows = store
                .executions(&ExecQuery {
                    session,
                    since_ms: since.map(|s| isola_journal::now_ms() - s),
                    ..ExecQuery::default()
                })
                .await?;
            // Oldest first, as they happened.
            for row in rows.iter().rev() {
                let text: String = store
                    .entries(&row.id)
                    .await?
                    .iter()
                    .map(isola_journal::export_line)
                    .collect();
                print(&text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalCommand::Verify { ids, json } => {
            let (n, problems) = isola_journal::verify(&*store, &ids).await.user_input()?;
            if json {
                print(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(
                        &json!({"executions": n, "ok": problems.is_empty(), "problems": problems})
                    )?
                ))?;
            } else if problems.is_empty() {
                print(&format!(
                    "{n} execution(s) verified: every chain is intact\n"
                ))?;
            } else {
                let mut text = String::new();
                for p in &problems {
                    text.push_str(&format!(
                        "execution {}{}: {}\n",
                        clean(&p.execution),
                        p.seq.map(|s| format!(" entry {s}")).unwrap_or_default(),
                        p.problem
                    ));
                }
                text.push_str(&format!(
                    "{} problem(s) in {n} execution(s)\n",
                    problems.len()
                ));
                print(&text)?;
            }
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::SCRIPT_FAILED)
            })
        }
        JournalCommand::Prune { older_than, json } => {
            let n = store.prune(isola_journal::now_ms() - older_than).await?;
            if json {
                print(&format!("{}\n", json!({"deleted": n})))?;
            } else {
                print(&format!("{n} execution(s) deleted\n"))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn session_json(s: &isola_store::SessionRow) -> Value {
    json!({
        "name": s.name,
        "createdMs": s.created_ms,
        "lastMs": s.last_ms,
        "executions": s.executions,
        "stateKeys": s.state_keys,
        "stateBytes": s.state_bytes,
    })
}

pub async fn sessions(
    config: Option<&Path>,
    flag: Option<&str>,
    command: SessionsCommand,
) -> Result<ExitCode> {
    let store = store_for_reading(config, flag).await?;
    match command {
        SessionsCommand::List { json } => {
            let rows = store.sessions().await?;
            if json {
                let v: Vec<Value> = rows.iter().map(session_json).collect();
                print(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
            } else {
                let mut text = String::new();
                for s in &rows {
                    text.push_str(&format!(
                        "{:<20}  {:>4} executions  {:>4} keys  {:>8} bytes  used {}\n",
                        clean(&s.name),
                        s.executions,
                        s.state_keys,
                        s.state_bytes,
                        when(s.last_ms)
                    ));
                }
                if rows.is_empty() {
                    text.push_str("no sessions\n");
                }
                print(&text)?;
            }
        }
        SessionsCommand::Show { name, json } => {
            let s = store.session(&name).await?.ok_or_else(|| {
                user_input(anyhow::anyhow!(
                    "no session `{}`\nhint: `isola sessions list` shows them",
                    clean(&name)
                ))
            })?;
            let state = store.state_list(&name, "").await?;
            let execs = store
                .executions(&ExecQuery {
                    session: Some(name.clone()),
                    ..ExecQuery::default()
                })
                .await?;
            if json {
                let mut v = session_json(&s);
                v["state"] = state
                    .iter()
                    .map(|i| {
                        json!({"key": i.key, "version": i.version, "updatedMs": i.updated_ms,
                               "value": serde_json::from_str::<Value>(&i.value).unwrap_or(Value::Null)})
                    })
                    .collect();
                v["executionIds"] = execs.iter().map(|e| json!(e.id)).collect();
                print(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
            } else {
                let mut text = format!(
                    "session {}: {} executions, {} keys ({} bytes)\n",
                    clean(&s.name),
                    s.executions,
                    s.state_keys,
                    s.state_bytes
                );
                for i in &state {
                    let v = crate::render::shorten(&clean(&i.value), 120);
                    text.push_str(&format!("  {} (v{}) = {v}\n", clean(&i.key), i.version));
                }
                for e in &execs {
                    text.push_str(&format!("  execution {} {}\n", clean(&e.id), e.status));
                }
                print(&text)?;
            }
        }
        SessionsCommand::Rm { name, json } => {
            let existed = store.delete_session(&name).await?;
            if json {
                print(&format!("{}\n", json!({"deleted": existed})))?;
            } else if existed {
                print(&format!("session {} deleted\n", clean(&name)))?;
            } else {
                return Err(user_input(anyhow::anyhow!("no session `{}`", clean(&name))));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A journal error for the user: what they asked about is wrong (exit 2), unless the store
/// itself failed.
pub fn journal_error(e: isola_journal::JournalError) -> anyhow::Error {
    match e {
        isola_journal::JournalError::Store(_) => anyhow::Error::from(e),
        other => user_input(other),
    }
}

pub async fn replay(
    config: Option<&Path>,
    flag: Option<&str>,
    args: ReplayArgs,
) -> Result<ExitCode> {
    let store = store_for_reading(config, flag).await?;
    let cfg = match config {
        Some(p) => load_config(Some(p))?,
        None if Path::new(isola_config::DEFAULT_CONFIG_FILE).exists() => load_config(None)?,
        None => isola_config::parse_config("{}", Path::new("isola.json"))?,
    };
    let backend = crate::commands::backend(&cfg, args.in_process)?;
    let replayed = isola_journal::replay(&*store, &args.id, backend)
        .await
        .map_err(journal_error)?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&replayed)?))?;
    } else {
        let mut text = match replayed.outcome.as_str() {
            "same" => format!(
                "same: execution {} replayed with {} recorded call(s) in {:.1} ms, no tool called; the result is the recorded one\n",
                replayed.execution, replayed.calls, replayed.replay_ms
            ),
            other => format!(
                "{other}: execution {}: {}\n",
                replayed.execution,
                replayed.difference.as_deref().unwrap_or("")
            ),
        };
        for w in &replayed.warnings {
            text.push_str(&format!("warning: {w}\n"));
        }
        print(&clean_lines(&text))?;
    }
    Ok(if replayed.outcome == "same" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::SCRIPT_FAILED)
    })
}

fn clean_lines(s: &str) -> String {
    s.lines().map(clean).collect::<Vec<_>>().join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age_ms("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_age_ms("30m"), Ok(1_800_000));
        assert_eq!(parse_age_ms("10"), Ok(10_000));
        assert!(parse_age_ms("2w").unwrap_err().contains("unknown unit"));
        assert!(parse_age_ms("x").is_err());
    }
}
