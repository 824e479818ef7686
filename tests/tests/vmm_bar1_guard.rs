//! The BAR1 guard on the simulated GPU: dropping a `Bar1Guard` unmaps its window in one
//! operation (one hub-only invalidate; the reference MMU and the TLB model see the pages
//! unmapped), `finish` reports the result, and a failed unmap on drop lands in the owner's slot
//! with the window, still mapped, so that it can be retried.
//!
//! The simulated GPU is shared (`Rc<RefCell<_>>`) between the guard's VRAM and TLB borrows and
//! the BAR1 accessor, as BAR0 (PRAMIN, invalidate registers) and BAR1 are separate apertures on
//! hardware.

use std::cell::RefCell;
use std::rc::Rc;

use nova_mm_core::mmu::{MmuV2, MmuV3};
use nova_mm_core::tlb::TlbError;
use nova_mm_core::vmm::{
    pages_to_runs, Bar1Error, Bar1UnmapFailure, PageTableAllocator, PhysRun, PtAllocError,
    SpaceConfig, SpaceKind, VecAddressSpace, VmmError,
};
use nova_mm_core::walk::PtFormat;
use nova_mm_core::{Chip, VirtAddr, VramAccess, VramAddress};
use nova_mm_sim::{Access, Bar, Pdb, RefMmu, SharedGpu as Shared, SimGpu};

/// Page tables from a free list (this file's own, independent of the other VMM tests).
struct Tables {
    free: Vec<u64>,
    total: usize,
}

impl Tables {
    fn new(base: u64, n: u64) -> Self {
        Self {
            free: (0..n).rev().map(|i| base + i * 4096).collect(),
            total: n as usize,
        }
    }
    fn used(&self) -> usize {
        self.total - self.free.len()
    }
}

impl PageTableAllocator for Tables {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        self.free
            .pop()
            .map(VramAddress::new)
            .ok_or(PtAllocError::OutOfMemory)
    }
    fn free_table(&mut self, addr: VramAddress) {
        assert!(!self.free.contains(&addr.raw()), "double free of {addr}");
        self.free.push(addr.raw());
    }
}

const BAR1_SIZE: u64 = 256 << 20;

/// Scattered VRAM pages (three runs).
const PAGES: [u64; 5] = [
    0x3000_0000,
    0x3000_1000,
    0x3000_2000,
    0x3100_0000,
    0x3200_5000,
];

struct Rig<M: PtFormat> {
    chip: Chip,
    gpu: Shared,
    tables: Tables,
    space: VecAddressSpace<M>,
    runs: Vec<PhysRun>,
    baseline: usize,
}

fn rig<M: PtFormat>(chip: Chip) -> Rig<M> {
    let gpu = Shared(Rc::new(RefCell::new(SimGpu::new(chip, 4 << 30).unwrap())));
    let mut tables = Tables::new(1 << 30, 256);
    let cfg = SpaceConfig {
        chip,
        va_start: 0,
        va_end: BAR1_SIZE,
        kind: SpaceKind::Bar,
    };
    let space = VecAddressSpace::<M>::new_vec(cfg, &mut tables, &mut gpu.clone()).unwrap();
    gpu.0
        .borrow_mut()
        .bind_bar(Bar::Bar1, Some(Pdb::vidmem(space.root().raw())));
    let pages: Vec<VramAddress> = PAGES.into_iter().map(VramAddress::new).collect();
    let mut runs = [PhysRun::vram(VramAddress::ZERO, 0); 8];
    let n = pages_to_runs(&pages, &mut runs).unwrap();
    let baseline = tables.used();
    Rig {
        chip,
        gpu,
        tables,
        space,
        runs: runs[..n].to_vec(),
        baseline,
    }
}

impl<M: PtFormat> Rig<M> {
    fn invalidates(&self) -> usize {
        self.gpu.0.borrow().tlb().history().len()
    }

    /// What the reference MMU (not the core's walker) says about every page of the window.
    fn ref_mapped(&self, va: VirtAddr) -> Vec<Option<u64>> {
        let g = self.gpu.0.borrow();
        let pdb = Pdb::vidmem(self.space.root().raw());
        (0..PAGES.len() as u64)
            .map(|i| {
                RefMmu::new(self.chip)
                    .translate(
                        g.vram(),
                        pdb,
                        va.checked_add(i * 4096).unwrap(),
                        Access::READ,
                    )
                    .ok()
                    .map(|t| t.pa.raw())
            })
            .collect()
    }

    fn expect_mapped(&self, va: VirtAddr) {
        let want: Vec<Option<u64>> = PAGES.iter().map(|&p| Some(p)).collect();
        assert_eq!(self.ref_mapped(va), want);
    }

    fn expect_unmapped(&self, va: VirtAddr) {
        assert_eq!(self.ref_mapped(va), vec![None; PAGES.len()]);
        // Through the TLB model too: no stale translation survives.
        for i in 0..PAGES.len() as u64 {
            let a = va.checked_add(i * 4096).unwrap();
            assert!(self.gpu.0.borrow_mut().bar1_read32(a).is_err(), "{a}");
        }
    }
}

fn drop_unmaps<M: PtFormat>(chip: Chip) {
    let mut r = rig::<M>(chip);
    let mut slot: Option<Bar1UnmapFailure> = None;
    let (mut vram, mut tlb, mut bar) = (r.gpu.clone(), r.gpu.clone(), r.gpu.clone());
    let before_map = r.invalidates();
    let va = {
        let guard = r
            .space
            .bar1_map_guarded(
                &mut r.tables,
                &mut vram,
                &mut tlb,
                &r.runs,
                None,
                Vec::new(),
                &mut slot,
            )
            .unwrap();
        assert_eq!(guard.len(), PAGES.len() as u64 * 4096);
        for (i, &p) in PAGES.iter().enumerate() {
            let off = i as u64 * 4096;
            // BAR1 write, PRAMIN read; PRAMIN write, BAR1 read.
            guard
                .write32(&mut bar, off + 0x40, 0xC0DE_0000 | i as u32)
                .unwrap();
            let g = &r.gpu.0;
            assert_eq!(
                g.borrow_mut().read32(VramAddress::new(p + 0x40)).unwrap(),
                0xC0DE_0000 | i as u32
            );
            g.borrow_mut()
                .write64(VramAddress::new(p + 0x80), 0xFEED_0000 | i as u64)
                .unwrap();
            assert_eq!(
                guard.read64(&mut bar, off + 0x80).unwrap(),
                0xFEED_0000 | i as u64
            );
        }
        // Bounds and alignment are checked before any BAR access.
        let accesses = r.gpu.0.borrow().bar_accesses();
        assert!(matches!(
            guard.read32(&mut bar, guard.len()),
            Err(Bar1Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            guard.write64(&mut bar, 4, 0),
            Err(Bar1Error::Misaligned { .. })
        ));
        assert_eq!(r.gpu.0.borrow().bar_accesses(), accesses);
        guard.va()
    };
    // The guard was dropped at the end of the block: one map invalidate, one unmap invalidate.
    assert!(slot.is_none());
    assert_eq!(r.invalidates(), before_map + 2);
    let last = *r.gpu.0.borrow().tlb().history().last().unwrap();
    assert_eq!(last.result, Ok(()));
    assert!(
        last.req.hub_tlb_only,
        "BAR spaces invalidate the hub TLB only"
    );
    r.expect_unmapped(va);
    assert_eq!(r.space.table_count(), 1, "only the root remains");
    assert_eq!(r.tables.used(), r.baseline);
    r.space.destroy(&mut r.tables);
    assert_eq!(r.tables.used(), 0);
}

#[test]
fn drop_unmaps_in_one_hub_invalidate_v2() {
    drop_unmaps::<MmuV2>(Chip::Turing);
}

#[test]
fn drop_unmaps_in_one_hub_invalidate_v3() {
    drop_unmaps::<MmuV3>(Chip::Hopper);
}

fn failed_drop_is_reported<M: PtFormat>(chip: Chip) {
    let mut r = rig::<M>(chip);
    let mut slot: Option<Bar1UnmapFailure> = None;
    let (mut vram, mut tlb, mut bar) = (r.gpu.clone(), r.gpu.clone(), r.gpu.clone());
    let va = {
        let guard = r
            .space
            .bar1_map_guarded(
                &mut r.tables,
                &mut vram,
                &mut tlb,
                &r.runs,
                None,
                Vec::new(),
                &mut slot,
            )
            .unwrap();
        guard.write32(&mut bar, 0x10, 0x1234_5678).unwrap();
        // The unmap's invalidate (the next one) will time out.
        r.gpu
            .0
            .borrow_mut()
            .tlb_mut()
            .fail_invalidate(Some((1, TlbError::Timeout)));
        guard.va()
    };
    let failure = slot.take().expect("the failed unmap is recorded");
    assert_eq!(failure.error, VmmError::Tlb(TlbError::Timeout));
    let window = failure
        .window
        .expect("nothing changed, so the window comes back");
    assert_eq!(window.va(), va);
    // All-or-nothing: the hardware still maps the whole window, data intact.
    r.expect_mapped(va);
    assert_eq!(window.read32(&mut bar, 0x10).unwrap(), 0x1234_5678);
    // The owner retries once the TLB works again.
    let st = window
        .unmap(&mut r.space, &mut r.tables, &mut vram, &mut tlb, Vec::new())
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(st.invalidates, 1);
    r.expect_unmapped(va);
    assert_eq!(r.tables.used(), r.baseline);
}

#[test]
fn failed_unmap_on_drop_goes_to_the_slot_v2() {
    failed_drop_is_reported::<MmuV2>(Chip::Ada);
}

#[test]
fn failed_unmap_on_drop_goes_to_the_slot_v3() {
    failed_drop_is_reported::<MmuV3>(Chip::BlackwellGb20x);
}

#[test]
fn finish_reports_and_leaves_the_slot_alone() {
    let mut r = rig::<MmuV2>(Chip::Volta);
    let mut slot: Option<Bar1UnmapFailure> = None;
    let (mut vram, mut tlb) = (r.gpu.clone(), r.gpu.clone());
    // A failing finish hands the window back; the slot stays empty.
    let guard = r
        .space
        .bar1_map_guarded(
            &mut r.tables,
            &mut vram,
            &mut tlb,
            &r.runs,
            None,
            Vec::new(),
            &mut slot,
        )
        .unwrap();
    let va = guard.va();
    r.gpu
        .0
        .borrow_mut()
        .tlb_mut()
        .fail_invalidate(Some((1, TlbError::DeviceGone)));
    let (window, e) = guard.finish().unwrap_err();
    assert_eq!(e, VmmError::Tlb(TlbError::DeviceGone));
    assert!(slot.is_none());
    r.expect_mapped(va);
    // The window can be guarded again; a successful finish is one hub-only invalidate.
    let before = r.invalidates();
    let guard = window.unwrap().into_guard(
        &mut r.space,
        &mut r.tables,
        &mut vram,
        &mut tlb,
        Vec::new(),
        &mut slot,
    );
    let st = guard.finish().unwrap();
    assert_eq!(st.invalidates, 1);
    assert_eq!(r.invalidates(), before + 1);
    assert!(slot.is_none());
    r.expect_unmapped(va);
    assert_eq!(r.tables.used(), r.baseline);
}

#[test]
fn an_occupied_slot_keeps_the_first_failure() {
    let mut r = rig::<MmuV3>(Chip::Hopper);
    let mut slot: Option<Bar1UnmapFailure> = None;
    let (mut vram, mut tlb) = (r.gpu.clone(), r.gpu.clone());
    let mut vas = Vec::new();
    for _ in 0..2 {
        let guard = r
            .space
            .bar1_map_guarded(
                &mut r.tables,
                &mut vram,
                &mut tlb,
                &r.runs,
                None,
                Vec::new(),
                &mut slot,
            )
            .unwrap();
        vas.push(guard.va());
        r.gpu
            .0
            .borrow_mut()
            .tlb_mut()
            .fail_invalidate(Some((1, TlbError::Timeout)));
        drop(guard);
    }
    let first = slot.take().unwrap();
    assert_eq!(first.window.as_ref().map(|w| w.va()), Some(vas[0]));
    // Both windows are still mapped; the second one stays so until the space is destroyed.
    r.expect_mapped(vas[0]);
    r.expect_mapped(vas[1]);
    let _ = first
        .window
        .unwrap()
        .unmap(&mut r.space, &mut r.tables, &mut vram, &mut tlb, Vec::new())
        .map_err(|(_, e)| e)
        .unwrap();
    r.expect_unmapped(vas[0]);
    r.expect_mapped(vas[1]);
    r.space.destroy(&mut r.tables);
    assert_eq!(r.tables.used(), 0, "destroy returns every table");
}
