//! `isola-bench check`: how long the type check takes, a 30-line script against the
//! declarations of a 100-tool API, cold (a new checker: its directory and the API's
//! declarations written, the compiler's files not yet in the page cache of a fresh machine)
//! and warm (the same checker again), with each compiler installed in the fixtures.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use isola_check::{CheckLimits, Checker, Compiler};
use isola_typegen::{Api, ServerSpec, ToolSpec};
use serde_json::json;

/// Ten servers of ten tools each, with the schema shapes real servers have: nested objects,
/// arrays, enums, optional fields, and an output schema for every other tool.
pub fn api_of_100_tools() -> Api {
    let servers: Vec<ServerSpec> = (0..10)
        .map(|s| ServerSpec {
            name: format!("service{s}"),
            tools: (0..10)
                .map(|t| ToolSpec {
                    name: format!("op{t}"),
                    title: None,
                    description: Some(format!("Operation {t} of service {s}: does a thing to a resource.")),
                    input_schema: json!({
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "description": "The resource's id."},
                            "region": {"type": "string", "enum": ["eu-west-1", "us-east-1", "ap-south-1"]},
                            "size": {"type": "integer", "minimum": 1, "maximum": 64},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "options": {"type": "object", "properties": {
                                "dryRun": {"type": "boolean"},
                                "retries": {"type": "integer"},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                            }}
                        },
                        "required": ["id"]
                    }),
                    output_schema: (t % 2 == 0).then(|| json!({
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "state": {"type": "string", "enum": ["pending", "ready", "failed"]},
                            "items": {"type": "array", "items": {"type": "object", "properties": {
                                "name": {"type": "string"}, "count": {"type": "integer"}
                            }, "required": ["name"]}}
                        },
                        "required": ["id", "state"]
                    })),
                    annotations: None,
                })
                .collect(),
        })
        .collect();
    Api::build(&servers)
}

/// A 30-line script over that API: reads, a loop, `Promise.all`, `try`/`catch`, a helper with
/// types of its own, one type error on line 23 (a number where `id` takes a string).
pub const SCRIPT: &str = r#"// Summaries of the resources, then the ready ones tagged.
interface Summary { id: string; state: string; names: string[] }

async function describe(id: string): Promise<Summary> {
  const r = await service0.op0({ id, region: "eu-west-1" });
  return { id: r.id, state: r.state, names: (r.items ?? []).map((i) => i.name) };
}

const ids = ["a", "b", "c", "d"];
const summaries = await Promise.all(ids.map(describe));
const ready = summaries.filter((s) => s.state === "ready");
for (const s of ready) {
  await service1.op1({ id: s.id, tags: s.names, options: { dryRun: true } });
}
let failures = 0;
try {
  const r = await service2.op2({ id: "x", size: 8 });
  if (r.state === "failed") failures += 1;
} catch (e) {
  console.log("op2 failed", e);
  failures += 1;
}
await service3.op3({ id: 42 });
const counts = new Map<string, number>();
for (const s of summaries) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
const labels: Record<string, string> = { owner: "ops" };
await service4.op5({ id: "y", options: { labels, retries: 2 } });
console.log(`ready: ${ready.length}, failures: ${failures}`);
const out = [...counts.entries()].map(([state, n]) => ({ state, n }));
return { ready: ready.map((s) => s.id), out };
"#;

/// Compilers of the fixtures that are installed: (label, launcher).
fn compilers(root: &Path) -> Vec<(&'static str, std::path::PathBuf)> {
    [
        (
            "TypeScript 7 (native)",
            "fixtures/tsc7/node_modules/.bin/tsc",
        ),
        (
            "TypeScript 5.9 (Node)",
            "fixtures/servers/node_modules/.bin/tsc",
        ),
    ]
    .into_iter()
    .map(|(label, path)| (label, root.join(path)))
    .filter(|(_, path)| path.exists())
    .collect()
}

pub async fn run(root: &Path, rounds: u32) -> Result<()> {
    let api = api_of_100_tools();
    let declarations = api.declarations(None);
    let transpiled = isola_transpile::transpile(SCRIPT, "script.ts")
        .map_err(|e| anyhow::anyhow!("the benchmark's script: {e}"))?;
    let checkable = transpiled.checkable();
    println!(
        "type check of a {}-line script against a {}-tool API ({} KiB of declarations), {rounds} rounds",
        SCRIPT.lines().count(),
        api.namespaces
            .iter()
            .map(|n| n.functions.len())
            .sum::<usize>(),
        declarations.len() / 1024
    );
    let found = compilers(root);
    anyhow::ensure!(
        !found.is_empty(),
        "no compiler in the fixtures: run `npm ci --prefix fixtures/tsc7` (and fixtures/servers)"
    );
    println!("| compiler | cold p50 | cold max | warm p50 | warm p99 |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (label, launcher) in found {
        let compiler = Compiler::at(&launcher);
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for _ in 0..rounds.clamp(1, 10) {
            let t = Instant::now();
            let checker = Checker::new(compiler.clone(), CheckLimits::default())?;
            let report = checker.check(&checkable, &declarations).await?;
            cold.push(t.elapsed());
            anyhow::ensure!(
                report.diagnostics.len() == 1 && report.diagnostics[0].line == 23,
                "{label}: expected the one error on line 23, got {:?}",
                report.diagnostics
            );
        }
        let checker = Checker::new(compiler.clone(), CheckLimits::default())?;
        checker.check(&checkable, &declarations).await?;
        for _ in 0..rounds {
            let t = Instant::now();
            checker
                .check(&checkable, &declarations)
                .await
                .with_context(|| label.to_string())?;
            warm.push(t.elapsed());
        }
        println!(
            "| {label} | {} | {} | {} | {} |",
            ms(quantile(&mut cold, 0.5)),
            ms(quantile(&mut cold, 1.0)),
            ms(quantile(&mut warm, 0.5)),
            ms(quantile(&mut warm, 0.99)),
        );
    }
    Ok(())
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
