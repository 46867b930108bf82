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
use isola_control::plan::{Applier, PlanBody, Planner};
use isola_engine::{Engine, ExecOptions};
use isola_policy::{Execution, Mode, Outcome, PlanInput};
use isola_store::ApprovalRow;
use serde_json::{Value, json};

use crate::cli::LimitArgs;
use crate::commands::{backend, connect, finish, load_config, print, read_script};
use crate::error::user_input;
use crate::journal::Journaled;
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

pub async fn plan(
    config_path: Option<&Path>,
    store: Option<&str>,
    args: PlanArgs,
) -> Result<ExitCode> {
    let (source, file_name) = read_script(&args.file)?;
    let config = load_config(config_path)?;
    let mut limits = config.settings.limits.clone();
    args.limits.apply(&mut limits);
    let Some(journaled) = Journaled::open(store, &config, args.session.clone()).await? else {
        return Err(user_input(anyhow!(
            "a plan is kept in the store, and the store is `none`\nhint: drop --store none (the default is a SQLite file)"
        )));
    };
    let store = journaled.store();
    let governor =
        crate::govern::governor(&config, Some(store.clone()), crate::govern::on_terminal())?;
    let backend = backend(&config, args.in_process)?;
    let hub = connect(&config).await;
    let engine = Engine::new(journaled.tools(hub.clone()), backend, limits)
        .with_max_script_bytes(config.settings.max_script_bytes);
    let mut options = ExecOptions {
        file_name: file_name.clone(),
        planning: true,
        ..ExecOptions::default()
    };
    let exec_id = journaled.begin_as(&engine, &source, &file_name, "plan", &mut options);
    let api = journaled.fingerprint(&engine);
    let planner = Planner::new();
    options.observers.push(planner.observer());
    options.gates.insert_first(planner.gate());
    let principal = format!("cli:{}", crate::govern::user());
    crate::govern::attach_in(
        &governor,
        &mut options,
        &source,
        &principal,
        args.session.clone(),
        isola_policy::Counts::default(),
        Mode::Plan,
    );
    let record = engine.execute(&source, options).await;
    journaled.close().await;
    hub.shutdown().await;
    if !record.ok {
        eprintln!("isola: the plan run failed; no plan was made");
        return finish(&record, Some(&exec_id), args.json, false);
    }
    let body = planner.body();
    let id = format!("plan-{exec_id}");
    let execution = Execution {
        id: exec_id.clone(),
        session: args.session.clone(),
        principal: principal.clone(),
        mode: Mode::Plan,
    };
    let plan = body.plan(&id);
    let decision = governor.policy().decide_plan(&PlanInput {
        plan: plan.clone(),
        execution,
    });
    let now = isola_control::approval::now_ms();
    let row = ApprovalRow {
        id: id.clone(),
        kind: "plan".into(),
        execution: Some(exec_id.clone()),
        session: args.session.clone(),
        // What the approver is shown and the apply needs.
        subject: json!({
            "plan": id,
            "execution": exec_id,
            "session": args.session,
            "principal": principal,
            "code": source,
            "file": file_name,
            "api": api,
            "steps": body.steps,
            "reads": body.reads,
            "counts": plan.counts,
            "result": record.result,
        })
        .to_string(),
        reasons: serde_json::to_string(&decision.reasons)?,
        created_ms: now,
        expires_ms: now.saturating_add(config.settings.approvals.timeout_ms as i64),
        status: "pending".into(),
        decided_by: None,
        decided_ms: None,
        note: None,
    };
    store.approval_create(&row).await?;
    let row = match decision.outcome {
        Outcome::Allow => {
            store
                .approval_decide(&id, true, "policy", None, now)
                .await?
        }
        Outcome::Deny => {
            store
                .approval_decide(
                    &id,
                    false,
                    "policy",
                    Some(&decision.reasons.join("; ")),
                    now,
                )
                .await?
        }
        Outcome::RequireApproval => row,
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

/// A plan as `isola plan --json` and `isola approvals show --json` give it.
pub fn plan_json(row: &ApprovalRow) -> Value {
    let subject: Value = serde_json::from_str(&row.subject).unwrap_or(Value::Null);
    let reasons: Vec<String> = serde_json::from_str(&row.reasons).unwrap_or_default();
    json!({
        "plan": row.id,
        "status": row.status,
        "execution": row.execution,
        "session": row.session,
        "steps": subject["steps"],
        "reads": subject["reads"],
        "counts": subject["counts"],
        "decision": {"status": row.status, "by": row.decided_by, "reasons": reasons, "note": row.note},
        "expiresMs": row.expires_ms,
        "api": subject["api"],
    })
}

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

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let end = (0..=max)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{} ...", &s[..end])
}

pub async fn apply(
    config_path: Option<&Path>,
    store: Option<&str>,
    args: ApplyArgs,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let now = isola_control::approval::now_ms();
    let Some(journaled) = Journaled::open(store, &config, None).await? else {
        return Err(user_input(anyhow!(
            "plans are kept in the store, and the store is `none`"
        )));
    };
    let store = journaled.store();
    let row = store
        .approval(&args.id, now)
        .await?
        .filter(|r| r.kind == "plan")
        .ok_or_else(|| {
            user_input(anyhow!(
                "there is no plan `{}`\nhint: isola approvals list --all shows plans and their state",
                args.id
            ))
        })?;
    let subject: Value = serde_json::from_str(&row.subject).unwrap_or(Value::Null);
    match row.status.as_str() {
        "approved" if row.expires_ms > now => {}
        "approved" => {
            return Err(user_input(anyhow!(
                "plan {} expired (plans are good for approvals.timeoutMs after they are made); plan the script again",
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
    let body = PlanBody {
        steps: serde_json::from_value(subject["steps"].clone())
            .map_err(|e| anyhow!("plan {} has unreadable steps: {e}", row.id))?,
        reads: serde_json::from_value(subject["reads"].clone())
            .map_err(|e| anyhow!("plan {} has unreadable reads: {e}", row.id))?,
    };
    let code = subject["code"].as_str().unwrap_or("").to_string();
    let file = subject["file"].as_str().unwrap_or("script.ts").to_string();
    let journaled = journaled.in_session(row.session.clone());
    let governor =
        crate::govern::governor(&config, Some(store.clone()), crate::govern::on_terminal())?;
    let backend = backend(&config, args.in_process)?;
    let hub = connect(&config).await;
    let engine = Engine::new(
        journaled.tools(hub.clone()),
        backend,
        config.settings.limits.clone(),
    )
    .with_max_script_bytes(config.settings.max_script_bytes);
    if journaled.fingerprint(&engine) != subject["api"].as_str().unwrap_or("") {
        hub.shutdown().await;
        return Err(user_input(anyhow!(
            "the servers' API changed since plan {} was made (a tool was added, removed or changed); plan the script again",
            row.id
        )));
    }
    // Used up now: of two applies, one runs.
    if !store.approval_use(&row.id, now).await? {
        hub.shutdown().await;
        return Err(user_input(anyhow!(
            "plan {} was applied by another process first",
            row.id
        )));
    }
    let mut options = ExecOptions {
        file_name: file.clone(),
        ..ExecOptions::default()
    };
    let exec_id = journaled.begin_as(&engine, &code, &file, "apply", &mut options);
    let applier = Applier::new(&row.id, body, args.allow_drift);
    options.observers.push(applier.observer());
    options.gates.insert_first(applier.gate());
    crate::govern::attach_in(
        &governor,
        &mut options,
        &code,
        &format!("cli:{}", crate::govern::user()),
        row.session.clone(),
        isola_policy::Counts::default(),
        Mode::Apply,
    );
    eprintln!(
        "isola: applying {} ({} change(s))",
        row.id,
        applier.report().planned
    );
    let record = engine.execute(&code, options).await;
    journaled.close().await;
    hub.shutdown().await;
    let report = applier.report();
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
        let mut value = crate::journal::with_execution_id(&record, Some(&exec_id))?;
        value["apply"] = serde_json::to_value(&report)?;
        value["apply"]["plan"] = json!(row.id);
        print(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
        return Ok(crate::commands::exit_code(&record));
    }
    let code = finish(&record, Some(&exec_id), false, args.trace)?;
    if record.ok {
        eprintln!(
            "isola: applied {} of {} change(s) of {}",
            report.applied, report.planned, row.id
        );
    }
    Ok(if incomplete {
        ExitCode::from(crate::exit::SCRIPT_FAILED)
    } else {
        code
    })
}
