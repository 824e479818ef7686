//! Self-tests of [`crate::vmm`] without `alloc`: map, protect, translate and unmap with 4 KiB,
//! 64 KiB and 2 MiB pages over a VRAM image in the caller's [`Scratch`], page tables from a
//! [`Buddy`] whose metadata is in the scratch too, every piece of bookkeeping in [`FixedSlab`]s
//! over scratch slices. Each operation must issue exactly one invalidate (checked with a
//! counting [`TlbInvalidate`]) at the right cache level, `Globally` acknowledged when
//! translations go away or are downgraded; unmapping everything frees every table but the root
//! and destroying the space frees the root.

use super::support::{RecordingTlb, SliceVram};
use super::{Scratch, SelfTestResult};
use crate::addr::{PageSize, VirtAddr, VramAddress};
use crate::buddy::{AllocMode, AllocRequest, Block, Buddy, BuddyParams, SliceSink};
use crate::chip::Chip;
use crate::mmu::{MmuV2, MmuV3, PteAttrs};
use crate::tlb::{AckMode, CacheLevel};
use crate::vmm::{
    AddressSpace, FixedSlab, PageTableAllocator, PhysRun, PtAllocError, SortedVa, SpaceConfig,
    SpaceKind, VaPlacement, VmmError, TABLE_BYTES,
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

/// Page tables come from the first half of the VRAM image.
const PT_POOL: u64 = 512 * 1024;

/// A [`PageTableAllocator`] over a [`Buddy`] of 4 KiB chunks.
struct BuddyTables<'a> {
    buddy: Buddy<'a>,
    /// Tables handed out and not yet returned.
    live: u32,
    /// Frees the buddy refused (double or foreign frees): must stay 0.
    bad_frees: u32,
}

impl<'a> BuddyTables<'a> {
    fn new(words: &'a mut [u64]) -> Result<Self, &'static str> {
        let p = BuddyParams {
            base_offset: 0,
            size: PT_POOL,
            chunk_size: TABLE_BYTES,
        };
        let buddy = Buddy::with_storage(p, words).map_err(|_| "vmm: table pool")?;
        Ok(Self {
            buddy,
            live: 0,
            bad_frees: 0,
        })
    }
}

impl PageTableAllocator for BuddyTables<'_> {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        let mut one = [Block::EMPTY];
        let mut sink = SliceSink::new(&mut one);
        let req = AllocRequest::new(AllocMode::Simple, TABLE_BYTES, TABLE_BYTES);
        self.buddy
            .alloc_into(&req, &mut sink)
            .map_err(|_| PtAllocError::OutOfMemory)?;
        let [b] = one;
        self.live = self.live.saturating_add(1);
        Ok(VramAddress::new(b.offset()))
    }

    fn free_table(&mut self, addr: VramAddress) {
        if self.buddy.free_at(addr.raw(), 0, false).is_ok() {
            self.live = self.live.saturating_sub(1);
        } else {
            self.bad_frees = self.bad_frees.saturating_add(1);
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

/// Map `len` bytes at `va` to VRAM `pa` with pages of `size`, protect read-only, unmap; the
/// expected first-map cache level is `first_level` (a fresh space writes the root entry).
fn roundtrip<M: PtFormat>(
    sc: &mut Scratch<'_>,
    chip: Chip,
    (va, len, pa): (u64, u64, u64),
    size: PageSize,
    first_level: CacheLevel,
) -> SelfTestResult {
    let Scratch {
        vram: vram_words,
        words,
        nodes,
        kids,
        ivs,
        segs,
        ..
    } = sc;
    let mut vram = SliceVram::new(vram_words);
    let mut alloc = BuddyTables::new(words)?;
    let mut tlb = RecordingTlb::default();
    let mut s = AddressSpace::<M, _, _, _>::new(
        cfg(chip),
        FixedSlab::new(nodes),
        FixedSlab::new(kids),
        SortedVa::new(FixedSlab::new(ivs)),
        &mut alloc,
        &mut vram,
    )
    .map_err(|_| "vmm: new")?;
    st_eq!(alloc.live, 1);
    let runs = [PhysRun::vram(VramAddress::new(pa), len)];
    let (m, st) = s
        .map(
            &mut alloc,
            &mut vram,
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
    check_mapped(&s, &mut vram, (va, len, pa), size, false)?;
    // Just before and after: unmapped.
    st_ensure!(matches!(
        s.translate(&mut vram, VirtAddr::new(va.saturating_add(len))),
        Ok(Translation::Unmapped)
    ));
    // Overlapping map: a typed error, no invalidate.
    st_ensure!(s
        .map(
            &mut alloc,
            &mut vram,
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
            &mut vram,
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
    check_mapped(&s, &mut vram, (va, len, pa), size, true)?;
    // Unmap: one invalidate, Globally, every table but the root freed.
    let st = s
        .unmap_in(
            &mut alloc,
            &mut vram,
            &mut tlb,
            m,
            FixedSlab::new(&mut segs[..]),
        )
        .map_err(|_| "vmm: unmap")?;
    st_eq!(st.invalidates, 1);
    st_eq!(tlb.calls, 3);
    st_ensure!(tlb.last.is_some_and(|r| r.ack == AckMode::Globally));
    st_ensure!(matches!(
        s.translate(&mut vram, VirtAddr::new(va)),
        Ok(Translation::Unmapped)
    ));
    st_eq!(s.table_count(), 1);
    st_eq!(alloc.live, 1);
    s.destroy(&mut alloc);
    st_eq!(alloc.live, 0);
    st_eq!(alloc.bad_frees, 0);
    st_ensure!(alloc.buddy.leak_report().is_none());
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
        words,
        nodes,
        kids,
        ivs,
        segs,
        ..
    } = sc;
    let mut vram = SliceVram::new(vram_words);
    let mut alloc = BuddyTables::new(words)?;
    let mut tlb = RecordingTlb::default();
    let mut s = AddressSpace::<MmuV3, _, _, _>::new(
        cfg(Chip::Hopper),
        FixedSlab::new(nodes.get_mut(..8).ok_or("nodes")?),
        FixedSlab::new(kids.get_mut(..5).ok_or("kids")?),
        SortedVa::new(FixedSlab::new(ivs.get_mut(..4).ok_or("ivs")?)),
        &mut alloc,
        &mut vram,
    )
    .map_err(|_| "vmm: new")?;
    let runs = [PhysRun::vram(VramAddress::new(0x100_0000), 0x3000)];
    let (m, _) = s
        .map(
            &mut alloc,
            &mut vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(0x1000)),
            &runs,
            PteAttrs::default(),
            None,
        )
        .map_err(|_| "vmm: map")?;
    let live = alloc.live;
    let e = s.map(
        &mut alloc,
        &mut vram,
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
        &s,
        &mut vram,
        (0x1000, 0x3000, 0x100_0000),
        PageSize::Size4K,
        false,
    )?;
    s.unmap_in(
        &mut alloc,
        &mut vram,
        &mut tlb,
        m,
        FixedSlab::new(&mut segs[..]),
    )
    .map_err(|_| "vmm: unmap")?;
    st_eq!(s.table_count(), 1);
    s.destroy(&mut alloc);
    st_eq!(alloc.live, 0);
    Ok(())
}
