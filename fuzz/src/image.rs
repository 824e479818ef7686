//! Arbitrary VRAM images holding page tables, for the walker and reference-MMU targets.
//!
//! Random bytes almost never form a chain of valid directory entries, so an image is built
//! from two kinds of operations: raw qwords written anywhere, and *chains* that write, for one
//! VA, a valid entry at each level from the root down to a leaf (using the core's encoders),
//! each pointing at a table page the input picks, optionally with one entry corrupted
//! afterwards. Tables may share pages, point at themselves, or lie partly outside the image;
//! the PDB may be anywhere. Images are small (at most [`MAX_PAGES`] 4 KiB pages) so that a run
//! is fast and every read can be checked against the bounds.

use arbitrary::Arbitrary;
use nova_mm_core::mmu::{
    self, DualHalf, DualPdeState, Level, LevelInfo, PdeAttrs, PdeState, PdeTable, PteState,
    TableAperture,
};
use nova_mm_core::{Chip, PhysAddr, VirtAddr};

use crate::gen::{self, ArbPteState};

/// Largest image, in 4 KiB pages.
pub const MAX_PAGES: u64 = 32;

/// A virtual address: inside the chip's VA space unless `shape` says otherwise.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ArbVa {
    /// The address bits.
    pub raw: u64,
    /// Bits 0..3: 7 leaves the address as is, anything else masks it to the VA width; bit 3:
    /// clear the low 12 bits.
    pub shape: u8,
}

impl ArbVa {
    /// The VA for a chip of `va_bits`.
    #[must_use]
    pub fn get(self, va_bits: u32) -> u64 {
        let mut v = self.raw;
        if self.shape & 7 != 7 {
            v &= (1u64 << va_bits) - 1;
        }
        if self.shape & 8 != 0 {
            v &= !0xfff;
        }
        v
    }
}

/// Where the PDB is.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ArbPdb {
    /// Page `page % pages` of the image, unless `mode & 7 == 7`.
    pub page: u8,
    /// When `mode & 7 == 7`, the PDB is `raw` (mostly outside the image or misaligned).
    pub mode: u8,
    /// Any address.
    pub raw: u64,
}

/// A leaf at the end of a chain.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ArbLeaf {
    /// Which level holds the leaf: 0 small PT, 1 big PT, 2 PD0 (2 MiB), 3 PD1 (512 MiB),
    /// 4 PD2 (256 GiB), others: stop at a random directory with a sparse or invalid entry.
    pub level: u8,
    /// The PTE state (its address is aligned to the page size).
    pub state: ArbPteState,
    /// For a small-PT leaf: also point the big half at a table (bit 0), and write this PTE
    /// state there (bit 1 set) instead of leaving the big PTE as it is.
    pub dual: u8,
    /// A second PTE for the other half (big PTE above a small leaf, or the reverse).
    pub other: ArbPteState,
}

/// One image-building operation.
#[derive(Arbitrary, Debug, Clone)]
pub enum ImageOp {
    /// Write `value` at qword `slot` (modulo the image).
    Raw {
        /// Qword index.
        slot: u16,
        /// Value.
        value: u64,
    },
    /// Write a chain of valid entries for `va` from the PDB down to `leaf`.
    Chain {
        /// The VA the chain maps.
        va: ArbVa,
        /// Table page for each level below the root (index by depth), modulo the image;
        /// for the big page table, `tables[i] >> 5` also picks the 256 B slot in the page.
        tables: [u8; 6],
        /// Table-pointer attributes (uncached, no ATS) per level, as bits.
        attrs: u8,
        /// The leaf.
        leaf: ArbLeaf,
        /// Corrupt one entry of the chain afterwards: `(depth, xor mask)`.
        corrupt: Option<(u8, u64)>,
    },
}

/// An arbitrary image and the VAs to look up in it.
#[derive(Arbitrary, Debug, Clone)]
pub struct ImageInput {
    /// Chip selector ([`gen::chip`]).
    pub chip: u8,
    /// Image size: `1 + pages % MAX_PAGES` pages.
    pub pages: u8,
    /// If bit 15 is set, the image is `8 * (tail % 512)` bytes short of whole pages.
    pub tail: u16,
    /// The PDB.
    pub pdb: ArbPdb,
    /// The building operations, in order.
    pub ops: Vec<ImageOp>,
    /// Extra VAs to look up (besides every chain's VA).
    pub vas: Vec<ArbVa>,
}

/// A built image.
#[derive(Debug, Clone)]
pub struct Image {
    /// The chip.
    pub chip: Chip,
    /// The contents, one little-endian qword per element; the image is `size` bytes.
    pub words: Vec<u64>,
    /// Size in bytes (a multiple of 8, at most `words.len() * 8`).
    pub size: u64,
    /// The PDB address.
    pub pdb: u64,
    /// The VAs to look up: every chain's VA and the input's extra VAs.
    pub vas: Vec<u64>,
}

impl Image {
    /// The qword at byte address `addr` (8-aligned, inside the image).
    #[must_use]
    pub fn word(&self, addr: u64) -> Option<u64> {
        if !addr.is_multiple_of(8) || addr >= self.size {
            return None;
        }
        let i = usize::try_from(addr / 8).ok()?;
        self.words.get(i).copied()
    }

    fn put(&mut self, addr: u64, value: u64) {
        if !addr.is_multiple_of(8) || addr.checked_add(8).is_none_or(|e| e > self.size) {
            return;
        }
        if let Some(w) = usize::try_from(addr / 8)
            .ok()
            .and_then(|i| self.words.get_mut(i))
        {
            *w = value;
        }
    }
}

/// Levels of the chip's format, root first, directories only (ending at PD0).
fn directories(chip: Chip) -> impl Iterator<Item = &'static LevelInfo> {
    mmu::levels(chip.mmu_version())
        .iter()
        .filter(|l| !l.level.is_leaf())
}

fn leaf_info(chip: Chip, level: Level) -> Option<&'static LevelInfo> {
    mmu::level_info(chip.mmu_version(), level).ok()
}

/// The PTE state with its address aligned to `page_bytes`.
fn aligned(state: PteState, page_bytes: u64) -> PteState {
    match state {
        PteState::Valid(mut m) => {
            m.address = PhysAddr::new(m.address.raw() & !(page_bytes.wrapping_sub(1)));
            PteState::Valid(m)
        }
        s => s,
    }
}

impl ImageInput {
    /// Builds the image.
    #[must_use]
    pub fn build(&self) -> Image {
        let chip = gen::chip(self.chip);
        let pages = 1 + u64::from(self.pages) % MAX_PAGES;
        let full = pages * 4096;
        let size = if self.tail & 0x8000 != 0 {
            full - 8 * (u64::from(self.tail) % 512)
        } else {
            full
        };
        let pdb = if self.pdb.mode & 7 == 7 {
            self.pdb.raw
        } else {
            (u64::from(self.pdb.page) % pages) * 4096
        };
        let mut img = Image {
            chip,
            words: vec![0; usize::try_from(full / 8).unwrap_or(0)],
            size,
            pdb,
            vas: Vec::new(),
        };
        let va_bits = chip.mmu_version().va_bits();
        for op in &self.ops {
            match op {
                ImageOp::Raw { slot, value } => {
                    let addr = (u64::from(*slot) * 8) % full;
                    img.put(addr, *value);
                }
                ImageOp::Chain {
                    va,
                    tables,
                    attrs,
                    leaf,
                    corrupt,
                } => {
                    let va = va.get(va_bits);
                    img.vas.push(va);
                    chain(&mut img, pages, va, tables, *attrs, leaf, *corrupt);
                }
            }
        }
        img.vas
            .extend(self.vas.iter().map(|v| v.get(va_bits)).take(64));
        img
    }
}

/// Writes the chain for `va`.
fn chain(
    img: &mut Image,
    pages: u64,
    va: u64,
    tables: &[u8; 6],
    attrs: u8,
    leaf: &ArbLeaf,
    corrupt: Option<(u8, u64)>,
) {
    let chip = img.chip;
    let version = chip.mmu_version();
    let leaf_level = match leaf.level % 8 {
        0 => Some(Level::PtSmall),
        1 => Some(Level::PtBig),
        2 => Some(Level::Pd0),
        3 => Some(Level::Pd1),
        4 => Some(Level::Pd2),
        _ => None,
    };
    let table_page =
        |depth: usize| -> u64 { u64::from(tables.get(depth).copied().unwrap_or(0)) % pages * 4096 };
    let pde_attrs = |depth: usize| PdeAttrs {
        uncached: attrs & (1 << (depth % 8)) != 0,
        no_ats: attrs & 0x80 != 0 && chip.has_no_ats(),
    };
    let mut written: Vec<(u64, u64)> = Vec::new();
    let mut table = img.pdb;
    for (depth, info) in directories(chip).enumerate() {
        let Ok(idx) = mmu::level_index(version, VirtAddr::new(va), info.level) else {
            return;
        };
        let Some(entry) = table.checked_add(idx as u64 * info.entry_bytes) else {
            return;
        };
        if Some(info.level) == leaf_level {
            // A large PTE here.
            let state = aligned(leaf.state.get(), info.entry_coverage());
            if let PteState::Valid(m) = state {
                let r = if info.level.is_dual() {
                    mmu::encode_dual_pde(chip, &DualPdeState::Pte(m))
                } else {
                    mmu::encode_pde(chip, info.level, &PdeState::Pte(m)).map(|v| [v, 0])
                };
                if let Ok([lo, hi]) = r {
                    img.put(entry, lo);
                    written.push((entry, lo));
                    if info.level.is_dual() {
                        img.put(entry + 8, hi);
                    }
                }
            } else if info.level.is_dual() {
                img.put(
                    entry,
                    mmu::encode_dual_pde(chip, &DualPdeState::Sparse).map_or(0, |v| v[0]),
                );
                img.put(entry + 8, 0);
            }
            break;
        }
        if leaf_level.is_none() && depth == usize::from(leaf.dual % 6) {
            // Stop here with a sparse or invalid entry.
            let sparse = leaf.dual & 0x40 != 0;
            if info.level.is_dual() {
                let s = if sparse {
                    DualPdeState::Sparse
                } else {
                    DualPdeState::INVALID
                };
                if let Ok([lo, hi]) = mmu::encode_dual_pde(chip, &s) {
                    img.put(entry, lo);
                    img.put(entry + 8, hi);
                }
            } else {
                let s = if sparse {
                    PdeState::Sparse
                } else {
                    PdeState::Invalid
                };
                if let Ok(v) = mmu::encode_pde(chip, info.level, &s) {
                    img.put(entry, v);
                }
            }
            break;
        }
        let next = table_page(depth);
        if info.level.is_dual() {
            let small_pt = next;
            let big_pt = table_page(depth + 1)
                + u64::from(tables.get(depth + 1).copied().unwrap_or(0) >> 5) * 256;
            let want_big = leaf_level == Some(Level::PtBig) || leaf.dual & 1 != 0;
            let want_small = leaf_level == Some(Level::PtSmall) || leaf.dual & 4 != 0;
            let half = |want: bool, addr: u64, a: PdeAttrs| {
                if want {
                    DualHalf::Table(PdeTable {
                        aperture: TableAperture::Vidmem,
                        address: PhysAddr::new(addr),
                        attrs: a,
                    })
                } else {
                    DualHalf::Invalid
                }
            };
            let mut a = pde_attrs(depth);
            if want_big && version == nova_mm_core::MmuVersion::V2 {
                a.no_ats = false; // bit 5 is an address bit next to a big table
            }
            let state = DualPdeState::Tables {
                big: half(want_big, big_pt, PdeAttrs { no_ats: false, ..a }),
                small: half(want_small, small_pt, a),
            };
            if let Ok([lo, hi]) = mmu::encode_dual_pde(chip, &state) {
                img.put(entry, lo);
                img.put(entry + 8, hi);
                written.push((entry, lo));
            }
            // The leaf PTEs.
            let pte = |level: Level, st: ArbPteState| {
                let info = leaf_info(chip, level)?;
                let idx = mmu::level_index(version, VirtAddr::new(va), level).ok()?;
                let state = aligned(st.get(), info.entry_coverage());
                let v = mmu::encode_pte(chip, level, &state).ok()?;
                Some((idx as u64 * 8, v))
            };
            let (main, other) = (leaf.state, leaf.other);
            let (big_state, small_state) = if leaf_level == Some(Level::PtBig) {
                (Some(main), (leaf.dual & 2 != 0).then_some(other))
            } else {
                ((leaf.dual & 2 != 0).then_some(other), Some(main))
            };
            if want_big {
                if let Some((off, v)) = big_state.and_then(|s| pte(Level::PtBig, s)) {
                    img.put(big_pt + off, v);
                    written.push((big_pt + off, v));
                }
            }
            if want_small {
                if let Some((off, v)) = small_state.and_then(|s| pte(Level::PtSmall, s)) {
                    img.put(small_pt + off, v);
                    written.push((small_pt + off, v));
                }
            }
            break;
        }
        let state = PdeState::Table(PdeTable {
            aperture: TableAperture::Vidmem,
            address: PhysAddr::new(next),
            attrs: pde_attrs(depth),
        });
        if let Ok(v) = mmu::encode_pde(chip, info.level, &state) {
            img.put(entry, v);
            written.push((entry, v));
        }
        table = next;
    }
    if let Some((depth, mask)) = corrupt {
        if let Some(&(addr, v)) = written.get(usize::from(depth) % written.len().max(1)) {
            img.put(addr, v ^ mask);
        }
    }
}
