//! The reference MMU's vocabulary: levels, apertures, accesses, mappings and faults.

use nova_mm_core::{MmuVersion, PageSize, PdbAperture, PhysAddr, VirtAddr, VramAddress};

/// A page-table level, root first. MMU v2 uses PD3..PD0, v3 uses PD4..PD0; both end in the big
/// (64 KiB) and small (4 KiB) page tables under a dual PD0 entry.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Level {
    /// v3 root: VA bit 56.
    Pd4,
    /// v2 root (VA 48:47) / v3 (VA 55:47).
    Pd3,
    /// VA 46:38; 256 GiB PTE on Blackwell.
    Pd2,
    /// VA 37:29; 512 MiB PTE on Ampere, Ada, Hopper, Blackwell.
    Pd1,
    /// VA 28:21, 16-byte dual entries; 2 MiB PTE.
    Pd0,
    /// The big page table: VA 20:16, 64 KiB pages.
    BigPt,
    /// The small page table: VA 20:12, 4 KiB pages.
    SmallPt,
}

impl Level {
    /// The directory levels of `version`, root first (PD0 last).
    #[must_use]
    pub const fn directories(version: MmuVersion) -> &'static [Level] {
        match version {
            MmuVersion::V2 => &[Level::Pd3, Level::Pd2, Level::Pd1, Level::Pd0],
            MmuVersion::V3 => &[Level::Pd4, Level::Pd3, Level::Pd2, Level::Pd1, Level::Pd0],
        }
    }

    /// The root level of `version`.
    #[must_use]
    pub const fn root(version: MmuVersion) -> Level {
        match version {
            MmuVersion::V2 => Level::Pd3,
            MmuVersion::V3 => Level::Pd4,
        }
    }

    /// The lowest VA bit this level indexes.
    #[must_use]
    pub const fn va_shift(self) -> u32 {
        match self {
            Level::Pd4 => 56,
            Level::Pd3 => 47,
            Level::Pd2 => 38,
            Level::Pd1 => 29,
            Level::Pd0 => 21,
            Level::BigPt => 16,
            Level::SmallPt => 12,
        }
    }

    /// Number of VA bits this level indexes in `version`.
    #[must_use]
    pub const fn index_bits(self, version: MmuVersion) -> u32 {
        match (self, version) {
            (Level::Pd4, _) => 1,
            (Level::Pd3, MmuVersion::V2) => 2,
            (Level::Pd3 | Level::Pd2 | Level::Pd1 | Level::SmallPt, _) => 9,
            (Level::Pd0, _) => 8,
            (Level::BigPt, _) => 5,
        }
    }

    /// Bytes per entry: 16 for the dual PD0, 8 elsewhere.
    #[must_use]
    pub const fn entry_bytes(self) -> u64 {
        match self {
            Level::Pd0 => 16,
            _ => 8,
        }
    }

    /// The PDE level number (PD0 = 0 .. PD4 = 4) as used by `CACHE_LEVEL`; `None` for page
    /// tables.
    #[must_use]
    pub const fn pde_level(self) -> Option<u32> {
        match self {
            Level::Pd4 => Some(4),
            Level::Pd3 => Some(3),
            Level::Pd2 => Some(2),
            Level::Pd1 => Some(1),
            Level::Pd0 => Some(0),
            Level::BigPt | Level::SmallPt => None,
        }
    }

    /// The size of the page a PTE at this level maps, if a PTE may be there at all on some chip.
    #[must_use]
    pub const fn page_size(self) -> Option<PageSize> {
        match self {
            Level::Pd2 => Some(PageSize::Size256G),
            Level::Pd1 => Some(PageSize::Size512M),
            Level::Pd0 => Some(PageSize::Size2M),
            Level::BigPt => Some(PageSize::Size64K),
            Level::SmallPt => Some(PageSize::Size4K),
            Level::Pd4 | Level::Pd3 => None,
        }
    }

    /// The index of `va`'s entry in a table of this level.
    #[must_use]
    pub const fn index(self, version: MmuVersion, va: u64) -> u64 {
        (va >> self.va_shift()) & ((1u64 << self.index_bits(version)) - 1)
    }
}

impl core::fmt::Display for Level {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Level::Pd4 => "PD4",
            Level::Pd3 => "PD3",
            Level::Pd2 => "PD2",
            Level::Pd1 => "PD1",
            Level::Pd0 => "PD0",
            Level::BigPt => "big PT",
            Level::SmallPt => "small PT",
        })
    }
}

/// A page directory base: the root table of an address space.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Pdb {
    /// Byte address of the root table (4 KiB aligned).
    pub addr: u64,
    /// Where it lives.
    pub aperture: PdbAperture,
}

impl Pdb {
    /// A root table in VRAM at `addr`.
    #[must_use]
    pub const fn vidmem(addr: u64) -> Self {
        Self {
            addr,
            aperture: PdbAperture::Vidmem,
        }
    }
}

/// Where a PTE points (the PTE aperture encoding: 0 video, 1 peer, 2 system coherent, 3 system
/// non-coherent — not the PDE encoding).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Aperture {
    /// This GPU's VRAM.
    Vidmem,
    /// A peer GPU's VRAM; the peer id is in [`Mapping::peer_id`].
    Peer,
    /// System memory, snooped.
    SysCoherent,
    /// System memory, not snooped.
    SysNonCoherent,
}

/// What kind of access is being translated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AccessKind {
    /// A read.
    Read,
    /// A write.
    Write,
    /// An atomic read-modify-write (a write as far as read-only pages are concerned).
    Atomic,
}

/// An access: its kind and whether the requester is privileged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Access {
    /// Read, write or atomic.
    pub kind: AccessKind,
    /// Privileged requester (may use pages with the PRIVILEGE bit).
    pub privileged: bool,
}

impl Access {
    /// Non-privileged read.
    pub const READ: Access = Access {
        kind: AccessKind::Read,
        privileged: false,
    };
    /// Non-privileged write.
    pub const WRITE: Access = Access {
        kind: AccessKind::Write,
        privileged: false,
    };
    /// Non-privileged atomic.
    pub const ATOMIC: Access = Access {
        kind: AccessKind::Atomic,
        privileged: false,
    };

    /// The same access, privileged.
    #[must_use]
    pub const fn privileged(self) -> Access {
        Access {
            privileged: true,
            ..self
        }
    }
}

/// The attribute bits of a valid PTE, decoded from v2 flag bits or the v3 PCF.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PteAttrs {
    /// v2 `VOL` / v3 PCF bit 0 `UNCACHED`: not cached in L2.
    pub uncached: bool,
    /// v2 `ENCRYPTED` (bit 4); always false on v3.
    pub encrypted: bool,
    /// v2 `PRIVILEGE` / v3 PCF bit 1: non-privileged accesses fault.
    pub privileged: bool,
    /// v2 `READ_ONLY` / v3 PCF bit 2: writes and atomics fault.
    pub read_only: bool,
    /// v2 `ATOMIC_DISABLE` / v3 PCF bit 3 `NO_ATOMIC`: atomics fault.
    pub atomic_disabled: bool,
    /// v3 PCF bit 4 `ACD`: access counting disabled; always false on v2.
    pub access_counting_disabled: bool,
    /// The raw v3 PCF (7:3); `None` on v2.
    pub pcf: Option<u8>,
}

/// A valid leaf PTE found by a walk: everything about the page, independent of the access.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Mapping {
    /// VA of the first byte of the page.
    pub va_base: VirtAddr,
    /// Page size (4 KiB .. 256 GiB).
    pub page_size: PageSize,
    /// Physical address of the first byte of the page in `aperture`.
    pub page_base: PhysAddr,
    /// Where the page is.
    pub aperture: Aperture,
    /// Peer id (v2 bits 35:33, v3 bits 63:61); 0 unless `aperture` is `Peer`.
    pub peer_id: u8,
    /// Permission and caching bits.
    pub attrs: PteAttrs,
    /// The PTE kind (v2 8 bits 63:56, v3 4 bits 11:8).
    pub kind: u8,
    /// The v2 COMPTAGLINE (53:36 Pascal/Volta, 55:36 Turing+) for vidmem/peer pages; 0 otherwise.
    pub comptagline: u32,
    /// The level the PTE was found at.
    pub level: Level,
    /// VRAM address of the PTE.
    pub pte_addr: VramAddress,
    /// The raw PTE (low qword for a PD0 2 MiB PTE).
    pub pte: u64,
}

/// A successful translation of one access.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Translation {
    /// The translated VA.
    pub va: VirtAddr,
    /// Page base + offset of `va` in the page.
    pub pa: PhysAddr,
    /// The page.
    pub mapping: Mapping,
}

/// Why a translation failed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub enum Fault {
    /// The VA has bits set above the version's VA width (49 or 57 bits).
    #[error("VA {va} is beyond the MMU's virtual address width")]
    VaOutOfRange {
        /// The VA.
        va: VirtAddr,
    },
    /// The PDB is not 4 KiB aligned.
    #[error("PDB {addr:#x} is not 4 KiB aligned")]
    PdbMisaligned {
        /// The PDB address.
        addr: u64,
    },
    /// The table of `level` is in system memory, which the simulator cannot read.
    #[error("the {level} table is in system memory")]
    PageTableInSysmem {
        /// The level whose table is in sysmem.
        level: Level,
    },
    /// The entry to read at `level` lies (partly) outside the VRAM.
    #[error("{level} entry at {addr:#x} is outside VRAM")]
    TableOutsideVram {
        /// The level.
        level: Level,
        /// Address of the entry.
        addr: u64,
    },
    /// An invalid PDE (aperture 0, not sparse) at `level`; at PD0: both halves invalid.
    #[error("invalid PDE at {level}")]
    PdeInvalid {
        /// The level.
        level: Level,
    },
    /// A sparse entry (PDE, dual PDE, or PTE) at `level`.
    #[error("sparse entry at {level}")]
    Sparse {
        /// The level.
        level: Level,
    },
    /// A PTE at a level where this chip allows none (512 MiB before Ampere, 256 GiB before
    /// Blackwell, anything at PD3/PD4).
    #[error("large PTE at {level} not allowed on this chip")]
    LargePageNotAllowed {
        /// The level.
        level: Level,
    },
    /// An invalid (not sparse) PTE.
    #[error("invalid PTE at {level}")]
    InvalidPte {
        /// The level.
        level: Level,
    },
    /// The big PTE says no small PTE below is valid (v2 V=0 PRIV=1, v3 PCF `NO_VALID_4KB_PAGE`).
    #[error("big PTE marks no valid 4 KiB page")]
    NoValid4k,
    /// v3 PCF `MAPPING_NOWHERE` in an invalid PTE.
    #[error("PTE at {level} maps nowhere")]
    MappingNowhere {
        /// The level.
        level: Level,
    },
    /// Strict mode: bits the format reserves are set.
    #[error("reserved bits set in {level} entry {entry:#x}")]
    ReservedBits {
        /// The level.
        level: Level,
        /// The offending qword.
        entry: u64,
    },
    /// Strict mode: a large page whose address is not aligned to its size.
    #[error("{level} PTE address not aligned to its page size")]
    MisalignedPage {
        /// The level.
        level: Level,
    },
    /// A non-privileged access to a privileged page.
    #[error("privilege violation")]
    Privilege,
    /// A write or atomic to a read-only page.
    #[error("read-only violation")]
    ReadOnly,
    /// An atomic to a page with atomics disabled.
    #[error("atomic disabled")]
    AtomicDisabled,
}

/// Every entry a walk read, in order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct WalkStep {
    /// The level of the entry.
    pub level: Level,
    /// Its address in VRAM.
    pub entry_addr: u64,
    /// Its value: both qwords for PD0 (low first), `[value, 0]` elsewhere.
    pub entry: [u64; 2],
    /// Whether it is a valid directory entry the walk followed (what a page-walk cache keeps).
    pub followed: bool,
}

/// The result of a walk with every entry read.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Walk {
    /// The leaf, or the fault.
    pub result: Result<Mapping, Fault>,
    /// The entries read, root first (at most 7).
    pub steps: Vec<WalkStep>,
}

impl Mapping {
    /// Checks `access` against the page's permissions and forms the physical address of `va`
    /// (which must lie in this page; only its offset bits are used).
    ///
    /// # Errors
    ///
    /// [`Fault::Privilege`], then [`Fault::ReadOnly`] (writes and atomics), then
    /// [`Fault::AtomicDisabled`], checked in that order.
    pub fn check(&self, va: VirtAddr, access: Access) -> Result<Translation, Fault> {
        let a = self.attrs;
        if a.privileged && !access.privileged {
            return Err(Fault::Privilege);
        }
        if a.read_only && access.kind != AccessKind::Read {
            return Err(Fault::ReadOnly);
        }
        if a.atomic_disabled && access.kind == AccessKind::Atomic {
            return Err(Fault::AtomicDisabled);
        }
        let off = va.raw() & (self.page_size.bytes() - 1);
        Ok(Translation {
            va,
            pa: PhysAddr::new(self.page_base.raw() | off),
            mapping: *self,
        })
    }

    /// Whether `va` lies in this page.
    #[must_use]
    pub fn contains(&self, va: VirtAddr) -> bool {
        va.raw() & !(self.page_size.bytes() - 1) == self.va_base.raw()
    }
}
