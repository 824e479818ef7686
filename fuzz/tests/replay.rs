//! Replays the committed seeds and regression inputs of every target through its checker on
//! the stable toolchain (`cd fuzz && cargo test`), and prints how deep the image inputs reach.

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use nova_mm_fuzz::{entries, image::ImageInput, refmmu};

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in ["seeds", "regressions", "corpus"] {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target);
        if dir == "corpus" && std::env::var_os("REPLAY_CORPUS").is_none() {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            out.push(std::fs::read(e.path()).unwrap());
        }
    }
    out
}

fn parse<T: for<'a> Arbitrary<'a>>(bytes: &[u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

#[test]
fn entry_roundtrip() {
    for b in inputs("entry_roundtrip") {
        if let Some(i) = parse::<entries::EntryInput>(&b) {
            entries::check(&i);
        }
    }
}

#[test]
fn refmmu_translate() {
    let mut stats = std::collections::BTreeMap::<String, usize>::new();
    for b in inputs("refmmu_translate") {
        if let Some(i) = parse::<ImageInput>(&b) {
            refmmu::check(&i);
            let img = i.build();
            let vram = refmmu::sim_vram(&img);
            let mmu = nova_mm_sim::RefMmu::new(img.chip);
            for &va in &img.vas {
                let r = mmu.walk(
                    &vram,
                    nova_mm_sim::Pdb::vidmem(img.pdb),
                    nova_mm_core::VirtAddr::new(va),
                );
                let k = match r {
                    Ok(m) => format!("ok {:?}", m.page_size),
                    Err(f) => format!("{f:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap()
                        .to_owned(),
                };
                *stats.entry(k).or_default() += 1;
            }
        }
    }
    eprintln!("{stats:#?}");
}

#[test]
fn walker_translate() {
    let mut stats = std::collections::BTreeMap::<String, usize>::new();
    for b in inputs("walker_translate") {
        if let Some(i) = parse::<ImageInput>(&b) {
            nova_mm_fuzz::walker::check(&i);
            let img = i.build();
            for &va in &img.vas {
                let mut v = nova_mm_fuzz::walker::BoundedVram::new(&img);
                let root = nova_mm_core::VramAddress::new(img.pdb);
                let vva = nova_mm_core::VirtAddr::new(va);
                let t = match img.chip.mmu_version() {
                    nova_mm_core::MmuVersion::V2 => {
                        nova_mm_core::walk::translate::<nova_mm_core::MmuV2, _>(
                            img.chip, &mut v, root, vva,
                        )
                    }
                    nova_mm_core::MmuVersion::V3 => {
                        nova_mm_core::walk::translate::<nova_mm_core::MmuV3, _>(
                            img.chip, &mut v, root, vva,
                        )
                    }
                };
                let k = match t {
                    Ok(t) => format!("{t:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap()
                        .to_owned(),
                    Err(e) => format!("err {e:?}")
                        .split([' ', '{', '('])
                        .take(2)
                        .collect(),
                };
                *stats.entry(k).or_default() += 1;
            }
        }
    }
    eprintln!("{stats:#?}");
}

#[test]
fn buddy_ops() {
    for b in inputs("buddy_ops") {
        if let Some(i) = parse::<nova_mm_fuzz::buddy::BuddyInput>(&b) {
            nova_mm_fuzz::buddy::check(&i);
        }
    }
}

#[test]
fn vmm_ops() {
    for b in inputs("vmm_ops") {
        if let Some(i) = parse::<nova_mm_fuzz::vmm::VmmInput>(&b) {
            nova_mm_fuzz::vmm::check(&i);
        }
    }
}
