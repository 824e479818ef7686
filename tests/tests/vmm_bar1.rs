//! BAR1 user on the simulated GPU: the nova self-test's PRAMIN-write / BAR1-read cross check,
//! over a BAR1 page directory that "firmware" set up (existing entries imported and respected).
//!
//! Over both back ends: on the register path, the manager and the cross-check's "PRAMIN" side go
//! through the core's `hw::Pramin` on the simulated BAR0, and the hub-TLB invalidate through
//! `hw::TlbRegs`, whose completed request reaches the TLB model the BAR1 accesses go through.

mod common;

use common::backend::{Backend, Rig};
use common::ListAlloc;
use nova_mm_core::mmu::{MmuV2, MmuV3, PteAttrs};
use nova_mm_core::vmm::{
    pages_to_runs, Bar1Error, PhysRun, SpaceConfig, SpaceKind, VaError, VaPlacement,
    VecAddressSpace, VmmError,
};
use nova_mm_core::walk::PtFormat;
use nova_mm_core::{Chip, VirtAddr, VramAddress};
use nova_mm_sim::{Bar, Pdb, SimBar1};

const DIRECT: Backend = Backend::Direct;
const REGS: Backend = Backend::Regs { mmio64: false };

const BAR1_SIZE: u64 = 256 << 20;

fn bar1<M: PtFormat>(b: Backend, chip: Chip) {
    let mut gpu = Rig::new(b, chip, 8 << 30);
    let mut alloc = ListAlloc::new(4 << 30, 1024);
    let cfg = SpaceConfig {
        chip,
        va_start: 0,
        va_end: BAR1_SIZE,
        kind: SpaceKind::Bar,
    };
    // "Firmware": a root with one 64 KiB mapping at BAR1 offset 0, built and then abandoned.
    let (root, fw_tables) = {
        let mut fw = gpu
            .run(|v, _| VecAddressSpace::<M>::new_vec(cfg, &mut alloc, v))
            .unwrap();
        let (m, _) = gpu
            .run(|vram, tlb| {
                fw.map(
                    &mut alloc,
                    vram,
                    tlb,
                    VaPlacement::Fixed(VirtAddr::new(0)),
                    &[PhysRun::vram(VramAddress::new(0x1000_0000), 0x10000)],
                    PteAttrs::default(),
                    None,
                )
            })
            .unwrap();
        let _abandoned = m;
        (fw.root(), fw.table_count())
    };
    let fw_used = alloc.used();
    gpu.gpu().bind_bar(Bar::Bar1, Some(Pdb::vidmem(root.raw())));
    let mut space = gpu
        .run(|v, _| VecAddressSpace::<M>::over_existing_vec(cfg, root, v))
        .unwrap();
    assert_eq!(space.table_count(), fw_tables);
    // The firmware mapping is respected.
    let e = gpu
        .run(|vram, tlb| {
            space.map(
                &mut alloc,
                vram,
                tlb,
                VaPlacement::Fixed(VirtAddr::new(0x8000)),
                &[PhysRun::vram(VramAddress::new(0x2000_0000), 0x1000)],
                PteAttrs::default(),
                None,
            )
        })
        .unwrap_err();
    assert_eq!(e, VmmError::Va(VaError::InUse));

    // Map scattered VRAM pages (the self-test's split blocks) in one operation.
    let pages: Vec<VramAddress> = [
        0x3000_0000u64,
        0x3000_1000,
        0x3000_2000,
        0x3100_0000,
        0x3200_5000,
    ]
    .into_iter()
    .map(VramAddress::new)
    .collect();
    let mut runs = [PhysRun::vram(VramAddress::ZERO, 0); 8];
    let n = pages_to_runs(&pages, &mut runs).unwrap();
    assert_eq!(n, 3);
    let inv_before = gpu.gpu().tlb().invalidate_count();
    let win = gpu
        .run(|vram, tlb| space.bar1_map(&mut alloc, vram, tlb, &runs[..n], None))
        .unwrap();
    assert_eq!(gpu.gpu().tlb().invalidate_count(), inv_before + 1);
    let last = gpu.gpu().tlb().history().last().unwrap().req;
    assert!(last.hub_tlb_only, "BAR spaces invalidate the hub TLB only");
    assert_eq!(win.len(), 5 * 4096);

    for (i, p) in pages.iter().enumerate() {
        let off = i as u64 * 4096;
        // PRAMIN write, BAR1 read.
        gpu.run(|v, _| v.write32(p.checked_add(0x100).unwrap(), 0xDEAD_BEEF ^ i as u32))
            .unwrap();
        assert_eq!(
            win.read32(&mut SimBar1(&mut gpu.gpu()), off + 0x100)
                .unwrap(),
            0xDEAD_BEEF ^ i as u32
        );
        // BAR1 write, PRAMIN read.
        win.write64(
            &mut SimBar1(&mut gpu.gpu()),
            off + 0x200,
            0xCAFE_BABE_0000_0000 | i as u64,
        )
        .unwrap();
        assert_eq!(
            gpu.run(|v, _| v.read64(p.checked_add(0x200).unwrap()))
                .unwrap(),
            0xCAFE_BABE_0000_0000 | i as u64
        );
    }
    // Bounds are checked before any BAR access.
    assert!(matches!(
        win.read32(&mut SimBar1(&mut gpu.gpu()), 5 * 4096),
        Err(Bar1Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        win.read64(&mut SimBar1(&mut gpu.gpu()), 4),
        Err(Bar1Error::Misaligned { .. })
    ));

    let st = gpu
        .run(|vram, tlb| win.unmap(&mut space, &mut alloc, vram, tlb, Vec::new()))
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(st.invalidates, 1);
    // Our tables are gone, the firmware's remain (and still map its page).
    assert_eq!(space.table_count(), fw_tables);
    assert_eq!(alloc.used(), fw_used);
    assert!(gpu.gpu().bar1_read32(VirtAddr::new(0x10)).is_ok());
    assert!(gpu.gpu().bar1_read32(VirtAddr::new(0x10_0000)).is_err());
    space.destroy(&mut alloc);
    assert_eq!(alloc.used(), fw_used, "foreign tables are never freed");
    gpu.assert_protocol();
}

#[test]
fn bar1_cross_check_v2() {
    bar1::<MmuV2>(DIRECT, Chip::Turing);
}

#[test]
fn bar1_cross_check_v3() {
    bar1::<MmuV3>(DIRECT, Chip::BlackwellGb20x);
}

#[test]
fn bar1_cross_check_regs_turing() {
    bar1::<MmuV2>(REGS, Chip::Turing);
}

#[test]
fn bar1_cross_check_regs_hopper() {
    bar1::<MmuV3>(REGS, Chip::Hopper);
}

#[test]
fn bar1_cross_check_regs_blackwell() {
    bar1::<MmuV3>(REGS, Chip::BlackwellGb20x);
}
