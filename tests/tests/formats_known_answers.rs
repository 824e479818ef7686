//! Known-answer checks that pin the core's entry encoders/decoders and the simulator's reference
//! MMU at once: every entry is a literal computed by hand from `mmu-formats.md` (arithmetic in the
//! comments); the core must encode the semantic state to exactly that literal and decode it back,
//! and the `RefMmu` must translate through the literals as the reference says.
//!
//! Covers the §1.5 precedence table (valid big PTE over a small PT, zero big PTE lets the small PT
//! decide, NoValid4K / sparse / RM-variant / mapping-nowhere big PTEs block it, sparse PD0, sparse
//! upper PDE, invalid entries) and every page size (4 KiB, 64 KiB, 2 MiB, 512 MiB, 256 GiB) with
//! its chip gating.

use nova_mm_core::mmu::{
    self, DualHalf, DualPdeState, FormatError, Level as CLevel, PdeState, PdeTable, PteAperture,
    PteMapping, PteState, TableAperture,
};
use nova_mm_core::{Chip, PageSize, PhysAddr, VirtAddr};
use nova_mm_sim::{Access, Aperture, Fault, Level, Mapping, Pdb, RefMmu, SimVram};

struct Kat {
    chip: Chip,
    vram: SimVram,
    mmu: RefMmu,
    pdb: Pdb,
}

impl Kat {
    fn new(chip: Chip) -> Self {
        Kat {
            chip,
            vram: SimVram::new(64 << 20).unwrap(),
            mmu: RefMmu::new(chip),
            pdb: Pdb::vidmem(0x1000),
        }
    }

    fn poke(&mut self, addr: u64, raw: u64) {
        assert!(self.vram.poke64(addr, raw));
    }

    fn poke_dual(&mut self, addr: u64, raw: [u64; 2]) {
        self.poke(addr, raw[0]);
        self.poke(addr + 8, raw[1]);
    }

    /// A privileged read of `va` maps `pa` with this page size and aperture.
    fn map(&self, va: u64, size: PageSize, pa: u64, aperture: Aperture) -> Mapping {
        let t = self
            .mmu
            .translate(
                &self.vram,
                self.pdb,
                VirtAddr::new(va),
                Access::READ.privileged(),
            )
            .unwrap_or_else(|f| panic!("{} va {va:#x}: {f}", self.chip));
        assert_eq!(t.pa, PhysAddr::new(pa), "{} va {va:#x}", self.chip);
        assert_eq!(t.mapping.page_size, size, "{} va {va:#x}", self.chip);
        assert_eq!(t.mapping.aperture, aperture, "{} va {va:#x}", self.chip);
        t.mapping
    }

    fn fault(&self, va: u64, fault: Fault) {
        let r = self.mmu.translate(
            &self.vram,
            self.pdb,
            VirtAddr::new(va),
            Access::READ.privileged(),
        );
        assert_eq!(r, Err(fault), "{} va {va:#x}", self.chip);
    }
}

fn pte_both(chip: Chip, level: CLevel, state: PteState, raw: u64) {
    assert_eq!(
        mmu::encode_pte(chip, level, &state),
        Ok(raw),
        "{chip} {level} {state:?}"
    );
    assert_eq!(
        mmu::decode_pte(chip, level, raw),
        Ok(state),
        "{chip} {level} {raw:#x}"
    );
}

fn pde_both(chip: Chip, level: CLevel, state: PdeState, raw: u64) {
    assert_eq!(
        mmu::encode_pde(chip, level, &state),
        Ok(raw),
        "{chip} {level} {state:?}"
    );
    assert_eq!(
        mmu::decode_pde(chip, level, raw),
        Ok(state),
        "{chip} {level} {raw:#x}"
    );
}

fn dual_both(chip: Chip, state: DualPdeState, raw: [u64; 2]) {
    assert_eq!(
        mmu::encode_dual_pde(chip, &state),
        Ok(raw),
        "{chip} {state:?}"
    );
    assert_eq!(
        mmu::decode_dual_pde(chip, raw),
        Ok(state),
        "{chip} {raw:x?}"
    );
}

fn vid_table(pa: u64) -> PdeTable {
    PdeTable::new(TableAperture::Vidmem, PhysAddr::new(pa))
}

fn vid_page(pa: u64) -> PteMapping {
    PteMapping::new(PteAperture::Vidmem, PhysAddr::new(pa))
}

// ---------------------------------------------------------------------------------------------
// MMU v2.
//
// Tables: PD3 0x1000, PD2 0x2000, PD1 0x3000, PD0 0x4000, big PT 0x5100 (256 B aligned, not
// 4 KiB), small PT 0x6000. BASE = PD3[1] PD2[2] PD1[3] PD0[4]
//   = 1<<47 | 2<<38 | 3<<29 | 4<<21 = 0x8000_0000_0000 + 0x80_0000_0000 + 0x6000_0000 + 0x80_0000.
const V2_BASE: u64 = 0x8080_6080_0000;
const MIB2: u64 = 1 << 21;

fn v2_space(chip: Chip) -> Kat {
    let mut k = Kat::new(chip);
    // §1.2 upper PDE to vidmem: (PA >> 4) | APERTURE 1 << 1.
    for (level, at, next, raw) in [
        (CLevel::Pd3, 0x1008, 0x2000, 0x202), // PD3[1]
        (CLevel::Pd2, 0x2010, 0x3000, 0x302), // PD2[2]
        (CLevel::Pd1, 0x3018, 0x4000, 0x402), // PD1[3]
    ] {
        pde_both(chip, level, PdeState::Table(vid_table(next)), raw);
        k.poke(at, raw);
    }
    // §1.3 PD0[4] at 0x4000 + 4*16: big half 0x5100 >> 4 = 0x510 | 2; small 0x6000 >> 4 | 2.
    let both = DualPdeState::Tables {
        big: DualHalf::Table(vid_table(0x5100)),
        small: DualHalf::Table(vid_table(0x6000)),
    };
    dual_both(chip, both, [0x512, 0x602]);
    k.poke_dual(0x4040, [0x512, 0x602]);
    k
}

fn v2_precedence(chip: Chip) {
    let mut k = v2_space(chip);
    let big = |i: u64| 0x5100 + 8 * i;
    let small = |i: u64| 0x6000 + 8 * i;

    // Row "valid big PTE wins": big[0] = 64 KiB vid at 0x7_0000: 0x7000 | V; small[0] valid too.
    pte_both(
        chip,
        CLevel::PtBig,
        PteState::Valid(vid_page(0x7_0000)),
        0x7001,
    );
    pte_both(
        chip,
        CLevel::PtSmall,
        PteState::Valid(vid_page(0x8_0000)),
        0x8001,
    );
    k.poke(big(0), 0x7001);
    k.poke(small(0), 0x8001);
    k.map(
        V2_BASE + 0x1234,
        PageSize::Size64K,
        0x7_1234,
        Aperture::Vidmem,
    );

    // Row "zero big PTE lets the small PT decide": big[1] = 0 (unwritten), small[16] (VA
    // 0x1_0000) = 4 KiB at 0x9_0000; small[17] = 0 → invalid small PTE.
    pte_both(chip, CLevel::PtBig, PteState::Invalid, 0);
    k.poke(small(16), 0x9001);
    k.map(
        V2_BASE + 0x1_0abc,
        PageSize::Size4K,
        0x9_0abc,
        Aperture::Vidmem,
    );
    k.fault(
        V2_BASE + 0x1_1000,
        Fault::InvalidPte {
            level: Level::SmallPt,
        },
    );

    // Row "invalid + PRIV big PTE blocks": big[2] = V=0 PRIV=1 = 0x20 over a valid small[32].
    pte_both(chip, CLevel::PtBig, PteState::NoValid4K, 0x20);
    k.poke(big(2), 0x20);
    k.poke(small(32), 0xa001);
    k.fault(V2_BASE + 0x2_0000, Fault::NoValid4k);
    // In a small PT the same bits are not a legal state for the core (NoValid4K is a big-PTE
    // state), and the RefMmu reads them as an invalid PTE: both refuse to map.
    assert_eq!(
        mmu::encode_pte(chip, CLevel::PtSmall, &PteState::NoValid4K),
        Err(FormatError::StateNotAllowed {
            level: CLevel::PtSmall
        })
    );
    assert!(mmu::decode_pte(chip, CLevel::PtSmall, 0x20).is_err());
    k.poke(small(33), 0x20);
    k.fault(V2_BASE + 0x1_1000 + 0x1_0000, Fault::NoValid4k); // still blocked by big[2]
    k.poke(small(17), 0x20);
    k.fault(
        V2_BASE + 0x1_1000,
        Fault::InvalidPte {
            level: Level::SmallPt,
        },
    );

    // Row "sparse big PTE blocks": big[3] = V=0 VOL=1 = 0x8 over a valid small[48].
    pte_both(chip, CLevel::PtBig, PteState::Sparse, 0x8);
    k.poke(big(3), 0x8);
    k.poke(small(48), 0xb001);
    k.fault(
        V2_BASE + 0x3_0000,
        Fault::Sparse {
            level: Level::BigPt,
        },
    );

    // §7.1 RM's "no valid 4K" variant V=0 VOL=1 PRIV=1 = 0x28: both read it as sparse.
    assert_eq!(
        mmu::decode_pte(chip, CLevel::PtBig, 0x28),
        Ok(PteState::Sparse)
    );
    k.poke(big(4), 0x28);
    k.poke(small(64), 0xc001);
    k.fault(
        V2_BASE + 0x4_0000,
        Fault::Sparse {
            level: Level::BigPt,
        },
    );

    // Sparse PD0 (§1.5): PD0[5] = [VOL_BIG, 0].
    dual_both(chip, DualPdeState::Sparse, [0x8, 0]);
    k.poke_dual(0x4050, [0x8, 0]);
    k.fault(V2_BASE + MIB2, Fault::Sparse { level: Level::Pd0 });
    // Invalid PD0[6] (all zero).
    dual_both(chip, DualPdeState::INVALID, [0, 0]);
    k.fault(V2_BASE + 2 * MIB2, Fault::PdeInvalid { level: Level::Pd0 });

    // Only a small PT: PD0[7] = [0, 0x602] → small[16] maps; big PTE range with no big PT.
    let small_only = DualPdeState::Tables {
        big: DualHalf::Invalid,
        small: DualHalf::Table(vid_table(0x6000)),
    };
    dual_both(chip, small_only, [0, 0x602]);
    k.poke_dual(0x4070, [0, 0x602]);
    k.map(
        V2_BASE + 3 * MIB2 + 0x1_0abc,
        PageSize::Size4K,
        0x9_0abc,
        Aperture::Vidmem,
    );
    // ... even where big[2] (NoValid4K) would block, since there is no big PT here.
    k.map(
        V2_BASE + 3 * MIB2 + 0x2_0123,
        PageSize::Size4K,
        0xa_0123,
        Aperture::Vidmem,
    );

    // Only a big PT: PD0[8] = [0x512, 0]: big[0] maps, big[1] = 0 with no small PT → unmapped.
    let big_only = DualPdeState::Tables {
        big: DualHalf::Table(vid_table(0x5100)),
        small: DualHalf::Invalid,
    };
    dual_both(chip, big_only, [0x512, 0]);
    k.poke_dual(0x4080, [0x512, 0]);
    k.map(
        V2_BASE + 4 * MIB2 + 0xfff0,
        PageSize::Size64K,
        0x7_fff0,
        Aperture::Vidmem,
    );
    k.fault(
        V2_BASE + 4 * MIB2 + 0x1_0000,
        Fault::InvalidPte {
            level: Level::BigPt,
        },
    );

    // Sparse upper PDE (§1.5): PD1[4] = APERTURE 0, VOL 1 = 0x8.
    pde_both(chip, CLevel::Pd1, PdeState::Sparse, 0x8);
    k.poke(0x3020, 0x8);
    k.fault(V2_BASE + (1 << 29), Fault::Sparse { level: Level::Pd1 });
    // Unwritten PD1[6]: invalid.
    k.fault(
        V2_BASE + 3 * (1 << 29),
        Fault::PdeInvalid { level: Level::Pd1 },
    );
}

fn v2_page_sizes(chip: Chip) {
    let mut k = v2_space(chip);
    // 64 KiB sysmem non-coherent, volatile, at 0x3_FFFF_FFFF_0000 (< 2^58):
    // PA >> 4 = 0x3FFF_FFFF_F000 | VOL 0x8 | APERTURE 3 << 1 = 0x6 | V = 0x3FFF_FFFF_F00F.
    let mut m = PteMapping::new(
        PteAperture::SysmemNonCoherent,
        PhysAddr::new(0x3_ffff_ffff_0000),
    );
    m.attrs.volatile = true;
    pte_both(chip, CLevel::PtBig, PteState::Valid(m), 0x3fff_ffff_f00f);
    k.poke(0x5100 + 8 * 5, 0x3fff_ffff_f00f);
    let got = k.map(
        V2_BASE + 0x5_1234,
        PageSize::Size64K,
        0x3_ffff_ffff_1234,
        Aperture::SysNonCoherent,
    );
    assert!(got.attrs.uncached);

    // 4 KiB peer 3, kind 0x06, comptag line 0x3_BCDE (18 bits, fits every v2 chip), RO, PRIV,
    // ATOMIC_DISABLE, ENCRYPTED at PA 0x1000:
    // PA >> 4 = 0x100 | V 1 | APERTURE 1 << 1 = 0x2 | ENC 0x10 | PRIV 0x20 | RO 0x40 | AD 0x80
    // = 0x1f3; peer 3 << 33 = 0x6_0000_0000; 0x3BCDE << 36 = 0x003B_CDE0_0000_0000;
    // kind 6 << 56 = 0x0600_0000_0000_0000 → 0x063B_CDE6_0000_01F3.
    let mut m = PteMapping::new(PteAperture::Peer, PhysAddr::new(0x1000));
    m.peer_id = 3;
    m.attrs.kind = 6;
    m.attrs.comptagline = 0x3_bcde;
    m.attrs.read_only = true;
    m.attrs.privileged = true;
    m.attrs.atomic_disable = true;
    m.attrs.encrypted = true;
    let raw = 0x063b_cde6_0000_01f3;
    pte_both(chip, CLevel::PtSmall, PteState::Valid(m), raw);
    k.poke(0x6000 + 8 * 18, raw); // VA 0x1_2000, under the zero big[1]
    let got = k.map(V2_BASE + 0x1_2345, PageSize::Size4K, 0x1345, Aperture::Peer);
    assert_eq!((got.peer_id, got.kind, got.comptagline), (3, 6, 0x3_bcde));
    let a = got.attrs;
    assert!(a.read_only && a.privileged && a.atomic_disabled && a.encrypted && !a.uncached);
    let va = VirtAddr::new(V2_BASE + 0x1_2345);
    assert_eq!(
        k.mmu.translate(&k.vram, k.pdb, va, Access::READ),
        Err(Fault::Privilege)
    );
    let w = Access::WRITE.privileged();
    assert_eq!(k.mmu.translate(&k.vram, k.pdb, va, w), Err(Fault::ReadOnly));

    // 20-bit comptag line 0xA_BCDE (55:36): legal from Turing on; on Pascal/Volta bits 55:54
    // are reserved and both sides refuse it. 0xABCDE << 36 = 0x00AB_CDE0_0000_0000.
    let raw20 = 0x06ab_cde6_0000_01f3;
    m.attrs.comptagline = 0xa_bcde;
    k.poke(0x6000 + 8 * 19, raw20);
    let va20 = V2_BASE + 0x1_3000;
    if matches!(chip, Chip::Pascal | Chip::Volta) {
        assert!(mmu::encode_pte(chip, CLevel::PtSmall, &PteState::Valid(m)).is_err());
        assert!(mmu::decode_pte(chip, CLevel::PtSmall, raw20).is_err());
        k.fault(
            va20,
            Fault::ReservedBits {
                level: Level::SmallPt,
                entry: raw20,
            },
        );
    } else {
        pte_both(chip, CLevel::PtSmall, PteState::Valid(m), raw20);
        let got = k.map(va20, PageSize::Size4K, 0x1000, Aperture::Peer);
        assert_eq!(got.comptagline, 0xa_bcde);
    }

    // 2 MiB at PD0[9] = vid 0x60_0000: PA >> 4 = 0x6_0000 | V, high qword 0.
    dual_both(chip, DualPdeState::Pte(vid_page(0x60_0000)), [0x6_0001, 0]);
    k.poke_dual(0x4090, [0x6_0001, 0]);
    k.map(
        V2_BASE + 5 * MIB2 + 0x1_2345,
        PageSize::Size2M,
        0x61_2345,
        Aperture::Vidmem,
    );

    // 512 MiB at PD1[5] = vid 0x4000_0000: PA >> 4 = 0x400_0000 | V. Ampere/Ada only (§1.1).
    let raw = 0x400_0001;
    let state = PdeState::Pte(vid_page(0x4000_0000));
    k.poke(0x3028, raw);
    // V2_BASE has PD0 index 4 in it; the 512 MiB page at PD1[5] starts at PD1 index 5.
    let va = (V2_BASE - (4 << 21)) + 2 * (1 << 29) + 0x123_4567;
    if matches!(chip, Chip::Ampere | Chip::Ada) {
        pde_both(chip, CLevel::Pd1, state, raw);
        k.map(va, PageSize::Size512M, 0x4123_4567, Aperture::Vidmem);
    } else {
        assert_eq!(
            mmu::encode_pde(chip, CLevel::Pd1, &state),
            Err(FormatError::PteNotAllowed {
                level: CLevel::Pd1,
                chip
            })
        );
        assert!(mmu::decode_pde(chip, CLevel::Pd1, raw).is_err());
        k.fault(va, Fault::LargePageNotAllowed { level: Level::Pd1 });
    }
    // No v2 chip has 256 GiB pages: PD2[3] with IS_PTE.
    let state = PdeState::Pte(vid_page(0));
    assert!(mmu::encode_pde(chip, CLevel::Pd2, &state).is_err());
    k.poke(0x2018, 1);
    k.fault(
        V2_BASE + (1 << 38),
        Fault::LargePageNotAllowed { level: Level::Pd2 },
    );
}

#[test]
fn v2_precedence_table_all_v2_chips() {
    for chip in [
        Chip::Pascal,
        Chip::Volta,
        Chip::Turing,
        Chip::Ampere,
        Chip::Ada,
    ] {
        v2_precedence(chip);
    }
}

#[test]
fn v2_page_sizes_all_v2_chips() {
    for chip in [
        Chip::Pascal,
        Chip::Volta,
        Chip::Turing,
        Chip::Ampere,
        Chip::Ada,
    ] {
        v2_page_sizes(chip);
    }
}

// ---------------------------------------------------------------------------------------------
// MMU v3.
//
// Tables: PD4 0x1000, PD3 0x2000, PD2 0x3000, PD1 0x4000, PD0 0x5000, big PT 0x6100, small PT
// 0x7000. BASE = PD4[1] PD3[1] PD2[2] PD1[3] PD0[4]
//   = 1<<56 | 1<<47 | 2<<38 | 3<<29 | 4<<21.
const V3_BASE: u64 = (1 << 56) | (1 << 47) | (2 << 38) | (3 << 29) | (4 << 21);

fn v3_space(chip: Chip) -> Kat {
    let mut k = Kat::new(chip);
    // §2.2 PDE: PA in place | APERTURE 1 << 1, PCF 0 (VALID_CACHED, ATS allowed).
    for (level, at, next) in [
        (CLevel::Pd4, 0x1008, 0x2000), // PD4[1]
        (CLevel::Pd3, 0x2008, 0x3000), // PD3[1]
        (CLevel::Pd2, 0x3010, 0x4000), // PD2[2]
        (CLevel::Pd1, 0x4018, 0x5000), // PD1[3]
    ] {
        pde_both(chip, level, PdeState::Table(vid_table(next)), next | 2);
        k.poke(at, next | 2);
    }
    // PD0[4] at 0x5040: big 0x6100 | 2, small 0x7000 | 2.
    let both = DualPdeState::Tables {
        big: DualHalf::Table(vid_table(0x6100)),
        small: DualHalf::Table(vid_table(0x7000)),
    };
    dual_both(chip, both, [0x6102, 0x7002]);
    k.poke_dual(0x5040, [0x6102, 0x7002]);
    k
}

fn v3_precedence(chip: Chip) {
    let mut k = v3_space(chip);
    let big = |i: u64| 0x6100 + 8 * i;
    let small = |i: u64| 0x7000 + 8 * i;

    // Valid big PTE wins: big[0] = 64 KiB vid 0x8_0000, kind 6, PCF READ_ONLY (4 << 3 = 0x20):
    // 0x8_0000 | 0x600 | 0x20 | V = 0x8_0621.
    let mut m = vid_page(0x8_0000);
    m.attrs.kind = 6;
    m.attrs.read_only = true;
    pte_both(chip, CLevel::PtBig, PteState::Valid(m), 0x8_0621);
    k.poke(big(0), 0x8_0621);
    k.poke(small(0), 0x9_0001);
    let got = k.map(
        V3_BASE + 0x1234,
        PageSize::Size64K,
        0x8_1234,
        Aperture::Vidmem,
    );
    assert_eq!((got.kind, got.attrs.pcf), (6, Some(4)));

    // Zero big PTE (PCF 0 INVALID): small[16] decides.
    pte_both(chip, CLevel::PtBig, PteState::Invalid, 0);
    k.poke(small(16), 0xa_0001);
    k.map(
        V3_BASE + 0x1_0abc,
        PageSize::Size4K,
        0xa_0abc,
        Aperture::Vidmem,
    );
    // small[17] = PCF MAPPING_NOWHERE (2 << 3 = 0x10).
    pte_both(chip, CLevel::PtSmall, PteState::MappingNowhere, 0x10);
    k.poke(small(17), 0x10);
    k.fault(
        V3_BASE + 0x1_1000,
        Fault::MappingNowhere {
            level: Level::SmallPt,
        },
    );

    // Blocking big PTEs over valid small PTEs (§2.3 VALID=0 PCFs):
    // NO_VALID_4KB_PAGE 3 << 3 = 0x18, SPARSE 1 << 3 = 0x8, MAPPING_NOWHERE 0x10.
    pte_both(chip, CLevel::PtBig, PteState::NoValid4K, 0x18);
    pte_both(chip, CLevel::PtBig, PteState::Sparse, 0x8);
    pte_both(chip, CLevel::PtBig, PteState::MappingNowhere, 0x10);
    for (i, raw, fault) in [
        (2, 0x18, Fault::NoValid4k),
        (
            3,
            0x8,
            Fault::Sparse {
                level: Level::BigPt,
            },
        ),
        (
            4,
            0x10,
            Fault::MappingNowhere {
                level: Level::BigPt,
            },
        ),
    ] {
        k.poke(big(i), raw);
        k.poke(small(16 * i), 0xb_0001);
        k.fault(V3_BASE + i * 0x1_0000 + 0x10, fault);
    }
    assert_eq!(
        mmu::encode_pte(chip, CLevel::PtSmall, &PteState::NoValid4K),
        Err(FormatError::StateNotAllowed {
            level: CLevel::PtSmall
        })
    );

    // Sparse PD0[5] = [PCF_BIG SPARSE 1 << 3, 0]; invalid PD0[6].
    dual_both(chip, DualPdeState::Sparse, [0x8, 0]);
    k.poke_dual(0x5050, [0x8, 0]);
    k.fault(V3_BASE + MIB2, Fault::Sparse { level: Level::Pd0 });
    k.fault(V3_BASE + 2 * MIB2, Fault::PdeInvalid { level: Level::Pd0 });

    // Only a small PT (PD0[7]), only a big PT (PD0[8]).
    let small_only = DualPdeState::Tables {
        big: DualHalf::Invalid,
        small: DualHalf::Table(vid_table(0x7000)),
    };
    dual_both(chip, small_only, [0, 0x7002]);
    k.poke_dual(0x5070, [0, 0x7002]);
    k.map(
        V3_BASE + 3 * MIB2 + 0x2_0123,
        PageSize::Size4K,
        0xb_0123,
        Aperture::Vidmem,
    );
    let big_only = DualPdeState::Tables {
        big: DualHalf::Table(vid_table(0x6100)),
        small: DualHalf::Invalid,
    };
    dual_both(chip, big_only, [0x6102, 0]);
    k.poke_dual(0x5080, [0x6102, 0]);
    k.fault(
        V3_BASE + 4 * MIB2 + 0x1_0000,
        Fault::InvalidPte {
            level: Level::BigPt,
        },
    );

    // Sparse upper PDE: PD1[4] = APERTURE 0, PCF SPARSE_ATS_ALLOWED (1 << 3) = 0x8; PD3[0]
    // likewise, one level up.
    pde_both(chip, CLevel::Pd1, PdeState::Sparse, 0x8);
    k.poke(0x4020, 0x8);
    k.fault(V3_BASE + (1 << 29), Fault::Sparse { level: Level::Pd1 });
    k.poke(0x2000, 0x8);
    k.fault(1 << 56, Fault::Sparse { level: Level::Pd3 });
    k.fault(0, Fault::PdeInvalid { level: Level::Pd4 });
}

fn v3_page_sizes(chip: Chip) {
    let mut k = v3_space(chip);
    // 4 KiB sysmem coherent at 0xF_FFFF_FFFF_F000 (the top of the 52-bit field), PCF all five
    // bits (0x1f << 3 = 0xf8), kind 0xF (0xf00), APERTURE 2 << 1 = 4:
    // 0xF_FFFF_FFFF_F000 | 0xf00 | 0xf8 | 4 | 1 = 0xF_FFFF_FFFF_FFFD.
    let mut m = PteMapping::new(
        PteAperture::SysmemCoherent,
        PhysAddr::new(0xf_ffff_ffff_f000),
    );
    m.attrs.kind = 0xf;
    m.attrs.volatile = true;
    m.attrs.privileged = true;
    m.attrs.read_only = true;
    m.attrs.atomic_disable = true;
    m.attrs.access_counting_disabled = true;
    pte_both(
        chip,
        CLevel::PtSmall,
        PteState::Valid(m),
        0xf_ffff_ffff_fffd,
    );
    k.poke(0x7000 + 8 * 18, 0xf_ffff_ffff_fffd);
    let got = k.map(
        V3_BASE + 0x1_2345,
        PageSize::Size4K,
        0xf_ffff_ffff_f345,
        Aperture::SysCoherent,
    );
    assert_eq!(got.attrs.pcf, Some(0x1f));
    assert!(got.attrs.access_counting_disabled && got.attrs.uncached);

    // 64 KiB peer 5 at 0x12_3456_0000: | APERTURE 1 << 1 | V | 5 << 61 = 0xA000_0000_0000_0000.
    let mut m = PteMapping::new(PteAperture::Peer, PhysAddr::new(0x12_3456_0000));
    m.peer_id = 5;
    let raw = 0xa000_0012_3456_0003;
    pte_both(chip, CLevel::PtBig, PteState::Valid(m), raw);
    k.poke(0x6100 + 8 * 5, raw);
    let got = k.map(
        V3_BASE + 0x5_fffc,
        PageSize::Size64K,
        0x12_3456_fffc,
        Aperture::Peer,
    );
    assert_eq!(got.peer_id, 5);

    // 2 MiB at PD0[9]: vid 0x60_0000 | V, high qword 0.
    dual_both(chip, DualPdeState::Pte(vid_page(0x60_0000)), [0x60_0001, 0]);
    k.poke_dual(0x5090, [0x60_0001, 0]);
    k.map(
        V3_BASE + 5 * MIB2 + 0x1_2345,
        PageSize::Size2M,
        0x61_2345,
        Aperture::Vidmem,
    );

    // 512 MiB at PD1[5] (every v3 chip): sys non-coherent 0x1_4000_0000 | APERTURE 3 << 1 | V.
    let state = PdeState::Pte(PteMapping::new(
        PteAperture::SysmemNonCoherent,
        PhysAddr::new(0x1_4000_0000),
    ));
    pde_both(chip, CLevel::Pd1, state, 0x1_4000_0007);
    k.poke(0x4028, 0x1_4000_0007);
    k.map(
        (V3_BASE - (4 << 21)) + 2 * (1 << 29) + 0x1234_5678,
        PageSize::Size512M,
        0x1_5234_5678,
        Aperture::SysNonCoherent,
    );

    // 256 GiB at PD2[3]: vid 0x40_0000_0000 (256 GiB, aligned) | V. Blackwell only (§2.1).
    let raw = 0x40_0000_0001;
    let state = PdeState::Pte(vid_page(0x40_0000_0000));
    k.poke(0x3018, raw);
    let va = (1 << 56) | (1 << 47) | (3 << 38) | 0x12_3456_789a;
    if matches!(chip, Chip::BlackwellGb10x | Chip::BlackwellGb20x) {
        pde_both(chip, CLevel::Pd2, state, raw);
        k.map(va, PageSize::Size256G, 0x52_3456_789a, Aperture::Vidmem);
    } else {
        assert_eq!(
            mmu::encode_pde(chip, CLevel::Pd2, &state),
            Err(FormatError::PteNotAllowed {
                level: CLevel::Pd2,
                chip
            })
        );
        assert!(mmu::decode_pde(chip, CLevel::Pd2, raw).is_err());
        k.fault(va, Fault::LargePageNotAllowed { level: Level::Pd2 });
    }
    // Never at PD3/PD4.
    assert!(mmu::encode_pde(chip, CLevel::Pd3, &PdeState::Pte(vid_page(0))).is_err());
    k.poke(0x2010, 1);
    k.fault(
        (1 << 56) | (2 << 47),
        Fault::LargePageNotAllowed { level: Level::Pd3 },
    );
}

#[test]
fn v3_precedence_table_all_v3_chips() {
    for chip in [Chip::Hopper, Chip::BlackwellGb10x, Chip::BlackwellGb20x] {
        v3_precedence(chip);
    }
}

#[test]
fn v3_page_sizes_all_v3_chips() {
    for chip in [Chip::Hopper, Chip::BlackwellGb10x, Chip::BlackwellGb20x] {
        v3_page_sizes(chip);
    }
}

// ---------------------------------------------------------------------------------------------
// The core's documented lenient decodes (mmu/mod.rs "Decoding policy": bits the hardware has no
// use for) against what the RefMmu does with the same bits.

#[test]
fn v2_lenient_decodes_agree() {
    for chip in [Chip::Volta, Chip::Turing, Chip::Ampere, Chip::Ada] {
        let mut k = v2_space(chip);
        // PD1[4]: APERTURE 0 with NO_ATS (bit 5) = 0x20 is invalid; with VOL too (0x28) sparse.
        assert_eq!(
            mmu::decode_pde(chip, CLevel::Pd1, 0x20),
            Ok(PdeState::Invalid)
        );
        k.poke(0x3020, 0x20);
        k.fault(V2_BASE + (1 << 29), Fault::PdeInvalid { level: Level::Pd1 });
        assert_eq!(
            mmu::decode_pde(chip, CLevel::Pd1, 0x28),
            Ok(PdeState::Sparse)
        );
        k.poke(0x3020, 0x28);
        k.fault(V2_BASE + (1 << 29), Fault::Sparse { level: Level::Pd1 });

        // PD0[5] = [VOL_BIG, small 0x6000]: not sparse, since the small pointer is valid (§1.3).
        let small_only = DualPdeState::Tables {
            big: DualHalf::Invalid,
            small: DualHalf::Table(vid_table(0x6000)),
        };
        assert_eq!(mmu::decode_dual_pde(chip, [0x8, 0x602]), Ok(small_only));
        k.poke(0x6000 + 8 * 16, 0x9001);
        k.poke_dual(0x4050, [0x8, 0x602]);
        k.map(
            V2_BASE + MIB2 + 0x1_0abc,
            PageSize::Size4K,
            0x9_0abc,
            Aperture::Vidmem,
        );

        // PD0[6] = [0, VOL_SMALL]: VOL_SMALL of an invalid small pointer means nothing.
        assert_eq!(
            mmu::decode_dual_pde(chip, [0, 0x8]),
            Ok(DualPdeState::INVALID)
        );
        k.poke_dual(0x4060, [0, 0x8]);
        k.fault(V2_BASE + 2 * MIB2, Fault::PdeInvalid { level: Level::Pd0 });

        // PD0[7] = [NO_ATS, 0] invalid, [NO_ATS | VOL_BIG, 0] sparse.
        assert_eq!(
            mmu::decode_dual_pde(chip, [0x20, 0]),
            Ok(DualPdeState::INVALID)
        );
        k.poke_dual(0x4070, [0x20, 0]);
        k.fault(V2_BASE + 3 * MIB2, Fault::PdeInvalid { level: Level::Pd0 });
        assert_eq!(
            mmu::decode_dual_pde(chip, [0x28, 0]),
            Ok(DualPdeState::Sparse)
        );
        k.poke_dual(0x4070, [0x28, 0]);
        k.fault(V2_BASE + 3 * MIB2, Fault::Sparse { level: Level::Pd0 });

        // NO_ATS with only a small table: bit 5 of the low qword (core decision 9).
        let mut t = vid_table(0x6000);
        t.attrs.no_ats = true;
        let st = DualPdeState::Tables {
            big: DualHalf::Invalid,
            small: DualHalf::Table(t),
        };
        dual_both(chip, st, [0x20, 0x602]);
        k.poke_dual(0x4080, [0x20, 0x602]);
        k.map(
            V2_BASE + 4 * MIB2 + 0x1_0abc,
            PageSize::Size4K,
            0x9_0abc,
            Aperture::Vidmem,
        );
    }
}

#[test]
fn v3_lenient_decodes_agree() {
    for chip in [Chip::Hopper, Chip::BlackwellGb10x, Chip::BlackwellGb20x] {
        let mut k = v3_space(chip);
        // PD1[4]: APERTURE 0, PCF INVALID_ATS_NOT_ALLOWED (2 << 3 = 0x10) is invalid;
        // SPARSE_ATS_NOT_ALLOWED (3 << 3 = 0x18) is sparse (§2.2).
        assert_eq!(
            mmu::decode_pde(chip, CLevel::Pd1, 0x10),
            Ok(PdeState::Invalid)
        );
        k.poke(0x4020, 0x10);
        k.fault(V3_BASE + (1 << 29), Fault::PdeInvalid { level: Level::Pd1 });
        assert_eq!(
            mmu::decode_pde(chip, CLevel::Pd1, 0x18),
            Ok(PdeState::Sparse)
        );
        k.poke(0x4020, 0x18);
        k.fault(V3_BASE + (1 << 29), Fault::Sparse { level: Level::Pd1 });

        // PD0[5] = [PCF_BIG sparse, small 0x7000]: the small pointer is valid, so not sparse.
        let small_only = DualPdeState::Tables {
            big: DualHalf::Invalid,
            small: DualHalf::Table(vid_table(0x7000)),
        };
        assert_eq!(mmu::decode_dual_pde(chip, [0x8, 0x7002]), Ok(small_only));
        k.poke(0x7000 + 8 * 16, 0xa_0001);
        k.poke_dual(0x5050, [0x8, 0x7002]);
        k.map(
            V3_BASE + MIB2 + 0x1_0abc,
            PageSize::Size4K,
            0xa_0abc,
            Aperture::Vidmem,
        );

        // PD0[6] = [0, PCF_SMALL sparse bit]: only PCF_BIG decides sparseness.
        assert_eq!(
            mmu::decode_dual_pde(chip, [0, 0x8]),
            Ok(DualPdeState::INVALID)
        );
        k.poke_dual(0x5060, [0, 0x8]);
        k.fault(V3_BASE + 2 * MIB2, Fault::PdeInvalid { level: Level::Pd0 });
        // PD0[7] = [PCF_BIG SPARSE_ATS_NOT_ALLOWED 0x18, 0]: sparse.
        assert_eq!(
            mmu::decode_dual_pde(chip, [0x18, 0]),
            Ok(DualPdeState::Sparse)
        );
        k.poke_dual(0x5070, [0x18, 0]);
        k.fault(V3_BASE + 3 * MIB2, Fault::Sparse { level: Level::Pd0 });
    }
}

// ---------------------------------------------------------------------------------------------
// Undefined encodings and where the two sides legitimately differ in strictness.

/// §2.2 lists PDE PCF values 0..3 only; PCF 4..7 (bit 2 of the PCF = entry bit 5, where v2 has
/// NO_ATS) are undefined. The core refuses them; the strict RefMmu must fault on them as it does
/// on undefined PTE PCFs, in every pointer: upper PDE, big half, small half.
#[test]
fn v3_undefined_pde_pcf_refused_by_both() {
    for chip in [Chip::Hopper, Chip::BlackwellGb10x, Chip::BlackwellGb20x] {
        // PD1[3] = 0x5000 | PCF 4 (0x20) | APERTURE vid.
        let mut k = v3_space(chip);
        let raw = 0x5000 | 0x20 | 2;
        assert!(mmu::decode_pde(chip, CLevel::Pd1, raw).is_err());
        k.poke(0x4018, raw);
        k.fault(
            V3_BASE,
            Fault::ReservedBits {
                level: Level::Pd1,
                entry: raw,
            },
        );
        // The lenient RefMmu ignores the bit and walks on (to the invalid big/small PTEs).
        let lenient = RefMmu::lenient(chip).walk(&k.vram, k.pdb, VirtAddr::new(V3_BASE));
        assert_eq!(
            lenient,
            Err(Fault::InvalidPte {
                level: Level::SmallPt
            })
        );

        // PD0[4] big half PCF_BIG 4, then small half PCF_SMALL 4.
        for (big, small, bad) in [
            (0x6102 | 0x20, 0x7002, 0x6122),
            (0x6102, 0x7002 | 0x20, 0x7022),
        ] {
            let mut k = v3_space(chip);
            assert!(mmu::decode_dual_pde(chip, [big, small]).is_err());
            k.poke_dual(0x5040, [big, small]);
            k.fault(
                V3_BASE,
                Fault::ReservedBits {
                    level: Level::Pd0,
                    entry: bad,
                },
            );
        }
    }
}
