//! `nova-mm-core`: memory management for NVIDIA GPUs (Pascal through Blackwell), `no_std`.
//!
//! The crate holds everything that does not depend on how VRAM and the TLB-invalidate registers are
//! reached:
//!
//! - [`addr`]: typed addresses (VRAM, GPU virtual, frame numbers) and page sizes;
//! - [`chip`]: the GPU families and what each allows (MMU version, page sizes, field widths);
//! - [`mmu`]: bit-exact MMU v2/v3 page-table entries and level geometry, behind the
//!   [`MmuFormat`] trait ([`MmuV2`], [`MmuV3`]);
//! - [`vram`] and [`tlb`]: the two traits a backend implements, [`VramAccess`] and
//!   [`TlbInvalidate`];
//! - [`hw`]: the hardware layer that implements them over BAR0 MMIO (PRAMIN window, TLB
//!   invalidate registers, chip HAL, usable-VRAM choice).
//!
//! It never panics on any input: the crate denies `unwrap`, `expect`, `panic!`, unchecked
//! indexing and overflowing arithmetic outside tests, and every fallible function returns a typed
//! error. It allocates nothing unless the `alloc` feature is on, and then only fallibly, so it can
//! be built into a Linux kernel (see `kernel-in-qemu` notes in the repository).
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        clippy::float_arithmetic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::exit,
    )
)]
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]

#[cfg(any(feature = "alloc", test))]
#[allow(unused_extern_crates)]
extern crate alloc;

#[cfg(test)]
extern crate std;

pub mod addr;
pub mod buddy;
pub mod chip;
pub mod hw;
pub mod mmu;
pub mod tlb;
pub mod va_alloc;
pub mod vmm;
pub mod vram;
pub mod walk;

pub use addr::{PageSize, Pfn, PhysAddr, VirtAddr, VramAddress};
pub use chip::{Chip, MmuVersion};
pub use mmu::{MmuFormat, MmuV2, MmuV3};
pub use tlb::{
    AckMode, CacheLevel, InvalidateRequest, PdbAperture, PdbTarget, TlbError, TlbInvalidate,
    VaScope,
};
pub use va_alloc::{VaAllocator, VaError, VaRange};
pub use vram::{VramAccess, VramError};
