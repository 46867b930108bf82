//! TypeScript constructs are stripped; modern JavaScript is kept as written.

use crate::transpile_body;

#[track_caller]
fn check(input: &str, expect: &str) {
    let actual = transpile_body(input);
    assert_eq!(actual.trim_end(), expect.trim_end(), "input:\n{input}");
}

#[test]
fn types_are_stripped() {
    check("const a: number = 1;", "const a = 1;");
    check(
        "let x: Array<{ a: string }> | null = null;",
        "let x = null;",
    );
    check(
        "interface Issue { title: string }\nconst i = 1;",
        "const i = 1;",
    );
    check("type A = { a: 1 } & B;\nconst i = 1;", "const i = 1;");
    check("const n = (x as unknown) as number;", "const n = x;");
    check("const n = <number>x;", "const n = x;");
    check("const n = x!.y!;", "const n = x.y;");
    check(
        "const o = { a: 1 } satisfies Record<string, number>;",
        "const o = { a: 1 };",
    );
    check(
        "function id<T extends object>(x: T): T { return x; }",
        "function id(x) {\n  return x;\n}\nreturn id;\n<call>",
    );
    check(
        "const f = async <T,>(x: T): Promise<T> => x;",
        "const f = async (x) => x;",
    );
    check(
        "declare const github: any;\ndeclare function log(x: string): void;\nlog(1);",
        "log(1);",
    );
    check(
        "import type { A } from \"a\";\nimport { type B } from \"b\";\nconst c = 1;",
        "const c = 1;",
    );
    check(
        "export type { A };\nexport interface I {}\nexport type T = 1;\nexport {};\nconst c = 1;",
        "const c = 1;",
    );
    check(
        "type A = 1;\nexport { type A };\nexport type * from \"x\";\nexport declare const d: number;\nconst c = 1;",
        "const c = 1;",
    );
    check(
        "function f(this: Window, a?: string, ...rest: number[]) {}\nf();",
        "function f(a, ...rest) {}\nreturn f();",
    );
    check(
        "const m = new Map<string, number[]>();",
        "const m = new Map();",
    );
    check(
        "abstract class A { abstract f(): void; private x?: number; }",
        "class A {\n  x;\n}",
    );
}

#[test]
fn enums_namespaces_and_parameter_properties_are_compiled() {
    check(
        "enum Color { Red, Green = \"g\" }\nreturn Color.Red;",
        "var Color = function(Color) {\n  Color[Color[\"Red\"] = 0] = \"Red\";\n  Color[\"Green\"] = \"g\";\n  return Color;\n}(Color || {});\nreturn Color.Red;",
    );
    check(
        "class A { constructor(private x: number) {} }",
        "class A {\n  x;\n  constructor(x) {\n    this.x = x;\n  }\n}",
    );
    check(
        "namespace N { export const q = 1; }\nreturn N.q;",
        "let N;\n(function(_N) {\n  const q = _N.q = 1;\n})(N || (N = {}));\nreturn N.q;",
    );
}

#[test]
fn modern_javascript_is_kept() {
    check("const a = b?.c ?? d;", "const a = b?.c ?? d;");
    check(
        "x ||= 1;\ny &&= 2;\nz ??= 3;",
        "x ||= 1;\ny &&= 2;\nz ??= 3;",
    );
    check("const { a, ...rest } = o;", "const { a, ...rest } = o;");
    check(
        "for await (const x of xs) {}",
        "for await (const x of xs) {}",
    );
    check(
        "class A { #p = 1; static s = 2; get p() { return this.#p; } }",
        "class A {\n  #p = 1;\n  static s = 2;\n  get p() {\n    return this.#p;\n  }\n}",
    );
    check("const n = 1_000n ** 2n;", "const n = 1000n ** 2n;");
    check(
        "const r = /(?<y>\\d{4})/u.exec(s);",
        "const r = /(?<y>\\d{4})/u.exec(s);",
    );
    check("const s = `a ${b} c`;", "const s = `a ${b} c`;");
    check("const x = require(\"fs\");", "const x = require(\"fs\");");
}

#[test]
fn top_level_await_and_return() {
    check(
        "const a = await fs.readFile({ path: \"x\" });\nreturn a.length;",
        "const a = await fs.readFile({ path: \"x\" });\nreturn a.length;",
    );
    check(
        "if (x) {\n  return 1;\n}\nreturn 2;",
        "if (x) {\n  return 1;\n}\nreturn 2;",
    );
    check("\"use strict\";\nreturn 1;", "\"use strict\";\nreturn 1;");
    check("#!/usr/bin/env node\nreturn 1;", "return 1;");
    check("", "");
    check("// only a comment\n", "");
}
