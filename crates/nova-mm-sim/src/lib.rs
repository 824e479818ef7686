//! `nova-mm-sim`: a simulated NVIDIA GPU for testing nova-mm on a laptop.
//!
//! - [`vram`]: [`SimVram`], sparse simulated VRAM with counters and fault injection;
//! - [`refmmu`]: [`RefMmu`], an independent reference MMU (v2 and v3) that walks page tables in
//!   simulated VRAM exactly as the hardware would, written from the bit tables, not from the
//!   core's entry types;
//! - [`tlb`]: [`SimTlb`], a TLB and page-walk-cache model in front of the reference MMU that
//!   implements [`nova_mm_core::TlbInvalidate`] and keeps stale translations until a correctly
//!   scoped invalidate drops them;
//! - [`gpu`]: [`SimGpu`], the bundle, with BAR1/BAR2-style accessors;
//! - [`bar0`]: [`bar0::SimBar0`], a register-level BAR0 (PRAMIN window, TLB-invalidate
//!   registers, boot registers) so the core's hardware layer runs unchanged on the simulator.
//!
//! # Example: the core's address-space manager checked by the reference MMU
//!
//! The VMM writes page tables into the simulated VRAM and invalidates the simulated TLB; the
//! BAR1 accessors then go through that TLB and the independent [`RefMmu`], as the GPU's host
//! interface would.
//!
//! ```
//! use nova_mm_core::mmu::PteAttrs;
//! use nova_mm_core::vmm::{
//!     PageTableAllocator, PhysRun, PtAllocError, SpaceConfig, SpaceKind, VaPlacement,
//!     VecAddressSpace,
//! };
//! use nova_mm_core::{Chip, MmuV3, VramAccess, VramAddress};
//! use nova_mm_sim::{Access, Aperture, Bar, BarError, Pdb, RefMmu, SimGpu};
//!
//! /// Page tables from a free list at 1 MiB (a driver uses the buddy allocator).
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
//! // A Hopper (MMU v3) with 1 GiB of sparse simulated VRAM.
//! let mut gpu = SimGpu::new(Chip::Hopper, 1 << 30)?;
//! let mut tables = Tables((0..64).rev().map(|i| (1 << 20) + i * 4096).collect());
//! let cfg = SpaceConfig {
//!     chip: Chip::Hopper,
//!     va_start: 0,
//!     va_end: 256 << 20,
//!     kind: SpaceKind::Bar,
//! };
//! let (vram, tlb) = gpu.parts();
//! let mut bar1 = VecAddressSpace::<MmuV3>::new_vec(cfg, &mut tables, vram)?;
//!
//! // Map 64 KiB of VRAM at 16 MiB into BAR1 (one 64 KiB PTE) and bind BAR1 to the space.
//! let runs = [PhysRun::vram(VramAddress::new(16 << 20), 64 << 10)];
//! let placement = VaPlacement::Anywhere { align: 64 << 10 };
//! let (mapping, _stats) =
//!     bar1.map(&mut tables, vram, tlb, placement, &runs, PteAttrs::default(), None)?;
//! let va = mapping.va();
//! gpu.bind_bar(Bar::Bar1, Some(Pdb::vidmem(bar1.root().raw())));
//!
//! // Write through BAR1, read back "through PRAMIN" (the VRAM directly).
//! gpu.bar1_write32(va.checked_add(0x40).unwrap(), 0xcafe_f00d)?;
//! assert_eq!(gpu.vram_mut().read32(VramAddress::new((16 << 20) + 0x40))?, 0xcafe_f00d);
//!
//! // The reference MMU, which shares no code with the core's formats, agrees.
//! let pdb = Pdb::vidmem(bar1.root().raw());
//! let t = RefMmu::new(Chip::Hopper).translate(gpu.vram(), pdb, va, Access::READ)?;
//! assert_eq!((t.pa.raw(), t.mapping.aperture), (16 << 20, Aperture::Vidmem));
//! assert_eq!(t.mapping.page_size.bytes(), 64 << 10);
//!
//! // Unmap: the VMM's invalidate reaches the TLB model, so BAR1 faults instead of hitting a
//! // stale translation.
//! let (vram, tlb) = gpu.parts();
//! bar1.unmap(&mut tables, vram, tlb, mapping).map_err(|(_, e)| e)?;
//! assert!(matches!(gpu.bar1_read32(va), Err(BarError::Fault(_))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bar0;
pub mod gpu;
pub mod refmmu;
pub mod tlb;
pub mod vram;

pub use gpu::{Bar, BarAccesses, BarError, SharedGpu, SimBar1, SimGpu};
pub use refmmu::{
    Access, AccessEntries, AccessKind, Aperture, EntrySource, Fault, Level, Mapping, Pdb, PteAttrs,
    RefMmu, Translation, VramEntries, Walk, WalkStep,
};
pub use tlb::{InvalidateRecord, SimTlb, TlbPath, TlbStats};
pub use vram::{
    FaultOps, FaultRule, FaultTrigger, MethodCalls, SimVram, SimVramError, VramStats, EIO,
    MAX_SIM_VRAM_BYTES, SIM_PAGE_BYTES,
};
