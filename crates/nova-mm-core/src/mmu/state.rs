//! Version-independent meaning of entries: what the walker, the address-space manager and the
//! tools work with. [`MmuFormat`](super::MmuFormat) turns these into bits and back.

use crate::addr::PhysAddr;

use super::aperture::{PteAperture, TableAperture};

/// The attributes of a valid PTE.
///
/// Each field says in which format it exists; setting one that the format lacks makes the
/// encoder fail with [`FormatError::FieldNotInFormat`](super::FormatError::FieldNotInFormat)
/// rather than silently dropping it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PteAttrs {
    /// Writes fault. v2 `READ_ONLY` (bit 6); v3 PCF bit 2.
    pub read_only: bool,
    /// Non-privileged accesses fault. v2 `PRIVILEGE` (bit 5); v3 PCF bit 1.
    pub privileged: bool,
    /// Not cached in L2. v2 `VOL` (bit 3; ignored for local vidmem on dGPUs); v3 PCF bit 0
    /// (`UNCACHED`).
    pub volatile: bool,
    /// Atomics fault. v2 `ATOMIC_DISABLE` (bit 7); v3 PCF bit 3 (`NO_ATOMIC`).
    pub atomic_disable: bool,
    /// v2 only: `ENCRYPTED` (bit 4; the Pascal format note says "do not use").
    pub encrypted: bool,
    /// v3 only: access counting disabled (PCF bit 4, `ACD`; 0 = `ACE`).
    pub access_counting_disabled: bool,
    /// `KIND`: 8 bits on v2 (63:56), 4 bits on v3 (11:8). 0 = pitch.
    pub kind: u8,
    /// v2 only: `COMPTAGLINE` at 53:36 (Pascal, Volta; 18 bits) or 55:36 (Turing+; 20
    /// bits). Only with the vidmem and peer apertures: it shares bits with the sysmem address.
    pub comptagline: u32,
}

impl PteAttrs {
    /// No attribute set: read-write, atomics allowed, cached, not privileged, kind 0
    /// (pitch), no comptag line (the same as `Default`, usable in `const`).
    pub const NONE: PteAttrs = PteAttrs {
        read_only: false,
        privileged: false,
        volatile: false,
        atomic_disable: false,
        encrypted: false,
        access_counting_disabled: false,
        kind: 0,
        comptagline: 0,
    };
}

/// A valid PTE: a page of some size at a physical address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PteMapping {
    /// Where the page is.
    pub aperture: PteAperture,
    /// The page's physical address, aligned to the page size.
    pub address: PhysAddr,
    /// Peer GPU index 0..=7; must be 0 unless `aperture` is [`PteAperture::Peer`].
    pub peer_id: u8,
    /// Permissions, caching, kind, compression.
    pub attrs: PteAttrs,
}

impl PteMapping {
    /// A page at `address` in `aperture` with peer id 0 and no attributes.
    #[must_use]
    pub const fn new(aperture: PteAperture, address: PhysAddr) -> Self {
        Self {
            aperture,
            address,
            peer_id: 0,
            attrs: PteAttrs::NONE,
        }
    }
}

/// What a PTE in a leaf table (big or small page table) says.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PteState {
    /// All zero. In a big page table: "not mapped here, look at the small page table".
    Invalid,
    /// Sparse: reads return zero, writes are dropped, no fault. v2 V=0 VOL=1; v3 PCF 1.
    Sparse,
    /// Big PTEs only: "no valid 4 KiB PTE below", which blocks the small page table
    /// (v2 V=0 PRIV=1, v3 PCF `NO_VALID_4KB_PAGE` = 3).
    NoValid4K,
    /// v3 only: PCF `MAPPING_NOWHERE` (2).
    MappingNowhere,
    /// A mapped page.
    Valid(PteMapping),
}

impl PteState {
    /// The mapping, if the PTE is valid.
    #[must_use]
    pub const fn mapping(&self) -> Option<&PteMapping> {
        match self {
            PteState::Valid(m) => Some(m),
            _ => None,
        }
    }

    /// Whether the PTE is valid (maps a page).
    #[must_use]
    pub const fn is_valid(&self) -> bool {
        matches!(self, PteState::Valid(_))
    }
}

/// Attributes of a pointer to a next-level table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PdeAttrs {
    /// The next-level table is not cached in L2. v2 `VOL` (`VOL_BIG`/`VOL_SMALL`); v3 PCF
    /// `VALID_UNCACHED_*` (bit 0).
    pub uncached: bool,
    /// ATS translation not allowed below. v2 `NO_ATS` (bit 5, Volta+); v3 PCF
    /// `*_ATS_NOT_ALLOWED` (bit 1).
    pub no_ats: bool,
}

/// A pointer to a next-level table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PdeTable {
    /// Where the table is.
    pub aperture: TableAperture,
    /// The table's physical address: 4 KiB aligned, or 256 B for a big page table.
    pub address: PhysAddr,
    /// Caching and ATS.
    pub attrs: PdeAttrs,
}

impl PdeTable {
    /// A table at `address` in `aperture`, cached, ATS allowed.
    #[must_use]
    pub const fn new(aperture: TableAperture, address: PhysAddr) -> Self {
        Self {
            aperture,
            address,
            attrs: PdeAttrs {
                uncached: false,
                no_ats: false,
            },
        }
    }
}

/// What an upper (8-byte) PDE says: PD3/PD2/PD1 on v2, PD4..PD1 on v3.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PdeState {
    /// No table (all zero).
    Invalid,
    /// Sparse: the whole range below reads as zero. APERTURE=0 with v2 VOL=1 / v3 PCF
    /// `SPARSE_*`.
    Sparse,
    /// A next-level directory.
    Table(PdeTable),
    /// A large-page PTE (IS_PTE=1): 512 MiB at PD1, 256 GiB at PD2, where the chip allows.
    Pte(PteMapping),
}

/// One half of a dual PD0 entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DualHalf {
    /// No table behind this half.
    Invalid,
    /// A page table: for the big half a 256 B table of 64 KiB PTEs, for the small half a
    /// 4 KiB table of 4 KiB PTEs.
    Table(PdeTable),
}

impl DualHalf {
    /// The table, if any.
    #[must_use]
    pub const fn table(&self) -> Option<&PdeTable> {
        match self {
            DualHalf::Invalid => None,
            DualHalf::Table(t) => Some(t),
        }
    }
}

/// What a 16-byte dual PD0 entry says.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DualPdeState {
    /// A 2 MiB PTE (IS_PTE=1; the PTE is in the low qword, the high qword is 0).
    Pte(PteMapping),
    /// The whole 2 MiB range is sparse: both apertures 0 and v2 `VOL_BIG`=1 / v3 `PCF_BIG`
    /// sparse.
    Sparse,
    /// Pointers to the big and the small page table; each may be invalid. Both invalid is the
    /// all-zero (invalid) entry.
    Tables {
        /// The big (64 KiB) page table, `ADDRESS_BIG` (low qword).
        big: DualHalf,
        /// The small (4 KiB) page table, `ADDRESS_SMALL` (high qword).
        small: DualHalf,
    },
}

impl DualPdeState {
    /// The invalid (all-zero) dual PDE.
    pub const INVALID: DualPdeState = DualPdeState::Tables {
        big: DualHalf::Invalid,
        small: DualHalf::Invalid,
    };

    /// The big half: `None` unless this is [`DualPdeState::Tables`].
    #[must_use]
    pub const fn big(&self) -> Option<&DualHalf> {
        match self {
            DualPdeState::Tables { big, .. } => Some(big),
            _ => None,
        }
    }

    /// The small half: `None` unless this is [`DualPdeState::Tables`].
    #[must_use]
    pub const fn small(&self) -> Option<&DualHalf> {
        match self {
            DualPdeState::Tables { small, .. } => Some(small),
            _ => None,
        }
    }
}
