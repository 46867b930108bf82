//! A rough timing, not a benchmark: `cargo test -p isola-transpile --release -- --ignored --nocapture perf`.

use std::time::Instant;

/// Twenty lines of the kind of script models write.
pub const SCRIPT: &str = r#"interface Issue { number: number; title: string; labels: string[] }
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

#[test]
#[ignore = "timing; run in release"]
fn perf() {
    assert_eq!(SCRIPT.lines().count(), 20);
    let n = 10_000;
    for _ in 0..200 {
        isola_transpile::transpile(SCRIPT, "agent.ts").expect("transpile");
    }
    let start = Instant::now();
    for _ in 0..n {
        let out = isola_transpile::transpile(SCRIPT, "agent.ts").expect("transpile");
        std::hint::black_box(out);
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{n} transpiles of a 20-line script: {elapsed:?} total, {:?} each",
        elapsed / n
    );
}
