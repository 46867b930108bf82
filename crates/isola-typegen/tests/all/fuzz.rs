//! Property tests on the stable toolchain: typegen on generated JSON Schemas (every keyword it
//! reads, nested, recursive, broken references, hostile names and descriptions) always renders
//! declarations that parse as a `.d.ts` file, and one batch of them is accepted by
//! `tsc --strict`. Rendering never fails, so a schema TypeScript cannot express must be dropped
//! with a comment, never break the file.
//!
//! A bounded number of cases from a seed: random, printed on failure, or `ISOLA_FUZZ_SEED`.

use fastrand::Rng;
use isola_typegen::{Api, ServerSpec, ToolSpec};
use oxc::allocator::Allocator;
use oxc::parser::Parser;
use oxc::span::SourceType;
use serde_json::{Map, Value, json};

use crate::support::run_tsc;

fn seed() -> u64 {
    std::env::var("ISOLA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// Names that break naive renderers: keywords, quotes, comment ends, line breaks, Unicode, empty.
fn name(rng: &mut Rng) -> String {
    const NAMES: &[&str] = &[
        "a",
        "delete",
        "constructor",
        "__proto__",
        "class",
        "",
        " ",
        "x-y",
        "0",
        "1a",
        "é",
        "😀",
        "\"",
        "'",
        "`",
        "*/",
        "/*",
        "\\",
        "\n",
        "\u{2028}",
        "${x}",
        "a.b",
        "[0]",
        "toString",
        "type",
        "string",
        "Promise",
        "JsonValue",
        "ToolOutput",
        "\u{200b}",
        "\0",
    ];
    let n = rng.usize(1..3);
    (0..n).map(|_| NAMES[rng.usize(..NAMES.len())]).collect()
}

fn text(rng: &mut Rng) -> String {
    const PARTS: &[&str] = &[
        "Some text. ",
        "*/ declare const x: 1; /*",
        "\n",
        "@param x",
        "</script>",
        "`",
        "\\",
        "\u{202e}",
        "😀",
        "\r\n",
        "// ",
        "{@link x}",
    ];
    (0..rng.usize(..4))
        .map(|_| PARTS[rng.usize(..PARTS.len())])
        .collect()
}

fn literal(rng: &mut Rng) -> Value {
    match rng.u8(..6) {
        0 => json!(name(rng)),
        1 => json!(rng.i64(..)),
        2 => json!(f64::from(rng.i32(..)) / 3.0),
        3 => json!(rng.bool()),
        4 => Value::Null,
        _ => json!([name(rng)]),
    }
}

/// A JSON Schema, `depth` levels in; `defs` are the names `$ref` may point at (some refs dangle).
fn schema(rng: &mut Rng, depth: usize, defs: &[String]) -> Value {
    if depth > 6 {
        return json!({"type": "string"});
    }
    let mut s = Map::new();
    match rng.u8(..12) {
        0 => {
            s.insert("type".into(), json!("object"));
            let mut props = Map::new();
            let mut required = Vec::new();
            for _ in 0..rng.usize(..5) {
                let n = name(rng);
                if rng.bool() {
                    required.push(json!(n.clone()));
                }
                props.insert(n, schema(rng, depth + 1, defs));
            }
            if rng.u8(..4) == 0 {
                required.push(json!(name(rng))); // required but not a property
            }
            s.insert("properties".into(), Value::Object(props));
            if !required.is_empty() {
                s.insert("required".into(), Value::Array(required));
            }
            match rng.u8(..4) {
                0 => {
                    s.insert("additionalProperties".into(), json!(false));
                }
                1 => {
                    s.insert("additionalProperties".into(), schema(rng, depth + 1, defs));
                }
                _ => {}
            }
        }
        1 => {
            s.insert("type".into(), json!("array"));
            if rng.u8(..5) != 0 {
                s.insert("items".into(), schema(rng, depth + 1, defs));
            }
            if rng.bool() {
                let tuple: Vec<Value> = (0..rng.usize(..3))
                    .map(|_| schema(rng, depth + 1, defs))
                    .collect();
                s.insert("prefixItems".into(), Value::Array(tuple));
            }
        }
        2 => {
            let values: Vec<Value> = (0..rng.usize(..5)).map(|_| literal(rng)).collect();
            s.insert("enum".into(), Value::Array(values));
        }
        3 => {
            s.insert("const".into(), literal(rng));
        }
        4 | 5 => {
            let key = ["anyOf", "oneOf", "allOf"][rng.usize(..3)];
            let alts: Vec<Value> = (0..rng.usize(..4))
                .map(|_| schema(rng, depth + 1, defs))
                .collect();
            s.insert(key.into(), Value::Array(alts));
        }
        6 if !defs.is_empty() => {
            let target = &defs[rng.usize(..defs.len())];
            let pointer = target.replace('~', "~0").replace('/', "~1");
            s.insert("$ref".into(), json!(format!("#/$defs/{pointer}")));
        }
        7 => {
            s.insert("$ref".into(), json!(format!("#/nowhere/{}", name(rng))));
        }
        8 => {
            let types = [
                "string", "number", "integer", "boolean", "null", "object", "array",
            ];
            let pick: Vec<Value> = (0..rng.usize(1..4))
                .map(|_| json!(types[rng.usize(..types.len())]))
                .collect();
            s.insert("type".into(), Value::Array(pick));
        }
        9 => {
            // Odd shapes: a bare boolean schema, an unknown type, a wrong-typed keyword.
            return [
                json!(true),
                json!(false),
                json!({"type": "frobnicate"}),
                json!({"properties": 3}),
                json!({"required": "x", "type": "object"}),
                json!({"enum": "x"}),
                json!({"items": [1]}),
                json!([]),
            ][rng.usize(..8)]
            .clone();
        }
        _ => {
            let t = ["string", "number", "integer", "boolean", "null"][rng.usize(..5)];
            s.insert("type".into(), json!(t));
            if t == "string" && rng.bool() {
                s.insert(
                    "format".into(),
                    json!(["date-time", "uri", name(rng).as_str()][rng.usize(..3)]),
                );
            }
        }
    }
    if rng.u8(..3) == 0 {
        s.insert("description".into(), json!(text(rng)));
    }
    if rng.u8(..8) == 0 {
        s.insert("default".into(), literal(rng));
    }
    if rng.u8(..8) == 0 {
        s.insert("title".into(), json!(text(rng)));
    }
    Value::Object(s)
}

fn tool(rng: &mut Rng) -> ToolSpec {
    let defs: Vec<String> = (0..rng.usize(..3)).map(|_| name(rng)).collect();
    let mut input = schema(rng, 0, &defs);
    if rng.u8(..4) != 0 {
        // Mostly object inputs, as MCP says; sometimes anything.
        input = json!({"type": "object", "properties": {"p": input, "q": schema(rng, 1, &defs)}, "required": ["p"]});
    }
    if !defs.is_empty()
        && let Some(obj) = input.as_object_mut()
    {
        let mut d = Map::new();
        for n in &defs {
            // Definitions may refer to each other and to themselves.
            d.insert(n.clone(), schema(rng, 2, &defs));
        }
        obj.insert("$defs".into(), Value::Object(d));
    }
    ToolSpec {
        name: name(rng),
        title: rng.bool().then(|| text(rng)),
        description: rng.bool().then(|| text(rng)),
        input_schema: input,
        output_schema: rng.bool().then(|| schema(rng, 0, &[])),
        annotations: None,
    }
}

fn server(rng: &mut Rng) -> ServerSpec {
    ServerSpec {
        name: name(rng),
        tools: (0..rng.usize(1..4)).map(|_| tool(rng)).collect(),
    }
}

/// Syntax errors of `dts` read as a declaration file.
fn dts_errors(dts: &str) -> Vec<String> {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, dts, SourceType::d_ts()).parse();
    let mut errors: Vec<String> = parsed
        .diagnostics
        .iter()
        .filter(|d| d.severity == oxc::diagnostics::Severity::Error)
        .map(|e| e.to_string())
        .collect();
    if parsed.panicked {
        errors.push("the parser gave up".into());
    }
    errors
}

#[test]
fn declarations_of_generated_schemas_always_parse() {
    let seed = seed();
    let mut rng = Rng::with_seed(seed);
    for case in 0..300 {
        let servers: Vec<ServerSpec> = (0..rng.usize(1..3)).map(|_| server(&mut rng)).collect();
        let api = Api::build(&servers);
        let dts = api.declarations(None);
        let errors = dts_errors(&dts);
        assert!(
            errors.is_empty(),
            "seed {seed}, case {case}: {errors:?}\n--- tools ---\n{servers:#?}\n--- declarations ---\n{dts}"
        );
        // The other renderings of the same API must not panic either.
        let _ = api.compact(None);
        for ns in &api.namespaces {
            for f in &ns.functions {
                let one = api.function_declaration(&ns.ident, &f.ident).unwrap();
                let alone = format!("{}\n{one}", Api::prelude());
                let errors = dts_errors(&alone);
                assert!(
                    errors.is_empty(),
                    "seed {seed}, case {case}: {errors:?}\n{alone}"
                );
            }
        }
    }
}

/// One batch of generated servers through the real TypeScript compiler in strict mode: no
/// duplicate identifiers, no type that does not exist, no cycle it cannot resolve.
#[test]
fn tsc_accepts_declarations_of_generated_schemas() {
    let seed = seed();
    let mut rng = Rng::with_seed(seed);
    let servers: Vec<ServerSpec> = (0..40).map(|_| server(&mut rng)).collect();
    let dts = Api::build(&servers).declarations(None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gen.d.ts"), &dts).unwrap();
    let (ok, output) = run_tsc(dir.path(), &[vec!["gen.d.ts"]]).remove(0);
    assert!(
        ok,
        "seed {seed}: tsc refused:\n{output}\n--- declarations ---\n{dts}"
    );
}

/// Found by the generator: a server named `*/` ended the namespace's doc comment early, and the
/// rest of its line broke the file.
#[test]
fn a_server_name_that_ends_a_comment_stays_inside_it() {
    let api = Api::build(&[ServerSpec {
        name: "*/ declare const x: 1; /*".into(),
        tools: vec![ToolSpec {
            name: "t".into(),
            title: None,
            description: None,
            input_schema: json!({"type": "object"}),
            output_schema: None,
            annotations: None,
        }],
    }]);
    let dts = api.declarations(None);
    assert_eq!(dts_errors(&dts), Vec::<String>::new(), "{dts}");
    assert!(
        dts.contains(r#"/** Tools of MCP server "*\/ declare const x: 1; /*". */"#),
        "{dts}"
    );
}
