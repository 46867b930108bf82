//! Syntax errors: message, position and code frame.

use isola_transpile::{SyntaxError, transpile};

fn error(input: &str) -> SyntaxError {
    match transpile(input, "agent.ts") {
        Ok(out) => panic!("expected a syntax error for:\n{input}\ngot:\n{}", out.js),
        Err(err) => err,
    }
}

/// `expect` is `line:column: message`.
#[track_caller]
fn check(input: &str, expect: &str) {
    let err = error(input);
    let actual = format!("{}:{}: {}", err.line, err.column, err.message);
    assert_eq!(actual, expect, "input:\n{input}\n\n{err}");
}

const IMPORT: &str = "imports are not available in the sandbox: the API is global (e.g. `github.createIssue(...)`); remove this import";
const EXPORT: &str = "exports are not needed: return the result instead";

#[test]
fn imports_are_rejected() {
    check("import x from \"y\";\nx();", &format!("1:1: {IMPORT}"));
    check(
        "const a = 1;\n  import { b } from \"b\";",
        &format!("2:3: {IMPORT}"),
    );
    check("import \"side-effect\";", &format!("1:1: {IMPORT}"));
    check("import * as gh from \"github\";", &format!("1:1: {IMPORT}"));
    check(
        "import { type A, b } from \"m\";",
        &format!("1:1: {IMPORT}"),
    );
    check("import fs = require(\"fs\");", &format!("1:1: {IMPORT}"));
    check(
        "const a = 1;\nconst m = await import(\"fs\");",
        &format!("2:17: {IMPORT}"),
    );
    check(
        "function f() {\n  return import(\"x\");\n}",
        &format!("2:10: {IMPORT}"),
    );
    check(
        "const u = import.meta.url;",
        "1:11: `import.meta` is not available in the sandbox: scripts are not modules",
    );
}

#[test]
fn exports_are_rejected() {
    check("export const x = 1;", &format!("1:1: {EXPORT}"));
    check("const a = 1;\nexport { a };", &format!("2:1: {EXPORT}"));
    check("export * from \"x\";", &format!("1:1: {EXPORT}"));
    check("export { a } from \"x\";", &format!("1:1: {EXPORT}"));
    check("export function f() {}", &format!("1:1: {EXPORT}"));
    check("export default class {}", &format!("1:1: {EXPORT}"));
    check("export default 42;", &format!("1:1: {EXPORT}"));
    check("export default await main();", &format!("1:1: {EXPORT}"));
    check("export = 1;", &format!("1:1: {EXPORT}"));
}

#[test]
fn syntax_errors_have_positions() {
    check("const a = ;", "1:11: Unexpected token `;`");
    check(
        "let a = 1;\nlet a = 2;",
        "2:5: Identifier `a` has already been declared",
    );
    check(
        "await 1;\nfunction f() {\n  await 2;\n}",
        "3:3: `await` is only allowed within async functions and at the top levels of modules",
    );
    check("break;", "1:1: Illegal break statement");
    check("const s = \"abc\n\";", "1:11: Unterminated string");
    // Columns count chars, not bytes.
    check("const é = \"😀\"; const = 1;", "1:22: Unexpected token `=`");
    // CRLF line ends.
    check(
        "const a = 1;\r\nconst b = ;\r\n",
        "2:11: Unexpected token `;`",
    );
}

#[test]
fn the_first_error_wins() {
    // A parse error comes before module and semantic checks.
    check(
        "import x from \"y\";\nconst = 1;",
        "2:7: Unexpected token `=`",
    );
    // Among module violations, the earliest.
    check(
        "const a = await import(\"z\");\nimport x from \"y\";",
        &format!("1:17: {IMPORT}"),
    );
}

#[test]
fn display_snapshots() {
    let cases = [
        "interface Options {\n  repo: string;\n}\nconst opts: Options = { repo: \"x\" };\nconst n = opts.repo +;\nreturn n;\n",
        "import { createIssue } from \"github\";\nawait createIssue({ title: \"x\" });\n",
        "function f() {\n\tif (x) {\n\t\treturn (\n\t}\n}\n",
        "let total = 0;\nlet total = 1;\n",
        "await 1; function f() { await 2 }",
        &format!("const s = \"{}\" + ;", "x".repeat(150)),
        &format!("const long = [{}];\nconst b = ;", "1, ".repeat(60)),
        "const a = 1;\r\nconst b = a +;\r\nreturn b;\r\n",
        "foo(\n  1,\n  2\n",
    ];
    let report: Vec<String> = cases
        .iter()
        .map(|input| format!("--- input:\n{input}\n--- error:\n{}", error(input)))
        .collect();
    insta::assert_snapshot!(report.join("\n\n"));
}

#[test]
fn code_frame_edges() {
    use isola_transpile::code_frame;
    // Past the end: clamped.
    assert_eq!(code_frame("a\nb", 9, 9), "  1 | a\n> 2 | b\n    |  ^");
    // Line 0 / column 0 are treated as 1.
    assert_eq!(code_frame("abc", 0, 0), "> 1 | abc\n    | ^");
    // Tabs become four spaces, caret follows.
    assert_eq!(
        code_frame("\tx = ;", 1, 6),
        "> 1 |     x = ;\n    |         ^"
    );
    // Wide gutters line up.
    let source: String = (1..=12).map(|n| format!("line{n}\n")).collect();
    assert_eq!(
        code_frame(&source, 10, 2),
        "   8 | line8\n   9 | line9\n> 10 | line10\n     |  ^\n  11 | line11\n  12 | line12"
    );
}
