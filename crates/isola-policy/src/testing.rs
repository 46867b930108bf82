//! `isola policy test`: the `test_*` rules of policy files, run as OPA runs them.

use std::path::PathBuf;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value as RegoValue};
use serde::Serialize;

use crate::builtins::DeadlineGuard;
use crate::error::PolicyError;
use crate::policy::{compile, read_sources, render_error};

/// How long one test may take.
pub const TEST_TIME_LIMIT: Duration = Duration::from_secs(5);

/// The outcome of one `test_*` rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestResult {
    /// The file that declares it.
    pub file: String,
    /// Its package, dotted: `isola.test`.
    pub package: String,
    /// The rule's name: `test_write_outside_is_denied`.
    pub name: String,
    /// Whether it evaluated to `true`. False, undefined or an error fail.
    pub passed: bool,
    /// The error, if its evaluation failed.
    pub error: Option<String>,
}

/// The outcome of [`run_tests`]: every test found, in the order of the files and, within a
/// file, of the rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TestReport {
    /// One entry per test rule.
    pub tests: Vec<TestResult>,
}

impl TestReport {
    /// How many tests passed.
    pub fn passed(&self) -> usize {
        self.tests.iter().filter(|test| test.passed).count()
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.tests.len() - self.passed()
    }

    /// Whether there were tests and all of them passed.
    pub fn all_passed(&self) -> bool {
        !self.tests.is_empty() && self.failed() == 0
    }
}

/// Runs the tests of these files (policies and their `*_test.rego` files together): every rule
/// named `test_*`, in any package, passes when it evaluates to `true`. Each test is evaluated
/// on its own (no state carries over), with `data` as given and a time limit of
/// [`TEST_TIME_LIMIT`]. Tests set their input with `with input as {...}`.
///
/// Fails if a file cannot be read or does not parse; a test that fails to evaluate is a
/// failed test, reported with its error.
pub fn run_tests(
    files: &[PathBuf],
    data: Option<serde_json::Value>,
) -> Result<TestReport, PolicyError> {
    let sources = read_sources(files)?;
    let mut engine = compile(&sources, data)?;
    let packages = engine
        .get_policy_package_components()
        .map_err(|error| PolicyError::Engine {
            message: error.to_string(),
        })?;

    let mut found: Vec<(String, String, String, String)> = Vec::new();
    for package in &packages {
        let Some((_, text)) = sources
            .iter()
            .find(|(name, _)| *name == package.source_file)
        else {
            continue;
        };
        for name in candidates(text) {
            let declared = engine
                .has_declared_rule_rooted_at(&package.source_file, name)
                .unwrap_or(false);
            let dotted = package.components.join(".");
            let known = found.iter().any(|(_, p, n, _)| *p == dotted && n == name);
            if declared && !known {
                let path = rule_path(&package.components, name);
                found.push((package.source_file.clone(), dotted, name.to_string(), path));
            }
        }
    }

    let mut report = TestReport::default();
    for (file, package, name, path) in found {
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: TEST_TIME_LIMIT,
            check_interval: std::num::NonZeroU32::MIN.saturating_add(31),
        });
        let (passed, error) = run_one(&mut engine, path);
        report.tests.push(TestResult {
            file,
            package,
            name,
            passed,
            error,
        });
    }
    Ok(report)
}

fn run_one(engine: &mut Engine, path: String) -> (bool, Option<String>) {
    let _deadline = DeadlineGuard::set(std::time::Instant::now(), TEST_TIME_LIMIT);
    match engine.eval_rule(path) {
        Ok(value) => (value == RegoValue::Bool(true), None),
        Err(error) => (false, Some(render_error(&error.to_string()).0)),
    }
}

/// Words of the source that may name a test rule (`test_` then letters, digits, `_`), in
/// order, each once. Regorus then says which of them are rules declared in the module.
fn candidates(text: &str) -> Vec<&str> {
    let mut words: Vec<&str> = Vec::new();
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while let Some(offset) = text.get(i..).and_then(|rest| rest.find("test_")) {
        let start = i + offset;
        let mut end = start + "test_".len();
        while end < bytes.len() && is_word(bytes[end]) {
            end += 1;
        }
        let preceded = start > 0 && (is_word(bytes[start - 1]) || bytes[start - 1] == b'.');
        if !preceded
            && let Some(word) = text.get(start..end)
            && !words.contains(&word)
        {
            words.push(word);
        }
        i = end;
    }
    words
}

/// `data.a.b.name`, with bracket notation for a package component that is not an identifier.
fn rule_path(components: &[String], name: &str) -> String {
    let mut path = String::from("data");
    for component in components {
        let identifier = component
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && component
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if identifier {
            path.push('.');
            path.push_str(component);
        } else {
            path.push('[');
            path.push_str(&serde_json::Value::from(component.as_str()).to_string());
            path.push(']');
        }
    }
    path.push('.');
    path.push_str(name);
    path
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn candidates_are_the_test_words_once_each() {
        let text = "test_a if true\n# test_b\nx := data.p.test_c\nmy_test_d := 1\ntest_a if false";
        assert_eq!(candidates(text), ["test_a", "test_b"]);
    }

    #[test]
    fn rule_paths_quote_what_is_not_an_identifier() {
        let components = ["isola".to_string(), "1.0".to_string()];
        assert_eq!(
            rule_path(&components, "test_x"),
            r#"data.isola["1.0"].test_x"#
        );
    }
}
