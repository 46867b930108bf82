//! Instructions per execution and per call, for profiling (counts are repeatable, timings on a
//! shared VM are not): run it under `valgrind --tool=callgrind` with N=1 and N=101 executions
//! and divide the difference by 100. `cargo build --release -p isola-bench --example per_exec`,
//! then `per_exec N [CALLS]`: N in-process executions, each making CALLS calls to an instant
//! tool.

use std::sync::Arc;

use futures::future::BoxFuture;
use isola_engine::{Engine, ExecOptions, ToolError, Tools};
use serde_json::{Map, Value, json};

struct Noop;

impl Tools for Noop {
    fn servers(&self) -> Vec<isola_typegen::ServerSpec> {
        vec![isola_typegen::ServerSpec {
            name: "bench".into(),
            tools: vec![isola_typegen::ToolSpec {
                name: "noop".into(),
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
        Box::pin(async { Ok(json!({"content": [{"type": "text", "text": "ok"}]})) })
    }
}

fn main() {
    let arg = |i: usize, d: u32| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (n, calls) = (arg(1, 1), arg(2, 0));
    let script =
        format!("for (let i = 0; i < {calls}; i++) {{ await bench.noop({{ i }}); }}\nreturn 42;");
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        let engine = Engine::new(
            Arc::new(Noop),
            isola_worker::Backend::InProcess,
            Default::default(),
        );
        for _ in 0..n {
            let r = engine.execute(&script, ExecOptions::default()).await;
            if !r.ok {
                eprintln!("failed: {:?}", r.error);
            }
        }
    });
}
