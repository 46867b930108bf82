//! Positions in the generated JavaScript map back to the TypeScript.

use isola_transpile::{SCRIPT_NAME, Transpiled, transpile};

/// 1-based (line, column in bytes) of the first `needle` in `js`, as QuickJS would report it.
fn js_position(js: &str, needle: &str) -> (u32, u32) {
    let offset = js
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{js}"));
    let before = &js[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |n| n + 1) + 1;
    (u32::try_from(line).unwrap(), u32::try_from(column).unwrap())
}

fn transpiled(source: &str) -> Transpiled {
    transpile(source, "agent.ts").unwrap_or_else(|err| panic!("{err}"))
}

/// The generated position of each `needle` maps back to `expect` (line, column) in the source.
#[track_caller]
fn check(source: &str, needle: &str, expect: (u32, u32)) {
    let out = transpiled(source);
    let (line, column) = js_position(&out.js, needle);
    assert_eq!(
        out.original_position(line, column),
        Some(expect),
        "{needle:?} at {line}:{column} in:\n{}",
        out.js
    );
}

const TYPED: &str = r#"interface Options {
  repo: string;
  labels: Array<
    string
  >;
}
function f(o: Options): never { throw new Error("x"); }
"#;

#[test]
fn transpiled_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Transpiled>();
    assert_send_sync::<isola_transpile::SyntaxError>();
}

#[test]
fn throw_after_vanished_types_maps_back() {
    let source = r#"interface Options {
  repo: string;
}
const o: Options | Array<
  string> = { repo: "x" };
type T = number; if (o) {
        throw new Error("x");
}
"#;
    assert_eq!(
        source.lines().nth(6).map(|l| l.find("throw")),
        Some(Some(8))
    );
    check(source, "throw", (7, 9));
    check(source, "Error", (7, 19));
    check(source, "const o", (4, 1));

    check(TYPED, "throw", (7, 33));
}

#[test]
fn nearest_token_before_the_column_is_used() {
    let out = transpiled(TYPED);
    let (line, column) = js_position(&out.js, "throw");
    // A column in the middle of `throw`, or in the spaces after it, still maps to `throw`.
    assert_eq!(out.original_position(line, column + 2), Some((7, 33)));
    // A column before every token on the line (in the indentation) maps to the line's first.
    assert_eq!(out.original_position(line, 1), Some((7, 33)));
    // The wrapper's lines map to nothing.
    assert_eq!(out.original_position(1, 1), None);
    let last = u32::try_from(out.js.lines().count()).unwrap();
    assert_eq!(out.original_position(last, 1), None);
    assert_eq!(out.original_position(last + 10, 1), None);
    assert_eq!(out.original_position(0, 0), None);
}

#[test]
fn columns_count_chars_in_the_source_and_bytes_in_the_js() {
    let source = "const s: string = \"é😀\"; const t = s + missing;";
    let out = transpiled(source);
    let (line, column) = js_position(&out.js, "missing");
    assert_eq!(out.original_position(line, column), Some((1, 39)));
    assert_eq!(
        source.chars().take(38).collect::<String>(),
        "const s: string = \"é😀\"; const t = s + "
    );
}

#[test]
fn map_stack_rewrites_a_quickjs_stack() {
    // Recorded from QuickJS-ng (rquickjs 0.14) running the output of this script.
    let source = r#"type Issue = { title: string };
async function fetchAll(n: number): Promise<Issue[]> {
  const out: Issue[] = [];
  for (let i = 0; i < n; i++) {
    out.push(check(i));
  }
  return out;
}
function check(i: number): Issue {
  if (i > 1) {
    throw new Error(`bad ${i}`);
  }
  return { title: "t" + i };
}
const all = await fetchAll(3);
return all.length;
"#;
    let out = transpiled(source);
    let stack = format!(
        "    at check ({SCRIPT_NAME}:11:26)\n    at fetchAll ({SCRIPT_NAME}:5:18)\n    at <anonymous> ({SCRIPT_NAME}:15:19)\n    at <eval> ({SCRIPT_NAME}:17:1)\n"
    );
    assert_eq!(
        out.map_stack(&stack),
        "    at check (agent.ts:11:28)\n    at fetchAll (agent.ts:5:20)\n    at <anonymous> (agent.ts:15:19)\n"
    );
    assert_eq!(out.first_position(&stack), Some((11, 28)));
}

#[test]
fn map_stack_keeps_what_it_does_not_know() {
    let out = transpiled("const a = 1;\nJSON.parse(\"{\");\n");
    let (line, column) = js_position(&out.js, "JSON");
    let stack = format!(
        "    at parse (native)\n    at <anonymous> ({SCRIPT_NAME}:{line}:{column})\n    at <eval> ({SCRIPT_NAME}:4:1)\n    at helper (prelude.js:3:7)"
    );
    assert_eq!(
        out.map_stack(&stack),
        "    at parse (native)\n    at <anonymous> (agent.ts:2:1)\n    at helper (prelude.js:3:7)"
    );
    // The first frame with a mapping, skipping native ones.
    assert_eq!(out.first_position(&stack), Some((2, 1)));
    // The parse-error form `at script.js:L:C` and odd function names.
    let odd = format!(
        "    at {SCRIPT_NAME}:{line}:{column}\n    at get script.js:9 ({SCRIPT_NAME}:{line}:{column})\n"
    );
    assert_eq!(
        out.map_stack(&odd),
        "    at agent.ts:2:1\n    at get script.js:9 (agent.ts:2:1)\n"
    );
    assert_eq!(out.map_stack("no frames here"), "no frames here");
    assert_eq!(out.first_position("no frames here"), None);
}

#[test]
fn entry_form_calls_are_wrapper_code() {
    // Recorded from QuickJS-ng running the output of this script.
    let out = transpiled(
        "export default async () => {\n  const data = JSON.parse(\"{bad\");\n  return data;\n};\n",
    );
    assert_eq!(
        out.js,
        "(async () => {\nreturn async () => {\n\tconst data = JSON.parse(\"{bad\");\n\treturn data;\n};\n})().then((entry) => typeof entry === \"function\" ? entry() : entry)"
    );
    let stack = format!(
        "    at <input>:1:2\n    at parse (native)\n    at <anonymous> ({SCRIPT_NAME}:3:20)\n    at <anonymous> ({SCRIPT_NAME}:6:52)\n"
    );
    assert_eq!(
        out.map_stack(&stack),
        "    at <input>:1:2\n    at parse (native)\n    at <anonymous> (agent.ts:2:21)\n"
    );
}
