//! Plan mode in the sandbox: a planned call resolves to a placeholder for its result; reading
//! it gives placeholders, using it in a later call's arguments gives references, and it cannot
//! be changed. In a worker and in-process alike.

use std::sync::{Arc, Mutex};

use isola_engine::{CallIntent, Engine, ExecOptions, Verdict};
use isola_protocol::{CallResult, Limits};
use isola_test_support::tools::FakeTools;
use isola_worker::Backend;
use serde_json::{Value, json};

const SCRIPT: &str = r#"
const r = await t.echo({ first: true });
const again = await r;
let threw = "";
try { r.id = 1; } catch (e) { threw = e.name + ": " + e.message; }
console.log(r.items[0].name, `${r.id}`);
await t.echo({ ref: r.id, text: "vpc-" + r.id, nested: [r["a b"], r[2]] });
return { threw, same: again === r, kind: typeof r, json: JSON.stringify(r.id), whole: r };
"#;

#[tokio::test]
async fn placeholders_stand_for_results_known_after_apply() {
    for backend in [Backend::InProcess, crate::workers::real()] {
        let engine = Engine::new(FakeTools::standard(), backend, Limits::default());
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let calls = seen.clone();
        let mut options = ExecOptions {
            planning: true,
            ..ExecOptions::default()
        };
        options.gates.push(Arc::new(move |call: &CallIntent| {
            let mut calls = calls.lock().unwrap();
            calls.push(call.arguments.clone());
            Verdict::Simulate(CallResult::Planned {
                step: calls.len() as u32,
            })
        }));
        let rec = engine.execute(SCRIPT, options).await;
        assert!(rec.ok, "{:?}", rec.error);
        assert_eq!(
            rec.result,
            json!({
                "threw": "TypeError: #1.id cannot be changed: #1 is known only after apply",
                "same": true,
                "kind": "object",
                "json": "{\"$isola.ref\":\"#1.id\"}",
                "whole": {"$isola.ref": "#1"},
            })
        );
        assert_eq!(
            rec.logs[0].text,
            "(known after apply: #1.items[0].name) \u{27e6}#1.id\u{27e7}"
        );
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen[1],
            json!({
                "ref": {"$isola.ref": "#1.id"},
                "text": "vpc-\u{27e6}#1.id\u{27e7}",
                "nested": [{"$isola.ref": "#1[\"a b\"]"}, {"$isola.ref": "#1[2]"}],
            })
        );
        assert!(rec.calls.iter().all(|c| c.ok && !c.sent), "{:?}", rec.calls);
    }
}
