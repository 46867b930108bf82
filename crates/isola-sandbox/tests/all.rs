//! The sandbox against scripts: results, console, bindings, isolation and every limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use isola_protocol::{
    CallErrorKind, CallResult, ErrorKind, ExecRequest, LimitKind, Limits, LogLevel, Namespace,
    RunOutcome,
};
use isola_sandbox::{Host, Wake};
use serde_json::{Value, json};

/// A host with two namespaces: `math.add` answers at once, `slow.echo` answers through `wait`
/// (as a real MCP call would), `slow.fail` fails like an `isError` result. Timers fire in real
/// time; the clock it hands out is 1000 ms past the start plus 1 ms per input.
#[derive(Default)]
struct TestHost {
    logs: Vec<(LogLevel, String)>,
    calls: Vec<(u32, String)>,
    queue: VecDeque<(u32, CallResult)>,
    /// The most calls that were pending at once.
    max_pending: usize,
    timers: BTreeSet<(Instant, u32)>,
    /// Inputs handed out so far.
    inputs: u64,
    /// Hold the run this long before the first input (to test hold and resume).
    hold: Option<Duration>,
    held_since: Option<Instant>,
}

impl TestHost {
    fn clock(&mut self) -> u64 {
        self.inputs += 1;
        1000 + self.inputs
    }
}

impl Host for TestHost {
    fn call(&mut self, id: u32, binding: u32, args: String) -> Option<CallResult> {
        self.calls.push((binding, args.clone()));
        let v: Value = serde_json::from_str(&args).unwrap();
        match binding {
            0 => Some(CallResult::Ok {
                value: (v["a"].as_f64().unwrap() + v["b"].as_f64().unwrap()).to_string(),
            }),
            1 => {
                self.queue.push_back((id, CallResult::Ok { value: args }));
                self.max_pending = self.max_pending.max(self.queue.len());
                None
            }
            _ => {
                self.queue.push_back((
                    id,
                    CallResult::Err {
                        kind: CallErrorKind::Tool,
                        name: "ToolError".into(),
                        message: "slow.fail failed: boom".into(),
                        tool: "slow.fail".into(),
                    },
                ));
                None
            }
        }
    }
    fn timer(&mut self, id: u32, ms: f64) {
        let at = Instant::now() + Duration::from_secs_f64(ms / 1000.0);
        self.timers.insert((at, id));
    }
    fn clear_timer(&mut self, id: u32) {
        self.timers.retain(|(_, t)| *t != id);
    }
    fn log(&mut self, level: LogLevel, text: String) {
        self.logs.push((level, text));
    }
    fn wait(&mut self, timeout: Duration) -> Wake {
        if let Some(hold) = self.hold {
            let since = *self.held_since.get_or_insert_with(Instant::now);
            if since.elapsed() < hold {
                if self.inputs == 0 {
                    self.inputs = 1;
                    return Wake::Hold;
                }
                std::thread::sleep(timeout.min(hold - since.elapsed().min(hold)));
                return Wake::TimedOut;
            }
            self.hold = None;
            return Wake::Resume;
        }
        if let Some((id, result)) = self.queue.pop_front() {
            let now_ms = self.clock();
            return Wake::Settled { id, result, now_ms };
        }
        let until = Instant::now() + timeout.min(Duration::from_millis(10));
        match self.timers.first().copied() {
            Some((at, id)) if at <= until => {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                self.timers.remove(&(at, id));
                let now_ms = self.clock();
                Wake::Fired { id, now_ms }
            }
            _ => {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                Wake::TimedOut
            }
        }
    }
}

fn namespaces() -> Vec<Namespace> {
    vec![
        Namespace::new("math", &["add"]),
        Namespace::new("slow", &["echo", "fail"]),
    ]
}

fn request(body: &str, limits: Limits) -> ExecRequest {
    ExecRequest {
        clock_ms: 1000,
        seed: 7,
        ..ExecRequest::new(
            format!("(async () => {{\n{body}\n}})()"),
            namespaces(),
            limits,
        )
    }
}

fn run_in(request: &ExecRequest, host: TestHost) -> (RunOutcome, Rc<RefCell<TestHost>>) {
    let host = Rc::new(RefCell::new(host));
    let outcome = isola_sandbox::run(request, host.clone(), &Arc::new(AtomicBool::new(false)));
    (outcome, host)
}

fn run_with(body: &str, limits: Limits) -> (RunOutcome, Rc<RefCell<TestHost>>) {
    run_in(&request(body, limits), TestHost::default())
}

/// The result of a run that must succeed, as JSON.
fn value(outcome: &RunOutcome) -> Value {
    match &outcome.result {
        Ok(payload) => payload
            .as_ref()
            .map(|p| serde_json::from_str(&p.json).unwrap())
            .unwrap_or(Value::Null),
        Err(e) => panic!("failed: {e:?}"),
    }
}

fn run(body: &str) -> (RunOutcome, Rc<RefCell<TestHost>>) {
    run_with(body, Limits::default())
}

/// The script returns `expect` (as JSON).
fn check(body: &str, expect: Value) {
    let (outcome, _) = run(body);
    let payload = outcome
        .result
        .unwrap_or_else(|e| panic!("{body}: failed: {e:?}"));
    let got: Value = payload
        .map(|p| serde_json::from_str(&p.json).unwrap())
        .unwrap_or(Value::Null);
    assert_eq!(got, expect, "for {body}");
}

/// The script fails with `kind` and a message containing `needle`.
fn check_err(body: &str, limits: Limits, kind: ErrorKind, limit: Option<LimitKind>, needle: &str) {
    let (outcome, _) = run_with(body, limits);
    let err = outcome.result.expect_err(body);
    assert_eq!(err.kind, kind, "{body}: {err:?}");
    assert_eq!(err.limit, limit, "{body}: {err:?}");
    assert!(
        err.message.contains(needle),
        "{body}: message {:?} lacks {needle:?}",
        err.message
    );
}

#[test]
fn results() {
    check("return 1 + 1", json!(2));
    check(
        "return { a: [1, 'x', null], b: true }",
        json!({"a": [1, "x", null], "b": true}),
    );
    check("return undefined", Value::Null);
    check("return 10n ** 20n", json!("100000000000000000000"));
    check("return new Map([['k', 1]])", json!({"k": 1}));
    check(
        "const x = await Promise.resolve(41); return x + 1",
        json!(42),
    );
    check("return await math.add({ a: 2, b: 3 })", json!(5));
    check("return await slow.echo({ m: 'hi' })", json!({"m": "hi"}));
    check("return typeof math.add", json!("function"));
    check("return math.add.name", json!("math.add"));
}

#[test]
fn console_is_captured_with_levels_and_objects_as_json() {
    let (outcome, host) = run(
        "console.log('a', 1, { b: [2] }); console.warn(new Map([[1, 2]])); console.error(undefined, null);\n\
         const o = {}; o.self = o; console.info(o); console.debug(() => 1);",
    );
    assert!(outcome.result.is_ok());
    let logs = &host.borrow().logs;
    assert_eq!(
        logs,
        &vec![
            (LogLevel::Log, "a 1 {\"b\":[2]}".to_string()),
            (LogLevel::Warn, "{\"1\":2}".to_string()),
            (LogLevel::Error, "undefined null".to_string()),
            (LogLevel::Info, "{\"self\":\"[Circular]\"}".to_string()),
            (LogLevel::Debug, "[Function anonymous]".to_string()),
        ]
    );
    assert!(!logs.iter().any(|(_, t)| t.contains("[object Object]")));
}

#[test]
fn calls_are_issued_concurrently() {
    let (outcome, host) = run(
        "const r = await Promise.all([...Array(10).keys()].map(i => slow.echo({ i }))); return r.map(x => x.i)",
    );
    let got: Value = serde_json::from_str(&outcome.result.unwrap().unwrap().json).unwrap();
    assert_eq!(got, json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    // All ten were with the host before the first answer came back.
    assert_eq!(host.borrow().max_pending, 10);
}

#[test]
fn tool_errors_are_catchable_and_carry_the_tool() {
    check(
        "try { await slow.fail({}); } catch (e) { return [e.name, e.message, e.tool, e instanceof Error]; }",
        json!(["ToolError", "slow.fail failed: boom", "slow.fail", true]),
    );
    check_err(
        "await slow.fail({})",
        Limits::default(),
        ErrorKind::Tool,
        None,
        "boom",
    );
}

#[test]
fn bad_arguments_are_rejected_before_the_host_sees_them() {
    let (outcome, host) = run("await math.add('nope')");
    let err = outcome.result.unwrap_err();
    assert_eq!(err.name, "TypeError");
    assert!(
        err.message.contains("math.add takes one object argument"),
        "{}",
        err.message
    );
    assert!(host.borrow().calls.is_empty());
    check(
        "try { const o = {}; o.o = o; await math.add(o) } catch (e) { return e.message }",
        json!("math.add: the argument is not JSON-serialisable: circular reference"),
    );
}

#[test]
fn runtime_errors_keep_name_message_and_stack() {
    let (outcome, _) = run("function f() { null.x }\nf()");
    let err = outcome.result.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Runtime);
    assert_eq!(err.name, "TypeError");
    let stack = err.stack.unwrap();
    assert!(stack.contains("script.js:2:"), "{stack}");
    check_err(
        "throw 42",
        Limits::default(),
        ErrorKind::Runtime,
        None,
        "uncaught value: 42",
    );
}

#[test]
fn timers() {
    check(
        "const order = []; setTimeout(() => order.push('b'), 20); setTimeout(() => order.push('a'), 5);\n\
         const t = setTimeout(() => order.push('never'), 1); clearTimeout(t);\n\
         await new Promise(r => setTimeout(r, 40)); return order",
        json!(["a", "b"]),
    );
    check_err(
        "setTimeout('1+1', 1)",
        Limits::default(),
        ErrorKind::Runtime,
        None,
        "strings are not evaluated",
    );
    check_err(
        "await new Promise(() => {})",
        Limits::default(),
        ErrorKind::Runtime,
        None,
        "never settled",
    );
    check_err(
        "setTimeout(() => { throw new Error('in timer') }, 1); await new Promise(r => setTimeout(r, 50))",
        Limits::default(),
        ErrorKind::Runtime,
        None,
        "in timer",
    );
}

#[test]
fn nothing_of_the_host_is_reachable() {
    for name in [
        "fetch",
        "require",
        "process",
        "std",
        "os",
        "Deno",
        "Bun",
        "performance",
        "print",
        "__isola",
        "scriptArgs",
        "WebAssembly",
        "XMLHttpRequest",
    ] {
        check(
            &format!("return typeof globalThis[{name:?}]"),
            json!("undefined"),
        );
    }
    // No module loading, static or dynamic.
    let (outcome, _) = run("return await import('os')");
    assert!(outcome.result.is_err());
    // The natives are not reachable through the API objects either.
    check("return Object.getOwnPropertyNames(math)", json!(["add"]));
    check(
        "'use strict'; try { math.add = 1 } catch (e) { return e.name }",
        json!("TypeError"),
    );
}

#[test]
fn every_run_gets_a_fresh_runtime() {
    check(
        "globalThis.leak = 1; Object.prototype.polluted = 2; return 1",
        json!(1),
    );
    check(
        "return [typeof leak, ({}).polluted]",
        json!(["undefined", null]),
    );
}

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn limit_deadline_stops_a_busy_loop() {
    let t = Instant::now();
    check_err(
        "while (true) {}",
        Limits {
            deadline_ms: 200,
            ..limits()
        },
        ErrorKind::Limit,
        Some(LimitKind::Deadline),
        "deadline of 200 ms",
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    // try/catch cannot swallow it.
    check_err(
        "for (;;) { try { while (true) {} } catch (e) {} }",
        Limits {
            deadline_ms: 200,
            ..limits()
        },
        ErrorKind::Limit,
        Some(LimitKind::Deadline),
        "deadline",
    );
}

#[test]
fn limit_deadline_while_waiting_for_a_timer() {
    check_err(
        "await new Promise(r => setTimeout(r, 60000))",
        Limits {
            deadline_ms: 100,
            ..limits()
        },
        ErrorKind::Limit,
        Some(LimitKind::Deadline),
        "deadline",
    );
}

#[test]
fn limit_memory() {
    check_err(
        "const a = []; while (true) a.push('x'.repeat(1 << 16) + a.length);",
        Limits {
            memory_bytes: 16 << 20,
            ..limits()
        },
        ErrorKind::Limit,
        Some(LimitKind::Memory),
        "memory limit",
    );
}

#[test]
fn limit_stack() {
    check_err(
        "function f(n) { return f(n + 1) + 1 } f(0)",
        Limits {
            stack_bytes: 256 << 10,
            ..limits()
        },
        ErrorKind::Limit,
        Some(LimitKind::Stack),
        "stack limit",
    );
}

#[test]
fn limit_tool_calls() {
    // Even a script that catches every error is stopped.
    let (outcome, host) = run_with(
        "for (let i = 0; i < 100; i++) { try { await math.add({ a: i, b: 0 }) } catch (e) {} } return 'done'",
        Limits {
            max_tool_calls: 5,
            ..limits()
        },
    );
    let err = outcome.result.unwrap_err();
    assert_eq!(err.limit, Some(LimitKind::ToolCalls), "{err:?}");
    assert!(err.message.contains("5 tool calls"), "{}", err.message);
    assert_eq!(host.borrow().calls.len(), 5);
}

#[test]
fn limit_log_bytes() {
    let (outcome, host) = run_with(
        "for (let i = 0; i < 100; i++) console.log('0123456789'); return 1",
        Limits {
            max_log_bytes: 25,
            ..limits()
        },
    );
    assert!(outcome.result.is_ok());
    let logs = &host.borrow().logs;
    let kept: usize = logs.iter().map(|(_, t)| t.len()).sum();
    assert_eq!(kept, 25);
    assert_eq!(outcome.logs_dropped_bytes, 1000 - 25);
}

#[test]
fn limit_result_bytes() {
    let (outcome, _) = run_with(
        "return 'x'.repeat(1000)",
        Limits {
            max_result_bytes: 100,
            ..limits()
        },
    );
    let p = outcome.result.unwrap().unwrap();
    assert_eq!(p.json.len(), 100);
    assert_eq!(p.dropped_bytes, 1002 - 100);
}

#[test]
fn cancellation_stops_the_run() {
    let request = ExecRequest::new(
        "(async () => { while (true) {} })()".into(),
        vec![],
        limits(),
    );
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let t = Instant::now();
    let outcome = isola_sandbox::run(
        &request,
        Rc::new(RefCell::new(TestHost::default())),
        &cancel,
    );
    assert_eq!(outcome.result.unwrap_err().kind, ErrorKind::Cancelled);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn memory_is_reported() {
    let (outcome, _) = run("return 1");
    assert!(
        outcome.memory_used_bytes > 10_000,
        "{}",
        outcome.memory_used_bytes
    );
}

#[test]
fn time_comes_from_the_host_and_moves_only_at_inputs() {
    // The request's clock, the same before and after any amount of work; then each input's.
    check(
        "const a = Date.now(); for (let i = 0; i < 1e5; i++) {} const b = new Date().getTime();\n\
         await slow.echo({}); const c = Date.now();\n\
         await new Promise(r => setTimeout(r, 1)); const d = Date.now();\n\
         return [a, b, c, d, typeof Date(), new Date(5).getTime(), new Date() instanceof Date]",
        json!([1000, 1000, 1001, 1002, "string", 5, true]),
    );
    check(
        "class D extends Date {} return [new D().getTime(), Date.prototype.constructor === Date]",
        json!([1000, true]),
    );
}

#[test]
fn randomness_comes_from_the_seed() {
    let body = "return Array.from({ length: 5 }, () => Math.random())";
    let seeded = |seed| {
        let request = ExecRequest {
            seed,
            ..request(body, Limits::default())
        };
        value(&run_in(&request, TestHost::default()).0)
    };
    let (a, b, c) = (seeded(7), seeded(7), seeded(8));
    assert_eq!(a, b, "the same seed gives the same numbers");
    assert_ne!(a, c, "another seed gives others");
    assert!(
        a.as_array()
            .unwrap()
            .iter()
            .all(|x| (0.0..1.0).contains(&x.as_f64().unwrap())),
        "{a}"
    );
}

#[test]
fn garbage_collection_is_not_observable() {
    check(
        "return [typeof WeakRef, typeof FinalizationRegistry, typeof WeakMap]",
        json!(["undefined", "undefined", "function"]),
    );
}

#[test]
fn a_script_cannot_claim_a_tool_error() {
    // Made by the script, with the name and tool of one: still the script's own error.
    check_err(
        "const e = new Error('boom'); e.name = 'ToolError'; e.tool = 'slow.fail'; throw e",
        Limits::default(),
        ErrorKind::Runtime,
        None,
        "boom",
    );
    // A real one, renamed and rethrown: still the tool's, with the host's kind.
    let (outcome, _) = run("try { await slow.fail({}) } catch (e) { e.name = 'Mine'; throw e }");
    let err = outcome.result.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Tool, "{err:?}");
    assert_eq!(err.tool.as_deref(), Some("slow.fail"));
}

#[test]
fn no_call_starts_once_the_result_is_settled() {
    let (outcome, host) = run("return { toJSON() { slow.echo({ late: true }); return 1 } }");
    let err = outcome.result.unwrap_err();
    assert!(err.message.contains("already returned"), "{err:?}");
    assert!(host.borrow().calls.is_empty(), "{:?}", host.borrow().calls);
}

#[test]
fn time_held_does_not_count_against_the_deadline() {
    // Held for twice the deadline, then resumed: the script goes on.
    let host = TestHost {
        hold: Some(Duration::from_millis(400)),
        ..TestHost::default()
    };
    let request = request(
        "const r = await slow.echo({ x: 1 }); return r.x",
        Limits {
            deadline_ms: 200,
            ..limits()
        },
    );
    let t = Instant::now();
    let (outcome, _) = run_in(&request, host);
    assert!(t.elapsed() >= Duration::from_millis(400));
    assert_eq!(value(&outcome), json!(1));
    // Without the hold, the same wait is past the deadline.
    check_err(
        "await new Promise(r => setTimeout(r, 400))",
        Limits {
            deadline_ms: 200,
            ..limits()
        },
        ErrorKind::Limit,
        Some(LimitKind::Deadline),
        "deadline",
    );
}

#[test]
fn limit_timers() {
    check_err(
        "for (let i = 0; i < 20000; i++) setTimeout(() => {}, 60000)",
        Limits::default(),
        ErrorKind::Limit,
        Some(LimitKind::Timers),
        "the limit of 10000 pending timers was hit",
    );
}
