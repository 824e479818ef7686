//! Access counts of the manager on the simulated GPU: a fresh map reads no VRAM (the shadow
//! knows the tables), writes one bulk run per table, and issues exactly one invalidate; the
//! cache level is the highest level written.

mod common;

use common::ListAlloc;
use nova_mm_core::mmu::{MmuV2, MmuV3, PteAttrs};
use nova_mm_core::tlb::CacheLevel;
use nova_mm_core::vmm::{PhysRun, SpaceConfig, SpaceKind, VaPlacement, VecAddressSpace};
use nova_mm_core::walk::PtFormat;
use nova_mm_core::{Chip, PageSize, VirtAddr, VramAddress};
use nova_mm_sim::SimGpu;

fn counts<M: PtFormat>(chip: Chip, root_level: CacheLevel) {
    let mut gpu = SimGpu::new(chip, 16 << 30).unwrap();
    let mut alloc = ListAlloc::new(8 << 30, 4096);
    let cfg = SpaceConfig {
        chip,
        va_start: 0,
        va_end: 1 << 48,
        kind: SpaceKind::Gpu,
    };
    let mut s = VecAddressSpace::<M>::new_vec(cfg, &mut alloc, gpu.vram_mut()).unwrap();
    let len = 64 << 20;
    let runs = [PhysRun::vram(VramAddress::new(1 << 30), len)];
    gpu.vram_mut().reset_stats();
    let (vram, tlb) = gpu.parts();
    let (m, st) = s
        .map(
            &mut alloc,
            vram,
            tlb,
            VaPlacement::Fixed(VirtAddr::new(0x40_0000_0000)),
            &runs,
            PteAttrs::default(),
            Some(PageSize::Size4K),
        )
        .unwrap();
    let vs = gpu.vram().stats();
    assert_eq!(vs.reads, 0, "a fresh map reads nothing");
    let tables = st.tables_allocated;
    // 32 small tables + PD0 + PD1 + PD2 (+ PD3 on v3).
    assert_eq!(tables, 32 + M::DIR_LEVELS as u64 - 1);
    // Zeroing the new directories (prepare; the 32 small tables are written whole by the
    // operation, so they are not zeroed first) + one run per table and one in the root.
    let calls = vs.calls.write_u64s + vs.calls.fill_u64 + vs.calls.write64;
    assert_eq!(calls, (tables - 32) + tables + 1, "{vs:?}");
    // Words: the PTEs, the zeroed directories, 32 dual PD0 entries, one entry per upper level.
    let dirs = tables - 32;
    assert_eq!(
        vs.writes,
        32 * 512 + dirs * 512 + 32 * 2 + (M::DIR_LEVELS as u64 - 1),
        "{vs:?}"
    );
    assert_eq!(gpu.tlb().invalidate_count(), 1);
    assert_eq!(gpu.tlb().history()[0].req.cache_level, root_level);
    // A second map inside existing tables only changes PTEs.
    let runs2 = [PhysRun::vram(VramAddress::new(2 << 30), 0x2000)];
    let (vram, tlb) = gpu.parts();
    let (m2, st2) = s
        .map(
            &mut alloc,
            vram,
            tlb,
            VaPlacement::Fixed(VirtAddr::new(0x40_0000_0000 + len)),
            &runs2,
            PteAttrs::default(),
            None,
        )
        .unwrap();
    assert_eq!(st2.tables_allocated, 1, "one new small table");
    assert_eq!(st2.cache_level, Some(CacheLevel::UpToPde0));
    let (vram, tlb) = gpu.parts();
    let st3 = s
        .protect(
            vram,
            tlb,
            VirtAddr::new(0x40_0000_0000 + len),
            0x1000,
            PteAttrs {
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(st3.cache_level, Some(CacheLevel::PteOnly));
    assert_eq!(st3.bulk_writes, 1);
    for m in [m, m2] {
        let (vram, tlb) = gpu.parts();
        s.unmap(&mut alloc, vram, tlb, m)
            .map_err(|(_, e)| e)
            .unwrap();
    }
    assert_eq!(gpu.tlb().invalidate_count(), 5);
    assert_eq!(s.table_count(), 1);
}

#[test]
fn counts_v2() {
    counts::<MmuV2>(Chip::Turing, CacheLevel::UpToPde3);
}

#[test]
fn counts_v3() {
    counts::<MmuV3>(Chip::Hopper, CacheLevel::UpToPde4);
}
