// SPDX-License-Identifier: MIT OR Apache-2.0

//! `nova_mm.ko`: runs nova-mm-core's self-tests inside the kernel at module init.
//!
//! Prints one line per failing self-test, then exactly `nova-mm: N passed, M failed`, which
//! `cargo xtask kernel-test` looks for on the serial console. Init always returns 0: failures are
//! reported by the count, not by refusing to load (the harness decides).

use kernel::prelude::*;

module! {
    type: NovaMmSelftest,
    name: "nova_mm",
    author: "nova-mm developers",
    description: "nova-mm-core self-tests in the kernel",
    license: "Dual MIT/GPL",
}

/// The log prefix. `pr_info!` would use the module name, `nova_mm`; the harness and the
/// project's CI format expect the lines to start with `nova-mm: `.
const PREFIX: &[u8] = b"nova-mm\0";

/// `pr_info!`/`pr_err!` with the `nova-mm` prefix instead of the module name.
macro_rules! nova_print {
    ($level:ident, $($arg:tt)+) => {{
        let args = format_args!($($arg)+);
        // SAFETY: `PREFIX` is NUL-terminated and the format string is one of the kernel's
        // fixed `%s: %pA` strings, which is what `call_printk` requires.
        unsafe { kernel::print::call_printk(&kernel::print::format_strings::$level, PREFIX, args) }
    }};
}

struct NovaMmSelftest;

impl kernel::Module for NovaMmSelftest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let summary = nova_mm_core::selftest::run_all(|test, msg| {
            nova_print!(ERR, "FAIL {}: {}\n", test.name, msg);
        });
        nova_print!(
            INFO,
            "{} passed, {} failed\n",
            summary.passed,
            summary.failed
        );
        Ok(NovaMmSelftest)
    }
}
