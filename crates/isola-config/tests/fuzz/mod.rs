//! Property tests of the config parser on the stable toolchain. Generated configs that are
//! valid by construction parse, with what they say; the same configs with a key given twice,
//! a value of the wrong type or out of range, an unknown key, or damaged bytes are errors that
//! name the file, never a panic and never a silently different config.
//!
//! A bounded number of cases from a seed: random, printed on failure, or `ISOLA_FUZZ_SEED`.

use fastrand::Rng;
use serde_json::{Map, Value, json};

use super::{FILE, parse};

fn seed() -> u64 {
    std::env::var("ISOLA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

fn name(rng: &mut Rng) -> String {
    const PARTS: &[&str] = &["git", "hub", "-", "_", "fs", "é", "😀", "x1", "Time", " "];
    let n = rng.usize(1..4);
    let name: String = (0..n).map(|_| PARTS[rng.usize(..PARTS.len())]).collect();
    // A name of spaces only is refused as empty (a case of its own below).
    if name.trim().is_empty() {
        return "blank".into();
    }
    name
}

/// A valid server entry: stdio or HTTP.
fn server(rng: &mut Rng) -> Value {
    let mut entry = Map::new();
    if rng.bool() {
        entry.insert("command".into(), json!(format!("/bin/{}", name(rng))));
        if rng.bool() {
            let args: Vec<Value> = (0..rng.usize(..4)).map(|_| json!(name(rng))).collect();
            entry.insert("args".into(), Value::Array(args));
        }
        if rng.bool() {
            let mut env = Map::new();
            for _ in 0..rng.usize(..3) {
                env.insert(format!("V{}", rng.u8(..)), json!(name(rng)));
            }
            entry.insert("env".into(), Value::Object(env));
        }
    } else {
        entry.insert(
            "url".into(),
            json!(format!("https://example.com/{}", rng.u16(..))),
        );
        if rng.bool() {
            entry.insert("headers".into(), json!({"X-Token": "${TOKEN}"}));
        }
    }
    if rng.u8(..4) == 0 {
        entry.insert("disabled".into(), json!(rng.bool()));
    }
    Value::Object(entry)
}

/// A valid config; `servers` gets the names of the enabled servers in file order.
fn config(rng: &mut Rng, servers: &mut Vec<String>) -> Value {
    let mut list = Map::new();
    for _ in 0..rng.usize(..5) {
        let n = name(rng);
        if list.contains_key(&n) {
            continue;
        }
        let entry = server(rng);
        if entry.get("disabled") != Some(&json!(true)) {
            servers.push(n.clone());
        }
        list.insert(n, entry);
    }
    let mut doc = Map::new();
    doc.insert("mcpServers".into(), Value::Object(list));
    if rng.bool() {
        let mut isola = Map::new();
        if rng.bool() {
            isola.insert("workers".into(), json!(rng.u8(1..8)));
        }
        if rng.bool() {
            isola.insert("callTimeoutMs".into(), json!(rng.u32(1000..60_000)));
        }
        if rng.bool() {
            isola.insert(
                "requireHardening".into(),
                json!([isola_config::HARDENING_LAYERS
                    [rng.usize(..isola_config::HARDENING_LAYERS.len())]]),
            );
        }
        doc.insert("isola".into(), Value::Object(isola));
    }
    Value::Object(doc)
}

/// `text` (compact JSON) with the first member of one object (picked at random) written twice.
fn duplicate_a_key(rng: &mut Rng, text: &str) -> Option<String> {
    let opens: Vec<usize> = text.match_indices("{\"").map(|(i, _)| i).collect();
    let at = *opens.get(rng.usize(..opens.len().max(1)))?;
    let rest = &text[at + 1..];
    let mut key = serde_json::Deserializer::from_str(rest).into_iter::<String>();
    key.next()?.ok()?;
    let colon = key.byte_offset() + 1;
    let mut value = serde_json::Deserializer::from_str(&rest[colon..]).into_iter::<Value>();
    value.next()?.ok()?;
    let member = &rest[..colon + value.byte_offset()];
    Some(format!("{}{{{member},{rest}", &text[..at]))
}

#[test]
fn generated_valid_configs_parse_as_written() {
    let seed = seed();
    let mut rng = Rng::with_seed(seed);
    for case in 0..500 {
        let mut servers = Vec::new();
        let doc = config(&mut rng, &mut servers);
        let text = if rng.bool() {
            serde_json::to_string_pretty(&doc).unwrap()
        } else {
            format!("\u{feff}{doc}")
        };
        let parsed = parse(&text)
            .unwrap_or_else(|e| panic!("seed {seed}, case {case}: {text}\nrefused: {e}"));
        let names: Vec<&str> = parsed.servers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, servers, "seed {seed}, case {case}: {text}");
    }
}

#[test]
fn a_key_given_twice_anywhere_is_an_error_naming_it() {
    let seed = seed();
    let mut rng = Rng::with_seed(seed);
    let mut tried = 0;
    for case in 0..500 {
        let doc = config(&mut rng, &mut Vec::new());
        let Some(text) = duplicate_a_key(&mut rng, &doc.to_string()) else {
            continue;
        };
        tried += 1;
        let err = match parse(&text) {
            Ok(c) => panic!("seed {seed}, case {case}: accepted {text}\n=> {c:?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("appears twice in one object") && err.contains(FILE),
            "seed {seed}, case {case}: {text}\n{err}"
        );
    }
    assert!(tried > 400, "only {tried} cases had a key to duplicate");
}

/// Valid configs with one thing broken: a value replaced by one of another type, an unknown
/// key, a cut, a byte changed, deep nesting. Refused naming the file, or (when the change
/// happened to keep it valid) accepted; never a panic.
#[test]
fn damaged_configs_are_refused_naming_the_file() {
    let seed = seed();
    let mut rng = Rng::with_seed(seed);
    const ODD: &[&str] = &[
        "null",
        "0",
        "-1",
        "1e999",
        "18446744073709551616",
        "\"\"",
        "[]",
        "{}",
        "true",
        "\"${UNSET}\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "0.5",
    ];
    for case in 0..1500 {
        let doc = config(&mut rng, &mut Vec::new()).to_string();
        let text = match rng.u8(..5) {
            0 => {
                // A value swapped for an odd one.
                let colons: Vec<usize> = doc.match_indices("\":").map(|(i, _)| i + 2).collect();
                let at = colons[rng.usize(..colons.len())];
                let mut de = serde_json::Deserializer::from_str(&doc[at..]).into_iter::<Value>();
                let _ = de.next();
                let end = at + de.byte_offset();
                format!(
                    "{}{}{}",
                    &doc[..at],
                    ODD[rng.usize(..ODD.len())],
                    &doc[end..]
                )
            }
            1 => {
                let opens: Vec<usize> = doc.match_indices('{').map(|(i, _)| i + 1).collect();
                let at = opens[rng.usize(..opens.len())];
                format!("{}\"{}\":1,{}", &doc[..at], name(&mut rng), &doc[at..])
            }
            2 => doc[..doc.floor_char_boundary(rng.usize(..doc.len()))].to_string(),
            3 => {
                let mut bytes = doc.into_bytes();
                let i = rng.usize(..bytes.len());
                bytes[i] = b"{}[]\",:\\ x0"[rng.usize(..11)];
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => {
                let n = rng.usize(100..5000);
                format!(
                    "{{\"mcpServers\": {{}}, \"isola\": {{\"agent\": {}1{}}}}}",
                    "[".repeat(n),
                    "]".repeat(n)
                )
            }
        };
        if let Err(e) = parse(&text) {
            let e = e.to_string();
            assert!(e.contains(FILE), "seed {seed}, case {case}: {text}\n{e}");
        }
    }
}
