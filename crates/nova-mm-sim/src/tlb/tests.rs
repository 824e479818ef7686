use nova_mm_core::{AckMode, MmuVersion, PdbAperture, PhysAddr};
use proptest::prelude::*;

use super::*;
use crate::refmmu::tests::{
    big_slot, dual, pdb, small_slot, v2_link, v2_pde, v2_pte, v3_link, v3_pde, v3_pte, va, vram, w,
    BIG, ROOT, SMALL, VA2, VA3,
};

fn req(pdb: PdbTarget, va: VaScope, cache_level: CacheLevel, hub_only: bool) -> InvalidateRequest {
    InvalidateRequest {
        pdb,
        va,
        hub_tlb_only: hub_only,
        cache_level,
        ack: AckMode::Globally,
    }
}

const ONE: PdbTarget = PdbTarget::One {
    addr: ROOT,
    aperture: PdbAperture::Vidmem,
};

/// Turing tree: VA2 -> 4 KiB page at 0x12_3000 through a dual PD0 (0x1_2301 = (0x12_3000 >> 4) | 1).
fn setup_v2() -> (SimVram, SimTlb) {
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    dual(&mut v, e, MmuVersion::V2);
    w(&mut v, small_slot(VA2), 0x1_2301);
    (v, SimTlb::new(Chip::Turing))
}

fn pa(tlb: &mut SimTlb, v: &SimVram, path: TlbPath, a: u64) -> Result<u64, Fault> {
    tlb.translate(v, path, pdb(), va(a), Access::READ)
        .map(|t| t.pa.raw())
}

#[test]
fn stale_until_a_matching_pte_invalidate() {
    let (mut v, mut tlb) = setup_v2();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x12_3ABC));
    // Remap to 0x45_6000: (0x45_6000 >> 4) | 1 = 0x4_5601.
    w(&mut v, small_slot(VA2), 0x4_5601);
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x12_3ABC), "stale");
    let truth = RefMmu::new(Chip::Turing)
        .translate(&v, pdb(), va(VA2), Access::READ)
        .unwrap();
    assert_eq!(truth.pa, PhysAddr::new(0x45_6ABC));
    let page = VaScope::Range {
        start: va(VA2 & !0xFFF),
        size: 0x1000,
    };
    tlb.invalidate(&req(ONE, page, CacheLevel::PteOnly, false))
        .unwrap();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x45_6ABC));
}

#[test]
fn too_narrow_invalidates_leave_it_stale() {
    let (mut v, mut tlb) = setup_v2();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x12_3ABC));
    w(&mut v, small_slot(VA2), 0x4_5601);
    let page = VaScope::Range {
        start: va(VA2 & !0xFFF),
        size: 0x1000,
    };
    let wrong: [InvalidateRequest; 5] = [
        // Another PDB.
        req(
            PdbTarget::One {
                addr: 0x20_0000,
                aperture: PdbAperture::Vidmem,
            },
            VaScope::All,
            CacheLevel::All,
            false,
        ),
        // Same address, other aperture.
        req(
            PdbTarget::One {
                addr: ROOT,
                aperture: PdbAperture::Sysmem,
            },
            VaScope::All,
            CacheLevel::All,
            false,
        ),
        // The next page.
        req(
            ONE,
            VaScope::Range {
                start: va((VA2 & !0xFFF) + 0x1000),
                size: 0x1000,
            },
            CacheLevel::All,
            false,
        ),
        // The page before, ending exactly where ours starts.
        req(
            ONE,
            VaScope::Range {
                start: va((VA2 & !0xFFF) - 0x1000),
                size: 0x1000,
            },
            CacheLevel::All,
            false,
        ),
        // An empty range.
        req(
            ONE,
            VaScope::Range {
                start: va(VA2 & !0xFFF),
                size: 0,
            },
            CacheLevel::All,
            false,
        ),
    ];
    for r in wrong {
        tlb.invalidate(&r).unwrap();
        assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x12_3ABC), "{r:?}");
    }
    tlb.invalidate(&req(PdbTarget::All, page, CacheLevel::PteOnly, false))
        .unwrap();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x45_6ABC));
    assert_eq!(tlb.invalidate_count(), 6);
}

/// A complete second tree for `a` with its tables at `base + offsets`, mapping the 4 KiB page
/// at `leaf`. Returns `(level, entry address, entry value)` for every directory entry.
fn second_tree(
    v: &mut SimVram,
    chip: Chip,
    a: u64,
    base: u64,
    leaf: u64,
) -> Vec<(Level, u64, [u64; 2])> {
    let ver = chip.mmu_version();
    let dirs = Level::directories(ver);
    let pde = |pa: u64| match ver {
        MmuVersion::V2 => v2_pde(pa),
        MmuVersion::V3 => v3_pde(pa),
    };
    let mut out = Vec::new();
    let mut table = base;
    for (i, &level) in dirs.iter().enumerate() {
        let next = base + 0x1000 * (i as u64 + 1);
        let entry_addr = table + level.index(ver, a) * level.entry_bytes();
        let entry = if level == Level::Pd0 {
            // Big PT at `next` (no valid big PTE: all zero), small PT at next + 0x1000.
            match ver {
                MmuVersion::V2 => [(next >> 4) | 2, v2_pde(next + 0x1000)],
                MmuVersion::V3 => [next | 2, v3_pde(next + 0x1000)],
            }
        } else {
            [pde(next), 0]
        };
        w(v, entry_addr, entry[0]);
        if level == Level::Pd0 {
            w(v, entry_addr + 8, entry[1]);
            let pte = match ver {
                MmuVersion::V2 => v2_pte(leaf),
                MmuVersion::V3 => v3_pte(leaf),
            };
            w(v, next + 0x1000 + ((a >> 12) & 511) * 8, pte);
        }
        out.push((level, entry_addr, entry));
        table = next;
    }
    out
}

#[test]
fn pde_changes_need_the_matching_cache_level() {
    for chip in [Chip::Turing, Chip::Hopper] {
        let ver = chip.mmu_version();
        let a = if ver == MmuVersion::V2 { VA2 } else { VA3 };
        for level in Level::directories(ver).iter().copied() {
            // Tree A (the fixed one) maps 0x12_3000, tree B (at 0x100_0000) maps 0x77_7000.
            let mut v = vram();
            let e = match ver {
                MmuVersion::V2 => v2_link(&mut v, a),
                MmuVersion::V3 => v3_link(&mut v, a),
            };
            dual(&mut v, e, ver);
            w(
                &mut v,
                small_slot(a),
                match ver {
                    MmuVersion::V2 => v2_pte(0x12_3000),
                    MmuVersion::V3 => v3_pte(0x12_3000),
                },
            );
            let b = second_tree(&mut v, chip, a, 0x100_0000, 0x77_7000);
            let mut tlb = SimTlb::new(chip);
            assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, a), Ok(0x12_3ABC));
            // Point tree A's entry at `level` to tree B's next table: copy B's entry value to
            // A's entry address (same index: same VA).
            let (_, _, value) = *b.iter().find(|(l, _, _)| *l == level).unwrap();
            let a_entry = RefMmu::new(chip)
                .walk_with(&mut crate::refmmu::VramEntries(&v), pdb(), va(a))
                .steps
                .iter()
                .find(|s| s.level == level)
                .unwrap()
                .entry_addr;
            w(&mut v, a_entry, value[0]);
            if level == Level::Pd0 {
                w(&mut v, a_entry + 8, value[1]);
            }
            let truth = RefMmu::new(chip).translate(&v, pdb(), va(a), Access::READ);
            assert_eq!(truth.map(|t| t.pa.raw()), Ok(0x77_7ABC));

            let n = level.pde_level().unwrap();
            let needed = CacheLevel::up_to_pde(n).unwrap();
            let too_low = if n == 0 {
                CacheLevel::PteOnly
            } else {
                CacheLevel::up_to_pde(n - 1).unwrap()
            };
            tlb.invalidate(&req(ONE, VaScope::All, too_low, false))
                .unwrap();
            assert_eq!(
                pa(&mut tlb, &v, TlbPath::Gpc, a),
                Ok(0x12_3ABC),
                "{chip} {level} after {too_low:?}"
            );
            tlb.invalidate(&req(ONE, VaScope::All, needed, false))
                .unwrap();
            assert_eq!(
                pa(&mut tlb, &v, TlbPath::Gpc, a),
                Ok(0x77_7ABC),
                "{chip} {level} after {needed:?}"
            );
            // And `All` always works: unmap at this level.
            w(&mut v, a_entry, 0);
            w(&mut v, a_entry + 8 * u64::from(level == Level::Pd0), 0);
            tlb.invalidate(&req(ONE, VaScope::All, CacheLevel::All, false))
                .unwrap();
            assert!(pa(&mut tlb, &v, TlbPath::Gpc, a).is_err());
        }
    }
}

#[test]
fn ranged_invalidate_drops_pdes_covering_the_range() {
    // A PD0 change needs UP_TO_PDE0 over a range overlapping the 2 MiB the entry covers; a range
    // in another 2 MiB region leaves it cached.
    let (mut v, mut tlb) = setup_v2();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x12_3ABC));
    // New small PT at 0xB000 with the page at 0x77_7000 (0x7_7701), PD0 small half -> 0xB000.
    w(&mut v, 0xB000 + ((VA2 >> 12) & 511) * 8, 0x7_7701);
    let e = crate::refmmu::tests::PD0 + ((VA2 >> 21) & 255) * 16;
    w(&mut v, e + 8, v2_pde(0xB000));
    let other_2m = VaScope::Range {
        start: va((VA2 & !0x1F_FFFF) + 0x20_0000),
        size: 0x1000,
    };
    tlb.invalidate(&req(ONE, other_2m, CacheLevel::UpToPde0, false))
        .unwrap();
    // The leaf is still cached too: still the old page.
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x12_3ABC));
    let same_2m_other_page = VaScope::Range {
        start: va(VA2 & !0x1F_FFFF),
        size: 0x1000,
    };
    tlb.invalidate(&req(ONE, same_2m_other_page, CacheLevel::UpToPde0, false))
        .unwrap();
    // The PD0 entry was dropped (its 2 MiB overlaps) but our 4 KiB leaf was not.
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x12_3ABC));
    tlb.invalidate(&req(
        ONE,
        VaScope::Range {
            start: va(VA2),
            size: 1,
        },
        CacheLevel::PteOnly,
        false,
    ))
    .unwrap();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x77_7ABC));
}

#[test]
fn large_page_leaf_dropped_by_any_overlapping_range() {
    let mut v = vram();
    let e = v2_link(&mut v, VA2);
    // 2 MiB page at 0x60_0000: 0x6_0001.
    w(&mut v, e, 0x6_0001);
    let mut tlb = SimTlb::new(Chip::Ampere);
    assert_eq!(pa(&mut tlb, &v, TlbPath::Hub, VA2), Ok(0x73_AABC));
    // 2 MiB page at 0xA0_0000: 0xA_0001.
    w(&mut v, e, 0xA_0001);
    assert_eq!(pa(&mut tlb, &v, TlbPath::Hub, VA2), Ok(0x73_AABC));
    // A 4 KiB range at the very end of the 2 MiB page.
    tlb.invalidate(&req(
        ONE,
        VaScope::Range {
            start: va((VA2 | 0x1F_FFFF) & !0xFFF),
            size: 0x1000,
        },
        CacheLevel::PteOnly,
        true,
    ))
    .unwrap();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Hub, VA2), Ok(0xB3_AABC));
}

#[test]
fn hub_only_leaves_the_gpc_tlb_stale() {
    let (mut v, mut tlb) = setup_v2();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Hub, VA2), Ok(0x12_3ABC));
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x12_3ABC));
    assert_eq!(tlb.cached_translations(TlbPath::Hub), 1);
    assert_eq!(tlb.cached_translations(TlbPath::Gpc), 1);
    w(&mut v, small_slot(VA2), 0x4_5601);
    tlb.invalidate(&req(ONE, VaScope::All, CacheLevel::All, true))
        .unwrap();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Hub, VA2), Ok(0x45_6ABC));
    assert_eq!(
        pa(&mut tlb, &v, TlbPath::Gpc, VA2),
        Ok(0x12_3ABC),
        "GPC stale"
    );
    tlb.invalidate(&req(ONE, VaScope::All, CacheLevel::PteOnly, false))
        .unwrap();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x45_6ABC));
}

#[test]
fn unmap_is_stale_until_invalidated_and_faults_are_not_cached() {
    let (mut v, mut tlb) = setup_v2();
    assert!(pa(&mut tlb, &v, TlbPath::Gpc, VA2).is_ok());
    w(&mut v, small_slot(VA2), 0);
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x12_3ABC));
    tlb.invalidate(&InvalidateRequest::EVERYTHING).unwrap();
    assert_eq!(
        pa(&mut tlb, &v, TlbPath::Gpc, VA2),
        Err(Fault::InvalidPte {
            level: Level::SmallPt
        })
    );
    // Mapping again needs no invalidate: the fault was not cached.
    w(&mut v, small_slot(VA2), 0x4_5601);
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x45_6ABC));
    // A neighbouring page under the same cached PD0 is walked fresh.
    let next = VA2 + 0x1000;
    w(&mut v, small_slot(next), 0x5_0001); // 0x50_0000 >> 4 | 1
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, next), Ok(0x50_0ABC));
}

#[test]
fn permission_checks_apply_to_cached_entries() {
    let (mut v, mut tlb) = setup_v2();
    // READ_ONLY (bit 6): 0x1_2301 | 0x40.
    w(&mut v, small_slot(VA2), 0x1_2341);
    assert!(tlb
        .translate(&v, TlbPath::Gpc, pdb(), va(VA2), Access::READ)
        .is_ok());
    assert_eq!(
        tlb.translate(&v, TlbPath::Gpc, pdb(), va(VA2), Access::WRITE),
        Err(Fault::ReadOnly)
    );
    // Upgrade to RW without invalidate: the cached RO entry still faults.
    w(&mut v, small_slot(VA2), 0x1_2301);
    assert_eq!(
        tlb.translate(&v, TlbPath::Gpc, pdb(), va(VA2), Access::WRITE),
        Err(Fault::ReadOnly)
    );
    assert_eq!(tlb.stats().leaf_hits, 2);
}

#[test]
fn history_count_and_injected_failures() {
    let (mut v, mut tlb) = setup_v2();
    let r1 = req(ONE, VaScope::All, CacheLevel::PteOnly, false);
    let r2 = InvalidateRequest {
        ack: AckMode::None,
        ..req(PdbTarget::All, VaScope::All, CacheLevel::All, true)
    };
    tlb.invalidate(&r1).unwrap();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x12_3ABC));
    w(&mut v, small_slot(VA2), 0x4_5601);
    tlb.fail_invalidate(Some((2, TlbError::Timeout)));
    tlb.invalidate(&r2).unwrap(); // hub only: GPC untouched
    assert_eq!(tlb.invalidate(&r1), Err(TlbError::Timeout));
    assert_eq!(
        pa(&mut tlb, &v, TlbPath::Gpc, VA2),
        Ok(0x12_3ABC),
        "failed: nothing dropped"
    );
    tlb.invalidate(&r1).unwrap();
    assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, VA2), Ok(0x45_6ABC));
    assert_eq!(tlb.invalidate_count(), 3);
    let h = tlb.history();
    assert_eq!(h.len(), 4);
    assert_eq!(h[1].req.ack, AckMode::None);
    assert_eq!(h[2].result, Err(TlbError::Timeout));
    assert!(h.iter().filter(|r| r.req.ack == AckMode::Globally).count() == 3);
    let taken = tlb.take_history();
    assert_eq!(taken.len(), 4);
    assert!(tlb.history().is_empty());
    // Through a `&mut dyn TlbInvalidate`, as the core will use it.
    let dynamic: &mut dyn TlbInvalidate = &mut tlb;
    dynamic.invalidate(&InvalidateRequest::EVERYTHING).unwrap();
    assert_eq!(tlb.invalidate_count(), 1);
}

#[test]
fn pwc_is_used_and_counted() {
    let mut v = vram();
    let e = v3_link(&mut v, VA3);
    dual(&mut v, e, MmuVersion::V3);
    w(&mut v, small_slot(VA3), v3_pte(0x12_3000));
    w(&mut v, small_slot(VA3 + 0x1000), v3_pte(0x13_3000));
    w(&mut v, big_slot(VA3 + 0x1_0000), v3_pte(0x40_0000));
    let mut tlb = SimTlb::new(Chip::Hopper);
    let t = tlb
        .translate(&v, TlbPath::Gpc, pdb(), va(VA3), Access::READ)
        .unwrap();
    assert_eq!(t.pa, PhysAddr::new(0x12_3ABC));
    // 5 directory reads + big PTE + small PTE.
    assert_eq!(tlb.stats().entry_reads, 7);
    assert_eq!(tlb.cached_pdes(TlbPath::Gpc), 5);
    tlb.translate(&v, TlbPath::Gpc, pdb(), va(VA3 + 0x1000), Access::READ)
        .unwrap();
    // All five PDEs from the cache, then big + small PTE.
    assert_eq!(tlb.stats().pwc_hits, 5);
    assert_eq!(tlb.stats().entry_reads, 9);
    let t = tlb
        .translate(&v, TlbPath::Gpc, pdb(), va(VA3 + 0x1_0000), Access::READ)
        .unwrap();
    assert_eq!(t.mapping.page_size, PageSize::Size64K);
    tlb.translate(&v, TlbPath::Gpc, pdb(), va(VA3 + 0x1_0008), Access::READ)
        .unwrap();
    assert_eq!(tlb.stats().leaf_hits, 1);
    assert_eq!(tlb.stats().walks, 3);
    let _ = (BIG, SMALL, ROOT);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 64 }))]

    /// After an arbitrary history of PTE rewrites, translations and invalidates, an
    /// invalidate-everything makes the TLB agree with the reference MMU on every VA; and a
    /// translation is always either the current truth or one that was true at some earlier
    /// point.
    #[test]
    fn everything_invalidate_restores_the_truth(
        ops in proptest::collection::vec((0u8..4, 0u64..8, 0u64..0x400, 0u8..8), 1..60),
    ) {
        let mut v = vram();
        let e = v2_link(&mut v, VA2);
        dual(&mut v, e, MmuVersion::V2);
        let page = |i: u64| (VA2 & !0xF_FFFF) + i * 0x1000;
        let mut tlb = SimTlb::new(Chip::Ada);
        let mmu = RefMmu::new(Chip::Ada);
        let mut ever: Vec<std::collections::HashSet<Result<u64, Fault>>> =
            (0..8).map(|_| std::collections::HashSet::new()).collect();
        for i in 0..8 {
            ever[i as usize].insert(mmu.translate(&v, pdb(), va(page(i)), Access::READ).map(|t| t.pa.raw()));
        }
        for (op, i, frame, lvl) in ops {
            match op {
                0 => {
                    // Map page i to frame (0 = unmap): PTE = (frame << 12 >> 4) | 1.
                    let pte = if frame == 0 { 0 } else { ((frame << 12) >> 4) | 1 };
                    w(&mut v, small_slot(page(i)), pte);
                    let now = mmu.translate(&v, pdb(), va(page(i)), Access::READ).map(|t| t.pa.raw());
                    ever[i as usize].insert(now);
                }
                1 => {
                    let level = [CacheLevel::All, CacheLevel::PteOnly, CacheLevel::UpToPde0,
                        CacheLevel::UpToPde1, CacheLevel::UpToPde2, CacheLevel::UpToPde3,
                        CacheLevel::UpToPde4, CacheLevel::PteOnly][lvl as usize];
                    let scope = if frame % 2 == 0 { VaScope::All } else {
                        VaScope::Range { start: va(page(i)), size: 0x1000 * (frame % 5) }
                    };
                    tlb.invalidate(&req(ONE, scope, level, lvl % 2 == 0)).unwrap();
                }
                _ => {
                    let path = if op == 2 { TlbPath::Hub } else { TlbPath::Gpc };
                    let got = pa(&mut tlb, &v, path, page(i));
                    prop_assert!(ever[i as usize].contains(&got), "{:?} never true", got);
                }
            }
        }
        tlb.invalidate(&InvalidateRequest::EVERYTHING).unwrap();
        for i in 0..8 {
            let truth = mmu.translate(&v, pdb(), va(page(i)), Access::READ).map(|t| t.pa.raw());
            prop_assert_eq!(pa(&mut tlb, &v, TlbPath::Gpc, page(i)), truth);
            prop_assert_eq!(pa(&mut tlb, &v, TlbPath::Hub, page(i)), truth);
        }
    }
}
