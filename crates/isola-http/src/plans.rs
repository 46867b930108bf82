//! Plans through the API: `POST /v1/plans` runs a script as a plan (its reads made, its changes
//! recorded, nothing changed) and has the plan policy decide it; a plan's decision is an
//! approval (`POST /v1/approvals/{id}`); `POST /v1/plans/{id}/apply` applies an approved one,
//! checking the reads for drift. The front-end that builds the planner gives it ([`Plans`];
//! `isola serve` does).

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

/// Why a plan could not be made or applied: the plan is in the wrong state for it (`conflict`,
/// 409: pending, denied, expired, applied, drifted), or something else failed (500).
#[derive(Debug)]
pub enum PlanError {
    Conflict(String),
    Failed(String),
}

pub type PlanFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, PlanError>> + Send + 'a>>;

/// Plans and applies for the API, journaled and governed as the front-end's other executions.
pub trait Plans: Send + Sync + 'static {
    /// Run `code` as a plan for `who` in `session`: `{execution, record, plan}` (`plan` null
    /// when the run failed: no plan is made).
    fn plan<'a>(&'a self, who: &'a str, code: &'a str, session: Option<String>) -> PlanFuture<'a>;
    /// Apply the approved plan `id` for `who`: `{execution, record, apply: {applied, planned,
    /// drift}}`. `allow_drift`: go on when a read's answer changed since the plan.
    fn apply<'a>(&'a self, who: &'a str, id: &'a str, allow_drift: bool) -> PlanFuture<'a>;
}
