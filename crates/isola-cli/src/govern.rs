//! Governance in the front-ends: the policy every call passes, approvals asked at the terminal
//! or decided with `isola approvals`, and the `isola policy` and `isola approvals` commands.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Subcommand;
use isola_config::Config;
use isola_control::BoxFuture;
use isola_control::{Answer, Ask, ExecInfo, Governor, Request};
use isola_engine::ExecOptions;
use isola_policy::{Mode, Outcome, Policy};
use isola_store::{ApprovalQuery, ApprovalRow, Store};
use serde_json::{Value, json};

use crate::commands::{load_config, print};
use crate::error::user_input;
use crate::term::neutralize;

/// The policy of `config` (its files, or the built-in default), checked now: a policy that does
/// not load is an error before anything runs.
pub fn load_policy(config: &Config) -> Result<Policy> {
    let p = &config.settings.policy;
    let policy = if p.files.is_empty() {
        Policy::builtin()
    } else {
        Policy::load(&p.files, p.data.clone()).map_err(|e| {
            user_input(anyhow!(
                "{e}\nhint: fix the policy, or check it with `isola policy test`"
            ))
        })?
    };
    Ok(policy.with_time_limit(Duration::from_millis(p.time_limit_ms)))
}

/// The longest an `isola mcp` client's `execute` waits for a decision before the execution is
/// suspended (and the client told how to resume it): clients give up on a tool call after a
/// minute or two.
pub const MCP_SUSPEND_AFTER: Duration = Duration::from_secs(30);

/// The governor of a front-end: the config's policy, `store` to wait for decisions in, and with
/// `terminal` the person at this terminal to ask.
pub fn governor(
    config: &Config,
    store: Option<Arc<dyn Store>>,
    terminal: bool,
) -> Result<Arc<Governor>> {
    governor_within(config, store, terminal, None)
}

/// [`governor`] that suspends a waiting execution after `most` at the latest.
pub fn governor_within(
    config: &Config,
    store: Option<Arc<dyn Store>>,
    terminal: bool,
    most: Option<Duration>,
) -> Result<Arc<Governor>> {
    let timeout = Duration::from_millis(config.settings.approvals.timeout_ms);
    let configured = Duration::from_millis(config.settings.approvals.suspend_after_ms);
    let suspend_after = most.map_or(configured, |m| m.min(configured));
    let mut governor = Governor::new(Arc::new(load_policy(config)?), store, timeout)
        .with_suspend_after(suspend_after)
        .with_notice(Arc::new(|r: &Request| {
            eprintln!(
                "{}",
                neutralize(&format!(
                    "isola: {} waits for approval {}: {}\n  decide: isola approvals show {id} | approve {id} | deny {id} --reason TEXT",
                    r.function,
                    r.id,
                    r.reasons.join("; "),
                    id = r.id
                ))
            );
        }));
    if terminal && let Some(ask) = TerminalAsk::open() {
        governor = governor.with_ask(Arc::new(ask));
    }
    Ok(Arc::new(governor))
}

/// Whether this process may ask its user: a terminal on stderr and one to read answers from.
pub fn on_terminal() -> bool {
    std::io::stderr().is_terminal() && std::fs::File::open("/dev/tty").is_ok()
}

/// The user running Isola, for principals and decisions: `$USER`, else `$LOGNAME`, else the
/// user id.
pub fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty() && u.len() <= 64 && !u.chars().any(char::is_control))
        .unwrap_or_else(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map_or_else(|_| "unknown".into(), |m| format!("uid {}", m.uid()))
        })
}

/// Put the governor's gate first among the execution's gates (after the journal attached
/// itself: the id and session are the journal's). Without a journal the execution gets an id
/// of its own, for the approval requests.
pub fn attach(
    governor: &Governor,
    options: &mut ExecOptions,
    code: &str,
    principal: &str,
    session: Option<String>,
) {
    let who = Who {
        principal: principal.to_string(),
        session,
        purpose: None,
    };
    attach_in(
        governor,
        options,
        code,
        who,
        isola_policy::Counts::default(),
        Mode::Live,
    );
}

/// Who an execution runs for, as policies and approvers see it.
pub struct Who {
    /// `cli:ada`, `mcp:<client>`, `agent:ada`.
    pub principal: String,
    pub session: Option<String>,
    /// What it is for, shown to whoever approves (an agent run and its prompt).
    pub purpose: Option<String>,
}

/// [`attach`] for an execution in `mode` that made `counts` calls already (a resumed one).
pub fn attach_in(
    governor: &Governor,
    options: &mut ExecOptions,
    code: &str,
    who: Who,
    counts: isola_policy::Counts,
    mode: Mode,
) {
    let id = options
        .execution_id
        .clone()
        .unwrap_or_else(isola_journal::new_execution_id);
    let exec = ExecInfo {
        id,
        session: options.session.clone().or(who.session),
        principal: who.principal,
        mode,
        code: code.to_string(),
        file: options.file_name.clone(),
        // Journaled executions can be suspended and resumed.
        resumable: options.execution_id.is_some(),
        purpose: who.purpose,
    };
    options
        .gates
        .insert_first(governor.gate_after(exec, counts));
}

/// The person at this terminal, asked on `/dev/tty` (so a script read from standard input does
/// not get in the way), one request at a time.
struct TerminalAsk {
    by: String,
    one_at_a_time: Arc<std::sync::Mutex<()>>,
}

impl TerminalAsk {
    fn open() -> Option<Self> {
        on_terminal().then(|| Self {
            by: format!("{} (terminal)", user()),
            one_at_a_time: Arc::new(std::sync::Mutex::new(())),
        })
    }
}

impl Ask for TerminalAsk {
    fn ask(&self, request: &Request) -> BoxFuture<'static, Option<Answer>> {
        let (shown, by, lock) = (
            describe_request(request),
            self.by.clone(),
            self.one_at_a_time.clone(),
        );
        on_own_thread("isola-approval-prompt", move || {
            let _one = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ask_on_tty(
                &shown,
                "approve? [y]es, [a]lways in this session, [n]o (optionally: n REASON): ",
                "answer y, a or n",
                |word, note| match word {
                    "y" | "yes" => Some(Answer::Approve { by: by.clone() }),
                    "a" | "always" => Some(Answer::ApproveSession { by: by.clone() }),
                    "n" | "no" => Some(Answer::Deny {
                        by: by.clone(),
                        note,
                    }),
                    _ => None,
                },
            )
        })
    }
}

/// Run `ask` on a thread of its own, not tokio's blocking pool: when the question is decided
/// elsewhere the read goes on waiting, and the runtime would wait for it at exit; a detached
/// thread ends with the process.
fn on_own_thread<T: Send + 'static>(
    name: &str,
    ask: impl FnOnce() -> std::io::Result<Option<T>> + Send + 'static,
) -> BoxFuture<'static, Option<T>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(ask().ok().flatten());
        });
    Box::pin(async move {
        match spawned {
            Ok(_) => rx.await.ok().flatten(),
            Err(_) => None,
        }
    })
}

/// Show `shown` on `/dev/tty` and ask `question` until `answer` takes the reply (its first
/// word, lower-cased, and the rest as an optional note); `None` when the terminal closes.
fn ask_on_tty<T>(
    shown: &str,
    question: &str,
    hint: &str,
    answer: impl Fn(&str, Option<String>) -> Option<T>,
) -> std::io::Result<Option<T>> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let mut out = tty.try_clone()?;
    let mut lines = std::io::BufReader::new(tty);
    write!(out, "{shown}")?;
    loop {
        write!(out, "{question}")?;
        out.flush()?;
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim();
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let note = (!rest.trim().is_empty()).then(|| rest.trim().to_string());
        match answer(&word.to_ascii_lowercase(), note) {
            Some(a) => return Ok(Some(a)),
            None => writeln!(out, "{hint}")?,
        }
    }
}

/// Ask the person at this terminal whether to apply the plan `shown`; `None`: no answer (the
/// terminal closed). Approve is `(true, None)`, deny `(false, reason)`. A decision made
/// elsewhere leaves the question behind.
pub fn ask_plan_on_terminal(shown: String) -> BoxFuture<'static, Option<(bool, Option<String>)>> {
    on_own_thread("isola-plan-prompt", move || {
        ask_on_tty(
            &shown,
            "apply this plan? [y]es, [n]o (optionally: n REASON): ",
            "answer y or n",
            |word, note| match word {
                "y" | "yes" => Some((true, None)),
                "n" | "no" => Some((false, note)),
                _ => None,
            },
        )
    })
}

/// Asks an MCP host's user through elicitation (`isola mcp`, a client that supports it); no
/// answer (the form dismissed, or refused by the client) leaves the request waiting in the store.
pub struct ElicitAsk {
    pub elicitor: isola_server::Elicitor,
    /// Who decides, as the approval records it (`mcp:<client>`).
    pub by: String,
}

impl Ask for ElicitAsk {
    fn ask(&self, request: &Request) -> BoxFuture<'static, Option<Answer>> {
        let (elicitor, by) = (self.elicitor.clone(), self.by.clone());
        let message = describe_request(request);
        Box::pin(async move {
            match elicitor.approve(message.trim().to_string()).await? {
                isola_server::Elicited::Approve => Some(Answer::Approve { by }),
                isola_server::Elicited::Deny { reason } => Some(Answer::Deny { by, note: reason }),
            }
        })
    }
}

/// `text` on one line, at most `max` bytes.
fn cut_line(text: &str, max: usize) -> String {
    crate::render::shorten(&text.replace(['\n', '\r'], " "), max)
}

/// What a person deciding is shown: the call, why, and the script.
fn describe_request(r: &Request) -> String {
    let arguments = shown_arguments(&r.arguments, &r.id);
    let mut s = format!(
        "\nisola: approval {} needed: {}\n  call       {} (tool `{}` of server `{}`), effect {}\n  arguments  {}\n  by         {}  execution {}{}\n",
        r.id,
        r.reasons.join("; "),
        r.function,
        r.tool,
        r.server,
        r.effect.as_str(),
        arguments.replace('\n', "\n             "),
        r.principal,
        r.execution,
        r.session
            .as_ref()
            .map(|s| format!("  session {s}"))
            .unwrap_or_default(),
    );
    if let Some(purpose) = &r.purpose {
        s.push_str(&format!("  for        {}\n", cut_line(purpose, 300)));
    }
    s.push_str(&script_excerpt(&r.code, &r.function, &r.file));
    s.push_str(&format!(
        "  (or elsewhere: isola approvals approve {0} | isola approvals deny {0} --reason TEXT)\n",
        r.id
    ));
    neutralize(&s).into_owned()
}

/// The arguments, pretty, cut at 4 KiB (a script can pass megabytes: the screen shows the start,
/// `isola approvals show ID --json` the whole).
fn shown_arguments(arguments: &Value, id: &str) -> String {
    const MAX: usize = 4096;
    let text = serde_json::to_string_pretty(arguments).unwrap_or_default();
    if text.len() <= MAX {
        return text;
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n… {} more bytes (all of it: isola approvals show {id} --json)",
        &text[..cut],
        text.len() - cut
    )
}

/// The script with the lines that call `function` marked `>` (at most 30 lines, around the
/// first such line).
fn script_excerpt(code: &str, function: &str, file: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let calls = |l: &str| l.contains(&format!("{function}("));
    let first = lines.iter().position(|l| calls(l)).unwrap_or(0);
    let start = first.saturating_sub(10);
    let end = (start + 30).min(lines.len());
    let mut s = format!("  script     {file}\n");
    for (i, line) in lines.iter().enumerate().take(end).skip(start) {
        let mark = if calls(line) { '>' } else { ' ' };
        s.push_str(&format!("  {mark} {:>4} | {line}\n", i + 1));
    }
    if end < lines.len() {
        s.push_str(&format!("         … {} more lines\n", lines.len() - end));
    }
    s
}

/// `isola policy`.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Decide one input with the configured policy and print the decision and the rules that
    /// fired. The input is the JSON a policy reads: {"call": ..., "execution": ..., "counts":
    /// ...} for a call, {"plan": ..., "execution": ...} for a plan.
    Check {
        /// The input file (JSON), or - for standard input.
        #[arg(long, value_name = "FILE.json")]
        input: PathBuf,
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the policy's tests: every `test_*` rule of the policy files and of `*_test.rego`
    /// files beside them (or of the files given).
    Test {
        /// Test files or directories [default: the policy files' directories].
        paths: Vec<PathBuf>,
    },
    /// Print the built-in default policy (used when `isola.policy.files` is empty).
    Default,
}

pub async fn policy(config_path: Option<&Path>, command: PolicyCommand) -> Result<ExitCode> {
    match command {
        PolicyCommand::Default => {
            print(isola_policy::DEFAULT_POLICY)?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { input, json } => {
            let config = load_config(config_path)?;
            let policy = load_policy(&config)?;
            let text = if input == Path::new("-") {
                std::io::read_to_string(std::io::stdin()).context("reading the input")?
            } else {
                std::fs::read_to_string(&input)
                    .with_context(|| format!("cannot read {}", input.display()))
                    .map_err(user_input)?
            };
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| user_input(anyhow!("{}: not JSON: {e}", input.display())))?;
            let decision = policy.decide(&value);
            if json {
                print(&format!("{}\n", serde_json::to_string_pretty(&decision)?))?;
            } else {
                let mut s = format!("{}\n", decision.outcome.as_str());
                for reason in &decision.reasons {
                    s.push_str(&format!("  reason: {reason}\n"));
                }
                for fired in &decision.fired {
                    s.push_str(&format!(
                        "  fired: {}{}\n",
                        fired.rule.as_str(),
                        fired
                            .message
                            .as_ref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ));
                }
                let sources = policy.sources().join(", ");
                s.push_str(&format!("  policy: {sources}\n"));
                print(&neutralize(&s))?;
            }
            Ok(match decision.outcome {
                Outcome::Allow => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            })
        }
        PolicyCommand::Test { paths } => {
            let config = load_config(config_path)?;
            let p = &config.settings.policy;
            let roots: Vec<PathBuf> = if paths.is_empty() {
                let mut dirs: Vec<PathBuf> = p
                    .files
                    .iter()
                    .filter_map(|f| f.parent().map(Path::to_path_buf))
                    .collect();
                dirs.dedup();
                dirs
            } else {
                paths
            };
            let mut files = p.files.clone();
            for root in &roots {
                collect_rego(root, &mut files)?;
            }
            files.sort();
            files.dedup();
            if files.is_empty() {
                return Err(user_input(anyhow!(
                    "no policy files to test\nhint: name them in isola.policy.files, or pass test files"
                )));
            }
            let report = isola_policy::run_tests(&files, p.data.clone())
                .map_err(|e| user_input(anyhow!("{e}")))?;
            let mut s = String::new();
            for t in &report.tests {
                let verdict = if t.passed { "PASS" } else { "FAIL" };
                s.push_str(&format!("{verdict}  {}.{}", t.package, t.name));
                if let Some(e) = &t.error {
                    s.push_str(&format!("  ({e})"));
                }
                s.push('\n');
            }
            s.push_str(&format!(
                "{} passed, {} failed\n",
                report.passed(),
                report.failed()
            ));
            print(&neutralize(&s))?;
            Ok(if report.all_passed() && !report.tests.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// The `.rego` files under `root` (or `root` itself).
fn collect_rego(root: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if root.is_file() {
        out.push(root.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(root)
        .with_context(|| format!("cannot read {}", root.display()))
        .map_err(user_input)?;
    for entry in entries.flatten() {
        let path = entry.path();
        // Not following symbolic links: a link back up the tree would never end.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_rego(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rego") {
            out.push(path);
        }
    }
    Ok(())
}

/// `isola approvals`.
#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// Requests waiting for a decision (with --all, decided ones too), newest first.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One request: the call, its arguments, why, the script.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve a request: the waiting call is sent.
    Approve {
        id: String,
        /// Also approve every later call of the same function in the request's session.
        #[arg(long)]
        session: bool,
        /// Why (kept with the decision).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Deny a request: the script's `await` throws ApprovalDenied with the reason.
    Deny {
        id: String,
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

pub async fn approvals(
    config_path: Option<&Path>,
    store_flag: Option<&str>,
    command: ApprovalsCommand,
) -> Result<ExitCode> {
    let store = crate::journal::store_for_reading(config_path, store_flag).await?;
    let now = isola_control::approval::now_ms();
    match command {
        ApprovalsCommand::List { all, json } => {
            let query = ApprovalQuery {
                status: (!all).then(|| "pending".to_string()),
                ..ApprovalQuery::default()
            };
            let rows = store.approvals(&query, now).await?;
            if json {
                let list: Vec<Value> = rows.iter().map(row_json).collect();
                print(&format!("{}\n", serde_json::to_string_pretty(&list)?))?;
            } else if rows.is_empty() {
                print(if all {
                    "no approval requests\n"
                } else {
                    "no approval requests waiting (isola approvals list --all shows decided ones)\n"
                })?;
            } else {
                let mut s = String::new();
                for r in &rows {
                    let subject = subject_of(r);
                    let (what, effect) = if r.kind == "plan" {
                        let steps = subject["steps"].as_array().map_or(0, Vec::len);
                        ("plan".to_string(), format!("{steps} change(s)"))
                    } else {
                        (
                            subject["function"].as_str().unwrap_or("?").to_string(),
                            subject["effect"].as_str().unwrap_or("?").to_string(),
                        )
                    };
                    s.push_str(&format!(
                        "{}  {}  {what}  {effect}  {}\n",
                        r.id,
                        r.status,
                        reasons_of(r).join("; ")
                    ));
                }
                print(&neutralize(&s))?;
            }
        }
        ApprovalsCommand::Show { id, json } => {
            let row = store.approval(&id, now).await?.ok_or_else(|| {
                user_input(anyhow!(
                    "there is no approval `{id}`\nhint: isola approvals list --all"
                ))
            })?;
            if json {
                print(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&row_json(&row))?
                ))?;
            } else if row.kind == "plan" {
                print(&crate::plan::plan_text(&row))?;
            } else {
                print(&show_text(&row))?;
            }
        }
        ApprovalsCommand::Approve {
            id,
            session,
            reason,
        } => {
            let by = user();
            if session
                && let Some(row) = store.approval(&id, now).await?
                && row.kind == "plan"
            {
                return Err(user_input(anyhow!(
                    "{id} is a plan: --session grants a function's later calls, and a plan is approved alone\nhint: drop --session"
                )));
            }
            let row = store
                .approval_decide(&id, true, &by, reason.as_deref(), now)
                .await
                .map_err(user_input)?;
            let function = function_of(&row);
            if session {
                let Some(name) = &row.session else {
                    return Err(user_input(anyhow!(
                        "approved {id}, but its execution has no session to grant the rest of\nhint: drop --session"
                    )));
                };
                let grant = isola_control::approval::session_grant(
                    name,
                    &function,
                    &by,
                    reason.clone(),
                    now,
                );
                store.grant_create(&grant).await?;
                eprintln!("isola: every later {function} call in session {name} is approved too");
            }
            print(&neutralize(&format!("approved {id} ({function})\n")))?;
        }
        ApprovalsCommand::Deny { id, reason } => {
            let row = store
                .approval_decide(&id, false, &user(), reason.as_deref(), now)
                .await
                .map_err(user_input)?;
            print(&neutralize(&format!(
                "denied {id} ({})\n",
                function_of(&row)
            )))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a request is about (its `subject` JSON; `null` if unreadable).
fn subject_of(row: &ApprovalRow) -> Value {
    serde_json::from_str(&row.subject).unwrap_or(Value::Null)
}

/// The function a request is about (`plan` for a plan).
fn function_of(row: &ApprovalRow) -> String {
    if row.kind == "plan" {
        return "plan".into();
    }
    subject_of(row)["function"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

fn reasons_of(row: &ApprovalRow) -> Vec<String> {
    serde_json::from_str(&row.reasons).unwrap_or_default()
}

fn row_json(r: &ApprovalRow) -> Value {
    json!({
        "id": r.id,
        "kind": r.kind,
        "status": r.status,
        "execution": r.execution,
        "session": r.session,
        "subject": subject_of(r),
        "reasons": reasons_of(r),
        "createdMs": r.created_ms,
        "expiresMs": r.expires_ms,
        "decidedBy": r.decided_by,
        "decidedMs": r.decided_ms,
        "note": r.note,
    })
}

fn show_text(r: &ApprovalRow) -> String {
    let subject = subject_of(r);
    let text = |k: &str| subject[k].as_str().unwrap_or("?").to_string();
    let arguments = shown_arguments(&subject["arguments"], &r.id);
    let mut s = format!(
        "approval {}  {}\n  call       {} (tool `{}` of server `{}`), effect {}\n  why        {}\n  arguments  {}\n  by         {}  execution {}{}\n",
        r.id,
        r.status,
        text("function"),
        text("tool"),
        text("server"),
        text("effect"),
        reasons_of(r).join("; "),
        arguments.replace('\n', "\n             "),
        text("principal"),
        r.execution.as_deref().unwrap_or("-"),
        r.session
            .as_ref()
            .map(|s| format!("  session {s}"))
            .unwrap_or_default(),
    );
    if let Some(purpose) = subject["purpose"].as_str() {
        s.push_str(&format!("  for        {}\n", cut_line(purpose, 300)));
    }
    if let Some(by) = &r.decided_by {
        s.push_str(&format!(
            "  decided    by {by}{}\n",
            r.note
                .as_ref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        ));
    }
    s.push_str(&script_excerpt(
        subject["code"].as_str().unwrap_or(""),
        &text("function"),
        &text("file"),
    ));
    neutralize(&s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_arguments_are_cut_for_the_screen() {
        let small = json!({"path": "a"});
        assert_eq!(shown_arguments(&small, "ap-1"), "{\n  \"path\": \"a\"\n}");
        let big = json!({"content": "é".repeat(10_000)});
        let shown = shown_arguments(&big, "ap-1");
        assert!(shown.len() < 4200, "{}", shown.len());
        assert!(
            shown.ends_with("(all of it: isola approvals show ap-1 --json)"),
            "{shown}"
        );
    }
}
