//! The hardware layer: BAR0 MMIO, the chip HAL, the PRAMIN window, TLB invalidation through
//! registers, and the usable-VRAM decision (`mmu-formats.md` §3–§5, `nova-series.md` §4.1, §4.3,
//! §4.8).
//!
//! Everything is generic over an [`mmio::Mmio`] provider (the kernel BAR, a VFIO mapping, the
//! simulated BAR0), allocates nothing and never panics.
//!
//! How an embedder wires it: the address-space manager holds one [`crate::VramAccess`] and one
//! [`crate::TlbInvalidate`]. With a shared BAR reference `bar: &B` (`B: Mmio`), that is
//! `Pramin::new(bar, chip, vram_size)` and
//! `TlbRegs::new(bar, chip, clock, PraminReadBack::new(bar))`: each owns its own registers, and
//! the invalidate path reads a PRAMIN word back first, which orders every earlier PRAMIN write.

pub mod fb;
pub mod hal;
pub mod mmio;
pub mod pramin;
pub mod tlb_regs;
