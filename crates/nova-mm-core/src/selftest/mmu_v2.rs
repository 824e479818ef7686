//! Self-tests: the known-answer tests of MMU v2, worked out by hand from the bit tables in
//! `mmu-formats.md` §1.2-§1.5. The only copy of these values: the kernel module runs them from
//! `TESTS`, and `cargo test` runs each as its own `#[test]` (`selftest::mmu_v2::host::*`).

use super::SelfTestResult;
#[allow(unused_imports)]
use crate::addr::{PageSize, PhysAddr};
use crate::chip::Chip;
#[allow(unused_imports)]
use crate::mmu::v2::*;
use crate::mmu::v2::{
    decode_dual_pde, decode_pde, decode_pte, encode_dual_pde, encode_pde, encode_pte,
};
#[allow(unused_imports)]
use crate::mmu::*;
use crate::{st_assert, st_eq};

super::plain_selftests_and_host_tests!(
    "mmu_v2",
    [
        pte_vidmem,
        pte_peer,
        pte_sysmem,
        pte_every_field_kind_and_comptagline,
        pte_special_states,
        pte_errors,
        upper_pde,
        large_pte_512m,
        dual_pde_tables,
        dual_pde_special,
        dual_pde_no_ats_conflict,
        dual_pde_no_ats_on_pascal,
        raw_views_are_little_endian_table_images,
    ]
);
use crate::mmu::{PdeAttrs, PteAttrs};

const T: Chip = Chip::Turing;

fn vid(pa: u64) -> PteMapping {
    PteMapping {
        aperture: PteAperture::Vidmem,
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

/// Encodes, checks the bits, decodes back.
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

fn pte_vidmem() -> SelfTestResult {
    // PA 0x1_2345_6000 >> 4 = 0x1234_5600; | VALID(1) | READ_ONLY(1<<6) = 0x1234_5641
    let mut m = vid(0x1_2345_6000);
    m.attrs.read_only = true;
    pte_kat(T, Level::PtSmall, PteState::Valid(m), 0x1234_5641)?;
    // PA 0x1000 >> 4 = 0x100; | VALID = 0x101
    pte_kat(T, Level::PtSmall, PteState::Valid(vid(0x1000)), 0x101)?;
    // Largest vidmem PA 0x1F_FFFF_F000 >> 4 = 0x1_FFFF_FF00 (bits 32:8 all ones) | VALID(1)
    // | VOL(1<<3) = 0x1_FFFF_FF09
    let mut m = vid(0x1F_FFFF_F000);
    m.attrs.volatile = true;
    pte_kat(T, Level::PtSmall, PteState::Valid(m), 0x1_FFFF_FF09)?;
    // 64 KiB page at PA 0x3_0001_0000 >> 4 = 0x3000_1000 | VALID = 0x3000_1001
    pte_kat(
        T,
        Level::PtBig,
        PteState::Valid(vid(0x3_0001_0000)),
        0x3000_1001,
    )?;
    Ok(())
}

fn pte_peer() -> SelfTestResult {
    // PA 0x1F_FFFF_F000 >> 4 = 0x1_FFFF_FF00; peer 5 << 33 = 0xA_0000_0000;
    // APERTURE peer (1 << 1) = 2; VALID 1 → 0xB_FFFF_FF03
    let mut m = vid(0x1F_FFFF_F000);
    m.aperture = PteAperture::Peer;
    m.peer_id = 5;
    pte_kat(T, Level::PtSmall, PteState::Valid(m), 0xB_FFFF_FF03)?;
    // PA 0x4000 >> 4 = 0x400; peer 7 << 33 = 0xE_0000_0000; ap 2; V 1 → 0xE_0000_0403
    let mut m = vid(0x4000);
    m.aperture = PteAperture::Peer;
    m.peer_id = 7;
    pte_kat(T, Level::PtSmall, PteState::Valid(m), 0xE_0000_0403)?;
    // Peer 0: PA 0x2000 >> 4 = 0x200 | ap 2 | V 1 = 0x203
    let mut m = vid(0x2000);
    m.aperture = PteAperture::Peer;
    pte_kat(T, Level::PtSmall, PteState::Valid(m), 0x203)?;
    Ok(())
}

fn pte_sysmem() -> SelfTestResult {
    // PA 0x3_0000_0000_0000 >> 4 = 0x3000_0000_0000; ap sys coh (2 << 1) = 4; V 1; VOL 8
    // → 0x3000_0000_000D
    let mut m = vid(0x3_0000_0000_0000);
    m.aperture = PteAperture::SysmemCoherent;
    m.attrs.volatile = true;
    pte_kat(T, Level::PtSmall, PteState::Valid(m), 0x3000_0000_000D)?;
    // Largest sysmem PA 0x3FF_FFFF_FFFF_F000 >> 4 = 0x3F_FFFF_FFFF_FF00 (bits 53:8 all
    // ones); ap noncoh (3 << 1) = 6; V 1 → 0x3F_FFFF_FFFF_FF07
    let mut m = vid(0x3FF_FFFF_FFFF_F000);
    m.aperture = PteAperture::SysmemNonCoherent;
    pte_kat(T, Level::PtSmall, PteState::Valid(m), 0x3F_FFFF_FFFF_FF07)?;
    // PA 0x20_0000_0000 (just above the vidmem limit) >> 4 = 0x2_0000_0000; ap 4; V 1;
    // PRIVILEGE 0x20 → 0x2_0000_0025
    let mut m = vid(0x20_0000_0000);
    m.aperture = PteAperture::SysmemCoherent;
    m.attrs.privileged = true;
    pte_kat(T, Level::PtSmall, PteState::Valid(m), 0x2_0000_0025)?;
    Ok(())
}

fn pte_every_field_kind_and_comptagline() -> SelfTestResult {
    // KIND 0x06 << 56 = 0x0600_0000_0000_0000; COMPTAGLINE 0xF_FFFF << 36 =
    // 0x00FF_FFF0_0000_0000; PA 0x1000 >> 4 = 0x100; V 1 | ENCRYPTED 0x10 | PRIVILEGE 0x20
    // | ATOMIC_DISABLE 0x80 = 0xB1 → 0x06FF_FFF0_0000_01B1
    let mut m = vid(0x1000);
    m.attrs = PteAttrs {
        encrypted: true,
        privileged: true,
        atomic_disable: true,
        kind: 0x06,
        comptagline: 0xF_FFFF,
        ..PteAttrs::default()
    };
    pte_kat(T, Level::PtSmall, PteState::Valid(m), 0x06FF_FFF0_0000_01B1)?;
    // Pascal: 18-bit comptag 0x3_FFFF << 36 = 0x003F_FFF0_0000_0000; KIND 0xFF << 56;
    // every flag: V 1 | VOL 8 | ENC 0x10 | PRIV 0x20 | RO 0x40 | AD 0x80 = 0xF9;
    // PA 0x1F_FFFF_F000 >> 4 = 0x1_FFFF_FF00 → 0xFF3F_FFF1_FFFF_FFF9
    let mut m = vid(0x1F_FFFF_F000);
    m.attrs = PteAttrs {
        read_only: true,
        privileged: true,
        volatile: true,
        atomic_disable: true,
        encrypted: true,
        access_counting_disabled: false,
        kind: 0xFF,
        comptagline: 0x3_FFFF,
    };
    pte_kat(
        Chip::Pascal,
        Level::PtSmall,
        PteState::Valid(m),
        0xFF3F_FFF1_FFFF_FFF9,
    )?;
    // Turing 20-bit comptag 0x8_0001 << 36 = 0x0080_0010_0000_0000; KIND 0x08 << 56; PA
    // 0x5000 >> 4 = 0x500; V 1 → 0x0880_0010_0000_0501
    let mut m = vid(0x5000);
    m.attrs.kind = 0x08;
    m.attrs.comptagline = 0x8_0001;
    pte_kat(
        Chip::Ada,
        Level::PtSmall,
        PteState::Valid(m),
        0x0880_0010_0000_0501,
    )?;
    // ...which Pascal/Volta cannot hold (18 bits).
    st_eq!(
        encode_pte(Chip::Volta, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::FieldOutOfRange {
            field: "COMPTAGLINE",
            value: 0x8_0001,
            max: 0x3_FFFF
        })
    );
    // Decoding those bits (55) on Volta: reserved.
    st_eq!(
        decode_pte(Chip::Volta, Level::PtSmall, 0x0880_0010_0000_0501),
        Err(FormatError::ReservedBits {
            qword: 0,
            bits: 0x0080_0000_0000_0000
        })
    );
    Ok(())
}

fn pte_special_states() -> SelfTestResult {
    pte_kat(T, Level::PtSmall, PteState::Invalid, 0)?;
    pte_kat(T, Level::PtBig, PteState::Invalid, 0)?;
    // Sparse: V=0, VOL(1<<3) = 0x8
    pte_kat(T, Level::PtSmall, PteState::Sparse, 0x8)?;
    pte_kat(Chip::Pascal, Level::PtBig, PteState::Sparse, 0x8)?;
    // No valid 4K below: V=0, PRIVILEGE(1<<5) = 0x20, big page table only.
    pte_kat(T, Level::PtBig, PteState::NoValid4K, 0x20)?;
    pte_kat(Chip::Ada, Level::PtBig, PteState::NoValid4K, 0x20)?;
    pte_kat(Chip::Pascal, Level::PtBig, PteState::NoValid4K, 0x20)?;
    pte_kat(Chip::Volta, Level::PtSmall, PteState::Invalid, 0)?;
    pte_kat(Chip::Ampere, Level::PtSmall, PteState::Sparse, 0x8)?;
    st_eq!(
        encode_pte(T, Level::PtSmall, &PteState::NoValid4K),
        Err(FormatError::StateNotAllowed {
            level: Level::PtSmall
        })
    );
    // RM's variant V=0 VOL=1 PRIV=1 = 0x28 decodes as sparse (§7.1).
    st_eq!(decode_pte(T, Level::PtBig, 0x28), Ok(PteState::Sparse));
    st_eq!(
        encode_pte(T, Level::PtBig, &PteState::MappingNowhere),
        Err(FormatError::FieldNotInFormat {
            field: "MAPPING_NOWHERE"
        })
    );
    // An invalid PTE with an address left in it is not canonical.
    st_eq!(
        decode_pte(T, Level::PtSmall, 0x1234_5600),
        Err(FormatError::ReservedBits {
            qword: 0,
            bits: 0x1234_5600
        })
    );
    Ok(())
}

fn pte_errors() -> SelfTestResult {
    let mut m = vid(0x20_0000_0000);
    st_eq!(
        encode_pte(T, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::AddressTooWide {
            address: 0x20_0000_0000,
            bits: 37
        })
    );
    m.address = PhysAddr::new(0x1800);
    st_eq!(
        encode_pte(T, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::Misaligned {
            address: 0x1800,
            align: 0x1000
        })
    );
    m.address = PhysAddr::new(0x1_1000);
    st_eq!(
        encode_pte(T, Level::PtBig, &PteState::Valid(m)),
        Err(FormatError::Misaligned {
            address: 0x1_1000,
            align: 0x1_0000
        })
    );
    m.address = PhysAddr::new(0x1000);
    m.peer_id = 1;
    st_assert!(matches!(
        encode_pte(T, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::Conflict { .. })
    ));
    m.peer_id = 0;
    m.aperture = PteAperture::SysmemCoherent;
    m.attrs.comptagline = 1;
    st_assert!(matches!(
        encode_pte(T, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::Conflict { .. })
    ));
    m.attrs.comptagline = 0;
    m.attrs.access_counting_disabled = true;
    st_eq!(
        encode_pte(T, Level::PtSmall, &PteState::Valid(m)),
        Err(FormatError::FieldNotInFormat { field: "ACD" })
    );
    st_assert!(matches!(
        encode_pte(Chip::Hopper, Level::PtSmall, &PteState::Invalid),
        Err(FormatError::WrongVersion { .. })
    ));
    st_eq!(
        encode_pte(T, Level::Pd0, &PteState::Invalid),
        Err(FormatError::WrongLevel { level: Level::Pd0 })
    );
    // Vidmem PTE with a peer id in 35:33: reserved.
    st_eq!(
        decode_pte(T, Level::PtSmall, 0x2_0000_0101),
        Err(FormatError::ReservedBits {
            qword: 0,
            bits: 0x2_0000_0000
        })
    );
    // Sysmem PTE with bit 54 set: reserved on every chip.
    st_eq!(
        decode_pte(T, Level::PtSmall, (1 << 54) | 0x105),
        Err(FormatError::ReservedBits {
            qword: 0,
            bits: 1 << 54
        })
    );
    Ok(())
}

fn upper_pde() -> SelfTestResult {
    let vt = table(TableAperture::Vidmem, 0x2_0000_0000);
    // PA 0x2_0000_0000 >> 4 = 0x2000_0000 | APERTURE vid (1 << 1) = 0x2000_0002
    pde_kat(T, Level::Pd3, PdeState::Table(vt), 0x2000_0002)?;
    // ... | VOL 8 = 0x2000_000A
    let mut t = vt;
    t.attrs.uncached = true;
    pde_kat(T, Level::Pd2, PdeState::Table(t), 0x2000_000A)?;
    // Sysmem non-coherent PA 0x123_4567_8000 >> 4 = 0x12_3456_7800 | ap (3 << 1) = 6 |
    // NO_ATS (1 << 5) = 0x20 → 0x12_3456_7826
    let mut t = table(TableAperture::SysmemNonCoherent, 0x123_4567_8000);
    t.attrs.no_ats = true;
    pde_kat(T, Level::Pd1, PdeState::Table(t), 0x12_3456_7826)?;
    // Sysmem coherent PA 0x3FF_FFFF_FFFF_F000 >> 4 = 0x3F_FFFF_FFFF_FF00 | ap 4 → ..04
    let t = table(TableAperture::SysmemCoherent, 0x3FF_FFFF_FFFF_F000);
    pde_kat(
        Chip::Pascal,
        Level::Pd1,
        PdeState::Table(t),
        0x3F_FFFF_FFFF_FF04,
    )?;
    // NO_ATS does not exist on Pascal.
    let mut t = vt;
    t.attrs.no_ats = true;
    st_eq!(
        encode_pde(Chip::Pascal, Level::Pd1, &PdeState::Table(t)),
        Err(FormatError::FieldNotInFormat { field: "NO_ATS" })
    );
    st_eq!(
        decode_pde(Chip::Pascal, Level::Pd1, 0x2000_0022),
        Err(FormatError::ReservedBits {
            qword: 0,
            bits: 0x20
        })
    );
    // Invalid and sparse (APERTURE 0, VOL 1 = 0x8).
    pde_kat(T, Level::Pd3, PdeState::Invalid, 0)?;
    pde_kat(Chip::Pascal, Level::Pd2, PdeState::Invalid, 0)?;
    pde_kat(Chip::Ada, Level::Pd1, PdeState::Invalid, 0)?;
    pde_kat(T, Level::Pd2, PdeState::Sparse, 0x8)?;
    pde_kat(Chip::Pascal, Level::Pd1, PdeState::Sparse, 0x8)?;
    // NO_ATS on an entry without a table is ignored (Volta+).
    st_eq!(decode_pde(T, Level::Pd2, 0x28), Ok(PdeState::Sparse));
    st_eq!(decode_pde(T, Level::Pd2, 0x20), Ok(PdeState::Invalid));
    // A vidmem table below 4 KiB alignment / beyond 37 bits.
    st_assert!(matches!(
        encode_pde(
            T,
            Level::Pd2,
            &PdeState::Table(table(TableAperture::Vidmem, 0x100))
        ),
        Err(FormatError::Misaligned { .. })
    ));
    st_assert!(matches!(
        encode_pde(
            T,
            Level::Pd2,
            &PdeState::Table(table(TableAperture::Vidmem, 1 << 37))
        ),
        Err(FormatError::AddressTooWide { .. })
    ));
    // PD0 and the leaves are not upper PDEs; PD4 does not exist.
    st_eq!(
        encode_pde(T, Level::Pd0, &PdeState::Invalid),
        Err(FormatError::WrongLevel { level: Level::Pd0 })
    );
    st_assert!(matches!(
        encode_pde(T, Level::Pd4, &PdeState::Invalid),
        Err(FormatError::NoSuchLevel { .. })
    ));
    Ok(())
}

fn large_pte_512m() -> SelfTestResult {
    // PD1 on Ampere: PA 0x2000_0000 >> 4 = 0x200_0000 | VALID/IS_PTE 1 = 0x200_0001
    pde_kat(
        Chip::Ampere,
        Level::Pd1,
        PdeState::Pte(vid(0x2000_0000)),
        0x200_0001,
    )?;
    // PA 0x1E_0000_0000 >> 4 = 0x1_E000_0000 | RO 0x40 | V 1 = 0x1_E000_0041 (Ada)
    let mut m = vid(0x1E_0000_0000);
    m.attrs.read_only = true;
    pde_kat(Chip::Ada, Level::Pd1, PdeState::Pte(m), 0x1_E000_0041)?;
    // Sysmem: PA 0x100_0000_0000 >> 4 = 0x10_0000_0000 | ap 4 | V 1 = 0x10_0000_0005
    let mut m = vid(0x100_0000_0000);
    m.aperture = PteAperture::SysmemCoherent;
    pde_kat(Chip::Ampere, Level::Pd1, PdeState::Pte(m), 0x10_0000_0005)?;
    // Not on Turing, never at PD2 / PD3.
    for (chip, level) in [
        (Chip::Turing, Level::Pd1),
        (Chip::Volta, Level::Pd1),
        (Chip::Ada, Level::Pd2),
        (Chip::Ada, Level::Pd3),
    ] {
        st_eq!(
            encode_pde(chip, level, &PdeState::Pte(vid(0x2000_0000))),
            Err(FormatError::PteNotAllowed { level, chip })
        );
        st_eq!(
            decode_pde(chip, level, 0x200_0001),
            Err(FormatError::PteNotAllowed { level, chip })
        );
    }
    // Must be 512 MiB aligned.
    st_assert!(matches!(
        encode_pde(Chip::Ampere, Level::Pd1, &PdeState::Pte(vid(0x1000_0000))),
        Err(FormatError::Misaligned { .. })
    ));
    st_assert!(matches!(
        decode_pde(Chip::Ampere, Level::Pd1, 0x100_0001),
        Err(FormatError::Misaligned { .. })
    ));
    Ok(())
}

fn dual_pde_tables() -> SelfTestResult {
    // Big half vidmem PA 0x1_2345_6700 (256 B aligned) >> 8 = 0x123_4567 at 32:4
    // = PA >> 4 = 0x1234_5670 | APERTURE_BIG vid (1 << 1) = 0x1234_5672.
    // Small half sysmem coherent PA 0x8_0000_0000_0000 >> 12 = 0x80_0000_0000 at 53:8
    // (117:72) = PA >> 4 = 0x8000_0000_0000 | APERTURE_SMALL (2 << 1) = 0x8000_0000_0004.
    dual_kat(
        T,
        DualPdeState::Tables {
            big: DualHalf::Table(table(TableAperture::Vidmem, 0x1_2345_6700)),
            small: DualHalf::Table(table(TableAperture::SysmemCoherent, 0x8_0000_0000_0000)),
        },
        [0x1234_5672, 0x8000_0000_0004],
    )?;
    // Big only, sysmem non-coherent PA 0x3FF_FFFF_FFFF_FF00 >> 4 = 0x3F_FFFF_FFFF_FFF0 (53:4
    // all ones) | ap (3 << 1) 6 | VOL_BIG 8 = 0x3F_FFFF_FFFF_FFFE.
    let mut t = table(TableAperture::SysmemNonCoherent, 0x3FF_FFFF_FFFF_FF00);
    t.attrs.uncached = true;
    dual_kat(
        T,
        DualPdeState::Tables {
            big: DualHalf::Table(t),
            small: DualHalf::Invalid,
        },
        [0x3F_FFFF_FFFF_FFFE, 0],
    )?;
    // Small only, vidmem PA 0x1F_FFFF_F000 >> 4 = 0x1_FFFF_FF00 | ap 2 | VOL_SMALL 8
    // = 0x1_FFFF_FF0A; NO_ATS → low bit 5 = 0x20.
    let mut t = table(TableAperture::Vidmem, 0x1F_FFFF_F000);
    t.attrs.uncached = true;
    t.attrs.no_ats = true;
    dual_kat(
        Chip::Volta,
        DualPdeState::Tables {
            big: DualHalf::Invalid,
            small: DualHalf::Table(t),
        },
        [0x20, 0x1_FFFF_FF0A],
    )?;
    // Big vidmem PA 0x100 (smallest non-zero) >> 4 = 0x10 | ap 2 = 0x12; small vidmem
    // PA 0x1000 >> 4 = 0x100 | ap 2 = 0x102.
    dual_kat(
        Chip::Pascal,
        DualPdeState::Tables {
            big: DualHalf::Table(table(TableAperture::Vidmem, 0x100)),
            small: DualHalf::Table(table(TableAperture::Vidmem, 0x1000)),
        },
        [0x12, 0x102],
    )?;
    dual_kat(T, DualPdeState::INVALID, [0, 0])?;
    Ok(())
}

fn dual_pde_special() -> SelfTestResult {
    // 2 MiB PTE: PA 0x20_0000 >> 4 = 0x2_0000 | IS_PTE 1 = 0x2_0001, high qword 0.
    dual_kat(T, DualPdeState::Pte(vid(0x20_0000)), [0x2_0001, 0])?;
    // PA 0x1F_FFE0_0000 >> 4 = 0x1_FFFE_0000 | RO 0x40 | V 1 → 0x1_FFFE_0041
    let mut m = vid(0x1F_FFE0_0000);
    m.attrs.read_only = true;
    dual_kat(Chip::Pascal, DualPdeState::Pte(m), [0x1_FFFE_0041, 0])?;
    // Sysmem coherent PA 0x4000_0000_0000 >> 4 = 0x400_0000_0000 | ap 4 | VOL 8 | V 1 = ..0D
    let mut m = vid(0x4000_0000_0000);
    m.aperture = PteAperture::SysmemCoherent;
    m.attrs.volatile = true;
    dual_kat(Chip::Ada, DualPdeState::Pte(m), [0x400_0000_000D, 0])?;
    // A 2 MiB PTE with a non-zero high qword is corrupt.
    st_eq!(
        decode_dual_pde(T, [0x2_0001, 0x102]),
        Err(FormatError::ReservedBits {
            qword: 1,
            bits: 0x102
        })
    );
    // Not 2 MiB aligned.
    st_assert!(matches!(
        encode_dual_pde(T, &DualPdeState::Pte(vid(0x1000))),
        Err(FormatError::Misaligned { .. })
    ));
    // Sparse: both apertures 0, VOL_BIG 1 → [0x8, 0].
    dual_kat(T, DualPdeState::Sparse, [0x8, 0])?;
    dual_kat(Chip::Pascal, DualPdeState::Sparse, [0x8, 0])?;
    dual_kat(Chip::Ampere, DualPdeState::Sparse, [0x8, 0])?;
    // VOL_SMALL alone does not make it sparse; it is ignored.
    st_eq!(decode_dual_pde(T, [0, 0x8]), Ok(DualPdeState::INVALID));
    // VOL_BIG next to a valid small table: not sparse, ignored.
    st_eq!(
        decode_dual_pde(T, [0x8, 0x102]),
        Ok(DualPdeState::Tables {
            big: DualHalf::Invalid,
            small: DualHalf::Table(table(TableAperture::Vidmem, 0x1000)),
        })
    );
    // IS_PTE-position bit 64 in the high qword is reserved.
    st_eq!(
        decode_dual_pde(T, [0, 0x103]),
        Err(FormatError::ReservedBits { qword: 1, bits: 1 })
    );
    Ok(())
}

fn dual_pde_no_ats_conflict() -> SelfTestResult {
    let mut t = table(TableAperture::Vidmem, 0x1000);
    t.attrs.no_ats = true;
    // NO_ATS on the big half: bit 5 is an address bit there.
    st_assert!(matches!(
        encode_dual_pde(
            T,
            &DualPdeState::Tables {
                big: DualHalf::Table(t),
                small: DualHalf::Invalid,
            }
        ),
        Err(FormatError::Conflict { .. })
    ));
    // NO_ATS on the small half next to a big table.
    st_assert!(matches!(
        encode_dual_pde(
            T,
            &DualPdeState::Tables {
                big: DualHalf::Table(table(TableAperture::Vidmem, 0x100)),
                small: DualHalf::Table(t),
            }
        ),
        Err(FormatError::Conflict { .. })
    ));
    // Bit 5 with a big table decodes as PA bit 9 of the big table: PA 0x200 >> 4 = 0x20.
    st_eq!(
        decode_dual_pde(T, [0x22, 0]),
        Ok(DualPdeState::Tables {
            big: DualHalf::Table(table(TableAperture::Vidmem, 0x200)),
            small: DualHalf::Invalid,
        })
    );
    Ok(())
}

fn dual_pde_no_ats_on_pascal() -> SelfTestResult {
    let mut t = table(TableAperture::Vidmem, 0x1000);
    t.attrs.no_ats = true;
    let state = DualPdeState::Tables {
        big: DualHalf::Invalid,
        small: DualHalf::Table(t),
    };
    st_eq!(
        encode_dual_pde(Chip::Pascal, &state),
        Err(FormatError::FieldNotInFormat { field: "NO_ATS" })
    );
    // NO_ATS (0x20) next to a small vidmem table at 0x1000 (0x102): reserved on Pascal,
    // the small half's NO_ATS on Turing.
    st_eq!(
        decode_dual_pde(Chip::Pascal, [0x20, 0x102]),
        Err(FormatError::ReservedBits {
            qword: 0,
            bits: 0x20
        })
    );
    st_eq!(decode_dual_pde(T, [0x20, 0x102]), Ok(state));
    Ok(())
}

fn raw_views_are_little_endian_table_images() -> SelfTestResult {
    use zerocopy::{FromBytes, IntoBytes};
    // PA 0x1_2345_6000 >> 4 | RO | V = 0x1234_5641 (see pte_vidmem).
    let e = Ver2PteVid::from_bits(0x1234_5641);
    st_eq!(e.as_bytes(), &0x1234_5641u64.to_le_bytes());
    st_assert!(e.valid() && e.read_only() && !e.vol());
    st_eq!(e.address_vid(), 0x12_3456);
    let table = [0x1234_5641u64, 0x8, 0x20];
    let Ok(view) = <[Ver2PteVid]>::ref_from_bytes(table.as_bytes()) else {
        return Err("mmu_v2: table view");
    };
    st_eq!(view.len(), 3);
    st_assert!(view.get(1).is_some_and(|e| e.vol() && !e.valid()));
    st_assert!(view.get(2).is_some_and(|e| e.privilege()));
    // The sysmem view of the same bits reads 53:8.
    let s = Ver2PteSys::from_bits(0x3F_FFFF_FFFF_FF07);
    st_eq!(s.address_sys(), (1 << 46) - 1);
    st_eq!(s.aperture(), 3);
    Ok(())
}
