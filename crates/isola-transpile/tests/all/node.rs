//! The output is valid JavaScript and the wrapper yields the result: run it through Node.
//! Skipped (with a note) when `node` is not installed.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

/// Evaluates stdin (the transpiled script) with indirect eval, awaits it, prints the JSON result.
const RUNNER: &str = r#"
globalThis.fs = { readFile: async ({ path }) => "contents of " + path };
globalThis.github = { listIssues: async () => [{ title: "a" }, { title: "b" }] };
const src = require("fs").readFileSync(0, "utf8");
Promise.resolve((0, eval)(src)).then(
  (v) => process.stdout.write(JSON.stringify(v === undefined ? null : v)),
  (e) => { process.stdout.write("threw: " + e.message); },
);
"#;

fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(js: &str) -> String {
    let mut child = Command::new("node")
        .args(["-e", RUNNER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(js.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("node output");
    assert!(
        output.status.success(),
        "node failed:\n{}\n{js}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn results_through_node() {
    if !node_available() {
        eprintln!("note: node not found, skipping");
        return;
    }
    let cases: &[(&str, &str)] = &[
        (
            "const a = await fs.readFile({ path: \"x\" });\nreturn a.length;",
            "13",
        ),
        (
            "interface I { title: string }\nconst xs: I[] = await github.listIssues();\nreturn xs.map((x) => x.title);",
            r#"["a","b"]"#,
        ),
        ("async () => { return 1; }", "1"),
        (
            "(async () => { return await fs.readFile({ path: \"p\" }); })",
            r#""contents of p""#,
        ),
        ("async function main(): Promise<number> { return 2; }", "2"),
        ("function sync() { return 3; }", "3"),
        ("export default async () => 4;", "4"),
        ("export default async function() { return 5; }", "5"),
        (
            "const k = 3;\nexport default async function run() { return k * 2; }",
            "6",
        ),
        ("async function main() { return 7; }\nmain();", "7"),
        ("async function main() { return 8; }\nawait main();", "8"),
        ("(async () => 9)();", "9"),
        (
            "const base = 5;\nasync function main() { return base * 2; }",
            "10",
        ),
        ("enum E { A = 11 }\nreturn E.A;", "11"),
        (
            "class P { constructor(public n: number) {} }\nreturn new P(12).n;",
            "12",
        ),
        ("console.log;", "null"),
        ("\"use strict\";\nreturn 14;", "14"),
        ("throw new Error(\"boom\");", "threw: boom"),
        (
            "let total = 0;\nfor await (const x of [1, 2, 3]) total += x;\nreturn total;",
            "6",
        ),
    ];
    for (input, expect) in cases {
        let out =
            isola_transpile::transpile(input, "agent.ts").unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(run(&out.js), *expect, "input:\n{input}\njs:\n{}", out.js);
    }
}
