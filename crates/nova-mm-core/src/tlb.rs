//! [`TlbInvalidate`]: how the core asks the GPU to drop cached translations.
//!
//! The request mirrors the fields of the hardware `INVALIDATE` register (`mmu-formats.md` §4.1),
//! so a register backend encodes it directly and the simulated TLB applies exactly the scope it
//! names: a missing or too narrow invalidate shows up as a stale translation in tests.

use crate::addr::VirtAddr;

/// The aperture holding a page directory base.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PdbAperture {
    /// Video memory.
    Vidmem,
    /// System memory (the register's single "SYS_MEM" value; coherence is not encoded).
    Sysmem,
}

/// Which address spaces an invalidate applies to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PdbTarget {
    /// Every address space (`ALL_PDB`); the PDB registers are not written.
    All,
    /// The address space whose root page directory is at `addr` in `aperture`.
    One {
        /// Byte address of the root page directory (4 KiB aligned).
        addr: u64,
        /// Where it lives.
        aperture: PdbAperture,
    },
}

/// Which virtual addresses an invalidate applies to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum VaScope {
    /// Every VA (`ALL_VA`), what RM and nouveau always use for register invalidates.
    All,
    /// Only `[start, start + size)`: a targeted invalidate.
    Range {
        /// First byte.
        start: VirtAddr,
        /// Length in bytes.
        size: u64,
    },
}

/// `INVALIDATE.CACHE_LEVEL`: how much of the page-walk cache to drop, counted from the PTEs up.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u8)]
pub enum CacheLevel {
    /// Every level (value 0).
    All = 0,
    /// Only PTEs (1).
    PteOnly = 1,
    /// PTEs and PDE0 (2).
    UpToPde0 = 2,
    /// Up to PDE1 (3).
    UpToPde1 = 3,
    /// Up to PDE2 (4).
    UpToPde2 = 4,
    /// Up to PDE3 (5): the root of an MMU v2 address space.
    UpToPde3 = 5,
    /// Up to PDE4 (6): the root of an MMU v3 address space.
    UpToPde4 = 6,
}

impl CacheLevel {
    /// The register encoding (bits 26:24).
    #[must_use]
    pub const fn bits(self) -> u32 {
        self as u32
    }

    /// The level covering a PDE at page-directory level `pde_level` (0 = PD0, the dual level;
    /// 4 = PD4, the v3 root). `None` for levels above PD4.
    #[must_use]
    pub const fn up_to_pde(pde_level: u32) -> Option<CacheLevel> {
        match pde_level {
            0 => Some(CacheLevel::UpToPde0),
            1 => Some(CacheLevel::UpToPde1),
            2 => Some(CacheLevel::UpToPde2),
            3 => Some(CacheLevel::UpToPde3),
            4 => Some(CacheLevel::UpToPde4),
            _ => None,
        }
    }

    /// Whether invalidating at `self` also drops what `other` drops (`All` covers everything).
    #[must_use]
    pub const fn covers(self, other: CacheLevel) -> bool {
        match (self, other) {
            (CacheLevel::All, _) => true,
            (_, CacheLevel::All) => false,
            (a, b) => (a as u8) >= (b as u8),
        }
    }
}

/// `INVALIDATE.ACK`: whether the invalidate waits for other units to acknowledge.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AckMode {
    /// No acknowledgement (0). Enough when translations are only added.
    None,
    /// Acknowledged by every unit (1). Required for unmaps and permission downgrades.
    Globally,
    /// Acknowledged within the node (2).
    Intranode,
}

impl AckMode {
    /// The register encoding (bits 8:7).
    #[must_use]
    pub const fn bits(self) -> u32 {
        match self {
            AckMode::None => 0,
            AckMode::Globally => 1,
            AckMode::Intranode => 2,
        }
    }
}

/// One TLB invalidate request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct InvalidateRequest {
    /// Which address spaces.
    pub pdb: PdbTarget,
    /// Which virtual addresses.
    pub va: VaScope,
    /// Only the hub TLBs (`HUBTLB_ONLY`): enough for BAR1/BAR2 address spaces, which only the
    /// host interface uses.
    pub hub_tlb_only: bool,
    /// How much of the page-walk cache to drop.
    pub cache_level: CacheLevel,
    /// Acknowledgement mode.
    pub ack: AckMode,
}

impl InvalidateRequest {
    /// Everything, everywhere: all address spaces, all VAs, all cache levels, acknowledged
    /// globally. Always correct, never the cheapest.
    pub const EVERYTHING: InvalidateRequest = InvalidateRequest {
        pdb: PdbTarget::All,
        va: VaScope::All,
        hub_tlb_only: false,
        cache_level: CacheLevel::All,
        ack: AckMode::Globally,
    };
}

/// Why an invalidate failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TlbError {
    /// The hardware did not finish within the backend's timeout.
    #[error("TLB invalidate timed out")]
    Timeout,
    /// The device was removed or unbound.
    #[error("the GPU is gone")]
    DeviceGone,
    /// The request cannot be expressed on this hardware (e.g. a PDB above the register's reach).
    #[error("TLB invalidate request not supported by the hardware")]
    Unsupported,
    /// The backend failed in its own way; the code is the backend's (e.g. a negative errno).
    #[error("TLB backend error {0}")]
    Backend(i32),
}

/// Invalidates GPU TLBs. `&mut self`: the invalidate registers are one exclusive resource.
pub trait TlbInvalidate {
    /// Performs `req` and returns once the hardware reports it complete.
    ///
    /// # Errors
    ///
    /// [`TlbError`] when the hardware times out, is gone, or cannot express the request.
    fn invalidate(&mut self, req: &InvalidateRequest) -> Result<(), TlbError>;
}

impl<T: TlbInvalidate + ?Sized> TlbInvalidate for &mut T {
    fn invalidate(&mut self, req: &InvalidateRequest) -> Result<(), TlbError> {
        (**self).invalidate(req)
    }
}

static_assertions::assert_obj_safe!(TlbInvalidate);
static_assertions::assert_impl_all!(InvalidateRequest: Send, Sync, Copy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_level_encoding_and_cover() {
        assert_eq!(CacheLevel::UpToPde3.bits(), 5);
        assert_eq!(CacheLevel::UpToPde4.bits(), 6);
        assert_eq!(CacheLevel::up_to_pde(0), Some(CacheLevel::UpToPde0));
        assert_eq!(CacheLevel::up_to_pde(5), None);
        assert!(CacheLevel::All.covers(CacheLevel::UpToPde4));
        assert!(CacheLevel::UpToPde1.covers(CacheLevel::PteOnly));
        assert!(!CacheLevel::PteOnly.covers(CacheLevel::UpToPde0));
        assert!(!CacheLevel::UpToPde4.covers(CacheLevel::All));
        assert_eq!(AckMode::Globally.bits(), 1);
    }
}
