//! Cross-crate integration tests for nova-mm live in `tests/tests/`.
