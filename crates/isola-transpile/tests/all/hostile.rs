//! Source shaped to overflow a parser's stack: refused with the limit, or transpiled, but never a
//! crash (the test threads have small stacks, as a server's request threads do).

use isola_transpile::{MAX_NESTING, transpile};

fn check_refused(source: &str) {
    let err = transpile(source, "deep.ts").unwrap_err();
    assert!(
        err.message.contains(&format!("the limit is {MAX_NESTING}")),
        "{}",
        err.message
    );
}

#[test]
fn deep_brackets_are_refused_naming_the_limit() {
    for (open, close) in [("(", ")"), ("[", "]"), ("{", "}")] {
        let n = 10_000;
        check_refused(&format!("return {}1{};", open.repeat(n), close.repeat(n)));
    }
    // Just under the limit is fine.
    let n = MAX_NESTING - 10;
    let ok = transpile(
        &format!("return {}1{};", "(".repeat(n), ")".repeat(n)),
        "deep.ts",
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn long_chains_and_deep_types_do_not_overflow() {
    let n = 100_000;
    for source in [
        format!("const a: any = {{}}; return a{};", ".b".repeat(n)),
        format!("return 1{};", "+1".repeat(n)),
        format!(
            "let x: {}number{} = 1; return x;",
            "Array<".repeat(10_000),
            ">".repeat(10_000)
        ),
        format!("return {};", "!".repeat(n) + "0"),
    ] {
        // Either way is fine; the process being alive to see it is the point.
        let _ = transpile(&source, "long.ts");
    }
}
