//! The declarations are real TypeScript: `tsc --noEmit --strict` accepts every rendering, accepts a
//! script that calls the API correctly, and rejects wrong calls.

use isola_typegen::Api;
use serde_json::json;

use crate::schema::CASES;
use crate::support::{api_of, fixture_servers, run_tsc};

const GOOD_SCRIPT: &str = r#"/// <reference path="all.d.ts" />
async function main(): Promise<void> {
  const r = await github.createIssue({ owner: "a", repo: "b", title: "c" });
  const t = await time.getCurrentTime({ timezone: "UTC" });
  const dst: boolean = t.is_dst;
  const converted = await time.convertTime({ source_timezone: "UTC", time: "12:00", target_timezone: "Asia/Tokyo" });
  const tz: string = converted.source.timezone;
  const env = await everything.getEnv();
  const entities = await memory.createEntities({ entities: [{ name: "n", entityType: "t", observations: [] }] });
  const page = await notion.apiPostPage({ parent: { page_id: "p" }, properties: {} });
  const file = await filesystem.readTextFile({ path: "/x", head: 3 });
  const text: string = file.content;
  const log = await git.gitLog({ repo_path: ".", max_count: 5, start_timestamp: null });
  const items: ToolOutput[] = [r, env, page, log];
  if (Array.isArray(r)) {
    // An array result is either JSON or the content items; the script knows which it expects.
    for (const c of r as McpContent[]) {
      if (c.type === "text") console.log(c.text.length);
    }
  }
  console.log(dst, tz, entities, text, items);
}
declare const console: { log(...args: unknown[]): void };
main();
"#;

/// Each line is a wrong call; each must be rejected.
const BAD_CALLS: &[(&str, &str)] = &[
    (
        "missing required field",
        r#"github.createIssue({ owner: "a", repo: "b" })"#,
    ),
    (
        "wrong field type",
        r#"time.getCurrentTime({ timezone: 1 })"#,
    ),
    (
        "unknown field",
        r#"github.createIssue({ owner: "a", repo: "b", title: "c", nope: 1 })"#,
    ),
    (
        "wrong enum value",
        r#"github.listIssues({ owner: "a", repo: "b", state: "merged" })"#,
    ),
    (
        "unknown function",
        r#"github.createIssues({ owner: "a", repo: "b", title: "c" })"#,
    ),
    (
        "typed output misused",
        r#"time.getCurrentTime({ timezone: "UTC" }).then((t) => { const n: number = t.is_dst; })"#,
    ),
    (
        "argument to a tool without input",
        r#"everything.getEnv({ verbose: true })"#,
    ),
];

#[test]
fn declarations_type_check() {
    let dir = tempfile::tempdir().unwrap();
    let servers = fixture_servers();
    let mut sets: Vec<Vec<String>> = Vec::new();
    for server in &servers {
        let file = format!("{}.d.ts", server.name);
        std::fs::write(
            dir.path().join(&file),
            Api::build(std::slice::from_ref(server)).declarations(None),
        )
        .unwrap();
        sets.push(vec![file]);
    }
    std::fs::write(
        dir.path().join("all.d.ts"),
        Api::build(&servers).declarations(None),
    )
    .unwrap();
    sets.push(vec!["all.d.ts".into()]);

    // Every schema case (as tools of one server) and the renderings of single functions.
    let cases = api_of(
        CASES
            .iter()
            .map(|(name, schema, _)| {
                json!({"name": name, "inputSchema": serde_json::from_str::<serde_json::Value>(schema).unwrap()})
            })
            .collect(),
    );
    std::fs::write(dir.path().join("cases.d.ts"), cases.declarations(None)).unwrap();
    sets.push(vec!["cases.d.ts".into()]);
    // Every `function_declaration` stands alone: with `Api::prelude()` when it returns
    // `ToolOutput`, else by itself. Each file is made a module (`export {}`) so that one tsc run
    // checks them all without clashes.
    let api = Api::build(&servers);
    let mut singles = Vec::new();
    for ns in &api.namespaces {
        for f in &ns.functions {
            let file = format!("one_{}_{}.ts", ns.ident, f.ident);
            let decl = api.function_declaration(&ns.ident, &f.ident).unwrap();
            let prelude = if f.output_schema.is_none() {
                Api::prelude()
            } else {
                ""
            };
            std::fs::write(
                dir.path().join(&file),
                format!("{prelude}{decl}export {{}};\n"),
            )
            .unwrap();
            singles.push(file);
        }
    }
    sets.push(singles);

    std::fs::write(dir.path().join("good.ts"), GOOD_SCRIPT).unwrap();
    sets.push(vec!["good.ts".into()]);

    let set_refs: Vec<Vec<&str>> = sets
        .iter()
        .map(|s| s.iter().map(String::as_str).collect())
        .collect();
    let results = run_tsc(dir.path(), &set_refs);
    let failures: Vec<String> = sets
        .iter()
        .zip(&results)
        .filter(|(_, (ok, _))| !ok)
        .map(|(files, (_, out))| format!("{files:?}:\n{out}"))
        .collect();
    assert!(
        failures.is_empty(),
        "tsc rejected generated TypeScript:\n{}",
        failures.join("\n")
    );
}

#[test]
fn wrong_calls_fail_to_type_check() {
    // A correct call first: proves the harness itself accepts good scripts.
    let calls: Vec<&str> =
        std::iter::once(r#"github.createIssue({ owner: "a", repo: "b", title: "c" })"#)
            .chain(BAD_CALLS.iter().map(|(_, call)| *call))
            .collect();
    let results = check_calls(&Api::build(&fixture_servers()), &calls);
    let (ok, out) = &results[0];
    assert!(ok, "tsc rejected a correct call:\n{out}");
    for (i, ((what, call), (ok, out))) in BAD_CALLS.iter().zip(&results[1..]).enumerate() {
        assert!(!ok, "tsc accepted a wrong call ({what}): {call}");
        assert!(
            out.lines()
                .all(|l| l.starts_with(&format!("call{}.ts(", i + 1)) || l.starts_with(' ')),
            "{what}: errors must be in the script only:\n{out}"
        );
    }
}

/// Arguments in order (`x-isola-positional`) type-check as the object form does: right types
/// pass, a wrong type, a missing required argument or one too many fail.
#[test]
fn positional_overloads_type_check() {
    let api = crate::support::api_of(vec![serde_json::json!({
        "name": "set",
        "inputSchema": {"type": "object", "properties": {"key": {"type": "string"}, "value": {"type": "number"}},
                        "required": ["key", "value"], "x-isola-positional": ["key", "value"]}
    })]);
    let calls = [
        (true, r#"s.set("k", 1)"#),
        (true, r#"s.set({ key: "k", value: 1 })"#),
        (false, r#"s.set(1, 1)"#),
        (false, r#"s.set("k")"#),
        (false, r#"s.set("k", 1, 2)"#),
    ];
    let results = check_calls(&api, &calls.map(|(_, call)| call));
    for ((expect, call), (ok, out)) in calls.iter().zip(results) {
        assert_eq!(ok, *expect, "{call}:\n{out}");
    }
}

/// `tsc` on each call awaited in a script of its own (`call<i>.ts`), against `api`'s
/// declarations: whether it type-checks, and what tsc said.
fn check_calls(api: &Api, calls: &[&str]) -> Vec<(bool, String)> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.d.ts"), api.declarations(None)).unwrap();
    let mut files = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let file = format!("call{i}.ts");
        let text = format!(
            "/// <reference path=\"all.d.ts\" />\nasync function main(): Promise<void> {{\n  await {call};\n}}\nmain();\n"
        );
        std::fs::write(dir.path().join(&file), text).unwrap();
        files.push(file);
    }
    let sets: Vec<Vec<&str>> = files.iter().map(|f| vec![f.as_str()]).collect();
    run_tsc(dir.path(), &sets)
}
