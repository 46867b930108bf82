//! Decision latency, p50/p99 over many decisions:
//! `cargo run --release -p isola-policy --example latency [DECISIONS]`.
//!
//! Measures the built-in policy and a 50-rule one (`benches/fifty_rules.rego`), on one thread
//! and on two at once (the machine's decisions are made from tokio tasks on several threads).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use isola_policy::{Call, CallInput, Counts, Effect, Execution, Mode, Outcome, Policy};
use serde_json::json;

const FIFTY_RULES: &str = include_str!("../benches/fifty_rules.rego");

fn input(i: usize) -> CallInput {
    let (function, effect, path) = match i % 4 {
        0 => ("fs.readFile", Effect::Read, "/srv/in/a.txt"),
        1 => ("fs.writeFile", Effect::Write, "/srv/out/a.txt"),
        2 => ("fs.writeFile", Effect::Write, "/protected/7/x"),
        _ => ("fs.deleteFile", Effect::Destructive, "/srv/out/old.txt"),
    };
    let mut counts = Counts::default();
    for _ in 0..(i % 5) {
        counts.add("fs.writeFile", Effect::Write);
        counts.add("svc3.update", Effect::Write);
    }
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn run(policy: &Policy, decisions: usize, offset: usize) -> Vec<Duration> {
    let inputs: Vec<CallInput> = (0..16).map(input).collect();
    let mut times = Vec::with_capacity(decisions);
    for i in 0..decisions {
        let input = &inputs[(i + offset) % inputs.len()];
        let start = Instant::now();
        let decision = policy.decide_call(input);
        times.push(start.elapsed());
        assert!(decision.error.is_none(), "{decision:?}");
        std::hint::black_box(decision);
    }
    times
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{name:<34} n={:<6} p50={:>7.1} µs  p99={:>7.1} µs  max={:>8.1} µs",
        times.len(),
        percentile(&times, 0.50).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
    );
}

fn main() {
    let decisions: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("DECISIONS is a number"))
        .unwrap_or(20_000);
    let fifty = Policy::from_sources(
        &[("fifty_rules.rego".to_string(), FIFTY_RULES.to_string())],
        None,
    )
    .expect("the 50-rule policy loads");
    // The outcomes the inputs should get, so the figures are of real decisions.
    assert_eq!(fifty.decide_call(&input(2)).outcome, Outcome::Deny);
    assert_eq!(
        fifty.decide_call(&input(3)).outcome,
        Outcome::RequireApproval
    );
    assert_eq!(fifty.decide_call(&input(1)).outcome, Outcome::Allow);

    for (name, policy) in [
        ("default policy (Rust)", Policy::builtin()),
        ("default policy (Rego)", Policy::builtin().rego_only()),
        ("50-rule policy", fifty),
    ] {
        run(&policy, 1000, 0); // warm up
        report(&format!("{name}, 1 thread"), run(&policy, decisions, 0));
        let policy = Arc::new(policy);
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let policy = Arc::clone(&policy);
                std::thread::spawn(move || run(&policy, decisions / 2, t))
            })
            .collect();
        let times = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        report(&format!("{name}, 2 threads at once"), times);
    }
}
