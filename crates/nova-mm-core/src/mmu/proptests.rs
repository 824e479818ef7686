//! Property tests for both formats: every legal semantic value round-trips through its bits on
//! every chip; arbitrary states never make the encoder panic and round-trip whenever they
//! encode; decoding arbitrary 64- and 128-bit values never panics, and whatever decodes
//! re-encodes to a subset of the same bits (only documented ignored bits are dropped) that
//! decodes to the same state.

use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::addr::{PageSize, PhysAddr};

fn chips(version: MmuVersion) -> Vec<Chip> {
    Chip::ALL
        .iter()
        .copied()
        .filter(|c| c.mmu_version() == version)
        .collect()
}

fn any_chip() -> impl Strategy<Value = Chip> {
    proptest::sample::select(Chip::ALL.to_vec())
}

/// Width of the address a legal entry of `version` may hold for this aperture.
fn pte_pa_bits(version: MmuVersion, ap: PteAperture) -> u32 {
    match (version, ap) {
        (MmuVersion::V2, PteAperture::Vidmem | PteAperture::Peer) => v2::VID_PA_BITS,
        (MmuVersion::V2, _) => v2::SYS_PA_BITS,
        (MmuVersion::V3, PteAperture::Vidmem) => v3::VID_PA_BITS,
        (MmuVersion::V3, _) => v3::PA_BITS,
    }
}

fn table_pa_bits(version: MmuVersion, ap: TableAperture) -> u32 {
    match (version, ap) {
        (MmuVersion::V2, TableAperture::Vidmem) => v2::VID_PA_BITS,
        (MmuVersion::V2, _) => v2::SYS_PA_BITS,
        (MmuVersion::V3, TableAperture::Vidmem) => v3::VID_PA_BITS,
        (MmuVersion::V3, _) => v3::PA_BITS,
    }
}

/// An address below `1 << bits` aligned to `1 << shift`, biased to the edges.
fn aligned_pa(bits: u32, shift: u32) -> impl Strategy<Value = PhysAddr> {
    let max = (1u64 << (bits - shift)) - 1;
    prop_oneof![
        1 => Just(0u64),
        1 => Just(max),
        8 => 0..=max,
    ]
    .prop_map(move |f| PhysAddr::new(f << shift))
}

fn legal_mapping(chip: Chip, page: PageSize) -> impl Strategy<Value = PteMapping> {
    let version = chip.mmu_version();
    proptest::sample::select(PteAperture::ALL.to_vec()).prop_flat_map(move |ap| {
        let pa = aligned_pa(pte_pa_bits(version, ap), page.shift());
        let peer = if ap == PteAperture::Peer {
            0..8u8
        } else {
            0..1u8
        };
        let kind_max: u8 = if version == MmuVersion::V2 { 255 } else { 15 };
        let ct_max: u32 = if version == MmuVersion::V2 && !ap.is_sysmem() {
            (1u32 << chip.comptagline_bits()) - 1
        } else {
            0
        };
        let v2 = version == MmuVersion::V2;
        (
            pa,
            peer,
            any::<[bool; 5]>(),
            0..=kind_max,
            prop_oneof![Just(0), Just(ct_max), 0..=ct_max],
        )
            .prop_map(move |(address, peer_id, f, kind, comptagline)| PteMapping {
                aperture: ap,
                address,
                peer_id,
                attrs: PteAttrs {
                    read_only: f[0],
                    privileged: f[1],
                    volatile: f[2],
                    atomic_disable: f[3],
                    encrypted: v2 && f[4],
                    access_counting_disabled: !v2 && f[4],
                    kind,
                    comptagline,
                },
            })
    })
}

fn legal_pte(chip: Chip, level: Level) -> BoxedStrategy<PteState> {
    let page = if level == Level::PtBig {
        PageSize::Size64K
    } else {
        PageSize::Size4K
    };
    let mut special = vec![PteState::Invalid, PteState::Sparse];
    if level == Level::PtBig {
        special.push(PteState::NoValid4K);
    }
    if chip.mmu_version() == MmuVersion::V3 {
        special.push(PteState::MappingNowhere);
    }
    prop_oneof![
        1 => proptest::sample::select(special),
        4 => legal_mapping(chip, page).prop_map(PteState::Valid),
    ]
    .boxed()
}

fn legal_table(chip: Chip, align_shift: u32, no_ats: bool) -> impl Strategy<Value = PdeTable> {
    let version = chip.mmu_version();
    let ats_ok = no_ats && (version == MmuVersion::V3 || chip.has_no_ats());
    proptest::sample::select(TableAperture::ALL.to_vec()).prop_flat_map(move |ap| {
        (
            aligned_pa(table_pa_bits(version, ap), align_shift),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(move |(address, uncached, n)| PdeTable {
                aperture: ap,
                address,
                attrs: PdeAttrs {
                    uncached,
                    no_ats: ats_ok && n,
                },
            })
    })
}

fn legal_pde(chip: Chip, level: Level) -> BoxedStrategy<PdeState> {
    let info = level_info(chip.mmu_version(), level).unwrap();
    let mut s = prop_oneof![
        Just(PdeState::Invalid),
        Just(PdeState::Sparse),
        legal_table(chip, 12, true).prop_map(PdeState::Table),
    ]
    .boxed();
    if let Some(size) = info.pte_size.filter(|&p| chip.supports_page_size(p)) {
        s = prop_oneof![s, legal_mapping(chip, size).prop_map(PdeState::Pte)].boxed();
    }
    s
}

fn legal_dual(chip: Chip) -> BoxedStrategy<DualPdeState> {
    let v3 = chip.mmu_version() == MmuVersion::V3;
    let big = prop_oneof![
        Just(DualHalf::Invalid),
        // v2: NO_ATS cannot go with a big table (bit 5 is an address bit there).
        legal_table(chip, 8, v3).prop_map(DualHalf::Table),
    ];
    let small_ats = prop_oneof![
        Just(DualHalf::Invalid),
        legal_table(chip, 12, true).prop_map(DualHalf::Table),
    ];
    let small_no_ats = prop_oneof![
        Just(DualHalf::Invalid),
        legal_table(chip, 12, v3).prop_map(DualHalf::Table),
    ];
    let tables = prop_oneof![
        (big.clone(), small_no_ats).prop_map(|(big, small)| DualPdeState::Tables { big, small }),
        small_ats.prop_map(|small| DualPdeState::Tables {
            big: DualHalf::Invalid,
            small
        }),
    ];
    let _ = big;
    prop_oneof![
        Just(DualPdeState::Sparse),
        tables,
        legal_mapping(chip, PageSize::Size2M).prop_map(DualPdeState::Pte),
    ]
    .boxed()
}

fn upper_levels(version: MmuVersion) -> Vec<Level> {
    levels(version)
        .iter()
        .map(|l| l.level)
        .filter(|l| !l.is_leaf() && !l.is_dual())
        .collect()
}

use super::{
    decode_dual_pde as dec_dual, decode_pde as dec_pde, decode_pte as dec_pte,
    encode_dual_pde as enc_dual, encode_pde as enc_pde, encode_pte as enc_pte,
};

fn chip_and_leaf() -> impl Strategy<Value = (Chip, Level)> {
    (
        any_chip(),
        prop_oneof![Just(Level::PtBig), Just(Level::PtSmall)],
    )
}

fn chip_and_upper() -> impl Strategy<Value = (Chip, Level)> {
    any_chip().prop_flat_map(|c| {
        (
            Just(c),
            proptest::sample::select(upper_levels(c.mmu_version())),
        )
    })
}

/// A raw value: random, or a legal encoding with some bits flipped.
fn noisy(base: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(base),
        (0..64u32).prop_map(move |b| base ^ (1u64 << b)),
        any::<u64>().prop_map(move |m| base ^ (m & m.rotate_left(17))),
        any::<u64>(),
    ]
}

/// `decode(raw) = Ok(s)` implies that `s` encodes to a subset of `raw`'s bits and that this
/// subset decodes to `s` again.
fn check_canonical<S: PartialEq + core::fmt::Debug, R: Copy + core::fmt::Debug>(
    raw: R,
    decoded: Result<S, FormatError>,
    encode: impl Fn(&S) -> Result<R, FormatError>,
    decode: impl Fn(R) -> Result<S, FormatError>,
    subset: impl Fn(R, R) -> bool,
) -> Result<(), TestCaseError> {
    if let Ok(s) = decoded {
        let re = encode(&s);
        prop_assert!(
            re.is_ok(),
            "{raw:x?} decoded to {s:?} which does not encode: {re:?}"
        );
        let re = re.unwrap();
        prop_assert!(subset(re, raw), "{raw:x?} -> {s:?} -> {re:x?}");
        prop_assert_eq!(decode(re), Ok(s));
    }
    Ok(())
}

proptest! {
    // Few cases under miri, which runs these about a thousand times slower.
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 16 } else { 256 }))]

    #[test]
    fn legal_ptes_round_trip(
        (chip, level, state) in chip_and_leaf()
            .prop_flat_map(|(c, l)| (Just(c), Just(l), legal_pte(c, l)))
    ) {
        let raw = enc_pte(chip, level, &state);
        prop_assert!(raw.is_ok(), "{chip} {level} {state:?}: {raw:?}");
        prop_assert_eq!(dec_pte(chip, level, raw.unwrap()), Ok(state));
    }

    #[test]
    fn legal_pdes_round_trip(
        (chip, level, state) in chip_and_upper()
            .prop_flat_map(|(c, l)| (Just(c), Just(l), legal_pde(c, l)))
    ) {
        let raw = enc_pde(chip, level, &state);
        prop_assert!(raw.is_ok(), "{chip} {level} {state:?}: {raw:?}");
        prop_assert_eq!(dec_pde(chip, level, raw.unwrap()), Ok(state));
    }

    #[test]
    fn legal_dual_pdes_round_trip(
        (chip, state) in any_chip().prop_flat_map(|c| (Just(c), legal_dual(c)))
    ) {
        let raw = enc_dual(chip, &state);
        prop_assert!(raw.is_ok(), "{chip} {state:?}: {raw:?}");
        prop_assert_eq!(dec_dual(chip, raw.unwrap()), Ok(state));
    }

    /// Arbitrary (mostly illegal) mappings: encode never panics, and whatever it accepts
    /// decodes back to the same state.
    #[test]
    fn arbitrary_ptes_encode_or_fail_cleanly(
        (chip, level) in chip_and_leaf(),
        ap in proptest::sample::select(PteAperture::ALL.to_vec()),
        address in any::<u64>().prop_map(|a| a & !0xfff),
        shift in 0..64u32,
        peer_id in any::<u8>(),
        f in any::<[bool; 6]>(),
        kind in any::<u8>(),
        comptagline in any::<u32>(),
        shrink in 0..32u32,
    ) {
        let m = PteMapping {
            aperture: ap,
            address: PhysAddr::new(address >> shift),
            peer_id: peer_id >> (shrink % 8),
            attrs: PteAttrs {
                read_only: f[0],
                privileged: f[1],
                volatile: f[2],
                atomic_disable: f[3],
                encrypted: f[4],
                access_counting_disabled: f[5],
                kind: kind >> (shrink % 8),
                comptagline: comptagline >> shrink,
            },
        };
        let state = PteState::Valid(m);
        if let Ok(raw) = enc_pte(chip, level, &state) {
            prop_assert_eq!(dec_pte(chip, level, raw), Ok(state));
        }
        for (lvl, s) in [(Level::Pd0, PdeState::Pte(m)), (Level::Pd1, PdeState::Pte(m)), (Level::Pd2, PdeState::Pte(m))] {
            if lvl == Level::Pd0 {
                if let Ok(raw) = enc_dual(chip, &DualPdeState::Pte(m)) {
                    prop_assert_eq!(dec_dual(chip, raw), Ok(DualPdeState::Pte(m)));
                }
            } else if let Ok(raw) = enc_pde(chip, lvl, &s) {
                prop_assert_eq!(dec_pde(chip, lvl, raw), Ok(s));
            }
        }
    }

    #[test]
    fn arbitrary_tables_encode_or_fail_cleanly(
        chip in any_chip(),
        ap in proptest::sample::select(TableAperture::ALL.to_vec()),
        a in any::<u64>(),
        b in any::<u64>(),
        shift in 0..64u32,
        f in any::<[bool; 5]>(),
    ) {
        let t = |addr: u64, uncached, no_ats| PdeTable {
            aperture: ap,
            address: PhysAddr::new(addr >> shift),
            attrs: PdeAttrs { uncached, no_ats },
        };
        let big = if f[4] { DualHalf::Table(t(a & !0xff, f[0], f[1])) } else { DualHalf::Invalid };
        let state = DualPdeState::Tables { big, small: DualHalf::Table(t(b & !0xfff, f[2], f[3])) };
        if let Ok(raw) = enc_dual(chip, &state) {
            prop_assert_eq!(dec_dual(chip, raw), Ok(state));
        }
        let pde = PdeState::Table(t(a & !0xfff, f[0], f[1]));
        for level in upper_levels(chip.mmu_version()) {
            if let Ok(raw) = enc_pde(chip, level, &pde) {
                prop_assert_eq!(dec_pde(chip, level, raw), Ok(pde));
            }
        }
    }

    #[test]
    fn decode_any_pte(
        (chip, level) in chip_and_leaf(),
        raw in prop_oneof![
            any::<u64>(),
            noisy(0x1234_5641),
            noisy(0x20),
            noisy(0x18),
            noisy(0xE00F_FFFF_FFFF_F603),
            noisy(0x06FF_FFF0_0000_01B1),
        ],
    ) {
        let d = dec_pte(chip, level, raw);
        check_canonical(
            raw,
            d,
            |s| enc_pte(chip, level, s),
            |r| dec_pte(chip, level, r),
            |re, raw| re & !raw == 0,
        )?;
    }

    #[test]
    fn decode_any_pde(
        (chip, level) in chip_and_upper(),
        raw in prop_oneof![
            any::<u64>(),
            noisy(0x2000_0002),
            noisy(0x12_3456_7826),
            noisy(0x200_0001),
            noisy(0xAB_CDEF_1012),
            noisy(0x8),
        ],
    ) {
        let d = dec_pde(chip, level, raw);
        check_canonical(
            raw,
            d,
            |s| enc_pde(chip, level, s),
            |r| dec_pde(chip, level, r),
            |re, raw| re & !raw == 0,
        )?;
    }

    #[test]
    fn decode_any_dual_pde(
        chip in any_chip(),
        low in prop_oneof![any::<u64>(), noisy(0x1234_5672), noisy(0x8), noisy(0x2_0001), noisy(0), noisy(0xAB_CDEF_120A)],
        high in prop_oneof![any::<u64>(), noisy(0x8000_0000_0004), noisy(0), noisy(0xF_0000_0000_001C)],
    ) {
        let raw = [low, high];
        let d = dec_dual(chip, raw);
        check_canonical(
            raw,
            d,
            |s| enc_dual(chip, s),
            |r| dec_dual(chip, r),
            |re, raw| re[0] & !raw[0] == 0 && re[1] & !raw[1] == 0,
        )?;
    }

    #[test]
    fn level_index_never_panics(va in any::<u64>(), l in 0..7usize) {
        let all = [Level::Pd4, Level::Pd3, Level::Pd2, Level::Pd1, Level::Pd0, Level::PtBig, Level::PtSmall];
        let level = all[l];
        let va = crate::addr::VirtAddr::new(va);
        if let Ok(i) = MmuV2::level_index(va, level) {
            prop_assert!((i as u64) < MmuV2::level_info(level).unwrap().entries());
        }
        if let Ok(i) = MmuV3::level_index(va, level) {
            prop_assert!((i as u64) < MmuV3::level_info(level).unwrap().entries());
        }
    }
}

#[test]
fn every_chip_has_its_version() {
    assert_eq!(chips(MmuVersion::V2).len(), 5);
    assert_eq!(chips(MmuVersion::V3).len(), 3);
}

/// Every value with at most two bits set (and, for dual PDEs, pairs of such values with at
/// most one bit in the other qword), on every chip and level: no panic, and the canonical
/// property of [`check_canonical`].
///
/// About 200 000 decodes: minutes under miri, where the property tests above cover the same
/// code paths with random values.
#[test]
#[cfg_attr(miri, ignore)]
fn decode_sparse_bit_patterns_exhaustively() {
    let mut raws = vec![0u64];
    for a in 0..64 {
        raws.push(1 << a);
        for b in (a + 1)..64 {
            raws.push((1 << a) | (1 << b));
        }
    }
    let singles: Vec<u64> = raws
        .iter()
        .copied()
        .filter(|r| r.count_ones() <= 1)
        .collect();
    let mut ok = 0usize;
    for chip in Chip::ALL {
        let v = chip.mmu_version();
        let all_levels: Vec<Level> = levels(v).iter().map(|l| l.level).collect();
        for &raw in &raws {
            for &level in &all_levels {
                if level.is_leaf() {
                    let d = dec_pte(chip, level, raw);
                    ok += usize::from(d.is_ok());
                    check_canonical(
                        raw,
                        d,
                        |s| enc_pte(chip, level, s),
                        |r| dec_pte(chip, level, r),
                        |re, raw| re & !raw == 0,
                    )
                    .unwrap();
                } else if !level.is_dual() {
                    let d = dec_pde(chip, level, raw);
                    ok += usize::from(d.is_ok());
                    check_canonical(
                        raw,
                        d,
                        |s| enc_pde(chip, level, s),
                        |r| dec_pde(chip, level, r),
                        |re, raw| re & !raw == 0,
                    )
                    .unwrap();
                }
            }
            let highs: &[u64] = if raw.count_ones() <= 1 {
                &singles
            } else {
                &[0]
            };
            for &high in highs {
                for pair in [[raw, high], [high, raw]] {
                    let d = dec_dual(chip, pair);
                    ok += usize::from(d.is_ok());
                    check_canonical(
                        pair,
                        d,
                        |s| enc_dual(chip, s),
                        |r| dec_dual(chip, r),
                        |re, raw| re[0] & !raw[0] == 0 && re[1] & !raw[1] == 0,
                    )
                    .unwrap();
                }
            }
        }
    }
    // Some of them are legal entries (e.g. 0, 0x8, 0x101, 0x1002): the property was exercised.
    assert!(ok > 1000, "{ok}");
}
