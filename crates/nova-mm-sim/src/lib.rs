//! `nova-mm-sim`: a simulated NVIDIA GPU for testing nova-mm on a laptop.
//!
//! - [`vram`]: [`SimVram`], sparse simulated VRAM with counters and fault injection;
//! - [`refmmu`]: [`RefMmu`], an independent reference MMU (v2 and v3) that walks page tables in
//!   simulated VRAM exactly as the hardware would, written from the bit tables, not from the
//!   core's entry types;
//! - [`tlb`]: [`SimTlb`], a TLB and page-walk-cache model in front of the reference MMU that
//!   implements [`nova_mm_core::TlbInvalidate`] and keeps stale translations until a correctly
//!   scoped invalidate drops them;
//! - [`gpu`]: [`SimGpu`], the bundle, with BAR1/BAR2-style accessors.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bar0;
pub mod gpu;
pub mod refmmu;
pub mod tlb;
pub mod vram;

pub use gpu::{Bar, BarAccesses, BarError, SimGpu};
pub use refmmu::{
    Access, AccessEntries, AccessKind, Aperture, EntrySource, Fault, Level, Mapping, Pdb, PteAttrs,
    RefMmu, Translation, VramEntries, Walk, WalkStep,
};
pub use tlb::{InvalidateRecord, SimTlb, TlbPath, TlbStats};
pub use vram::{
    FaultOps, FaultRule, FaultTrigger, MethodCalls, SimVram, SimVramError, VramStats, EIO,
    MAX_SIM_VRAM_BYTES, SIM_PAGE_BYTES,
};
