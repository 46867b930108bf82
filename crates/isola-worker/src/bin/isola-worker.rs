//! A standalone worker process, for tests and for library users who ship no `isola` binary.
fn main() {
    std::process::exit(isola_worker::worker_main());
}
