//! The cost of one decision, made before every tool call:
//! `cargo bench -p isola-policy --bench decide`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use isola_policy::{Call, CallInput, Counts, Effect, Execution, Mode, Outcome, Policy};
use serde_json::json;

const FIFTY_RULES: &str = include_str!("fifty_rules.rego");

fn input(function: &str, effect: Effect, path: &str) -> CallInput {
    let mut counts = Counts::default();
    counts.add("fs.readFile", Effect::Read);
    counts.add("svc3.update", Effect::Write);
    CallInput {
        call: Call {
            server: "fs".to_string(),
            tool: "tool".to_string(),
            function: function.to_string(),
            arguments: json!({"path": path, "tenant": "acme"}),
            effect,
        },
        execution: Execution {
            id: "ex_1".to_string(),
            session: Some("s_1".to_string()),
            principal: "ana".to_string(),
            mode: Mode::Live,
        },
        counts,
    }
}

fn decide(c: &mut Criterion) {
    let builtin = Policy::builtin().rego_only();
    let fifty = Policy::from_sources(
        &[("fifty_rules.rego".to_string(), FIFTY_RULES.to_string())],
        None,
    )
    .unwrap();
    let write = input("fs.writeFile", Effect::Write, "/srv/out/a.txt");
    let delete = input("fs.deleteFile", Effect::Destructive, "/srv/out/a.txt");
    let protected = input("fs.writeFile", Effect::Write, "/protected/7/a.txt");
    assert_eq!(builtin.decide_call(&write).outcome, Outcome::Allow);
    assert_eq!(fifty.decide_call(&write).outcome, Outcome::Allow);
    assert_eq!(fifty.decide_call(&protected).outcome, Outcome::Deny);

    let mut group = c.benchmark_group("decide_call");
    group.bench_function("default policy, write (allow)", |b| {
        b.iter(|| builtin.decide_call(&write))
    });
    group.bench_function("default policy, destructive (approval)", |b| {
        b.iter(|| builtin.decide_call(&delete))
    });
    group.bench_function("50 rules, write (allow)", |b| {
        b.iter(|| fifty.decide_call(&write))
    });
    group.bench_function("50 rules, protected write (deny)", |b| {
        b.iter(|| fifty.decide_call(&protected))
    });
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
