//! The walker against corrupt and malicious tables: loops, wild pointers, reserved bits and
//! random garbage give typed errors or `Bad` items, never panics or hangs.

extern crate std;

use std::vec::Vec;

use core::ops::ControlFlow;

use proptest::prelude::*;

use super::*;
use crate::mmu::{MmuV2, MmuV3};

/// 1 MiB of VRAM as words.
struct Words(Vec<u64>);

impl VramAccess for Words {
    fn size(&self) -> u64 {
        self.0.len() as u64 * 8
    }
    fn read32(&mut self, _: VramAddress) -> Result<u32, VramError> {
        Err(VramError::Backend(-1))
    }
    fn write32(&mut self, _: VramAddress, _: u32) -> Result<(), VramError> {
        Err(VramError::Backend(-1))
    }
    fn read64(&mut self, a: VramAddress) -> Result<u64, VramError> {
        crate::vram::check_access(a, 8, 8, self.size())?;
        Ok(self.0[(a.raw() / 8) as usize])
    }
    fn write64(&mut self, a: VramAddress, v: u64) -> Result<(), VramError> {
        crate::vram::check_access(a, 8, 8, self.size())?;
        self.0[(a.raw() / 8) as usize] = v;
        Ok(())
    }
}

fn upper<M: PtFormat>(chip: Chip, level: usize, table: u64) -> u64 {
    M::upper_table(chip, level, VramAddress::new(table)).unwrap()
}

#[test]
fn self_loop_is_reported_not_followed() {
    let chip = Chip::Turing;
    let mut v = Words(std::vec![0; 1 << 17]);
    // Root entry 0 points at the root itself; PD2 entry 0 points back at the root too.
    v.0[0] = upper::<MmuV2>(chip, 0, 0);
    let mut items = Vec::new();
    let st = walk_range::<MmuV2, _>(
        chip,
        &mut v,
        VramAddress::new(0),
        VirtAddr::new(0),
        VirtAddr::new(1 << 49),
        |it| {
            items.push(it);
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert!(
        items.iter().any(|i| matches!(
            i,
            WalkItem::Bad {
                error: WalkError::Loop(_),
                ..
            }
        )),
        "{items:?}"
    );
    assert!(st.tables < 10);
    // translate reports the same loop instead of reading the root as PD2.
    assert_eq!(
        translate::<MmuV2, _>(chip, &mut v, VramAddress::new(0), VirtAddr::new(0)),
        Err(WalkError::Loop(VramAddress::new(0)))
    );
}

#[test]
fn translate_reports_a_loop_to_a_deeper_ancestor() {
    // v3: PD4 at 0 -> PD3 at 0x1000 -> PD2 at 0x2000, whose entry 0 points back at PD3.
    let chip = Chip::Hopper;
    let mut v = Words(std::vec![0; 1 << 17]);
    v.0[0] = upper::<MmuV3>(chip, 0, 0x1000);
    v.0[0x1000 / 8] = upper::<MmuV3>(chip, 1, 0x2000);
    v.0[0x2000 / 8] = upper::<MmuV3>(chip, 2, 0x1000);
    assert_eq!(
        translate::<MmuV3, _>(chip, &mut v, VramAddress::new(0), VirtAddr::new(0)),
        Err(WalkError::Loop(VramAddress::new(0x1000)))
    );
    // A sibling that is not an ancestor is followed as usual (here: an empty PD1).
    v.0[0x2000 / 8] = upper::<MmuV3>(chip, 2, 0x3000);
    assert_eq!(
        translate::<MmuV3, _>(chip, &mut v, VramAddress::new(0), VirtAddr::new(0)),
        Ok(Translation::Unmapped)
    );
}

#[test]
fn wild_and_sysmem_tables_are_errors() {
    let chip = Chip::Hopper;
    let mut v = Words(std::vec![0; 1 << 17]);
    v.0[0] = upper::<MmuV3>(chip, 0, 1 << 36);
    assert!(matches!(
        translate::<MmuV3, _>(chip, &mut v, VramAddress::new(0), VirtAddr::new(0)),
        Err(WalkError::WildTable { .. })
    ));
    // A root beyond VRAM.
    assert!(matches!(
        translate::<MmuV3, _>(chip, &mut v, VramAddress::new(1 << 30), VirtAddr::new(0)),
        Err(WalkError::WildTable { .. })
    ));
    // A VA beyond the width.
    assert!(matches!(
        translate::<MmuV3, _>(chip, &mut v, VramAddress::new(0), VirtAddr::new(1 << 57)),
        Err(WalkError::VaOutOfRange(_))
    ));
    // Reserved bits.
    v.0[0] = u64::MAX;
    assert!(matches!(
        translate::<MmuV3, _>(chip, &mut v, VramAddress::new(0), VirtAddr::new(0)),
        Err(WalkError::Malformed { .. })
    ));
}

#[test]
fn shared_tables_are_bounded() {
    // Every entry of every directory points at the next table; all PT entries valid: the walk
    // would be exponential; the budget stops it with a typed error.
    let chip = Chip::Turing;
    let mut v = Words(std::vec![0; 1 << 13]); // 64 KiB: budget 256 tables
    for e in 0..4 {
        v.0[e] = upper::<MmuV2>(chip, 0, 0x1000);
    }
    for e in 0..512 {
        v.0[0x1000 / 8 + e] = upper::<MmuV2>(chip, 1, 0x2000);
        v.0[0x2000 / 8 + e] = upper::<MmuV2>(chip, 2, 0x3000);
    }
    let d = MmuV2::dual_tables(chip, None, Some(VramAddress::new(0x4000))).unwrap();
    for e in 0..256 {
        v.0[0x3000 / 8 + 2 * e] = d[0];
        v.0[0x3000 / 8 + 2 * e + 1] = d[1];
    }
    let r = walk_range::<MmuV2, _>(
        chip,
        &mut v,
        VramAddress::new(0),
        VirtAddr::new(0),
        VirtAddr::new(1 << 49),
        |_| ControlFlow::Continue(()),
    );
    assert_eq!(r, Err(WalkError::TooManyTables));
}

fn garbage<M: PtFormat>(chip: Chip, words: &[(u16, u64)], vas: &[u64]) {
    let mut v = Words(std::vec![0; 1 << 13]);
    for &(i, w) in words {
        // Bias pointers into the small VRAM so that walks go deep.
        let w = if w & 1 == 0 {
            w & 0xffff_ffff_0000_ffff
        } else {
            w
        };
        let n = v.0.len();
        v.0[(i as usize) % n] = w;
    }
    for &va in vas {
        let _ = translate::<M, _>(chip, &mut v, VramAddress::new(0), VirtAddr::new(va));
    }
    let mut n = 0u64;
    let _ = walk_range::<M, _>(
        chip,
        &mut v,
        VramAddress::new(0),
        VirtAddr::new(0),
        VirtAddr::new(va_end::<M>()),
        |_| {
            n += 1;
            if n > 100_000 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn random_tables_never_panic_v2(words in proptest::collection::vec((any::<u16>(), any::<u64>()), 0..200),
                                    vas in proptest::collection::vec(0u64..(1 << 49), 1..8)) {
        garbage::<MmuV2>(Chip::Ampere, &words, &vas);
    }

    #[test]
    fn random_tables_never_panic_v3(words in proptest::collection::vec((any::<u16>(), any::<u64>()), 0..200),
                                    vas in proptest::collection::vec(0u64..(1 << 57), 1..8)) {
        garbage::<MmuV3>(Chip::BlackwellGb20x, &words, &vas);
    }
}
