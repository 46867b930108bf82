//! Why a policy could not be loaded or its tests not run.

use std::path::PathBuf;

/// Why loading a policy (or running its tests) failed. Evaluation errors are not here: a
/// decision that cannot be made is a [`crate::Decision`] that denies.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A policy or data file could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A policy file is not valid Rego (v1 syntax: `if`, `contains`).
    #[error(
        "policy {file} does not parse: {message}\nhint: Isola reads Rego v1 (`allow if ...`, `deny contains msg if ...`)"
    )]
    Parse {
        /// The file (or source name) that does not parse.
        file: String,
        /// Where (`file:line:col`) and what, then the offending line.
        message: String,
    },
    /// The policies parse but do not compile together: an unsafe variable, a recursive rule,
    /// an unknown function.
    #[error("policies {files} do not compile: {message}")]
    Compile {
        /// The files involved, comma separated.
        files: String,
        /// Where and what.
        message: String,
    },
    /// The data document was refused: not an object, or in conflict with itself.
    #[error("policy data is not usable: {message}\nhint: data must be a JSON object")]
    Data {
        /// What regorus said.
        message: String,
    },
    /// No policy file declares `package isola`, so no rule would ever be read.
    #[error(
        "no policy is in package `isola` (found {found}): Isola reads data.isola.deny, data.isola.require_approval and data.isola.allow\nhint: start the policy file with `package isola`"
    )]
    NoIsolaPackage {
        /// The packages that were found, comma separated (`none` if no file was given).
        found: String,
    },
    /// Two sources have the same name, so messages could not tell them apart.
    #[error("policy {name} is given twice\nhint: list each policy file once")]
    DuplicateSource {
        /// The repeated name.
        name: String,
    },
    /// The engine failed otherwise while loading.
    #[error("policy engine: {message}")]
    Engine {
        /// What regorus said.
        message: String,
    },
}
