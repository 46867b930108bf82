//! `isola plan` and `isola apply`: a script's changes planned (reads made, writes and deletes
//! held back as steps), decided by the plan policy or a person, then applied exactly as planned.
//!
//! A plan lives in the store as an approval request of kind `plan` (id `plan-<execution>`): its
//! subject holds the script, the API fingerprint, the steps and the reads; `isola approvals
//! approve|deny` decide it like a call; `isola apply` uses it up (single use) and runs the
//! script live under [`isola_control::plan::Applier`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Args;
use isola_control::Governor;
use isola_control::plan::{Applier, ApplyReport, PlanBody, Planner};
use isola_engine::{Engine, ExecOptions};
use isola_journal::{Begin, Journal};
use isola_policy::{Execution, Mode, Outcome, PlanInput};
use isola_protocol::ExecRecord;
use isola_store::{ApprovalRow, Store};
use serde_json::{Value, json};

use crate::cli::LimitArgs;
use crate::commands::{Running, finish, load_config, print, read_script};
use crate::error::user_input;
use crate::journal::Journaled;
use crate::render::shorten as cut;
use crate::term::neutralize;

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The script file, or - for standard input.
    pub file: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Plan in this session (its `state` is read; the apply runs in it too).
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[arg(long)]
    pub in_process: bool,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The plan's id (`plan-…`, as `isola plan` printed it).
    pub id: String,
    /// Go on when a read answers differently than when the plan was made (the drift is
    /// reported); by default the apply stops before its next call.
    #[arg(long)]
    pub allow_drift: bool,
    /// Print the execution record and the apply's report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the trace of tool calls after the result.
    #[arg(long)]
    pub trace: bool,
    #[arg(long)]
    pub in_process: bool,
}

/// What planning and applying run with: the journal (a plan needs a store), the governor, the
/// engine, and for whom.
pub struct Planning<'a> {
    pub journal: &'a Journal,
    pub governor: &'a Governor,
    pub engine: &'a Engine,
    pub session: Option<String>,
    pub principal: String,
    /// What the executions are for, shown to whoever approves (an agent run and its prompt).
    pub purpose: Option<String>,
    /// How long a plan is good for, to be decided and applied (`approvals.timeoutMs`).
    pub ttl_ms: u64,
}

/// A plan run: its record, and the plan (`None` when the run failed: no plan is made).
pub struct Planned {
    pub record: ExecRecord,
    pub execution: String,
    pub row: Option<ApprovalRow>,
}

/// An apply: its record and how far it got.
pub struct Applied {
    pub record: ExecRecord,
    pub execution: String,
    pub report: ApplyReport,
}

impl Planning<'_> {
    fn options(&self, code: &str, file: &str, origin: &str) -> (ExecOptions, String) {
        let mut options = ExecOptions {
            file_name: file.to_string(),
            planning: origin == "plan",
            ..ExecOptions::default()
        };
        let exec = self.journal.begin(
            Begin::new(code, origin)
                .session(self.session.clone())
                .file(file),
            &self.engine.api(),
        );
        exec.attach(&mut options);
        (options, exec.id)
    }

    /// The policy's gate first, then `gate` (the planner's or the applier's: the policy's gate
    /// lets a change through to it in these modes), then the journal's.
    fn govern(
        &self,
        options: &mut ExecOptions,
        gate: std::sync::Arc<dyn isola_engine::CallGate>,
        observer: Box<dyn isola_engine::Observer>,
        code: &str,
        mode: Mode,
    ) {
        options.observers.push(observer);
        options.gates.insert_first(gate);
        let who = crate::govern::Who {
            principal: self.principal.clone(),
            session: self.session.clone(),
            purpose: self.purpose.clone(),
        };
        crate::govern::attach_in(
            self.governor,
            options,
            code,
            who,
            isola_policy::Counts::default(),
            mode,
        );
    }

    /// Run `code` as a plan, store the plan, and have the plan policy decide it.
    pub async fn plan(&self, code: &str, file: &str) -> Result<Planned> {
        let (mut options, exec_id) = self.options(code, file, "plan");
        let planner = Planner::new();
        self.govern(
            &mut options,
            planner.gate(),
            planner.observer(),
            code,
            Mode::Plan,
        );
        let record = self.engine.execute(code, options).await;
        if !record.ok {
            return Ok(Planned {
                record,
                execution: exec_id,
                row: None,
            });
        }
        let body = planner.body();
        let id = format!("plan-{exec_id}");
        let plan = body.plan(&id);
        let decision = self.governor.policy().decide_plan(&PlanInput {
            plan: plan.clone(),
            execution: Execution {
                id: exec_id.clone(),
                session: self.session.clone(),
                principal: self.principal.clone(),
                mode: Mode::Plan,
            },
        });
        let now = isola_control::approval::now_ms();
        let row = ApprovalRow {
            id: id.clone(),
            kind: "plan".into(),
            execution: Some(exec_id.clone()),
            session: self.session.clone(),
            // What the approver is shown and the apply needs.
            subject: json!({
                "plan": id,
                "execution": exec_id,
                "session": self.session,
                "principal": self.principal,
                "purpose": self.purpose,
                "code": code,
                "file": file,
                "api": self.journal.fingerprint(&self.engine.api()),
                "steps": body.steps,
                "reads": body.reads,
                "counts": plan.counts,
                "result": record.result,
            })
            .to_string(),
            reasons: serde_json::to_string(&decision.reasons)?,
            created_ms: now,
            expires_ms: now.saturating_add(i64::try_from(self.ttl_ms).unwrap_or(i64::MAX)),
            status: "pending".into(),
            decided_by: None,
            decided_ms: None,
            note: None,
        };
        let store = self.journal.store();
        store.approval_create(&row).await?;
        let row = match decision.outcome {
            Outcome::Allow => {
                store
                    .approval_decide(&id, true, "policy", None, now)
                    .await?
            }
            Outcome::Deny => {
                let why = decision.reasons.join("; ");
                store
                    .approval_decide(&id, false, "policy", Some(&why), now)
                    .await?
            }
            Outcome::RequireApproval => row,
        };
        Ok(Planned {
            record,
            execution: exec_id,
            row: Some(row),
        })
    }

    /// Apply the plan `row` (approved, unexpired, unused, and made against this API), using it
    /// up first: of two applies, one runs.
    /// Apply the plan `row` (approved, unexpired, unused, and made against this API), using it
    /// up first: of two applies, one runs.
    pub async fn apply(&self, row: &ApprovalRow, allow_drift: bool) -> Result<Applied> {
        let now = isola_control::approval::now_ms();
        match row.status.as_str() {
            "approved" if row.expires_ms > now => {}
            "approved" => {
                return Err(user_input(anyhow!(
                    "plan {} expired (a plan is good for approvals.timeoutMs after it is made); plan the script again",
                    row.id
                )));
            }
            "pending" => {
                return Err(user_input(anyhow!(
                    "plan {id} waits for approval\nhint: isola approvals show {id}, then approve {id}",
                    id = row.id
                )));
            }
            "applied" => {
                return Err(user_input(anyhow!(
                    "plan {} was applied already: a plan is used once; plan the script again",
                    row.id
                )));
            }
            other => {
                return Err(user_input(anyhow!(
                    "plan {} is {other}{}: it cannot be applied",
                    row.id,
                    row.note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                )));
            }
        }
        let subject: Value = serde_json::from_str(&row.subject).unwrap_or(Value::Null);
        let body = PlanBody {
            steps: serde_json::from_value(subject["steps"].clone())
                .map_err(|e| anyhow!("plan {} has unreadable steps: {e}", row.id))?,
            reads: serde_json::from_value(subject["reads"].clone())
                .map_err(|e| anyhow!("plan {} has unreadable reads: {e}", row.id))?,
        };
        let code = subject["code"].as_str().unwrap_or("");
        let file = subject["file"].as_str().unwrap_or("script.ts");
        if self.journal.fingerprint(&self.engine.api()) != subject["api"].as_str().unwrap_or("") {
            return Err(user_input(anyhow!(
                "the servers' API changed since plan {} was made (a tool was added, removed or changed); plan the script again",
                row.id
            )));
        }
        if !self.journal.store().approval_use(&row.id, now).await? {
            return Err(user_input(anyhow!(
                "plan {} was applied by another process first",
                row.id
            )));
        }
        let (mut options, exec_id) = self.options(code, file, "apply");
        let applier = Applier::new(&row.id, body, allow_drift);
        self.govern(
            &mut options,
            applier.gate(),
            applier.observer(),
            code,
            Mode::Apply,
        );
        let record = self.engine.execute(code, options).await;
        Ok(Applied {
            record,
            execution: exec_id,
            report: applier.report(),
        })
    }
}

/// Wait until the pending plan `row` is decided (or expires): on a terminal, ask the person
/// there too; whoever decides first, here or with `isola approvals`, decides. Its row then.
pub async fn decision(store: &dyn Store, row: &ApprovalRow) -> Result<ApprovalRow> {
    if !crate::govern::on_terminal() {
        return decided(store, &row.id).await;
    }
    let asked = crate::govern::ask_plan_on_terminal(plan_text(row));
    tokio::select! {
        answer = asked => {
            let Some((approve, note)) = answer else {
                return decided(store, &row.id).await;
            };
            let by = format!("{} (terminal)", crate::govern::user());
            let now = isola_control::approval::now_ms();
            match store.approval_decide(&row.id, approve, &by, note.as_deref(), now).await {
                Ok(row) => Ok(row),
                // Decided elsewhere first (or expired): that stands.
                Err(_) => decided(store, &row.id).await,
            }
        }
        row = decided(store, &row.id) => row,
    }
}

/// Wait until the plan `id` is decided (or expires); its row then.
async fn decided(store: &dyn Store, id: &str) -> Result<ApprovalRow> {
    loop {
        let row = store
            .approval(id, isola_control::approval::now_ms())
            .await?
            .ok_or_else(|| anyhow!("plan {id} vanished from the store"))?;
        if row.status != "pending" {
            return Ok(row);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The principal of the person running this command.
fn principal() -> String {
    format!("cli:{}", crate::govern::user())
}

/// The store a plan needs, or why there is none.
fn no_store() -> anyhow::Error {
    user_input(anyhow!(
        "plans are kept in the store, and the store is `none`\nhint: drop --store none (the default is a SQLite file)"
    ))
}

pub async fn plan(
    config_path: Option<&Path>,
    store: Option<&str>,
    args: PlanArgs,
) -> Result<ExitCode> {
    let (source, file_name) = read_script(&args.file)?;
    let config = load_config(config_path)?;
    let mut limits = config.settings.limits.clone();
    args.limits.apply(&mut limits);
    let journaled = Journaled::open(store, &config, args.session.clone())
        .await?
        .ok_or_else(no_store)?;
    let Running {
        governor,
        hub,
        engine,
    } = Running::start(&config, Some(&journaled), args.in_process, limits).await?;
    let planning = Planning {
        journal: journaled.journal(),
        governor: &governor,
        engine: &engine,
        session: args.session.clone(),
        principal: principal(),
        purpose: None,
        ttl_ms: config.settings.approvals.timeout_ms,
    };
    let planned = planning.plan(&source, &file_name).await;
    journaled.close().await;
    hub.shutdown().await;
    let planned = planned?;
    let Some(row) = planned.row else {
        eprintln!("isola: the plan run failed; no plan was made");
        return finish(&planned.record, Some(&planned.execution), args.json, false);
    };
    if args.json {
        print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&plan_json(&row))?
        ))?;
    } else {
        print(&plan_text(&row))?;
    }
    Ok(match row.status.as_str() {
        "denied" => ExitCode::from(crate::exit::SCRIPT_FAILED),
        _ => ExitCode::SUCCESS,
    })
}

pub use isola_control::plan::plan_json;

/// A plan for reading: one line per change, with its arguments; the reads; the decision.
pub fn plan_text(row: &ApprovalRow) -> String {
    let subject: Value = serde_json::from_str(&row.subject).unwrap_or(Value::Null);
    let steps = subject["steps"].as_array().cloned().unwrap_or_default();
    let reads = subject["reads"].as_array().cloned().unwrap_or_default();
    let effects = &subject["counts"]["effect"];
    let mut s = format!(
        "plan {}: {} change(s) ({} write, {} destructive), {} read(s) made\n",
        row.id,
        steps.len(),
        effects["write"].as_u64().unwrap_or(0),
        effects["destructive"].as_u64().unwrap_or(0),
        reads.len()
    );
    for step in &steps {
        s.push_str(&format!(
            "  #{:<3} {}  [{}]  {}\n",
            step["seq"].as_u64().unwrap_or(0) + 1,
            step["function"].as_str().unwrap_or("?"),
            step["effect"].as_str().unwrap_or("?"),
            cut(&isola_control::plan::shown(&step["arguments"]), 300)
        ));
    }
    if let Some(purpose) = subject["purpose"].as_str() {
        s.push_str(&format!(
            "  for {}\n",
            cut(&purpose.replace('\n', " "), 300)
        ));
    }
    for read in &reads {
        s.push_str(&format!(
            "  read {}({})\n",
            read["function"].as_str().unwrap_or("?"),
            cut(&read["arguments"].to_string(), 120)
        ));
    }
    let reasons: Vec<String> = serde_json::from_str(&row.reasons).unwrap_or_default();
    let why = if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join("; "))
    };
    s.push_str(&match row.status.as_str() {
        "approved" => format!(
            "approved by {}{why}\nnext: isola apply {}\n",
            row.decided_by.as_deref().unwrap_or("?"),
            row.id
        ),
        "pending" => format!(
            "needs approval{why}\nnext: isola approvals approve {id} (or deny {id} --reason TEXT), then isola apply {id}\n",
            id = row.id
        ),
        "denied" => format!(
            "refused by {}{}\n",
            row.decided_by.as_deref().unwrap_or("?"),
            row.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default()
        ),
        other => format!("{other}\n"),
    });
    neutralize(&s).into_owned()
}

pub async fn apply(
    config_path: Option<&Path>,
    store: Option<&str>,
    args: ApplyArgs,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let journaled = Journaled::open(store, &config, None)
        .await?
        .ok_or_else(no_store)?;
    let row = journaled
        .store()
        .approval(&args.id, isola_control::approval::now_ms())
        .await?
        .filter(|r| r.kind == "plan")
        .ok_or_else(|| {
            user_input(anyhow!(
                "there is no plan `{}`\nhint: isola approvals list --all shows plans and their state",
                args.id
            ))
        })?;
    let row = if row.status == "pending" && crate::govern::on_terminal() {
        decision(journaled.store().as_ref(), &row).await?
    } else {
        row
    };
    let journaled = journaled.in_session(row.session.clone());
    let Running {
        governor,
        hub,
        engine,
    } = Running::start(
        &config,
        Some(&journaled),
        args.in_process,
        config.settings.limits.clone(),
    )
    .await?;
    let planning = Planning {
        journal: journaled.journal(),
        governor: &governor,
        engine: &engine,
        session: row.session.clone(),
        principal: principal(),
        purpose: None,
        ttl_ms: config.settings.approvals.timeout_ms,
    };
    let steps = serde_json::from_str::<Value>(&row.subject)
        .ok()
        .and_then(|s| s["steps"].as_array().map(Vec::len))
        .unwrap_or(0);
    if row.status == "approved" {
        eprintln!("isola: applying {} ({steps} change(s))", row.id);
    }
    let applied = planning.apply(&row, args.allow_drift).await;
    journaled.close().await;
    hub.shutdown().await;
    let Applied {
        record,
        execution,
        report,
    } = applied?;
    for d in &report.drift {
        eprintln!("{}", neutralize(&format!("isola: drift: {d}")));
    }
    let incomplete = record.ok && report.applied < report.planned;
    if incomplete {
        eprintln!(
            "isola: the script ended after {} of the plan's {} change(s)",
            report.applied, report.planned
        );
    }
    if args.json {
        let mut value = crate::journal::with_execution_id(&record, Some(&execution))?;
        value["apply"] = serde_json::to_value(&report)?;
        value["apply"]["plan"] = json!(row.id);
        print(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    } else {
        finish(&record, Some(&execution), false, args.trace)?;
        if record.ok {
            eprintln!(
                "isola: applied {} of {} change(s) of {}",
                report.applied, report.planned, row.id
            );
        }
    }
    Ok(if incomplete {
        ExitCode::from(crate::exit::SCRIPT_FAILED)
    } else {
        crate::commands::exit_code(&record)
    })
}

/// One script of an agent run in plan mode (`isola run --plan`): plan it; have the plan decided
/// (by the plan policy, or by a person with `isola approvals`, waited for); apply it if it was
/// approved. The model is told the plan, the decision and the outcome; a refused plan is an
/// error it can act on.
pub async fn agent_step(planning: &Planning<'_>, code: &str) -> isola_agent::Executed {
    use isola_agent::Executed;
    let planned = match planning.plan(code, "script.ts").await {
        Ok(p) => p,
        Err(e) => return Executed::failed(isola_protocol::ErrorKind::Internal, "PlanError", &e),
    };
    let Some(row) = planned.row else {
        return Executed {
            record: planned.record,
            note: Some(
                "The script failed while it was planned (reads were made, nothing was changed):"
                    .into(),
            ),
        };
    };
    let summary = plan_summary(&row);
    let changes = serde_json::from_str::<Value>(&row.subject)
        .ok()
        .and_then(|s| s["steps"].as_array().map(Vec::len))
        .unwrap_or(0);
    if changes == 0 && row.status == "approved" {
        // Reads only: the plan run did all there was to do; running it again live would only
        // read everything twice.
        return Executed {
            record: planned.record,
            note: Some(format!(
                "{summary}It changes nothing, so its plan run is its result:"
            )),
        };
    }
    let row = if row.status == "pending" {
        eprintln!(
            "{}",
            neutralize(&format!(
                "isola: plan {id} of the agent's script waits for approval ({}): isola approvals show {id} | approve {id} | deny {id} --reason TEXT",
                reasons_of(&row).join("; "),
                id = row.id
            ))
        );
        match decision(planning.journal.store().as_ref(), &row).await {
            Ok(r) => r,
            Err(e) => {
                return Executed::failed(isola_protocol::ErrorKind::Internal, "PlanError", &e);
            }
        }
    } else {
        row
    };
    let decision = decision_text(&row);
    if row.status != "approved" {
        let mut record = planned.record;
        record.ok = false;
        record.result = Value::Null;
        record.error = Some(isola_protocol::ExecError {
            kind: isola_protocol::ErrorKind::Denied,
            limit: None,
            name: "PlanRefused".into(),
            message: format!("plan {}: {decision}; nothing was changed", row.id),
            position: None,
            code_frame: None,
            stack: None,
            tool: None,
            hint: None,
        });
        return Executed {
            record,
            note: Some(summary),
        };
    }
    match planning.apply(&row, false).await {
        Ok(applied) => Executed {
            note: Some(format!(
                "{summary}{decision}. Applied {} of {} change(s):",
                applied.report.applied, applied.report.planned
            )),
            record: applied.record,
        },
        Err(e) => Executed::failed(isola_protocol::ErrorKind::Internal, "ApplyError", &e),
    }
}

/// The plan's changes and reads, one line each (what the model is told).
fn plan_summary(row: &ApprovalRow) -> String {
    let subject: Value = serde_json::from_str(&row.subject).unwrap_or(Value::Null);
    let mut s = format!("Your script ran as plan {}. Its changes:\n", row.id);
    let steps = subject["steps"].as_array().cloned().unwrap_or_default();
    if steps.is_empty() {
        s.push_str("  (none)\n");
    }
    for step in &steps {
        s.push_str(&format!(
            "  #{} {}({}) [{}]\n",
            step["seq"].as_u64().unwrap_or(0) + 1,
            step["function"].as_str().unwrap_or("?"),
            cut(&isola_control::plan::shown(&step["arguments"]), 300),
            step["effect"].as_str().unwrap_or("?")
        ));
    }
    s
}

/// How a plan was decided, in a sentence.
fn decision_text(row: &ApprovalRow) -> String {
    let by = row.decided_by.as_deref().unwrap_or("nobody");
    let why = row
        .note
        .as_deref()
        .map(|n| format!(": {n}"))
        .unwrap_or_default();
    match row.status.as_str() {
        "approved" => format!("It was approved by {by}"),
        "denied" => format!("It was refused by {by}{why}"),
        "expired" => "Nobody decided it in time".to_string(),
        other => format!("It is {other}"),
    }
}

fn reasons_of(row: &ApprovalRow) -> Vec<String> {
    serde_json::from_str(&row.reasons).unwrap_or_default()
}

/// `isola serve`'s plans (`/v1/plans`): [`Planning`] over the server's engine, journal and
/// governor, on behalf of the token that asked.
pub struct ServePlans {
    pub journal: Journal,
    pub governor: std::sync::Arc<Governor>,
    pub engine: std::sync::Arc<Engine>,
    /// `approvals.timeoutMs`: how long a plan is good for.
    pub ttl_ms: u64,
}

impl ServePlans {
    fn planning(&self, who: &str, session: Option<String>) -> Planning<'_> {
        Planning {
            journal: &self.journal,
            governor: &self.governor,
            engine: &self.engine,
            session,
            principal: who.to_string(),
            purpose: None,
            ttl_ms: self.ttl_ms,
        }
    }
}

/// A user's error (the plan's state) is a conflict; anything else a failure.
fn plan_error(e: anyhow::Error) -> isola_http::PlanError {
    match crate::error::exit_code(&e) == crate::exit::USAGE {
        true => isola_http::PlanError::Conflict(format!("{e:#}")),
        false => isola_http::PlanError::Failed(format!("{e:#}")),
    }
}

impl isola_http::Plans for ServePlans {
    fn plan<'a>(
        &'a self,
        who: &'a str,
        code: &'a str,
        session: Option<String>,
    ) -> isola_http::PlanFuture<'a> {
        Box::pin(async move {
            let planned = self
                .planning(who, session)
                .plan(code, "script.ts")
                .await
                .map_err(plan_error)?;
            Ok(json!({
                "execution": planned.execution,
                "record": planned.record,
                "plan": planned.row.as_ref().map(plan_json),
            }))
        })
    }

    fn apply<'a>(
        &'a self,
        who: &'a str,
        id: &'a str,
        allow_drift: bool,
    ) -> isola_http::PlanFuture<'a> {
        Box::pin(async move {
            let row = self
                .journal
                .store()
                .approval(id, isola_control::approval::now_ms())
                .await
                .map_err(|e| isola_http::PlanError::Failed(e.to_string()))?
                .filter(|r| r.kind == "plan")
                .ok_or_else(|| {
                    isola_http::PlanError::Conflict(format!("there is no plan `{id}`"))
                })?;
            let applied = self
                .planning(who, row.session.clone())
                .apply(&row, allow_drift)
                .await
                .map_err(plan_error)?;
            Ok(json!({
                "execution": applied.execution,
                "record": applied.record,
                "apply": {
                    "plan": row.id,
                    "applied": applied.report.applied,
                    "planned": applied.report.planned,
                    "drift": applied.report.drift,
                },
            }))
        })
    }
}
