//! Fault injection and reclamation for the address-space manager, on the simulated GPU.
//!
//! For every k, the k-th VRAM access (and separately the k-th page-table allocation, and the
//! TLB invalidate) of a map and of an unmap fails: the operation must report the error, the
//! simulator's reference MMU must see exactly the state from before, and once the space is
//! destroyed the allocator must be back to its baseline.

mod common;

use common::ListAlloc;
use nova_mm_core::mmu::{MmuV2, MmuV3, PteAttrs};
use nova_mm_core::vmm::{PhysRun, SpaceConfig, SpaceKind, VaPlacement, VecAddressSpace};
use nova_mm_core::walk::PtFormat;
use nova_mm_core::{Chip, TlbError, VirtAddr, VramAccess, VramAddress, VramError};
use nova_mm_sim::{Fault, FaultRule, Mapping as RefMapping, Pdb, RefMmu, SimGpu, SimTlb, SimVram};

const VRAM: u64 = 64 << 30;
const PT_BASE: u64 = 32 << 30;

fn space<M: PtFormat>(chip: Chip) -> (SimGpu, VecAddressSpace<M>, ListAlloc) {
    let mut gpu = SimGpu::new(chip, VRAM).unwrap();
    let mut alloc = ListAlloc::new(PT_BASE, 4096);
    let cfg = SpaceConfig {
        chip,
        va_start: 0,
        va_end: 1 << 48,
        kind: SpaceKind::Gpu,
    };
    let s = VecAddressSpace::<M>::new_vec(cfg, &mut alloc, gpu.vram_mut()).unwrap();
    (gpu, s, alloc)
}

/// The test window.
const WIN: u64 = 0x20_0000 * 5;
const WIN_LEN: u64 = 0x60_0000;

fn snapshot<M: PtFormat>(
    chip: Chip,
    gpu: &SimGpu,
    s: &VecAddressSpace<M>,
) -> Vec<Result<RefMapping, Fault>> {
    let mmu = RefMmu::new(chip);
    let pdb = Pdb::vidmem(s.root().raw());
    // Every 4 KiB where the small pages are, every 64 KiB elsewhere.
    (0..WIN_LEN / 4096)
        .filter(|i| *i < 0x40 || i % 16 == 0)
        .map(|i| mmu.walk(gpu.vram(), pdb, VirtAddr::new(WIN + i * 4096)))
        .collect()
}

/// Fails the k-th call of the [`VramAccess`] trait (a bulk call counts once), doing nothing.
struct CallFault<'a> {
    vram: &'a mut SimVram,
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
    gpu: &mut SimGpu,
    mode: Inject,
    k: u64,
    op: impl FnOnce(&mut dyn VramAccess, &mut SimTlb) -> T,
) -> T {
    let (vram, tlb) = gpu.parts();
    match mode {
        Inject::Calls => {
            let mut f = CallFault {
                vram,
                calls: 0,
                fail_at: k,
            };
            op(&mut f, tlb)
        }
        Inject::Words => {
            vram.add_fault(FaultRule::nth(k));
            let r = op(&mut *vram, tlb);
            vram.clear_faults();
            r
        }
    }
}

/// A map that needs new tables at several levels, mixes 4K/64K/2M pages, and shares a PD0
/// entry with an existing mapping; then, separately, its unmap.
fn run<M: PtFormat>(chip: Chip, mode: Inject) {
    let runs = [
        PhysRun::vram(VramAddress::new(0x4000_0000 + 0xf000), 0x21000),
        PhysRun::vram(VramAddress::new(0x6000_0000), 0x40_0000),
    ];
    let keep_runs = [PhysRun::vram(VramAddress::new(0x5000_0000), 0x3000)];
    let attrs = PteAttrs::default();
    let va = VaPlacement::Fixed(VirtAddr::new(WIN + 0xf000));
    let setup = || {
        let (mut gpu, mut s, mut alloc) = space::<M>(chip);
        let (vram, tlb) = gpu.parts();
        let (kept, _) = s
            .map(
                &mut alloc,
                vram,
                tlb,
                VaPlacement::Fixed(VirtAddr::new(WIN)),
                &keep_runs,
                attrs,
                None,
            )
            .unwrap();
        (gpu, s, alloc, kept)
    };
    let finish = |mut gpu: SimGpu, mut s: VecAddressSpace<M>, mut alloc: ListAlloc, kept, k| {
        let (vram, tlb) = gpu.parts();
        s.unmap(&mut alloc, vram, tlb, kept)
            .map_err(|(_, e)| e)
            .unwrap();
        assert_eq!(s.table_count(), 1, "k={k}: only the root remains");
        assert_eq!(alloc.used(), 1);
        s.destroy(&mut alloc);
        assert_eq!(alloc.used(), 0, "k={k}");
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
                let (vram, tlb) = gpu.parts();
                s.unmap(&mut alloc, vram, tlb, m)
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
        let (vram, tlb) = gpu.parts();
        let (m, _) = s
            .map(&mut alloc, vram, tlb, va, &runs, attrs, None)
            .unwrap();
        let mid = snapshot(chip, &gpu, &s);
        let r = with_fault(&mut gpu, mode, k, |v, t| s.unmap(&mut alloc, v, t, m));
        let done = match r {
            Ok(_) => true,
            Err((m, _)) => {
                failures += 1;
                assert_eq!(snapshot(chip, &gpu, &s), mid, "unmap, k={k}");
                let (vram, tlb) = gpu.parts();
                s.unmap(&mut alloc, vram, tlb, m.expect("mapping handed back"))
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
    run::<MmuV2>(Chip::Turing, Inject::Calls);
}

#[test]
fn vram_call_faults_v3() {
    run::<MmuV3>(Chip::BlackwellGb20x, Inject::Calls);
}

#[test]
fn vram_word_faults_v2() {
    run::<MmuV2>(Chip::Ampere, Inject::Words);
}

#[test]
fn vram_word_faults_v3() {
    run::<MmuV3>(Chip::Hopper, Inject::Words);
}

fn alloc_faults<M: PtFormat>(chip: Chip) {
    let runs = [PhysRun::vram(
        VramAddress::new(0x4000_0000 + 0xf000),
        0x4031000,
    )];
    for k in 1.. {
        let (mut gpu, mut s, mut alloc) = space::<M>(chip);
        let before = snapshot(chip, &gpu, &s);
        alloc.allocs = 0;
        alloc.fail_at = Some(k);
        let (vram, tlb) = gpu.parts();
        let r = s.map(
            &mut alloc,
            vram,
            tlb,
            VaPlacement::Fixed(VirtAddr::new(WIN + 0xf000)),
            &runs,
            PteAttrs::default(),
            None,
        );
        alloc.fail_at = None;
        let done = match r {
            Err(_) => {
                assert_eq!(snapshot(chip, &gpu, &s), before, "k={k}");
                assert_eq!(alloc.used(), 1, "k={k}");
                assert_eq!(gpu.tlb().invalidate_count(), 0);
                false
            }
            Ok((m, _)) => {
                let (vram, tlb) = gpu.parts();
                s.unmap(&mut alloc, vram, tlb, m)
                    .map_err(|(_, e)| e)
                    .unwrap();
                true
            }
        };
        s.destroy(&mut alloc);
        assert_eq!(alloc.used(), 0);
        if done {
            assert!(k > 3);
            break;
        }
    }
}

#[test]
fn table_alloc_faults_v2() {
    alloc_faults::<MmuV2>(Chip::Ampere);
}

#[test]
fn table_alloc_faults_v3() {
    alloc_faults::<MmuV3>(Chip::Hopper);
}

fn tlb_faults<M: PtFormat>(chip: Chip) {
    let (mut gpu, mut s, mut alloc) = space::<M>(chip);
    let runs = [PhysRun::vram(
        VramAddress::new(0x4000_0000),
        0x20_0000 + 0x11000,
    )];
    let before = snapshot(chip, &gpu, &s);
    gpu.tlb_mut().fail_invalidate(Some((1, TlbError::Timeout)));
    let (vram, tlb) = gpu.parts();
    let e = s
        .map(
            &mut alloc,
            vram,
            tlb,
            VaPlacement::Fixed(VirtAddr::new(WIN)),
            &runs,
            PteAttrs::default(),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(e, nova_mm_core::vmm::VmmError::Tlb(TlbError::Timeout)),
        "{e}"
    );
    assert_eq!(snapshot(chip, &gpu, &s), before);
    let (vram, tlb) = gpu.parts();
    let (m, _) = s
        .map(
            &mut alloc,
            vram,
            tlb,
            VaPlacement::Fixed(VirtAddr::new(WIN)),
            &runs,
            PteAttrs::default(),
            None,
        )
        .unwrap();
    let mid = snapshot(chip, &gpu, &s);
    gpu.tlb_mut().fail_invalidate(Some((1, TlbError::Timeout)));
    let (vram, tlb) = gpu.parts();
    let (m, _) = s.unmap(&mut alloc, vram, tlb, m).unwrap_err();
    assert_eq!(snapshot(chip, &gpu, &s), mid);
    let (vram, tlb) = gpu.parts();
    s.unmap(&mut alloc, vram, tlb, m.unwrap())
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(s.table_count(), 1);
    s.destroy(&mut alloc);
    assert_eq!(alloc.used(), 0);
}

#[test]
fn tlb_faults_v2() {
    tlb_faults::<MmuV2>(Chip::Turing);
}

#[test]
fn tlb_faults_v3() {
    tlb_faults::<MmuV3>(Chip::Hopper);
}

/// Reclamation: many mappings of every size, unmapped in a scrambled order, leave only the
/// root.
#[test]
fn reclamation_leaves_only_the_root() {
    for chip in [Chip::Ampere, Chip::BlackwellGb10x] {
        if chip.mmu_version() == nova_mm_core::MmuVersion::V2 {
            reclaim::<MmuV2>(chip);
        } else {
            reclaim::<MmuV3>(chip);
        }
    }
}

fn reclaim<M: PtFormat>(chip: Chip) {
    let (mut gpu, mut s, mut alloc) = space::<M>(chip);
    let mut maps = Vec::new();
    for i in 0..24u64 {
        let len = [0x1000, 0x11000, 0x20_0000, 0x23_5000][(i % 4) as usize];
        let runs = [PhysRun::vram(
            VramAddress::new(0x1000_0000 + i * 0x100_0000),
            len,
        )];
        let (vram, tlb) = gpu.parts();
        let va = 0x10_0000_0000 * (i % 3) + i * 0x40_0000 + (i % 5) * 0x3000;
        let (m, _) = s
            .map(
                &mut alloc,
                vram,
                tlb,
                VaPlacement::Fixed(VirtAddr::new(va & !0xfff)),
                &runs,
                PteAttrs::default(),
                None,
            )
            .unwrap();
        maps.push(m);
    }
    let (vram, tlb) = gpu.parts();
    let (sp, _) = s
        .reserve_sparse(
            &mut alloc,
            vram,
            tlb,
            VaPlacement::Anywhere { align: 4096 },
            0x4000_0000 + 0x23_4000,
        )
        .unwrap();
    maps.push(sp);
    assert!(s.table_count() > 10);
    let mut order: Vec<usize> = (0..maps.len()).collect();
    order.reverse();
    order.swap(0, 7);
    let mut maps: Vec<Option<_>> = maps.into_iter().map(Some).collect();
    for i in order {
        let (vram, tlb) = gpu.parts();
        s.unmap(&mut alloc, vram, tlb, maps[i].take().unwrap())
            .map_err(|(_, e)| e)
            .unwrap();
    }
    assert_eq!(s.table_count(), 1);
    assert_eq!(alloc.used(), 1);
    s.destroy(&mut alloc);
    assert_eq!(alloc.used(), 0);
}
