//! Reading page tables for `translate`, `mappings` and the demo report, through the core's
//! walker (`nova_mm_core::walk`) over any [`VramAccess`]: a VRAM image, the simulated GPU, or a
//! live GPU's PRAMIN window. Nothing here writes.
//!
//! The walker needs a chip to decode entries. Images only say `--mmu v2|v3`, so they are decoded
//! as the newest chip of that version ([`decode_chip`]): its codec accepts every page size of
//! the version (512 MiB PTEs on v2, 256 GiB PTEs on v3), and the fields the JSON reports (address,
//! aperture, peer, read-only) are encoded the same way on every chip of a version.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::ops::ControlFlow;

use nova_mm_core::mmu::{DualPdeState, PdeState, PteAperture, PteMapping, PteState};
use nova_mm_core::walk::{self, PtFormat, Translation, WalkError, WalkItem};
use nova_mm_core::{Chip, MmuV2, MmuV3, MmuVersion, VirtAddr, VramAccess, VramAddress};

use crate::json::{Aperture, Hex, MappingJson, SparseJson, TranslateJson};
use crate::progress::Progress;

/// The chip whose codec decodes tables of MMU version `mmu` when the chip is not known: Ada for
/// v2, Blackwell GB20x for v3 (each accepts every page size of its version).
#[must_use]
pub fn decode_chip(mmu: MmuVersion) -> Chip {
    match mmu {
        MmuVersion::V2 => Chip::Ada,
        MmuVersion::V3 => Chip::BlackwellGb20x,
    }
}

/// The JSON aperture of a PTE.
#[must_use]
pub fn aperture_of(pte: &PteMapping) -> Aperture {
    match pte.aperture {
        PteAperture::Vidmem => Aperture::Vidmem,
        PteAperture::Peer => Aperture::Peer {
            id: u32::from(pte.peer_id),
        },
        PteAperture::SysmemCoherent => Aperture::SysmemCoherent,
        PteAperture::SysmemNonCoherent => Aperture::SysmemNoncoherent,
    }
}

/// Translates each VA; a VA beyond the version's VA width is reported `unmapped` (nothing can
/// map it).
///
/// # Errors
///
/// [`WalkError`] when VRAM cannot be read or the tables on the VA's path are corrupt.
pub fn translate_vas<V: VramAccess + ?Sized>(
    mmu: MmuVersion,
    chip: Chip,
    vram: &mut V,
    pdb: u64,
    vas: &[u64],
) -> Result<Vec<TranslateJson>, WalkError> {
    match mmu {
        MmuVersion::V2 => translate_as::<MmuV2, V>(chip, vram, pdb, vas),
        MmuVersion::V3 => translate_as::<MmuV3, V>(chip, vram, pdb, vas),
    }
}

fn translate_as<M: PtFormat, V: VramAccess + ?Sized>(
    chip: Chip,
    vram: &mut V,
    pdb: u64,
    vas: &[u64],
) -> Result<Vec<TranslateJson>, WalkError> {
    let root = VramAddress::new(pdb);
    vas.iter()
        .map(|&va| {
            let v = VirtAddr::new(va);
            Ok(match walk::translate::<M, V>(chip, vram, root, v) {
                Err(WalkError::VaOutOfRange(_)) | Ok(Translation::Unmapped) => {
                    TranslateJson::unmapped(va)
                }
                Ok(Translation::Sparse { .. }) => TranslateJson::sparse(va),
                Ok(t @ Translation::Mapped { size, pte, .. }) => TranslateJson::mapped(
                    va,
                    t.phys(v).unwrap_or(pte.address.raw()),
                    aperture_of(&pte),
                    size.bytes(),
                    pte.attrs.read_only,
                ),
                Err(e) => return Err(e),
            })
        })
        .collect()
}

/// Everything a whole-space walk found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Effective PTEs, in VA order.
    pub mapped: Vec<MappingJson>,
    /// Sparse ranges, in VA order (adjacent sparse entries are merged).
    pub sparse: Vec<SparseJson>,
    /// Subtrees that could not be walked: one line each.
    pub bad: Vec<String>,
    /// Tables read.
    pub tables: u64,
}

/// Walks the whole VA space of the tables at `pdb` and lists every effective PTE (dual-PD0
/// precedence applied: small PTEs hidden by a valid, blocking or sparse big PTE are not listed)
/// and every sparse range. Only present tables are read. `progress` follows the VA.
///
/// # Errors
///
/// [`WalkError`] when the root cannot be read or the tables are shared beyond reason; corrupt
/// subtrees are listed in [`Listing::bad`] instead.
pub fn list_mappings<V: VramAccess + ?Sized>(
    mmu: MmuVersion,
    chip: Chip,
    vram: &mut V,
    pdb: u64,
    progress: &Progress,
) -> Result<Listing, WalkError> {
    match mmu {
        MmuVersion::V2 => list_as::<MmuV2, V>(chip, vram, pdb, progress),
        MmuVersion::V3 => list_as::<MmuV3, V>(chip, vram, pdb, progress),
    }
}

fn list_as<M: PtFormat, V: VramAccess + ?Sized>(
    chip: Chip,
    vram: &mut V,
    pdb: u64,
    progress: &Progress,
) -> Result<Listing, WalkError> {
    let end = walk::va_end::<M>();
    progress.set_length(end);
    let mut l = Listing::default();
    let stats = walk::walk_range::<M, V>(
        chip,
        vram,
        VramAddress::new(pdb),
        VirtAddr::new(0),
        VirtAddr::new(end),
        |item| {
            match item {
                WalkItem::Mapped { va, size, pte } => {
                    progress.set_position(va.raw());
                    l.mapped.push(MappingJson::new(
                        va.raw(),
                        pte.address.raw(),
                        size.bytes(),
                        aperture_of(&pte),
                        pte.attrs.read_only,
                    ));
                }
                WalkItem::Sparse { va, len } => {
                    progress.set_position(va.raw());
                    match l.sparse.last_mut() {
                        Some(s) if s.va.0.checked_add(s.size) == Some(va.raw()) => {
                            s.size = s.size.saturating_add(len);
                        }
                        _ => l.sparse.push(SparseJson {
                            va: Hex(va.raw()),
                            size: len,
                        }),
                    }
                }
                WalkItem::Bad { va, len, error } => {
                    progress.set_position(va.raw());
                    l.bad.push(format!(
                        "VA {:#x}..{:#x} skipped: {error}",
                        va.raw(),
                        va.raw().saturating_add(len)
                    ));
                }
            }
            ControlFlow::Continue(())
        },
    )?;
    progress.finish();
    l.tables = stats.tables;
    Ok(l)
}

/// Writes the page-table tree: every table with its address, every non-empty entry with the VA
/// it covers; runs of leaf PTEs that map contiguous memory with the same attributes are shown
/// as one line. This shows the raw tables (both halves of a dual PD0 entry, hidden small PTEs
/// included), unlike the mappings list.
///
/// # Errors
///
/// The writer's error; unreadable entries are shown inline.
pub fn write_tree<V: VramAccess + ?Sized>(
    mmu: MmuVersion,
    chip: Chip,
    vram: &mut V,
    pdb: u64,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut t = Tree {
        chip,
        vram,
        out,
        budget: 0,
    };
    t.budget = (t.vram.size() / 256).saturating_add(1);
    match mmu {
        MmuVersion::V2 => t.root::<MmuV2>(pdb),
        MmuVersion::V3 => t.root::<MmuV3>(pdb),
    }
}

struct Tree<'a, V: ?Sized> {
    chip: Chip,
    vram: &'a mut V,
    out: &'a mut dyn Write,
    budget: u64,
}

/// A run of leaf PTEs being collapsed into one line.
struct Run {
    first_va: u64,
    first_index: u64,
    count: u64,
    pte: PteMapping,
    size: u64,
}

impl Run {
    fn extends(&self, index: u64, pte: &PteMapping) -> bool {
        let next_pa = self
            .pte
            .address
            .raw()
            .checked_add(self.count.saturating_mul(self.size));
        index == self.first_index.saturating_add(self.count)
            && Some(pte.address.raw()) == next_pa
            && pte.aperture == self.pte.aperture
            && pte.peer_id == self.pte.peer_id
            && pte.attrs == self.pte.attrs
    }
}

fn pte_desc(pte: &PteMapping) -> String {
    let mut s = format!("{:#x}", pte.address.raw());
    let ap = match pte.aperture {
        PteAperture::Vidmem => "vidmem".to_owned(),
        PteAperture::Peer => format!("peer{}", pte.peer_id),
        PteAperture::SysmemCoherent => "sysmem-coherent".to_owned(),
        PteAperture::SysmemNonCoherent => "sysmem-noncoherent".to_owned(),
    };
    let _ = write!(s, " {ap} {}", if pte.attrs.read_only { "ro" } else { "rw" });
    if pte.attrs.kind != 0 {
        let _ = write!(s, " kind {:#x}", pte.attrs.kind);
    }
    s
}

impl<V: VramAccess + ?Sized> Tree<'_, V> {
    fn line(&mut self, depth: usize, text: &str) -> io::Result<()> {
        writeln!(
            self.out,
            "{:indent$}{text}",
            "",
            indent = depth.saturating_mul(2)
        )
    }

    fn take_budget(&mut self) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        true
    }

    fn root<M: PtFormat>(&mut self, pdb: u64) -> io::Result<()> {
        let name = level_name(M::dir_level(0));
        self.line(0, &format!("{name} @ {pdb:#x} (root)"))?;
        self.dir::<M>(0, pdb, 0, 1)
    }

    fn read_words(&mut self, addr: u64, n: usize) -> Result<Vec<u64>, String> {
        let bytes = u64::try_from(n).unwrap_or(u64::MAX).saturating_mul(8);
        if addr.checked_add(bytes).is_none_or(|e| e > self.vram.size()) {
            return Err(format!("table at {addr:#x} is outside VRAM"));
        }
        let mut w = vec![0u64; n];
        self.vram
            .read_u64s(VramAddress::new(addr), &mut w)
            .map_err(|e| format!("cannot read table at {addr:#x}: {e}"))?;
        Ok(w)
    }

    fn dir<M: PtFormat>(
        &mut self,
        level: usize,
        table: u64,
        base: u64,
        depth: usize,
    ) -> io::Result<()> {
        if !self.take_budget() {
            return self.line(depth, "... (too many tables; tables are shared)");
        }
        let entries = M::dir_entries(level);
        let shift = M::dir_shift(level);
        let dual = walk::format::is_dual::<M>(level);
        let words_per = if dual { 2 } else { 1 };
        let n = usize::try_from(entries.saturating_mul(words_per)).unwrap_or(0);
        let words = match self.read_words(table, n) {
            Ok(w) => w,
            Err(e) => return self.line(depth, &format!("!! {e}")),
        };
        let next_name = M::dir_info(level.saturating_add(1)).map(|i| i.level);
        for i in 0..entries {
            let va = base.saturating_add(i << shift);
            let k = usize::try_from(i.saturating_mul(words_per)).unwrap_or(0);
            let lo = words.get(k).copied().unwrap_or(0);
            let hi = words.get(k.saturating_add(1)).copied().unwrap_or(0);
            if dual {
                self.dual_entry::<M>(level, i, va, [lo, hi], depth)?;
                continue;
            }
            match M::decode_upper(self.chip, level, lo) {
                Ok(PdeState::Invalid) => {}
                Ok(PdeState::Sparse) => self.line(
                    depth,
                    &format!("[{i}] va {va:#x}: sparse ({})", span_name(shift)),
                )?,
                Ok(PdeState::Pte(pte)) => self.line(
                    depth,
                    &format!(
                        "[{i}] va {va:#x}: {} PTE -> {}",
                        span_name(shift),
                        pte_desc(&pte)
                    ),
                )?,
                Ok(PdeState::Table(ptr)) => {
                    let addr = ptr.address.raw();
                    let name = next_name.map_or_else(String::new, level_name);
                    if ptr.aperture != nova_mm_core::mmu::TableAperture::Vidmem {
                        self.line(
                            depth,
                            &format!("[{i}] va {va:#x}: {name} @ {addr:#x} in system memory (not followed)"),
                        )?;
                        continue;
                    }
                    self.line(depth, &format!("[{i}] va {va:#x}: {name} @ {addr:#x}"))?;
                    self.dir::<M>(level.saturating_add(1), addr, va, depth.saturating_add(1))?;
                }
                Err(e) => self.line(
                    depth,
                    &format!("[{i}] va {va:#x}: !! malformed {lo:#018x}: {e}"),
                )?,
            }
        }
        Ok(())
    }

    fn dual_entry<M: PtFormat>(
        &mut self,
        _level: usize,
        i: u64,
        va: u64,
        raw: [u64; 2],
        depth: usize,
    ) -> io::Result<()> {
        match M::decode_dual_pde(self.chip, raw) {
            Ok(DualPdeState::Pte(pte)) => self.line(
                depth,
                &format!("[{i}] va {va:#x}: 2M PTE -> {}", pte_desc(&pte)),
            ),
            Ok(DualPdeState::Sparse) => self.line(depth, &format!("[{i}] va {va:#x}: sparse (2M)")),
            Ok(DualPdeState::Tables { big, small }) => {
                let b = big.table().map(|t| (t.address.raw(), t.aperture));
                let s = small.table().map(|t| (t.address.raw(), t.aperture));
                if b.is_none() && s.is_none() {
                    return Ok(());
                }
                let mut desc = format!("[{i}] va {va:#x}:");
                if let Some((a, _)) = b {
                    let _ = write!(desc, " big PT @ {a:#x}");
                }
                if let Some((a, _)) = s {
                    let _ = write!(desc, " small PT @ {a:#x}");
                }
                self.line(depth, &desc)?;
                let vid = nova_mm_core::mmu::TableAperture::Vidmem;
                if let Some((a, ap)) = b {
                    if ap == vid && self.take_budget() {
                        self.leaves::<M>(a, va, true, depth.saturating_add(1))?;
                    }
                }
                if let Some((a, ap)) = s {
                    if ap == vid && self.take_budget() {
                        self.leaves::<M>(a, va, false, depth.saturating_add(1))?;
                    }
                }
                Ok(())
            }
            Err(e) => self.line(
                depth,
                &format!(
                    "[{i}] va {va:#x}: !! malformed {:#018x} {:#018x}: {e}",
                    raw[0], raw[1]
                ),
            ),
        }
    }

    fn leaves<M: PtFormat>(
        &mut self,
        table: u64,
        base: u64,
        big: bool,
        depth: usize,
    ) -> io::Result<()> {
        let (n, size, label) = if big {
            (32usize, 1u64 << 16, "64K")
        } else {
            (512usize, 1u64 << 12, "4K")
        };
        let words = match self.read_words(table, n) {
            Ok(w) => w,
            Err(e) => return self.line(depth, &format!("!! {e}")),
        };
        let mut run: Option<Run> = None;
        let mut sparse_run: Option<(u64, u64)> = None;
        let mut blocked: Option<(u64, u64, u64)> = None;
        for (i, raw) in (0u64..).zip(words) {
            let va = base.saturating_add(i.saturating_mul(size));
            let st = M::decode_leaf(self.chip, raw, big);
            // Close runs that this entry does not extend.
            let cont = matches!((&run, &st), (Some(r), Ok(PteState::Valid(p))) if r.extends(i, p));
            if !cont {
                if let Some(r) = run.take() {
                    self.run_line(depth, label, &r)?;
                }
            }
            if !matches!(st, Ok(PteState::NoValid4K | PteState::MappingNowhere)) {
                if let Some((fi, fva, count)) = blocked.take() {
                    self.blocked_line(depth, label, fi, fva, count)?;
                }
            }
            if !matches!(st, Ok(PteState::Sparse)) {
                if let Some((first, count)) = sparse_run.take() {
                    self.line(depth, &format!("{label} x{count} va {first:#x}: sparse"))?;
                }
            }
            match st {
                Ok(PteState::Valid(pte)) => {
                    if let Some(r) = run.as_mut() {
                        r.count = r.count.saturating_add(1);
                    } else {
                        run = Some(Run {
                            first_va: va,
                            first_index: i,
                            count: 1,
                            pte,
                            size,
                        });
                    }
                }
                Ok(PteState::Sparse) => {
                    sparse_run =
                        Some(sparse_run.map_or((va, 1), |(f, c)| (f, c.saturating_add(1))));
                }
                Ok(PteState::NoValid4K | PteState::MappingNowhere) => {
                    blocked =
                        Some(blocked.map_or((i, va, 1), |(f, v, c)| (f, v, c.saturating_add(1))));
                }
                Ok(PteState::Invalid) => {}
                Err(e) => self.line(
                    depth,
                    &format!("{label} [{i}] va {va:#x}: !! malformed {raw:#018x}: {e}"),
                )?,
            }
        }
        if let Some(r) = run.take() {
            self.run_line(depth, label, &r)?;
        }
        if let Some((first, count)) = sparse_run {
            self.line(depth, &format!("{label} x{count} va {first:#x}: sparse"))?;
        }
        if let Some((fi, fva, count)) = blocked {
            self.blocked_line(depth, label, fi, fva, count)?;
        }
        Ok(())
    }

    fn blocked_line(
        &mut self,
        depth: usize,
        label: &str,
        first: u64,
        va: u64,
        count: u64,
    ) -> io::Result<()> {
        let idx = if count == 1 {
            format!("[{first}]")
        } else {
            format!(
                "[{first}..{}]",
                first.saturating_add(count).saturating_sub(1)
            )
        };
        self.line(
            depth,
            &format!("{label} {idx} va {va:#x}: unmapped, small PT blocked (no valid 4K)"),
        )
    }

    fn run_line(&mut self, depth: usize, label: &str, r: &Run) -> io::Result<()> {
        let text = if r.count == 1 {
            format!(
                "{label} [{}] va {:#x} -> {}",
                r.first_index,
                r.first_va,
                pte_desc(&r.pte)
            )
        } else {
            format!(
                "{label} [{}..{}] va {:#x}..{:#x} -> {}",
                r.first_index,
                r.first_index.saturating_add(r.count).saturating_sub(1),
                r.first_va,
                r.first_va.saturating_add(r.count.saturating_mul(r.size)),
                pte_desc(&r.pte)
            )
        };
        self.line(depth, &text)
    }
}

/// `PD3`, `PD0`: the hardware name of a directory level.
fn level_name(l: nova_mm_core::mmu::Level) -> String {
    format!("{l:?}").to_uppercase()
}

fn span_name(shift: u32) -> String {
    human_size(1u64.checked_shl(shift).unwrap_or(u64::MAX))
}

/// `4K`, `2M`, `512G`, `128T`: the largest binary unit that divides `bytes`, else bytes.
#[must_use]
pub fn human_size(bytes: u64) -> String {
    for (shift, unit) in [(50u32, "P"), (40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        let u = 1u64 << shift;
        if bytes >= u && bytes % u == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nova_mm_core::mmu::{PteAttrs, PteState};
    use nova_mm_core::PhysAddr;
    use nova_mm_sim::vram::SimVram;

    fn leaf<M: PtFormat>(chip: Chip, st: PteState, big: bool) -> u64 {
        M::encode_leaf(chip, &st, big).unwrap()
    }

    fn page(ap: PteAperture, pa: u64, peer: u8, ro: bool) -> PteState {
        PteState::Valid(PteMapping {
            aperture: ap,
            address: PhysAddr::new(pa),
            peer_id: peer,
            attrs: PteAttrs {
                read_only: ro,
                ..PteAttrs::NONE
            },
        })
    }

    /// Root at 0x1000, one table per level down to PD0 at VA 0; big PT at 0x10000, small PT at
    /// 0x11000. Returns the VRAM.
    fn dual_pd0_image<M: PtFormat>(chip: Chip) -> SimVram {
        let mut v = SimVram::new(64 << 20).unwrap();
        let mut table = 0x1000u64;
        for level in 0..M::DIR_LEVELS - 1 {
            let child = table + 0x1000;
            let e = M::upper_table(chip, level, VramAddress::new(child)).unwrap();
            v.write64(VramAddress::new(table), e).unwrap();
            table = child;
        }
        let words = M::dual_tables(
            chip,
            Some(VramAddress::new(0x10000)),
            Some(VramAddress::new(0x11000)),
        )
        .unwrap();
        v.write_u64s(VramAddress::new(table), &words).unwrap();
        let big = |v: &mut SimVram, i: u64, st| {
            let w = leaf::<M>(chip, st, true);
            v.write64(VramAddress::new(0x10000 + i * 8), w).unwrap();
        };
        let small = |v: &mut SimVram, i: u64, st| {
            let w = leaf::<M>(chip, st, false);
            v.write64(VramAddress::new(0x11000 + i * 8), w).unwrap();
        };
        // Big slot 0 valid: hides small 0..16.
        big(&mut v, 0, page(PteAperture::Vidmem, 0x20_0000, 0, false));
        small(&mut v, 3, page(PteAperture::Vidmem, 0x9000, 0, false));
        // Big slot 1 sparse: hides small 16..32.
        big(&mut v, 1, PteState::Sparse);
        small(&mut v, 16, page(PteAperture::Vidmem, 0xa000, 0, false));
        // Big slot 2 empty: small 32 (peer, read-only) and 33 (sysmem) are effective.
        small(&mut v, 32, page(PteAperture::Peer, 0x4000_0000, 3, true));
        small(
            &mut v,
            33,
            page(PteAperture::SysmemCoherent, 0x1_0000_0000, 0, false),
        );
        // Big slot 3 "no valid 4K": hides small 48.
        big(&mut v, 3, PteState::NoValid4K);
        small(&mut v, 48, page(PteAperture::Vidmem, 0xb000, 0, false));
        v
    }

    fn check_precedence<M: PtFormat>(chip: Chip) {
        let mut v = dual_pd0_image::<M>(chip);
        let l = list_mappings(
            M::VERSION,
            decode_chip(M::VERSION),
            &mut v,
            0x1000,
            &Progress::hidden(),
        )
        .unwrap();
        assert!(l.bad.is_empty(), "{:?}", l.bad);
        assert_eq!(
            l.mapped,
            [
                MappingJson::new(0, 0x20_0000, 0x1_0000, Aperture::Vidmem, false),
                MappingJson::new(0x2_0000, 0x4000_0000, 4096, Aperture::Peer { id: 3 }, true),
                MappingJson::new(
                    0x2_1000,
                    0x1_0000_0000,
                    4096,
                    Aperture::SysmemCoherent,
                    false
                ),
            ]
        );
        assert_eq!(
            l.sparse,
            [SparseJson {
                va: Hex(0x1_0000),
                size: 0x1_0000
            }]
        );
        let t = translate_vas(
            M::VERSION,
            decode_chip(M::VERSION),
            &mut v,
            0x1000,
            &[0x3004, 0x1_0008, 0x2_0010, 0x3_0000, 0x7fff_ffff_ffff_ffff],
        )
        .unwrap();
        assert_eq!(
            t,
            [
                TranslateJson::mapped(0x3004, 0x20_3004, Aperture::Vidmem, 0x1_0000, false),
                TranslateJson::sparse(0x1_0008),
                TranslateJson::mapped(0x2_0010, 0x4000_0010, Aperture::Peer { id: 3 }, 4096, true),
                TranslateJson::unmapped(0x3_0000),
                TranslateJson::unmapped(0x7fff_ffff_ffff_ffff),
            ]
        );
        let mut tree = Vec::new();
        write_tree(
            M::VERSION,
            decode_chip(M::VERSION),
            &mut v,
            0x1000,
            &mut tree,
        )
        .unwrap();
        let tree = String::from_utf8(tree).unwrap();
        assert!(
            tree.contains("big PT @ 0x10000 small PT @ 0x11000"),
            "{tree}"
        );
        assert!(
            tree.contains("64K [0] va 0x0 -> 0x200000 vidmem rw"),
            "{tree}"
        );
        assert!(
            tree.contains("4K [32] va 0x20000 -> 0x40000000 peer3 ro"),
            "{tree}"
        );
        assert!(
            tree.contains("64K [3] va 0x30000: unmapped, small PT blocked"),
            "{tree}"
        );
    }

    #[test]
    fn dual_pd0_precedence_v2() {
        check_precedence::<MmuV2>(Chip::Ampere);
    }

    #[test]
    fn dual_pd0_precedence_v3() {
        check_precedence::<MmuV3>(Chip::Hopper);
    }

    #[test]
    fn garbage_tables_are_reported_not_followed() {
        let mut v = SimVram::new(1 << 20).unwrap();
        // A root entry pointing far outside VRAM.
        let e = MmuV2::upper_table(Chip::Ampere, 0, VramAddress::new(0x10_0000_0000)).unwrap();
        v.write64(VramAddress::new(0), e).unwrap();
        let l = list_mappings(MmuVersion::V2, Chip::Ada, &mut v, 0, &Progress::hidden()).unwrap();
        assert!(l.mapped.is_empty());
        assert_eq!(l.bad.len(), 1, "{:?}", l.bad);
        assert!(l.bad[0].contains("outside VRAM"), "{:?}", l.bad);
        let mut tree = Vec::new();
        write_tree(MmuVersion::V2, Chip::Ada, &mut v, 0, &mut tree).unwrap();
        assert!(String::from_utf8(tree).unwrap().contains("outside VRAM"));
        assert!(translate_vas(MmuVersion::V2, Chip::Ada, &mut v, 0, &[0x1000]).is_err());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(4096), "4K");
        assert_eq!(human_size(256 << 30), "256G");
        assert_eq!(human_size(1 << 47), "128T");
        assert_eq!(human_size(12345), "12345");
    }
}
