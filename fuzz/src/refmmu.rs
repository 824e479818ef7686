//! Oracles for the simulator's reference MMU (`nova_mm_sim::RefMmu`) over arbitrary images.
//!
//! For every VA of the input, with a strict and a lenient reference MMU:
//! - the walk ends (it reads at most 7 entries, every one inside the image) and never panics;
//! - a found page contains the VA, its VA base is aligned to the page size, and in strict mode
//!   so is its physical base;
//! - the permission checks agree with the page's attributes for every access kind, and the
//!   physical address is the page base plus the VA's offset;
//! - strict success implies the same result in lenient mode;
//! - an entry the strict reference refuses as malformed is refused by the core's decoder too;
//! - the leaf PTE, decoded by the core's entry formats (an independent implementation),
//!   gives the same aperture, address, peer id, attributes, kind and comptag line (except
//!   where the two read the references differently on purpose: [`known_disagreement`]).
//!
//! And the region iterator (`for_each_region`), over the whole VA space for a bounded number
//! of regions: regions are contiguous and non-empty, and the last VA of each region walks to
//! the same result as its first.

use nova_mm_core::mmu::{self, DualPdeState, PdeState, PteAperture, PteState};
use nova_mm_core::{MmuVersion, VirtAddr};
use nova_mm_sim::{Access, Aperture, Fault, Mapping, Pdb, RefMmu, SimVram, VramEntries};

use crate::image::{Image, ImageInput};

/// Most regions visited per input by the region-iterator check.
pub const MAX_REGIONS: usize = 256;

/// A simulated VRAM with the image's contents.
///
/// # Panics
///
/// If the image is larger than the simulator allows (never: images are at most 128 KiB).
#[must_use]
pub fn sim_vram(img: &Image) -> SimVram {
    let mut v = SimVram::new(img.size).expect("small image");
    for (i, &w) in img.words.iter().enumerate() {
        let addr = i as u64 * 8;
        if w != 0 && addr + 8 <= img.size {
            assert!(v.poke64(addr, w));
        }
    }
    v
}

/// The core's level for a simulator level.
#[must_use]
pub fn core_level(l: nova_mm_sim::Level) -> mmu::Level {
    match l {
        nova_mm_sim::Level::Pd4 => mmu::Level::Pd4,
        nova_mm_sim::Level::Pd3 => mmu::Level::Pd3,
        nova_mm_sim::Level::Pd2 => mmu::Level::Pd2,
        nova_mm_sim::Level::Pd1 => mmu::Level::Pd1,
        nova_mm_sim::Level::Pd0 => mmu::Level::Pd0,
        nova_mm_sim::Level::BigPt => mmu::Level::PtBig,
        nova_mm_sim::Level::SmallPt => mmu::Level::PtSmall,
    }
}

/// The core's PTE aperture for a simulator aperture.
#[must_use]
pub fn core_aperture(a: Aperture) -> PteAperture {
    match a {
        Aperture::Vidmem => PteAperture::Vidmem,
        Aperture::Peer => PteAperture::Peer,
        Aperture::SysCoherent => PteAperture::SysmemCoherent,
        Aperture::SysNonCoherent => PteAperture::SysmemNonCoherent,
    }
}

/// Checks one found page against the access rules.
fn check_mapping(img: &Image, strict: bool, va: u64, m: &Mapping) {
    let ps = m.page_size.bytes();
    assert!(
        m.contains(VirtAddr::new(va)),
        "{m:?} does not contain {va:#x}"
    );
    assert_eq!(m.va_base.raw() % ps, 0, "{m:?}: VA base not aligned");
    if strict {
        assert_eq!(m.page_base.raw() % ps, 0, "{m:?}: PA base not aligned");
    }
    assert!(
        m.pte_addr.raw() < img.size,
        "{m:?}: PTE outside the image of {:#x}",
        img.size
    );
    let a = m.attrs;
    let vva = VirtAddr::new(va);
    let t = m.check(vva, Access::READ.privileged());
    let Ok(t) = t else {
        panic!("{m:?}: privileged read faults: {t:?}");
    };
    assert_eq!(t.pa.raw(), m.page_base.raw() | (va & (ps - 1)), "{m:?}");
    assert_eq!(
        m.check(vva, Access::READ).err(),
        a.privileged.then_some(Fault::Privilege)
    );
    assert_eq!(
        m.check(vva, Access::WRITE.privileged()).err(),
        a.read_only.then_some(Fault::ReadOnly)
    );
    let atomic = if a.read_only {
        Some(Fault::ReadOnly)
    } else if a.atomic_disabled {
        Some(Fault::AtomicDisabled)
    } else {
        None
    };
    assert_eq!(m.check(vva, Access::ATOMIC.privileged()).err(), atomic);
}

/// Where the core and the reference MMU read the references differently on purpose:
///
/// - v3 vidmem addresses (`mmu-formats.md` §7.14): the core keeps UVM's `ADDRESS_VID` 39:12
///   (PA < 2^40) and refuses wider vidmem addresses as `AddressTooWide`, while the reference
///   MMU follows the manual's single `ADDRESS` 51:12 for every aperture.
fn known_disagreement(img: &Image, m: &Mapping, core: &Result<PteState, mmu::FormatError>) -> bool {
    img.chip.mmu_version() == MmuVersion::V3
        && m.aperture == Aperture::Vidmem
        && m.page_base.raw() >> 40 != 0
        && matches!(core, Err(mmu::FormatError::AddressTooWide { bits: 40, .. }))
}

/// The leaf PTE as the core's formats decode it must describe the same page.
fn check_leaf_against_core(img: &Image, m: &Mapping) {
    let chip = img.chip;
    let level = core_level(m.level);
    let state = if level.is_leaf() {
        mmu::decode_pte(chip, level, m.pte)
    } else if level.is_dual() {
        let hi = img.word(m.pte_addr.raw() + 8).unwrap_or(0);
        mmu::decode_dual_pde(chip, [m.pte, hi]).map(|d| match d {
            DualPdeState::Pte(p) => PteState::Valid(p),
            _ => PteState::Invalid,
        })
    } else {
        mmu::decode_pde(chip, level, m.pte).map(|d| match d {
            PdeState::Pte(p) => PteState::Valid(p),
            _ => PteState::Invalid,
        })
    };
    if known_disagreement(img, m, &state) {
        return;
    }
    let Ok(PteState::Valid(c)) = state else {
        panic!(
            "{chip}: the reference MMU maps {m:?} but the core decodes the {level} entry \
             {:#x} as {state:?}",
            m.pte
        );
    };
    let ra = m.attrs;
    let same = core_aperture(m.aperture) == c.aperture
        && m.page_base == c.address
        && m.peer_id == c.peer_id
        && m.kind == c.attrs.kind
        && m.comptagline == c.attrs.comptagline
        && ra.read_only == c.attrs.read_only
        && ra.privileged == c.attrs.privileged
        && ra.uncached == c.attrs.volatile
        && ra.atomic_disabled == c.attrs.atomic_disable
        && ra.encrypted == c.attrs.encrypted
        && ra.access_counting_disabled == c.attrs.access_counting_disabled;
    assert!(
        same,
        "{chip}: {level} entry {:#x}: reference {m:?} vs core {c:?}",
        m.pte
    );
    assert_eq!(
        Some(m.page_size),
        mmu::level_info(chip.mmu_version(), level)
            .ok()
            .and_then(|i| i.pte_size),
        "{m:?}"
    );
}

/// Where the strict reference MMU refuses an entry as malformed (reserved bits, a misaligned
/// large page, a large page the chip does not have), the core's decoder must refuse it too:
/// the core is never more lenient than the strict reference (the converse is allowed, see
/// `tests/tests/formats_strictness.rs`).
fn check_malformed_refused(img: &Image, walk: &nova_mm_sim::Walk) {
    let level = match walk.result {
        Err(
            Fault::ReservedBits { level, .. }
            | Fault::MisalignedPage { level }
            | Fault::LargePageNotAllowed { level },
        ) => level,
        _ => return,
    };
    let Some(step) = walk.steps.iter().rev().find(|s| s.level == level) else {
        panic!(
            "{:?} but no entry of that level was read: {walk:?}",
            walk.result
        );
    };
    let chip = img.chip;
    let cl = core_level(level);
    let [lo, hi] = step.entry;
    let accepted = if cl.is_leaf() {
        mmu::decode_pte(chip, cl, lo).map(|s| format!("{s:?}"))
    } else if cl.is_dual() {
        mmu::decode_dual_pde(chip, [lo, hi]).map(|s| format!("{s:?}"))
    } else {
        mmu::decode_pde(chip, cl, lo).map(|s| format!("{s:?}"))
    };
    assert!(
        accepted.is_err(),
        "{chip}: strict reference MMU: {:?} for {level} entry {:#x?}, but the core decodes it \
         as {accepted:?}",
        walk.result,
        step.entry
    );
}

/// Runs every reference-MMU oracle on one input; panics on a violation.
pub fn check(input: &ImageInput) {
    let img = input.build();
    check_image(&img);
}

/// Runs the reference-MMU oracles on a built image.
pub fn check_image(img: &Image) {
    let vram = sim_vram(img);
    let pdb = Pdb::vidmem(img.pdb);
    let strict = RefMmu::new(img.chip);
    let lenient = RefMmu::lenient(img.chip);
    for &va in &img.vas {
        let vva = VirtAddr::new(va);
        let mut results = Vec::new();
        for mmu in [strict, lenient] {
            let walk = mmu.walk_with(&mut VramEntries(&vram), pdb, vva);
            assert!(walk.steps.len() <= 7, "{:?}", walk.steps);
            for s in &walk.steps {
                let bytes = if s.level == nova_mm_sim::Level::Pd0 {
                    16
                } else {
                    8
                };
                assert!(
                    s.entry_addr
                        .checked_add(bytes)
                        .is_some_and(|e| e <= img.size),
                    "read outside the image: {s:?}"
                );
            }
            if let Ok(m) = &walk.result {
                check_mapping(img, mmu.is_strict(), va, m);
            }
            if mmu.is_strict() {
                check_malformed_refused(img, &walk);
            }
            assert_eq!(walk.result, mmu.walk(&vram, pdb, vva));
            results.push(walk.result);
        }
        if let Ok(m) = &results[0] {
            assert_eq!(results[1].as_ref(), Ok(m), "strict ok, lenient differs");
            check_leaf_against_core(img, m);
        }
    }
    for mmu in [strict, lenient] {
        check_regions(img, &vram, pdb, mmu);
    }
}

fn check_regions(img: &Image, vram: &SimVram, pdb: Pdb, mmu: RefMmu) {
    let top = 1u64 << img.chip.mmu_version().va_bits();
    let start = img.vas.first().map_or(0, |v| v & (top - 1) & !0xfff);
    let mut expect = start;
    let mut n = 0usize;
    mmu.for_each_region(
        vram,
        pdb,
        VirtAddr::new(start),
        VirtAddr::new(u64::MAX),
        |va, len, r| {
            assert_eq!(va.raw(), expect, "regions not contiguous");
            assert!(len > 0, "empty region at {va}");
            let last = va.raw() + (len - 1);
            assert!(last < top, "region beyond the VA space");
            expect = va.raw() + len;
            let again = mmu.walk(vram, pdb, VirtAddr::new(last));
            match (&r, &again) {
                (Ok(m), Ok(m2)) => {
                    assert_eq!(m, m2, "page region {va}+{len:#x}");
                    assert_eq!(m.va_base.raw() + m.page_size.bytes(), expect);
                }
                (Err(f), Err(f2)) => assert_eq!(f, f2, "fault region {va}+{len:#x}"),
                _ => panic!("region {va}+{len:#x}: {r:?} at the start, {again:?} at the end"),
            }
            n += 1;
            n < MAX_REGIONS
        },
    );
    if n < MAX_REGIONS {
        assert_eq!(expect, top, "regions stop before the end of the VA space");
    }
}
