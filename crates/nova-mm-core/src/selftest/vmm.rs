//! Self-tests of [`crate::vmm`] without `alloc`: map, protect, translate and unmap with 4 KiB,
//! 64 KiB and 2 MiB pages over a VRAM image in the caller's [`Scratch`], page tables from a
//! simple bitmap allocator, every piece of bookkeeping in [`FixedSlab`]s
//! over scratch slices. Each operation must issue exactly one invalidate (checked with a
//! counting [`TlbInvalidate`]) at the right cache level, `Globally` acknowledged when
//! translations go away or are downgraded; unmapping everything frees every table but the root
//! and destroying the space frees the root.

use super::support::{RecordingTlb, SliceVram};
use super::{Scratch, SelfTestResult};
use crate::addr::{PageSize, VirtAddr, VramAddress};
use crate::chip::Chip;
use crate::mmu::{MmuV2, MmuV3, PteAttrs};
use crate::tlb::{AckMode, CacheLevel};
use crate::vmm::{
    AddressSpace, FixedSlab, Kids, Node, PageTableAllocator, PhysRun, PtAllocError, Seg, SortedVa,
    SpaceConfig, SpaceKind, VaInterval, VaPlacement, VmmError, TABLE_BYTES,
};
use crate::walk::{PtFormat, Translation};
use crate::{st_ensure, st_eq};

pub(crate) const TESTS: &[super::SelfTest] = crate::selftests!(
    "vmm",
    scratch [
        v2_4k_pages,
        v2_64k_pages,
        v2_2m_pages,
        v3_4k_pages,
        v3_64k_pages,
        v3_2m_pages,
        out_of_storage_leaks_nothing,
    ]
);

/// Page tables come from the first half of the VRAM image: 128 tables of 4 KiB (512 KiB).
const POOL_TABLES: u32 = 128;

/// A [`PageTableAllocator`] handing out the 4 KiB tables of the pool from a bitmap.
///
/// Not the VRAM [`crate::buddy::Buddy`]: written when a `Buddy` was about 11 KiB by value (too
/// big for the kernel stack next to an `AddressSpace`); it is now about 3 KiB, but a bitmap
/// keeps these tests independent of the allocator.
struct BitmapTables {
    used: [u64; 2],
    /// Tables handed out and not yet returned.
    live: u32,
    /// Frees of tables that were not handed out: must stay 0.
    bad_frees: u32,
}

impl BitmapTables {
    fn new() -> Self {
        Self {
            used: [0; 2],
            live: 0,
            bad_frees: 0,
        }
    }
}

impl PageTableAllocator for BitmapTables {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        for (w, word) in self.used.iter_mut().enumerate() {
            if *word != u64::MAX {
                let bit = (!*word).trailing_zeros();
                *word |= 1u64 << bit;
                self.live = self.live.saturating_add(1);
                let index = u64::try_from(w)
                    .unwrap_or(0)
                    .saturating_mul(64)
                    .saturating_add(u64::from(bit));
                return Ok(VramAddress::new(index.saturating_mul(TABLE_BYTES)));
            }
        }
        Err(PtAllocError::OutOfMemory)
    }

    fn free_table(&mut self, addr: VramAddress) {
        let index = addr.raw() / TABLE_BYTES;
        let ok = addr.raw() % TABLE_BYTES == 0 && index < u64::from(POOL_TABLES);
        let w = usize::try_from(index / 64).unwrap_or(usize::MAX);
        let mask = 1u64 << (index % 64);
        match self.used.get_mut(w) {
            Some(word) if ok && *word & mask != 0 => {
                *word &= !mask;
                self.live = self.live.saturating_sub(1);
            }
            _ => self.bad_frees = self.bad_frees.saturating_add(1),
        }
    }
}

fn cfg(chip: Chip) -> SpaceConfig {
    SpaceConfig {
        chip,
        va_start: 0,
        va_end: 1 << 48,
        kind: SpaceKind::Gpu,
    }
}

/// Every probe of `[va, va + len)` translates to `pa + offset` with pages of `size`.
#[inline(never)]
fn check_mapped<M: PtFormat, N, K, V>(
    s: &AddressSpace<M, N, K, V>,
    vram: &mut SliceVram<'_>,
    (va, len, pa): (u64, u64, u64),
    size: PageSize,
    ro: bool,
) -> SelfTestResult
where
    N: crate::vmm::Slab<crate::vmm::Node>,
    K: crate::vmm::Slab<crate::vmm::Kids>,
    V: crate::vmm::VaRanges,
{
    // Probes: every page start and a point inside it, at most 64 of them.
    let step = size.bytes().max(len / 32).max(4096);
    let mut off = 0u64;
    while off < len {
        for probe in [
            off,
            off.saturating_add(size.bytes() / 2)
                .min(len.saturating_sub(1))
                & !0xFFF,
        ] {
            let v = VirtAddr::new(va.saturating_add(probe));
            let t = s.translate(vram, v).map_err(|_| "vmm: translate failed")?;
            let Translation::Mapped { size: got, pte, .. } = t else {
                return Err("vmm: VA not mapped");
            };
            st_eq!(got, size);
            st_eq!(t.phys(v), Some(pa.saturating_add(probe)));
            st_eq!(pte.attrs.read_only, ro);
        }
        off = off.saturating_add(step);
    }
    Ok(())
}

/// The address space of these tests: every piece of bookkeeping in fixed scratch storage.
type Space<'a, M> =
    AddressSpace<M, FixedSlab<'a, Node>, FixedSlab<'a, Kids>, SortedVa<FixedSlab<'a, VaInterval>>>;

/// Creates the space. An `AddressSpace` holds a 4 KiB table image, so every copy of it on the
/// stack counts: the caller keeps the one `Result` this returns and works through `as_mut`.
#[inline(never)]
fn create<'a, M: PtFormat>(
    chip: Chip,
    (nodes, kids, ivs): (&'a mut [Node], &'a mut [Kids], &'a mut [VaInterval]),
    alloc: &mut BitmapTables,
    vram: &mut SliceVram<'_>,
) -> Result<Space<'a, M>, VmmError> {
    AddressSpace::new(
        cfg(chip),
        FixedSlab::new(nodes),
        FixedSlab::new(kids),
        SortedVa::new(FixedSlab::new(ivs)),
        alloc,
        vram,
    )
}

/// Destroys the space in `made` (which frees its root) in a frame of its own, where the
/// space is moved out.
#[inline(never)]
fn destroy<M: PtFormat>(made: &mut Result<Space<'_, M>, VmmError>, alloc: &mut BitmapTables) {
    if let Ok(s) = core::mem::replace(made, Err(VmmError::BadRange)) {
        s.destroy(alloc);
    }
}

/// Map `len` bytes at `va` to VRAM `pa` with pages of `size`, protect read-only, unmap; the
/// expected first-map cache level is `first_level` (a fresh space writes the root entry).
fn roundtrip<M: PtFormat>(
    sc: &mut Scratch<'_>,
    chip: Chip,
    run: (u64, u64, u64),
    size: PageSize,
    first_level: CacheLevel,
) -> SelfTestResult {
    let Scratch {
        vram: vram_words,
        nodes,
        kids,
        ivs,
        segs,
        ..
    } = sc;
    let mut vram = SliceVram::new(vram_words);
    let mut alloc = BitmapTables::new();
    let mut made = create::<M>(chip, (nodes, kids, ivs), &mut alloc, &mut vram);
    let outcome = match made.as_mut() {
        Ok(s) if alloc.live == 1 => {
            exercise(s, &mut alloc, &mut vram, segs, run, size, first_level)
        }
        Ok(_) => Err("vmm: new allocated other than one root"),
        Err(_) => Err("vmm: new"),
    };
    destroy(&mut made, &mut alloc);
    outcome?;
    st_eq!(alloc.live, 0);
    st_eq!(alloc.bad_frees, 0);
    st_eq!(alloc.used, [0, 0]);
    Ok(())
}

#[inline(never)]
fn exercise<M: PtFormat>(
    s: &mut Space<'_, M>,
    alloc: &mut BitmapTables,
    vram: &mut SliceVram<'_>,
    segs: &mut [Seg],
    (va, len, pa): (u64, u64, u64),
    size: PageSize,
    first_level: CacheLevel,
) -> SelfTestResult {
    let mut tlb = RecordingTlb::default();
    let runs = [PhysRun::vram(VramAddress::new(pa), len)];
    let (m, st) = s
        .map(
            alloc,
            vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(va)),
            &runs,
            PteAttrs::default(),
            Some(size),
        )
        .map_err(|_| "vmm: map")?;
    st_eq!(st.invalidates, 1);
    st_eq!(tlb.calls, 1);
    st_eq!(st.cache_level, Some(first_level));
    st_ensure!(tlb
        .last
        .is_some_and(|r| r.cache_level == first_level && !r.hub_tlb_only));
    st_eq!(Some(st.leaves), len.checked_div(size.bytes()));
    check_mapped(s, vram, (va, len, pa), size, false)?;
    // Just after: unmapped.
    st_ensure!(matches!(
        s.translate(vram, VirtAddr::new(va.saturating_add(len))),
        Ok(Translation::Unmapped)
    ));
    // Overlapping map: a typed error, no invalidate.
    st_ensure!(s
        .map(
            alloc,
            vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(va)),
            &runs,
            PteAttrs::default(),
            Some(size),
        )
        .is_err());
    st_eq!(tlb.calls, 1);
    // Protect read-only: leaves only, one invalidate, acknowledged globally (a downgrade).
    let ro = PteAttrs {
        read_only: true,
        ..PteAttrs::default()
    };
    let st = s
        .protect_in(
            vram,
            &mut tlb,
            VirtAddr::new(va),
            len,
            ro,
            FixedSlab::new(&mut segs[..]),
        )
        .map_err(|_| "vmm: protect")?;
    st_eq!(st.invalidates, 1);
    st_eq!(tlb.calls, 2);
    // A leaf in PD0 (2 MiB) is a directory-level entry: its level covers PD0.
    let leaf_level = if size == PageSize::Size2M {
        CacheLevel::UpToPde0
    } else {
        CacheLevel::PteOnly
    };
    st_eq!(st.cache_level, Some(leaf_level));
    st_ensure!(tlb.last.is_some_and(|r| r.ack == AckMode::Globally));
    check_mapped(s, vram, (va, len, pa), size, true)?;
    // Unmap: one invalidate, Globally, every table but the root freed.
    let st = s
        .unmap_in(alloc, vram, &mut tlb, m, FixedSlab::new(&mut segs[..]))
        .map_err(|_| "vmm: unmap")?;
    st_eq!(st.invalidates, 1);
    st_eq!(tlb.calls, 3);
    st_ensure!(tlb.last.is_some_and(|r| r.ack == AckMode::Globally));
    st_ensure!(matches!(
        s.translate(vram, VirtAddr::new(va)),
        Ok(Translation::Unmapped)
    ));
    st_eq!(s.table_count(), 1);
    st_eq!(alloc.live, 1);
    Ok(())
}

// Physical pages live above the page-table pool (they need no backing: only entries are
// written). v2 has five levels counted from the root (PD3 = root), v3 six (PD4 = root).

fn v2_4k_pages(s: &mut Scratch<'_>) -> SelfTestResult {
    roundtrip::<MmuV2>(
        s,
        Chip::Turing,
        (0x1234_5000, 0x5000, 0x80_0000),
        PageSize::Size4K,
        CacheLevel::UpToPde3,
    )
}

fn v2_64k_pages(s: &mut Scratch<'_>) -> SelfTestResult {
    roundtrip::<MmuV2>(
        s,
        Chip::Ampere,
        (0x4_0003_0000, 0x4_0000, 0x100_0000),
        PageSize::Size64K,
        CacheLevel::UpToPde3,
    )
}

fn v2_2m_pages(s: &mut Scratch<'_>) -> SelfTestResult {
    roundtrip::<MmuV2>(
        s,
        Chip::Pascal,
        (0x20_0060_0000, 0x60_0000, 0x200_0000),
        PageSize::Size2M,
        CacheLevel::UpToPde3,
    )
}

fn v3_4k_pages(s: &mut Scratch<'_>) -> SelfTestResult {
    roundtrip::<MmuV3>(
        s,
        Chip::Hopper,
        (0x7_0000_1000, 0x3000, 0x80_0000),
        PageSize::Size4K,
        CacheLevel::UpToPde4,
    )
}

fn v3_64k_pages(s: &mut Scratch<'_>) -> SelfTestResult {
    roundtrip::<MmuV3>(
        s,
        Chip::Hopper,
        (0x8000_0000_0000, 0x2_0000, 0x120_0000),
        PageSize::Size64K,
        CacheLevel::UpToPde4,
    )
}

fn v3_2m_pages(s: &mut Scratch<'_>) -> SelfTestResult {
    roundtrip::<MmuV3>(
        s,
        Chip::BlackwellGb20x,
        (0x40_0000, 0x40_0000, 0x4000_0000),
        PageSize::Size2M,
        CacheLevel::UpToPde4,
    )
}

/// Bookkeeping storage that runs out is a typed error ([`VmmError::NoRoom`]) that leaks no
/// page table, as in the host's fixed-storage test.
fn out_of_storage_leaks_nothing(sc: &mut Scratch<'_>) -> SelfTestResult {
    let Scratch {
        vram: vram_words,
        nodes,
        kids,
        ivs,
        segs,
        ..
    } = sc;
    let mut vram = SliceVram::new(vram_words);
    let mut alloc = BitmapTables::new();
    let small = (
        nodes.get_mut(..8).ok_or("nodes")?,
        kids.get_mut(..5).ok_or("kids")?,
        ivs.get_mut(..4).ok_or("ivs")?,
    );
    let mut made = create::<MmuV3>(Chip::Hopper, small, &mut alloc, &mut vram);
    let outcome = match made.as_mut() {
        Ok(s) => run_out(s, &mut alloc, &mut vram, segs),
        Err(_) => Err("vmm: new"),
    };
    destroy(&mut made, &mut alloc);
    outcome?;
    st_eq!(alloc.live, 0);
    st_eq!(alloc.bad_frees, 0);
    Ok(())
}

#[inline(never)]
fn run_out(
    s: &mut Space<'_, MmuV3>,
    alloc: &mut BitmapTables,
    vram: &mut SliceVram<'_>,
    segs: &mut [Seg],
) -> SelfTestResult {
    let mut tlb = RecordingTlb::default();
    let runs = [PhysRun::vram(VramAddress::new(0x100_0000), 0x3000)];
    let (m, _) = s
        .map(
            alloc,
            vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(0x1000)),
            &runs,
            PteAttrs::default(),
            None,
        )
        .map_err(|_| "vmm: map")?;
    // v3 needs PD3, PD2, PD1, PD0 and a small table: 6 nodes with the root, 5 child arrays.
    // A second mapping far away needs 4 more directories: out of storage, nothing leaks.
    let live = alloc.live;
    let e = s.map(
        alloc,
        vram,
        &mut tlb,
        VaPlacement::Fixed(VirtAddr::new(0x8000_0000_0000)),
        &runs,
        PteAttrs::default(),
        None,
    );
    st_ensure!(matches!(e, Err(VmmError::NoRoom(_))));
    st_eq!(alloc.live, live);
    st_eq!(tlb.calls, 1);
    check_mapped(
        s,
        vram,
        (0x1000, 0x3000, 0x100_0000),
        PageSize::Size4K,
        false,
    )?;
    s.unmap_in(alloc, vram, &mut tlb, m, FixedSlab::new(segs))
        .map_err(|_| "vmm: unmap")?;
    st_eq!(s.table_count(), 1);
    Ok(())
}
