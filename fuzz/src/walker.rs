//! Oracles for the core's page-table walker (`nova_mm_core::walk`) over arbitrary images.
//!
//! The walker reads VRAM through [`BoundedVram`], which panics on any access outside the image
//! and any write, and counts reads. For every VA of the input:
//! - `translate` never panics, reads at most [`MAX_TRANSLATE_READS`] qwords, and a mapped
//!   result contains the VA with a page base aligned to its size;
//! - wherever both the walker and the simulator's strict reference MMU give an answer
//!   (walker `Ok`, reference a mapping or an unmapped/sparse fault), they agree on
//!   mapped/unmapped/sparse and, for a mapping, on the page VA, page size, physical address,
//!   aperture, peer id, read-only and the other attributes;
//! - an entry the strict reference refuses as malformed is never walked through by the core.
//!
//! And `walk_range` over the whole VA space (stopped after [`MAX_ITEMS`] items) never panics or
//! reads outside the image, reports items in increasing VA order without overlap, and each
//! mapped or sparse item agrees with `translate` at its first VA.

use core::ops::ControlFlow;

use nova_mm_core::mmu::PteMapping;
use nova_mm_core::walk::{self, PtFormat, Translation, WalkError, WalkItem};
use nova_mm_core::{
    Chip, MmuV2, MmuV3, MmuVersion, PageSize, VirtAddr, VramAccess, VramAddress, VramError,
};
use nova_mm_sim::{Fault, Mapping, Pdb, RefMmu};

use crate::image::{Image, ImageInput};
use crate::refmmu::{core_aperture, sim_vram};

/// Most qwords one `translate` may read (one per directory level, two for the dual PD0, one
/// big and one small PTE, with slack).
pub const MAX_TRANSLATE_READS: u64 = 16;
/// Most items one range walk visits before the visitor stops it.
pub const MAX_ITEMS: usize = 256;

/// A VRAM image that panics on any access outside it and any write (a misaligned access is a
/// typed error, as in every backend).
#[derive(Debug)]
pub struct BoundedVram<'a> {
    img: &'a Image,
    /// Qwords (or dwords) read so far.
    pub reads: u64,
}

impl<'a> BoundedVram<'a> {
    /// A read-only view of `img`.
    #[must_use]
    pub fn new(img: &'a Image) -> Self {
        Self { img, reads: 0 }
    }

    fn word(&mut self, addr: VramAddress, len: u64) -> Result<u64, VramError> {
        let a = addr.raw();
        assert!(
            a.checked_add(len).is_some_and(|e| e <= self.img.size),
            "walker read {len} bytes at {a:#x}, outside the image of {:#x} bytes",
            self.img.size
        );
        self.reads += 1;
        // Like every backend (`check_access`): a misaligned access is a typed error. The
        // walker does not check the PDB's alignment itself, so a misaligned root gets here.
        if !a.is_multiple_of(len) {
            return Err(VramError::Misaligned { addr, align: len });
        }
        Ok(self.img.word(a & !7).expect("inside the image"))
    }
}

impl VramAccess for BoundedVram<'_> {
    fn size(&self) -> u64 {
        self.img.size
    }

    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
        let w = self.word(addr, 4)?;
        Ok(if addr.raw() & 4 == 0 {
            w as u32
        } else {
            (w >> 32) as u32
        })
    }

    fn write32(&mut self, addr: VramAddress, _value: u32) -> Result<(), VramError> {
        panic!("the walker wrote VRAM at {addr}");
    }

    fn read64(&mut self, addr: VramAddress) -> Result<u64, VramError> {
        self.word(addr, 8)
    }

    fn write64(&mut self, addr: VramAddress, _value: u64) -> Result<(), VramError> {
        panic!("the walker wrote VRAM at {addr}");
    }
}

/// What an answer means, for comparing the walker with the reference.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Mapped,
    Sparse,
    Unmapped,
}

fn core_answer(t: &Translation) -> Answer {
    match t {
        Translation::Mapped { .. } => Answer::Mapped,
        Translation::Sparse { .. } => Answer::Sparse,
        Translation::Unmapped => Answer::Unmapped,
    }
}

/// The reference's definitive answer, or `None` when it refused the tables (malformed,
/// outside VRAM, in sysmem, bad PDB or VA).
fn ref_answer(r: &Result<Mapping, Fault>) -> Option<Answer> {
    match r {
        Ok(_) => Some(Answer::Mapped),
        Err(Fault::Sparse { .. }) => Some(Answer::Sparse),
        Err(
            Fault::PdeInvalid { .. }
            | Fault::InvalidPte { .. }
            | Fault::NoValid4k
            | Fault::MappingNowhere { .. },
        ) => Some(Answer::Unmapped),
        Err(_) => None,
    }
}

fn same_page(m: &Mapping, page_va: VirtAddr, size: PageSize, pte: &PteMapping) -> bool {
    let a = m.attrs;
    m.va_base == page_va
        && m.page_size == size
        && m.page_base == pte.address
        && core_aperture(m.aperture) == pte.aperture
        && m.peer_id == pte.peer_id
        && m.kind == pte.attrs.kind
        && m.comptagline == pte.attrs.comptagline
        && a.read_only == pte.attrs.read_only
        && a.privileged == pte.attrs.privileged
        && a.uncached == pte.attrs.volatile
        && a.atomic_disabled == pte.attrs.atomic_disable
        && a.encrypted == pte.attrs.encrypted
        && a.access_counting_disabled == pte.attrs.access_counting_disabled
}

fn translate_dyn(
    chip: Chip,
    vram: &mut BoundedVram<'_>,
    root: VramAddress,
    va: VirtAddr,
) -> Result<Translation, WalkError> {
    match chip.mmu_version() {
        MmuVersion::V2 => walk::translate::<MmuV2, _>(chip, vram, root, va),
        MmuVersion::V3 => walk::translate::<MmuV3, _>(chip, vram, root, va),
    }
}

/// Runs every walker oracle on one input; panics on a violation.
pub fn check(input: &ImageInput) {
    let img = input.build();
    check_image(&img);
}

/// Runs the walker oracles on a built image.
pub fn check_image(img: &Image) {
    let chip = img.chip;
    let sim = sim_vram(img);
    let refmmu = RefMmu::new(chip);
    let pdb = Pdb::vidmem(img.pdb);
    let root = VramAddress::new(img.pdb);
    for &va in &img.vas {
        let vva = VirtAddr::new(va);
        let mut vram = BoundedVram::new(img);
        let core = translate_dyn(chip, &mut vram, root, vva);
        assert!(
            vram.reads <= MAX_TRANSLATE_READS,
            "translate of {va:#x} read {} qwords",
            vram.reads
        );
        if let Ok(Translation::Mapped { page_va, size, pte }) = &core {
            let ps = size.bytes();
            assert!(
                page_va.raw() <= va && va - page_va.raw() < ps && page_va.raw() % ps == 0,
                "{va:#x} -> page {page_va} of {size:?}"
            );
            assert_eq!(
                pte.address.raw() % ps,
                0,
                "{va:#x}: {pte:?} not aligned to {size:?}"
            );
        }
        let r = refmmu.walk(&sim, pdb, vva);
        match (&core, ref_answer(&r)) {
            (Ok(t), Some(ans)) => {
                assert_eq!(
                    core_answer(t),
                    ans,
                    "{chip} {va:#x}: walker {t:?}, reference {r:?}"
                );
                if let (Translation::Mapped { page_va, size, pte }, Ok(m)) = (t, &r) {
                    assert!(
                        same_page(m, *page_va, *size, pte),
                        "{chip} {va:#x}: walker {t:?}, reference {m:?}"
                    );
                }
            }
            (Ok(t), None) => {
                if let Err(
                    f @ (Fault::ReservedBits { .. }
                    | Fault::MisalignedPage { .. }
                    | Fault::LargePageNotAllowed { .. }),
                ) = r
                {
                    panic!(
                        "{chip} {va:#x}: the walker answers {t:?} through an entry the strict \
                         reference refuses: {f:?}"
                    );
                }
            }
            // The walker refuses what the reference walks: the core is stricter in
            // documented ways (tests/tests/formats_strictness.rs) and checks whole tables
            // against the VRAM size.
            (Err(_), _) => {}
        }
    }
    range_walk(img);
}

fn range_walk(img: &Image) {
    match img.chip.mmu_version() {
        MmuVersion::V2 => range_walk_m::<MmuV2>(img),
        MmuVersion::V3 => range_walk_m::<MmuV3>(img),
    }
}

fn range_walk_m<M: PtFormat>(img: &Image) {
    let chip = img.chip;
    let root = VramAddress::new(img.pdb);
    let top = walk::va_end::<M>();
    let start = img.vas.first().map_or(0, |v| v % top);
    let mut items = Vec::new();
    let mut vram = BoundedVram::new(img);
    let r = walk::walk_range::<M, _>(
        chip,
        &mut vram,
        root,
        VirtAddr::new(start),
        VirtAddr::new(top),
        |item| {
            items.push(item);
            if items.len() >= MAX_ITEMS {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    if let Ok(stats) = r {
        let leaves = items
            .iter()
            .filter(|i| !matches!(i, WalkItem::Bad { .. }))
            .count() as u64;
        assert_eq!(stats.leaves, leaves, "{stats:?}");
    }
    let mut prev_end = 0u64;
    for item in &items {
        let (va, len) = match *item {
            WalkItem::Mapped { va, size, .. } => (va.raw(), size.bytes()),
            WalkItem::Sparse { va, len } | WalkItem::Bad { va, len, .. } => (va.raw(), len),
        };
        assert!(len > 0, "empty item {item:?}");
        assert!(
            va >= prev_end,
            "item {item:?} overlaps or precedes the previous one"
        );
        assert!(va < top, "item {item:?} beyond the VA space");
        prev_end = va.saturating_add(len);
        let probe = VirtAddr::new(va.max(start));
        let mut v = BoundedVram::new(img);
        let t = walk::translate::<M, _>(chip, &mut v, root, probe);
        match *item {
            WalkItem::Mapped { va, size, pte } => assert_eq!(
                t,
                Ok(Translation::Mapped {
                    page_va: va,
                    size,
                    pte
                }),
                "range walk {item:?} vs translate"
            ),
            WalkItem::Sparse { .. } => assert!(
                matches!(t, Ok(Translation::Sparse { .. })),
                "range walk {item:?} vs translate {t:?}"
            ),
            WalkItem::Bad { .. } => {}
        }
    }
}
