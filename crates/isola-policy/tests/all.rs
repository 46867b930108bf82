//! isola-policy against real Rego: the contract of the crate docs, one behaviour per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isola_policy::{
    Call, CallInput, Counts, Decision, Effect, Execution, Fired, Mode, NO_ALLOW_REASON, Outcome,
    Plan, PlanInput, PlanStep, Policy, PolicyError, Rule, run_tests,
};
use serde_json::{Value, json};

fn execution() -> Execution {
    Execution {
        id: "ex_1".to_string(),
        session: None,
        principal: "ana".to_string(),
        mode: Mode::Live,
    }
}

fn call(function: &str, effect: Effect, arguments: Value) -> CallInput {
    let (server, tool) = function.split_once('.').unwrap();
    CallInput {
        call: Call {
            server: server.to_string(),
            tool: tool.to_string(),
            function: function.to_string(),
            arguments,
            effect,
        },
        execution: execution(),
        counts: Counts::default(),
    }
}

fn plan(steps: &[(&str, Effect)]) -> PlanInput {
    let steps = steps
        .iter()
        .enumerate()
        .map(|(seq, (function, effect))| PlanStep {
            seq: u32::try_from(seq).unwrap(),
            function: function.to_string(),
            server: "fs".to_string(),
            tool: "tool".to_string(),
            arguments: json!({}),
            effect: *effect,
        })
        .collect();
    PlanInput {
        plan: Plan::new("plan_1", steps),
        execution: Execution {
            mode: Mode::Plan,
            ..execution()
        },
    }
}

fn policy(text: &str) -> Policy {
    Policy::from_sources(&[("policy.rego".to_string(), text.to_string())], None).unwrap()
}

/// The one assertion most tests make: this outcome, for these reasons.
#[track_caller]
fn check(decision: &Decision, outcome: Outcome, reasons: &[&str]) {
    assert_eq!(decision.outcome, outcome, "{decision:?}");
    assert_eq!(decision.reasons, reasons, "{decision:?}");
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

// The default policy.

#[test]
fn the_default_policy_allows_reads_and_writes() {
    let policy = Policy::builtin();
    assert_eq!(policy.sources(), [isola_policy::DEFAULT_POLICY_NAME]);
    assert!(!policy.is_deny_by_default());
    let read = policy.decide_call(&call("fs.readFile", Effect::Read, json!({"path": "/a"})));
    check(&read, Outcome::Allow, &[]);
    assert_eq!(read.error, None);
    let write = policy.decide_call(&call("fs.writeFile", Effect::Write, json!({"path": "/a"})));
    check(&write, Outcome::Allow, &[]);
}

/// The built-in policy decides calls in Rust; its Rego text must say exactly the same.
#[test]
fn the_default_policys_rust_and_rego_agree() {
    let native = Policy::builtin();
    let rego = Policy::builtin().rego_only();
    for effect in [Effect::Read, Effect::Write, Effect::Destructive] {
        for function in ["fs.deleteFile", "github.create_issue", "x.a\"b%s"] {
            let input = call(function, effect, json!({"path": "/x"}));
            assert_eq!(
                native.decide_call(&input),
                rego.decide_call(&input),
                "{function} {effect:?}"
            );
        }
    }
}

#[test]
fn the_default_policy_asks_a_person_for_a_destructive_call() {
    let decision =
        Policy::builtin().decide_call(&call("fs.deleteFile", Effect::Destructive, json!({})));
    check(
        &decision,
        Outcome::RequireApproval,
        &["fs.deleteFile is destructive: the default policy asks a person"],
    );
    assert_eq!(
        decision.fired,
        [Fired {
            rule: Rule::RequireApproval,
            message: Some(
                "fs.deleteFile is destructive: the default policy asks a person".to_string()
            ),
        }]
    );
}

#[test]
fn the_default_policy_asks_a_person_for_a_plan_with_destructive_steps() {
    let policy = Policy::builtin();
    let decision = policy.decide_plan(&plan(&[
        ("fs.readFile", Effect::Read),
        ("fs.deleteFile", Effect::Destructive),
        ("fs.writeFile", Effect::Write),
        ("db.drop", Effect::Destructive),
    ]));
    check(
        &decision,
        Outcome::RequireApproval,
        &[
            "the plan has destructive steps (#2 fs.deleteFile, #4 db.drop): the default policy asks a person",
        ],
    );
    let writes = policy.decide_plan(&plan(&[
        ("fs.writeFile", Effect::Write),
        ("fs.readFile", Effect::Read),
    ]));
    check(&writes, Outcome::Allow, &[]);
}

#[test]
fn a_decision_serialises_with_snake_case_outcomes() {
    let decision =
        Policy::builtin().decide_call(&call("fs.deleteFile", Effect::Destructive, json!({})));
    let value = serde_json::to_value(&decision).unwrap();
    assert_eq!(value["outcome"], "require_approval");
    assert_eq!(value["fired"][0]["rule"], "require_approval");
    assert_eq!(value["error"], Value::Null);
}

#[test]
fn the_call_input_has_the_documented_shape() {
    let mut input = call("fs.writeFile", Effect::Write, json!({"path": "/srv/out/a"}));
    input.counts.add("fs.writeFile", Effect::Write);
    input.counts.add("fs.writeFile", Effect::Write);
    input.counts.add("fs.readFile", Effect::Read);
    assert_eq!(
        serde_json::to_value(&input).unwrap(),
        json!({
            "call": {"server": "fs", "tool": "writeFile", "function": "fs.writeFile",
                     "arguments": {"path": "/srv/out/a"}, "effect": "write"},
            "execution": {"id": "ex_1", "session": null, "principal": "ana", "mode": "live"},
            "counts": {"function": {"fs.readFile": 1, "fs.writeFile": 2},
                       "effect": {"read": 1, "write": 2, "destructive": 0}}
        })
    );
    let plan = serde_json::to_value(plan(&[("fs.deleteFile", Effect::Destructive)])).unwrap();
    assert_eq!(plan["plan"]["counts"]["effect"]["destructive"], 1);
    assert_eq!(plan["plan"]["steps"][0]["seq"], 0);
    assert_eq!(plan["execution"]["mode"], "plan");
    assert!(plan.get("call").is_none());
}

// Rules.

const OUTSIDE_OUT: &str = r#"
package isola

deny contains msg if {
    input.call.function == "fs.writeFile"
    not startswith(input.call.arguments.path, "/srv/out/")
    msg := sprintf("fs.writeFile may only write under /srv/out/, not %s", [input.call.arguments.path])
}
"#;

#[test]
fn a_deny_rule_denies_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "paths.rego", OUTSIDE_OUT);
    let policy = Policy::load(std::slice::from_ref(&file), None).unwrap();
    assert_eq!(policy.sources(), [file.display().to_string()]);

    let outside = policy.decide_call(&call(
        "fs.writeFile",
        Effect::Write,
        json!({"path": "/etc/passwd"}),
    ));
    check(
        &outside,
        Outcome::Deny,
        &["fs.writeFile may only write under /srv/out/, not /etc/passwd"],
    );
    let inside = policy.decide_call(&call(
        "fs.writeFile",
        Effect::Write,
        json!({"path": "/srv/out/a.txt"}),
    ));
    check(&inside, Outcome::Allow, &[]);
    assert!(inside.fired.is_empty());
}

#[test]
fn deny_wins_over_require_approval() {
    let policy = policy(
        r#"
package isola

require_approval contains "writes need a look" if input.call.effect == "write"
deny contains {"msg": "no writes to /etc", "code": 7} if startswith(input.call.arguments.path, "/etc")
"#,
    );
    let decision = policy.decide_call(&call(
        "fs.writeFile",
        Effect::Write,
        json!({"path": "/etc/x"}),
    ));
    check(&decision, Outcome::Deny, &["no writes to /etc"]);
    assert_eq!(
        decision.fired,
        [
            Fired {
                rule: Rule::Deny,
                message: Some("no writes to /etc".to_string())
            },
            Fired {
                rule: Rule::RequireApproval,
                message: Some("writes need a look".to_string())
            },
        ]
    );
    let elsewhere = policy.decide_call(&call(
        "fs.writeFile",
        Effect::Write,
        json!({"path": "/srv/x"}),
    ));
    check(
        &elsewhere,
        Outcome::RequireApproval,
        &["writes need a look"],
    );
}

#[test]
fn a_deny_by_default_policy_denies_what_allow_does_not_match() {
    let policy = policy(
        r#"
package isola

default allow := false
allow if input.call.effect == "read"
"#,
    );
    assert!(policy.is_deny_by_default());
    let read = policy.decide_call(&call("fs.readFile", Effect::Read, json!({})));
    check(&read, Outcome::Allow, &[]);
    assert_eq!(
        read.fired,
        [Fired {
            rule: Rule::Allow,
            message: None
        }]
    );
    let write = policy.decide_call(&call("fs.writeFile", Effect::Write, json!({})));
    check(&write, Outcome::Deny, &[NO_ALLOW_REASON]);
}

#[test]
fn allow_without_a_default_is_deny_by_default_too() {
    // No `default`: `allow` is undefined for a write, which is not true.
    let policy = policy("package isola\nallow if input.call.effect == \"read\"\n");
    assert!(policy.is_deny_by_default());
    check(
        &policy.decide_call(&call("fs.writeFile", Effect::Write, json!({}))),
        Outcome::Deny,
        &["no `allow` rule matched"],
    );
    check(
        &policy.decide_call(&call("fs.readFile", Effect::Read, json!({}))),
        Outcome::Allow,
        &[],
    );
}

#[test]
fn allow_declared_in_another_file_of_the_package_counts() {
    let sources = [
        ("deny.rego".to_string(), OUTSIDE_OUT.to_string()),
        (
            "allow.rego".to_string(),
            "package isola\nallow if input.call.server == \"fs\"\n".to_string(),
        ),
        // `allow` in another package is not Isola's.
        (
            "other.rego".to_string(),
            "package helpers\nallow := true\n".to_string(),
        ),
    ];
    let policy = Policy::from_sources(&sources, None).unwrap();
    assert!(policy.is_deny_by_default());
    check(
        &policy.decide_call(&call("db.query", Effect::Read, json!({}))),
        Outcome::Deny,
        &[NO_ALLOW_REASON],
    );
    check(
        &policy.decide_call(&call("fs.readFile", Effect::Read, json!({}))),
        Outcome::Allow,
        &[],
    );

    let not_isola = Policy::from_sources(
        &[
            ("deny.rego".to_string(), OUTSIDE_OUT.to_string()),
            (
                "other.rego".to_string(),
                "package helpers\nallow := false\n".to_string(),
            ),
        ],
        None,
    )
    .unwrap();
    assert!(!not_isola.is_deny_by_default());
    check(
        &not_isola.decide_call(&call("db.query", Effect::Read, json!({}))),
        Outcome::Allow,
        &[],
    );
}

#[test]
fn approval_is_required_after_three_writes() {
    let policy = policy(
        r#"
package isola

require_approval contains msg if {
    input.call.effect == "write"
    input.counts.effect.write >= 3
    msg := sprintf("%d writes already: the next one needs a person", [input.counts.effect.write])
}
"#,
    );
    let mut input = call("fs.writeFile", Effect::Write, json!({}));
    for _ in 0..3 {
        check(&policy.decide_call(&input), Outcome::Allow, &[]);
        input.counts.add("fs.writeFile", Effect::Write);
    }
    check(
        &policy.decide_call(&input),
        Outcome::RequireApproval,
        &["3 writes already: the next one needs a person"],
    );
}

#[test]
fn data_is_read_next_to_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        &dir,
        "dirs.rego",
        r#"
package isola

deny contains msg if {
    path := input.call.arguments.path
    not any_prefix(path)
    msg := sprintf("%s is not under an allowed directory", [path])
}

any_prefix(path) if {
    some dir in data.allowed_dirs
    startswith(path, dir)
}
"#,
    );
    let data = json!({"allowed_dirs": ["/srv/out/", "/tmp/"]});
    let policy = Policy::load(&[file], Some(data)).unwrap();
    check(
        &policy.decide_call(&call(
            "fs.writeFile",
            Effect::Write,
            json!({"path": "/tmp/a"}),
        )),
        Outcome::Allow,
        &[],
    );
    check(
        &policy.decide_call(&call(
            "fs.writeFile",
            Effect::Write,
            json!({"path": "/home/a"}),
        )),
        Outcome::Deny,
        &["/home/a is not under an allowed directory"],
    );
}

#[test]
fn a_raw_input_is_decided_like_a_typed_one() {
    let policy = Policy::builtin();
    let raw = serde_json::to_value(call("fs.deleteFile", Effect::Destructive, json!({}))).unwrap();
    assert_eq!(
        policy.decide(&raw),
        policy.decide_call(&call("fs.deleteFile", Effect::Destructive, json!({})))
    );
    check(&policy.decide(&json!({})), Outcome::Allow, &[]);
}

#[test]
fn a_rule_written_as_a_boolean_still_denies() {
    let policy = policy("package isola\ndeny if input.call.effect == \"write\"\n");
    check(
        &policy.decide_call(&call("fs.writeFile", Effect::Write, json!({}))),
        Outcome::Deny,
        &["data.isola.deny is true (a rule without a reason)"],
    );
    check(
        &policy.decide_call(&call("fs.readFile", Effect::Read, json!({}))),
        Outcome::Allow,
        &[],
    );
}

#[test]
fn a_rule_of_the_wrong_shape_denies() {
    let policy = policy("package isola\nrequire_approval := 3\n");
    let decision = policy.decide_call(&call("fs.readFile", Effect::Read, json!({})));
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(
        decision.reasons,
        [
            "policy error: data.isola.require_approval must be a set of reasons (strings, or objects with a `msg`), not a number"
        ]
    );
}

// Errors.

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        &dir,
        "broken.rego",
        "package isola\n\ndeny contains msg if {\n    msg := \n}\n",
    );
    let error = Policy::load(std::slice::from_ref(&file), None).unwrap_err();
    let shown = error.to_string();
    assert!(matches!(error, PolicyError::Parse { .. }), "{error:?}");
    let name = file.display().to_string();
    assert!(
        shown.contains(&format!("{name}:5:1")) || shown.contains(&format!("{name}:4:")),
        "{shown}"
    );
    assert!(shown.contains("hint:"), "{shown}");
}

#[test]
fn a_missing_file_is_named() {
    let error = Policy::load(&[PathBuf::from("/nonexistent/policy.rego")], None).unwrap_err();
    assert!(matches!(error, PolicyError::Read { .. }), "{error:?}");
    assert!(
        error.to_string().contains("/nonexistent/policy.rego"),
        "{error}"
    );
}

#[test]
fn a_policy_outside_package_isola_is_refused() {
    let error = Policy::from_sources(
        &[(
            "p.rego".to_string(),
            "package isolation\ndeny contains \"x\"\n".to_string(),
        )],
        None,
    )
    .unwrap_err();
    assert!(
        matches!(error, PolicyError::NoIsolaPackage { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("isolation in p.rego"), "{error}");
}

#[test]
fn an_unsafe_variable_is_a_load_error() {
    let error = Policy::from_sources(
        &[(
            "p.rego".to_string(),
            "package isola\ndeny contains msg if { x > 1 }\n".to_string(),
        )],
        None,
    )
    .unwrap_err();
    assert!(matches!(error, PolicyError::Compile { .. }), "{error:?}");
    assert!(error.to_string().contains("p.rego"), "{error}");
}

#[test]
fn data_that_is_not_an_object_is_refused() {
    let error = Policy::from_sources(
        &[("p.rego".to_string(), OUTSIDE_OUT.to_string())],
        Some(json!([1])),
    )
    .unwrap_err();
    assert!(matches!(error, PolicyError::Data { .. }), "{error:?}");
}

#[test]
fn a_conflict_at_runtime_denies_with_the_policy_error() {
    let policy = policy(
        r#"
package isola

level := "low" if input.call.effect == "write"
level := "high" if input.call.server == "fs"

deny contains "too high" if level == "high"
"#,
    );
    // Only one value: no conflict.
    check(
        &policy.decide_call(&call("fs.readFile", Effect::Read, json!({}))),
        Outcome::Deny,
        &["too high"],
    );
    // Two values of a complete rule.
    let decision = policy.decide_call(&call("fs.writeFile", Effect::Write, json!({})));
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(decision.reasons.len(), 1);
    assert!(
        decision.reasons[0].starts_with("policy error: evaluating data.isola.deny: policy.rego:"),
        "{decision:?}"
    );
    assert!(
        decision
            .error
            .as_deref()
            .unwrap_or("")
            .contains("policy.rego"),
        "{decision:?}"
    );
    // The policy keeps working after an error.
    check(
        &policy.decide_call(&call("fs.readFile", Effect::Read, json!({}))),
        Outcome::Deny,
        &["too high"],
    );
}

#[test]
fn a_builtin_error_denies_rather_than_making_deny_undefined() {
    // `to_number("many")` fails: with non-strict builtins the rule would be undefined, and
    // the write allowed.
    let policy = policy(
        r#"
package isola

deny contains "too many" if to_number(input.call.arguments.n) > 5
"#,
    );
    check(
        &policy.decide_call(&call("fs.writeFile", Effect::Write, json!({"n": "7"}))),
        Outcome::Deny,
        &["too many"],
    );
    let decision = policy.decide_call(&call("fs.writeFile", Effect::Write, json!({"n": "many"})));
    assert_eq!(decision.outcome, Outcome::Deny, "{decision:?}");
    assert!(
        decision.reasons[0].starts_with("policy error:"),
        "{decision:?}"
    );
}

#[test]
fn a_long_evaluation_is_stopped_at_the_time_limit() {
    let policy = policy(
        r#"
package isola

deny contains "big" if {
    count([x | some x in numbers.range(1, 5000000); x % 7 == 0]) > 3
}
"#,
    )
    .with_time_limit(Duration::from_millis(50));
    assert_eq!(policy.time_limit(), Duration::from_millis(50));
    let start = Instant::now();
    let decision = policy.decide_call(&call("fs.readFile", Effect::Read, json!({})));
    let took = start.elapsed();
    check(
        &decision,
        Outcome::Deny,
        &["policy error: evaluating data.isola.deny took longer than the time limit of 50 ms"],
    );
    // Generous, for a loaded machine: without the limit this takes seconds.
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[test]
fn a_huge_range_is_refused_before_it_is_built() {
    // Regorus's numbers.range would build 100 million numbers before its timer could look.
    let policy = policy(
        r#"
package isola

deny contains "big" if {
    count([x | some x in numbers.range(1, 100000000); x % 7 == 0]) > 3
}
"#,
    )
    .with_time_limit(Duration::from_millis(50));
    let start = Instant::now();
    let decision = policy.decide_call(&call("fs.readFile", Effect::Read, json!({})));
    let took = start.elapsed();
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(decision.reasons.len(), 1);
    assert!(
        decision.reasons[0].starts_with("policy error: evaluating data.isola.deny:")
            && decision.reasons[0].ends_with(&format!(
                "numbers.range(1, 100000000) would make 100000000 numbers; Isola allows at most {}",
                isola_policy::MAX_RANGE
            )),
        "{decision:?}"
    );
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[test]
fn the_guarded_ranges_give_the_builtins_results() {
    let policy = policy(
        r#"
package isola

deny contains "numbers.range" if numbers.range(1, 3) != [1, 2, 3]
deny contains "numbers.range down" if numbers.range(3, 1) != [3, 2, 1]
deny contains "numbers.range one" if numbers.range(-2, -2) != [-2]
deny contains "numbers.range_step" if numbers.range_step(1, 10, 3) != [1, 4, 7, 10]
deny contains "numbers.range_step down" if numbers.range_step(10, 1, 4) != [10, 6, 2]
"#,
    );
    check(
        &policy.decide_call(&call("fs.readFile", Effect::Read, json!({}))),
        Outcome::Allow,
        &[],
    );
    let bad_step = self::policy(
        "package isola\ndeny contains \"x\" if count(numbers.range_step(1, 10, 0)) > 0\n",
    );
    let decision = bad_step.decide_call(&call("fs.readFile", Effect::Read, json!({})));
    assert!(
        decision.reasons[0].contains("numbers.range_step: step must be a positive integer, not 0"),
        "{decision:?}"
    );
}

#[test]
fn a_loop_in_a_comprehension_is_stopped_at_the_time_limit() {
    let policy = policy(
        r#"
package isola

xs := numbers.range(1, 2000)

deny contains "pairs" if {
    count({[a, b, c] | some a in xs; some b in xs; some c in xs; a + b == c}) > 0
}
"#,
    )
    .with_time_limit(Duration::from_millis(20));
    let start = Instant::now();
    let decision = policy.decide_call(&call("fs.readFile", Effect::Read, json!({})));
    let took = start.elapsed();
    check(
        &decision,
        Outcome::Deny,
        &["policy error: evaluating data.isola.deny took longer than the time limit of 20 ms"],
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

// Tests of policies.

#[test]
fn run_tests_reports_each_test_rule() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_file(&dir, "paths.rego", OUTSIDE_OUT);
    let tests = write_file(
        &dir,
        "paths_test.rego",
        r#"
package isola.paths_test

import data.isola

test_outside_is_denied if {
    count(isola.deny) == 1 with input as {"call": {"function": "fs.writeFile", "arguments": {"path": "/etc/x"}}}
}

test_inside_is_denied_too if {
    count(isola.deny) == 1 with input as {"call": {"function": "fs.writeFile", "arguments": {"path": "/srv/out/x"}}}
}

test_errors if {
    to_number("x") > 1
}

helper := 1
"#,
    );
    let report = run_tests(&[policy, tests.clone()], None).unwrap();
    let summary: Vec<(&str, &str, bool)> = report
        .tests
        .iter()
        .map(|test| (test.package.as_str(), test.name.as_str(), test.passed))
        .collect();
    assert_eq!(
        summary,
        [
            ("isola.paths_test", "test_outside_is_denied", true),
            ("isola.paths_test", "test_inside_is_denied_too", false),
            ("isola.paths_test", "test_errors", false),
        ]
    );
    assert_eq!(report.tests[0].file, tests.display().to_string());
    assert_eq!(report.tests[0].error, None);
    assert_eq!(report.tests[1].error, None);
    assert!(report.tests[2].error.is_some(), "{report:?}");
    assert_eq!(
        (report.passed(), report.failed(), report.all_passed()),
        (1, 2, false)
    );
}

#[test]
fn run_tests_refuses_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write_file(&dir, "x_test.rego", "package t\ntest_x if {\n");
    let error = run_tests(&[broken], None).unwrap_err();
    assert!(matches!(error, PolicyError::Parse { .. }), "{error:?}");
    assert!(error.to_string().contains("x_test.rego:"), "{error}");
}

// Sharing.

#[test]
fn decisions_from_several_threads_agree() {
    let policy = Arc::new(policy(OUTSIDE_OUT));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let policy = Arc::clone(&policy);
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in 0..200 {
                    let path = if (i + t) % 2 == 0 {
                        "/srv/out/a"
                    } else {
                        "/etc/a"
                    };
                    let decision = policy.decide_call(&call(
                        "fs.writeFile",
                        Effect::Write,
                        json!({"path": path}),
                    ));
                    outcomes.push((path, decision.outcome));
                }
                outcomes
            })
        })
        .collect();
    let mut seen = 0;
    for thread in threads {
        for (path, outcome) in thread.join().unwrap() {
            let expected = if path == "/etc/a" {
                Outcome::Deny
            } else {
                Outcome::Allow
            };
            assert_eq!(outcome, expected, "{path}");
            seen += 1;
        }
    }
    assert_eq!(seen, 800);
}
