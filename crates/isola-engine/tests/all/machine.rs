//! The execution state machine, driven input by input: dispatch, the concurrency cap, the
//! deadline, cancellation, every gate decision, the limits the host keeps, and what happens to
//! calls once the script is done.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use isola_engine::machine::{Effect, Ending, Execution, Input, Setup};
use isola_engine::observer::Input as SandboxInput;
use isola_engine::{ApiState, Decision, Denial, Event, Flow, Recording, Ruling, Tools};
use isola_protocol::{
    CallErrorKind, CallResult, ErrorKind, HostMsg, LimitKind, Limits, LogLevel, MAX_TIMERS,
    Payload, RunOutcome, SandboxMsg,
};
use isola_test_support::tools::{FakeTools, text_result};
use serde_json::{Value, json};

const GRACE: Duration = Duration::from_millis(150);

fn api() -> Arc<ApiState> {
    Arc::new(ApiState::build(&FakeTools::standard().servers()))
}

fn binding(name: &str) -> u32 {
    api()
        .bindings
        .iter()
        .position(|b| b.function == name)
        .unwrap() as u32
}

fn setup(limits: Limits, gated: bool) -> Setup {
    Setup {
        api: api(),
        limits,
        grace: GRACE,
        gated,
        observers: Vec::new(),
        replay: None,
        planning: false,
        clock: || 42,
    }
}

fn exec(limits: Limits, gated: bool) -> Execution {
    Execution::new(setup(limits, gated))
}

fn step(m: &mut Execution, input: Input) -> Vec<Effect> {
    m.step(input);
    m.effects().collect()
}

fn call(id: u32, function: &str, args: Value) -> Input {
    Input::Sandbox(SandboxMsg::Call {
        id,
        binding: binding(function),
        args: args.to_string(),
    })
}

fn finished(id: u32, text: &str) -> Input {
    Input::CallFinished {
        id,
        result: Ok(text_result(text)),
    }
}

fn done(json: &str) -> Input {
    Input::Sandbox(SandboxMsg::Done(RunOutcome {
        result: Ok(Some(Payload {
            json: json.into(),
            dropped_bytes: 0,
        })),
        logs_dropped_bytes: 0,
        memory_used_bytes: 0,
    }))
}

/// The ids of the calls dispatched among `effects`.
fn dispatched(effects: &[Effect]) -> Vec<u32> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Dispatch { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

/// The messages sent to the sandbox among `effects`.
fn sent(effects: &[Effect]) -> Vec<&HostMsg> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn ending(effects: Vec<Effect>) -> Ending {
    effects
        .into_iter()
        .find_map(|e| match e {
            Effect::Finish(ending) => Some(ending),
            _ => None,
        })
        .expect("the execution finished")
}

fn stopped_with(effects: Vec<Effect>) -> isola_protocol::ExecError {
    match ending(effects) {
        Ending::Stopped(e) => e,
        Ending::Done(o) => panic!("not stopped: {o:?}"),
    }
}

#[test]
fn a_call_is_checked_sent_and_answered_unwrapped() {
    let mut m = exec(Limits::default(), false);
    let effects = step(&mut m, call(1, "t.echo", json!({"a": 1})));
    match &effects[..] {
        [
            Effect::Dispatch {
                id: 1,
                seq: 0,
                binding,
                arguments,
            },
        ] => {
            assert_eq!(api().bindings[*binding].function, "t.echo");
            assert_eq!(Value::Object(arguments.clone()), json!({"a": 1}));
        }
        other => panic!("{other:?}"),
    }
    let effects = step(&mut m, finished(1, "{\"n\": 3}"));
    assert_eq!(
        sent(&effects),
        [&HostMsg::CallDone {
            id: 1,
            result: CallResult::Ok {
                value: "{\"n\":3}".into()
            },
            now_ms: 42
        }]
    );
    let effects = step(&mut m, done("1"));
    assert!(matches!(
        &effects[..],
        [Effect::Release, Effect::Finish(Ending::Done(_))]
    ));
    let (_, _, calls) = m.take_record_parts();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].ok);
    assert_eq!(calls[0].function, "t.echo");
}

#[test]
fn bad_arguments_and_unknown_bindings_are_answered_without_a_call() {
    let mut m = exec(Limits::default(), false);
    let effects = step(&mut m, call(1, "t.big", json!({"bytes": "many"})));
    assert!(dispatched(&effects).is_empty());
    match sent(&effects)[..] {
        [
            HostMsg::CallDone {
                result: CallResult::Err { kind, message, .. },
                ..
            },
        ] => {
            assert_eq!(*kind, CallErrorKind::Validation);
            assert!(message.contains("`/bytes`"), "{message}");
        }
        ref other => panic!("{other:?}"),
    }
    let effects = step(
        &mut m,
        Input::Sandbox(SandboxMsg::Call {
            id: 2,
            binding: 99,
            args: "{}".into(),
        }),
    );
    assert!(dispatched(&effects).is_empty());
    assert!(matches!(
        sent(&effects)[..],
        [HostMsg::CallDone {
            result: CallResult::Err {
                kind: CallErrorKind::Internal,
                ..
            },
            ..
        }]
    ));
}

#[test]
fn the_concurrency_cap_holds_calls_back_until_a_slot_frees() {
    let limits = Limits {
        max_concurrency: 2,
        ..Limits::default()
    };
    let mut m = exec(limits, false);
    let mut out = Vec::new();
    for id in 1..=5 {
        out.extend(dispatched(&step(&mut m, call(id, "t.echo", json!({})))));
    }
    assert_eq!(out, [1, 2], "two at a time");
    assert_eq!(dispatched(&step(&mut m, finished(2, "x"))), [3]);
    assert_eq!(dispatched(&step(&mut m, finished(1, "x"))), [4]);
    assert_eq!(dispatched(&step(&mut m, finished(3, "x"))), [5]);
    assert!(dispatched(&step(&mut m, finished(4, "x"))).is_empty());
}

#[test]
fn the_deadline_stops_the_execution_and_cancels_calls_under_way() {
    let limits = Limits {
        deadline_ms: 1000,
        ..Limits::default()
    };
    let mut m = exec(limits, false);
    let before = std::time::Instant::now();
    m.begin();
    let deadline = m.deadline().unwrap();
    assert!(deadline >= before + Duration::from_millis(1000) + GRACE);
    assert!(deadline <= std::time::Instant::now() + Duration::from_millis(1000) + GRACE);
    step(&mut m, call(1, "t.sleep", json!({"ms": 5000})));
    let error = stopped_with(step(&mut m, Input::Deadline));
    assert_eq!(
        (error.kind, error.limit),
        (ErrorKind::Limit, Some(LimitKind::Deadline))
    );
    let (_, _, calls) = m.take_record_parts();
    assert!(
        calls[0]
            .error
            .as_deref()
            .unwrap()
            .contains("cancelled while under way"),
        "{calls:?}"
    );
    assert!(m.deadline().is_none(), "over");
}

#[test]
fn cancellation_stops_the_execution() {
    let mut m = exec(Limits::default(), false);
    let error = stopped_with(step(&mut m, Input::Cancel));
    assert_eq!(error.kind, ErrorKind::Cancelled);
}

#[test]
fn gates_allow_deny_simulate_and_abort() {
    let mut m = exec(Limits::default(), true);
    // Asked first; nothing goes out before the verdict.
    let effects = step(&mut m, call(1, "t.echo", json!({"x": 1})));
    match &effects[..] {
        [Effect::Check { id: 1, call }] => {
            assert_eq!((call.seq, call.function.as_str()), (0, "t.echo"));
            assert_eq!(call.arguments, json!({"x": 1}));
        }
        other => panic!("{other:?}"),
    }
    let effects = step(
        &mut m,
        Input::Verdict {
            id: 1,
            ruling: Ruling::Allow,
        },
    );
    assert_eq!(dispatched(&effects), [1]);

    // Denied: the script's await throws the denial, nothing is sent.
    step(&mut m, call(2, "t.echo", json!({})));
    let denial = Denial::new("PolicyDenied", "rule `no_echo`: echo is not allowed");
    let effects = step(
        &mut m,
        Input::Verdict {
            id: 2,
            ruling: Ruling::Deny(denial),
        },
    );
    assert!(dispatched(&effects).is_empty());
    assert_eq!(
        sent(&effects),
        [&HostMsg::CallDone {
            id: 2,
            result: CallResult::Err {
                kind: CallErrorKind::Denied,
                name: "PolicyDenied".into(),
                message: "rule `no_echo`: echo is not allowed".into(),
                tool: "t.echo".into(),
            },
            now_ms: 42
        }]
    );

    // Simulated: answered by the gate, the tool is not called.
    step(&mut m, call(3, "t.echo", json!({})));
    let simulated = CallResult::Ok { value: "7".into() };
    let effects = step(
        &mut m,
        Input::Verdict {
            id: 3,
            ruling: Ruling::Simulate(simulated.clone()),
        },
    );
    assert!(dispatched(&effects).is_empty());
    assert_eq!(
        sent(&effects),
        [&HostMsg::CallDone {
            id: 3,
            result: simulated,
            now_ms: 42
        }]
    );

    // Aborted: the execution ends before the call, with the gate's error.
    step(&mut m, call(4, "t.echo", json!({})));
    let error = isola_protocol::ExecError {
        kind: ErrorKind::Divergence,
        limit: None,
        name: "DivergenceError".into(),
        message: "diverged".into(),
        position: None,
        code_frame: None,
        stack: None,
        tool: None,
        hint: None,
    };
    let effects = step(
        &mut m,
        Input::Verdict {
            id: 4,
            ruling: Ruling::Abort(error),
        },
    );
    assert!(dispatched(&effects).is_empty());
    assert_eq!(stopped_with(effects).kind, ErrorKind::Divergence);
}

#[test]
fn a_call_after_a_wait_is_sent_without_holding_the_sandbox() {
    let mut m = exec(Limits::default(), true);
    m.begin();
    let deadline = m.deadline().unwrap();
    step(&mut m, call(1, "t.echo", json!({})));
    let effects = step(
        &mut m,
        Input::Verdict {
            id: 1,
            ruling: Ruling::After,
        },
    );
    // Not sent yet, and nothing told to the sandbox; the clock runs.
    assert!(dispatched(&effects).is_empty());
    assert!(sent(&effects).is_empty());
    assert_eq!(m.deadline(), Some(deadline));
    let effects = step(
        &mut m,
        Input::Decided {
            id: 1,
            decision: Decision::Allow,
        },
    );
    assert_eq!(dispatched(&effects), [1]);
    assert!(sent(&effects).is_empty(), "no Resume: there was no hold");
    // A wait that ends in a denial answers the call without sending it.
    step(&mut m, call(2, "t.echo", json!({})));
    step(
        &mut m,
        Input::Verdict {
            id: 2,
            ruling: Ruling::After,
        },
    );
    let effects = step(
        &mut m,
        Input::Decided {
            id: 2,
            decision: Decision::Deny(Denial::new("JournalError", "not recorded")),
        },
    );
    assert!(dispatched(&effects).is_empty());
    assert!(matches!(
        &sent(&effects)[..],
        [HostMsg::CallDone {
            id: 2,
            result: CallResult::Err { .. },
            ..
        }]
    ));
}

#[test]
fn a_held_call_stops_the_clock_until_it_is_decided() {
    let mut m = exec(Limits::default(), true);
    m.begin();
    let deadline = m.deadline().unwrap();
    step(&mut m, call(1, "t.echo", json!({})));
    let effects = step(
        &mut m,
        Input::Verdict {
            id: 1,
            ruling: Ruling::Hold("approval".into()),
        },
    );
    assert_eq!(sent(&effects), [&HostMsg::Hold]);
    assert!(m.deadline().is_none(), "no deadline while held");
    // A second held call does not hold twice.
    step(&mut m, call(2, "t.echo", json!({})));
    let effects = step(
        &mut m,
        Input::Verdict {
            id: 2,
            ruling: Ruling::Hold("approval".into()),
        },
    );
    assert!(sent(&effects).is_empty());
    std::thread::sleep(Duration::from_millis(30));

    let effects = step(
        &mut m,
        Input::Decided {
            id: 1,
            decision: Decision::Allow,
        },
    );
    assert!(sent(&effects).is_empty(), "still one held");
    assert_eq!(dispatched(&effects), [1]);
    let denial = Denial::new("ApprovalDenied", "denied by alice: not today");
    let effects = step(
        &mut m,
        Input::Decided {
            id: 2,
            decision: Decision::Deny(denial),
        },
    );
    assert!(dispatched(&effects).is_empty());
    match &sent(&effects)[..] {
        [
            HostMsg::Resume,
            HostMsg::CallDone {
                id: 2,
                result: CallResult::Err { kind, message, .. },
                ..
            },
        ] => {
            assert_eq!(*kind, CallErrorKind::Denied);
            assert!(message.contains("alice"));
        }
        other => panic!("{other:?}"),
    }
    // The time held moved the deadline.
    assert!(m.deadline().unwrap() >= deadline + Duration::from_millis(30));
}

#[test]
fn a_suspension_waits_for_calls_under_way_and_sends_nothing_more() {
    let mut m = exec(Limits::default(), true);
    m.begin();
    let verdict =
        |m: &mut Execution, id: u32, ruling: Ruling| step(m, Input::Verdict { id, ruling });
    step(&mut m, call(1, "t.echo", json!({"n": 1})));
    assert_eq!(dispatched(&verdict(&mut m, 1, Ruling::Allow)), [1]);
    step(&mut m, call(2, "t.echo", json!({"n": 2})));
    verdict(&mut m, 2, Ruling::Hold("approval".into()));
    let effects = step(
        &mut m,
        Input::Decided {
            id: 2,
            decision: Decision::Suspend("waits for approval ap-x-2".into()),
        },
    );
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Finish(_))),
        "call 1 is out: its answer must reach the record first"
    );
    // Allowed while suspending: not sent.
    step(&mut m, call(3, "t.echo", json!({"n": 3})));
    assert!(dispatched(&verdict(&mut m, 3, Ruling::Allow)).is_empty());
    let effects = step(&mut m, finished(1, "one"));
    assert!(dispatched(&effects).is_empty());
    let error = stopped_with(effects);
    assert_eq!(error.kind, ErrorKind::Suspended);
    assert_eq!(error.message, "waits for approval ap-x-2");
    let (_, _, calls) = m.take_record_parts();
    let by_n = |n: u64| calls.iter().find(|c| c.arguments["n"] == n).unwrap();
    assert!(by_n(1).ok && by_n(1).sent, "{:?}", by_n(1));
    for n in [2, 3] {
        let c = by_n(n);
        assert!(!c.sent, "{c:?}");
        assert_eq!(
            c.error.as_deref(),
            Some("not sent: the execution was suspended")
        );
    }
}

#[test]
fn the_host_counts_tool_calls_itself() {
    let limits = Limits {
        max_tool_calls: 3,
        ..Limits::default()
    };
    let mut m = exec(limits, false);
    for id in 1..=3 {
        assert_eq!(
            dispatched(&step(&mut m, call(id, "t.echo", json!({})))),
            [id]
        );
    }
    let error = stopped_with(step(&mut m, call(4, "t.echo", json!({}))));
    assert_eq!(error.limit, Some(LimitKind::ToolCalls));
    assert!(error.message.contains("3 tool calls"), "{}", error.message);
}

#[test]
fn the_host_cuts_console_output_and_results_itself() {
    let limits = Limits {
        max_log_bytes: 10,
        max_result_bytes: 5,
        ..Limits::default()
    };
    let mut m = exec(limits, false);
    for _ in 0..3 {
        step(
            &mut m,
            Input::Sandbox(SandboxMsg::Log {
                level: LogLevel::Log,
                text: "abcdefgh".into(),
            }),
        );
    }
    let Ending::Done(outcome) = ending(step(&mut m, done("\"0123456789\""))) else {
        panic!()
    };
    let payload = outcome.result.unwrap().unwrap();
    assert_eq!(payload.json, "\"0123");
    assert_eq!(payload.dropped_bytes, 7);
    let (logs, truncated, _) = m.take_record_parts();
    let kept: usize = logs
        .iter()
        .filter(|l| l.level == LogLevel::Log)
        .map(|l| l.text.len())
        .sum();
    assert_eq!(kept, 10);
    assert_eq!(truncated.unwrap().dropped_bytes, 14);
}

#[test]
fn the_host_counts_timers_itself() {
    let mut m = exec(Limits::default(), false);
    for id in 1..=MAX_TIMERS {
        let effects = step(&mut m, Input::Sandbox(SandboxMsg::Timer { id, ms: 1000.0 }));
        assert!(matches!(effects[..], [Effect::ArmTimer { .. }]));
    }
    let error = stopped_with(step(
        &mut m,
        Input::Sandbox(SandboxMsg::Timer {
            id: MAX_TIMERS + 1,
            ms: 1.0,
        }),
    ));
    assert_eq!(error.limit, Some(LimitKind::Timers));
}

#[test]
fn timers_fire_with_the_host_clock_unless_cleared() {
    let mut m = exec(Limits::default(), false);
    step(
        &mut m,
        Input::Sandbox(SandboxMsg::Timer { id: 1, ms: 10.0 }),
    );
    step(
        &mut m,
        Input::Sandbox(SandboxMsg::Timer { id: 2, ms: 10.0 }),
    );
    assert!(matches!(
        step(&mut m, Input::Sandbox(SandboxMsg::ClearTimer { id: 2 }))[..],
        [Effect::ClearTimer { id: 2 }]
    ));
    assert_eq!(
        sent(&step(&mut m, Input::TimerDue { id: 1 })),
        [&HostMsg::Fire { id: 1, now_ms: 42 }]
    );
    assert!(sent(&step(&mut m, Input::TimerDue { id: 2 })).is_empty());
}

#[test]
fn once_the_script_is_done_no_call_is_sent_but_those_under_way_are_recorded() {
    let limits = Limits {
        max_concurrency: 1,
        ..Limits::default()
    };
    let mut m = exec(limits, false);
    step(&mut m, call(1, "t.echo", json!({"n": 1})));
    step(&mut m, call(2, "t.echo", json!({"n": 2}))); // queued behind the cap
    let effects = step(&mut m, done("null"));
    assert!(matches!(effects[..], [Effect::Release]), "{effects:?}");
    // The running call is awaited, and nothing else goes out.
    let effects = step(&mut m, finished(1, "late"));
    assert!(dispatched(&effects).is_empty());
    assert!(sent(&effects).is_empty(), "the sandbox is gone");
    assert!(matches!(ending(effects), Ending::Done(_)));
    let (_, _, calls) = m.take_record_parts();
    assert_eq!(calls.len(), 2);
    let by_n = |n: u64| calls.iter().find(|c| c.arguments["n"] == n).unwrap();
    assert!(by_n(1).ok, "the call that reached the server is recorded");
    assert!(
        by_n(2).error.as_deref().unwrap().contains("not sent"),
        "{:?}",
        by_n(2)
    );
}

#[test]
fn observers_see_every_event_in_order_and_can_stop_it() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let observer = move |e: &Event<'_>| {
        let name = match e {
            Event::Call { id, .. } => format!("call {id}"),
            Event::CallEnded { id, .. } => format!("ended {id}"),
            Event::Input {
                input: SandboxInput::CallDone { id, .. },
            } => format!("input {id}"),
            Event::Log(l) if l.text == "stop" => return Flow::Stop("the journal is full".into()),
            Event::Log(l) => format!("log {}", l.text),
            other => format!("{other:?}"),
        };
        log.lock().unwrap().push(name);
        Flow::Continue
    };
    let mut m = Execution::new(Setup {
        observers: vec![Box::new(observer)],
        ..setup(Limits::default(), false)
    });
    step(&mut m, call(1, "t.echo", json!({})));
    step(
        &mut m,
        Input::Sandbox(SandboxMsg::Log {
            level: LogLevel::Log,
            text: "hi".into(),
        }),
    );
    step(&mut m, finished(1, "x"));
    assert_eq!(
        *seen.lock().unwrap(),
        ["call 1", "log hi", "input 1", "ended 1"]
    );
    let error = stopped_with(step(
        &mut m,
        Input::Sandbox(SandboxMsg::Log {
            level: LogLevel::Log,
            text: "stop".into(),
        }),
    ));
    assert_eq!(error.kind, ErrorKind::Internal);
    assert!(
        error.message.contains("the journal is full"),
        "{}",
        error.message
    );
}

#[test]
fn a_replay_delivers_answers_in_the_recorded_order() {
    // Recorded: call 2's answer came first, then the timer, then call 1's.
    let recording = Recording {
        clock_ms: 1,
        seed: 2,
        calls: Vec::new(),
        inputs: vec![
            SandboxInput::CallDone {
                id: 2,
                result: CallResult::Ok {
                    value: "\"b\"".into(),
                },
                now_ms: 10,
            },
            SandboxInput::Fire { id: 1, now_ms: 11 },
            SandboxInput::CallDone {
                id: 1,
                result: CallResult::Ok {
                    value: "\"a\"".into(),
                },
                now_ms: 12,
            },
        ],
    };
    let mut m = Execution::new(Setup {
        replay: Some(recording),
        ..setup(Limits::default(), true)
    });
    step(&mut m, call(1, "t.echo", json!({})));
    step(&mut m, call(2, "t.echo", json!({})));
    step(&mut m, Input::Sandbox(SandboxMsg::Timer { id: 1, ms: 5.0 }));
    let answer = |v: &str| Ruling::Simulate(CallResult::Ok { value: v.into() });
    // Call 1 answered first by the gate: held back, call 2's turn comes first.
    assert!(
        sent(&step(
            &mut m,
            Input::Verdict {
                id: 1,
                ruling: answer("\"a\"")
            }
        ))
        .is_empty()
    );
    let effects = step(
        &mut m,
        Input::Verdict {
            id: 2,
            ruling: answer("\"b\""),
        },
    );
    let ids: Vec<String> = sent(&effects)
        .iter()
        .map(|m| match m {
            HostMsg::CallDone { id, now_ms, .. } => format!("call {id} at {now_ms}"),
            HostMsg::Fire { id, now_ms } => format!("timer {id} at {now_ms}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, ["call 2 at 10", "timer 1 at 11", "call 1 at 12"]);
    assert!(dispatched(&effects).is_empty(), "nothing is called");
    // The recording is used up: a timer now is armed for real.
    let effects = step(&mut m, Input::Sandbox(SandboxMsg::Timer { id: 2, ms: 1.0 }));
    assert!(matches!(effects[..], [Effect::ArmTimer { id: 2, .. }]));
}
