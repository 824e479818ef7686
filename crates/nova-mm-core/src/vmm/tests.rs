//! Unit tests of the manager against the core's own walker, on a simple in-memory VRAM. The
//! cross-checks against the simulator's independent reference MMU and TLB model are in
//! `tests/tests/vmm_*.rs`.

extern crate std;

use std::collections::BTreeMap;
use std::vec::Vec;

use super::*;
use crate::mmu::{MmuFormat, MmuV2, MmuV3, PteMapping, PteState};
use crate::tlb::{AckMode, InvalidateRequest};
use crate::walk::Translation;

/// Sparse VRAM with counters and a fault on the k-th access.
pub(crate) struct MemVram {
    pub pages: BTreeMap<u64, Vec<u64>>,
    pub size: u64,
    pub reads: u64,
    pub writes: u64,
    pub calls: u64,
    pub fail_at: Option<u64>,
}

impl MemVram {
    pub fn new(size: u64) -> Self {
        Self {
            pages: BTreeMap::new(),
            size,
            reads: 0,
            writes: 0,
            calls: 0,
            fail_at: None,
        }
    }
    fn tick(&mut self) -> Result<(), VramError> {
        self.calls += 1;
        if self.fail_at == Some(self.calls) {
            return Err(VramError::Backend(-5));
        }
        Ok(())
    }
    fn word(&mut self, a: u64) -> &mut u64 {
        let p = self
            .pages
            .entry(a >> 12)
            .or_insert_with(|| std::vec![0; 512]);
        &mut p[((a & 0xfff) >> 3) as usize]
    }
}

impl VramAccess for MemVram {
    fn size(&self) -> u64 {
        self.size
    }
    fn read32(&mut self, _: VramAddress) -> Result<u32, VramError> {
        Err(VramError::Backend(-1))
    }
    fn write32(&mut self, _: VramAddress, _: u32) -> Result<(), VramError> {
        Err(VramError::Backend(-1))
    }
    fn read64(&mut self, addr: VramAddress) -> Result<u64, VramError> {
        crate::vram::check_access(addr, 8, 8, self.size)?;
        self.tick()?;
        self.reads += 1;
        Ok(*self.word(addr.raw()))
    }
    fn write64(&mut self, addr: VramAddress, v: u64) -> Result<(), VramError> {
        crate::vram::check_access(addr, 8, 8, self.size)?;
        self.tick()?;
        self.writes += 1;
        *self.word(addr.raw()) = v;
        Ok(())
    }
    fn read_u64s(&mut self, addr: VramAddress, out: &mut [u64]) -> Result<(), VramError> {
        crate::vram::check_access(addr, out.len() as u64 * 8, 8, self.size)?;
        self.tick()?;
        self.reads += 1;
        for (i, o) in out.iter_mut().enumerate() {
            *o = *self.word(addr.raw() + i as u64 * 8);
        }
        Ok(())
    }
    fn write_u64s(&mut self, addr: VramAddress, w: &[u64]) -> Result<(), VramError> {
        crate::vram::check_access(addr, w.len() as u64 * 8, 8, self.size)?;
        self.tick()?;
        self.writes += 1;
        for (i, &v) in w.iter().enumerate() {
            *self.word(addr.raw() + i as u64 * 8) = v;
        }
        Ok(())
    }
    fn fill_u64(&mut self, addr: VramAddress, v: u64, n: u64) -> Result<(), VramError> {
        crate::vram::check_access(addr, n * 8, 8, self.size)?;
        self.tick()?;
        self.writes += 1;
        for i in 0..n {
            *self.word(addr.raw() + i * 8) = v;
        }
        Ok(())
    }
}

/// A free-list page-table allocator over `[base, base + n * 4K)`.
pub(crate) struct ListAlloc {
    pub free: Vec<u64>,
    pub total: usize,
    pub allocs: u64,
    pub fail_at: Option<u64>,
}

impl ListAlloc {
    pub fn new(base: u64, n: usize) -> Self {
        Self {
            free: (0..n as u64).rev().map(|i| base + i * 4096).collect(),
            total: n,
            allocs: 0,
            fail_at: None,
        }
    }
    pub fn used(&self) -> usize {
        self.total - self.free.len()
    }
}

impl PageTableAllocator for ListAlloc {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        self.allocs += 1;
        if self.fail_at == Some(self.allocs) {
            return Err(PtAllocError::OutOfMemory);
        }
        self.free
            .pop()
            .map(VramAddress::new)
            .ok_or(PtAllocError::OutOfMemory)
    }
    fn free_table(&mut self, addr: VramAddress) {
        assert!(!self.free.contains(&addr.raw()), "double free {addr}");
        self.free.push(addr.raw());
    }
}

#[derive(Default)]
pub(crate) struct LogTlb {
    pub reqs: Vec<InvalidateRequest>,
    pub fail: bool,
}

impl TlbInvalidate for LogTlb {
    fn invalidate(&mut self, req: &InvalidateRequest) -> Result<(), TlbError> {
        if self.fail {
            return Err(TlbError::Timeout);
        }
        self.reqs.push(*req);
        Ok(())
    }
}

const VRAM: u64 = 1 << 40;
const PT_BASE: u64 = 0x1_0000_0000;

fn cfg(chip: Chip) -> SpaceConfig {
    SpaceConfig {
        chip,
        va_start: 0,
        va_end: 1 << 48,
        kind: SpaceKind::Gpu,
    }
}

fn setup<M: PtFormat>(chip: Chip) -> (VecAddressSpace<M>, MemVram, ListAlloc, LogTlb) {
    let mut vram = MemVram::new(VRAM);
    let mut alloc = ListAlloc::new(PT_BASE, 4096);
    let s = VecAddressSpace::<M>::new_vec(cfg(chip), &mut alloc, &mut vram).unwrap();
    (s, vram, alloc, LogTlb::default())
}

fn check_mapped<M: PtFormat, N: Slab<Node>, K: Slab<Kids>, V: VaRanges>(
    s: &AddressSpace<M, N, K, V>,
    vram: &mut MemVram,
    va: u64,
    len: u64,
    pa: u64,
    size: PageSize,
    ro: bool,
) {
    let mut v = va;
    while v < va + len {
        match s.translate(vram, VirtAddr::new(v)).unwrap() {
            t @ Translation::Mapped { size: got, pte, .. } => {
                assert_eq!(got, size, "page size at {v:#x}");
                assert_eq!(
                    t.phys(VirtAddr::new(v)),
                    Some(pa + (v - va)),
                    "pa at {v:#x}"
                );
                assert_eq!(pte.attrs.read_only, ro);
            }
            t => panic!("{v:#x}: {t:?}"),
        }
        // Two probes per page: its start and somewhere inside.
        v += if size.bytes() <= 0x2000 {
            size.bytes()
        } else if (v - va) % size.bytes() == 0 {
            size.bytes() / 2 + 0x1000
        } else {
            size.bytes() / 2 - 0x1000
        };
    }
}

fn roundtrip<M: PtFormat>(chip: Chip, va: u64, pa: u64, len: u64, expect: PageSize) {
    let (mut s, mut vram, mut alloc, mut tlb) = setup::<M>(chip);
    let base_used = alloc.used();
    let runs = [PhysRun::vram(VramAddress::new(pa), len)];
    let (m, st) = s
        .map(
            &mut alloc,
            &mut vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(va)),
            &runs,
            PteAttrs::default(),
            None,
        )
        .unwrap();
    assert_eq!(st.invalidates, 1);
    assert_eq!(tlb.reqs.len(), 1);
    check_mapped(&s, &mut vram, va, len, pa, expect, false);
    // Walk reports exactly the pages.
    let mut n = 0u64;
    s.for_each_mapping(&mut vram, VirtAddr::new(0), VirtAddr::new(1 << 48), |it| {
        match it {
            WalkItem::Mapped { size, .. } => {
                assert_eq!(size, expect);
                n += size.bytes();
            }
            other => panic!("{other:?}"),
        }
        core::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, len);
    let st = s
        .protect(
            &mut vram,
            &mut tlb,
            VirtAddr::new(va),
            len,
            PteAttrs {
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(st.invalidates, 1);
    check_mapped(&s, &mut vram, va, len, pa, expect, true);
    let st = s.unmap(&mut alloc, &mut vram, &mut tlb, m).unwrap();
    assert_eq!(st.invalidates, 1);
    assert_eq!(tlb.reqs.len(), 3);
    assert_eq!(tlb.reqs[2].ack, AckMode::Globally);
    assert_eq!(
        s.translate(&mut vram, VirtAddr::new(va)).unwrap(),
        Translation::Unmapped
    );
    assert_eq!(s.table_count(), 1, "only the root remains");
    assert_eq!(alloc.used(), base_used);
    s.destroy(&mut alloc);
    assert_eq!(alloc.used(), 0);
}

/// A few pages on each MMU version: small enough for miri, which skips the larger tests.
#[test]
fn small_round_trips_v2_and_v3() {
    roundtrip::<MmuV2>(Chip::Turing, 0x10_0000, 0x20_0000, 0x3000, PageSize::Size4K);
    roundtrip::<MmuV3>(
        Chip::Hopper,
        0x20_0000,
        0x40_0000,
        0x2_0000,
        PageSize::Size64K,
    );
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn every_page_size_round_trips() {
    roundtrip::<MmuV2>(
        Chip::Turing,
        0x10_0000_0000,
        0x4000_0000,
        0x3000,
        PageSize::Size4K,
    );
    roundtrip::<MmuV2>(
        Chip::Turing,
        0x10_0000_0000,
        0x4000_0000,
        0x30000,
        PageSize::Size64K,
    );
    roundtrip::<MmuV2>(
        Chip::Turing,
        0x10_0000_0000,
        0x4000_0000,
        0x40_0000,
        PageSize::Size2M,
    );
    roundtrip::<MmuV2>(
        Chip::Turing,
        0x10_0000_0000,
        0x4000_0000,
        0x4000_0000,
        PageSize::Size2M,
    );
    roundtrip::<MmuV2>(
        Chip::Ampere,
        0x10_0000_0000,
        0x4000_0000,
        0x4000_0000,
        PageSize::Size512M,
    );
    roundtrip::<MmuV3>(
        Chip::Hopper,
        0x10_0000_0000,
        0x4000_0000,
        0x3000,
        PageSize::Size4K,
    );
    roundtrip::<MmuV3>(
        Chip::Hopper,
        0x10_0000_0000,
        0x4000_0000,
        0x30000,
        PageSize::Size64K,
    );
    roundtrip::<MmuV3>(
        Chip::Hopper,
        0x10_0000_0000,
        0x4000_0000,
        0x4000_0000,
        PageSize::Size512M,
    );
    roundtrip::<MmuV3>(
        Chip::BlackwellGb20x,
        0x40_0000_0000,
        0x40_0000_0000,
        0x40_0000_0000,
        PageSize::Size256G,
    );
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn mixed_sizes_and_dual_precedence() {
    for chip in [Chip::Turing, Chip::Hopper] {
        mixed::<MmuV2>(chip, Chip::Turing);
        mixed::<MmuV3>(chip, Chip::Hopper);
    }
}

fn mixed<M: PtFormat>(chip: Chip, want: Chip) {
    if chip != want {
        return;
    }
    let (mut s, mut vram, mut alloc, mut tlb) = setup::<M>(chip);
    // 4K, then 64K pieces, then 4K in one 2 MiB region: both page tables under one PD0 entry.
    let va = 0x20_0000u64 * 10 + 0xf000;
    let pa = 0x800_0000u64 + 0xf000;
    let len = 0x1000 + 0x20000 + 0x3000;
    let runs = [PhysRun::vram(VramAddress::new(pa), len)];
    let (m1, _) = s
        .map(
            &mut alloc,
            &mut vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(va)),
            &runs,
            PteAttrs::default(),
            None,
        )
        .unwrap();
    check_mapped(&s, &mut vram, va, 0x1000, pa, PageSize::Size4K, false);
    check_mapped(
        &s,
        &mut vram,
        va + 0x1000,
        0x20000,
        pa + 0x1000,
        PageSize::Size64K,
        false,
    );
    check_mapped(
        &s,
        &mut vram,
        va + 0x21000,
        0x3000,
        pa + 0x21000,
        PageSize::Size4K,
        false,
    );
    // A second, separate mapping of 64K pages in the same 2 MiB.
    let runs2 = [PhysRun::vram(VramAddress::new(0x900_0000), 0x10000)];
    let (m2, _) = s
        .map(
            &mut alloc,
            &mut vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(0x20_0000 * 10 + 0x10_0000)),
            &runs2,
            PteAttrs::default(),
            None,
        )
        .unwrap();
    check_mapped(
        &s,
        &mut vram,
        0x20_0000 * 10 + 0x10_0000,
        0x10000,
        0x900_0000,
        PageSize::Size64K,
        false,
    );
    // Unmapped VA between them is unmapped (no-valid-4K big PTEs block nothing valid).
    assert_eq!(
        s.translate(&mut vram, VirtAddr::new(0x20_0000 * 10 + 0x8_0000))
            .unwrap(),
        Translation::Unmapped
    );
    s.unmap(&mut alloc, &mut vram, &mut tlb, m1).unwrap();
    check_mapped(
        &s,
        &mut vram,
        0x20_0000 * 10 + 0x10_0000,
        0x10000,
        0x900_0000,
        PageSize::Size64K,
        false,
    );
    assert_eq!(
        s.translate(&mut vram, VirtAddr::new(va)).unwrap(),
        Translation::Unmapped
    );
    s.unmap(&mut alloc, &mut vram, &mut tlb, m2).unwrap();
    assert_eq!(s.table_count(), 1);
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn sparse_reservations() {
    let (mut s, mut vram, mut alloc, mut tlb) = setup::<MmuV3>(Chip::Hopper);
    let (m, _) = s
        .reserve_sparse(
            &mut alloc,
            &mut vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(0x1000)),
            0x4000_0000 + 0x20_0000,
        )
        .unwrap();
    assert_eq!(
        s.translate(&mut vram, VirtAddr::new(0x1000)).unwrap(),
        Translation::Sparse {
            size: PageSize::Size4K
        }
    );
    assert!(matches!(
        s.translate(&mut vram, VirtAddr::new(0x2000_0000)).unwrap(),
        Translation::Sparse { .. }
    ));
    s.unmap(&mut alloc, &mut vram, &mut tlb, m).unwrap();
    assert_eq!(
        s.translate(&mut vram, VirtAddr::new(0x2000_0000)).unwrap(),
        Translation::Unmapped
    );
    assert_eq!(s.table_count(), 1);
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn fault_injection_is_all_or_nothing() {
    for k in 1..200u64 {
        let (mut s, mut vram, mut alloc, mut tlb) = setup::<MmuV2>(Chip::Ampere);
        let runs = [PhysRun::vram(
            VramAddress::new(0x4000_0000 + 0xf000),
            0x31000,
        )];
        let keep = [PhysRun::vram(VramAddress::new(0x5000_0000), 0x1000)];
        let (kept, _) = s
            .map(
                &mut alloc,
                &mut vram,
                &mut tlb,
                VaPlacement::Fixed(VirtAddr::new(0x20_0000)),
                &keep,
                PteAttrs::default(),
                None,
            )
            .unwrap();
        let before = snapshot(&s, &mut vram);
        vram.calls = 0;
        vram.fail_at = Some(k);
        let r = s.map(
            &mut alloc,
            &mut vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(0x20_0000 + 0xf000)),
            &runs,
            PteAttrs::default(),
            None,
        );
        vram.fail_at = None;
        match r {
            Err(_) => assert_eq!(snapshot(&s, &mut vram), before, "k={k}"),
            Ok((m, _)) => {
                let mid = snapshot(&s, &mut vram);
                vram.calls = 0;
                vram.fail_at = Some(k);
                let r = s.unmap(&mut alloc, &mut vram, &mut tlb, m);
                vram.fail_at = None;
                match r {
                    Err((Some(m), _)) => {
                        assert_eq!(snapshot(&s, &mut vram), mid, "unmap k={k}");
                        s.unmap(&mut alloc, &mut vram, &mut tlb, m).unwrap();
                    }
                    Err((None, e)) => panic!("{e}"),
                    Ok(_) => {}
                }
            }
        }
        assert_eq!(snapshot(&s, &mut vram), before);
        s.unmap(&mut alloc, &mut vram, &mut tlb, kept).unwrap();
        assert_eq!(s.table_count(), 1);
        s.destroy(&mut alloc);
        assert_eq!(alloc.used(), 0, "k={k}");
    }
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn table_allocation_failures_leak_nothing() {
    for k in 1..12u64 {
        let (mut s, mut vram, mut alloc, mut tlb) = setup::<MmuV3>(Chip::BlackwellGb20x);
        let used = alloc.used();
        alloc.allocs = 0;
        alloc.fail_at = Some(k);
        let runs = [PhysRun::vram(
            VramAddress::new(0x4000_0000 + 0xf000),
            0x4031000,
        )];
        let r = s.map(
            &mut alloc,
            &mut vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(0x7f_0000_0000 + 0xf000)),
            &runs,
            PteAttrs::default(),
            None,
        );
        alloc.fail_at = None;
        match r {
            Err(VmmError::PtAlloc(_)) => {
                assert_eq!(alloc.used(), used, "k={k}");
                assert_eq!(s.table_count(), 1);
                assert!(tlb.reqs.is_empty());
            }
            Err(e) => panic!("{e}"),
            Ok((m, _)) => {
                s.unmap(&mut alloc, &mut vram, &mut tlb, m).unwrap();
            }
        }
        s.destroy(&mut alloc);
        assert_eq!(alloc.used(), 0);
    }
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn interleaved_prepared_operations() {
    let (mut s, mut vram, mut alloc, mut tlb) = setup::<MmuV2>(Chip::Turing);
    let r1 = [PhysRun::vram(VramAddress::new(0x100_0000), 0x1000)];
    let r2 = [PhysRun::vram(VramAddress::new(0x200_0000), 0x1000)];
    let a = s
        .prepare_map(
            &mut alloc,
            &mut vram,
            VaPlacement::Fixed(VirtAddr::new(0x1000)),
            &r1,
            PteAttrs::default(),
            None,
        )
        .unwrap();
    let b = s
        .prepare_map(
            &mut alloc,
            &mut vram,
            VaPlacement::Fixed(VirtAddr::new(0x2000)),
            &r2,
            PteAttrs::default(),
            None,
        )
        .unwrap();
    assert_eq!(b.stats().tables_allocated, 0, "b reuses a's tables");
    let Executed::Mapped(mb, _) = s.execute(&mut vram, &mut tlb, b).unwrap() else {
        panic!()
    };
    check_mapped(
        &s,
        &mut vram,
        0x2000,
        0x1000,
        0x200_0000,
        PageSize::Size4K,
        false,
    );
    assert_eq!(
        s.translate(&mut vram, VirtAddr::new(0x1000)).unwrap(),
        Translation::Unmapped
    );
    s.unmap(&mut alloc, &mut vram, &mut tlb, mb).unwrap();
    // a still holds the tables.
    assert!(s.table_count() > 1);
    let Executed::Mapped(ma, _) = s.execute(&mut vram, &mut tlb, a).unwrap() else {
        panic!()
    };
    check_mapped(
        &s,
        &mut vram,
        0x1000,
        0x1000,
        0x100_0000,
        PageSize::Size4K,
        false,
    );
    // Cancel path.
    let c = s
        .prepare_map(
            &mut alloc,
            &mut vram,
            VaPlacement::Fixed(VirtAddr::new(0x40_0000_0000)),
            &r2,
            PteAttrs::default(),
            None,
        )
        .unwrap();
    assert!(c.stats().tables_allocated > 0);
    assert_eq!(s.cancel(&mut alloc, c).unwrap(), None);
    s.unmap(&mut alloc, &mut vram, &mut tlb, ma).unwrap();
    assert_eq!(s.table_count(), 1);
    assert_eq!(alloc.used(), 1);
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn one_invalidate_with_minimal_level() {
    let (mut s, mut vram, mut alloc, mut tlb) = setup::<MmuV2>(Chip::Turing);
    let runs = [PhysRun::vram(VramAddress::new(0x100_0000), 0x4000_0000)];
    let (m, st) = s
        .map(
            &mut alloc,
            &mut vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(0)),
            &runs,
            PteAttrs::default(),
            Some(PageSize::Size4K),
        )
        .unwrap();
    assert_eq!(st.invalidates, 1);
    // A fresh space: the root entry changed.
    assert_eq!(tlb.reqs[0].cache_level, CacheLevel::UpToPde3);
    assert_eq!(st.leaves, 262_144);
    // 512 small tables + 1 PD0... one bulk write per table.
    assert!(st.bulk_writes < 600, "{st:?}");
    let st = s
        .protect(
            &mut vram,
            &mut tlb,
            VirtAddr::new(0x1000),
            0x1000,
            PteAttrs::default(),
        )
        .unwrap();
    assert_eq!(st.cache_level, Some(CacheLevel::PteOnly));
    s.unmap(&mut alloc, &mut vram, &mut tlb, m).unwrap();
}

fn snapshot<M: PtFormat>(s: &VecAddressSpace<M>, vram: &mut MemVram) -> Vec<(u64, WalkItem)> {
    let mut out = Vec::new();
    s.for_each_mapping(vram, VirtAddr::new(0), VirtAddr::new(1 << 48), |it| {
        let va = match it {
            WalkItem::Mapped { va, .. }
            | WalkItem::Sparse { va, .. }
            | WalkItem::Bad { va, .. } => va.raw(),
        };
        out.push((va, it));
        core::ops::ControlFlow::Continue(())
    })
    .unwrap();
    out
}

#[allow(dead_code)]
fn _assert_formats() {
    let _ = <MmuV2 as MmuFormat>::VERSION;
}

/// The manager without `alloc`: every piece of bookkeeping in fixed storage the embedder
/// provides; running out of it is a typed error that leaks nothing.
#[test]
fn fixed_storage_without_alloc() {
    let mut nodes = std::vec![Node::default(); 8];
    let mut kids = std::vec![[0u32; 512]; 5];
    let mut ivs = [VaInterval::default(); 4];
    let mut segs = [Seg::default(); 4];
    let mut vram = MemVram::new(VRAM);
    let mut alloc = ListAlloc::new(PT_BASE, 64);
    let mut tlb = LogTlb::default();
    let mut s = AddressSpace::<MmuV3, _, _, _>::new(
        cfg(Chip::Hopper),
        FixedSlab::new(&mut nodes),
        FixedSlab::new(&mut kids),
        SortedVa::new(FixedSlab::new(&mut ivs)),
        &mut alloc,
        &mut vram,
    )
    .unwrap();
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
        .unwrap();
    // v3 needs PD3, PD2, PD1, PD0 and a small table: 6 nodes with the root, 5 child arrays.
    // A second mapping far away needs 4 more directories: out of storage, nothing leaks.
    let used = alloc.used();
    let e = s
        .map(
            &mut alloc,
            &mut vram,
            &mut tlb,
            VaPlacement::Fixed(VirtAddr::new(0x8000_0000_0000)),
            &runs,
            PteAttrs::default(),
            None,
        )
        .unwrap_err();
    assert_eq!(e, VmmError::NoRoom(NoRoom));
    assert_eq!(alloc.used(), used);
    check_mapped(
        &s,
        &mut vram,
        0x1000,
        0x3000,
        0x100_0000,
        PageSize::Size4K,
        false,
    );
    s.unmap_in(
        &mut alloc,
        &mut vram,
        &mut tlb,
        m,
        FixedSlab::new(&mut segs),
    )
    .map_err(|(_, e)| e)
    .unwrap();
    assert_eq!(s.table_count(), 1);
    s.destroy(&mut alloc);
    assert_eq!(alloc.used(), 0);
}

/// A small table created by one prepared map is left unzeroed where that map will write; if
/// another operation links the table first, it must zero those slots: poisoned table memory
/// never becomes visible.
#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn poisoned_tables_never_leak_through_interleaving() {
    let (mut s, mut vram, mut alloc, mut tlb) = setup::<MmuV2>(Chip::Turing);
    // Poison every free table with valid-looking PTEs.
    let poison = MmuV2::encode_leaf(
        Chip::Turing,
        &PteState::Valid(PteMapping::new(
            crate::mmu::PteAperture::Vidmem,
            crate::addr::PhysAddr::new(0x7000_0000),
        )),
        false,
    )
    .unwrap();
    for &t in &alloc.free {
        vram.fill_u64(VramAddress::new(t), poison, 512).unwrap();
    }
    let base = 0x20_0000 * 7;
    let ra = [PhysRun::vram(VramAddress::new(0x100_0000), 0x10000)];
    let rb = [PhysRun::vram(VramAddress::new(0x200_0000), 0x1000)];
    let a = s
        .prepare_map(
            &mut alloc,
            &mut vram,
            VaPlacement::Fixed(VirtAddr::new(base + 0x10000)),
            &ra,
            PteAttrs::default(),
            Some(PageSize::Size4K),
        )
        .unwrap();
    let b = s
        .prepare_map(
            &mut alloc,
            &mut vram,
            VaPlacement::Fixed(VirtAddr::new(base + 0x40000)),
            &rb,
            PteAttrs::default(),
            None,
        )
        .unwrap();
    let Executed::Mapped(mb, _) = s.execute(&mut vram, &mut tlb, b).unwrap() else {
        panic!()
    };
    check_mapped(
        &s,
        &mut vram,
        base + 0x40000,
        0x1000,
        0x200_0000,
        PageSize::Size4K,
        false,
    );
    for off in (0..0x20_0000).step_by(0x1000) {
        if off != 0x40000 {
            assert_eq!(
                s.translate(&mut vram, VirtAddr::new(base + off)).unwrap(),
                Translation::Unmapped,
                "{off:#x}"
            );
        }
    }
    let Executed::Mapped(ma, _) = s.execute(&mut vram, &mut tlb, a).unwrap() else {
        panic!()
    };
    check_mapped(
        &s,
        &mut vram,
        base + 0x10000,
        0x10000,
        0x100_0000,
        PageSize::Size4K,
        false,
    );
    s.unmap(&mut alloc, &mut vram, &mut tlb, ma).unwrap();
    s.unmap(&mut alloc, &mut vram, &mut tlb, mb).unwrap();
    assert_eq!(s.table_count(), 1);
}

#[test]
fn dropped_prepared_keeps_its_reservation_until_destroy() {
    let (mut s, mut vram, mut alloc, mut tlb) = setup::<MmuV2>(Chip::Turing);
    let runs = [PhysRun::vram(VramAddress::new(0x4000_0000), 0x1000)];
    let va = VirtAddr::new(0x10_0000_0000);
    let op = s
        .prepare_map(
            &mut alloc,
            &mut vram,
            VaPlacement::Fixed(va),
            &runs,
            PteAttrs::default(),
            None,
        )
        .unwrap();
    let tables = s.table_count();
    assert!(tables > 1);
    drop(op);
    // Nothing reached the hardware, but the VA and the tables stay reserved.
    assert!(tlb.reqs.is_empty());
    assert_eq!(s.translate(&mut vram, va), Ok(Translation::Unmapped));
    let again = s.map(
        &mut alloc,
        &mut vram,
        &mut tlb,
        VaPlacement::Fixed(va),
        &runs,
        PteAttrs::default(),
        None,
    );
    assert_eq!(again.unwrap_err(), VmmError::Va(VaError::InUse));
    assert_eq!(s.cleanup(&mut alloc), 0);
    assert_eq!(s.table_count(), tables);
    // destroy returns them.
    s.destroy(&mut alloc);
    assert_eq!(alloc.used(), 0);
}
