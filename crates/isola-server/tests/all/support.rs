//! Fixture tool lists and an in-memory tool source, from `isola-test-support`.

pub use isola_test_support::fixtures::{CAPTURED as ALL, captured_servers as fixture_servers};
pub use isola_test_support::tools::{FakeTools, tool};
