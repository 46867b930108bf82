//! Dev only: what Isola's tests and benchmarks share.
//!
//! - [`fixtures`]: where the test fixtures are (the real MCP servers installed from npm, the
//!   captured tool lists, the workspace's own binaries), failing with the command to run when
//!   one is missing: a silently skipped test proves nothing.
//! - [`llama`]: a real llama.cpp server with a small model (`scripts/setup-llama.sh`).
//! - [`postgres`]: a throwaway PostgreSQL cluster (initdb in a temporary directory, a unix
//!   socket), from Debian's `postgresql` package.
//! - [`tools`]: tool sources for the engine that need no server ([`tools::FakeTools`],
//!   [`tools::InstantTools`]).
//! - binaries: `isola-conformance-client` (Isola's MCP client under the official conformance
//!   suite).
//!
//! Never a dependency of anything shipped.
//!
//! ```
//! use isola_engine::Tools;
//! let tools = isola_test_support::tools::InstantTools::NOOP;
//! assert_eq!(tools.servers()[0].tools[0].name, "noop");
//! ```

pub mod fixtures;
pub mod llama;
pub mod postgres;
pub mod tools;
