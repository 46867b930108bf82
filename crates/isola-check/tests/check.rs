//! The checker against the real compilers: TypeScript 7's native one (fixtures/tsc7) and the
//! Node one the typegen tests use (fixtures/servers, TypeScript 5.9), and against compilers
//! that misbehave.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use isola_check::{CheckError, CheckLimits, Checker, Compiler, Diagnostic};

/// Declarations of the shape `isola types` prints.
const API: &str = r#"declare namespace crm {
  /** Look a customer up. */
  function findCustomer(input: { email: string; limit?: number }): Promise<{ id: string; name: string; tags: string[] }>;
}
declare namespace mailer {
  function send(input: { to: string; subject: string; body?: string }): Promise<{ queued: boolean }>;
}
"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compiler(fixture: &str) -> Compiler {
    let tsc = root().join(fixture).join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "{} is missing: run `npm ci --prefix {fixture}` (scripts/test.sh does)",
        tsc.display()
    );
    Compiler::at(&tsc)
}

fn native() -> Checker {
    Checker::new(compiler("fixtures/tsc7"), CheckLimits::default()).unwrap()
}

fn checkable(source: &str) -> String {
    isola_transpile::transpile(source, "script.ts")
        .unwrap()
        .checkable()
}

async fn diagnostics(checker: &Checker, source: &str) -> Vec<Diagnostic> {
    checker
        .check(&checkable(source), API)
        .await
        .unwrap()
        .diagnostics
}

#[test]
fn the_npm_launcher_is_replaced_by_the_native_binary() {
    let c = compiler("fixtures/tsc7");
    assert!(
        c.program.ends_with("lib/tsc") && c.program.to_string_lossy().contains("@typescript/"),
        "{}",
        c.program.display()
    );
}

#[tokio::test]
async fn a_wrong_argument_is_found_at_its_line_and_column() {
    let checker = native();
    let source = "const c = await crm.findCustomer({ email: 42 });\nreturn c.name;\n";
    let found = diagnostics(&checker, source).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].line, found[0].column), (1, 36), "{found:?}");
    assert_eq!(found[0].code, "TS2322");
    assert!(
        found[0]
            .message
            .contains("'number' is not assignable to type 'string'")
    );
}

#[tokio::test]
async fn what_a_script_may_be_checks_clean() {
    let checker = native();
    for source in [
        // A body: top-level await and return, the sandbox's globals.
        "const c = await crm.findCustomer({ email: 'a@b.c' });\nconsole.log(c.tags.join(','));\nsetTimeout(() => {}, 10);\nif (!c.id) return null;\nreturn c.name;\n",
        // An entry form, with a type exported beside it.
        "export type Out = { queued: boolean };\nexport default async function main(): Promise<Out> {\n  return await mailer.send({ to: 'x', subject: 'y' });\n}\n",
        // Promise.all over the API, ES2023 array methods.
        "const all = await Promise.all(['a', 'b'].map((email) => crm.findCustomer({ email })));\nreturn all.toSorted((x, y) => x.name.localeCompare(y.name)).at(-1)?.id;\n",
    ] {
        let found = diagnostics(&checker, source).await;
        assert!(found.is_empty(), "{source}\n{found:?}");
    }
}

#[tokio::test]
async fn errors_in_returns_and_entry_functions_are_found() {
    let checker = native();
    let found = diagnostics(
        &checker,
        "export default async function main() {\n  const c = await crm.findCustomer({ email: 'x' });\n  return c.nmae;\n}\n",
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].line, found[0].column), (3, 12));
    // "Property 'nmae' does not exist" (TS2339), or with "Did you mean 'name'?" (TS2551).
    assert!(
        ["TS2339", "TS2551"].contains(&found[0].code.as_str()),
        "{found:?}"
    );
    let found = diagnostics(
        &checker,
        "return (await mailer.send({ to: 'a' })).queued;\n",
    )
    .await;
    assert_eq!(found[0].code, "TS2741", "{found:?}"); // `subject` is missing
    assert!(found[0].message.contains("'subject'"), "{found:?}");
    assert_eq!(found[0].line, 1);
}

#[tokio::test]
async fn columns_count_chars() {
    let checker = native();
    // Two astral chars before the error: UTF-16 counts four units, the column counts two.
    let source = "const s = '😀😀'; const n: number = s;\n";
    let found = diagnostics(&checker, source).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let at = source.find("n: number").unwrap();
    let column = source[..at].chars().count() as u32 + 1;
    assert_eq!(column, 23);
    assert_eq!((found[0].line, found[0].column), (1, column));
}

#[tokio::test]
async fn the_node_compiler_works_too() {
    let checker = Checker::new(compiler("fixtures/servers"), CheckLimits::default()).unwrap();
    let found = diagnostics(
        &checker,
        "const c = await crm.findCustomer({ email: 42 });\nreturn c;\n",
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].line, found[0].column, found[0].code.as_str()),
        (1, 36, "TS2322")
    );
}

#[tokio::test]
async fn checks_run_concurrently_on_their_own_files() {
    let checker = std::sync::Arc::new(native());
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..6u32 {
        let checker = checker.clone();
        let source = match i % 2 {
            0 => format!("return (await crm.findCustomer({{ email: 'x{i}' }})).id;\n"),
            _ => format!("return (await crm.findCustomer({{ email: {i} }})).id;\n"),
        };
        runs.spawn(async move { (i, diagnostics(&checker, &source).await) });
    }
    while let Some(done) = runs.join_next().await {
        let (i, found) = done.unwrap();
        assert_eq!(found.len() as u32, i % 2, "script {i}: {found:?}");
    }
}

/// A shell script standing in for a compiler.
fn fake(dir: &Path, body: &str) -> Compiler {
    let path = dir.join("tsc");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    Compiler::at(&path)
}

#[tokio::test]
async fn a_compiler_that_hangs_is_stopped_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("child-alive");
    // The launcher leaves a child behind, as Node's would: both are killed.
    let body = format!("(sleep 3; touch {}) &\nsleep 30", marker.display());
    let limits = CheckLimits {
        timeout: Duration::from_millis(300),
        ..CheckLimits::default()
    };
    let checker = Checker::new(fake(dir.path(), &body), limits).unwrap();
    let t = Instant::now();
    let e = checker.check("return 1;\n", API).await.unwrap_err();
    assert!(matches!(e, CheckError::Timeout(300)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!marker.exists(), "the compiler's child outlived the check");
}

#[tokio::test]
async fn a_compiler_that_fails_or_floods_is_an_error_not_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let checker = Checker::new(
        fake(
            dir.path(),
            "echo 'error TS5023: Unknown compiler option' >&2; exit 1",
        ),
        CheckLimits::default(),
    )
    .unwrap();
    let e = checker.check("return 1;\n", API).await.unwrap_err();
    assert!(e.to_string().contains("TS5023"), "{e}");
    // Endless output: read up to the cap, then the compiler is stopped.
    let dir = tempfile::tempdir().unwrap();
    let checker = Checker::new(fake(dir.path(), "yes 'noise'"), CheckLimits::default()).unwrap();
    let t = Instant::now();
    let e = checker.check("return 1;\n", API).await.unwrap_err();
    assert!(matches!(e, CheckError::Failed { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn the_compiler_sees_none_of_isolas_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let checker = Checker::new(
        fake(dir.path(), &format!("env > {}; exit 0", out.display())),
        CheckLimits::default(),
    )
    .unwrap();
    // Cargo gives the test process CARGO_MANIFEST_DIR: the compiler must not get it.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let report = checker.check("return 1;\n", API).await.unwrap(); // exit 0, no output: clean
    assert!(report.is_clean());
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(!env.contains("CARGO_MANIFEST_DIR"), "{env}");
    assert!(env.contains("PATH="), "{env}");
}

#[test]
fn a_configured_compiler_that_is_not_there_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Compiler::find(Some(Path::new("no/tsc")), dir.path()).unwrap_err();
    assert!(e.to_string().contains("no/tsc"), "{e}");
    // Found in node_modules/.bin of the config's directory or above.
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::create_dir_all(dir.path().join("node_modules/.bin")).unwrap();
    std::fs::write(dir.path().join("node_modules/.bin/tsc"), "").unwrap();
    let found = Compiler::find(None, &nested).unwrap().unwrap();
    assert_eq!(found.program, dir.path().join("node_modules/.bin/tsc"));
}

#[tokio::test]
async fn a_checker_keeps_a_few_apis_written_not_every_one() {
    // An upstream server that changes its tool list again and again: each distinct API is a
    // file, and only the last few stay.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("count.txt");
    let checker = Checker::new(
        fake(
            dir.path(),
            &format!("ls api-*.d.ts | wc -l > {}; exit 0", out.display()),
        ),
        CheckLimits::default(),
    )
    .unwrap();
    for i in 0..8 {
        let api = format!("declare namespace s{i} {{ function f(): Promise<void>; }}\n");
        checker.check("return 1;\n", &api).await.unwrap();
    }
    let count: u32 = std::fs::read_to_string(&out)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, 4);
}
