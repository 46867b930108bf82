//! Criterion benchmarks of the hot paths: sandbox start, binding round trip, TS stripping and
//! type rendering. `cargo bench -p isola-bench`.

use criterion::{Criterion, criterion_group, criterion_main};
use isola_bench::{TRIVIAL_TS, noop_namespace, run_direct};

fn sandbox(c: &mut Criterion) {
    c.bench_function("exec/trivial_ts_in_process", |b| {
        b.iter(|| run_direct(TRIVIAL_TS, &[]))
    });
    let ns = noop_namespace();
    let script = "for (let i = 0; i < 1000; i++) { await bench.noop({ i }); }\nreturn 0;";
    c.bench_function("binding/1000_awaited_noop_calls", |b| {
        b.iter(|| run_direct(script, &ns))
    });
}

/// Twenty lines of the kind of script models write.
const TWENTY_LINES: &str = r#"interface Issue { number: number; title: string; labels: string[] }
type Summary = { total: number; open: Issue[] };
const repo = "acme/widgets";
const issues: Issue[] = await github.listIssues({ repo, state: "open" });
const stale = issues.filter((i) => !i.labels.includes("triaged"));
for (const issue of stale.slice(0, 5)) {
  await github.addLabels({ repo, number: issue.number, labels: ["needs-triage"] });
}
function summarize(xs: Issue[]): Summary {
  return { total: xs.length, open: xs.slice(0, 3) };
}
const byLabel = new Map<string, number>();
for (const issue of issues) {
  for (const label of issue.labels) {
    byLabel.set(label, (byLabel.get(label) ?? 0) + 1);
  }
}
const top = [...byLabel.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
console.log(`stale: ${stale.length}`, top);
return { summary: summarize(issues), top };
"#;

fn transpile(c: &mut Criterion) {
    let source = "interface Issue { title: string; labels?: string[] }\n\
        const repos: string[] = ['a', 'b', 'c'];\n\
        const found: Issue[] = [];\n\
        for (const r of repos) {\n\
          const list = (await github.listIssues({ repo: r })) as Issue[];\n\
          for (const i of list) if (i.labels?.includes('bug')) found.push(i);\n\
        }\n\
        return found.map((i) => i.title);\n";
    c.bench_function("transpile/8_line_script", |b| {
        b.iter(|| isola_transpile::transpile(source, "bench.ts"))
    });
    c.bench_function("transpile/20_line_script", |b| {
        b.iter(|| isola_transpile::transpile(TWENTY_LINES, "agent.ts"))
    });
}

fn typegen(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tools");
    let mut servers = Vec::new();
    for name in ["everything", "filesystem", "memory", "github", "notion"] {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.json"))) else {
            continue;
        };
        let Ok(tools) = serde_json::from_str::<Vec<serde_json::Value>>(&text) else {
            continue;
        };
        servers.push(isola_typegen::ServerSpec {
            name: name.into(),
            tools: tools
                .iter()
                .map(|t| isola_typegen::ToolSpec {
                    name: t["name"].as_str().unwrap_or_default().into(),
                    title: None,
                    description: t["description"].as_str().map(Into::into),
                    input_schema: t["inputSchema"].clone(),
                    output_schema: t.get("outputSchema").cloned(),
                    annotations: t.get("annotations").cloned(),
                })
                .collect(),
        });
    }
    c.bench_function("typegen/build_and_render_all_fixtures", |b| {
        b.iter(|| isola_typegen::Api::build(&servers).declarations(None))
    });
}

criterion_group!(benches, sandbox, transpile, typegen);
criterion_main!(benches);
