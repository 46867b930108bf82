//! The engine's own cost per tool call, for profiling:
//! `cargo run --release -p isola-bench --example round_trip -- [WORKER_BIN] [CALLS]`
//! (without WORKER_BIN the in-process backend is used).

use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let backend = match args.next().filter(|a| a != "-") {
        Some(p) => isola_worker::Backend::Workers(isola_worker::WorkerPool::new(
            isola_worker::WorkerCommand {
                program: p.into(),
                args: vec![],
            },
            1,
        )),
        None => isola_worker::Backend::InProcess,
    };
    let calls: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let engine = isola_engine::Engine::new(
        Arc::new(isola_test_support::tools::InstantTools::NOOP),
        backend,
        isola_protocol::Limits::default(),
    );
    match isola_bench::engine_round_trip(&engine, calls, 5).await {
        Ok(us) => println!("{us:.1} µs per call"),
        Err(e) => eprintln!("{e}"),
    }
}
