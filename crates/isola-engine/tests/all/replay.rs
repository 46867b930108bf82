//! Determinism and replay, end to end in-process: a recorded execution replays to the same
//! calls and result without calling any tool; a different call is a divergence; a recording cut
//! short resumes live.

use std::sync::Arc;

use isola_engine::{Engine, ExecOptions, Recorder, Recording, Replay};
use isola_protocol::{ErrorKind, ExecRecord, Limits};
use isola_test_support::tools::FakeTools;
use isola_worker::Backend;
use serde_json::json;

/// Time, randomness, timers racing calls, and calls in parallel finishing out of order.
const SCRIPT: &str = r#"
const t0 = Date.now();
const r = [Math.random(), Math.random()];
const order: string[] = [];
setTimeout(() => order.push("timer"), 40);
const slept = await Promise.all([250, 5, 100].map((ms) => t.sleep({ ms }).then((v: any) => { order.push("sleep " + ms); return v; })));
const echoed = await t.echo({ after: order.slice() });
await new Promise((res) => setTimeout(res, 1));
return { elapsed: Date.now() - t0 >= 0, r, order, slept, echoed, late: Date.now() };
"#;

fn engine(tools: Arc<FakeTools>) -> Engine {
    Engine::new(tools, Backend::InProcess, Limits::default())
}

async fn record(source: &str) -> (ExecRecord, Recording) {
    let tools = FakeTools::standard();
    let recorder = Recorder::new();
    let rec = engine(tools.clone())
        .execute(
            source,
            ExecOptions {
                observers: vec![Box::new(recorder.clone())],
                ..ExecOptions::default()
            },
        )
        .await;
    assert!(rec.ok, "{:?}", rec.error);
    assert_eq!(tools.calls(), 4);
    (rec, recorder.recording())
}

async fn replay(source: &str, recording: Recording, live_after: bool) -> (ExecRecord, usize) {
    let tools = FakeTools::standard();
    let rec = engine(tools.clone())
        .execute(
            source,
            ExecOptions {
                replay: Some(Replay {
                    recording,
                    live_after,
                }),
                ..ExecOptions::default()
            },
        )
        .await;
    (rec, tools.calls())
}

fn functions(rec: &ExecRecord) -> Vec<(String, serde_json::Value)> {
    rec.calls
        .iter()
        .map(|c| (c.function.clone(), c.arguments.clone()))
        .collect()
}

#[tokio::test]
async fn a_replay_reproduces_the_result_without_calling_any_tool() {
    let (original, recording) = record(SCRIPT).await;
    assert_eq!(recording.calls.len(), 4);
    // The timer (40 ms) fired between the 5 ms and the 100 ms sleeps (wide gaps: a loaded
    // machine does not reorder them).
    assert_eq!(
        original.result["order"],
        json!(["sleep 5", "timer", "sleep 100", "sleep 250"])
    );
    for _ in 0..3 {
        let (replayed, calls) = replay(SCRIPT, recording.clone(), false).await;
        assert!(replayed.ok, "{:?}", replayed.error);
        assert_eq!(calls, 0, "a replay calls no tool");
        assert_eq!(replayed.result, original.result);
        assert_eq!(functions(&replayed), functions(&original));
    }
}

#[tokio::test]
async fn a_replay_that_makes_another_call_diverges_before_sending_it() {
    let (_, recording) = record(SCRIPT).await;
    let changed = SCRIPT.replace("after: order.slice()", "after: [1]");
    let (rec, calls) = replay(&changed, recording, false).await;
    assert_eq!(calls, 0);
    let error = rec.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Divergence, "{error:?}");
    assert!(
        error.message.contains("call #4 (t.echo)") && error.message.contains("$.after"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_recording_cut_short_resumes_live() {
    let (original, mut recording) = record(SCRIPT).await;
    // The last call (echo) never got its answer: as if the host died while it was out.
    let echo = recording.calls.last().unwrap().id;
    recording.inputs.retain(
        |i| !matches!(i, isola_engine::observer::Input::CallDone { id, .. } if *id == echo),
    );
    // Nothing was recorded after it: the three sleeps and the timer.
    recording.inputs.truncate(4);
    let (rec, calls) = replay(SCRIPT, recording.clone(), true).await;
    assert!(rec.ok, "{:?}", rec.error);
    assert_eq!(calls, 1, "only the unanswered call is made");
    assert_eq!(rec.result["order"], original.result["order"]);
    // A pure replay of the same recording stops there instead.
    let (rec, calls) = replay(SCRIPT, recording, false).await;
    assert_eq!(calls, 0);
    assert_eq!(rec.error.unwrap().kind, ErrorKind::Divergence);
}
