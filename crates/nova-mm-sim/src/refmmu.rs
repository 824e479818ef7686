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
//!   entry is invalid faults as [`Fault::InvalidPte`] at the big page table (the 64 KiB page
//!   is unmapped); [`Fault::PdeInvalid`] at PD0 means both halves are invalid.
//! - Strict mode (the default) faults on bits the formats reserve (peer bits in vidmem PDEs and
//!   PTEs, bits above the address fields, bits 11:6 and the undefined PCF values 4..7 (bit 5)
//!   of v3 PDE pointers, the low bits no field of §1.2/§1.3 names in valid v2 pointers: upper
//!   PDE bits 4, 6, 7 and bit 5 on Pascal, which has no NO_ATS, and dual-PDE small-half bits 64
//!   and 68..71, a non-zero high qword beside a 2 MiB PTE) and on large-page addresses
//!   not aligned to the page size. Lenient mode ignores reserved bits and masks the low address
//!   bits of large pages.
//! - Table addresses: the PDB must be 4 KiB aligned; a table entry that lies (partly) outside the
//!   VRAM faults as [`Fault::TableOutsideVram`]; a table in system memory cannot be followed by
//!   the simulator and faults as [`Fault::PageTableInSysmem`].

mod decode;
mod regions;
mod types;

use nova_mm_core::{
    Chip, MmuVersion, PageSize, PdbAperture, PhysAddr, VirtAddr, VramAccess, VramAddress,
};

pub use types::{
    Access, AccessKind, Aperture, Fault, Level, Mapping, Pdb, PteAttrs, Translation, Walk, WalkStep,
};

use crate::vram::SimVram;
use decode::{Pde, Pte};

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
            // The big PTE deferred (or there is no big PT) and there is no small PT: the 64 KiB
            // page is unmapped. (Both halves invalid was handled above as a PD0 fault.)
            Pde::Invalid | Pde::Sparse | Pde::Reserved => Err(Fault::InvalidPte {
                level: Level::BigPt,
            }),
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
}

/// Address of `va`'s entry in the `level` table at `table`.
fn entry_addr(table: u64, level: Level, ver: MmuVersion, va: u64) -> Result<u64, Fault> {
    let off = level.index(ver, va) * level.entry_bytes();
    table
        .checked_add(off)
        .ok_or(Fault::TableOutsideVram { level, addr: table })
}

#[cfg(test)]
pub(crate) mod tests;
