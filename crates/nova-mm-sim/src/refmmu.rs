//! [`RefMmu`]: an independent reference GPU MMU for MMU v2 (Pascal..Ada) and v3 (Hopper,
//! Blackwell).
//!
//! It translates a GPU virtual address through page tables in simulated VRAM the way the
//! hardware does, and reports either the [`Translation`] (physical address, aperture, peer id,
//! page size, every permission bit, kind) or the [`Fault`]. It is the oracle for everything above
//! it, so it shares no code with the core's entry types: every entry is decoded here with plain
//! shifts and masks taken straight from the bit tables of `mmu-formats.md` §1 (v2) and §2 (v3).
//!
//! The walk reads at most one entry per level plus one big-page PTE, so any VRAM contents end in
//! a result after at most 7 reads: it never loops and never panics.
//!
//! Decisions where the reference is silent or ambiguous (also listed in the crate report):
//! - v2 dual PDE: `NO_ATS` (bit 5) lies inside `ADDRESS_BIG` (53:4 / 32:4); the address field
//!   wins, so bit 5 is PA bit 9 of the big page table.
//! - v2 big PTE with V=0: VOL=1 means sparse whatever PRIV says (so RM's V=0 VOL=1 PRIV=1 "no
//!   valid 4K" pattern reads as sparse; both block the small page table); V=0 VOL=0 PRIV=1 is
//!   "no valid 4 KiB PTE"; any other invalid big PTE (all zero, or stray address bits) lets the
//!   small page table decide.
//! - v3 big PTE with V=0: PCF 0 lets the small page table decide, 1 sparse, 2 mapping-nowhere and
//!   3 no-valid-4K block it; PCF 4..31 are undefined: a reserved-bits fault in strict mode,
//!   "look at the small page table" in lenient mode.
//! - A 64 KiB page whose big PTE lets the small table decide while the small half of the PD0
//!   entry is invalid faults as [`Fault::PdeInvalid`] at PD0.
//! - Strict mode (the default) faults on bits the formats reserve (peer bits in vidmem PDEs and
//!   PTEs, bits above the address fields, bits 11:6 of v3 PDEs, a non-zero high qword beside a
//!   2 MiB PTE) and on large-page addresses not aligned to the page size. Lenient mode ignores
//!   reserved bits and masks the low address bits of large pages.
//! - Table addresses: the PDB must be 4 KiB aligned; a table entry that lies (partly) outside the
//!   VRAM faults as [`Fault::TableOutsideVram`]; a table in system memory cannot be followed by
//!   the simulator and faults as [`Fault::PageTableInSysmem`].

use nova_mm_core::{
    Chip, MmuVersion, PageSize, PdbAperture, PhysAddr, VirtAddr, VramAccess, VramAddress,
};

use crate::vram::SimVram;

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
    /// An invalid PDE (aperture 0, not sparse) at `level`; for PD0 also a missing small half
    /// where the big PTE defers to the small page table.
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

/// Where the walker gets its entries: plain VRAM, or a page-walk cache in front of it.
pub trait EntrySource {
    /// The entry of `level` at `addr`, read for the walk of `va`: both qwords for PD0,
    /// `[value, 0]` for 8-byte entries. `None` if the entry is outside the memory.
    fn read_entry(&mut self, level: Level, va: u64, addr: u64) -> Option<[u64; 2]>;
}

/// [`EntrySource`] reading a [`SimVram`] through its back door (uncounted, no fault injection:
/// the oracle must see what is really there).
#[derive(Clone, Copy, Debug)]
pub struct VramEntries<'a>(pub &'a SimVram);

impl EntrySource for VramEntries<'_> {
    fn read_entry(&mut self, level: Level, _va: u64, addr: u64) -> Option<[u64; 2]> {
        let lo = self.0.peek64(addr)?;
        if level == Level::Pd0 {
            let hi = self.0.peek64(addr.checked_add(8)?)?;
            Some([lo, hi])
        } else {
            Some([lo, 0])
        }
    }
}

/// [`EntrySource`] over any [`VramAccess`] backend (e.g. real VRAM through PRAMIN), so the
/// reference MMU can check tables a driver wrote on hardware. Reads go through the backend's
/// counted path; any read error (out of range, misaligned, backend failure) ends the walk as
/// [`Fault::TableOutsideVram`].
#[derive(Debug)]
pub struct AccessEntries<'a, V: VramAccess + ?Sized>(pub &'a mut V);

impl<V: VramAccess + ?Sized> EntrySource for AccessEntries<'_, V> {
    fn read_entry(&mut self, level: Level, _va: u64, addr: u64) -> Option<[u64; 2]> {
        let lo = self.0.read64(VramAddress::new(addr)).ok()?;
        if level == Level::Pd0 {
            let hi = self.0.read64(VramAddress::new(addr.checked_add(8)?)).ok()?;
            Some([lo, hi])
        } else {
            Some([lo, 0])
        }
    }
}

/// Bits `hi:lo` of `v`.
const fn bits(v: u64, hi: u32, lo: u32) -> u64 {
    (v >> lo) & (u64::MAX >> (63 - hi + lo))
}

/// Whether bit `n` of `v` is set.
const fn bit(v: u64, n: u32) -> bool {
    (v >> n) & 1 == 1
}

/// A mask of bits `hi:lo`.
const fn mask(hi: u32, lo: u32) -> u64 {
    (u64::MAX >> (63 - hi + lo)) << lo
}

/// A PDE (or PDE half) decoded.
enum Pde {
    /// Aperture 0 and not sparse.
    Invalid,
    /// Aperture 0, sparse bit set.
    Sparse,
    /// Points at a table in VRAM at this address.
    Vid(u64),
    /// Points at a table in system memory.
    Sys,
    /// Reserved bits set (strict mode).
    Reserved,
}

/// A PTE decoded, before the page size and access are considered.
enum Pte {
    Valid {
        base: u64,
        aperture: Aperture,
        peer_id: u8,
        attrs: PteAttrs,
        kind: u8,
        comptagline: u32,
    },
    /// V=0, nothing special (the big PTE defers to the small table).
    Invalid,
    Sparse,
    /// v2 V=0 PRIV=1, v3 PCF 3.
    NoValid4k,
    /// v3 PCF 2.
    Nowhere,
    Reserved,
}

/// The reference MMU for one chip. Cheap to copy; holds no state.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RefMmu {
    chip: Chip,
    strict: bool,
}

impl RefMmu {
    /// A strict reference MMU for `chip` (reserved bits and misaligned large pages fault).
    #[must_use]
    pub const fn new(chip: Chip) -> Self {
        Self { chip, strict: true }
    }

    /// A lenient reference MMU for `chip`: reserved bits are ignored and large-page addresses
    /// are masked to their alignment.
    #[must_use]
    pub const fn lenient(chip: Chip) -> Self {
        Self {
            chip,
            strict: false,
        }
    }

    /// The chip.
    #[must_use]
    pub const fn chip(&self) -> Chip {
        self.chip
    }

    /// Whether reserved bits fault.
    #[must_use]
    pub const fn is_strict(&self) -> bool {
        self.strict
    }

    fn version(&self) -> MmuVersion {
        self.chip.mmu_version()
    }

    /// Translates one access of `va` in the address space rooted at `pdb`.
    ///
    /// # Errors
    ///
    /// The [`Fault`] the hardware would raise (or the simulator's own: table in sysmem,
    /// table outside VRAM).
    pub fn translate(
        &self,
        vram: &SimVram,
        pdb: Pdb,
        va: VirtAddr,
        access: Access,
    ) -> Result<Translation, Fault> {
        self.walk(vram, pdb, va)?.check(va, access)
    }

    /// Walks `va` to its leaf PTE without checking an access.
    ///
    /// # Errors
    ///
    /// The walk [`Fault`] (never a permission fault).
    pub fn walk(&self, vram: &SimVram, pdb: Pdb, va: VirtAddr) -> Result<Mapping, Fault> {
        self.walk_with(&mut VramEntries(vram), pdb, va).result
    }

    /// Walks `va`, reading entries from `src`, and returns every entry read.
    pub fn walk_with(&self, src: &mut dyn EntrySource, pdb: Pdb, va: VirtAddr) -> Walk {
        let mut steps = Vec::with_capacity(7);
        let result = self.walk_inner(src, pdb, va.raw(), &mut steps);
        Walk { result, steps }
    }

    fn walk_inner(
        &self,
        src: &mut dyn EntrySource,
        pdb: Pdb,
        va: u64,
        steps: &mut Vec<WalkStep>,
    ) -> Result<Mapping, Fault> {
        let ver = self.version();
        if va >> ver.va_bits() != 0 {
            return Err(Fault::VaOutOfRange {
                va: VirtAddr::new(va),
            });
        }
        let root = Level::root(ver);
        if pdb.aperture == PdbAperture::Sysmem {
            return Err(Fault::PageTableInSysmem { level: root });
        }
        if pdb.addr % 4096 != 0 {
            return Err(Fault::PdbMisaligned { addr: pdb.addr });
        }
        let mut table = pdb.addr;
        let dirs = Level::directories(ver);
        for (i, &level) in dirs.iter().enumerate() {
            let addr = entry_addr(table, level, ver, va)?;
            let entry = src
                .read_entry(level, va, addr)
                .ok_or(Fault::TableOutsideVram { level, addr })?;
            let step = steps.len();
            steps.push(WalkStep {
                level,
                entry_addr: addr,
                entry,
                followed: false,
            });
            let [q0, q1] = entry;
            if q0 & 1 == 1 {
                // IS_PTE: a large page, if this chip allows one here.
                let size = match level.page_size() {
                    Some(s) if self.chip.supports_page_size(s) => s,
                    _ => return Err(Fault::LargePageNotAllowed { level }),
                };
                if level == Level::Pd0 && q1 != 0 && self.strict {
                    return Err(Fault::ReservedBits { level, entry: q1 });
                }
                return self.leaf(level, size, addr, q0, va);
            }
            if level == Level::Pd0 {
                return self.dual(src, q0, q1, va, steps, step);
            }
            let next = dirs.get(i + 1).copied().unwrap_or(Level::Pd0);
            match self.decode_pde(q0) {
                Pde::Invalid => return Err(Fault::PdeInvalid { level }),
                Pde::Sparse => return Err(Fault::Sparse { level }),
                Pde::Reserved => return Err(Fault::ReservedBits { level, entry: q0 }),
                Pde::Sys => return Err(Fault::PageTableInSysmem { level: next }),
                Pde::Vid(t) => {
                    if let Some(s) = steps.get_mut(step) {
                        s.followed = true;
                    }
                    table = t;
                }
            }
        }
        // Every directory list ends in PD0, which returns above.
        Err(Fault::PdeInvalid { level: Level::Pd0 })
    }

    /// The dual PD0 entry (not a PTE): big/small precedence of `mmu-formats.md` §1.5.
    fn dual(
        &self,
        src: &mut dyn EntrySource,
        q0: u64,
        q1: u64,
        va: u64,
        steps: &mut Vec<WalkStep>,
        step: usize,
    ) -> Result<Mapping, Fault> {
        let ver = self.version();
        let big = self.decode_big_half(q0);
        let small = self.decode_small_half(q1);
        let big_absent = matches!(big, Pde::Invalid | Pde::Sparse);
        let small_absent = matches!(small, Pde::Invalid | Pde::Sparse);
        if big_absent && small_absent {
            // Sparseness is decided by the big half's VOL / PCF alone.
            return Err(if matches!(big, Pde::Sparse) {
                Fault::Sparse { level: Level::Pd0 }
            } else {
                Fault::PdeInvalid { level: Level::Pd0 }
            });
        }
        if let Pde::Reserved = big {
            return Err(Fault::ReservedBits {
                level: Level::Pd0,
                entry: q0,
            });
        }
        if let Pde::Reserved = small {
            return Err(Fault::ReservedBits {
                level: Level::Pd0,
                entry: q1,
            });
        }
        if let Some(s) = steps.get_mut(step) {
            s.followed = true;
        }
        match big {
            Pde::Sys => {
                return Err(Fault::PageTableInSysmem {
                    level: Level::BigPt,
                })
            }
            Pde::Vid(t) => {
                let level = Level::BigPt;
                let addr = entry_addr(t, level, ver, va)?;
                let [e, _] = src
                    .read_entry(level, va, addr)
                    .ok_or(Fault::TableOutsideVram { level, addr })?;
                steps.push(WalkStep {
                    level,
                    entry_addr: addr,
                    entry: [e, 0],
                    followed: false,
                });
                match self.decode_pte(e) {
                    Pte::Valid { .. } => {
                        return self.leaf(level, PageSize::Size64K, addr, e, va);
                    }
                    Pte::Invalid => {} // defer to the small page table
                    Pte::Sparse => return Err(Fault::Sparse { level }),
                    Pte::NoValid4k => return Err(Fault::NoValid4k),
                    Pte::Nowhere => return Err(Fault::MappingNowhere { level }),
                    Pte::Reserved => return Err(Fault::ReservedBits { level, entry: e }),
                }
            }
            Pde::Invalid | Pde::Sparse | Pde::Reserved => {}
        }
        match small {
            Pde::Sys => Err(Fault::PageTableInSysmem {
                level: Level::SmallPt,
            }),
            Pde::Vid(t) => {
                let level = Level::SmallPt;
                let addr = entry_addr(t, level, ver, va)?;
                let [e, _] = src
                    .read_entry(level, va, addr)
                    .ok_or(Fault::TableOutsideVram { level, addr })?;
                steps.push(WalkStep {
                    level,
                    entry_addr: addr,
                    entry: [e, 0],
                    followed: false,
                });
                match self.decode_pte(e) {
                    Pte::Valid { .. } => self.leaf(level, PageSize::Size4K, addr, e, va),
                    Pte::Sparse => Err(Fault::Sparse { level }),
                    Pte::Nowhere => Err(Fault::MappingNowhere { level }),
                    Pte::Reserved => Err(Fault::ReservedBits { level, entry: e }),
                    // NO_VALID_4KB means nothing in a small PTE: it is just invalid.
                    Pte::Invalid | Pte::NoValid4k => Err(Fault::InvalidPte { level }),
                }
            }
            Pde::Invalid | Pde::Sparse | Pde::Reserved => {
                Err(Fault::PdeInvalid { level: Level::Pd0 })
            }
        }
    }

    /// Builds the mapping of a valid PTE at `level`, or the PTE's fault.
    fn leaf(
        &self,
        level: Level,
        size: PageSize,
        pte_addr: u64,
        e: u64,
        va: u64,
    ) -> Result<Mapping, Fault> {
        match self.decode_pte(e) {
            Pte::Valid {
                base,
                aperture,
                peer_id,
                attrs,
                kind,
                comptagline,
            } => {
                let align = size.bytes() - 1;
                let base = if base & align != 0 {
                    if self.strict {
                        return Err(Fault::MisalignedPage { level });
                    }
                    base & !align
                } else {
                    base
                };
                Ok(Mapping {
                    va_base: VirtAddr::new(va & !align),
                    page_size: size,
                    page_base: PhysAddr::new(base),
                    aperture,
                    peer_id,
                    attrs,
                    kind,
                    comptagline,
                    level,
                    pte_addr: VramAddress::new(pte_addr),
                    pte: e,
                })
            }
            Pte::Invalid | Pte::NoValid4k => Err(Fault::InvalidPte { level }),
            Pte::Sparse => Err(Fault::Sparse { level }),
            Pte::Nowhere => Err(Fault::MappingNowhere { level }),
            Pte::Reserved => Err(Fault::ReservedBits { level, entry: e }),
        }
    }

    // ---- entry decoding, straight from the bit tables ----

    /// An upper PDE (PD4..PD1) with IS_PTE = 0.
    fn decode_pde(&self, e: u64) -> Pde {
        match self.version() {
            MmuVersion::V2 => {
                // §1.2: APERTURE 2:1 (0 invalid, 1 vid, 2/3 sys), VOL 3,
                // ADDRESS_VID 32:8 (PA>>12; 35:33 peer must be 0), ADDRESS_SYS 53:8.
                self.v2_pointer(e, bits(e, 2, 1), bit(e, 3), 8, 12)
            }
            MmuVersion::V3 => {
                // §2.2: APERTURE 2:1, PCF 5:3 (bit 3 = sparse when aperture 0), ADDRESS 51:12
                // in place; 11:6 and 63:52 unused.
                self.v3_pointer(e, bits(e, 2, 1), mask(51, 12), mask(11, 6) | mask(63, 52))
            }
        }
    }

    /// The big half (low qword) of a dual PD0 entry.
    fn decode_big_half(&self, q0: u64) -> Pde {
        match self.version() {
            // §1.3: APERTURE_BIG 2:1, VOL_BIG 3, ADDRESS_BIG 53:4 sys / 32:4 vid = PA >> 8.
            MmuVersion::V2 => self.v2_pointer(q0, bits(q0, 2, 1), bit(q0, 3), 4, 8),
            // §2.2: APERTURE_BIG 2:1, PCF_BIG 5:3, ADDRESS_BIG 51:8 = PA in place.
            MmuVersion::V3 => {
                self.v3_pointer(q0, bits(q0, 2, 1), mask(51, 8), mask(7, 6) | mask(63, 52))
            }
        }
    }

    /// The small half (high qword) of a dual PD0 entry.
    fn decode_small_half(&self, q1: u64) -> Pde {
        match self.version() {
            // §1.3: APERTURE_SMALL 66:65 = q1 2:1, VOL_SMALL 67 = q1 3 (sparseness is decided
            // by VOL_BIG, so it does not matter here), ADDRESS_SMALL 117:72 / 96:72 = q1 53:8 /
            // 32:8, PA >> 12.
            MmuVersion::V2 => self.v2_pointer(q1, bits(q1, 2, 1), false, 8, 12),
            // §2.2: APERTURE_SMALL 66:65, PCF_SMALL 69:67, ADDRESS_SMALL 115:76 = q1 51:12.
            MmuVersion::V3 => self
                .v3_pointer(q1, bits(q1, 2, 1), mask(51, 12), mask(11, 6) | mask(63, 52))
                .not_sparse(),
        }
    }

    /// A v2 directory pointer whose address field starts at bit `lo` and holds PA >> `shift`:
    /// vid field is `(32):lo` (peer 35:33 must be 0), sys field `53:lo`.
    fn v2_pointer(&self, e: u64, aperture: u64, sparse_bit: bool, lo: u32, shift: u32) -> Pde {
        match aperture {
            0 => {
                if sparse_bit {
                    Pde::Sparse
                } else {
                    Pde::Invalid
                }
            }
            1 => {
                if self.strict && e & mask(63, 33) != 0 {
                    return Pde::Reserved;
                }
                Pde::Vid(bits(e, 32, lo) << shift)
            }
            _ => {
                if self.strict && e & mask(63, 54) != 0 {
                    return Pde::Reserved;
                }
                Pde::Sys
            }
        }
    }

    /// A v3 directory pointer with the address in place under `addr_mask`.
    fn v3_pointer(&self, e: u64, aperture: u64, addr_mask: u64, reserved: u64) -> Pde {
        match aperture {
            // PCF bit 0 (entry bit 3) = SPARSE when the aperture is invalid.
            0 => {
                if bit(e, 3) {
                    Pde::Sparse
                } else {
                    Pde::Invalid
                }
            }
            1 => {
                if self.strict && e & reserved != 0 {
                    return Pde::Reserved;
                }
                Pde::Vid(e & addr_mask)
            }
            _ => {
                if self.strict && e & reserved != 0 {
                    return Pde::Reserved;
                }
                Pde::Sys
            }
        }
    }

    /// A PTE (small, big, or large at PD0/PD1/PD2).
    fn decode_pte(&self, e: u64) -> Pte {
        match self.version() {
            MmuVersion::V2 => self.decode_pte_v2(e),
            MmuVersion::V3 => self.decode_pte_v3(e),
        }
    }

    /// §1.4 v2 PTE: VALID 0, APERTURE 2:1 (0 vid, 1 peer, 2 sys coh, 3 sys noncoh), VOL 3,
    /// ENCRYPTED 4, PRIVILEGE 5, READ_ONLY 6, ATOMIC_DISABLE 7, ADDRESS_VID 32:8 + PEER 35:33,
    /// ADDRESS_SYS 53:8, COMPTAGLINE 53:36 (Pascal/Volta) / 55:36 (Turing+), KIND 63:56.
    fn decode_pte_v2(&self, e: u64) -> Pte {
        if !bit(e, 0) {
            // §1.5: V=0 VOL=1 sparse; V=0 PRIV=1 "no valid 4K below"; otherwise invalid.
            return if bit(e, 3) {
                Pte::Sparse
            } else if bit(e, 5) {
                Pte::NoValid4k
            } else {
                Pte::Invalid
            };
        }
        let aperture = match bits(e, 2, 1) {
            0 => Aperture::Vidmem,
            1 => Aperture::Peer,
            2 => Aperture::SysCoherent,
            _ => Aperture::SysNonCoherent,
        };
        let ctl_bits = self.chip.comptagline_bits(); // 18 or 20
        let (base, peer_id, comptagline) = match aperture {
            Aperture::Vidmem | Aperture::Peer => {
                let peer = bits(e, 35, 33);
                let ctl_hi = 36 + ctl_bits - 1; // 53 or 55
                let stray_peer = aperture == Aperture::Vidmem && peer != 0;
                let above_ctl = ctl_hi < 55 && bits(e, 55, ctl_hi + 1) != 0;
                let reserved = stray_peer || above_ctl;
                if self.strict && reserved {
                    return Pte::Reserved;
                }
                let ctl = u32::try_from(bits(e, ctl_hi, 36)).unwrap_or(0);
                let peer_id = if aperture == Aperture::Peer {
                    u8::try_from(peer).unwrap_or(0)
                } else {
                    0
                };
                (bits(e, 32, 8) << 12, peer_id, ctl)
            }
            Aperture::SysCoherent | Aperture::SysNonCoherent => {
                if self.strict && bits(e, 55, 54) != 0 {
                    return Pte::Reserved;
                }
                (bits(e, 53, 8) << 12, 0, 0)
            }
        };
        Pte::Valid {
            base,
            aperture,
            peer_id,
            attrs: PteAttrs {
                uncached: bit(e, 3),
                encrypted: bit(e, 4),
                privileged: bit(e, 5),
                read_only: bit(e, 6),
                atomic_disabled: bit(e, 7),
                access_counting_disabled: false,
                pcf: None,
            },
            kind: u8::try_from(bits(e, 63, 56)).unwrap_or(0),
            comptagline,
        }
    }

    /// §2.3 v3 PTE: VALID 0, APERTURE 2:1, PCF 7:3, KIND 11:8, ADDRESS 51:12 in place,
    /// PEER_ID 63:61; 60:52 unused.
    fn decode_pte_v3(&self, e: u64) -> Pte {
        let pcf = u8::try_from(bits(e, 7, 3)).unwrap_or(0);
        if !bit(e, 0) {
            return match pcf {
                0 => Pte::Invalid,
                1 => Pte::Sparse,
                2 => Pte::Nowhere,
                3 => Pte::NoValid4k,
                _ if self.strict => Pte::Reserved,
                _ => Pte::Invalid,
            };
        }
        let aperture = match bits(e, 2, 1) {
            0 => Aperture::Vidmem,
            1 => Aperture::Peer,
            2 => Aperture::SysCoherent,
            _ => Aperture::SysNonCoherent,
        };
        let peer = u8::try_from(bits(e, 63, 61)).unwrap_or(0);
        if self.strict && (bits(e, 60, 52) != 0 || (aperture != Aperture::Peer && peer != 0)) {
            return Pte::Reserved;
        }
        Pte::Valid {
            base: e & mask(51, 12),
            aperture,
            peer_id: if aperture == Aperture::Peer { peer } else { 0 },
            attrs: PteAttrs {
                uncached: pcf & 1 != 0,
                encrypted: false,
                privileged: pcf & 2 != 0,
                read_only: pcf & 4 != 0,
                atomic_disabled: pcf & 8 != 0,
                access_counting_disabled: pcf & 16 != 0,
                pcf: Some(pcf),
            },
            kind: u8::try_from(bits(e, 11, 8)).unwrap_or(0),
            comptagline: 0,
        }
    }
}

impl Pde {
    /// The small half of a v3 dual PDE has no sparse meaning of its own.
    fn not_sparse(self) -> Pde {
        match self {
            Pde::Sparse => Pde::Invalid,
            p => p,
        }
    }
}

/// Address of `va`'s entry in the `level` table at `table`.
fn entry_addr(table: u64, level: Level, ver: MmuVersion, va: u64) -> Result<u64, Fault> {
    let off = level.index(ver, va) * level.entry_bytes();
    table
        .checked_add(off)
        .ok_or(Fault::TableOutsideVram { level, addr: table })
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

#[cfg(test)]
pub(crate) mod tests;
