//! Approval requests: how a held call gets its decision.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use isola_engine::{CallIntent, Decision, Denial};
use isola_policy::Effect;
use isola_store::{ApprovalRow, GrantRow, Store, StoreError};
use serde_json::{Value, json};

use crate::ExecInfo;

/// A call waiting for a person's decision: what they are shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `ap-…`: what `isola approvals approve` takes.
    pub id: String,
    pub execution: String,
    pub session: Option<String>,
    pub principal: String,
    pub function: String,
    pub server: String,
    pub tool: String,
    pub arguments: Value,
    pub effect: Effect,
    /// Why the policy wants a person to decide.
    pub reasons: Vec<String>,
    /// The script that makes the call.
    pub code: String,
    pub file: String,
    /// What the execution is for (an agent run and its prompt).
    pub purpose: Option<String>,
}

/// The id of the approval request for call `seq` (0-based) of `execution`: `ap-<execution>-<n>`,
/// `n` counting from 1 as the journal shows calls.
pub fn approval_id(execution: &str, seq: u32) -> String {
    format!("ap-{execution}-{}", u64::from(seq) + 1)
}

impl Request {
    /// The request for call `call` of `exec`. Its id is the call's (`ap-<execution>-<n>`, the
    /// `n`th call): a resumed execution asking again finds the same request, and its decision.
    pub fn new(exec: &ExecInfo, call: &CallIntent, effect: Effect, reasons: Vec<String>) -> Self {
        Self {
            id: approval_id(&exec.id, call.seq),
            execution: exec.id.clone(),
            session: exec.session.clone(),
            principal: exec.principal.clone(),
            function: call.function.clone(),
            server: call.server.clone(),
            tool: call.tool.clone(),
            arguments: call.arguments.clone(),
            effect,
            reasons,
            code: exec.code.clone(),
            file: exec.file.clone(),
            purpose: exec.purpose.clone(),
        }
    }

    /// The request as the store keeps it (`subject` is what it is about).
    pub fn row(&self, created_ms: i64, expires_ms: i64) -> ApprovalRow {
        ApprovalRow {
            id: self.id.clone(),
            kind: "call".into(),
            execution: Some(self.execution.clone()),
            session: self.session.clone(),
            subject: json!({
                "function": self.function,
                "server": self.server,
                "tool": self.tool,
                "arguments": self.arguments,
                "effect": self.effect,
                "principal": self.principal,
                "file": self.file,
                "code": self.code,
                "purpose": self.purpose,
            })
            .to_string(),
            reasons: json!(self.reasons).to_string(),
            created_ms,
            expires_ms,
            status: "pending".into(),
            decided_by: None,
            decided_ms: None,
            note: None,
        }
    }
}

/// What a person answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Approve {
        by: String,
    },
    /// Approve this call and every later call of the same function in the session.
    ApproveSession {
        by: String,
    },
    Deny {
        by: String,
        note: Option<String>,
    },
}

/// Someone to ask right here (a person at the terminal). `None`: no answer can be had (the
/// terminal went away); the request keeps waiting for a decision through the store.
pub trait Ask: Send + Sync {
    fn ask(&self, request: &Request) -> BoxFuture<'static, Option<Answer>>;
}

/// Told of a request that waits in the store, nobody here being asked.
pub type Notice = Arc<dyn Fn(&Request) + Send + Sync>;

/// Whether a grant's `matcher` covers a call's `arguments`: every key of the matcher names an
/// argument; a string is a prefix the argument must start with (a value with a `..` path
/// segment never matches one), anything else must be equal. `{}` covers every call.
pub fn grant_matches(matcher: &Value, arguments: &Value) -> bool {
    let Some(matcher) = matcher.as_object() else {
        return false;
    };
    matcher.iter().all(|(key, want)| {
        let got = arguments.get(key);
        match (want, got) {
            (Value::String(prefix), Some(Value::String(value))) => {
                value.starts_with(prefix.as_str()) && !value.split(['/', '\\']).any(|s| s == "..")
            }
            (want, Some(got)) => want == got,
            (_, None) => false,
        }
    })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where and how long a held call waits for its decision.
pub struct Waiting<'a> {
    /// Where requests are stored, and decided by anyone (`None`: only `ask` can decide).
    pub store: Option<&'a Arc<dyn Store>>,
    /// The person right here.
    pub ask: Option<&'a Arc<dyn Ask>>,
    /// Told of a request nobody here is asked about.
    pub notice: Option<&'a Notice>,
    /// Then the request expires and the call is denied.
    pub timeout: Duration,
    /// How often the store is asked.
    pub poll: Duration,
    /// Then the execution is suspended (the request waits on; a resume finds it).
    pub suspend_after: Option<Duration>,
}

/// Find the decision about `request`: a grant of its session, else the first of the person at
/// the terminal (`ask`) and a decision stored by anyone (`store`, polled every `poll`), else,
/// after `timeout`, a denial. A request already in the store (a resumed execution asking
/// again) is not made twice: its decision stands, or it is waited for.
pub async fn decide(w: Waiting<'_>, request: Request) -> Decision {
    let Waiting {
        store,
        ask,
        notice,
        timeout,
        poll,
        suspend_after,
    } = w;
    let now = now_ms();
    if let (Some(store), Some(session)) = (store, &request.session) {
        match store.grants(session, now).await {
            Ok(grants) => {
                let covered = grants.iter().find(|g| {
                    g.function == request.function
                        && serde_json::from_str::<Value>(&g.matcher)
                            .is_ok_and(|m| grant_matches(&m, &request.arguments))
                });
                if let Some(grant) = covered {
                    tracing::info!(function = %request.function, grant = %grant.id, "covered by a grant of the session");
                    return Decision::Allow;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the session's grants"),
        }
    }
    let mut store = store;
    let mut deadline_ms = now.saturating_add(timeout.as_millis() as i64);
    if let Some(s) = store {
        let existing = match s.approval(&request.id, now).await {
            Ok(row) => row,
            Err(error) => {
                tracing::warn!(%error, "cannot read the approval request");
                None
            }
        };
        match existing {
            Some(row) if row.status != "pending" => return decision_of(&row, &request),
            Some(row) => deadline_ms = row.expires_ms,
            None => {
                if let Err(error) = s.approval_create(&request.row(now, deadline_ms)).await {
                    if ask.is_none() {
                        return unavailable(
                            &request,
                            &format!("the request cannot be stored: {error}"),
                        );
                    }
                    tracing::warn!(%error, "cannot store the approval request; asking here only");
                    store = None;
                }
            }
        }
    }
    if store.is_none() && ask.is_none() {
        return unavailable(
            &request,
            "there is no store to wait in (the store is `none`) and no terminal to ask",
        );
    }
    tracing::info!(
        approval = %request.id, function = %request.function,
        "waiting for approval (isola approvals approve {} | deny {})", request.id, request.id
    );
    if ask.is_none()
        && let Some(notice) = notice
    {
        notice(&request);
    }
    let mut asked: Option<BoxFuture<'static, Option<Answer>>> = ask.map(|a| a.ask(&request));
    let left = Duration::from_millis(deadline_ms.saturating_sub(now).max(0) as u64);
    let deadline = tokio::time::sleep(left);
    tokio::pin!(deadline);
    // Suspending needs the store: the request waits there for the resume.
    let suspend = suspend_after.filter(|after| store.is_some() && *after < left);
    let suspension = tokio::time::sleep(suspend.unwrap_or(left));
    tokio::pin!(suspension);
    let mut ticks = tokio::time::interval(poll);
    loop {
        tokio::select! {
            answer = async {
                match asked.as_mut() {
                    Some(question) => question.await,
                    None => std::future::pending().await,
                }
            }, if asked.is_some() => {
                asked = None;
                if let Some(answer) = answer {
                    return record(store, &request, answer).await;
                }
                if store.is_none() {
                    return unavailable(&request, "the terminal closed before an answer");
                }
            }
            _ = ticks.tick(), if store.is_some() => {
                let Some(s) = store else { continue };
                match s.approval(&request.id, now_ms()).await {
                    Ok(Some(row)) if row.status != "pending" => return decision_of(&row, &request),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "cannot read the approval request"),
                }
            }
            () = &mut suspension, if suspend.is_some() => return suspended(&request),
            () = &mut deadline => return expired(&request, timeout),
        }
    }
}

/// Store the person's answer (unless someone decided first: then theirs stands).
async fn record(store: Option<&Arc<dyn Store>>, request: &Request, answer: Answer) -> Decision {
    let (approve, by, note) = match &answer {
        Answer::Approve { by } | Answer::ApproveSession { by } => (true, by.clone(), None),
        Answer::Deny { by, note } => (false, by.clone(), note.clone()),
    };
    let Some(store) = store else {
        return if approve {
            Decision::Allow
        } else {
            denied(request, &by, note.as_deref())
        };
    };
    let now = now_ms();
    let row = match store
        .approval_decide(&request.id, approve, &by, note.as_deref(), now)
        .await
    {
        Ok(row) => row,
        Err(StoreError::ApprovalDecided { .. }) | Err(StoreError::ApprovalExpired { .. }) => {
            match store.approval(&request.id, now).await {
                Ok(Some(row)) => row,
                _ => return unavailable(request, "the request vanished from the store"),
            }
        }
        Err(error) => {
            return unavailable(request, &format!("the decision cannot be stored: {error}"));
        }
    };
    if matches!(answer, Answer::ApproveSession { .. })
        && row.status == "approved"
        && let Some(session) = &request.session
    {
        let note = format!("from approval {}", request.id);
        let grant = session_grant(session, &request.function, &by, Some(note), now);
        if let Err(error) = store.grant_create(&grant).await {
            tracing::warn!(%error, "cannot store the session's grant");
        }
    }
    decision_of(&row, request)
}

/// A grant approving every later call of `function` in `session`.
pub fn session_grant(
    session: &str,
    function: &str,
    by: &str,
    note: Option<String>,
    now_ms: i64,
) -> GrantRow {
    GrantRow {
        id: format!("gr-{}", isola_journal::new_execution_id()),
        session: session.to_string(),
        function: function.to_string(),
        matcher: "{}".into(),
        created_by: by.to_string(),
        created_ms: now_ms,
        expires_ms: None,
        note,
    }
}

/// The decision a stored request holds.
fn decision_of(row: &ApprovalRow, request: &Request) -> Decision {
    match row.status.as_str() {
        "approved" => Decision::Allow,
        "denied" => denied(
            request,
            row.decided_by.as_deref().unwrap_or("someone"),
            row.note.as_deref(),
        ),
        _ => Decision::Deny(Denial::new(
            "ApprovalExpired",
            format!(
                "{} was not approved: approval {} expired before anyone decided",
                request.function, request.id
            ),
        )),
    }
}

fn denied(request: &Request, by: &str, note: Option<&str>) -> Decision {
    let why = note.map(|n| format!(": {n}")).unwrap_or_default();
    Decision::Deny(Denial::new(
        "ApprovalDenied",
        format!(
            "{} was denied by {by} (approval {}){why}",
            request.function, request.id
        ),
    ))
}

fn expired(request: &Request, timeout: Duration) -> Decision {
    Decision::Deny(Denial::new(
        "ApprovalExpired",
        format!(
            "{} was not approved: no decision on approval {} within {} s (isola.approvals.timeoutMs)",
            request.function,
            request.id,
            timeout.as_secs()
        ),
    ))
}

fn suspended(request: &Request) -> Decision {
    Decision::Suspend(format!(
        "{} waits for approval {} (nothing was sent); once it is decided (`isola approvals approve {}` or `deny {} --reason ...`), `isola resume {exec}` (or the `resume` tool with execution {exec}) continues the execution",
        request.function,
        request.id,
        request.id,
        request.id,
        exec = request.execution
    ))
}

fn unavailable(request: &Request, why: &str) -> Decision {
    Decision::Deny(Denial::new(
        "ApprovalUnavailable",
        format!(
            "{} needs a person's approval ({}), but {why}",
            request.function,
            request.reasons.join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_by_prefix_or_value_and_never_through_dot_dot() {
        let args = json!({"path": "out/a.txt", "mode": 1});
        assert!(grant_matches(&json!({}), &args));
        assert!(grant_matches(&json!({"path": "out/"}), &args));
        assert!(grant_matches(&json!({"path": "out/", "mode": 1}), &args));
        assert!(!grant_matches(&json!({"mode": 2}), &args));
        assert!(!grant_matches(&json!({"path": "in/"}), &args));
        assert!(
            !grant_matches(&json!({"owner": "x"}), &args),
            "a missing argument"
        );
        assert!(!grant_matches(
            &json!({"path": "out/"}),
            &json!({"path": "out/../etc/passwd"})
        ));
        assert!(!grant_matches(&json!("out/"), &args), "not an object");
    }
}
