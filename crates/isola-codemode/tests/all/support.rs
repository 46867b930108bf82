//! The captured real tool lists, from `isola-test-support`.

pub use isola_test_support::fixtures::{CAPTURED as ALL, captured_servers as fixture_servers};
