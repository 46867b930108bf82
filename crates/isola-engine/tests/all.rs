//! The engine with a sandbox backend and a stand-in tool source.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use isola_engine::{Engine, ExecOptions, ToolError, Tools};
use isola_protocol::Limits;
use isola_typegen::{ServerSpec, ToolSpec};
use isola_worker::Backend;
use serde_json::{Map, Value, json};

/// One tool, `probe.cpus`, that answers with the CPUs each sandbox thread of this process may
/// run on (from /proc), as seen while the script waits for it.
struct Probe {
    seen: Mutex<Vec<Vec<String>>>,
}

fn sandbox_threads_cpus() -> Vec<String> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "isola-sandbox" {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
            out.push(line["Cpus_allowed_list:".len()..].trim().to_string());
        }
    }
    out
}

impl Tools for Probe {
    fn servers(&self) -> Vec<ServerSpec> {
        vec![ServerSpec {
            name: "probe".into(),
            tools: vec![ToolSpec {
                name: "cpus".into(),
                title: None,
                description: None,
                input_schema: json!({"type": "object"}),
                output_schema: None,
                annotations: None,
            }],
        }]
    }

    fn call<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        self.seen.lock().unwrap().push(sandbox_threads_cpus());
        Box::pin(async { Ok(json!({"content": [{"type": "text", "text": "ok"}]})) })
    }
}

/// A lone execution's sandbox runs on the engine's CPU (see `isola_worker::Placement`): the
/// hand-overs between the two then stay on one CPU.
#[tokio::test(flavor = "current_thread")]
async fn a_lone_execution_runs_its_sandbox_on_the_engines_cpu() {
    if !isola_worker::several_cpus() {
        return; // one usable CPU: nothing is placed, and there is nothing to check
    }
    let probe = Arc::new(Probe {
        seen: Mutex::new(Vec::new()),
    });
    let engine = Engine::new(probe.clone(), Backend::InProcess, Limits::default());
    let rec = engine
        .execute(
            "await probe.cpus({}); await probe.cpus({}); return 1;",
            ExecOptions::default(),
        )
        .await;
    assert!(rec.ok, "{:?}", rec.error);
    let seen = probe.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for threads in seen {
        assert_eq!(threads.len(), 1, "one sandbox thread: {threads:?}");
        let cpus = &threads[0];
        assert!(
            !cpus.contains(['-', ',']),
            "the sandbox may run on `{cpus}`, not on one CPU"
        );
    }
}
