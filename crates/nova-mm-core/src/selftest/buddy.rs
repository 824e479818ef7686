//! x
use super::SelfTestResult;
pub(crate) const TESTS: &[super::SelfTest] = crate::selftests!("buddy", []);
