//! Policy as code for Isola's call gate: Rego policies, evaluated in process with
//! [regorus](https://github.com/microsoft/regorus), decide before every tool call (and before a
//! plan runs) whether it is allowed, needs a person's approval, or is denied.
//!
//! ```no_run
//! # fn demo(input: &isola_policy::CallInput) -> Result<(), isola_policy::PolicyError> {
//! use isola_policy::{Outcome, Policy};
//!
//! let policy = Policy::load(&["policy.rego".into()], None)?;
//! let decision = policy.decide_call(input);
//! if decision.outcome == Outcome::Deny {
//!     eprintln!("denied: {}", decision.message());
//! }
//! # Ok(()) }
//! ```
//!
//! # The contract with policy authors
//!
//! This is stable: policies written against it keep working.
//!
//! - Policies are Rego v1 (`allow if ...`, `deny contains msg if ...`) in **package `isola`**.
//!   Other packages may hold helpers (and tests); at least one file must be in package
//!   `isola`, or loading fails.
//! - Isola reads three rules:
//!   - `data.isola.deny`: a set of reasons; any member denies the call.
//!   - `data.isola.require_approval`: a set of reasons; any member makes the call wait for a
//!     person.
//!   - `data.isola.allow`: a boolean.
//!
//!   A reason is a string, or an object with a `msg` string (shown as its `msg`; anything else
//!   is shown as JSON). A `deny` that is `true` (written `deny if ...`) denies with the reason
//!   "data.isola.deny is true (a rule without a reason)".
//! - **Strictest wins.** Any `deny` member: [`Outcome::Deny`], with the deny reasons. Else any
//!   `require_approval` member: [`Outcome::RequireApproval`], with those reasons. Else, if the
//!   policy **declares** an `allow` rule in package `isola` (it is *deny-by-default*) and
//!   `allow` is not `true`: [`Outcome::Deny`] with the reason "no `allow` rule matched"
//!   ([`NO_ALLOW_REASON`]). Else [`Outcome::Allow`]. A policy that declares no `allow` rule is
//!   not deny-by-default.
//!
//!   Whether `allow` is declared is read from the rule heads as written, when the policy is
//!   loaded (regorus's `has_declared_rule_rooted_at`): `allow if ...`, `allow := ...` and
//!   `default allow := false` all declare it, in any file of package `isola`. Nothing is
//!   evaluated for this, so an `allow` whose body is never true still makes the policy
//!   deny-by-default ([`Policy::is_deny_by_default`]).
//! - **Fail closed.** A decision that cannot be made denies, with a reason starting
//!   `policy error:` and the error in [`Decision::error`]: an evaluation error (a conflict
//!   between two values of a complete rule, a builtin's error: builtin errors are strict, so a
//!   failing builtin never quietly makes a `deny` undefined), a rule of the wrong shape, or
//!   running past the time limit.
//! - **Time limit.** One decision may take [`DEFAULT_TIME_LIMIT`] (100 ms) unless
//!   [`Policy::with_time_limit`] says otherwise. It is one budget for the whole decision:
//!   regorus's cooperative execution timer is armed before each of the three rules with what
//!   the previous ones left, and looks at the clock every 32 units of work (statements, loop
//!   iterations), so an endless comprehension stops within microseconds of the limit. The
//!   reason names the limit: `policy error: evaluating data.isola.deny took longer than the
//!   time limit of 50 ms`. The timer cannot interrupt a builtin, so the one builtin that makes
//!   unbounded work from small arguments, `numbers.range` (and `numbers.range_step`), is
//!   replaced by a version with the same results that watches the same deadline and refuses
//!   to make more than [`MAX_RANGE`] numbers (`numbers.range(1, 100000000)` denies at once).
//!   Any error raised once the budget is spent is reported as the time limit.
//!
//! ## `input` for a call ([`CallInput`])
//!
//! ```json
//! {"call": {"server": "fs", "tool": "write_file", "function": "fs.writeFile",
//!           "arguments": {"path": "/srv/out/a.txt"}, "effect": "write"},
//!  "execution": {"id": "ex_1", "session": null, "principal": "ana", "mode": "live"},
//!  "counts": {"function": {"fs.writeFile": 2}, "effect": {"read": 3, "write": 2, "destructive": 0}}}
//! ```
//!
//! `effect` is `read`, `write` or `destructive`; `mode` is `live`, `plan` or `apply`;
//! `session` is `null` outside a session. `counts` are the calls the execution made before
//! this one.
//!
//! ## `input` for a plan ([`PlanInput`])
//!
//! ```json
//! {"plan": {"id": "plan_1",
//!           "steps": [{"seq": 0, "function": "fs.deleteFile", "server": "fs", "tool": "delete_file",
//!                      "arguments": {"path": "/tmp/x"}, "effect": "destructive"}],
//!           "counts": {"function": {"fs.deleteFile": 1}, "effect": {"read": 0, "write": 0, "destructive": 1}}},
//!  "execution": {"id": "ex_1", "session": null, "principal": "ana", "mode": "plan"}}
//! ```
//!
//! There is no `call` key, so rules about `input.call` do not fire on a plan. The same three
//! rules decide, combined the same way.
//!
//! ## The default policy
//!
//! [`Policy::builtin`] ([`DEFAULT_POLICY`]) allows reads and writes, and requires approval for
//! a destructive call ("fs.deleteFile is destructive: the default policy asks a person") and
//! for a plan with destructive steps (the reason lists them: `#2 fs.deleteFile`).
//!
//! ## Data
//!
//! A JSON object given to [`Policy::load`] is `data` (`data.allowed_dirs`, ...), next to the
//! rules.
//!
//! ## Tests
//!
//! [`run_tests`] runs every `test_*` rule of the given files, OPA's way: a test passes when it
//! evaluates to `true`.
//!
//! # Cost
//!
//! Policies are parsed, analysed and scheduled once, when loaded. A decision takes a prepared
//! engine from a pool (a pop under a mutex; a clone of the compiled one only when every pooled
//! engine is busy), sets `input` (built directly, without a JSON detour), evaluates the rules
//! Isola reads, and puts the engine back. An engine whose evaluation failed is dropped, not
//! reused. See `benches/decide.rs` and `examples/latency.rs`.
//!
//! # Regorus features
//!
//! Built with `std`, `arc` (so a policy is `Send + Sync`), `cache` (compiled globs and regexes
//! kept across decisions), and the `glob`, `regex`, `semver` and `time` builtins. Not built:
//! `http.send`, JSON Schema, YAML, the RVM compiler.

mod builtins;
mod decision;
mod error;
mod input;
mod policy;
mod testing;

pub use builtins::MAX_RANGE;
pub use decision::{Decision, Fired, Outcome, Rule};
pub use error::PolicyError;
pub use input::{
    Call, CallInput, Counts, Effect, EffectCounts, Execution, Mode, Plan, PlanInput, PlanStep,
};
pub use policy::{
    DEFAULT_POLICY, DEFAULT_POLICY_NAME, DEFAULT_TIME_LIMIT, NO_ALLOW_REASON, Policy,
};
pub use testing::{TEST_TIME_LIMIT, TestReport, TestResult, run_tests};

// A policy is shared across threads and tasks: keep it so.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
};
