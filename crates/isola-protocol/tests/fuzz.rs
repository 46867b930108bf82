//! Property tests of the worker frame decoder on the stable toolchain: generated message
//! streams split anywhere come out whole, and generated garbage (mutated frames, random
//! lengths, random bytes) is an error or a wait for more, never a panic or an unbounded buffer.
//!
//! Each test runs a bounded number of cases from a seed: a random one, printed when a case
//! fails, or `ISOLA_FUZZ_SEED` to replay one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use isola_protocol::{
    CallErrorKind, CallResult, FrameDecoder, FrameError, HostMsg, LogLevel, MAX_FRAME_BYTES,
    SandboxMsg, encode_frame,
};

fn seed() -> u64 {
    std::env::var("ISOLA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// Text with the characters that break framings and JSON: quotes, escapes, controls, NUL,
/// multi-byte and astral characters, a BOM.
fn text(rng: &mut fastrand::Rng, max: usize) -> String {
    const PIECES: &[&str] = &[
        "a",
        "\"",
        "\\",
        "\n",
        "\r",
        "\0",
        "\u{1b}[2J",
        "é",
        "😀",
        "\u{feff}",
        "\u{2028}",
        "{",
        "}",
        "\\ud83d",
        "\u{10ffff}",
        " ",
    ];
    let n = rng.usize(..=max);
    (0..n).map(|_| PIECES[rng.usize(..PIECES.len())]).collect()
}

fn host_msg(rng: &mut fastrand::Rng) -> HostMsg {
    match rng.u8(..4) {
        0 => HostMsg::CallDone {
            id: rng.u32(..),
            result: if rng.bool() {
                CallResult::Ok {
                    value: text(rng, 40),
                }
            } else {
                CallResult::Err {
                    kind: [
                        CallErrorKind::Tool,
                        CallErrorKind::Validation,
                        CallErrorKind::Denied,
                        CallErrorKind::Internal,
                    ][rng.usize(..4)],
                    name: text(rng, 5),
                    message: text(rng, 60),
                    tool: text(rng, 5),
                }
            },
            now_ms: rng.u64(..),
        },
        1 => HostMsg::Fire {
            id: rng.u32(..),
            now_ms: rng.u64(..),
        },
        2 => HostMsg::Hold,
        _ => HostMsg::Resume,
    }
}

fn sandbox_msg(rng: &mut fastrand::Rng) -> SandboxMsg {
    match rng.u8(..4) {
        0 => SandboxMsg::Call {
            id: rng.u32(..),
            binding: rng.u32(..),
            args: text(rng, 80),
        },
        1 => SandboxMsg::Timer {
            id: rng.u32(..),
            // Finite: JSON has no infinities.
            ms: f64::from(rng.u32(..)) / 7.0,
        },
        2 => SandboxMsg::ClearTimer { id: rng.u32(..) },
        _ => SandboxMsg::Log {
            level: [LogLevel::Log, LogLevel::Warn, LogLevel::Error][rng.usize(..3)],
            text: text(rng, 200),
        },
    }
}

/// Feed `stream` in random pieces through both entry points; every message decoded, in order,
/// or the first error.
fn decode_all<T: serde::de::DeserializeOwned>(
    rng: &mut fastrand::Rng,
    stream: &[u8],
) -> (Vec<T>, Option<FrameError>, FrameDecoder) {
    let mut d = FrameDecoder::new();
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let n = rng.usize(1..=(stream.len() - at).min(300));
        let piece = &stream[at..at + n];
        if rng.bool() {
            d.feed(piece);
        } else {
            d.spare().extend_from_slice(piece);
        }
        at += n;
        loop {
            match d.decode::<T>() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(e), d),
            }
        }
    }
    (out, None, d)
}

#[test]
fn generated_message_streams_split_anywhere_come_out_whole() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    for case in 0..400 {
        let host: Vec<HostMsg> = (0..rng.usize(..20)).map(|_| host_msg(&mut rng)).collect();
        let stream: Vec<u8> = host.iter().flat_map(|m| encode_frame(m).unwrap()).collect();
        let (out, err, d) = decode_all::<HostMsg>(&mut rng, &stream);
        assert!(err.is_none(), "seed {seed}, case {case}: {err:?}");
        assert_eq!(out, host, "seed {seed}, case {case}");
        assert!(!d.has_buffered(), "seed {seed}, case {case}");

        let sandbox: Vec<SandboxMsg> = (0..rng.usize(..20))
            .map(|_| sandbox_msg(&mut rng))
            .collect();
        let stream: Vec<u8> = sandbox
            .iter()
            .flat_map(|m| encode_frame(m).unwrap())
            .collect();
        let (out, err, _) = decode_all::<SandboxMsg>(&mut rng, &stream);
        assert!(err.is_none(), "seed {seed}, case {case}: {err:?}");
        assert_eq!(out, sandbox, "seed {seed}, case {case}");
    }
}

/// What a hostile worker can send: valid frames with bytes flipped, inserted or cut, lengths
/// that lie, random bytes. The decoder returns what it can, then an error or a wait; it never
/// panics and never holds more than it was given plus one read chunk.
#[test]
fn mutated_and_random_streams_never_panic() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    for case in 0..1500 {
        let msgs: Vec<SandboxMsg> = (0..rng.usize(1..6))
            .map(|_| sandbox_msg(&mut rng))
            .collect();
        let mut stream: Vec<u8> = msgs.iter().flat_map(|m| encode_frame(m).unwrap()).collect();
        match rng.u8(..5) {
            0 => {
                for _ in 0..rng.usize(1..4) {
                    let i = rng.usize(..stream.len());
                    stream[i] = rng.u8(..);
                }
            }
            1 => {
                let i = rng.usize(..=stream.len());
                let junk: Vec<u8> = (0..rng.usize(1..10)).map(|_| rng.u8(..)).collect();
                stream.splice(i..i, junk);
            }
            2 => stream.truncate(rng.usize(..stream.len())),
            3 => {
                // A length that lies, small or past the limit.
                let len = if rng.bool() {
                    rng.u32(..64)
                } else {
                    rng.u32(MAX_FRAME_BYTES..)
                };
                let i = rng.usize(..=stream.len());
                stream.splice(i..i, len.to_le_bytes());
            }
            _ => stream = (0..rng.usize(..200)).map(|_| rng.u8(..)).collect(),
        }
        let given = stream.len();
        let (out, err, d) = decode_all::<SandboxMsg>(&mut rng, &stream);
        // Whatever came out is a prefix of what went in, when the damage came after it.
        if let Some(FrameError::TooLarge { len }) = &err {
            assert!(*len > MAX_FRAME_BYTES, "seed {seed}, case {case}");
        }
        assert!(
            out.len() <= msgs.len() + given / 5,
            "seed {seed}, case {case}"
        );
        drop(d);
    }
}

/// Random JSON in a frame of the right length: a message or `Malformed`, never a panic; deep
/// nesting included (serde's recursion limit, not the stack).
#[test]
fn random_json_bodies_are_messages_or_malformed() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    for case in 0..1500 {
        let body = json_text(&mut rng, 0);
        let mut frame = u32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
        frame.extend_from_slice(body.as_bytes());
        let mut d = FrameDecoder::new();
        d.feed(&frame);
        match d.decode::<HostMsg>() {
            Ok(Some(_)) | Err(FrameError::Malformed(_)) => {}
            other => panic!("seed {seed}, case {case}: {body:?} gave {other:?}"),
        }
    }
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut d = FrameDecoder::new();
    d.feed(&u32::try_from(deep.len()).unwrap().to_le_bytes());
    d.feed(deep.as_bytes());
    assert!(matches!(
        d.decode::<HostMsg>(),
        Err(FrameError::Malformed(_))
    ));
}

/// JSON-ish text shaped like the messages: right and wrong tags, fields of the wrong type,
/// extra fields, nesting.
fn json_text(rng: &mut fastrand::Rng, depth: usize) -> String {
    const TAGS: &[&str] = &[
        "exec", "callDone", "fire", "hold", "resume", "call", "", "Exec",
    ];
    let scalar = |rng: &mut fastrand::Rng| -> String {
        match rng.u8(..7) {
            0 => "null".into(),
            1 => rng.i64(..).to_string(),
            2 => format!("{:?}", text(rng, 8)).replace("\\u{", "\\u00"),
            3 => "1e400".into(),
            4 => "-0".into(),
            5 => "\"\\ud800\"".into(),
            _ => rng.bool().to_string(),
        }
    };
    if depth > 4 || rng.u8(..3) == 0 {
        return scalar(rng);
    }
    if rng.bool() {
        let mut fields = Vec::new();
        if rng.u8(..4) != 0 {
            fields.push(format!("\"t\":\"{}\"", TAGS[rng.usize(..TAGS.len())]));
        }
        for key in [
            "id", "nowMs", "result", "status", "value", "code", "limits", "t",
        ] {
            if rng.u8(..3) == 0 {
                fields.push(format!("\"{key}\":{}", json_text(rng, depth + 1)));
            }
        }
        format!("{{{}}}", fields.join(","))
    } else {
        let items: Vec<String> = (0..rng.usize(..4))
            .map(|_| json_text(rng, depth + 1))
            .collect();
        format!("[{}]", items.join(","))
    }
}
