//! Fault injection and reclamation for the address-space manager, on the simulated GPU.
//!
//! For every k, the k-th VRAM access (and separately the k-th page-table allocation, and the
//! TLB invalidate) of a map and of an unmap fails: the operation must report the error, the
//! simulator's reference MMU must see exactly the state from before, and once the space is
//! destroyed the allocator must be back to its baseline.
//!
//! Every scenario runs over both back ends ([`Backend`]): directly on the simulated VRAM and
//! TLB, and through the core's PRAMIN window and TLB-invalidate registers on the simulated BAR0
//! (where a word fault fails one MMIO access inside a bulk PRAMIN write, and a TLB fault is an
//! invalidate engine that never finishes, so the register poll times out).

mod common;

use common::backend::{Backend, Rig};
use common::ListAlloc;
use nova_mm_core::buddy::{Buddy, BuddyParams};
use nova_mm_core::mmu::{MmuV2, MmuV3, PteAttrs};
use nova_mm_core::vmm::{
    PageTableAllocator, PhysRun, PtAllocError, SpaceConfig, SpaceKind, VaPlacement, VecAddressSpace,
};
use nova_mm_core::walk::PtFormat;
use nova_mm_core::{Chip, TlbError, TlbInvalidate, VirtAddr, VramAccess, VramAddress, VramError};
use nova_mm_sim::{Fault, FaultRule, Mapping as RefMapping, Pdb, RefMmu};

const VRAM: u64 = 64 << 30;
const PT_BASE: u64 = 32 << 30;

fn space<M: PtFormat>(b: Backend, chip: Chip) -> (Rig, VecAddressSpace<M>, ListAlloc) {
    let mut gpu = Rig::new(b, chip, VRAM);
    let mut alloc = ListAlloc::new(PT_BASE, 4096);
    let cfg = SpaceConfig {
        chip,
        va_start: 0,
        va_end: 1 << 48,
        kind: SpaceKind::Gpu,
    };
    let s = gpu
        .run(|v, _| VecAddressSpace::<M>::new_vec(cfg, &mut alloc, v))
        .unwrap();
    (gpu, s, alloc)
}

/// The test window.
const WIN: u64 = 0x20_0000 * 5;
const WIN_LEN: u64 = 0x60_0000;

fn snapshot<M: PtFormat>(
    chip: Chip,
    gpu: &Rig,
    s: &VecAddressSpace<M>,
) -> Vec<Result<RefMapping, Fault>> {
    let mmu = RefMmu::new(chip);
    let gpu = gpu.gpu();
    let pdb = Pdb::vidmem(s.root().raw());
    // Every 4 KiB where the small pages are, every 64 KiB elsewhere.
    (0..WIN_LEN / 4096)
        .filter(|i| *i < 0x40 || i % 16 == 0)
        .map(|i| mmu.walk(gpu.vram(), pdb, VirtAddr::new(WIN + i * 4096)))
        .collect()
}

/// Fails the k-th call of the [`VramAccess`] trait (a bulk call counts once), doing nothing.
struct CallFault<'a> {
    vram: &'a mut dyn VramAccess,
    calls: u64,
    fail_at: u64,
}

impl CallFault<'_> {
    fn tick(&mut self) -> Result<(), VramError> {
        self.calls += 1;
        if self.calls == self.fail_at {
            Err(VramError::Backend(-5))
        } else {
            Ok(())
        }
    }
}

impl VramAccess for CallFault<'_> {
    fn size(&self) -> u64 {
        self.vram.size()
    }
    fn read32(&mut self, a: VramAddress) -> Result<u32, VramError> {
        self.tick()?;
        self.vram.read32(a)
    }
    fn write32(&mut self, a: VramAddress, v: u32) -> Result<(), VramError> {
        self.tick()?;
        self.vram.write32(a, v)
    }
    fn read64(&mut self, a: VramAddress) -> Result<u64, VramError> {
        self.tick()?;
        self.vram.read64(a)
    }
    fn write64(&mut self, a: VramAddress, v: u64) -> Result<(), VramError> {
        self.tick()?;
        self.vram.write64(a, v)
    }
    fn read_u64s(&mut self, a: VramAddress, out: &mut [u64]) -> Result<(), VramError> {
        self.tick()?;
        self.vram.read_u64s(a, out)
    }
    fn write_u64s(&mut self, a: VramAddress, w: &[u64]) -> Result<(), VramError> {
        self.tick()?;
        self.vram.write_u64s(a, w)
    }
    fn fill_u64(&mut self, a: VramAddress, v: u64, n: u64) -> Result<(), VramError> {
        self.tick()?;
        self.vram.fill_u64(a, v, n)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Inject {
    /// The k-th trait call fails, for every k until the operation succeeds.
    Calls,
    /// The sim's word-level rule: the k-th word access fails (bulk calls fail part-way), for
    /// k = 1..=24 and then every 61st.
    Words,
}

fn ks(mode: Inject) -> impl Iterator<Item = u64> {
    (1u64..).filter(move |&k| mode == Inject::Calls || k <= 24 || k % 61 == 0)
}

/// Runs `op` with the k-th access failing.
fn with_fault<T>(
    gpu: &mut Rig,
    mode: Inject,
    k: u64,
    op: impl FnOnce(&mut dyn VramAccess, &mut dyn TlbInvalidate) -> T,
) -> T {
    match mode {
        Inject::Calls => gpu.run(|vram, tlb| {
            let mut f = CallFault {
                vram,
                calls: 0,
                fail_at: k,
            };
            op(&mut f, tlb)
        }),
        Inject::Words => {
            gpu.gpu().vram_mut().add_fault(FaultRule::nth(k));
            let r = gpu.run(op);
            gpu.gpu().vram_mut().clear_faults();
            r
        }
    }
}

/// A map that needs new tables at several levels, mixes 4K/64K/2M pages, and shares a PD0
/// entry with an existing mapping; then, separately, its unmap.
fn run<M: PtFormat>(b: Backend, chip: Chip, mode: Inject) {
    let runs = [
        PhysRun::vram(VramAddress::new(0x4000_0000 + 0xf000), 0x21000),
        PhysRun::vram(VramAddress::new(0x6000_0000), 0x40_0000),
    ];
    let keep_runs = [PhysRun::vram(VramAddress::new(0x5000_0000), 0x3000)];
    let attrs = PteAttrs::default();
    let va = VaPlacement::Fixed(VirtAddr::new(WIN + 0xf000));
    let setup = || {
        let (mut gpu, mut s, mut alloc) = space::<M>(b, chip);
        let (kept, _) = gpu
            .run(|vram, tlb| {
                s.map(
                    &mut alloc,
                    vram,
                    tlb,
                    VaPlacement::Fixed(VirtAddr::new(WIN)),
                    &keep_runs,
                    attrs,
                    None,
                )
            })
            .unwrap();
        (gpu, s, alloc, kept)
    };
    let finish = |mut gpu: Rig, mut s: VecAddressSpace<M>, mut alloc: ListAlloc, kept, k| {
        gpu.run(|vram, tlb| s.unmap(&mut alloc, vram, tlb, kept))
            .map_err(|(_, e)| e)
            .unwrap();
        assert_eq!(s.table_count(), 1, "k={k}: only the root remains");
        assert_eq!(alloc.used(), 1);
        s.destroy(&mut alloc);
        assert_eq!(alloc.used(), 0, "k={k}");
        gpu.assert_protocol();
    };
    let mut failures = 0;
    for k in ks(mode) {
        let (mut gpu, mut s, mut alloc, kept) = setup();
        let before = snapshot(chip, &gpu, &s);
        let r = with_fault(&mut gpu, mode, k, |v, t| {
            s.map(&mut alloc, v, t, va, &runs, attrs, None)
        });
        let done = match r {
            Err(_) => {
                failures += 1;
                assert_eq!(snapshot(chip, &gpu, &s), before, "map, k={k}");
                false
            }
            Ok((m, _)) => {
                assert_ne!(snapshot(chip, &gpu, &s), before);
                gpu.run(|vram, tlb| s.unmap(&mut alloc, vram, tlb, m))
                    .map_err(|(_, e)| e)
                    .unwrap();
                true
            }
        };
        assert_eq!(snapshot(chip, &gpu, &s), before);
        finish(gpu, s, alloc, kept, k);
        if done {
            break;
        }
    }
    assert!(failures > 5, "map: {failures} failures");
    let mut failures = 0;
    for k in ks(mode) {
        let (mut gpu, mut s, mut alloc, kept) = setup();
        let before = snapshot(chip, &gpu, &s);
        let (m, _) = gpu
            .run(|vram, tlb| s.map(&mut alloc, vram, tlb, va, &runs, attrs, None))
            .unwrap();
        let mid = snapshot(chip, &gpu, &s);
        let r = with_fault(&mut gpu, mode, k, |v, t| s.unmap(&mut alloc, v, t, m));
        let done = match r {
            Ok(_) => true,
            Err((m, _)) => {
                failures += 1;
                assert_eq!(snapshot(chip, &gpu, &s), mid, "unmap, k={k}");
                let m = m.expect("mapping handed back");
                gpu.run(|vram, tlb| s.unmap(&mut alloc, vram, tlb, m))
                    .map_err(|(_, e)| e)
                    .unwrap();
                false
            }
        };
        assert_eq!(snapshot(chip, &gpu, &s), before);
        finish(gpu, s, alloc, kept, k);
        if done {
            break;
        }
    }
    assert!(failures > 2, "unmap: {failures} failures");
}

#[test]
fn vram_call_faults_v2() {
    for b in Backend::BOTH {
        run::<MmuV2>(b, Chip::Turing, Inject::Calls);
    }
}

#[test]
fn vram_call_faults_v3() {
    for b in Backend::BOTH {
        run::<MmuV3>(b, Chip::BlackwellGb20x, Inject::Calls);
    }
}

#[test]
fn vram_word_faults_v2() {
    for b in Backend::BOTH {
        run::<MmuV2>(b, Chip::Ampere, Inject::Words);
    }
}

#[test]
fn vram_word_faults_v3() {
    for b in Backend::BOTH {
        run::<MmuV3>(b, Chip::Hopper, Inject::Words);
    }
}

/// Word faults inside bulk PRAMIN writes on Blackwell's window register (wider base).
#[test]
fn vram_word_faults_v3_blackwell_regs() {
    run::<MmuV3>(
        Backend::Regs { mmio64: false },
        Chip::BlackwellGb20x,
        Inject::Words,
    );
}

/// Allocator faults with any allocator: `fail(alloc, k)` arms the k-th allocation to fail (and
/// `None` disarms), `used(alloc)` is the allocator's count of tables in use.
fn alloc_faults_with<M: PtFormat, A: PageTableAllocator>(
    b: Backend,
    chip: Chip,
    mut make: impl FnMut() -> A,
    fail: impl Fn(&mut A, Option<u64>),
    used: impl Fn(&A) -> u64,
) {
    let runs = [PhysRun::vram(
        VramAddress::new(0x4000_0000 + 0xf000),
        0x4031000,
    )];
    let cfg = SpaceConfig {
        chip,
        va_start: 0,
        va_end: 1 << 48,
        kind: SpaceKind::Gpu,
    };
    for k in 1.. {
        let mut gpu = Rig::new(b, chip, VRAM);
        let mut alloc = make();
        let baseline = used(&alloc);
        let mut s = gpu
            .run(|v, _| VecAddressSpace::<M>::new_vec(cfg, &mut alloc, v))
            .unwrap();
        let with_root = used(&alloc);
        assert!(with_root > baseline);
        let before = snapshot(chip, &gpu, &s);
        fail(&mut alloc, Some(k));
        let r = gpu.run(|vram, tlb| {
            s.map(
                &mut alloc,
                vram,
                tlb,
                VaPlacement::Fixed(VirtAddr::new(WIN + 0xf000)),
                &runs,
                PteAttrs::default(),
                None,
            )
        });
        fail(&mut alloc, None);
        let done = match r {
            Err(_) => {
                assert_eq!(snapshot(chip, &gpu, &s), before, "k={k}");
                assert_eq!(used(&alloc), with_root, "k={k}");
                assert_eq!(gpu.gpu().tlb().invalidate_count(), 0);
                false
            }
            Ok((m, _)) => {
                gpu.run(|vram, tlb| s.unmap(&mut alloc, vram, tlb, m))
                    .map_err(|(_, e)| e)
                    .unwrap();
                true
            }
        };
        s.destroy(&mut alloc);
        assert_eq!(used(&alloc), baseline, "k={k}");
        gpu.assert_protocol();
        if done {
            assert!(k > 3);
            break;
        }
    }
}

fn alloc_faults<M: PtFormat>(b: Backend, chip: Chip) {
    alloc_faults_with::<M, _>(
        b,
        chip,
        || ListAlloc::new(PT_BASE, 4096),
        |a, k| {
            a.allocs = 0;
            a.fail_at = k;
        },
        |a| a.used() as u64,
    );
}

#[test]
fn table_alloc_faults_v2() {
    for b in Backend::BOTH {
        alloc_faults::<MmuV2>(b, Chip::Ampere);
    }
}

#[test]
fn table_alloc_faults_v3() {
    for b in Backend::BOTH {
        alloc_faults::<MmuV3>(b, Chip::Hopper);
    }
}

/// The core's buddy allocator as the page-table allocator (top-down 4 KiB blocks), with the k-th
/// allocation failing: its free space returns to the baseline whatever fails.
struct FaultyBuddy {
    buddy: Buddy<'static>,
    allocs: u64,
    fail_at: Option<u64>,
}

impl PageTableAllocator for FaultyBuddy {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        self.allocs += 1;
        if self.fail_at == Some(self.allocs) {
            return Err(PtAllocError::OutOfMemory);
        }
        self.buddy.alloc_table()
    }
    fn free_table(&mut self, addr: VramAddress) {
        self.buddy.free_table(addr);
    }
}

const BUDDY_POOL: u64 = 64 << 20;

fn buddy_alloc_faults<M: PtFormat>(b: Backend, chip: Chip) {
    alloc_faults_with::<M, _>(
        b,
        chip,
        || FaultyBuddy {
            buddy: Buddy::new(BuddyParams {
                base_offset: PT_BASE,
                size: BUDDY_POOL,
                chunk_size: 4096,
            })
            .unwrap(),
            allocs: 0,
            fail_at: None,
        },
        |a, k| {
            a.allocs = 0;
            a.fail_at = k;
        },
        // Tables in use, from the allocator's own free space.
        |a| (BUDDY_POOL - a.buddy.avail()) / 4096,
    );
}

#[test]
fn table_alloc_faults_buddy() {
    for b in Backend::BOTH {
        buddy_alloc_faults::<MmuV2>(b, Chip::Turing);
        buddy_alloc_faults::<MmuV3>(b, Chip::BlackwellGb20x);
    }
}

fn tlb_faults<M: PtFormat>(b: Backend, chip: Chip) {
    let (mut gpu, mut s, mut alloc) = space::<M>(b, chip);
    let runs = [PhysRun::vram(
        VramAddress::new(0x4000_0000),
        0x20_0000 + 0x11000,
    )];
    let place = VaPlacement::Fixed(VirtAddr::new(WIN));
    let attrs = PteAttrs::default();
    let before = snapshot(chip, &gpu, &s);
    gpu.fail_next_invalidate();
    let e = gpu
        .run(|vram, tlb| s.map(&mut alloc, vram, tlb, place, &runs, attrs, None))
        .unwrap_err();
    gpu.restore_invalidate();
    assert!(
        matches!(e, nova_mm_core::vmm::VmmError::Tlb(TlbError::Timeout)),
        "{e}"
    );
    assert_eq!(snapshot(chip, &gpu, &s), before);
    let (m, _) = gpu
        .run(|vram, tlb| s.map(&mut alloc, vram, tlb, place, &runs, attrs, None))
        .unwrap();
    let mid = snapshot(chip, &gpu, &s);
    gpu.fail_next_invalidate();
    let (m, _) = gpu
        .run(|vram, tlb| s.unmap(&mut alloc, vram, tlb, m))
        .unwrap_err();
    gpu.restore_invalidate();
    assert_eq!(snapshot(chip, &gpu, &s), mid);
    gpu.run(|vram, tlb| s.unmap(&mut alloc, vram, tlb, m.unwrap()))
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(s.table_count(), 1);
    s.destroy(&mut alloc);
    assert_eq!(alloc.used(), 0);
    if let Some(c) = gpu.bar0_counters() {
        assert_eq!(c.unflushed_invalidates, 0, "{c:?}");
    }
}

#[test]
fn tlb_faults_v2() {
    for b in Backend::BOTH {
        tlb_faults::<MmuV2>(b, Chip::Turing);
    }
}

/// Pascal/Volta invalidate through the hub PRI registers and `MMU_CTRL` polling.
#[test]
fn tlb_faults_v2_pascal_volta() {
    for b in Backend::BOTH {
        tlb_faults::<MmuV2>(b, Chip::Pascal);
        tlb_faults::<MmuV2>(b, Chip::Volta);
    }
}

#[test]
fn tlb_faults_v3() {
    for b in Backend::BOTH {
        tlb_faults::<MmuV3>(b, Chip::Hopper);
    }
}

#[test]
fn tlb_faults_v3_blackwell() {
    for b in Backend::BOTH {
        tlb_faults::<MmuV3>(b, Chip::BlackwellGb10x);
    }
}

/// Reclamation: many mappings of every size, unmapped in a scrambled order, leave only the
/// root.
#[test]
fn reclamation_leaves_only_the_root() {
    for b in Backend::BOTH {
        for chip in [Chip::Ampere, Chip::Hopper, Chip::BlackwellGb10x] {
            if chip.mmu_version() == nova_mm_core::MmuVersion::V2 {
                reclaim::<MmuV2>(b, chip);
            } else {
                reclaim::<MmuV3>(b, chip);
            }
        }
    }
}

fn reclaim<M: PtFormat>(b: Backend, chip: Chip) {
    let (mut gpu, mut s, mut alloc) = space::<M>(b, chip);
    let mut maps = Vec::new();
    for i in 0..24u64 {
        let len = [0x1000, 0x11000, 0x20_0000, 0x23_5000][(i % 4) as usize];
        let runs = [PhysRun::vram(
            VramAddress::new(0x1000_0000 + i * 0x100_0000),
            len,
        )];
        let va = 0x10_0000_0000 * (i % 3) + i * 0x40_0000 + (i % 5) * 0x3000;
        let (m, _) = gpu
            .run(|vram, tlb| {
                s.map(
                    &mut alloc,
                    vram,
                    tlb,
                    VaPlacement::Fixed(VirtAddr::new(va & !0xfff)),
                    &runs,
                    PteAttrs::default(),
                    None,
                )
            })
            .unwrap();
        maps.push(m);
    }
    let (sp, _) = gpu
        .run(|vram, tlb| {
            s.reserve_sparse(
                &mut alloc,
                vram,
                tlb,
                VaPlacement::Anywhere { align: 4096 },
                0x4000_0000 + 0x23_4000,
            )
        })
        .unwrap();
    maps.push(sp);
    assert!(s.table_count() > 10);
    let mut order: Vec<usize> = (0..maps.len()).collect();
    order.reverse();
    order.swap(0, 7);
    let mut maps: Vec<Option<_>> = maps.into_iter().map(Some).collect();
    for i in order {
        let m = maps[i].take().unwrap();
        gpu.run(|vram, tlb| s.unmap(&mut alloc, vram, tlb, m))
            .map_err(|(_, e)| e)
            .unwrap();
    }
    assert_eq!(s.table_count(), 1);
    assert_eq!(alloc.used(), 1);
    s.destroy(&mut alloc);
    assert_eq!(alloc.used(), 0);
    gpu.assert_protocol();
}
