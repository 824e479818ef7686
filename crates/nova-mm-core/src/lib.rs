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
//!
//! The layers above the backend traits:
//!
//! - [`buddy`]: the VRAM buddy allocator (the semantics of the kernel's `gpu_buddy`, bounded
//!   metadata, no allocation after creation);
//! - [`va_alloc`]: the GPU virtual-address range allocator (an interval tree, `O(log n)`);
//! - [`walk`]: the read-only page-table walker (translate one VA, visit a range), safe on
//!   corrupt tables;
//! - [`vmm`]: the address-space manager (map, unmap, protect, sparse) with the fence-safe
//!   prepare / execute / cleanup protocol.
//!
//! # Example: map, translate, unmap
//!
//! A whole round trip over VRAM held in host memory, with a page-table allocator and a TLB
//! backend written here (a driver uses [`hw::pramin::Pramin`], [`hw::tlb_regs::TlbRegs`] and
//! the buddy allocator; tests use the `nova-mm-sim` crate). The host bookkeeping lives in
//! caller-provided slices, as in a kernel without `alloc`.
//!
//! ```
//! use nova_mm_core::mmu::{PteAperture, PteAttrs};
//! use nova_mm_core::va_alloc::{VaAllocator, VaNode};
//! use nova_mm_core::vmm::{
//!     AddressSpace, FixedSlab, Kids, Node, PageTableAllocator, PhysRun, PtAllocError, Seg,
//!     SpaceConfig, SpaceKind, VaPlacement,
//! };
//! use nova_mm_core::vram::check_access;
//! use nova_mm_core::walk::{self, Translation};
//! use nova_mm_core::{
//!     AckMode, CacheLevel, Chip, InvalidateRequest, MmuV2, PageSize, TlbError, TlbInvalidate,
//!     VirtAddr, VramAccess, VramAddress, VramError,
//! };
//!
//! /// 16 MiB of "VRAM" in host memory. Only the 32-bit accesses are required; the 64-bit and
//! /// bulk ones have default methods built on them.
//! struct Vram(Vec<u32>);
//! impl Vram {
//!     fn index(&self, addr: VramAddress) -> Result<usize, VramError> {
//!         check_access(addr, 4, 4, self.size())?;
//!         Ok(usize::try_from(addr.raw() / 4).unwrap())
//!     }
//! }
//! impl VramAccess for Vram {
//!     fn size(&self) -> u64 {
//!         self.0.len() as u64 * 4
//!     }
//!     fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
//!         let i = self.index(addr)?;
//!         Ok(self.0[i])
//!     }
//!     fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError> {
//!         let i = self.index(addr)?;
//!         self.0[i] = value;
//!         Ok(())
//!     }
//! }
//!
//! /// Records every invalidate request.
//! #[derive(Default)]
//! struct RecordingTlb(Vec<InvalidateRequest>);
//! impl TlbInvalidate for RecordingTlb {
//!     fn invalidate(&mut self, req: &InvalidateRequest) -> Result<(), TlbError> {
//!         self.0.push(*req);
//!         Ok(())
//!     }
//! }
//!
//! /// Page tables from the first 1 MiB of VRAM.
//! struct Tables(Vec<u64>);
//! impl PageTableAllocator for Tables {
//!     fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
//!         self.0.pop().map(VramAddress::new).ok_or(PtAllocError::OutOfMemory)
//!     }
//!     fn free_table(&mut self, addr: VramAddress) {
//!         self.0.push(addr.raw());
//!     }
//! }
//!
//! let mut vram = Vram(vec![0; (16 << 20) / 4]);
//! let mut tlb = RecordingTlb::default();
//! let mut tables = Tables((0..256).rev().map(|i| i * 4096).collect());
//!
//! // A 1 GiB GPU address space on an Ampere chip (MMU v2), bookkeeping in fixed storage.
//! let mut nodes = vec![Node::default(); 32];
//! let mut kids: Vec<Kids> = vec![[0; 512]; 16];
//! let mut va_nodes = [VaNode::EMPTY; 8];
//! let (start, end) = (VirtAddr::new(0), VirtAddr::new(1 << 30));
//! let cfg = SpaceConfig {
//!     chip: Chip::Ampere,
//!     va_start: 0,
//!     va_end: 1 << 30,
//!     kind: SpaceKind::Gpu,
//! };
//! let va = VaAllocator::new(&mut va_nodes[..], start, end, 4096)?;
//! let mut space = AddressSpace::<MmuV2, _, _, _>::new(
//!     cfg,
//!     FixedSlab::new(&mut nodes),
//!     FixedSlab::new(&mut kids),
//!     va,
//!     &mut tables,
//!     &mut vram,
//! )?;
//!
//! // 2 MiB + 64 KiB of VRAM at 8 MiB, mapped anywhere: the manager picks one 2 MiB PTE and
//! // one 64 KiB PTE, and issues exactly one invalidate.
//! let runs = [PhysRun::vram(VramAddress::new(8 << 20), (2 << 20) + (64 << 10))];
//! let placement = VaPlacement::Anywhere { align: 4096 };
//! let (mapping, stats) = space.map(
//!     &mut tables, &mut vram, &mut tlb, placement, &runs, PteAttrs::default(), None,
//! )?;
//! assert_eq!((stats.leaves, stats.invalidates), (2, 1));
//! assert_eq!(tlb.0.len(), 1);
//!
//! // The read-only walker sees what the GPU would.
//! let va = mapping.va();
//! let t = walk::translate::<MmuV2, _>(Chip::Ampere, &mut vram, space.root(), va)?;
//! assert!(matches!(t, Translation::Mapped { size: PageSize::Size2M, .. }));
//! let tail = va.checked_add((2 << 20) + 0x1234).unwrap();
//! let t = walk::translate::<MmuV2, _>(Chip::Ampere, &mut vram, space.root(), tail)?;
//! assert!(matches!(t, Translation::Mapped { size: PageSize::Size64K, pte, .. }
//!     if pte.aperture == PteAperture::Vidmem));
//! assert_eq!(t.phys(tail), Some((8 << 20) + (2 << 20) + 0x1234));
//!
//! // Unmap: one more invalidate, acknowledged globally; the emptied tables go back to the
//! // allocator and only the root remains.
//! let mut saved = [Seg::default(); 8];
//! space
//!     .unmap_in(&mut tables, &mut vram, &mut tlb, mapping, FixedSlab::new(&mut saved))
//!     .map_err(|(_, e)| e)?;
//! assert_eq!(tlb.0.len(), 2);
//! assert_eq!(tlb.0[1].ack, AckMode::Globally);
//! assert_ne!(tlb.0[1].cache_level, CacheLevel::PteOnly);
//! assert_eq!(space.table_count(), 1);
//! assert_eq!(
//!     walk::translate::<MmuV2, _>(Chip::Ampere, &mut vram, space.root(), va)?,
//!     Translation::Unmapped
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
// Also built for the crate's own unit tests, feature or not: the MMU known-answer tests live
// once, as self-tests (`selftest::mmu_v2`, `mmu_v3`), and `cargo test` runs them from there.
#[cfg(any(test, feature = "selftest"))]
pub mod selftest;
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
