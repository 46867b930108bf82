//! Integration tests for `isola-transpile`, one binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod entry;
mod errors;
mod fuzz;
mod hostile;
mod mapping;
mod node;
mod strip;

/// The part of the output between the wrapper's first and last line, tabs shown as two spaces.
/// When the wrapper calls an entry function that the body returns, a last line `<call>` says so.
pub fn body(js: &str) -> String {
    let inner = js
        .strip_prefix("(async () => {\n")
        .unwrap_or_else(|| panic!("output is not wrapped:\n{js}"));
    let inner = if let Some(inner) = inner.strip_suffix("})()") {
        inner.to_owned()
    } else if let Some(inner) =
        inner.strip_suffix("})().then((entry) => typeof entry === \"function\" ? entry() : entry)")
    {
        format!("{inner}<call>")
    } else {
        panic!("output is not wrapped:\n{js}")
    };
    inner.replace('\t', "  ")
}

/// Transpile `input` (as `agent.ts`) and return the wrapped body, panicking on a syntax error.
pub fn transpile_body(input: &str) -> String {
    match isola_transpile::transpile(input, "agent.ts") {
        Ok(out) => body(&out.js),
        Err(err) => panic!("unexpected syntax error:\n{err}"),
    }
}
