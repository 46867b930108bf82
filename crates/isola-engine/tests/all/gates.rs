//! The gate chain: a gate that decides later does not end it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use isola_engine::{
    CallGate, CallIntent, Decision, Denial, EffectClass, Gates, ToolEffect, Verdict,
};
use serde_json::json;

fn intent() -> CallIntent {
    CallIntent {
        seq: 0,
        function: "fs.writeFile".into(),
        server: "fs".into(),
        tool: "write_file".into(),
        effect: ToolEffect {
            class: EffectClass::Write,
            idempotent: false,
            open_world: true,
        },
        arguments: json!({"path": "out/a"}),
    }
}

fn hold(decision: Decision) -> Arc<dyn CallGate> {
    Arc::new(move |_: &CallIntent| Verdict::Hold {
        reason: "approval".into(),
        decision: Box::pin(std::future::ready(decision.clone())),
    })
}

/// Counts how often it is asked, and says `verdict`.
fn counting(asked: Arc<AtomicUsize>, deny: bool) -> Arc<dyn CallGate> {
    Arc::new(move |_: &CallIntent| {
        asked.fetch_add(1, Ordering::SeqCst);
        if deny {
            Verdict::Deny(Denial::new("PolicyDenied", "no"))
        } else {
            Verdict::After(Box::pin(std::future::ready(Decision::Allow)))
        }
    })
}

#[tokio::test]
async fn gates_after_a_hold_are_asked_once_it_allows() {
    let asked = Arc::new(AtomicUsize::new(0));
    let gates = Gates::new(vec![hold(Decision::Allow), counting(asked.clone(), true)]);
    let Verdict::Hold { reason, decision } = gates.check(&intent()) else {
        panic!("the first gate holds");
    };
    assert_eq!(reason, "approval");
    assert_eq!(asked.load(Ordering::SeqCst), 0, "not before the decision");
    assert_eq!(
        decision.await,
        Decision::Deny(Denial::new("PolicyDenied", "no"))
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    // An approved call still waits for a later gate's own wait (a journal's flush).
    let gates = Gates::new(vec![hold(Decision::Allow), counting(asked.clone(), false)]);
    let Verdict::Hold { decision, .. } = gates.check(&intent()) else {
        panic!("the first gate holds");
    };
    assert_eq!(decision.await, Decision::Allow);
    assert_eq!(asked.load(Ordering::SeqCst), 2);

    // A denial ends the chain.
    let denied = Decision::Deny(Denial::new("ApprovalDenied", "by ada"));
    let gates = Gates::new(vec![hold(denied.clone()), counting(asked.clone(), false)]);
    let Verdict::Hold { decision, .. } = gates.check(&intent()) else {
        panic!("the first gate holds");
    };
    assert_eq!(decision.await, denied);
    assert_eq!(asked.load(Ordering::SeqCst), 2, "not asked after a denial");
}
