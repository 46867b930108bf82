//! `isola-fake-worker MODE`: a worker process that speaks the sandbox protocol but ignores
//! every limit, as a worker compromised through an interpreter bug could. The host must hold
//! its limits against it (tests in `crates/isola-engine/tests`).
//!
//! Modes (what it does with each `Exec`, whatever the code says):
//! - `flood-calls`: makes twice `maxToolCalls` + 5 calls, answers `Done` once they are answered;
//! - `flood-logs`: writes ten times `maxLogBytes` of console output, then returns 1;
//! - `big-result`: returns a string four times `maxResultBytes` long;
//! - `flood-timers`: sets more timers than the host allows at once;
//! - `protocol=N`: says it speaks protocol version N.

use std::io::{Read, Write};

use isola_protocol::{
    FrameDecoder, HostMsg, LogLevel, MAX_TIMERS, PROTOCOL_VERSION, Payload, Ready, RunOutcome,
    SandboxMsg, encode_frame,
};

fn send(out: &mut impl Write, msg: &SandboxMsg) -> std::io::Result<()> {
    let frame = encode_frame(msg).map_err(std::io::Error::other)?;
    out.write_all(&frame)?;
    out.flush()
}

fn recv(input: &mut impl Read, frames: &mut FrameDecoder) -> Option<HostMsg> {
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(msg) = frames.decode().ok()? {
            return Some(msg);
        }
        let n = input.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        frames.feed(&chunk[..n]);
    }
}

fn done(json: &str) -> SandboxMsg {
    SandboxMsg::Done(RunOutcome {
        result: Ok(Some(Payload {
            json: json.to_string(),
            dropped_bytes: 0,
        })),
        logs_dropped_bytes: 0,
        memory_used_bytes: 0,
    })
}

fn main() -> std::io::Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let (mut input, mut out) = (std::io::stdin().lock(), std::io::stdout().lock());
    let protocol = mode
        .strip_prefix("protocol=")
        .and_then(|n| n.parse().ok())
        .unwrap_or(PROTOCOL_VERSION);
    send(
        &mut out,
        &SandboxMsg::Ready(Ready {
            protocol,
            hardening: Vec::new(),
        }),
    )?;
    let mut frames = FrameDecoder::new();
    while let Some(msg) = recv(&mut input, &mut frames) {
        let HostMsg::Exec(request) = msg else {
            continue;
        };
        let limits = request.limits;
        match mode.as_str() {
            "flood-calls" => {
                let n = limits.max_tool_calls.saturating_mul(2).saturating_add(5);
                for id in 1..=n {
                    let call = SandboxMsg::Call {
                        id,
                        binding: 0,
                        args: "{}".into(),
                    };
                    if send(&mut out, &call).is_err() {
                        return Ok(());
                    }
                }
                let mut answered = 0;
                while answered < n {
                    match recv(&mut input, &mut frames) {
                        Some(HostMsg::CallDone { .. }) => answered += 1,
                        Some(_) => {}
                        None => return Ok(()),
                    }
                }
                send(&mut out, &done("1"))?;
            }
            "flood-logs" => {
                let line = "y".repeat(1000);
                for _ in 0..(limits.max_log_bytes * 10 / 1000 + 1) {
                    send(
                        &mut out,
                        &SandboxMsg::Log {
                            level: LogLevel::Log,
                            text: line.clone(),
                        },
                    )?;
                }
                send(&mut out, &done("1"))?;
            }
            "big-result" => {
                let text = format!("\"{}\"", "z".repeat(limits.max_result_bytes as usize * 4));
                send(&mut out, &done(&text))?;
            }
            "flood-timers" => {
                for id in 1..=MAX_TIMERS + 5 {
                    send(&mut out, &SandboxMsg::Timer { id, ms: 60_000.0 })?;
                }
                send(&mut out, &done("1"))?;
            }
            _ => send(&mut out, &done("null"))?,
        }
    }
    Ok(())
}
