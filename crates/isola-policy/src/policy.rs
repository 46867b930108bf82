//! The loaded policy and how a decision is made.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, LimitError, Value as RegoValue};
use serde::Deserialize;

use crate::builtins::DeadlineGuard;
use crate::decision::{Decision, Fired, Outcome, Rule};
use crate::error::PolicyError;
use crate::input::{CallInput, PlanInput};

/// The policy Isola applies when none is configured: reads and writes are allowed, a
/// destructive call or a plan with a destructive step needs a person's approval.
pub const DEFAULT_POLICY: &str = include_str!("default.rego");

/// The name the built-in policy has in messages.
pub const DEFAULT_POLICY_NAME: &str = "<built-in default policy>";

/// How long one decision may take unless [`Policy::with_time_limit`] says otherwise.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(100);

/// The reason of a deny-by-default policy whose `allow` is not true.
pub const NO_ALLOW_REASON: &str = "no `allow` rule matched";

/// Work units (statements, loop iterations) between two looks at the clock. A clock read
/// costs about 20 ns; a unit of work is rarely less than 100 ns, so this keeps the check
/// under 1 % of the evaluation and the overrun under a few microseconds.
const CHECK_INTERVAL: NonZeroU32 = NonZeroU32::MIN.saturating_add(31);

/// Engines kept for reuse. More than the number of threads deciding at once is waste.
const POOL_MAX: usize = 64;

/// Rego policies, compiled, ready to decide calls and plans.
///
/// Cheap to clone (the compiled policy is shared) and `Send + Sync`: share one across threads
/// and tasks. Each decision runs on an engine of its own, taken from a small pool of clones of
/// the compiled one, so concurrent decisions do not wait for each other (beyond a pop and a push
/// under a mutex).
#[derive(Clone)]
pub struct Policy {
    shared: Arc<Shared>,
    time_limit: Duration,
    /// The built-in policy: calls are decided by [`default_call`], its exact equivalent in Rust
    /// (a test holds the two together), because a Rego evaluation before every call of every
    /// execution costs a fifth of an MCP round trip with cold caches. Plans still go to Rego.
    native_default: bool,
}

struct Shared {
    /// The compiled engine, prepared (analysed, scheduled) once; `None` if the built-in policy
    /// failed to load, in which case every decision denies with `broken`.
    template: Option<Mutex<Engine>>,
    broken: Option<String>,
    pool: Mutex<Vec<Engine>>,
    sources: Vec<String>,
    defined: Defined,
}

/// Which of Isola's rules the policies declare (in package `isola`). A rule not declared is
/// not evaluated (regorus refuses to evaluate an unknown rule path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Defined {
    deny: bool,
    require_approval: bool,
    allow: bool,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("sources", &self.shared.sources)
            .field("defines", &self.shared.defined)
            .field("time_limit", &self.time_limit)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// The built-in [`DEFAULT_POLICY`].
    pub fn builtin() -> Policy {
        let sources = [(DEFAULT_POLICY_NAME.to_string(), DEFAULT_POLICY.to_string())];
        match Self::from_sources(&sources, None) {
            Ok(policy) => Policy {
                native_default: true,
                ..policy
            },
            // Cannot happen (a test loads it), but if it did, fail closed rather than panic.
            Err(error) => Policy {
                shared: Arc::new(Shared {
                    template: None,
                    broken: Some(format!("the built-in policy does not load: {error}")),
                    pool: Mutex::new(Vec::new()),
                    sources: vec![DEFAULT_POLICY_NAME.to_string()],
                    defined: Defined::default(),
                }),
                time_limit: DEFAULT_TIME_LIMIT,
                native_default: false,
            },
        }
    }

    /// The same policy evaluated by Rego alone (for the built-in one: without its Rust
    /// equivalent). For tests and benchmarks.
    #[must_use]
    pub fn rego_only(mut self) -> Policy {
        self.native_default = false;
        self
    }

    /// Reads and compiles the policy files (Rego v1), with an optional data document
    /// (`data.*`, a JSON object). Every file is parsed now: a syntax error names the file and
    /// its line and column.
    pub fn load(files: &[PathBuf], data: Option<serde_json::Value>) -> Result<Policy, PolicyError> {
        let sources = read_sources(files)?;
        Self::from_sources(&sources, data)
    }

    /// Compiles policies given as `(name, text)`; `name` is what messages call the source.
    pub fn from_sources(
        sources: &[(String, String)],
        data: Option<serde_json::Value>,
    ) -> Result<Policy, PolicyError> {
        let mut engine = compile(sources, data)?;
        let defined = declared_rules(&engine, sources)?;
        // Analyse and schedule the rules now, once: clones of a prepared engine are prepared.
        if let Err(error) = engine.eval_query("true".to_string(), false) {
            let (short, _) = render_error(&error.to_string());
            return Err(PolicyError::Compile {
                files: names(sources),
                message: short,
            });
        }
        Ok(Policy {
            shared: Arc::new(Shared {
                template: Some(Mutex::new(engine)),
                broken: None,
                pool: Mutex::new(Vec::new()),
                sources: sources.iter().map(|(name, _)| name.clone()).collect(),
                defined,
            }),
            time_limit: DEFAULT_TIME_LIMIT,
            native_default: false,
        })
    }

    /// The same policy with another limit on how long one decision may take. A decision that
    /// takes longer denies (`policy error: ... time limit of 50 ms`).
    #[must_use]
    pub fn with_time_limit(mut self, limit: Duration) -> Policy {
        self.time_limit = limit;
        self
    }

    /// The limit on how long one decision may take.
    pub fn time_limit(&self) -> Duration {
        self.time_limit
    }

    /// The names of the loaded sources (file paths as given, or the names given to
    /// [`Policy::from_sources`]), for messages.
    pub fn sources(&self) -> &[String] {
        &self.shared.sources
    }

    /// Whether the policy is deny-by-default: it declares an `allow` rule in package `isola`,
    /// so a call is denied unless `allow` is true.
    pub fn is_deny_by_default(&self) -> bool {
        self.shared.defined.allow
    }

    /// Decides one call.
    pub fn decide_call(&self, input: &CallInput) -> Decision {
        if self.native_default {
            return default_call(input);
        }
        match call_value(input) {
            Ok(value) => self.evaluate(value),
            Err(error) => Decision::failed(
                format!("the input is not a Rego value: {error}"),
                error.to_string(),
            ),
        }
    }

    /// Decides a whole plan before any of it runs.
    pub fn decide_plan(&self, input: &PlanInput) -> Decision {
        self.decide_serialize(input)
    }

    /// Decides on a raw `input` document, shaped like a [`CallInput`] or a [`PlanInput`] (or
    /// anything else a policy may expect; `isola policy check --input FILE.json`).
    pub fn decide(&self, input: &serde_json::Value) -> Decision {
        match RegoValue::deserialize(input) {
            Ok(value) => self.evaluate(value),
            Err(error) => Decision::failed(
                format!("the input is not a Rego value: {error}"),
                error.to_string(),
            ),
        }
    }

    fn decide_serialize<T: serde::Serialize>(&self, input: &T) -> Decision {
        let value = serde_json::to_value(input)
            .map_err(|error| error.to_string())
            .and_then(|json| RegoValue::deserialize(&json).map_err(|error| error.to_string()));
        match value {
            Ok(value) => self.evaluate(value),
            Err(error) => {
                Decision::failed(format!("the input is not a Rego value: {error}"), error)
            }
        }
    }

    fn evaluate(&self, input: RegoValue) -> Decision {
        let start = Instant::now();
        let shared = &*self.shared;
        let Some(mut engine) = self.checkout() else {
            let message = shared.broken.clone().unwrap_or_default();
            return Decision::failed(message.clone(), message);
        };
        engine.set_input(input);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _deadline = DeadlineGuard::set(start, self.time_limit);
            evaluate_rules(&mut engine, shared.defined, start, self.time_limit)
        }));
        match result {
            Ok(Ok(values)) => {
                self.checkin(engine);
                combine(shared.defined, values)
            }
            // An engine that failed is dropped, not reused: its state is not trusted.
            Ok(Err(failure)) => failure.into_decision(),
            Err(_) => {
                let message = "the policy engine panicked".to_string();
                Decision::failed(message.clone(), message)
            }
        }
    }

    fn checkout(&self) -> Option<Engine> {
        let pooled = self
            .shared
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if pooled.is_some() {
            return pooled;
        }
        let template = self.shared.template.as_ref()?;
        let engine = template
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Some(engine)
    }

    fn checkin(&self, engine: Engine) {
        let mut pool = self
            .shared
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pool.len() < POOL_MAX {
            pool.push(engine);
        }
    }
}

/// `input` for a call, built directly (the same document as serialising a [`CallInput`], at
/// a third of the cost: this runs before every tool call).
fn call_value(input: &CallInput) -> Result<RegoValue, serde_json::Error> {
    fn object<const N: usize>(fields: [(&str, RegoValue); N]) -> RegoValue {
        RegoValue::from(
            fields
                .into_iter()
                .map(|(key, value)| (RegoValue::from(key), value))
                .collect::<BTreeMap<_, _>>(),
        )
    }
    fn string(text: &str) -> RegoValue {
        RegoValue::from(text)
    }
    let call = &input.call;
    let execution = &input.execution;
    let counts = &input.counts;
    let functions = counts
        .function
        .iter()
        .map(|(name, n)| (RegoValue::from(name.as_str()), RegoValue::from(*n)))
        .collect::<BTreeMap<_, _>>();
    Ok(object([
        (
            "call",
            object([
                ("server", string(&call.server)),
                ("tool", string(&call.tool)),
                ("function", string(&call.function)),
                ("arguments", RegoValue::deserialize(&call.arguments)?),
                ("effect", string(call.effect.as_str())),
            ]),
        ),
        (
            "execution",
            object([
                ("id", string(&execution.id)),
                (
                    "session",
                    execution.session.as_deref().map_or(RegoValue::Null, string),
                ),
                ("principal", string(&execution.principal)),
                ("mode", string(execution.mode.as_str())),
            ]),
        ),
        (
            "counts",
            object([
                ("function", RegoValue::from(functions)),
                (
                    "effect",
                    object([
                        ("read", RegoValue::from(counts.effect.read)),
                        ("write", RegoValue::from(counts.effect.write)),
                        ("destructive", RegoValue::from(counts.effect.destructive)),
                    ]),
                ),
            ]),
        ),
    ]))
}

/// The values of Isola's three rules for one input.
struct Values {
    deny: RegoValue,
    require_approval: RegoValue,
    allow: RegoValue,
}

/// Why a decision could not be made.
enum Failure {
    /// The evaluation ran past the time limit, while evaluating `rule`.
    Time { rule: &'static str, limit: Duration },
    /// Regorus failed (a conflict, a builtin's error, ...).
    Engine { rule: &'static str, message: String },
    /// A rule has a value Isola cannot read.
    Shape(String),
}

impl Failure {
    fn into_decision(self) -> Decision {
        match self {
            Self::Time { rule, limit } => {
                let message = format!(
                    "evaluating {rule} took longer than the time limit of {}",
                    format_duration(limit)
                );
                Decision::failed(message.clone(), message)
            }
            Self::Engine { rule, message } => {
                let (short, full) = render_error(&message);
                Decision::failed(
                    format!("evaluating {rule}: {short}"),
                    format!("evaluating {rule}: {full}"),
                )
            }
            Self::Shape(message) => Decision::failed(message.clone(), message),
        }
    }
}

fn evaluate_rules(
    engine: &mut Engine,
    defined: Defined,
    start: Instant,
    limit: Duration,
) -> Result<Values, Failure> {
    let mut eval = |wanted: bool, rule: &'static str| -> Result<RegoValue, Failure> {
        if !wanted {
            return Ok(RegoValue::Undefined);
        }
        // One budget for the whole decision: each rule gets what the previous ones left.
        let remaining = limit.saturating_sub(start.elapsed());
        if remaining.is_zero() {
            return Err(Failure::Time { rule, limit });
        }
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: remaining,
            check_interval: CHECK_INTERVAL,
        });
        engine.eval_rule(rule.to_string()).map_err(|error| {
            // Regorus's timer gives a LimitError; the guarded builtins' deadline comes back
            // as an extension's error, turned into text: an error once the budget is spent
            // is the time limit either way.
            let timed_out = start.elapsed() >= limit
                || error.chain().any(|cause| {
                    matches!(
                        cause.downcast_ref::<LimitError>(),
                        Some(LimitError::TimeLimitExceeded { .. })
                    )
                });
            if timed_out {
                Failure::Time { rule, limit }
            } else {
                Failure::Engine {
                    rule,
                    message: error.to_string(),
                }
            }
        })
    };
    Ok(Values {
        deny: eval(defined.deny, "data.isola.deny")?,
        require_approval: eval(defined.require_approval, "data.isola.require_approval")?,
        allow: eval(defined.allow, "data.isola.allow")?,
    })
}

fn combine(defined: Defined, values: Values) -> Decision {
    let deny = match reasons(&values.deny, "data.isola.deny") {
        Ok(reasons) => reasons,
        Err(failure) => return failure.into_decision(),
    };
    let require_approval = match reasons(&values.require_approval, "data.isola.require_approval") {
        Ok(reasons) => reasons,
        Err(failure) => return failure.into_decision(),
    };
    let allowed = values.allow == RegoValue::Bool(true);

    let mut fired = Vec::with_capacity(deny.len() + require_approval.len() + 1);
    fired.extend(deny.iter().map(|message| Fired {
        rule: Rule::Deny,
        message: Some(message.clone()),
    }));
    fired.extend(require_approval.iter().map(|message| Fired {
        rule: Rule::RequireApproval,
        message: Some(message.clone()),
    }));
    if allowed {
        fired.push(Fired {
            rule: Rule::Allow,
            message: None,
        });
    }

    let (outcome, reasons) = if !deny.is_empty() {
        (Outcome::Deny, deny)
    } else if !require_approval.is_empty() {
        (Outcome::RequireApproval, require_approval)
    } else if defined.allow && !allowed {
        (Outcome::Deny, vec![NO_ALLOW_REASON.to_string()])
    } else {
        (Outcome::Allow, Vec::new())
    };
    Decision {
        outcome,
        reasons,
        fired,
        error: None,
    }
}

/// The reasons a `deny` or `require_approval` value gives: its members, strings or objects
/// with a `msg` (other members are shown as JSON).
fn reasons(value: &RegoValue, rule: &str) -> Result<Vec<String>, Failure> {
    match value {
        RegoValue::Undefined | RegoValue::Bool(false) => Ok(Vec::new()),
        // `deny if ...` (a complete rule) where `deny contains msg if ...` was meant.
        RegoValue::Bool(true) => Ok(vec![format!("{rule} is true (a rule without a reason)")]),
        RegoValue::Set(set) => Ok(set.iter().map(reason).collect()),
        RegoValue::Array(array) => Ok(array.iter().map(reason).collect()),
        other => Err(Failure::Shape(format!(
            "{rule} must be a set of reasons (strings, or objects with a `msg`), not {}",
            kind(other)
        ))),
    }
}

fn reason(member: &RegoValue) -> String {
    match member {
        RegoValue::String(text) => text.to_string(),
        RegoValue::Object(object) => match object.get(&RegoValue::from("msg")) {
            Some(RegoValue::String(text)) => text.to_string(),
            _ => json(member),
        },
        other => json(other),
    }
}

fn json(value: &RegoValue) -> String {
    value
        .to_json_str()
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| format!("{value:?}"))
}

fn kind(value: &RegoValue) -> &'static str {
    match value {
        RegoValue::Null => "null",
        RegoValue::Bool(_) => "a boolean",
        RegoValue::Number(_) => "a number",
        RegoValue::String(_) => "a string",
        RegoValue::Array(_) => "an array",
        RegoValue::Set(_) => "a set",
        RegoValue::Object(_) => "an object",
        RegoValue::Undefined => "undefined",
    }
}

fn format_duration(limit: Duration) -> String {
    if limit.as_micros() < 1000 {
        format!("{} µs", limit.as_micros())
    } else if limit.subsec_micros().is_multiple_of(1000) {
        format!("{} ms", limit.as_millis())
    } else {
        format!("{:.3} ms", limit.as_secs_f64() * 1000.0)
    }
}

/// The policy files' texts, named by their paths as given.
pub(crate) fn read_sources(files: &[PathBuf]) -> Result<Vec<(String, String)>, PolicyError> {
    files
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|text| (path.display().to_string(), text))
                .map_err(|source| PolicyError::Read {
                    path: path.clone(),
                    source,
                })
        })
        .collect()
}

/// An engine with these sources parsed and `data` added. Builtin errors are strict (an error,
/// not undefined): a failing builtin in a `deny` rule must not let the call through.
pub(crate) fn compile(
    sources: &[(String, String)],
    data: Option<serde_json::Value>,
) -> Result<Engine, PolicyError> {
    let mut engine = Engine::new();
    engine.set_strict_builtin_errors(true);
    crate::builtins::register(&mut engine).map_err(|error| PolicyError::Engine {
        message: error.to_string(),
    })?;
    let mut seen = std::collections::HashSet::new();
    for (name, text) in sources {
        if !seen.insert(name.as_str()) {
            return Err(PolicyError::DuplicateSource { name: name.clone() });
        }
        engine
            .add_policy(name.clone(), text.clone())
            .map_err(|error| PolicyError::Parse {
                file: name.clone(),
                message: render_error(&error.to_string()).1,
            })?;
    }
    if let Some(data) = data {
        let value = RegoValue::deserialize(&data).map_err(|error| PolicyError::Data {
            message: error.to_string(),
        })?;
        engine.add_data(value).map_err(|error| PolicyError::Data {
            message: render_error(&error.to_string()).0,
        })?;
    }
    Ok(engine)
}

/// Which of `deny`, `require_approval` and `allow` the modules of package `isola` declare:
/// regorus looks at the rule heads as written (`allow if ...`, `default allow := false`,
/// `allow := ...`, `deny contains ...`), without evaluating anything.
fn declared_rules(engine: &Engine, sources: &[(String, String)]) -> Result<Defined, PolicyError> {
    let engine_error = |error: &dyn fmt::Display| PolicyError::Engine {
        message: error.to_string(),
    };
    let packages = engine
        .get_policy_package_components()
        .map_err(|error| engine_error(&error))?;
    let mut defined = Defined::default();
    let mut any_isola = false;
    for package in &packages {
        if package.components != ["isola"] {
            continue;
        }
        any_isola = true;
        let file = package.source_file.as_str();
        let declares = |rule: &str| {
            engine
                .has_declared_rule_rooted_at(file, rule)
                .map_err(|error| engine_error(&error))
        };
        defined.deny |= declares("deny")?;
        defined.require_approval |= declares("require_approval")?;
        defined.allow |= declares("allow")?;
    }
    if !any_isola {
        let mut found: Vec<String> = packages
            .iter()
            .map(|package| {
                format!(
                    "{} in {}",
                    package.components.join("."),
                    package.source_file
                )
            })
            .collect();
        if found.is_empty() && sources.is_empty() {
            found.push("no policy file".to_string());
        }
        return Err(PolicyError::NoIsolaPackage {
            found: found.join(", "),
        });
    }
    Ok(defined)
}

fn names(sources: &[(String, String)]) -> String {
    sources
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Regorus's messages look like `\n--> file:3:5\n  |\n3 | line\n  |     ^\nerror: what`.
/// Returns `file:3:5: what` (one line, for a reason) and that followed by the source lines
/// (for a report).
pub(crate) fn render_error(text: &str) -> (String, String) {
    let text = text.trim();
    let mut location = None;
    let mut what = None;
    let mut snippet = Vec::new();
    let mut before = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("--> ") {
            location.get_or_insert(rest);
        } else if let Some(rest) = trimmed.strip_prefix("error: ") {
            what = Some(rest);
        } else if location.is_some() && what.is_none() {
            snippet.push(line);
        } else if location.is_none() && !trimmed.is_empty() {
            before.push(trimmed);
        }
    }
    match (location, what) {
        (Some(location), Some(what)) => {
            let mut short = String::new();
            for line in &before {
                short.push_str(line);
                short.push(' ');
            }
            short.push_str(location);
            short.push_str(": ");
            short.push_str(what);
            let full = format!("{short}\n{}", snippet.join("\n"));
            (short, full)
        }
        _ => {
            let short = text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            (short, text.to_string())
        }
    }
}

/// [`DEFAULT_POLICY`]'s decision about one call, in Rust: a destructive call requires approval.
fn default_call(input: &CallInput) -> Decision {
    if input.call.effect != crate::input::Effect::Destructive {
        return Decision {
            outcome: Outcome::Allow,
            reasons: Vec::new(),
            fired: Vec::new(),
            error: None,
        };
    }
    let msg = format!(
        "{} is destructive: the default policy asks a person",
        input.call.function
    );
    Decision {
        outcome: Outcome::RequireApproval,
        reasons: vec![msg.clone()],
        fired: vec![Fired {
            rule: Rule::RequireApproval,
            message: Some(msg),
        }],
        error: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn errors_are_rendered_on_one_line_with_their_location() {
        let text =
            "\n--> a.rego:3:5\n  |\n3 | deny contains x if {\n  |     ^\nerror: unexpected token";
        let (short, full) = render_error(text);
        assert_eq!(short, "a.rego:3:5: unexpected token");
        assert!(full.starts_with("a.rego:3:5: unexpected token\n"), "{full}");
        assert!(full.contains("3 | deny contains x if {"), "{full}");
        assert_eq!(render_error("plain\nerror").0, "plain error");
    }

    #[test]
    fn the_call_input_built_directly_is_the_serialised_one() {
        use crate::input::{Call, Counts, Effect, Execution, Mode};
        let mut counts = Counts::default();
        counts.add("fs.writeFile", Effect::Write);
        counts.add("fs.readFile", Effect::Read);
        for session in [None, Some("s_1".to_string())] {
            let input = CallInput {
                call: Call {
                    server: "fs".to_string(),
                    tool: "write_file".to_string(),
                    function: "fs.writeFile".to_string(),
                    arguments: serde_json::json!({"path": "/a", "n": [1, 2.5, null, true]}),
                    effect: Effect::Destructive,
                },
                execution: Execution {
                    id: "ex".to_string(),
                    session,
                    principal: "ana".to_string(),
                    mode: Mode::Apply,
                },
                counts: counts.clone(),
            };
            let serialised =
                RegoValue::deserialize(&serde_json::to_value(&input).unwrap()).unwrap();
            assert_eq!(call_value(&input).unwrap(), serialised);
        }
    }

    #[test]
    fn durations_are_shown_in_the_unit_people_set() {
        assert_eq!(format_duration(Duration::from_millis(50)), "50 ms");
        assert_eq!(format_duration(Duration::from_micros(250)), "250 µs");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.500 ms");
    }
}
