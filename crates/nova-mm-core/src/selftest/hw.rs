//! Self-tests of the hardware layer (none yet: see the report).

pub(crate) const TESTS: &[super::SelfTest] = crate::selftests!("hw", []);
