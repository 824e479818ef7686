//! Self-tests as plain functions, for running inside a Linux kernel (feature `selftest`).
//!
//! `#[test]` and libtest do not exist in the kernel, and Linux 6.12 has no `#[kunit_tests]`, so the
//! kernel module in `crates/nova-mm-kernel/module/` walks [`all`] at init and prints one line per
//! failure and a closing `nova-mm: N passed, M failed`. The same table also runs on the host in a
//! normal `#[test]` (below), so a failing self-test fails `cargo test` too. The module is built for
//! the crate's unit tests even without the feature: the MMU known-answer tests exist only here
//! (`mmu_v2`, `mmu_v3`), and run in `cargo test` one `#[test]` each, feature or not.
//!
//! Every self-test is a [`SelfTestFn`]: it returns `Ok(())` or `Err` with a static message naming
//! the failed check, and it never panics (a Rust panic in the kernel is a `BUG()`), never
//! allocates, and uses neither floats nor 128-bit arithmetic (the kernel's intrinsics for those are
//! panicking stubs). Storage a test needs lives on the stack (the kernel stack is 16 KiB: keep it
//! to a few hundred bytes) or in the caller-provided [`Scratch`] (a VRAM image, bookkeeping
//! storage), which the kernel module allocates with `KVVec` and the host test with `Vec`. Large
//! values count too: an `AddressSpace` is over 4 KiB and a `Buddy` about 3 KiB (at most 4 KiB,
//! asserted at compile time); check a new test's frame sizes in the module
//! object (`objdump -d target/kernel-test/module/nova_mm_core.o`, `sub $N,%rsp`).
//!
//! # Adding self-tests
//!
//! Each area has one submodule of `selftest/` with one `pub(crate) const TESTS: &[SelfTest]`,
//! usually written with [`selftests!`](crate::selftests), and one line in [`GROUPS`]:
//!
//! ```ignore
//! // src/selftest/buddy.rs
//! use crate::selftest::{check, SelfTestResult};
//! pub(crate) const TESTS: &[crate::selftest::SelfTest] =
//!     crate::selftests!("buddy", [alloc_free_merges, rejects_bad_order]);
//! fn alloc_free_merges() -> SelfTestResult { check(1 + 1 == 2, "arithmetic") }
//! ```
//!
//! then `mod buddy;` here and `("buddy", buddy::TESTS)` in [`GROUPS`]. Tests that take a
//! `&mut Scratch` are listed with `selftests!("area", scratch [..])`. A crate that builds on
//! the core (the kernel backend) keeps its own slice of [`SelfTest`] and chains it after
//! [`all`].

mod addr;
mod buddy;
mod chip;
mod hw;
mod mmu_v2;
mod mmu_v3;
pub mod scratch;
pub mod support;
mod tlb;
mod vmm;
mod vram;

pub use scratch::Scratch;

/// What a self-test returns: `Err` carries a static message naming the failed check.
pub type SelfTestResult = Result<(), &'static str>;

/// A self-test: never panics. Tests that need more memory than the kernel stack allows take
/// it from the caller's [`Scratch`].
#[derive(Clone, Copy, Debug)]
pub enum SelfTestFn {
    /// Needs nothing but a few hundred bytes of stack.
    Plain(fn() -> SelfTestResult),
    /// Needs caller-provided memory (VRAM image, buddy metadata, bookkeeping storage).
    Scratch(fn(&mut Scratch<'_>) -> SelfTestResult),
}

/// One named self-test.
#[derive(Clone, Copy, Debug)]
pub struct SelfTest {
    /// `area::test_name`, unique across the table.
    pub name: &'static str,
    /// The test.
    pub run: SelfTestFn,
}

/// Builds a `&[SelfTest]` from an area name and a list of functions, naming each entry
/// `area::function`.
#[macro_export]
macro_rules! selftests {
    ($area:literal, [$($test:ident),* $(,)?]) => {
        &[$($crate::selftest::SelfTest {
            name: concat!($area, "::", stringify!($test)),
            run: $crate::selftest::SelfTestFn::Plain($test),
        }),*]
    };
    ($area:literal, scratch [$($test:ident),* $(,)?]) => {
        &[$($crate::selftest::SelfTest {
            name: concat!($area, "::", stringify!($test)),
            run: $crate::selftest::SelfTestFn::Scratch($test),
        }),*]
    };
}

/// Defines an area's `pub(crate) const TESTS` from plain self-tests, as [`selftests!`] would,
/// and, in the crate's own unit tests, a module `host` with one `#[test]` per entry, of the same
/// name, so that `cargo test` runs each on its own and a failure names it. For areas whose
/// self-tests are the only copy of their checks (the MMU known-answer tests): one list serves
/// both, so none can be left out of either.
macro_rules! plain_selftests_and_host_tests {
    ($area:literal, [$($test:ident),* $(,)?]) => {
        pub(crate) const TESTS: &[$crate::selftest::SelfTest] =
            $crate::selftests!($area, [$($test),*]);

        /// Each self-test of the area as a host `#[test]`.
        #[cfg(test)]
        mod host {
            $(
                #[test]
                fn $test() {
                    if let Err(msg) = super::$test() {
                        panic!("self-test {}::{} failed: {msg}", $area, stringify!($test));
                    }
                }
            )*
        }
    };
}
pub(crate) use plain_selftests_and_host_tests;

/// The self-test lists of every area of the core, in order. Add a line per area.
pub const GROUPS: &[(&str, &[SelfTest])] = &[
    ("addr", addr::TESTS),
    ("chip", chip::TESTS),
    ("vram", vram::TESTS),
    ("buddy", buddy::TESTS),
    ("tlb", tlb::TESTS),
    ("mmu_v2", mmu_v2::TESTS),
    ("mmu_v3", mmu_v3::TESTS),
    ("vmm", vmm::TESTS),
    ("hw", hw::TESTS),
    ("hw", hw::SCRATCH_TESTS),
];

/// Every self-test of the core, area by area.
pub fn all() -> impl Iterator<Item = &'static SelfTest> {
    GROUPS.iter().flat_map(|&(_, tests)| tests.iter())
}

/// The number of self-tests in [`all`]: what the kernel module must report as passed.
#[must_use]
pub fn count() -> usize {
    GROUPS
        .iter()
        .fold(0usize, |n, &(_, tests)| n.saturating_add(tests.len()))
}

/// The outcome of [`run_all`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Summary {
    /// Tests that returned `Ok`.
    pub passed: usize,
    /// Tests that returned `Err`.
    pub failed: usize,
}

/// Runs `tests` in order, calling `on_failure(test, message)` for each failure, and counts.
/// Tests that need scratch memory get `scratch`, reset before each one; with `None` they fail
/// with "no scratch memory".
pub fn run<'a>(
    tests: impl IntoIterator<Item = &'a SelfTest>,
    mut scratch: Option<&mut Scratch<'_>>,
    mut on_failure: impl FnMut(&SelfTest, &'static str),
) -> Summary {
    let mut summary = Summary::default();
    for test in tests {
        let result = match (test.run, scratch.as_deref_mut()) {
            (SelfTestFn::Plain(f), _) => f(),
            (SelfTestFn::Scratch(f), Some(s)) => {
                s.reset();
                f(s)
            }
            (SelfTestFn::Scratch(_), None) => Err("no scratch memory"),
        };
        match result {
            Ok(()) => summary.passed = summary.passed.saturating_add(1),
            Err(msg) => {
                summary.failed = summary.failed.saturating_add(1);
                on_failure(test, msg);
            }
        }
    }
    summary
}

/// Runs every self-test of the core (see [`run`]).
pub fn run_all(
    scratch: Option<&mut Scratch<'_>>,
    on_failure: impl FnMut(&SelfTest, &'static str),
) -> Summary {
    run(all(), scratch, on_failure)
}

/// `Ok(())` if `cond`, else `Err(msg)`: the building block of a self-test, used with `?`.
///
/// # Errors
///
/// `Err(msg)` when `cond` is false.
pub const fn check(cond: bool, msg: &'static str) -> SelfTestResult {
    if cond {
        Ok(())
    } else {
        Err(msg)
    }
}

/// Fails the enclosing self-test unless the condition holds; the message is the source location
/// and the condition's text.
#[macro_export]
macro_rules! st_ensure {
    ($cond:expr) => {
        if !($cond) {
            return Err(concat!(file!(), ":", line!(), ": ", stringify!($cond)));
        }
    };
}

/// [`st_ensure!`] with `assert!`'s shape: extra (format) arguments are accepted and dropped, so
/// host assertions port unchanged.
#[macro_export]
macro_rules! st_assert {
    ($cond:expr $(, $($arg:tt)*)?) => {
        $crate::st_ensure!($cond)
    };
}

/// `assert_eq!` as a self-test check (extra arguments dropped).
#[macro_export]
macro_rules! st_eq {
    ($a:expr, $b:expr $(, $($arg:tt)*)?) => {
        $crate::st_ensure!($a == $b)
    };
}

/// `assert_ne!` as a self-test check (extra arguments dropped).
#[macro_export]
macro_rules! st_ne {
    ($a:expr, $b:expr $(, $($arg:tt)*)?) => {
        $crate::st_ensure!($a != $b)
    };
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::eprintln;

    #[test]
    #[cfg_attr(miri, ignore)] // runs whole suites: too slow under miri
    fn every_selftest_passes_on_the_host() {
        let mut failures = 0usize;
        let mut store = scratch::tests::HostScratch::new();
        let mut scratch = store.scratch();
        let s = run_all(Some(&mut scratch), |t, msg| {
            failures += 1;
            eprintln!("selftest {} failed: {msg}", t.name);
        });
        assert_eq!(failures, s.failed);
        assert_eq!(s.failed, 0, "{} self-tests failed", s.failed);
        assert_eq!(s.passed, count());
        assert!(count() > 0);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // runs whole suites: too slow under miri
    fn buddy_selftests_pass_on_the_host() {
        let mut store = scratch::tests::HostScratch::new();
        let mut scratch = store.scratch();
        let s = run(buddy::TESTS, Some(&mut scratch), |t, msg| {
            eprintln!("selftest {} failed: {msg}", t.name);
        });
        assert_eq!(s.failed, 0);
        assert_eq!(s.passed, buddy::TESTS.len());
    }

    #[test]
    fn names_are_unique_and_prefixed_by_their_area() {
        for &(area, tests) in GROUPS {
            for t in tests {
                assert!(
                    t.name
                        .strip_prefix(area)
                        .is_some_and(|r| r.starts_with("::")),
                    "{} is not in area {area}",
                    t.name
                );
            }
        }
        let names: std::collections::BTreeSet<_> = all().map(|t| t.name).collect();
        assert_eq!(names.len(), count());
    }

    #[test]
    fn failures_are_reported_and_counted() {
        fn ok() -> SelfTestResult {
            Ok(())
        }
        fn bad() -> SelfTestResult {
            st_ensure!(1 > 2);
            Ok(())
        }
        let table: &[SelfTest] = selftests!("t", [ok, bad, ok]);
        let mut seen = None;
        let s = run(table, None, |t, m| seen = Some((t.name, m)));
        assert_eq!(
            s,
            Summary {
                passed: 2,
                failed: 1
            }
        );
        let (name, msg) = seen.unwrap();
        assert_eq!(name, "t::bad");
        assert!(msg.ends_with(": 1 > 2"), "{msg}");
    }
}
