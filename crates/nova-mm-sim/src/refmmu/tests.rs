//! Hand-built page tables, every entry written as a raw u64 from the bit tables of
//! `mmu-formats.md` (arithmetic in the comments), never from the core's entry types.

use proptest::prelude::*;

use super::*;

pub(crate) const MIB: u64 = 1 << 20;

pub(crate) fn vram() -> SimVram {
    SimVram::new(64 * MIB).unwrap()
}

pub(crate) fn w(v: &mut SimVram, addr: u64, val: u64) {
    assert!(v.poke64(addr, val), "poke {addr:#x}");
}

pub(crate) fn va(a: u64) -> VirtAddr {
    VirtAddr::new(a)
}

// ---------------------------------------------------------------------------------------------
// Test-local encoders, from the tables (checked against literals in `encoders_known_answers`).

/// v2 upper PDE / dual-PDE small half to a vidmem table (§1.2): APERTURE 2:1 = 1 (video),
/// ADDRESS_VID 32:8 = PA >> 12, i.e. entry = (PA >> 4) | (1 << 1).
pub(crate) fn v2_pde(pa: u64) -> u64 {
    (pa >> 4) | 0b010
}
/// v2 dual-PDE big half to a vidmem big PT (§1.3): ADDRESS_BIG 32:4 = PA >> 8, APERTURE_BIG 2:1.
pub(crate) fn v2_big(pa: u64) -> u64 {
    (pa >> 4) | 0b010
}
/// v2 valid vidmem PTE (§1.4): VALID 0, APERTURE 0, ADDRESS_VID 32:8 = PA >> 12.
pub(crate) fn v2_pte(pa: u64) -> u64 {
    (pa >> 4) | 1
}
/// v3 PDE to a vidmem table (§2.2): APERTURE 2:1 = 1, ADDRESS 51:12 in place.
pub(crate) fn v3_pde(pa: u64) -> u64 {
    pa | 0b010
}
/// v3 valid vidmem PTE (§2.3): VALID 0, APERTURE 0, PCF 0 (RW, atomic, cached, ACE).
pub(crate) fn v3_pte(pa: u64) -> u64 {
    pa | 1
}

#[test]
fn encoders_known_answers() {
    // 0x2000 >> 4 = 0x200; | 0b010 = 0x202.
    assert_eq!(v2_pde(0x2000), 0x202);
    // 0x12_3456_7000 >> 4 = 0x1_2345_6700 (bits 32:8 hold 0x12_3456_7 = PA>>12); | 2.
    assert_eq!(v2_pde(0x12_3456_7000), 0x1_2345_6702);
    // Big PT at 0x5100 (256-byte aligned): 0x5100 >> 4 = 0x510, | 2 = 0x512; bits 32:4 hold
    // 0x51 = 0x5100 >> 8.
    assert_eq!(v2_big(0x5100), 0x512);
    // 4 KiB page at 0x12_3000: 0x12300 | 1.
    assert_eq!(v2_pte(0x12_3000), 0x1_2301);
    assert_eq!(v3_pde(0x2000), 0x2002);
    assert_eq!(v3_pte(0x12_3000), 0x12_3001);
}

// ---------------------------------------------------------------------------------------------
// Tree builders. Fixed table addresses: PD4/PD3 root at 0x1000, then 0x2000, 0x3000, 0x4000,
// PD0 at 0x8000, big PT at 0x9100, small PT at 0xA000.

pub(crate) const ROOT: u64 = 0x1000;
pub(crate) const PD0: u64 = 0x8000;
pub(crate) const BIG: u64 = 0x9100;
pub(crate) const SMALL: u64 = 0xA000;

/// Index of `va` at a level: `(va >> shift) & (entries - 1)`, from the level tables.
pub(crate) fn idx(va: u64, shift: u32, bits: u32) -> u64 {
    (va >> shift) & ((1 << bits) - 1)
}

/// v2: PD3 (48:47) -> PD2 at 0x2000 (46:38) -> PD1 at 0x3000 (37:29) -> PD0 at 0x8000.
/// Returns the PD0 entry address for `va`.
pub(crate) fn v2_link(v: &mut SimVram, a: u64) -> u64 {
    w(v, ROOT + idx(a, 47, 2) * 8, v2_pde(0x2000));
    w(v, 0x2000 + idx(a, 38, 9) * 8, v2_pde(0x3000));
    w(v, 0x3000 + idx(a, 29, 9) * 8, v2_pde(PD0));
    PD0 + idx(a, 21, 8) * 16
}

/// v3: PD4 (56) -> PD3 at 0x2000 (55:47) -> PD2 at 0x3000 (46:38) -> PD1 at 0x4000 (37:29) ->
/// PD0 at 0x8000.
pub(crate) fn v3_link(v: &mut SimVram, a: u64) -> u64 {
    w(v, ROOT + idx(a, 56, 1) * 8, v3_pde(0x2000));
    w(v, 0x2000 + idx(a, 47, 9) * 8, v3_pde(0x3000));
    w(v, 0x3000 + idx(a, 38, 9) * 8, v3_pde(0x4000));
    w(v, 0x4000 + idx(a, 29, 9) * 8, v3_pde(PD0));
    PD0 + idx(a, 21, 8) * 16
}

pub(crate) fn big_slot(a: u64) -> u64 {
    BIG + idx(a, 16, 5) * 8
}
pub(crate) fn small_slot(a: u64) -> u64 {
    SMALL + idx(a, 12, 9) * 8
}

/// A dual PD0 pointing at both page tables (vidmem).
pub(crate) fn dual(v: &mut SimVram, pd0e: u64, version: MmuVersion) {
    match version {
        MmuVersion::V2 => {
            w(v, pd0e, v2_big(BIG));
            w(v, pd0e + 8, v2_pde(SMALL));
        }
        MmuVersion::V3 => {
            // q0 = 0x9100 | 2 (ADDRESS_BIG 51:8 in place); q1 = 0xA000 | 2.
            w(v, pd0e, BIG | 2);
            w(v, pd0e + 8, SMALL | 2);
        }
    }
}

pub(crate) fn pdb() -> Pdb {
    Pdb::vidmem(ROOT)
}

fn tr(chip: Chip, v: &SimVram, a: u64, acc: Access) -> Result<Translation, Fault> {
    RefMmu::new(chip).translate(v, pdb(), va(a), acc)
}

// A VA with non-zero indices at every level of both versions:
// v2: bits 48:47 = 1, 46:38 = 0x0AB, 37:29 = 0x1CD, 28:21 = 0x5E, 20:16 = 0x13, 20:12 = 0x13A.
pub(crate) const VA2: u64 =
    (1 << 47) | (0xAB << 38) | (0x1CD << 29) | (0x5E << 21) | (0x13A << 12) | 0xABC;
// v3 adds bit 56 and uses 55:47 = 0x101.
pub(crate) const VA3: u64 =
    (1 << 56) | (0x101 << 47) | (0xAB << 38) | (0x1CD << 29) | (0x5E << 21) | (0x13A << 12) | 0xABC;

// ---------------------------------------------------------------------------------------------
// All page sizes.

#[test]
fn v2_small_page() {
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    dual(&mut v, e, MmuVersion::V2);
    // 4 KiB page at 0x12_3000: PTE 0x1_2301.
    w(&mut v, small_slot(VA2), 0x1_2301);
    let t = tr(Chip::Turing, &v, VA2, Access::READ).unwrap();
    assert_eq!(t.pa, PhysAddr::new(0x12_3ABC)); // 0x12_3000 + 0xABC
    assert_eq!(t.mapping.page_size, PageSize::Size4K);
    assert_eq!(t.mapping.aperture, Aperture::Vidmem);
    assert_eq!(t.mapping.level, Level::SmallPt);
    assert_eq!(t.mapping.pte_addr, VramAddress::new(SMALL + 0x13A * 8));
    assert_eq!(t.mapping.va_base, VirtAddr::new(VA2 & !0xFFF));
    assert_eq!(t.mapping.attrs, PteAttrs::default());
}

#[test]
fn v2_big_page() {
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    dual(&mut v, e, MmuVersion::V2);
    // 64 KiB page at 0x4_0000: 0x4_0000 >> 4 = 0x4000, | VALID = 0x4001.
    w(&mut v, big_slot(VA2), 0x4001);
    let t = tr(Chip::Ada, &v, VA2, Access::WRITE).unwrap();
    // Offset in the 64 KiB page: VA bits 15:0 = 0xAABC (0x13A << 12 = 0x13_A000, low 16 = 0xA000).
    assert_eq!(t.pa, PhysAddr::new(0x4_AABC));
    assert_eq!(t.mapping.page_size, PageSize::Size64K);
    assert_eq!(t.mapping.level, Level::BigPt);
    // Big PT index = VA bits 20:16 = 0x13A >> 4 = 0x13.
    assert_eq!(t.mapping.pte_addr, VramAddress::new(BIG + 0x13 * 8));
}

#[test]
fn v2_2m_page_in_pd0() {
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    // 2 MiB page at 0x60_0000: 0x60_0000 >> 4 = 0x6_0000, | VALID = 0x6_0001; high qword 0.
    w(&mut v, e, 0x6_0001);
    let t = tr(Chip::Pascal, &v, VA2, Access::READ).unwrap();
    // Offset in 2 MiB: VA bits 20:0 = 0x13_AABC.
    assert_eq!(t.pa, PhysAddr::new(0x73_AABC));
    assert_eq!(t.mapping.page_size, PageSize::Size2M);
    assert_eq!(t.mapping.level, Level::Pd0);
    // Strict: a non-zero high qword beside a 2 MiB PTE is reserved.
    w(&mut v, e + 8, 0x602);
    assert!(matches!(
        tr(Chip::Pascal, &v, VA2, Access::READ),
        Err(Fault::ReservedBits {
            level: Level::Pd0,
            ..
        })
    ));
    assert!(RefMmu::lenient(Chip::Pascal)
        .translate(&v, pdb(), va(VA2), Access::READ)
        .is_ok());
}

#[test]
fn v2_512m_page_only_from_ampere() {
    let mut v = vram();
    w(&mut v, ROOT + 8, v2_pde(0x2000)); // PD3[1]
    w(&mut v, 0x2000 + 0xAB * 8, v2_pde(0x3000)); // PD2[0xAB]
                                                  // 512 MiB page at 0x2000_0000 (inside 64 MiB VRAM is not required for translation):
                                                  // 0x2000_0000 >> 4 = 0x200_0000, | VALID = 0x200_0001.
    w(&mut v, 0x3000 + 0x1CD * 8, 0x200_0001);
    let t = tr(Chip::Ampere, &v, VA2, Access::READ).unwrap();
    // Offset in 512 MiB: VA bits 28:0 = (0x5E << 21) | 0x13_AABC = 0xBC0_0000 + 0x13_AABC.
    assert_eq!(t.pa, PhysAddr::new(0x2000_0000 + 0xBD3_AABC));
    assert_eq!(t.mapping.page_size, PageSize::Size512M);
    assert_eq!(t.mapping.level, Level::Pd1);
    for chip in [Chip::Pascal, Chip::Volta, Chip::Turing] {
        assert_eq!(
            tr(chip, &v, VA2, Access::READ),
            Err(Fault::LargePageNotAllowed { level: Level::Pd1 }),
            "{chip}"
        );
    }
    assert!(tr(Chip::Ada, &v, VA2, Access::READ).is_ok());
    // IS_PTE at PD2 or PD3 is never allowed on v2.
    w(&mut v, 0x2000 + 0xAB * 8, 0x1);
    assert_eq!(
        tr(Chip::Ada, &v, VA2, Access::READ),
        Err(Fault::LargePageNotAllowed { level: Level::Pd2 })
    );
    w(&mut v, ROOT + 8, 0x1);
    assert_eq!(
        tr(Chip::Ada, &v, VA2, Access::READ),
        Err(Fault::LargePageNotAllowed { level: Level::Pd3 })
    );
}

#[test]
fn v3_small_and_big_pages() {
    let mut v = vram();
    let e = v3_link(&mut v, VA3);
    dual(&mut v, e, MmuVersion::V3);
    // 4 KiB at 0x12_3000: 0x12_3000 | 1.
    w(&mut v, small_slot(VA3), 0x12_3001);
    let t = tr(Chip::Hopper, &v, VA3, Access::READ).unwrap();
    assert_eq!(t.pa, PhysAddr::new(0x12_3ABC));
    assert_eq!(t.mapping.page_size, PageSize::Size4K);
    assert_eq!(t.mapping.attrs.pcf, Some(0));
    // Now a valid big PTE: 64 KiB at 0x4_0000 -> 0x4_0001. The big page wins.
    w(&mut v, big_slot(VA3), 0x4_0001);
    let t = tr(Chip::BlackwellGb20x, &v, VA3, Access::READ).unwrap();
    assert_eq!(t.pa, PhysAddr::new(0x4_AABC));
    assert_eq!(t.mapping.page_size, PageSize::Size64K);
}

#[test]
fn v3_2m_512m_256g() {
    let mut v = vram();
    let e = v3_link(&mut v, VA3);
    // 2 MiB at 0x60_0000: 0x60_0001.
    w(&mut v, e, 0x60_0001);
    let t = tr(Chip::Hopper, &v, VA3, Access::READ).unwrap();
    assert_eq!(t.pa, PhysAddr::new(0x73_AABC));
    assert_eq!(t.mapping.page_size, PageSize::Size2M);

    // 512 MiB at PD1: page 0x1_2000_0000 (PA bits 51:12 in place) -> 0x1_2000_0001.
    w(&mut v, 0x4000 + 0x1CD * 8, 0x1_2000_0001);
    let t = tr(Chip::Hopper, &v, VA3, Access::READ).unwrap();
    assert_eq!(t.pa, PhysAddr::new(0x1_2000_0000 + 0xBD3_AABC));
    assert_eq!(t.mapping.page_size, PageSize::Size512M);

    // 256 GiB at PD2: page 0x80_0000_0000 (512 GiB, aligned) -> 0x80_0000_0001.
    w(&mut v, 0x3000 + 0xAB * 8, 0x80_0000_0001);
    assert_eq!(
        tr(Chip::Hopper, &v, VA3, Access::READ),
        Err(Fault::LargePageNotAllowed { level: Level::Pd2 })
    );
    for chip in [Chip::BlackwellGb10x, Chip::BlackwellGb20x] {
        let t = tr(chip, &v, VA3, Access::READ).unwrap();
        // Offset in 256 GiB: VA bits 37:0 = (0x1CD << 29) | 0xBD3_AABC.
        assert_eq!(
            t.pa,
            PhysAddr::new(0x80_0000_0000 + (0x1CD << 29) + 0xBD3_AABC)
        );
        assert_eq!(t.mapping.page_size, PageSize::Size256G);
        assert_eq!(t.mapping.level, Level::Pd2);
    }
    // IS_PTE at PD3 / PD4 never.
    w(&mut v, 0x2000 + 0x101 * 8, 1);
    assert_eq!(
        tr(Chip::BlackwellGb20x, &v, VA3, Access::READ),
        Err(Fault::LargePageNotAllowed { level: Level::Pd3 })
    );
    w(&mut v, ROOT + 8, 1);
    assert_eq!(
        tr(Chip::BlackwellGb20x, &v, VA3, Access::READ),
        Err(Fault::LargePageNotAllowed { level: Level::Pd4 })
    );
}

#[test]
fn misaligned_large_pages() {
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    // 2 MiB PTE with PA 0x61_0000 (not 2 MiB aligned): 0x6_1001.
    w(&mut v, e, 0x6_1001);
    assert_eq!(
        tr(Chip::Turing, &v, VA2, Access::READ),
        Err(Fault::MisalignedPage { level: Level::Pd0 })
    );
    // Lenient masks the low bits: base 0x60_0000.
    let t = RefMmu::lenient(Chip::Turing)
        .translate(&v, pdb(), va(VA2), Access::READ)
        .unwrap();
    assert_eq!(t.pa, PhysAddr::new(0x73_AABC));
}

// ---------------------------------------------------------------------------------------------
// Sparse at every level. The sparse pattern is 0x8 everywhere: v2 APERTURE 0 + VOL (bit 3)
// for PDEs, VOL_BIG for PD0, V=0 + VOL for PTEs; v3 PDE PCF 1 (bits 5:3 = 001) and PTE PCF 1
// (bits 7:3 = 00001).

#[test]
fn v2_sparse_at_every_level() {
    let chip = Chip::Turing;
    let cases: [(u64, Level); 3] = [
        (ROOT + 8, Level::Pd3),
        (0x2000 + 0xAB * 8, Level::Pd2),
        (0x3000 + 0x1CD * 8, Level::Pd1),
    ];
    for (addr, level) in cases {
        let mut v = vram();
        let e = v2_link(&mut v, VA2);
        dual(&mut v, e, MmuVersion::V2);
        w(&mut v, small_slot(VA2), v2_pte(0x12_3000));
        w(&mut v, addr, 0x8);
        assert_eq!(
            tr(chip, &v, VA2, Access::READ),
            Err(Fault::Sparse { level })
        );
        // APERTURE 0 without VOL is invalid.
        w(&mut v, addr, 0);
        assert_eq!(
            tr(chip, &v, VA2, Access::READ),
            Err(Fault::PdeInvalid { level })
        );
    }
    // Sparse PD0: both apertures 0, VOL_BIG = 1.
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    w(&mut v, e, 0x8);
    assert_eq!(
        tr(chip, &v, VA2, Access::READ),
        Err(Fault::Sparse { level: Level::Pd0 })
    );
    // VOL_SMALL alone (q1 = 0x8) does not make it sparse.
    w(&mut v, e, 0);
    w(&mut v, e + 8, 0x8);
    assert_eq!(
        tr(chip, &v, VA2, Access::READ),
        Err(Fault::PdeInvalid { level: Level::Pd0 })
    );
    // Sparse small PTE.
    dual(&mut v, e, MmuVersion::V2);
    w(&mut v, small_slot(VA2), 0x8);
    assert_eq!(
        tr(chip, &v, VA2, Access::READ),
        Err(Fault::Sparse {
            level: Level::SmallPt
        })
    );
    // Sparse 2 MiB / 512 MiB PTEs are just sparse PDEs (bit 0 clear).
    w(&mut v, e, 0x8);
    w(&mut v, e + 8, 0);
    assert_eq!(
        tr(chip, &v, VA2, Access::READ),
        Err(Fault::Sparse { level: Level::Pd0 })
    );
}

#[test]
fn v3_sparse_at_every_level() {
    let chip = Chip::BlackwellGb20x;
    let cases: [(u64, Level); 4] = [
        (ROOT + 8, Level::Pd4),
        (0x2000 + 0x101 * 8, Level::Pd3),
        (0x3000 + 0xAB * 8, Level::Pd2),
        (0x4000 + 0x1CD * 8, Level::Pd1),
    ];
    for (addr, level) in cases {
        let mut v = vram();
        let e = v3_link(&mut v, VA3);
        dual(&mut v, e, MmuVersion::V3);
        w(&mut v, small_slot(VA3), v3_pte(0x12_3000));
        assert!(tr(chip, &v, VA3, Access::READ).is_ok());
        // PCF = 1 (SPARSE_ATS_ALLOWED) = 1 << 3.
        w(&mut v, addr, 0x8);
        assert_eq!(
            tr(chip, &v, VA3, Access::READ),
            Err(Fault::Sparse { level })
        );
        // PCF = 3 (SPARSE_ATS_NOT_ALLOWED) = 3 << 3 = 0x18.
        w(&mut v, addr, 0x18);
        assert_eq!(
            tr(chip, &v, VA3, Access::READ),
            Err(Fault::Sparse { level })
        );
        // PCF = 2 (INVALID_ATS_NOT_ALLOWED) = 0x10.
        w(&mut v, addr, 0x10);
        assert_eq!(
            tr(chip, &v, VA3, Access::READ),
            Err(Fault::PdeInvalid { level })
        );
    }
    let mut v = vram();
    let e = v3_link(&mut v, VA3);
    w(&mut v, e, 0x8); // PCF_BIG sparse, both apertures 0
    assert_eq!(
        tr(chip, &v, VA3, Access::READ),
        Err(Fault::Sparse { level: Level::Pd0 })
    );
    dual(&mut v, e, MmuVersion::V3);
    w(&mut v, small_slot(VA3), 0x8); // PTE PCF 1 = SPARSE
    assert_eq!(
        tr(chip, &v, VA3, Access::READ),
        Err(Fault::Sparse {
            level: Level::SmallPt
        })
    );
    // PTE PCF 2 = MAPPING_NOWHERE (0x10).
    w(&mut v, small_slot(VA3), 0x10);
    assert_eq!(
        tr(chip, &v, VA3, Access::READ),
        Err(Fault::MappingNowhere {
            level: Level::SmallPt
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Dual PD0 precedence (§1.5).

/// Both versions: (chip, version, VA, link fn, valid big PTE, valid small PTE, sparse big PTE,
/// "no valid 4K" big PTE).
type LinkFn = fn(&mut SimVram, u64) -> u64;

fn precedence_cases() -> [(Chip, u64, LinkFn, u64, u64, u64, u64); 2] {
    [
        // v2: big 64 KiB at 0x4_0000 -> 0x4001; small 0x12_3000 -> 0x1_2301; sparse big 0x8
        // (V=0 VOL=1); NV4K big 0x20 (V=0 PRIV=1, bit 5).
        (Chip::Turing, VA2, v2_link, 0x4001, 0x1_2301, 0x8, 0x20),
        // v3: big 0x4_0001; small 0x12_3001; sparse PCF 1 = 0x8; NO_VALID_4KB PCF 3 = 0x18.
        (Chip::Hopper, VA3, v3_link, 0x4_0001, 0x12_3001, 0x8, 0x18),
    ]
}

#[test]
fn dual_pd0_precedence() {
    for (chip, a, link, big_pte, small_pte, sparse, nv4k) in precedence_cases() {
        let ver = chip.mmu_version();
        let mut v = vram();
        let e = link(&mut v, a);
        dual(&mut v, e, ver);
        w(&mut v, small_slot(a), small_pte);

        // Valid big PTE wins over a valid small PTE.
        w(&mut v, big_slot(a), big_pte);
        let t = tr(chip, &v, a, Access::READ).unwrap();
        assert_eq!(t.mapping.page_size, PageSize::Size64K, "{chip}");
        assert_eq!(t.pa, PhysAddr::new(0x4_AABC));

        // Zero big PTE: the small PT decides.
        w(&mut v, big_slot(a), 0);
        let t = tr(chip, &v, a, Access::READ).unwrap();
        assert_eq!(t.mapping.page_size, PageSize::Size4K, "{chip}");
        assert_eq!(t.pa, PhysAddr::new(0x12_3ABC));

        // Sparse big PTE blocks the small PT.
        w(&mut v, big_slot(a), sparse);
        assert_eq!(
            tr(chip, &v, a, Access::READ),
            Err(Fault::Sparse {
                level: Level::BigPt
            }),
            "{chip}"
        );

        // "No valid 4K" big PTE blocks the small PT.
        w(&mut v, big_slot(a), nv4k);
        assert_eq!(
            tr(chip, &v, a, Access::READ),
            Err(Fault::NoValid4k),
            "{chip}"
        );

        // No big PT at all (APERTURE_BIG 0): the small PT decides.
        w(&mut v, e, 0);
        let t = tr(chip, &v, a, Access::READ).unwrap();
        assert_eq!(t.mapping.page_size, PageSize::Size4K, "{chip}");

        // Big PT present with a zero PTE, no small PT: the 64 KiB page is unmapped.
        dual(&mut v, e, ver);
        w(&mut v, e + 8, 0);
        w(&mut v, big_slot(a), 0);
        assert_eq!(
            tr(chip, &v, a, Access::READ),
            Err(Fault::InvalidPte {
                level: Level::BigPt
            }),
            "{chip}"
        );
        // ... while a valid big PTE still works without a small PT.
        w(&mut v, big_slot(a), big_pte);
        assert!(tr(chip, &v, a, Access::READ).is_ok());

        // Invalid small PTE under a deferring big PTE.
        dual(&mut v, e, ver);
        w(&mut v, big_slot(a), 0);
        w(&mut v, small_slot(a), 0);
        assert_eq!(
            tr(chip, &v, a, Access::READ),
            Err(Fault::InvalidPte {
                level: Level::SmallPt
            }),
            "{chip}"
        );
    }
}

#[test]
fn v2_rm_style_nv4k_reads_as_sparse() {
    // §7.1: RM's "no valid 4K" is V=0 VOL=1 PRIV=1 = 0x28; VOL wins, so it is sparse. Both
    // block the small PT.
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    dual(&mut v, e, MmuVersion::V2);
    w(&mut v, small_slot(VA2), v2_pte(0x12_3000));
    w(&mut v, big_slot(VA2), 0x28);
    assert_eq!(
        tr(Chip::Volta, &v, VA2, Access::READ),
        Err(Fault::Sparse {
            level: Level::BigPt
        })
    );
    // An invalid big PTE with only stray address bits defers to the small PT.
    w(&mut v, big_slot(VA2), 0x4000);
    assert!(tr(Chip::Volta, &v, VA2, Access::READ).is_ok());
}

#[test]
fn v2_big_half_uses_shift_8_not_12() {
    // The big PT at 0x9100 is only 256-byte aligned; entry 0x912 has 0x91 in bits 32:4.
    // A walker using PA>>12 would look at 0x91000.
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    w(&mut v, e, 0x912);
    w(&mut v, big_slot(VA2), 0x4001);
    w(&mut v, 0x9_1000 + 0x13 * 8, 0x8_0001); // decoy
    let t = tr(Chip::Turing, &v, VA2, Access::READ).unwrap();
    assert_eq!(t.mapping.page_base, PhysAddr::new(0x4_0000));
}

#[test]
fn v3_big_half_in_place() {
    // v3 ADDRESS_BIG 51:8 holds PA>>8 in place: q0 = 0x9100 | 2. A walker shifting by 4 would
    // look at 0x91000.
    let mut v = vram();
    let e = v3_link(&mut v, VA3);
    w(&mut v, e, 0x9102);
    w(&mut v, big_slot(VA3), 0x4_0001);
    w(&mut v, 0x9_1000 + 0x13 * 8, 0x8_0001); // decoy
    let t = tr(Chip::Hopper, &v, VA3, Access::READ).unwrap();
    assert_eq!(t.mapping.page_base, PhysAddr::new(0x4_0000));
}

#[test]
fn v3_pde_pcf_4_to_7_is_undefined() {
    // §2.2 defines PDE PCF 0..3 only; PCF bit 2 is entry bit 5 (0x20), where v2 keeps NO_ATS.
    // A pointer with it is an undefined encoding: reserved in strict mode (like undefined PTE
    // PCFs), ignored when lenient. Upper PDE (PD1), big half, small half in turn.
    let chip = Chip::Hopper;
    let pd1e = 0x4000 + idx(VA3, 29, 9) * 8;
    for (addr, raw, level) in [
        (pd1e, v3_pde(PD0) | 0x20, Level::Pd1),              // 0x8022
        (PD0 + 0x5E * 16, BIG | 0x20 | 2, Level::Pd0),       // 0x9122
        (PD0 + 0x5E * 16 + 8, SMALL | 0x20 | 2, Level::Pd0), // 0xA022
    ] {
        let mut v = vram();
        let e = v3_link(&mut v, VA3);
        dual(&mut v, e, MmuVersion::V3);
        w(&mut v, small_slot(VA3), v3_pte(0x12_3000));
        assert!(tr(chip, &v, VA3, Access::READ).is_ok());
        w(&mut v, addr, raw);
        assert_eq!(
            tr(chip, &v, VA3, Access::READ),
            Err(Fault::ReservedBits { level, entry: raw })
        );
        let t = RefMmu::lenient(chip).translate(&v, pdb(), va(VA3), Access::READ);
        assert_eq!(t.unwrap().pa, PhysAddr::new(0x12_3ABC));
    }
}

// ---------------------------------------------------------------------------------------------
// Permissions.

fn one_pte(chip: Chip, pte: u64) -> (SimVram, u64) {
    let mut v = vram();
    let a = match chip.mmu_version() {
        MmuVersion::V2 => VA2,
        MmuVersion::V3 => VA3,
    };
    let e = match chip.mmu_version() {
        MmuVersion::V2 => v2_link(&mut v, a),
        MmuVersion::V3 => v3_link(&mut v, a),
    };
    dual(&mut v, e, chip.mmu_version());
    w(&mut v, small_slot(a), pte);
    (v, a)
}

#[test]
fn v2_permissions() {
    let chip = Chip::Turing;
    let base = 0x1_2301; // 4 KiB at 0x12_3000
                         // PRIVILEGE bit 5 (0x20).
    let (v, a) = one_pte(chip, base | 0x20);
    assert_eq!(tr(chip, &v, a, Access::READ), Err(Fault::Privilege));
    let t = tr(chip, &v, a, Access::WRITE.privileged()).unwrap();
    assert!(t.mapping.attrs.privileged);
    // READ_ONLY bit 6 (0x40).
    let (v, a) = one_pte(chip, base | 0x40);
    assert!(tr(chip, &v, a, Access::READ).is_ok());
    assert_eq!(tr(chip, &v, a, Access::WRITE), Err(Fault::ReadOnly));
    assert_eq!(tr(chip, &v, a, Access::ATOMIC), Err(Fault::ReadOnly));
    // ATOMIC_DISABLE bit 7 (0x80).
    let (v, a) = one_pte(chip, base | 0x80);
    assert!(tr(chip, &v, a, Access::WRITE).is_ok());
    assert_eq!(tr(chip, &v, a, Access::ATOMIC), Err(Fault::AtomicDisabled));
    // Privilege is checked before read-only: 0x20 | 0x40.
    let (v, a) = one_pte(chip, base | 0x60);
    assert_eq!(tr(chip, &v, a, Access::WRITE), Err(Fault::Privilege));
    assert_eq!(
        tr(chip, &v, a, Access::WRITE.privileged()),
        Err(Fault::ReadOnly)
    );
    // VOL (bit 3) and ENCRYPTED (bit 4) on a valid PTE: 0x18.
    let (v, a) = one_pte(chip, base | 0x18);
    let t = tr(chip, &v, a, Access::ATOMIC).unwrap();
    assert!(t.mapping.attrs.uncached && t.mapping.attrs.encrypted);
    assert_eq!(t.mapping.attrs.pcf, None);
}

#[test]
fn v3_pcf_decomposition() {
    let chip = Chip::Hopper;
    let base = 0x12_3001;
    // PCF 0x1F (all five bits) at 7:3 = 0xF8.
    let (v, a) = one_pte(chip, base | 0xF8);
    let t = tr(chip, &v, a, Access::READ.privileged()).unwrap();
    assert_eq!(
        t.mapping.attrs,
        PteAttrs {
            uncached: true,
            encrypted: false,
            privileged: true,
            read_only: true,
            atomic_disabled: true,
            access_counting_disabled: true,
            pcf: Some(0x1F),
        }
    );
    // PCF bit 1 PRIVILEGE: 2 << 3 = 0x10.
    let (v, a) = one_pte(chip, base | 0x10);
    assert_eq!(tr(chip, &v, a, Access::READ), Err(Fault::Privilege));
    // PCF bit 2 READ_ONLY: 4 << 3 = 0x20.
    let (v, a) = one_pte(chip, base | 0x20);
    assert_eq!(tr(chip, &v, a, Access::WRITE), Err(Fault::ReadOnly));
    assert!(tr(chip, &v, a, Access::READ).is_ok());
    // PCF bit 3 NO_ATOMIC: 8 << 3 = 0x40.
    let (v, a) = one_pte(chip, base | 0x40);
    assert_eq!(tr(chip, &v, a, Access::ATOMIC), Err(Fault::AtomicDisabled));
    assert!(tr(chip, &v, a, Access::WRITE).is_ok());
    // PCF bit 0 UNCACHED (0x08) and bit 4 ACD (0x80).
    let (v, a) = one_pte(chip, base | 0x88);
    let t = tr(chip, &v, a, Access::ATOMIC).unwrap();
    assert!(t.mapping.attrs.uncached && t.mapping.attrs.access_counting_disabled);
    assert!(!t.mapping.attrs.read_only);
    // Invalid PTE PCFs above 3 are undefined: reserved in strict mode, invalid when lenient.
    let (v, a) = one_pte(chip, 0x20);
    assert!(matches!(
        tr(chip, &v, a, Access::READ),
        Err(Fault::ReservedBits { .. })
    ));
    assert_eq!(
        RefMmu::lenient(chip).translate(&v, pdb(), va(a), Access::READ),
        Err(Fault::InvalidPte {
            level: Level::SmallPt
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Apertures, peer id, kind, comptagline.

#[test]
fn v2_apertures_peer_and_sysmem() {
    let chip = Chip::Turing;
    // Peer: APERTURE 1 (bits 2:1 = 01 -> 0x2), PEER 5 at 35:33 (5 << 33 = 0xA_0000_0000),
    // address 0x12_3000 >> 4 = 0x1_2300, VALID 1.
    let (v, a) = one_pte(chip, 0xA_0000_0000 | 0x1_2300 | 0x2 | 1);
    let t = tr(chip, &v, a, Access::READ).unwrap();
    assert_eq!(t.mapping.aperture, Aperture::Peer);
    assert_eq!(t.mapping.peer_id, 5);
    assert_eq!(t.pa, PhysAddr::new(0x12_3ABC));
    // The same peer bits on a vidmem PTE are reserved (strict) / ignored (lenient).
    let (v, a) = one_pte(chip, 0xA_0000_0000 | 0x1_2301);
    assert!(matches!(
        tr(chip, &v, a, Access::READ),
        Err(Fault::ReservedBits { .. })
    ));
    let t = RefMmu::lenient(chip)
        .translate(&v, pdb(), va(a), Access::READ)
        .unwrap();
    assert_eq!(
        (t.mapping.aperture, t.mapping.peer_id),
        (Aperture::Vidmem, 0)
    );
    assert_eq!(t.pa, PhysAddr::new(0x12_3ABC));
    // Sysmem coherent (APERTURE 2 -> 0x4): ADDRESS_SYS 53:8 reaches above the vidmem field:
    // PA 0xA_1234_5000 >> 4 = 0xA123_4500 (bits 35:33 now part of the address).
    let (v, a) = one_pte(chip, 0xA123_4500 | 0x4 | 1);
    let t = tr(chip, &v, a, Access::READ).unwrap();
    assert_eq!(t.mapping.aperture, Aperture::SysCoherent);
    assert_eq!(t.pa, PhysAddr::new(0xA_1234_5ABC));
    assert_eq!(t.mapping.peer_id, 0);
    assert_eq!(t.mapping.comptagline, 0);
    // Sysmem non-coherent (APERTURE 3 -> 0x6), PA 0x3F_FFFF_FFFF_F000 (the top of 53:8):
    // >> 4 = 0x3_FFFF_FFFF_FF00.
    let (v, a) = one_pte(chip, 0x3F_FFFF_FFFF_FF00 | 0x6 | 1);
    let t = tr(chip, &v, a, Access::READ).unwrap();
    assert_eq!(t.mapping.aperture, Aperture::SysNonCoherent);
    assert_eq!(t.pa, PhysAddr::new(0x3FF_FFFF_FFFF_FABC));
}

#[test]
fn v2_kind_and_comptagline() {
    // KIND 0x06 at 63:56 = 0x0600_0000_0000_0000; COMPTAGLINE 0xF_FFFF (20 bits, Turing) at
    // 55:36 = 0xFF_FFF0_0000_0000.
    let pte = 0x0600_0000_0000_0000 | 0x00FF_FFF0_0000_0000 | 0x1_2301;
    let (v, a) = one_pte(Chip::Turing, pte);
    let t = tr(Chip::Turing, &v, a, Access::READ).unwrap();
    assert_eq!(t.mapping.kind, 6);
    assert_eq!(t.mapping.comptagline, 0xF_FFFF);
    assert_eq!(t.pa, PhysAddr::new(0x12_3ABC));
    // Pascal has 18 bits (53:36); bits 55:54 are reserved there.
    let (v, a) = one_pte(Chip::Pascal, pte);
    assert!(matches!(
        tr(Chip::Pascal, &v, a, Access::READ),
        Err(Fault::ReservedBits { .. })
    ));
    let t = RefMmu::lenient(Chip::Pascal)
        .translate(&v, pdb(), va(a), Access::READ)
        .unwrap();
    assert_eq!(t.mapping.comptagline, 0x3_FFFF);
}

#[test]
fn v3_apertures_peer_kind() {
    let chip = Chip::BlackwellGb10x;
    // Peer 7 at 63:61 = 0xE000_0000_0000_0000, APERTURE 1 (0x2), KIND 6 at 11:8 (0x600),
    // address 0xF_FFFF_FFFF_F000 (bits 51:12 all ones), VALID.
    let pte = 0xE000_0000_0000_0000 | 0x000F_FFFF_FFFF_F000 | 0x600 | 0x2 | 1;
    let (v, a) = one_pte(chip, pte);
    let t = tr(chip, &v, a, Access::READ).unwrap();
    assert_eq!(t.mapping.aperture, Aperture::Peer);
    assert_eq!(t.mapping.peer_id, 7);
    assert_eq!(t.mapping.kind, 6);
    assert_eq!(t.pa, PhysAddr::new(0xF_FFFF_FFFF_FABC));
    // Sys coherent (0x4) and non-coherent (0x6).
    let (v, a) = one_pte(chip, 0x55_0000_0000 | 0x4 | 1);
    let t = tr(chip, &v, a, Access::READ).unwrap();
    assert_eq!(t.mapping.aperture, Aperture::SysCoherent);
    assert_eq!(t.pa, PhysAddr::new(0x55_0000_0ABC));
    let (v, a) = one_pte(chip, 0x55_0000_0000 | 0x6 | 1);
    assert_eq!(
        tr(chip, &v, a, Access::READ).unwrap().mapping.aperture,
        Aperture::SysNonCoherent
    );
    // A peer id on a vidmem PTE, or bits 60:52, are reserved.
    let (v, a) = one_pte(chip, 0x2000_0000_0000_0000 | 0x12_3001);
    assert!(matches!(
        tr(chip, &v, a, Access::READ),
        Err(Fault::ReservedBits { .. })
    ));
    let (v, a) = one_pte(chip, (1 << 52) | 0x12_3001);
    assert!(matches!(
        tr(chip, &v, a, Access::READ),
        Err(Fault::ReservedBits { .. })
    ));
}

#[test]
fn pde_apertures_differ_from_pte_apertures() {
    // PDE APERTURE 1 is video memory; PTE APERTURE 1 is peer. A PDE with aperture 2 (sys coh,
    // 0x4) or 3 (0x6) points into sysmem, which the simulator cannot follow.
    for (chip, a, link) in [
        (Chip::Turing, VA2, v2_link as fn(&mut SimVram, u64) -> u64),
        (Chip::Hopper, VA3, v3_link),
    ] {
        let ver = chip.mmu_version();
        let mut v = vram();
        let e = link(&mut v, a);
        dual(&mut v, e, ver);
        let sys = |pa: u64, ap: u64| match ver {
            MmuVersion::V2 => (pa >> 4) | (ap << 1),
            MmuVersion::V3 => pa | (ap << 1),
        };
        w(&mut v, e + 8, sys(SMALL, 2));
        assert_eq!(
            tr(chip, &v, a, Access::READ),
            Err(Fault::PageTableInSysmem {
                level: Level::SmallPt
            })
        );
        w(&mut v, e, sys(BIG, 3));
        assert_eq!(
            tr(chip, &v, a, Access::READ),
            Err(Fault::PageTableInSysmem {
                level: Level::BigPt
            })
        );
        w(&mut v, ROOT + 8, sys(0x2000, 2));
        let second = Level::directories(ver)[1];
        assert_eq!(
            tr(chip, &v, a, Access::READ),
            Err(Fault::PageTableInSysmem { level: second })
        );
        assert_eq!(
            RefMmu::new(chip).translate(
                &v,
                Pdb {
                    addr: ROOT,
                    aperture: PdbAperture::Sysmem
                },
                va(a),
                Access::READ
            ),
            Err(Fault::PageTableInSysmem {
                level: Level::root(ver)
            })
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad inputs.

#[test]
fn va_width_and_pdb_alignment() {
    let v = vram();
    assert_eq!(
        tr(Chip::Ada, &v, 1 << 49, Access::READ),
        Err(Fault::VaOutOfRange { va: va(1 << 49) })
    );
    assert_eq!(
        tr(Chip::Hopper, &v, 1 << 57, Access::READ),
        Err(Fault::VaOutOfRange { va: va(1 << 57) })
    );
    assert_eq!(
        RefMmu::new(Chip::Hopper).translate(&v, Pdb::vidmem(0x1800), va(0), Access::READ),
        Err(Fault::PdbMisaligned { addr: 0x1800 })
    );
    // Zeroed root: invalid PDE at the root.
    assert_eq!(
        tr(Chip::Hopper, &v, 0, Access::READ),
        Err(Fault::PdeInvalid { level: Level::Pd4 })
    );
}

#[test]
fn wild_table_addresses_fault_cleanly() {
    let mut v = vram();
    // v2 PDE to vidmem 0x1_FFFF_FFF0_00 (the top of 32:8): far outside 64 MiB.
    // (0x1F_FFFF_F000 >> 4) | 2 = 0x1_FFFF_FF02.
    w(&mut v, ROOT + 8, 0x1_FFFF_FF02);
    assert_eq!(
        tr(Chip::Turing, &v, VA2, Access::READ),
        Err(Fault::TableOutsideVram {
            level: Level::Pd2,
            addr: 0x1F_FFFF_F000 + 0xAB * 8
        })
    );
    // v3 PDE with the largest in-place address.
    w(&mut v, ROOT + 8, 0x000F_FFFF_FFFF_F002);
    assert!(matches!(
        tr(Chip::Hopper, &v, VA3, Access::READ),
        Err(Fault::TableOutsideVram {
            level: Level::Pd3,
            ..
        })
    ));
    // Reserved bits in a v3 PDE (bit 6, inside 11:6).
    w(&mut v, ROOT + 8, 0x2042);
    assert!(matches!(
        tr(Chip::Hopper, &v, VA3, Access::READ),
        Err(Fault::ReservedBits {
            level: Level::Pd4,
            ..
        })
    ));
    // v2 vidmem PDE with peer bits (35:33) set.
    w(&mut v, ROOT + 8, (1 << 33) | 0x202);
    assert!(matches!(
        tr(Chip::Turing, &v, VA2, Access::READ),
        Err(Fault::ReservedBits {
            level: Level::Pd3,
            ..
        })
    ));
    // The PD0 entry straddling the end of a tiny VRAM.
    let mut tiny = SimVram::new(0x8008).unwrap();
    let a = 0; // every index 0
    w(&mut tiny, ROOT, v2_pde(0x2000));
    w(&mut tiny, 0x2000, v2_pde(0x3000));
    w(&mut tiny, 0x3000, v2_pde(0x8000));
    w(&mut tiny, 0x8000, 0x4001 << 4 >> 4); // garbage big half
    assert!(matches!(
        RefMmu::new(Chip::Turing).translate(&tiny, pdb(), va(a), Access::READ),
        Err(Fault::TableOutsideVram {
            level: Level::Pd0,
            ..
        })
    ));
}

#[test]
fn walk_records_steps() {
    let mut v = vram();
    let e = v3_link(&mut v, VA3);
    dual(&mut v, e, MmuVersion::V3);
    w(&mut v, small_slot(VA3), v3_pte(0x12_3000));
    let walk = RefMmu::new(Chip::Hopper).walk_with(&mut VramEntries(&v), pdb(), va(VA3));
    assert!(walk.result.is_ok());
    let levels: Vec<Level> = walk.steps.iter().map(|s| s.level).collect();
    assert_eq!(
        levels,
        [
            Level::Pd4,
            Level::Pd3,
            Level::Pd2,
            Level::Pd1,
            Level::Pd0,
            Level::BigPt,
            Level::SmallPt
        ]
    );
    assert!(walk.steps[..5].iter().all(|s| s.followed));
    assert_eq!(walk.steps[4].entry, [BIG | 2, SMALL | 2]);
    assert!(!walk.steps[6].followed);
}

#[test]
fn level_geometry() {
    // v2: 2 + 9 + 9 + 8 + 9 index bits + 12 offset bits = 49; v3: 1 + 9 more = 57.
    for ver in [MmuVersion::V2, MmuVersion::V3] {
        let dirs: u32 = Level::directories(ver)
            .iter()
            .map(|l| l.index_bits(ver))
            .sum();
        assert_eq!(dirs + Level::SmallPt.index_bits(ver) + 12, ver.va_bits());
        assert_eq!(Level::BigPt.index_bits(ver) + 16, 21);
    }
    assert_eq!(Level::Pd0.entry_bytes(), 16);
    assert_eq!(Level::Pd3.index(MmuVersion::V2, VA2), 1);
    assert_eq!(Level::Pd3.index(MmuVersion::V3, VA3), 0x101);
    assert_eq!(Level::Pd4.index(MmuVersion::V3, VA3), 1);
}

#[test]
fn v2_big_half_bit5_is_address_not_no_ats() {
    // NO_ATS (bit 5) lies inside ADDRESS_BIG (32:4). q0 = 0x912 | 0x20 = 0x932: bits 32:4 =
    // 0x93, so the big PT is at 0x93 << 8 = 0x9300.
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    w(&mut v, e, 0x932);
    w(&mut v, 0x9300 + 0x13 * 8, 0x4001);
    let t = tr(Chip::Turing, &v, VA2, Access::READ).unwrap();
    assert_eq!(t.mapping.pte_addr, VramAddress::new(0x9300 + 0x13 * 8));
}

#[test]
fn v2_unnamed_pointer_bits_are_reserved() {
    // §1.2 names VOL 3 and NO_ATS 5 (Volta on) below ADDRESS 32:8, so upper-PDE bits 4, 6, 7
    // (and 5 on Pascal) are unnamed; §1.3 names APERTURE_SMALL 66:65 and VOL_SMALL 67 below
    // ADDRESS_SMALL 72, so bits 64 and 68..71 (q1 bits 0, 7:4) are unnamed. Strict mode faults
    // on them in a valid pointer; lenient mode ignores them.
    let pd1e = 0x3000 + idx(VA2, 29, 9) * 8;
    let small_half = PD0 + idx(VA2, 21, 8) * 16 + 8;
    let mut cases = Vec::new();
    for bit in [4u32, 6, 7] {
        for chip in [Chip::Pascal, Chip::Turing] {
            cases.push((chip, pd1e, v2_pde(PD0) | (1 << bit), Level::Pd1));
        }
    }
    cases.push((Chip::Pascal, pd1e, v2_pde(PD0) | 0x20, Level::Pd1));
    for bit in [0u32, 4, 5, 6, 7] {
        // q1 = (0xA000 >> 4) | 2 = 0xA02, plus the stray bit.
        cases.push((
            Chip::Ada,
            small_half,
            v2_pde(SMALL) | (1 << bit),
            Level::Pd0,
        ));
    }
    for (chip, addr, raw, level) in cases {
        let mut v = vram();
        let e = v2_link(&mut v, VA2);
        dual(&mut v, e, MmuVersion::V2);
        w(&mut v, small_slot(VA2), v2_pte(0x12_3000));
        assert!(tr(chip, &v, VA2, Access::READ).is_ok());
        w(&mut v, addr, raw);
        assert_eq!(
            tr(chip, &v, VA2, Access::READ),
            Err(Fault::ReservedBits { level, entry: raw }),
            "{chip} {raw:#x}"
        );
        let t = RefMmu::lenient(chip).translate(&v, pdb(), va(VA2), Access::READ);
        assert_eq!(t.unwrap().pa, PhysAddr::new(0x12_3ABC), "{chip} {raw:#x}");
    }
    // NO_ATS (bit 5) is a field from Volta on: a pointer with it is fine.
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    dual(&mut v, e, MmuVersion::V2);
    w(&mut v, small_slot(VA2), v2_pte(0x12_3000));
    w(&mut v, pd1e, v2_pde(PD0) | 0x20);
    assert_eq!(
        tr(Chip::Volta, &v, VA2, Access::READ).unwrap().pa,
        PhysAddr::new(0x12_3ABC)
    );
}

#[test]
fn v2_sysmem_pointer_reserved_bits() {
    // Sys PDE (APERTURE 2 -> 0x4) with bit 54 set (above ADDRESS_SYS 53:8): reserved.
    let mut v = vram();
    w(&mut v, ROOT + 8, (1 << 54) | 0x4);
    assert!(matches!(
        tr(Chip::Turing, &v, VA2, Access::READ),
        Err(Fault::ReservedBits {
            level: Level::Pd3,
            ..
        })
    ));
    // Bit 53 is still address: a plain sysmem table.
    w(&mut v, ROOT + 8, (1 << 53) | 0x4);
    assert_eq!(
        tr(Chip::Turing, &v, VA2, Access::READ),
        Err(Fault::PageTableInSysmem { level: Level::Pd2 })
    );
    // A vidmem PDE with bit 36 (sysmem-only address bits): reserved.
    w(&mut v, ROOT + 8, (1 << 36) | v2_pde(0x2000));
    assert!(matches!(
        tr(Chip::Turing, &v, VA2, Access::READ),
        Err(Fault::ReservedBits {
            level: Level::Pd3,
            ..
        })
    ));
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn enumerate_regions_of_a_hand_built_tree() {
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    dual(&mut v, e, MmuVersion::V2);
    // In the 2 MiB of VA2: small PTEs 0 and 1 (0x1_2301 = 0x12_3000, 0x1_2401 = 0x12_4000),
    // big PTE 5 (0x5_0001 = 64 KiB at 0x50_0000), big PTE 6 sparse (0x8).
    let base2m = VA2 & !0x1F_FFFF;
    w(&mut v, SMALL, 0x1_2301);
    w(&mut v, SMALL + 8, 0x1_2401);
    w(&mut v, BIG + 5 * 8, 0x5_0001);
    w(&mut v, BIG + 6 * 8, 0x8);
    // The next PD0 entry: a 2 MiB page at 0x60_0000 (0x6_0001).
    w(&mut v, e + 16, 0x6_0001);
    let mmu = RefMmu::new(Chip::Turing);
    let maps = mmu.mappings(&v, pdb(), va(0), va(1 << 49));
    let got: Vec<(u64, PageSize, u64)> = maps
        .iter()
        .map(|m| (m.va_base.raw(), m.page_size, m.page_base.raw()))
        .collect();
    assert_eq!(
        got,
        [
            (base2m, PageSize::Size4K, 0x12_3000),
            (base2m + 0x1000, PageSize::Size4K, 0x12_4000),
            (base2m + 0x5_0000, PageSize::Size64K, 0x50_0000),
            (base2m + 0x20_0000, PageSize::Size2M, 0x60_0000),
        ]
    );
    let mut regions = 0;
    let mut sparse = 0;
    mmu.for_each_region(&v, pdb(), va(0), va(1 << 49), |_, len, r| {
        regions += 1;
        if let Err(Fault::Sparse { .. }) = r {
            sparse += len;
        }
        true
    });
    assert_eq!(sparse, 0x1_0000);
    // One region per faulting entry or page, 512 TiB in 1762 walks:
    // PD3[0] 1; under PD3[1]: PD2[0..0xAB) 171, PD1[0..0x1CD) 461, PD0[0..0x5E) 94;
    // the dual PD0 entry: 2 small pages + small slots 2..0x50 (78) + big 5 + big 6 + small
    // slots 0x70..0x200 (400) = 482; the 2 MiB page 1; PD0[0x60..0x100) 160;
    // PD1[0x1CE..0x200) 50; PD2[0xAC..0x200) 340; PD3[2], PD3[3] 2.
    assert_eq!(regions, 1 + 171 + 461 + 94 + 482 + 1 + 160 + 50 + 340 + 2);
}

#[test]
fn walk_over_any_vram_access_backend() {
    let mut v = vram();
    let e = v3_link(&mut v, VA3);
    dual(&mut v, e, MmuVersion::V3);
    w(&mut v, small_slot(VA3), v3_pte(0x12_3000));
    let direct = RefMmu::new(Chip::Hopper).walk(&v, pdb(), va(VA3));
    let via_trait = RefMmu::new(Chip::Hopper)
        .walk_with(&mut AccessEntries(&mut v), pdb(), va(VA3))
        .result;
    assert_eq!(direct, via_trait);
    // 5 directory reads (PD0 is two 64-bit reads) + big PTE + small PTE, all counted.
    assert_eq!(v.stats().reads, 4 + 2 + 1 + 1);
    // A backend error ends the walk cleanly.
    v.set_fault(Some(crate::FaultRule::after(0)));
    assert_eq!(
        RefMmu::new(Chip::Hopper)
            .walk_with(&mut AccessEntries(&mut v), pdb(), va(VA3))
            .result,
        Err(Fault::TableOutsideVram {
            level: Level::Pd4,
            addr: ROOT + 8
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

    /// Arbitrary VRAM contents (entries scattered over a small VRAM, pointing mostly at small
    /// addresses so walks go deep) never panic, for every chip, in both modes.
    #[test]
    fn random_vram_never_panics(
        words in proptest::collection::vec((0u64..0x2_0000, any::<u64>(), 0u8..4), 0..200),
        vas in proptest::collection::vec(any::<u64>(), 1..8),
    ) {
        let mut v = SimVram::new(0x2_0000).unwrap();
        for (addr, val, style) in words {
            let val = match style {
                // A plausible pointer into the VRAM: keep low flag bits, small address.
                0 => (val & 0xFF) | ((val >> 8) & 0x1_F000),
                1 => (val & 0xFF) | (((val >> 8) & 0x1_F000) >> 4),
                _ => val,
            };
            v.poke64(addr & !7, val);
        }
        for a in vas {
            for chip in Chip::ALL {
                for mmu in [RefMmu::new(chip), RefMmu::lenient(chip)] {
                    let a = a >> (64 - chip.mmu_version().va_bits() - 1);
                    let _ = mmu.translate(&v, Pdb::vidmem(0), va(a), Access::ATOMIC);
                    let walk = mmu.walk_with(&mut VramEntries(&v), Pdb::vidmem(0x1000), va(a));
                    prop_assert!(walk.steps.len() <= 7);
                    if let Ok(m) = walk.result {
                        prop_assert!(m.contains(va(a)));
                        prop_assert!(chip.supports_page_size(m.page_size));
                    }
                }
            }
        }
    }

    /// Region enumeration over random VRAM: regions are contiguous, and every VA inside a
    /// region walks to the region's result.
    #[test]
    fn regions_agree_with_single_walks(
        words in proptest::collection::vec((0u64..0x2_0000, any::<u64>(), 0u8..4), 0..300),
        probes in proptest::collection::vec(any::<u64>(), 1..32),
        chip_ix in 0usize..8,
    ) {
        let mut v = SimVram::new(0x2_0000).unwrap();
        for (addr, val, style) in words {
            let val = match style {
                0 => (val & 0xFF) | ((val >> 8) & 0x1_F000),
                1 => (val & 0xFF) | (((val >> 8) & 0x1_F000) >> 4),
                _ => val,
            };
            v.poke64(addr & !7, val);
        }
        let chip = Chip::ALL[chip_ix];
        let mmu = RefMmu::new(chip);
        let end = 1u64 << 34;
        let mut regions: Vec<(u64, u64, Result<Mapping, Fault>)> = Vec::new();
        let mut next = 0u64;
        let mut contiguous = true;
        mmu.for_each_region(&v, Pdb::vidmem(0), va(0), va(end), |s, len, r| {
            contiguous &= s.raw() == next && len > 0;
            next = s.raw() + len;
            regions.push((s.raw(), len, r));
            regions.len() < 5000
        });
        prop_assert!(contiguous);
        for p in probes {
            let a = p % next.max(1);
            let ix = regions.partition_point(|(s, _, _)| *s <= a) - 1;
            let (s, len, r) = regions[ix];
            prop_assert!(s <= a && a < s + len);
            let single = mmu.walk(&v, Pdb::vidmem(0), va(a));
            match (single, r) {
                (Ok(m1), Ok(m2)) => prop_assert_eq!(m1, m2),
                (Err(f1), Err(f2)) => prop_assert_eq!(f1, f2),
                (x, y) => prop_assert!(false, "{:?} vs region {:?}", x, y),
            }
        }
    }
}
