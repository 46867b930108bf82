//! Entry forms: which scripts are called, and how.

use crate::transpile_body;

#[track_caller]
fn check(input: &str, expect: &str) {
    let actual = transpile_body(input);
    assert_eq!(actual.trim_end(), expect.trim_end(), "input:\n{input}");
}

#[test]
fn function_expressions_are_called() {
    check(
        "async () => { return 1; }",
        "return async () => {\n  return 1;\n};\n<call>",
    );
    check(
        "(async () => { return 1; })",
        "return (async () => {\n  return 1;\n});\n<call>",
    );
    check(
        "(async (): Promise<number> => 1);",
        "return (async () => 1);\n<call>",
    );
    check(
        "(async function main() { return 1; })",
        "return (async function main() {\n  return 1;\n});\n<call>",
    );
    check("() => 42", "return () => 42;\n<call>");
}

#[test]
fn a_lone_function_declaration_is_called() {
    check(
        "async function main(): Promise<number> { return 1; }",
        "async function main() {\n  return 1;\n}\nreturn main;\n<call>",
    );
    check(
        "function run() { return 1; }",
        "function run() {\n  return 1;\n}\nreturn run;\n<call>",
    );
    // Types around it do not count as statements.
    check(
        "interface R { n: number }\nasync function go(): Promise<R> { return { n: 1 }; }\ntype X = R;",
        "async function go() {\n  return { n: 1 };\n}\nreturn go;\n<call>",
    );
}

#[test]
fn export_default_is_called() {
    check(
        "export default async () => { return 1; }",
        "return async () => {\n  return 1;\n};\n<call>",
    );
    check(
        "export default async function() { return 2; }",
        "return async function() {\n  return 2;\n};\n<call>",
    );
    check(
        "export default async function run() { return 2; }",
        "async function run() {\n  return 2;\n}\nreturn run;\n<call>",
    );
    check(
        "function helper() { return 1; }\nexport default async function main() { return helper(); }",
        "function helper() {\n  return 1;\n}\nasync function main() {\n  return helper();\n}\nreturn main;\n<call>",
    );
    check(
        "export default main;\nfunction main() { return 3; }",
        "function main() {\n  return 3;\n}\nreturn main;\n<call>",
    );
}

#[test]
fn a_call_of_the_entry_point_returns_its_value() {
    check(
        "async function main() { return 1; }\nmain();",
        "async function main() {\n  return 1;\n}\nreturn main();",
    );
    check(
        "async function main() { return 1; }\nawait main();",
        "async function main() {\n  return 1;\n}\nreturn await main();",
    );
    check(
        "const run = async () => 1;\nrun();",
        "const run = async () => 1;\nreturn run();",
    );
    check(
        "(async () => { return 5; })();",
        "return (async () => {\n  return 5;\n})();",
    );
    check(
        "const x = 1;\nasync () => x;",
        "const x = 1;\nreturn async () => x;\n<call>",
    );
}

#[test]
fn an_uncalled_main_is_called() {
    check(
        "const x = 1;\nasync function main() { return x; }",
        "const x = 1;\nasync function main() {\n  return x;\n}\nreturn main;\n<call>",
    );
}

#[test]
fn other_scripts_are_bodies() {
    check("console.log(1);", "console.log(1);");
    check("log(1);", "log(1);");
    // `main` is called, but not last: the body decides.
    check(
        "async function main() { return 1; }\nmain().catch(console.error);",
        "async function main() {\n  return 1;\n}\nmain().catch(console.error);",
    );
    check(
        "async function main() { return 1; }\nconst r = await main();\nreturn r + 1;",
        "async function main() {\n  return 1;\n}\nconst r = await main();\nreturn r + 1;",
    );
    // Two functions, neither called `main`: nothing to guess.
    check(
        "function a() {}\nfunction b() {}",
        "function a() {}\nfunction b() {}",
    );
}

#[test]
fn an_exported_entry_that_is_also_called_runs_once() {
    check(
        "export default async function main() { return 1; }\nawait main();",
        "async function main() {\n  return 1;\n}\nreturn await main();",
    );
    check(
        "export default main;\nasync function main() { return 1; }\nmain();",
        "async function main() {\n  return 1;\n}\nreturn main();",
    );
}
