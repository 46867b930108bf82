//! `isola-bench exec` without the CLI: `cargo run --release -p isola-bench --example exec_latency -- WORKER_BIN [DENO]`
//! (WORKER_BIN: a built `isola-worker`, e.g. target/release/isola-worker).

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let worker = args.next().map(|p| isola_worker::WorkerCommand {
        program: p.into(),
        args: vec![],
    });
    let deno = args.next().map(std::path::PathBuf::from);
    print!(
        "{}",
        isola_bench::exec_latency(worker, 2000, deno.as_deref()).await
    );
}
