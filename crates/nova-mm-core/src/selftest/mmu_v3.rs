//! Self-tests: the known-answer tests of MMU v3, worked out by hand from the bit tables in
//! `mmu-formats.md` §2.2-§2.3. The only copy of these values: the kernel module runs them from
//! `TESTS`, and `cargo test` runs each as its own `#[test]` (`selftest::mmu_v3::host::*`).

use super::SelfTestResult;
#[allow(unused_imports)]
use crate::addr::{PageSize, PhysAddr};
use crate::chip::Chip;
#[allow(unused_imports)]
use crate::mmu::v3::*;
use crate::mmu::v3::{
    decode_dual_pde, decode_pde, decode_pte, encode_dual_pde, encode_pde, encode_pte,
};
#[allow(unused_imports)]
use crate::mmu::*;
use crate::{st_assert, st_eq};

super::plain_selftests_and_host_tests!(
    "mmu_v3",
    [
        pte_apertures_and_peer,
        pte_pcf_decomposition,
        pte_special_states,
        pte_errors,
        upper_pde,
        large_ptes,
        dual_pde,
        raw_views,
    ]
);
use crate::mmu::{PdeAttrs, PteAttrs};

const H: Chip = Chip::Hopper;
const B: Chip = Chip::BlackwellGb20x;

fn map(aperture: PteAperture, pa: u64) -> PteMapping {
    PteMapping {
        aperture,
        address: PhysAddr::new(pa),
        peer_id: 0,
        attrs: PteAttrs::default(),
    }
}

fn table(aperture: TableAperture, pa: u64) -> PdeTable {
    PdeTable {
        aperture,
        address: PhysAddr::new(pa),
        attrs: PdeAttrs::default(),
    }
}

fn pte_kat(chip: Chip, level: Level, state: PteState, raw: u64) -> SelfTestResult {
    st_eq!(encode_pte(chip, level, &state), Ok(raw), "{state:?}");
    st_eq!(decode_pte(chip, level, raw), Ok(state), "{raw:#x}");
    Ok(())
}

fn pde_kat(chip: Chip, level: Level, state: PdeState, raw: u64) -> SelfTestResult {
    st_eq!(encode_pde(chip, level, &state), Ok(raw), "{state:?}");
    st_eq!(decode_pde(chip, level, raw), Ok(state), "{raw:#x}");
    Ok(())
}

fn dual_kat(chip: Chip, state: DualPdeState, raw: [u64; 2]) -> SelfTestResult {
    st_eq!(encode_dual_pde(chip, &state), Ok(raw), "{state:?}");
    st_eq!(decode_dual_pde(chip, raw), Ok(state), "{raw:x?}");
    Ok(())
}

fn pte_apertures_and_peer() -> SelfTestResult {
    // Vidmem PA 0x12_3456_7000 in place | VALID 1, PCF 0 (RW atomic cached ACE)
    // → 0x12_3456_7001
    pte_kat(
        H,
        Level::PtSmall,
        PteState::Valid(map(PteAperture::Vidmem, 0x12_3456_7000)),
        0x12_3456_7001,
    )?;
    // Peer 7: PA 0xF_FFFF_FFFF_F000 (51:12 all ones) | PEER_ID 7 << 61 =
    // 0xE000_0000_0000_0000 | KIND 6 << 8 = 0x600 | ap peer 1 << 1 = 2 | V 1
    // → 0xE00F_FFFF_FFFF_F603
    let mut m = map(PteAperture::Peer, 0xF_FFFF_FFFF_F000);
    m.peer_id = 7;
    m.attrs.kind = 6;
    pte_kat(H, Level::PtSmall, PteState::Valid(m), 0xE00F_FFFF_FFFF_F603)?;
    // Sysmem non-coherent PA 0x1000 | ap 3 << 1 = 6 | PCF (PRIVILEGE 2 | ACD 16 = 18) << 3
    // = 0x90 | V 1 → 0x1097
    let mut m = map(PteAperture::SysmemNonCoherent, 0x1000);
    m.attrs.privileged = true;
    m.attrs.access_counting_disabled = true;
    pte_kat(B, Level::PtSmall, PteState::Valid(m), 0x1097)?;
    // Sysmem coherent 64 KiB page PA 0xA_BCDE_0000 | ap 2 << 1 = 4 | KIND 0xF << 8 = 0xF00
    // | V 1 → 0xA_BCDE_0F05
    let mut m = map(PteAperture::SysmemCoherent, 0xA_BCDE_0000);
    m.attrs.kind = 0xF;
    pte_kat(H, Level::PtBig, PteState::Valid(m), 0xA_BCDE_0F05)?;
    // Peer 3 PA 0x10_0000_0000_0000 is beyond 52 bits → too wide; PA 0x100_0000_0000
    // (2^40) is fine for peer: | 3 << 61 = 0x6000_0000_0000_0000 | 2 | 1
    let mut m = map(PteAperture::Peer, 0x100_0000_0000);
    m.peer_id = 3;
    pte_kat(H, Level::PtSmall, PteState::Valid(m), 0x6000_0100_0000_0003)?;
    Ok(())
}

fn pte_pcf_decomposition() -> SelfTestResult {
    // PCF bit 0 UNCACHED, 1 PRIVILEGE, 2 READ_ONLY, 3 NO_ATOMIC, 4 ACD.
    let base = map(PteAperture::Vidmem, 0x1000);
    let cases: [(PteAttrs, u64); 6] = [
        // REGULAR_RW_ATOMIC_CACHED_ACE = 0: 0x1000 | 1 = 0x1001
        (PteAttrs::default(), 0x1001),
        // UNCACHED = 1 → 1 << 3 = 0x8 → 0x1009
        (
            PteAttrs {
                volatile: true,
                ..PteAttrs::default()
            },
            0x1009,
        ),
        // PRIVILEGE = 2 → 0x10 → 0x1011
        (
            PteAttrs {
                privileged: true,
                ..PteAttrs::default()
            },
            0x1011,
        ),
        // RO = 4 → 0x20 → 0x1021
        (
            PteAttrs {
                read_only: true,
                ..PteAttrs::default()
            },
            0x1021,
        ),
        // NO_ATOMIC = 8 → 0x40 → 0x1041; RO | NO_ATOMIC (nova's `ro()`) = 0xC → 0x60
        (
            PteAttrs {
                atomic_disable: true,
                ..PteAttrs::default()
            },
            0x1041,
        ),
        // ACD = 16 → 0x80 → 0x1081
        (
            PteAttrs {
                access_counting_disabled: true,
                ..PteAttrs::default()
            },
            0x1081,
        ),
    ];
    for (attrs, raw) in cases {
        let mut m = base;
        m.attrs = attrs;
        pte_kat(H, Level::PtSmall, PteState::Valid(m), raw)?;
    }
    // All 32 values decompose and recompose.
    for pcf in 0..32u8 {
        st_eq!(pte_pcf(&pte_attrs(pcf, 0)), pcf);
    }
    // PRIVILEGE_RO_ATOMIC_UNCACHED_ACD (nova's privileged pages): 16|4|2|1 = 0x17 << 3
    // = 0xB8 → 0x10B9
    let mut m = base;
    m.attrs = pte_attrs(0x17, 0);
    pte_kat(H, Level::PtSmall, PteState::Valid(m), 0x10B9)?;
    Ok(())
}

fn pte_special_states() -> SelfTestResult {
    // V=0, PCF in 7:3: INVALID 0, SPARSE 1 → 0x8, MAPPING_NOWHERE 2 → 0x10,
    // NO_VALID_4KB_PAGE 3 → 0x18.
    pte_kat(H, Level::PtSmall, PteState::Invalid, 0)?;
    pte_kat(H, Level::PtSmall, PteState::Sparse, 0x8)?;
    pte_kat(B, Level::PtBig, PteState::Sparse, 0x8)?;
    pte_kat(H, Level::PtSmall, PteState::MappingNowhere, 0x10)?;
    pte_kat(B, Level::PtBig, PteState::MappingNowhere, 0x10)?;
    pte_kat(
        Chip::BlackwellGb10x,
        Level::PtSmall,
        PteState::MappingNowhere,
        0x10,
    )?;
    pte_kat(B, Level::PtBig, PteState::Invalid, 0)?;
    pte_kat(Chip::BlackwellGb10x, Level::PtSmall, PteState::Sparse, 0x8)?;
    pte_kat(H, Level::PtBig, PteState::NoValid4K, 0x18)?;
    pte_kat(
        Chip::BlackwellGb10x,
        Level::PtBig,
        PteState::NoValid4K,
        0x18,
    )?;
    st_eq!(
        encode_pte(H, Level::PtSmall, &PteState::NoValid4K),
        Err(FormatError::StateNotAllowed {
            level: Level::PtSmall
        })
    );
    // PCF 4 with V=0 is undefined.
    st_eq!(
        decode_pte(H, Level::PtSmall, 0x20),
        Err(FormatError::UndefinedEncoding {
            field: "PCF",
            value: 4
        })
    );
    Ok(())
}

fn pte_errors() -> SelfTestResult {
    let mut m = map(PteAperture::Vidmem, 0x100_0000_0000);
    st_eq!(
        encode_pte(H, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::AddressTooWide {
            address: 0x100_0000_0000,
            bits: 40
        })
    );
    m.aperture = PteAperture::SysmemCoherent;
    m.address = PhysAddr::new(0x10_0000_0000_0000);
    st_eq!(
        encode_pte(H, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::AddressTooWide {
            address: 0x10_0000_0000_0000,
            bits: 52
        })
    );
    m.address = PhysAddr::new(0x1000);
    m.attrs.kind = 16;
    st_eq!(
        encode_pte(H, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::FieldOutOfRange {
            field: "KIND",
            value: 16,
            max: 15
        })
    );
    m.attrs.kind = 0;
    m.attrs.encrypted = true;
    st_eq!(
        encode_pte(H, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::FieldNotInFormat { field: "ENCRYPTED" })
    );
    m.attrs.encrypted = false;
    m.attrs.comptagline = 1;
    st_eq!(
        encode_pte(H, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::FieldNotInFormat {
            field: "COMPTAGLINE"
        })
    );
    m.attrs.comptagline = 0;
    m.peer_id = 2;
    st_assert!(matches!(
        encode_pte(H, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::Conflict { .. })
    ));
    // Bits 60:52 are reserved; a vidmem address beyond 40 bits is too wide.
    st_eq!(
        decode_pte(H, Level::PtSmall, (1 << 52) | 0x1001),
        Err(FormatError::ReservedBits {
            qword: 0,
            bits: 1 << 52
        })
    );
    st_assert!(matches!(
        decode_pte(H, Level::PtSmall, (1 << 40) | 1),
        Err(FormatError::AddressTooWide { .. })
    ));
    st_assert!(matches!(
        encode_pte(Chip::Ada, Level::PtSmall, &PteState::Invalid),
        Err(FormatError::WrongVersion { .. })
    ));
    Ok(())
}

fn upper_pde() -> SelfTestResult {
    // Vidmem table PA 0xAB_CDEF_1000 in place | ap 1 << 1 = 2 | PCF VALID_CACHED_ATS_NOT_ALLOWED
    // (2) << 3 = 0x10 → 0xAB_CDEF_1012
    let mut t = table(TableAperture::Vidmem, 0xAB_CDEF_1000);
    t.attrs.no_ats = true;
    pde_kat(H, Level::Pd4, PdeState::Table(t), 0xAB_CDEF_1012)?;
    // Sysmem coherent PA 0xF_FFFF_FFFF_F000 | ap 4 | PCF VALID_UNCACHED_ATS_ALLOWED (1) << 3
    // = 0x8 → 0xF_FFFF_FFFF_F00C
    let mut t = table(TableAperture::SysmemCoherent, 0xF_FFFF_FFFF_F000);
    t.attrs.uncached = true;
    pde_kat(H, Level::Pd3, PdeState::Table(t), 0xF_FFFF_FFFF_F00C)?;
    // Sysmem non-coherent PA 0x2000 | ap 6 | PCF 3 << 3 = 0x18 → 0x201E
    let mut t = table(TableAperture::SysmemNonCoherent, 0x2000);
    t.attrs.uncached = true;
    t.attrs.no_ats = true;
    pde_kat(B, Level::Pd2, PdeState::Table(t), 0x201E)?;
    // Vidmem PA 0x1000, PCF 0 (VALID_CACHED_ATS_ALLOWED) → 0x1002
    pde_kat(
        B,
        Level::Pd1,
        PdeState::Table(table(TableAperture::Vidmem, 0x1000)),
        0x1002,
    )?;
    // Invalid; sparse = APERTURE 0 with PCF SPARSE_ATS_ALLOWED (1) << 3 = 0x8.
    pde_kat(H, Level::Pd4, PdeState::Invalid, 0)?;
    pde_kat(B, Level::Pd2, PdeState::Invalid, 0)?;
    pde_kat(Chip::BlackwellGb10x, Level::Pd1, PdeState::Invalid, 0)?;
    pde_kat(B, Level::Pd4, PdeState::Sparse, 0x8)?;
    pde_kat(H, Level::Pd3, PdeState::Sparse, 0x8)?;
    pde_kat(B, Level::Pd1, PdeState::Sparse, 0x8)?;
    // INVALID_ATS_NOT_ALLOWED (2 << 3 = 0x10) and SPARSE_ATS_NOT_ALLOWED (0x18) decode
    // leniently.
    st_eq!(decode_pde(H, Level::Pd3, 0x10), Ok(PdeState::Invalid));
    st_eq!(decode_pde(H, Level::Pd3, 0x18), Ok(PdeState::Sparse));
    // PCF 4..7 are undefined.
    st_eq!(
        decode_pde(H, Level::Pd3, 0x1022),
        Err(FormatError::UndefinedEncoding {
            field: "PCF",
            value: 4
        })
    );
    // Bits 11:6 reserved.
    st_eq!(
        decode_pde(H, Level::Pd3, 0x1042),
        Err(FormatError::ReservedBits {
            qword: 0,
            bits: 0x40
        })
    );
    Ok(())
}

fn large_ptes() -> SelfTestResult {
    // 512 MiB at PD1 (all v3): PA 0x6000_0000 | V 1 = 0x6000_0001
    let vid = |pa| map(PteAperture::Vidmem, pa);
    pde_kat(H, Level::Pd1, PdeState::Pte(vid(0x6000_0000)), 0x6000_0001)?;
    // PA 0xFF_E000_0000 | RO (4 << 3 = 0x20) | V → 0xFF_E000_0021
    let mut m = vid(0xFF_E000_0000);
    m.attrs.read_only = true;
    pde_kat(B, Level::Pd1, PdeState::Pte(m), 0xFF_E000_0021)?;
    // Sysmem coh PA 0x8_0000_0000_0000 | ap 4 | V → 0x8_0000_0000_0005
    pde_kat(
        Chip::BlackwellGb10x,
        Level::Pd1,
        PdeState::Pte(map(PteAperture::SysmemCoherent, 0x8_0000_0000_0000)),
        0x8_0000_0000_0005,
    )?;
    // 256 GiB at PD2 on Blackwell: PA 0x40_0000_0000 | V 1 = 0x40_0000_0001
    pde_kat(
        B,
        Level::Pd2,
        PdeState::Pte(vid(0x40_0000_0000)),
        0x40_0000_0001,
    )?;
    pde_kat(
        Chip::BlackwellGb10x,
        Level::Pd2,
        PdeState::Pte(vid(0xC0_0000_0000)),
        0xC0_0000_0001,
    )?;
    // Sysmem non-coherent PA 0x1000_0000_0000 | ap 6 | UNCACHED 0x8 | V → ..0F
    let mut m = map(PteAperture::SysmemNonCoherent, 0x1000_0000_0000);
    m.attrs.volatile = true;
    pde_kat(B, Level::Pd2, PdeState::Pte(m), 0x1000_0000_000F)?;
    // ... but not on Hopper, and never at PD3/PD4.
    for (chip, level) in [(H, Level::Pd2), (B, Level::Pd3), (B, Level::Pd4)] {
        st_eq!(
            encode_pde(chip, level, &PdeState::Pte(vid(0x40_0000_0000))),
            Err(FormatError::PteNotAllowed { level, chip })
        );
        st_eq!(
            decode_pde(chip, level, 0x40_0000_0001),
            Err(FormatError::PteNotAllowed { level, chip })
        );
    }
    st_assert!(matches!(
        encode_pde(B, Level::Pd2, &PdeState::Pte(vid(0x2000_0000))),
        Err(FormatError::Misaligned { .. })
    ));
    Ok(())
}

fn dual_pde() -> SelfTestResult {
    // Big vidmem PA 0xAB_CDEF_1200 in place (51:8) | ap 2 | PCF_BIG uncached (1 << 3)
    // → 0xAB_CDEF_120A. Small sysmem coh PA 0xF_0000_0000_0000 in place (115:76 = 51:12 of
    // the high qword) | ap 4 | PCF_SMALL 3 << 3 = 0x18 → 0xF_0000_0000_001C.
    let mut big = table(TableAperture::Vidmem, 0xAB_CDEF_1200);
    big.attrs.uncached = true;
    let mut small = table(TableAperture::SysmemCoherent, 0xF_0000_0000_0000);
    small.attrs.uncached = true;
    small.attrs.no_ats = true;
    dual_kat(
        H,
        DualPdeState::Tables {
            big: DualHalf::Table(big),
            small: DualHalf::Table(small),
        },
        [0xAB_CDEF_120A, 0xF_0000_0000_001C],
    )?;
    // Big only: sysmem noncoh PA 0xF_FFFF_FFFF_FF00 | ap 6 | PCF 2 << 3 = 0x10
    // → 0xF_FFFF_FFFF_FF16
    let mut big = table(TableAperture::SysmemNonCoherent, 0xF_FFFF_FFFF_FF00);
    big.attrs.no_ats = true;
    dual_kat(
        B,
        DualPdeState::Tables {
            big: DualHalf::Table(big),
            small: DualHalf::Invalid,
        },
        [0xF_FFFF_FFFF_FF16, 0],
    )?;
    // Small only: vidmem PA 0x1000 | ap 2 → 0x1002
    dual_kat(
        H,
        DualPdeState::Tables {
            big: DualHalf::Invalid,
            small: DualHalf::Table(table(TableAperture::Vidmem, 0x1000)),
        },
        [0, 0x1002],
    )?;
    dual_kat(H, DualPdeState::INVALID, [0, 0])?;
    // 2 MiB PTE: PA 0x20_0000 | V 1 = 0x20_0001, high 0
    dual_kat(
        H,
        DualPdeState::Pte(map(PteAperture::Vidmem, 0x20_0000)),
        [0x20_0001, 0],
    )?;
    // Peer 1 PA 0x40_0000 | 1 << 61 | ap 2 | V → 0x2000_0000_0040_0003
    let mut m = map(PteAperture::Peer, 0x40_0000);
    m.peer_id = 1;
    dual_kat(B, DualPdeState::Pte(m), [0x2000_0000_0040_0003, 0])?;
    // Sysmem coh PA 0x1_0000_0000 | ap 4 | RO 0x20 | V → 0x1_0000_0025
    let mut m = map(PteAperture::SysmemCoherent, 0x1_0000_0000);
    m.attrs.read_only = true;
    dual_kat(
        Chip::BlackwellGb10x,
        DualPdeState::Pte(m),
        [0x1_0000_0025, 0],
    )?;
    // Sparse: both apertures 0, PCF_BIG SPARSE_ATS_ALLOWED (1 << 3) → [0x8, 0]
    dual_kat(H, DualPdeState::Sparse, [0x8, 0])?;
    dual_kat(B, DualPdeState::Sparse, [0x8, 0])?;
    dual_kat(Chip::BlackwellGb10x, DualPdeState::Sparse, [0x8, 0])?;
    st_eq!(decode_dual_pde(H, [0x18, 0]), Ok(DualPdeState::Sparse));
    // PCF_SMALL alone does not make it sparse.
    st_eq!(decode_dual_pde(H, [0, 0x8]), Ok(DualPdeState::INVALID));
    // Big table not 256 B aligned.
    st_assert!(matches!(
        encode_dual_pde(
            H,
            &DualPdeState::Tables {
                big: DualHalf::Table(table(TableAperture::Vidmem, 0x80)),
                small: DualHalf::Invalid,
            }
        ),
        Err(FormatError::Misaligned { .. })
    ));
    // Reserved bits 7:6 of the low qword, 11:6 of the high qword.
    st_eq!(
        decode_dual_pde(H, [0x1202 | 0x40, 0]),
        Err(FormatError::ReservedBits {
            qword: 0,
            bits: 0x40
        })
    );
    st_eq!(
        decode_dual_pde(H, [0, 0x1002 | 0x800]),
        Err(FormatError::ReservedBits {
            qword: 1,
            bits: 0x800
        })
    );
    st_eq!(
        decode_dual_pde(H, [0x20_0001, 1]),
        Err(FormatError::ReservedBits { qword: 1, bits: 1 })
    );
    Ok(())
}

fn raw_views() -> SelfTestResult {
    // 0xE00F_FFFF_FFFF_F603: peer 7, all-ones address, kind 6, aperture peer, valid.
    let e = Ver3Pte::from_bits(0xE00F_FFFF_FFFF_F603);
    st_assert!(e.valid());
    st_eq!(e.aperture(), 1);
    st_eq!(e.kind(), 6);
    st_eq!(e.pcf(), 0);
    st_eq!(e.address(), (1 << 40) - 1);
    st_eq!(e.peer_id(), 7);
    // Dual: big at 0xAB_CDEF_1200 → ADDRESS_BIG = 0xAB_CDEF_12; small PCF 3.
    let b = Ver3DualPdeBig::from_bits(0xAB_CDEF_120A);
    st_eq!(b.address_big(), 0xABCD_EF12);
    st_eq!(b.pcf_big(), 1);
    st_eq!(b.aperture_big(), 1);
    let s = Ver3DualPdeSmall::from_bits(0xF_0000_0000_001C);
    st_eq!(s.aperture_small(), 2);
    st_eq!(s.pcf_small(), 3);
    // PA 0xF_0000_0000_0000 >> 12 = 0xF0_0000_0000
    st_eq!(s.address_small(), 0xF0_0000_0000);
    Ok(())
}
