//! # Embedding nova-mm in a Linux kernel driver
//!
//! This module holds no code; it documents how a kernel driver (nova-core, or an out-of-tree
//! module) builds and uses nova-mm. The build facts come from the project's kernel experiment
//! (`kernel-in-qemu.md`: Linux 6.12, rustc 1.95, an out-of-tree module linking crates.io crates
//! `zerocopy` and `bitfield-struct`, booted under QEMU).
//!
//! ## What to vendor
//!
//! The kernel builds Rust without Cargo, so every crate is compiled by a Kbuild rule. Vendor
//! (for example with `cargo vendor`, pinned by this workspace's `Cargo.lock`):
//!
//! | crate | kind | notes |
//! |---|---|---|
//! | `nova-mm-core` | library, `no_std` | no `alloc` feature (6.12 builds no `alloc` crate); `selftest` feature for the in-kernel self-tests |
//! | `nova-mm-kernel` | library, `no_std` | this crate: BAR/clock adapters and errno mapping |
//! | `thiserror` 2 (`default-features = false`) | library | its `build.rs` is not run, but `lib.rs` includes `$OUT_DIR/private.rs`: write that file by hand (for 2.0.21: `#[doc(hidden)] pub mod __private21 { #[doc(hidden)] pub use crate::private::*; }`, the module name the derive's output refers to) and set `OUT_DIR` for the rule; on rustc ≥ 1.81 no `--cfg` is needed |
//! | `thiserror-impl`, `syn`, `quote`, `proc-macro2` | proc-macros (host) | built for the host |
//! | `zerocopy` 0.8 (+ `zerocopy-derive`) | library + proc-macro | `--cfg no_fp_fmt_parse`, `--cfg 'feature="derive"'`, `--cap-lints=allow` |
//! | `bitfield-struct` | proc-macro (host) | |
//! | `static_assertions` | library | no dependencies |
//!
//! ## How to build them (6.12 Kbuild)
//!
//! What worked in the experiment, applied to these crates:
//!
//! 1. **Proc-macros** (`thiserror-impl`, `zerocopy-derive`, `bitfield-struct` with
//!    `syn`/`quote`/`proc-macro2`): build them for the host with `cargo build --release` of a
//!    small helper crate, using **exactly the rustc that builds the kernel**, and pass each
//!    `.so` with `--extern name=path.so`. Add `-L dependency=<dir of the .so files>` to every
//!    consumer, or rustc reports a misleading `E0463 can't find crate`.
//! 2. **Libraries** (`static_assertions`, `thiserror`, `zerocopy`, `nova-mm-core`,
//!    `nova-mm-kernel`, in that order): compile each as a kernel "crate object" with a custom
//!    rule reusing `$(rust_common_cmd)`, emitting `--emit=obj=<crate>.o` and
//!    `--emit=metadata=lib<crate>.rmeta`, per-object flags through `RUSTFLAGS_<crate>.o`, and
//!    link them into a composite module (`mymod-y := static_assertions.o thiserror.o
//!    zerocopy.o nova_mm_core.o nova_mm_kernel.o mymod_main.o`) with explicit make
//!    dependencies so each crate builds after the ones it uses. No symbol exports are needed.
//! 3. **Flags**: the kernel forces `-Zcrate-attr=no_std`, `--sysroot=/dev/null`,
//!    `-Cpanic=abort`, `-Coverflow-checks=y` and edition 2021 on every crate. Add
//!    `-Anon_ascii_idents` on crates that use `zerocopy-derive` output. Build scripts never
//!    run: replace each by hand-written `--cfg` flags (nova-mm's own crates have none).
//! 4. The same rules work in-tree (`obj-y` in a new directory) for a built-in driver.
//!
//! ## What the library guarantees the kernel
//!
//! - No `alloc`, no floats, no `u128` at run time (the kernel's intrinsics for those are
//!   panicking stubs), no panics: a Rust panic in the kernel is an oops. The core denies
//!   `unwrap`, indexing and overflowing arithmetic outside tests, so overflow checks never fire.
//! - No locks: every stateful type takes `&mut self`, and the driver chooses the lock (review
//!   point 17). The PRAMIN window and the invalidate registers are used in the DMA-fence
//!   signalling path: take a lock that is never held around an allocation.
//! - Self-tests are plain functions behind the `selftest` feature (6.12 has no
//!   `#[kunit_tests]`); a module calls them in `init` and prints `N passed, N failed`.
//!
//! ## Module skeleton
//!
//! The driver implements [`crate::KernelBar`] for its BAR0 mapping and [`crate::KernelTime`]
//! for the kernel clock, then builds the core's PRAMIN and TLB objects on them. Names from the
//! `kernel` crate are as in Rust-for-Linux 6.12; adapt to the tree you build in.
//!
//! ```ignore
//! use kernel::{pci, prelude::*, delay, time};
//! use nova_mm_core::hw::mmio::Mmio;
//! use nova_mm_core::hw::{hal::identify_chip, pramin::{Pramin, PraminReadBack}, tlb_regs::TlbRegs};
//! use nova_mm_core::{InvalidateRequest, TlbInvalidate, VramAccess, VramAddress};
//! use nova_mm_kernel::{Errno, KernelBar, KernelClock, KernelMmio, KernelTime, ToErrno};
//!
//! /// BAR0 as nova-mm sees it: the kernel's `pci::Bar` behind its `Devres` guard.
//! struct Bar0<'a>(&'a pci::Bar<{ 16 << 20 }>);
//!
//! impl KernelBar for Bar0<'_> {
//!     fn maxsize(&self) -> usize { self.0.maxsize() }
//!     fn try_read32(&self, off: usize) -> Result<u32, Errno> {
//!         self.0.try_read32(off).map_err(|e| Errno::from_kernel(e.to_errno()))
//!     }
//!     fn try_write32(&self, v: u32, off: usize) -> Result<(), Errno> {
//!         self.0.try_write32(v, off).map_err(|e| Errno::from_kernel(e.to_errno()))
//!     }
//! }
//!
//! struct KTime;
//! impl KernelTime for KTime {
//!     fn ktime_get_ns(&self) -> u64 { time::ktime_get_ns() }
//!     fn delay_ns(&self, ns: u64) { delay::udelay(ns.div_ceil(1000)) }
//! }
//!
//! fn probe_mm(bar: &pci::Bar<{ 16 << 20 }>, vram_size: u64) -> Result {
//!     let mmio = KernelMmio::new(Bar0(bar));
//!     let read = |off| mmio.read32(off).map_err(|e| Error::from_errno(e.to_errno().to_kernel()));
//!     let id = identify_chip(read(0)?, read(0xa00)?)
//!         .map_err(|e| Error::from_errno(e.to_errno().to_kernel()))?;
//!     // One lock around both, chosen by the driver; never held around an allocation.
//!     let mut pramin = Pramin::new(&mmio, id.chip, vram_size)
//!         .map_err(|e| Error::from_errno(e.to_errno().to_kernel()))?;
//!     let mut tlb = TlbRegs::new(&mmio, id.chip, KernelClock::new(KTime), PraminReadBack::new(&mmio));
//!     pramin.write64(VramAddress::new(0x1000), 0)
//!         .map_err(|e| Error::from_errno(e.to_errno().to_kernel()))?;
//!     tlb.invalidate(&InvalidateRequest::EVERYTHING)
//!         .map_err(|e| Error::from_errno(e.to_errno().to_kernel()))?;
//!     pr_info!("nova-mm: {} ready, {} window moves\n", id.chip, pramin.stats().window_moves);
//!     Ok(())
//! }
//!
//! module! {
//!     type: NovaMmExample,
//!     name: "nova_mm_example",
//!     license: "GPL",
//! }
//! ```
