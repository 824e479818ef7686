use nova_mm_core::{AckMode, CacheLevel, MmuVersion, PdbAperture, PdbTarget, VaScope};

use super::*;
use crate::refmmu::tests::{small_slot, v2_link, v3_link, va, BIG, ROOT, SMALL};

/// Writes a page-table tree for `a` through the counted `VramAccess` path (as PRAMIN would),
/// mapping the 4 KiB page at `page_pa`. Entries by hand from the tables:
/// v2: dual PD0 q0 = (0x9100 >> 4) | 2 = 0x912, q1 = (0xA000 >> 4) | 2 = 0xA02,
///     PTE = (PA >> 4) | 1;  v3: q0 = 0x9102, q1 = 0xA002, PTE = PA | 1.
fn build(gpu: &mut SimGpu, a: u64, page_pa: u64) {
    let ver = gpu.chip().mmu_version();
    // The upper levels through the back door (shared helper), the rest through VramAccess.
    let e = match ver {
        MmuVersion::V2 => v2_link(gpu.vram_mut(), a),
        MmuVersion::V3 => v3_link(gpu.vram_mut(), a),
    };
    let (q0, q1, pte) = match ver {
        MmuVersion::V2 => (0x912, 0xA02, (page_pa >> 4) | 1),
        MmuVersion::V3 => (0x9102, 0xA002, page_pa | 1),
    };
    assert_eq!((BIG, SMALL), (0x9100, 0xA000));
    gpu.write_u64s(VramAddress::new(e), &[q0, q1]).unwrap();
    gpu.write64(VramAddress::new(small_slot(a)), pte).unwrap();
}

#[test]
fn pramin_write_bar1_read_cross_check() {
    for chip in [Chip::Turing, Chip::BlackwellGb20x] {
        let mut gpu = SimGpu::new(chip, 64 << 20).unwrap();
        let a = 0x20_0000_1000u64; // some BAR1 VA
        build(&mut gpu, a, 0x30_0000);
        gpu.bind_bar(Bar::Bar1, Some(Pdb::vidmem(ROOT)));
        // "PRAMIN" write of data at the page, BAR1 read through the MMU.
        gpu.write64(VramAddress::new(0x30_0010), 0xCAFE_F00D_1234_5678)
            .unwrap();
        assert_eq!(
            gpu.bar1_read64(va(a + 0x10)).unwrap(),
            0xCAFE_F00D_1234_5678
        );
        assert_eq!(gpu.bar1_read32(va(a + 0x14)).unwrap(), 0xCAFE_F00D);
        // BAR1 write, "PRAMIN" read.
        gpu.bar1_write32(va(a + 0xFFC), 0xAABB_CCDD).unwrap();
        gpu.bar1_write64(va(a + 0x20), 7).unwrap();
        assert_eq!(
            gpu.read32(VramAddress::new(0x30_0FFC)).unwrap(),
            0xAABB_CCDD
        );
        assert_eq!(gpu.read64(VramAddress::new(0x30_0020)).unwrap(), 7);
        assert_eq!(
            gpu.bar_accesses(),
            BarAccesses {
                reads: 2,
                writes: 2,
                errors: 0
            }
        );
        // BAR accesses are not PRAMIN accesses.
        assert_eq!(gpu.vram().stats().reads, 2);
    }
}

#[test]
fn bar_errors() {
    let mut gpu = SimGpu::new(Chip::Ampere, 64 << 20).unwrap();
    let a = 0x1000u64;
    assert_eq!(gpu.bar1_read32(va(a)), Err(BarError::Unbound(Bar::Bar1)));
    build(&mut gpu, a, 0x30_0000);
    gpu.bind_bar(Bar::Bar2, Some(Pdb::vidmem(ROOT)));
    assert_eq!(gpu.bar2_read32(va(a)), Ok(0));
    assert_eq!(
        gpu.bar2_read64(va(a + 4)),
        Err(BarError::Misaligned {
            va: va(a + 4),
            align: 8
        })
    );
    assert!(matches!(
        gpu.bar2_read32(va(a + 0x1000)),
        Err(BarError::Fault(Fault::InvalidPte { .. }))
    ));
    // PRIVILEGE (bit 5): 0x3_0001 | 0x20 = PTE for 0x30_0000, privileged.
    let slot = VramAddress::new(small_slot(a + 0x2000));
    gpu.write64(slot, 0x3_0021).unwrap();
    assert_eq!(
        gpu.bar2_read32(va(a + 0x2000)),
        Err(BarError::Fault(Fault::Privilege))
    );
    gpu.set_bar_privileged(true);
    assert_eq!(gpu.bar2_read32(va(a + 0x2000)), Ok(0));
    // Sysmem page (APERTURE 2 -> 0x4): 0x3_0000 | 4 | 1.
    gpu.write64(VramAddress::new(small_slot(a + 0x3000)), 0x3_0005)
        .unwrap();
    assert_eq!(
        gpu.bar2_write32(va(a + 0x3000), 1),
        Err(BarError::NotVidmem(Aperture::SysCoherent))
    );
    // A vidmem page beyond the 64 MiB VRAM: PA 0x1000_0000 >> 4 = 0x100_0000 -> 0x100_0001.
    gpu.write64(VramAddress::new(small_slot(a + 0x4000)), 0x100_0001)
        .unwrap();
    assert!(matches!(
        gpu.bar2_read64(va(a + 0x4000)),
        Err(BarError::Vram(VramError::OutOfRange { .. }))
    ));
    assert_eq!(gpu.bar_accesses().errors, 6);
    assert_eq!(gpu.bar_pdb(Bar::Bar2), Some(Pdb::vidmem(ROOT)));
    assert_eq!(gpu.bar_pdb(Bar::Bar1), None);
}

#[test]
fn parts_split_borrow_and_hub_only_staleness() {
    let mut gpu = SimGpu::new(Chip::Hopper, 64 << 20).unwrap();
    let a = 0x4000_0000u64;
    build(&mut gpu, a, 0x30_0000);
    gpu.bind_bar(Bar::Bar1, Some(Pdb::vidmem(ROOT)));
    gpu.write64(VramAddress::new(0x30_0000), 1).unwrap();
    gpu.write64(VramAddress::new(0x31_0000), 2).unwrap();
    assert_eq!(gpu.bar1_read64(va(a)).unwrap(), 1);
    let ch = gpu
        .channel_translate(Pdb::vidmem(ROOT), va(a), Access::READ)
        .unwrap();
    assert_eq!(ch.pa.raw(), 0x30_0000);

    // Remap to 0x31_0000 (v3 PTE 0x31_0001) and invalidate, holding both halves at once.
    {
        let (vram, tlb) = gpu.parts();
        vram.write64(VramAddress::new(small_slot(a)), 0x31_0001)
            .unwrap();
        // Stale before any invalidate.
        assert_eq!(
            tlb.translate(vram, TlbPath::Hub, Pdb::vidmem(ROOT), va(a), Access::READ)
                .unwrap()
                .pa
                .raw(),
            0x30_0000
        );
        tlb.invalidate(&InvalidateRequest {
            pdb: PdbTarget::One {
                addr: ROOT,
                aperture: PdbAperture::Vidmem,
            },
            va: VaScope::All,
            hub_tlb_only: true,
            cache_level: CacheLevel::PteOnly,
            ack: AckMode::Globally,
        })
        .unwrap();
    }
    assert_eq!(gpu.bar1_read64(va(a)).unwrap(), 2);
    // The channel (GPC TLB) still sees the old page.
    let ch = gpu
        .channel_translate(Pdb::vidmem(ROOT), va(a), Access::READ)
        .unwrap();
    assert_eq!(ch.pa.raw(), 0x30_0000);
    gpu.invalidate(&InvalidateRequest::EVERYTHING).unwrap();
    let ch = gpu
        .channel_translate(Pdb::vidmem(ROOT), va(a), Access::READ)
        .unwrap();
    assert_eq!(ch.pa.raw(), 0x31_0000);
    assert_eq!(gpu.tlb().invalidate_count(), 2);
}

/// The shape the VMM will use: one value that is both backends.
fn both<T: VramAccess + TlbInvalidate>(t: &mut T) -> Result<(), TlbError> {
    let _ = t.size();
    t.invalidate(&InvalidateRequest::EVERYTHING)
}

#[test]
fn sim_gpu_is_both_backends() {
    let mut gpu = SimGpu::new(Chip::Volta, 1 << 20).unwrap();
    both(&mut gpu).unwrap();
    let (vram, tlb) = gpu.into_parts();
    assert_eq!(vram.size(), 1 << 20);
    assert_eq!(tlb.invalidate_count(), 1);
    assert!(SimGpu::new(Chip::Volta, (256 << 30) + 1).is_err());
}

#[test]
fn sim_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SimGpu>();
    check::<SimVram>();
    check::<SimTlb>();
}
