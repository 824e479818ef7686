// SPDX-License-Identifier: MIT OR Apache-2.0

//! `nova_mm.ko`: runs the self-tests of nova-mm-core and then of nova-mm-kernel (the glue)
//! inside the kernel at module init.
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

/// `THREAD_SIZE` on x86-64 without KASAN.
const KERNEL_STACK_SIZE: usize = 16 * 1024;

/// Backing storage of the core's `selftest::Scratch`: about 1.3 MiB, far beyond the 16 KiB
/// kernel stack, so it comes from the kernel allocator. `KVVec` uses kmalloc and falls back
/// to vmalloc for large sizes; `from_elem` fills it in place, element by element (at most one
/// 2 KiB child array on the stack at a time). Freed when the module's init returns.
struct ScratchStore {
    vram: KVVec<u32>,
    words: KVVec<u64>,
    nodes: KVVec<nova_mm_core::vmm::Node>,
    kids: KVVec<[u32; 512]>,
    ivs: KVVec<nova_mm_core::vmm::VaInterval>,
    segs: KVVec<nova_mm_core::vmm::Seg>,
    blocks: KVVec<nova_mm_core::buddy::Block>,
}

impl ScratchStore {
    // Not inlined into `init`: filling the child arrays puts a 2 KiB value on the stack, which
    // must not stay in the frame the self-tests run below.
    #[inline(never)]
    fn new() -> Result<Self> {
        use nova_mm_core::selftest::scratch as s;
        Ok(Self {
            vram: KVVec::from_elem(0, s::VRAM_WORDS_LEN, GFP_KERNEL)?,
            words: KVVec::from_elem(0, s::WORDS_LEN, GFP_KERNEL)?,
            nodes: KVVec::from_elem(Default::default(), s::NODES_LEN, GFP_KERNEL)?,
            kids: KVVec::from_elem([0; 512], s::KIDS_LEN, GFP_KERNEL)?,
            ivs: KVVec::from_elem(Default::default(), s::IVS_LEN, GFP_KERNEL)?,
            segs: KVVec::from_elem(Default::default(), s::SEGS_LEN, GFP_KERNEL)?,
            blocks: KVVec::from_elem(nova_mm_core::buddy::Block::EMPTY, s::BLOCKS_LEN, GFP_KERNEL)?,
        })
    }

    fn scratch(&mut self) -> nova_mm_core::selftest::Scratch<'_> {
        nova_mm_core::selftest::Scratch {
            vram: &mut self.vram,
            words: &mut self.words,
            nodes: &mut self.nodes,
            kids: &mut self.kids,
            ivs: &mut self.ivs,
            segs: &mut self.segs,
            blocks: &mut self.blocks,
        }
    }
}

impl kernel::Module for NovaMmSelftest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // Without scratch memory the tests that need it fail (and are counted): the harness
        // then sees `M failed` instead of a module that refuses to load.
        let mut store = ScratchStore::new();
        if store.is_err() {
            nova_print!(ERR, "cannot allocate the self-test scratch memory\n");
        }
        let mut scratch = store.as_mut().ok().map(ScratchStore::scratch);
        // Stack left below this frame: x86-64 task stacks are THREAD_SIZE (16 KiB) and aligned
        // to it, so the offset of a local in its 16 KiB block is what the self-tests may use.
        // Printed so that the margin of the deepest self-test (see selftest/vmm.rs) is visible.
        let probe = 0u8;
        let free = (core::ptr::addr_of!(probe) as usize) % KERNEL_STACK_SIZE;
        nova_print!(INFO, "kernel stack free at init: {} bytes\n", free);
        // The core's table, then the kernel glue's.
        // `Iterator::chain` spelled out: the prelude's `Init` has a `chain` method too.
        let tests = Iterator::chain(
            nova_mm_core::selftest::all(),
            nova_mm_kernel::selftest::TESTS,
        );
        let summary = nova_mm_core::selftest::run(tests, scratch.as_mut(), |test, msg| {
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
