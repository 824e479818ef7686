//! Oracles for the address-space manager (`nova_mm_core::vmm`) over arbitrary operation
//! sequences, on every chip.
//!
//! Map (mixed and pinned page sizes, one or two physical runs, read-only or not), sparse
//! reservations, unmap, protect, probes, wild requests with raw arguments and injected
//! page-table allocation failures, checked after every step against a model of live ranges:
//! every touched VA and the ends of every live range are looked up through the simulator's
//! GPC TLB (backed by the independent reference MMU, so a missing or too narrow invalidate
//! shows as a stale translation) and through the core walker (`AddressSpace::translate`), and
//! both must agree with the model on mapped/unmapped/sparse, physical address, page size
//! (the largest legal one, or the pinned one) and read-only. A successful operation issues
//! exactly one invalidate; a failed one leaves everything as it was. At the end everything is
//! unmapped: only the root table remains, every page table went back to the allocator.
//!
//! Adapted from the workspace's `tests/tests/vmm_state_machine.rs`.

use arbitrary::Arbitrary;
use nova_mm_core::mmu::{MmuV2, MmuV3, PteAttrs};
use nova_mm_core::vmm::{
    Mapping, PageTableAllocator, PhysRun, PtAllocError, SpaceConfig, SpaceKind, VaError,
    VaPlacement, VecAddressSpace, VmmError,
};
use nova_mm_core::walk::{PtFormat, Translation};
use nova_mm_core::{Chip, MmuVersion, PageSize, VirtAddr, VramAddress};
use nova_mm_sim::{Fault, Pdb, SimGpu, TlbPath};

use crate::gen;

const VRAM: u64 = 64 << 30;
const PT_BASE: u64 = 32 << 30;
const PT_COUNT: usize = 1 << 12;
/// Most operations per input.
pub const MAX_OPS: usize = 48;

/// A free-list page-table allocator with failure injection.
#[derive(Debug)]
pub struct ListAlloc {
    free: Vec<u64>,
    total: usize,
    allocs: u64,
    fail_at: Option<u64>,
}

impl ListAlloc {
    /// `n` tables of 4 KiB from `base`.
    #[must_use]
    pub fn new(base: u64, n: usize) -> Self {
        Self {
            free: (0..n as u64).rev().map(|i| base + i * 4096).collect(),
            total: n,
            allocs: 0,
            fail_at: None,
        }
    }

    /// Tables handed out and not returned.
    #[must_use]
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
        assert!(!self.free.contains(&addr.raw()), "double free of {addr}");
        assert!(
            addr.raw() >= PT_BASE && addr.raw() < PT_BASE + PT_COUNT as u64 * 4096,
            "freed a table the allocator never gave: {addr}"
        );
        self.free.push(addr.raw());
    }
}

/// One operation.
#[derive(Arbitrary, Debug, Clone)]
pub enum VmmOp {
    /// A map at a fixed VA, with sizes in units of a page size the chip supports.
    Map {
        /// Page-size index (into the chip's sizes).
        size: u8,
        /// VA in units of the page size, in that size's region.
        va_units: u8,
        /// 4 KiB skew of VA and PA (small sizes only).
        skew: u8,
        /// Length in units of the page size (1..=2 for small sizes, 1 for huge).
        len_units: u8,
        /// Extra 4 KiB pages.
        extra: u8,
        /// PA in units of the page size.
        pa_units: u8,
        /// Pin the page size (when VA and length are aligned).
        pin: bool,
        /// Read-only.
        ro: bool,
        /// Split into two physical runs.
        split: bool,
    },
    /// A map with raw arguments (mostly refused with a typed error).
    WildMap {
        /// VA.
        va: u64,
        /// Length.
        len: u64,
        /// PA.
        pa: u64,
        /// Page-size selector: pinned if < 5.
        pin: u8,
    },
    /// A sparse reservation.
    Sparse {
        /// Region selector.
        k: u8,
        /// Offset in 64 KiB units.
        off: u8,
        /// Length in 64 KiB units.
        pages: u8,
    },
    /// Unmap live range `i`.
    Unmap(u8),
    /// Change live range `i`'s read-only bit.
    Protect(u8, bool),
    /// Look up a VA.
    Probe(u32),
    /// Make the `n % 4`-th next page-table allocation fail.
    FailAlloc(u8),
}

/// One input of the `vmm_ops` target.
#[derive(Arbitrary, Debug, Clone)]
pub struct VmmInput {
    /// Chip selector ([`gen::chip`]).
    pub chip: u8,
    /// The operations.
    pub ops: Vec<VmmOp>,
}

#[derive(Clone, Debug)]
struct Rec {
    va: u64,
    len: u64,
    /// `None` = sparse.
    runs: Option<Vec<(u64, u64)>>,
    ro: bool,
    pinned: Option<PageSize>,
}

impl Rec {
    fn locate(&self, va: u64) -> Option<(u64, u64, u64)> {
        let runs = self.runs.as_ref()?;
        let mut off = 0;
        let o = va - self.va;
        for &(pa, len) in runs {
            if o < off + len {
                return Some((pa + (o - off), off, len));
            }
            off += len;
        }
        None
    }

    /// The page size the manager must use at `va`: the pinned one, or the largest legal size
    /// whose aligned block around `va` lies in the range and in one run, with the PA aligned.
    fn page_size(&self, chip: Chip, va: u64) -> PageSize {
        if let Some(p) = self.pinned {
            return p;
        }
        let mut best = PageSize::Size4K;
        for ps in PageSize::ALL {
            if !chip.supports_page_size(ps) {
                continue;
            }
            let s = ps.bytes();
            let b = va & !(s - 1);
            if b < self.va || b + s > self.va + self.len {
                continue;
            }
            match &self.runs {
                None => best = ps,
                Some(_) => {
                    let (pa_b, roff, rlen) = self.locate(b).expect("inside");
                    let ob = b - self.va;
                    if pa_b % s == 0 && ob >= roff && ob + s <= roff + rlen {
                        best = ps;
                    }
                }
            }
        }
        best
    }
}

fn sizes(chip: Chip) -> Vec<PageSize> {
    PageSize::ALL
        .into_iter()
        .filter(|&p| chip.supports_page_size(p))
        .collect()
}

/// VA region per alignment, so that small and huge pages do not crowd each other out.
fn region(ps: PageSize) -> u64 {
    match ps {
        PageSize::Size4K | PageSize::Size64K | PageSize::Size2M => 0x40_0000_0000,
        PageSize::Size512M => 0x800_0000_0000,
        PageSize::Size256G => 0x1_0000_0000_0000,
    }
}

struct Sut<M: PtFormat> {
    chip: Chip,
    gpu: SimGpu,
    space: VecAddressSpace<M>,
    alloc: ListAlloc,
    maps: Vec<Mapping>,
    recs: Vec<Rec>,
    baseline: usize,
}

impl<M: PtFormat> Sut<M> {
    fn overlaps(&self, va: u64, len: u64) -> bool {
        self.recs
            .iter()
            .any(|r| va < r.va + r.len && r.va < va + len)
    }

    /// Checks `va` through the GPC TLB and through the core walker against the model.
    fn check(&mut self, va: u64) {
        let chip = self.chip;
        let pdb = Pdb::vidmem(self.space.root().raw());
        let rec = self.recs.iter().find(|r| va >= r.va && va < r.va + r.len);
        let (vram, tlb) = self.gpu.parts();
        let got = tlb.lookup(vram, TlbPath::Gpc, pdb, VirtAddr::new(va));
        let walked = self.space.translate(vram, VirtAddr::new(va));
        match (rec, &got) {
            (None, Err(f)) => assert!(
                matches!(
                    f,
                    Fault::PdeInvalid { .. } | Fault::InvalidPte { .. } | Fault::NoValid4k
                ),
                "{chip} {va:#x}: expected unmapped, got {f:?}"
            ),
            (None, Ok(m)) => panic!("{chip} {va:#x}: expected unmapped, got stale or wrong {m:?}"),
            (Some(r), Err(Fault::Sparse { .. })) if r.runs.is_none() => {}
            (Some(r), Ok(m)) if r.runs.is_some() => {
                let (pa, ..) = r.locate(va).expect("inside");
                let off = va - m.va_base.raw();
                assert_eq!(m.page_base.raw() + off, pa, "{chip} {va:#x}: PA ({m:?})");
                assert_eq!(m.attrs.read_only, r.ro, "{chip} {va:#x}: read-only");
                assert_eq!(
                    m.page_size,
                    r.page_size(chip, va),
                    "{chip} {va:#x}: page size"
                );
            }
            (Some(r), got) => panic!("{chip} {va:#x}: model {r:?}, MMU {got:?}"),
        }
        match (rec, walked) {
            (None, Ok(Translation::Unmapped)) => {}
            (Some(r), Ok(Translation::Sparse { .. })) if r.runs.is_none() => {}
            (Some(r), Ok(t @ Translation::Mapped { size, pte, .. })) if r.runs.is_some() => {
                let (pa, ..) = r.locate(va).expect("inside");
                assert_eq!(
                    t.phys(VirtAddr::new(va)),
                    Some(pa),
                    "{chip} {va:#x}: walker PA"
                );
                assert_eq!(
                    pte.attrs.read_only, r.ro,
                    "{chip} {va:#x}: walker read-only"
                );
                assert_eq!(
                    size,
                    r.page_size(chip, va),
                    "{chip} {va:#x}: walker page size"
                );
            }
            (r, t) => panic!("{chip} {va:#x}: model {r:?}, walker {t:?}"),
        }
    }

    fn check_range(&mut self, va: u64, len: u64) {
        let pages = len / 4096;
        let step = (pages / 16).max(1);
        let mut p = 0;
        while p < pages {
            self.check(va + p * 4096);
            p += step;
        }
        self.check(va + len - 4096);
        if va >= 4096 {
            self.check(va - 4096);
        }
        if va + len < 1 << M::VERSION.va_bits() {
            self.check(va + len);
        }
    }

    fn map(
        &mut self,
        va: u64,
        len: u64,
        runs: Vec<(u64, u64)>,
        pinned: Option<PageSize>,
        ro: bool,
        must_succeed: bool,
    ) {
        let pruns: Vec<PhysRun> = runs
            .iter()
            .map(|&(pa, l)| PhysRun::vram(VramAddress::new(pa), l))
            .collect();
        let attrs = PteAttrs {
            read_only: ro,
            ..Default::default()
        };
        let used = self.alloc.used();
        let overlaps = self.overlaps(va, len);
        let (vram, tlb) = self.gpu.parts();
        let r = self.space.map(
            &mut self.alloc,
            vram,
            tlb,
            VaPlacement::Fixed(VirtAddr::new(va)),
            &pruns,
            attrs,
            pinned,
        );
        match r {
            Ok((m, st)) => {
                assert!(!overlaps, "map succeeded over a used range");
                assert_eq!(st.invalidates, 1, "{st:?}");
                assert_eq!(m.va().raw(), va);
                assert_eq!(m.len(), len);
                self.maps.push(m);
                self.recs.push(Rec {
                    va,
                    len,
                    runs: Some(runs),
                    ro,
                    pinned,
                });
            }
            Err(e) => {
                if matches!(e, VmmError::Va(VaError::InUse)) {
                    assert!(overlaps, "InUse for a free range");
                }
                let injected = self.alloc.fail_at.is_some_and(|f| f <= self.alloc.allocs);
                assert!(
                    overlaps || injected || !must_succeed,
                    "{chip} map {va:#x}+{len:#x} {runs:x?} {pinned:?} failed: {e:?}",
                    chip = self.chip
                );
                assert_eq!(self.alloc.used(), used, "failed map kept tables: {e:?}");
            }
        }
        if len >= 4096
            && va
                .checked_add(len)
                .is_some_and(|e| e <= 1 << M::VERSION.va_bits())
        {
            self.check_range(va, len);
        }
    }

    fn step(&mut self, op: &VmmOp) {
        let chip = self.chip;
        match *op {
            VmmOp::Map {
                size,
                va_units,
                skew,
                len_units,
                extra,
                pa_units,
                pin,
                ro,
                split,
            } => {
                let sz = sizes(chip);
                let ps = sz[usize::from(size) % sz.len()];
                let a = ps.bytes();
                let huge = a >= 1 << 29;
                let (skew, extra) = if huge {
                    (0, 0)
                } else {
                    (u64::from(skew % 20), u64::from(extra % 20))
                };
                let lu = if huge {
                    1
                } else {
                    1 + u64::from(len_units % 2)
                };
                let va = region(ps) + u64::from(va_units % 6) * a + skew * 4096;
                let len = lu * a + extra * 4096;
                let pa0 = if huge {
                    (u64::from(pa_units) % 2 + 1) * a
                } else {
                    0x1_0000_0000 + u64::from(pa_units % 40) * a + skew * 4096
                };
                let pinned = (pin && skew == 0 && extra == 0).then_some(ps);
                let runs = if split && len > a && !huge {
                    vec![(pa0, a), (pa0 + 0x8000_0000 + a * 7, len - a)]
                } else {
                    vec![(pa0, len)]
                };
                self.map(va, len, runs, pinned, ro, true);
            }
            VmmOp::WildMap { va, len, pa, pin } => {
                let pinned = PageSize::ALL.get(usize::from(pin)).copied();
                let va = va & ((1 << M::VERSION.va_bits()) - 1) & !0xfff;
                let len = len % (1 << 32);
                let pa = pa % VRAM;
                // Only requests whose result the model can describe: a run inside VRAM.
                if pa.checked_add(len).is_some_and(|e| e <= VRAM) {
                    self.map(va, len, vec![(pa, len)], pinned, false, false);
                }
            }
            VmmOp::Sparse { k, off, pages } => {
                let base = [
                    0x40_0000_0000u64,
                    0x40_0000_0000 + 0x20_0000 * 3,
                    0x40_4000_0000,
                ][usize::from(k % 3)];
                let va = base + u64::from(off % 8) * 0x1_0000;
                let len =
                    u64::from(pages % 40 + 1) * 0x1_0000 + if k % 3 == 2 { 0x4000_0000 } else { 0 };
                let overlaps = self.overlaps(va, len);
                let used = self.alloc.used();
                let (vram, tlb) = self.gpu.parts();
                let r = self.space.reserve_sparse(
                    &mut self.alloc,
                    vram,
                    tlb,
                    VaPlacement::Fixed(VirtAddr::new(va)),
                    len,
                );
                match r {
                    Ok((m, st)) => {
                        assert!(!overlaps, "sparse over a used range");
                        assert_eq!(st.invalidates, 1, "{st:?}");
                        self.maps.push(m);
                        self.recs.push(Rec {
                            va,
                            len,
                            runs: None,
                            ro: false,
                            pinned: None,
                        });
                    }
                    Err(e) => {
                        let injected = self.alloc.fail_at.is_some_and(|f| f <= self.alloc.allocs);
                        assert!(
                            overlaps && matches!(e, VmmError::Va(VaError::InUse)) || injected,
                            "sparse failed: {e:?}"
                        );
                        assert_eq!(self.alloc.used(), used, "failed sparse kept tables");
                    }
                }
                self.check_range(va, len);
            }
            VmmOp::Unmap(i) => {
                if self.maps.is_empty() {
                    return;
                }
                let i = usize::from(i) % self.maps.len();
                let m = self.maps.remove(i);
                self.recs.remove(i);
                let (va, len) = (m.va().raw(), m.len());
                let (vram, tlb) = self.gpu.parts();
                let st = self.space.unmap(&mut self.alloc, vram, tlb, m);
                let Ok(st) = st else {
                    panic!("unmap failed: {:?}", st.err());
                };
                assert_eq!(st.invalidates, 1, "{st:?}");
                self.check_range(va, len);
            }
            VmmOp::Protect(i, ro) => {
                if self.maps.is_empty() {
                    return;
                }
                let i = usize::from(i) % self.maps.len();
                if self.recs[i].runs.is_none() {
                    return;
                }
                let (va, len) = (self.maps[i].va(), self.maps[i].len());
                let attrs = PteAttrs {
                    read_only: ro,
                    ..Default::default()
                };
                let (vram, tlb) = self.gpu.parts();
                let st = self.space.protect(vram, tlb, va, len, attrs);
                let Ok(st) = st else {
                    panic!("protect failed: {:?}", st.err());
                };
                assert_eq!(st.invalidates, 1, "{st:?}");
                self.recs[i].ro = ro;
                self.check_range(va.raw(), len);
            }
            VmmOp::Probe(o) => self.check(0x40_0000_0000 + u64::from(o % 0x100_0000) * 4096),
            VmmOp::FailAlloc(n) => {
                self.alloc.fail_at = Some(self.alloc.allocs + 1 + u64::from(n % 4));
            }
        }
        if !matches!(op, VmmOp::FailAlloc(_)) {
            self.alloc.fail_at = None;
        }
        let ends: Vec<(u64, u64)> = self.recs.iter().map(|r| (r.va, r.len)).collect();
        for (va, len) in ends {
            self.check(va);
            self.check(va + len - 4096);
        }
    }
}

fn run<M: PtFormat>(chip: Chip, input: &VmmInput) {
    let mut gpu = SimGpu::new(chip, VRAM).expect("sim");
    let mut alloc = ListAlloc::new(PT_BASE, PT_COUNT);
    let cfg = SpaceConfig {
        chip,
        va_start: 0,
        va_end: 1 << M::VERSION.va_bits(),
        kind: SpaceKind::Gpu,
    };
    let space = VecAddressSpace::<M>::new_vec(cfg, &mut alloc, gpu.vram_mut()).expect("space");
    let baseline = alloc.used();
    let mut sut = Sut {
        chip,
        gpu,
        space,
        alloc,
        maps: Vec::new(),
        recs: Vec::new(),
        baseline,
    };
    for op in input.ops.iter().take(MAX_OPS) {
        sut.step(op);
    }
    for m in std::mem::take(&mut sut.maps) {
        let (vram, tlb) = sut.gpu.parts();
        let r = sut.space.unmap(&mut sut.alloc, vram, tlb, m);
        assert!(r.is_ok(), "teardown unmap failed: {:?}", r.err());
    }
    sut.recs.clear();
    assert_eq!(sut.space.table_count(), 1, "only the root remains");
    assert_eq!(sut.alloc.used(), sut.baseline, "page tables leaked");
    sut.space.destroy(&mut sut.alloc);
    assert_eq!(sut.alloc.used(), 0, "root leaked");
}

/// Runs the address-space oracles on one input; panics on a violation.
pub fn check(input: &VmmInput) {
    let chip = gen::chip(input.chip);
    match chip.mmu_version() {
        MmuVersion::V2 => run::<MmuV2>(chip, input),
        MmuVersion::V3 => run::<MmuV3>(chip, input),
    }
}
