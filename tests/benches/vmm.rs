//! Map and unmap benchmarks of the address-space manager on simulated VRAM, with two baselines
//! in the same run:
//! - `limit`: the physical limit, bulk-writing the same number of PTE words with `VramAccess`
//!   (one `write_u64s` per 4 KiB table);
//! - `nova`: the nova series' algorithm, written here: walk from the root for every page (one
//!   read per level), allocate missing tables on the way, write the PTE, one TLB invalidate per
//!   page; unmap walks per page, clears the PTE and invalidates per page.
//!
//! Before timing, each case runs once with the simulator's counters and prints VRAM reads and
//! writes (calls and words) and TLB invalidates per operation.
//!
//! Run: `cargo bench -p nova-mm-tests --bench vmm -- --warm-up-time 0.5 --measurement-time 2`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use nova_mm_core::mmu::{
    DualPdeState, MmuFormat, MmuV2, PdeState, PteAperture, PteAttrs, PteMapping, PteState,
};
use nova_mm_core::tlb::{AckMode, CacheLevel, InvalidateRequest, PdbAperture, PdbTarget, VaScope};
use nova_mm_core::vmm::{
    PageTableAllocator, PhysRun, PtAllocError, SpaceConfig, SpaceKind, VaPlacement, VecAddressSpace,
};
use nova_mm_core::walk::PtFormat;
use nova_mm_core::{Chip, PageSize, PhysAddr, TlbInvalidate, VirtAddr, VramAccess, VramAddress};
use nova_mm_sim::{SimTlb, SimVram};

type M = MmuV2;
const CHIP: Chip = Chip::Turing;
const VRAM: u64 = 128 << 30;
const PT_BASE: u64 = 100 << 30;
const VA: u64 = 0x100_0000_0000;
const PA: u64 = 0x1_0000_0000;

struct Alloc {
    free: Vec<u64>,
}

impl Alloc {
    fn new() -> Self {
        Self {
            free: (0..1u64 << 17).rev().map(|i| PT_BASE + i * 4096).collect(),
        }
    }
}

impl PageTableAllocator for Alloc {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        self.free
            .pop()
            .map(VramAddress::new)
            .ok_or(PtAllocError::OutOfMemory)
    }
    fn free_table(&mut self, addr: VramAddress) {
        self.free.push(addr.raw());
    }
}

struct Rig {
    vram: SimVram,
    tlb: SimTlb,
    alloc: Alloc,
    space: VecAddressSpace<M>,
}

fn rig() -> Rig {
    let mut vram = SimVram::new(VRAM).unwrap();
    let mut alloc = Alloc::new();
    let cfg = SpaceConfig {
        chip: CHIP,
        va_start: 0,
        va_end: 1 << 48,
        kind: SpaceKind::Gpu,
    };
    let space = VecAddressSpace::<M>::new_vec(cfg, &mut alloc, &mut vram).unwrap();
    Rig {
        vram,
        tlb: SimTlb::new(CHIP),
        alloc,
        space,
    }
}

fn vmm_map(r: &mut Rig, len: u64, ps: PageSize) -> nova_mm_core::vmm::Mapping {
    let runs = [PhysRun::vram(VramAddress::new(PA), len)];
    r.space
        .map(
            &mut r.alloc,
            &mut r.vram,
            &mut r.tlb,
            VaPlacement::Fixed(VirtAddr::new(VA)),
            &runs,
            PteAttrs::default(),
            Some(ps),
        )
        .unwrap()
        .0
}

fn vmm_unmap(r: &mut Rig, m: nova_mm_core::vmm::Mapping) {
    r.space
        .unmap(&mut r.alloc, &mut r.vram, &mut r.tlb, m)
        .map_err(|(_, e)| e)
        .unwrap();
}

/// The physical limit: the same number of leaf words, one bulk write per 4 KiB table.
fn limit(vram: &mut SimVram, words: u64) {
    let mut buf = [0u64; 512];
    let mut done = 0;
    let mut w = (PA >> 4) | 1;
    let mut table = PT_BASE + (1 << 30);
    while done < words {
        let n = (words - done).min(512) as usize;
        for b in &mut buf[..n] {
            *b = w;
            w += 0x100;
        }
        vram.write_u64s(VramAddress::new(table), &buf[..n]).unwrap();
        done += n as u64;
        table += 4096;
    }
}

fn nova_inv(root: u64) -> InvalidateRequest {
    InvalidateRequest {
        pdb: PdbTarget::One {
            addr: root,
            aperture: PdbAperture::Vidmem,
        },
        va: VaScope::All,
        hub_tlb_only: false,
        cache_level: CacheLevel::All,
        ack: AckMode::None,
    }
}

fn new_table(vram: &mut SimVram, alloc: &mut Alloc) -> u64 {
    let t = alloc.alloc_table().unwrap();
    vram.fill_u64(t, 0, 512).unwrap();
    t.raw()
}

/// The nova series' walk for one page: from the root, one read per level, allocating missing
/// tables (4 KiB small tables only, as the series does; 2 MiB pages stop at PD0). Returns the
/// leaf entry address.
fn nova_walk(
    vram: &mut SimVram,
    alloc: &mut Alloc,
    root: u64,
    va: u64,
    ps: PageSize,
    create: bool,
) -> Option<u64> {
    let mut table = root;
    for level in 0..<M as PtFormat>::DIR_LEVELS - 1 {
        let shift = M::dir_shift(level);
        let idx = (va >> shift) & (M::dir_entries(level) - 1);
        let ea = VramAddress::new(table + idx * 8);
        let raw = vram.read64(ea).unwrap();
        table = match M::decode_upper(CHIP, level, raw).unwrap() {
            PdeState::Table(t) => t.address.raw(),
            _ if create => {
                let t = new_table(vram, alloc);
                vram.write64(
                    ea,
                    M::upper_table(CHIP, level, VramAddress::new(t)).unwrap(),
                )
                .unwrap();
                t
            }
            _ => return None,
        };
    }
    let ea = table + ((va >> 21) & 255) * 16;
    if ps == PageSize::Size2M {
        return Some(ea);
    }
    let mut raw = [0u64; 2];
    vram.read_u64s(VramAddress::new(ea), &mut raw).unwrap();
    let small = match M::decode_dual_pde(CHIP, raw).unwrap() {
        DualPdeState::Tables { small, .. } if small.table().is_some() => {
            small.table().unwrap().address.raw()
        }
        _ if create => {
            let t = new_table(vram, alloc);
            let d = M::dual_tables(CHIP, None, Some(VramAddress::new(t))).unwrap();
            vram.write_u64s(VramAddress::new(ea), &d).unwrap();
            t
        }
        _ => return None,
    };
    Some(small + ((va >> 12) & 511) * 8)
}

fn nova_map(
    vram: &mut SimVram,
    tlb: &mut SimTlb,
    alloc: &mut Alloc,
    root: u64,
    len: u64,
    ps: PageSize,
) {
    let n = len / ps.bytes();
    for i in 0..n {
        let va = VA + i * ps.bytes();
        let m = PteMapping::new(PteAperture::Vidmem, PhysAddr::new(PA + i * ps.bytes()));
        let ea = nova_walk(vram, alloc, root, va, ps, true).unwrap();
        if ps == PageSize::Size2M {
            let d = M::encode_dual_pde(CHIP, &DualPdeState::Pte(m)).unwrap();
            vram.write_u64s(VramAddress::new(ea), &d).unwrap();
        } else {
            let w = M::encode_leaf(CHIP, &PteState::Valid(m), false).unwrap();
            vram.write64(VramAddress::new(ea), w).unwrap();
        }
        tlb.invalidate(&nova_inv(root)).unwrap();
    }
}

fn nova_unmap(
    vram: &mut SimVram,
    tlb: &mut SimTlb,
    alloc: &mut Alloc,
    root: u64,
    len: u64,
    ps: PageSize,
) {
    let n = len / ps.bytes();
    for i in 0..n {
        let va = VA + i * ps.bytes();
        if let Some(ea) = nova_walk(vram, alloc, root, va, ps, false) {
            if ps == PageSize::Size2M {
                vram.write_u64s(VramAddress::new(ea), &[0, 0]).unwrap();
            } else {
                vram.write64(VramAddress::new(ea), 0).unwrap();
            }
        }
        tlb.invalidate(&nova_inv(root)).unwrap();
    }
}

fn counters(
    name: &str,
    vram: &mut SimVram,
    tlb: &mut SimTlb,
    f: impl FnOnce(&mut SimVram, &mut SimTlb),
) {
    let inv0 = tlb.invalidate_count();
    vram.reset_stats();
    f(vram, tlb);
    let s = vram.stats();
    let c = s.calls;
    println!(
        "{name:<28} reads: {} calls / {} words; writes: {} calls / {} words; invalidates: {}",
        c.read32 + c.read64 + c.read_u64s,
        s.reads,
        c.write32 + c.write64 + c.write_u64s + c.fill_u64,
        s.writes,
        tlb.invalidate_count() - inv0,
    );
}

fn cases() -> Vec<(&'static str, u64, PageSize)> {
    vec![
        ("1GiB_4K", 1 << 30, PageSize::Size4K),
        ("1GiB_64K", 1 << 30, PageSize::Size64K),
        ("1GiB_2M", 1 << 30, PageSize::Size2M),
        ("80GiB_2M", 80 << 30, PageSize::Size2M),
    ]
}

fn bench(c: &mut Criterion) {
    for (name, len, ps) in cases() {
        let mut r = rig();
        let words = len / ps.bytes() * if ps == PageSize::Size2M { 2 } else { 1 };
        // Counters, once.
        {
            let mut m = None;
            let (space, alloc) = (&mut r.space, &mut r.alloc);
            counters(
                &format!("{name} vmm map"),
                &mut r.vram,
                &mut r.tlb,
                |v, t| {
                    let runs = [PhysRun::vram(VramAddress::new(PA), len)];
                    m = Some(
                        space
                            .map(
                                alloc,
                                v,
                                t,
                                VaPlacement::Fixed(VirtAddr::new(VA)),
                                &runs,
                                PteAttrs::default(),
                                Some(ps),
                            )
                            .unwrap()
                            .0,
                    );
                },
            );
            counters(
                &format!("{name} vmm unmap"),
                &mut r.vram,
                &mut r.tlb,
                |v, t| {
                    space
                        .unmap(alloc, v, t, m.take().unwrap())
                        .map_err(|(_, e)| e)
                        .unwrap();
                },
            );
            counters(&format!("{name} limit"), &mut r.vram, &mut r.tlb, |v, _| {
                limit(v, words)
            });
            let root = new_table(&mut r.vram, &mut r.alloc);
            let alloc = &mut r.alloc;
            counters(
                &format!("{name} nova map"),
                &mut r.vram,
                &mut r.tlb,
                |v, t| nova_map(v, t, alloc, root, len, ps),
            );
            counters(
                &format!("{name} nova unmap"),
                &mut r.vram,
                &mut r.tlb,
                |v, t| nova_unmap(v, t, alloc, root, len, ps),
            );
        }
        let mut g = c.benchmark_group(name);
        g.sample_size(10);
        g.bench_function("vmm_map", |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    let s = Instant::now();
                    let m = vmm_map(&mut r, len, ps);
                    t += s.elapsed();
                    vmm_unmap(&mut r, m);
                }
                t
            })
        });
        g.bench_function("vmm_unmap", |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    let m = vmm_map(&mut r, len, ps);
                    let s = Instant::now();
                    vmm_unmap(&mut r, m);
                    t += s.elapsed();
                }
                t
            })
        });
        g.bench_function("vmm_map_prepare_only", |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    let runs = [PhysRun::vram(VramAddress::new(PA), len)];
                    let s = Instant::now();
                    let op = r
                        .space
                        .prepare_map(
                            &mut r.alloc,
                            &mut r.vram,
                            VaPlacement::Fixed(VirtAddr::new(VA)),
                            &runs,
                            PteAttrs::default(),
                            Some(ps),
                        )
                        .unwrap();
                    t += s.elapsed();
                    r.space.cancel(&mut r.alloc, op).unwrap();
                }
                t
            })
        });
        g.bench_function("limit_write", |b| b.iter(|| limit(&mut r.vram, words)));
        if len <= 1 << 30 {
            let root = new_table(&mut r.vram, &mut r.alloc);
            g.bench_function("nova_map", |b| {
                b.iter(|| nova_map(&mut r.vram, &mut r.tlb, &mut r.alloc, root, len, ps))
            });
            g.bench_function("nova_unmap", |b| {
                b.iter(|| nova_unmap(&mut r.vram, &mut r.tlb, &mut r.alloc, root, len, ps))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
