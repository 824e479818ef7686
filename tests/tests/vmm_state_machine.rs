//! State-machine test of the address-space manager against the simulator's independent
//! reference MMU, through its TLB model.
//!
//! Random map (mixed and pinned page sizes, several physical runs), unmap, protect and sparse
//! operations on Turing and Ampere (MMU v2), Hopper and Blackwell (MMU v3), against a model
//! that maps VA ranges to (PA, read-only) or sparse. After every step, every touched VA and a
//! sample of every live mapping are looked up through the simulated GPC TLB: a stale
//! translation after an operation completed (a missing or too narrow invalidate) fails the
//! test, as does a wrong PA, page size, permission, or a sparse/unmapped mismatch.
//!
//! Every chip runs over both back ends ([`Backend`]): directly on the simulated VRAM and TLB,
//! and through the core's PRAMIN window and TLB-invalidate registers on the simulated BAR0
//! (fewer cases: every access is an MMIO access there). On the register path the TLB that the
//! checks look through is the one the BAR0's invalidate registers feed, so a missing, unflushed
//! or unfinished register invalidate shows up as a stale translation.

mod common;

use std::marker::PhantomData;

use common::backend::{Backend, Rig};
use common::ListAlloc;
use nova_mm_core::mmu::{MmuV2, MmuV3, PteAttrs};
use nova_mm_core::vmm::{
    Executed, Mapping, PhysRun, SpaceConfig, SpaceKind, VaError, VaPlacement, VecAddressSpace,
    VmmError,
};
use nova_mm_core::walk::PtFormat;
use nova_mm_core::{Chip, PageSize, VirtAddr, VramAddress};
use nova_mm_sim::{Fault, Pdb, TlbPath};
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

const VRAM: u64 = 64 << 30;
const PT_BASE: u64 = 32 << 30;
const PT_COUNT: usize = 1 << 14;

trait Sel: 'static + Clone + std::fmt::Debug {
    const CHIP: Chip;
    const BACKEND: Backend;
    type M: PtFormat;
}

macro_rules! sel {
    ($name:ident, $chip:expr, $m:ty, $b:expr) => {
        #[derive(Clone, Debug)]
        struct $name;
        impl Sel for $name {
            const CHIP: Chip = $chip;
            const BACKEND: Backend = $b;
            type M = $m;
        }
    };
}
const DIRECT: Backend = Backend::Direct;
const REGS32: Backend = Backend::Regs { mmio64: false };
const REGS64: Backend = Backend::Regs { mmio64: true };
sel!(Turing, Chip::Turing, MmuV2, DIRECT);
sel!(Ampere, Chip::Ampere, MmuV2, DIRECT);
sel!(Hopper, Chip::Hopper, MmuV3, DIRECT);
sel!(Blackwell, Chip::BlackwellGb20x, MmuV3, DIRECT);
sel!(TuringRegs, Chip::Turing, MmuV2, REGS32);
sel!(PascalRegs, Chip::Pascal, MmuV2, REGS32);
sel!(AmpereRegs64, Chip::Ampere, MmuV2, REGS64);
sel!(HopperRegs, Chip::Hopper, MmuV3, REGS32);
sel!(BlackwellRegs, Chip::BlackwellGb20x, MmuV3, REGS32);
sel!(Blackwell10xRegs64, Chip::BlackwellGb10x, MmuV3, REGS64);

/// One live range in the model.
#[derive(Clone, Debug)]
struct Rec {
    va: u64,
    len: u64,
    /// `None` = sparse.
    runs: Option<Vec<(u64, u64)>>,
    ro: bool,
}

impl Rec {
    /// PA of `va` and the run containing it: (pa, run offset in the op, run len, run pa).
    fn locate(&self, va: u64) -> Option<(u64, u64, u64, u64)> {
        let runs = self.runs.as_ref()?;
        let mut off = 0;
        let o = va - self.va;
        for &(pa, len) in runs {
            if o < off + len {
                return Some((pa + (o - off), off, len, pa));
            }
            off += len;
        }
        None
    }

    /// The page size the manager must have used at `va`: the largest legal size whose aligned
    /// block around `va` lies in the range and in one run, with the PA aligned.
    fn page_size(&self, chip: Chip, va: u64, pinned: Option<PageSize>) -> PageSize {
        if let Some(p) = pinned {
            return p;
        }
        let mut best = PageSize::Size4K;
        for ps in PageSize::ALL {
            if !chip.supports_page_size(ps) {
                continue;
            }
            let s = ps.bytes();
            let b = va & !(s - 1);
            if b < self.va || b + s > self.va + self.len {
                continue;
            }
            match &self.runs {
                None => best = ps,
                Some(_) => {
                    let (pa_b, roff, rlen, _) = self.locate(b).unwrap();
                    let ob = b - self.va;
                    if pa_b % s == 0 && ob >= roff && ob + s <= roff + rlen {
                        best = ps;
                    }
                }
            }
        }
        best
    }
}

#[derive(Clone, Debug)]
enum Tr {
    Map {
        va: u64,
        len: u64,
        runs: Vec<(u64, u64)>,
        pinned: Option<PageSize>,
        ro: bool,
    },
    Sparse {
        va: u64,
        len: u64,
    },
    Unmap(usize),
    Protect(usize, bool),
    Probe(u64),
    /// Prepare `a`, prepare `b`, then execute them in either order, or cancel `a`: the
    /// interleaving of the fence-safe protocol (tables shared between prepared operations).
    Pair {
        a: Box<Tr>,
        b: Box<Tr>,
        b_first: bool,
        cancel_a: bool,
    },
}

#[derive(Clone, Debug)]
struct Model<S> {
    recs: Vec<(Rec, Option<PageSize>)>,
    _s: PhantomData<S>,
}

impl<S> Model<S> {
    fn overlaps(&self, va: u64, len: u64) -> bool {
        self.recs
            .iter()
            .any(|(r, _)| va < r.va + r.len && r.va < va + len)
    }
}

fn sizes(chip: Chip) -> Vec<PageSize> {
    PageSize::ALL
        .into_iter()
        .filter(|&p| chip.supports_page_size(p))
        .collect()
}

/// VA region per alignment, so that small and huge pages do not crowd each other out.
fn region(ps: PageSize) -> u64 {
    match ps {
        PageSize::Size4K | PageSize::Size64K | PageSize::Size2M => 0x40_0000_0000,
        PageSize::Size512M => 0x800_0000_0000,
        PageSize::Size256G => 0x1_0000_0000_0000,
    }
}

fn map_strategy(chip: Chip) -> BoxedStrategy<Tr> {
    let sz = sizes(chip);
    let big = sz.len();
    (
        0..big,
        0u64..6,
        0u64..20,
        1u64..3,
        0u64..20,
        0u64..40,
        any::<bool>(),
        any::<bool>(),
        0u64..3,
    )
        .prop_map(move |(ai, vau, skew, lu, extra, pau, pin, ro, split)| {
            let ps = sz[ai];
            let a = ps.bytes();
            let huge = a >= 1 << 29;
            let (skew, extra) = if huge { (0, 0) } else { (skew, extra) };
            let lu = if huge { 1 } else { lu };
            let va = region(ps) + vau * a + skew * 4096;
            let len = lu * a + extra * 4096;
            let pa0 = if huge {
                (pau % 2 + 1) * a
            } else {
                0x1_0000_0000 + pau * a + skew * 4096
            };
            let pinned = (pin && skew == 0 && extra == 0).then_some(ps);
            // Optionally split into two runs at a page boundary of the alignment.
            let runs = if split == 2 && len > a && !huge {
                let cut = a;
                vec![(pa0, cut), (pa0 + 0x8000_0000 + a * 7, len - cut)]
            } else {
                vec![(pa0, len)]
            };
            Tr::Map {
                va,
                len,
                runs,
                pinned,
                ro,
            }
        })
        .boxed()
}

impl<S: Sel> ReferenceStateMachine for Model<S> {
    type State = Self;
    type Transition = Tr;

    fn init_state() -> BoxedStrategy<Self::State> {
        Just(Model {
            recs: Vec::new(),
            _s: PhantomData,
        })
        .boxed()
    }

    fn transitions(state: &Self::State) -> BoxedStrategy<Self::Transition> {
        let chip = S::CHIP;
        let n = state.recs.len();
        let sparse = (0u64..3, 0u64..8, 1u64..40).prop_map(|(k, off, pages)| {
            let base = [
                0x40_0000_0000u64,
                0x40_0000_0000 + 0x20_0000 * 3,
                0x40_4000_0000,
            ][k as usize];
            Tr::Sparse {
                va: base + off * 0x1_0000,
                len: pages * 0x1_0000 + if k == 2 { 0x4000_0000 } else { 0 },
            }
        });
        let probe = (0u64..0x100_0000).prop_map(|o| Tr::Probe(0x40_0000_0000 + o * 4096));
        let pair = (
            map_strategy(chip),
            map_strategy(chip),
            any::<bool>(),
            0u8..4,
        )
            .prop_map(|(a, b, b_first, c)| Tr::Pair {
                a: Box::new(a),
                b: Box::new(b),
                b_first,
                cancel_a: c == 0,
            });
        if n == 0 {
            prop_oneof![6 => map_strategy(chip), 1 => sparse, 1 => probe, 2 => pair].boxed()
        } else {
            prop_oneof![
                5 => map_strategy(chip),
                1 => sparse,
                3 => (0..n).prop_map(Tr::Unmap),
                2 => pair,
                2 => (0..n, any::<bool>()).prop_map(|(i, ro)| Tr::Protect(i, ro)),
                1 => probe,
            ]
            .boxed()
        }
    }

    fn preconditions(state: &Self::State, t: &Self::Transition) -> bool {
        match t {
            Tr::Unmap(i) => *i < state.recs.len(),
            Tr::Protect(i, _) => *i < state.recs.len() && state.recs[*i].0.runs.is_some(),
            _ => true,
        }
    }

    fn apply(mut state: Self::State, t: &Self::Transition) -> Self::State {
        match t {
            Tr::Map {
                va,
                len,
                runs,
                pinned,
                ro,
            } => {
                if !state.overlaps(*va, *len) {
                    state.recs.push((
                        Rec {
                            va: *va,
                            len: *len,
                            runs: Some(runs.clone()),
                            ro: *ro,
                        },
                        *pinned,
                    ));
                }
            }
            Tr::Sparse { va, len } => {
                if !state.overlaps(*va, *len) {
                    state.recs.push((
                        Rec {
                            va: *va,
                            len: *len,
                            runs: None,
                            ro: false,
                        },
                        None,
                    ));
                }
            }
            Tr::Unmap(i) => {
                state.recs.remove(*i);
            }
            Tr::Protect(i, ro) => state.recs[*i].0.ro = *ro,
            Tr::Probe(_) => {}
            Tr::Pair { a, b, cancel_a, .. } => {
                let (
                    Tr::Map {
                        va: av, len: al, ..
                    },
                    Tr::Map {
                        va: bv, len: bl, ..
                    },
                ) = (a.as_ref(), b.as_ref())
                else {
                    return state;
                };
                let a_ok = !state.overlaps(*av, *al);
                let a_hits_b = a_ok && *av < bv + bl && *bv < av + al;
                let b_ok = !(state.overlaps(*bv, *bl) || a_hits_b);
                if b_ok {
                    state = Self::apply(state, b);
                }
                if a_ok && !cancel_a {
                    state = Self::apply(state, a);
                }
            }
        }
        state
    }
}

struct Sut<S: Sel> {
    gpu: Rig,
    space: VecAddressSpace<S::M>,
    alloc: ListAlloc,
    maps: Vec<Mapping>,
    baseline: usize,
}

impl<S: Sel> Sut<S> {
    fn pdb(&self) -> Pdb {
        Pdb::vidmem(self.space.root().raw())
    }

    /// Checks `va` through the GPC TLB against the model.
    fn check(&mut self, model: &Model<S>, va: u64) {
        let pdb = self.pdb();
        let mut gpu = self.gpu.gpu();
        let (vram, tlb) = gpu.parts();
        let got = tlb.lookup(vram, TlbPath::Gpc, pdb, VirtAddr::new(va));
        let rec = model
            .recs
            .iter()
            .find(|(r, _)| va >= r.va && va < r.va + r.len);
        match (rec, got) {
            (None, Err(f)) => assert!(
                matches!(
                    f,
                    Fault::PdeInvalid { .. } | Fault::InvalidPte { .. } | Fault::NoValid4k
                ),
                "{va:#x}: expected unmapped, got {f:?}"
            ),
            (None, Ok(m)) => panic!("{va:#x}: expected unmapped, got stale or wrong {m:?}"),
            (Some((r, _)), Err(Fault::Sparse { .. })) if r.runs.is_none() => {}
            (Some((r, pin)), Ok(m)) if r.runs.is_some() => {
                let (pa, ..) = r.locate(va).unwrap();
                let off = va - m.va_base.raw();
                assert_eq!(m.page_base.raw() + off, pa, "{va:#x}: PA ({m:?})");
                assert_eq!(m.attrs.read_only, r.ro, "{va:#x}: read-only");
                assert_eq!(
                    m.page_size,
                    r.page_size(S::CHIP, va, *pin),
                    "{va:#x}: page size"
                );
            }
            (Some((r, _)), got) => panic!("{va:#x}: model {r:?}, MMU {got:?}"),
        }
    }

    fn check_range(&mut self, model: &Model<S>, va: u64, len: u64) {
        let pages = len / 4096;
        let step = (pages / 24).max(1);
        let mut p = 0;
        while p < pages {
            self.check(model, va + p * 4096);
            p += step;
        }
        self.check(model, va + len - 4096);
        if va >= 4096 {
            self.check(model, va - 4096);
        }
        self.check(model, va + len);
    }
}

struct Test<S>(PhantomData<S>);

impl<S: Sel> StateMachineTest for Test<S> {
    type SystemUnderTest = Sut<S>;
    type Reference = Model<S>;

    fn init_test(_: &Model<S>) -> Sut<S> {
        let mut gpu = Rig::new(S::BACKEND, S::CHIP, VRAM);
        let mut alloc = ListAlloc::new(PT_BASE, PT_COUNT);
        let cfg = SpaceConfig {
            chip: S::CHIP,
            va_start: 0,
            va_end: 1 << 49,
            kind: SpaceKind::Gpu,
        };
        let space = gpu
            .run(|v, _| VecAddressSpace::<S::M>::new_vec(cfg, &mut alloc, v))
            .unwrap();
        let baseline = alloc.used();
        Sut {
            gpu,
            space,
            alloc,
            maps: Vec::new(),
            baseline,
        }
    }

    fn apply(mut sut: Sut<S>, model: &Model<S>, t: Tr) -> Sut<S> {
        let touched = match &t {
            Tr::Map {
                va,
                len,
                runs,
                pinned,
                ro,
            } => {
                let runs: Vec<PhysRun> = runs
                    .iter()
                    .map(|&(pa, l)| PhysRun::vram(VramAddress::new(pa), l))
                    .collect();
                let attrs = PteAttrs {
                    read_only: *ro,
                    ..Default::default()
                };
                let r = sut.gpu.run(|vram, tlb| {
                    sut.space.map(
                        &mut sut.alloc,
                        vram,
                        tlb,
                        VaPlacement::Fixed(VirtAddr::new(*va)),
                        &runs,
                        attrs,
                        *pinned,
                    )
                });
                let added = model.recs.len() > sut.maps.len();
                match r {
                    Ok((m, st)) => {
                        assert!(added, "map succeeded over a used range");
                        assert_eq!(st.invalidates, 1);
                        sut.maps.push(m);
                    }
                    Err(VmmError::Va(VaError::InUse)) => assert!(!added),
                    Err(e) => panic!("map failed: {e}"),
                }
                Some((*va, *len))
            }
            Tr::Sparse { va, len } => {
                let r = sut.gpu.run(|vram, tlb| {
                    sut.space.reserve_sparse(
                        &mut sut.alloc,
                        vram,
                        tlb,
                        VaPlacement::Fixed(VirtAddr::new(*va)),
                        *len,
                    )
                });
                let added = model.recs.len() > sut.maps.len();
                match r {
                    Ok((m, _)) => {
                        assert!(added);
                        sut.maps.push(m);
                    }
                    Err(VmmError::Va(VaError::InUse)) => assert!(!added),
                    Err(e) => panic!("sparse failed: {e}"),
                }
                Some((*va, *len))
            }
            Tr::Unmap(i) => {
                let m = sut.maps.remove(*i);
                let (va, len) = (m.va().raw(), m.len());
                let st = sut
                    .gpu
                    .run(|vram, tlb| sut.space.unmap(&mut sut.alloc, vram, tlb, m))
                    .map_err(|(_, e)| e)
                    .unwrap();
                assert_eq!(st.invalidates, 1);
                Some((va, len))
            }
            Tr::Protect(i, ro) => {
                let m = &sut.maps[*i];
                let (va, len) = (m.va(), m.len());
                let attrs = PteAttrs {
                    read_only: *ro,
                    ..Default::default()
                };
                let st = sut
                    .gpu
                    .run(|vram, tlb| sut.space.protect(vram, tlb, va, len, attrs))
                    .unwrap();
                assert_eq!(st.invalidates, 1);
                Some((va.raw(), len))
            }
            Tr::Probe(va) => {
                sut.check(model, *va);
                None
            }
            Tr::Pair {
                a,
                b,
                b_first,
                cancel_a,
            } => {
                let prep = |sut: &mut Sut<S>, t: &Tr| {
                    let Tr::Map {
                        va,
                        len: _,
                        runs,
                        pinned,
                        ro,
                    } = t
                    else {
                        unreachable!()
                    };
                    let runs: &'static [PhysRun] = Box::leak(
                        runs.iter()
                            .map(|&(pa, l)| PhysRun::vram(VramAddress::new(pa), l))
                            .collect::<Vec<_>>()
                            .into_boxed_slice(),
                    );
                    let attrs = PteAttrs {
                        read_only: *ro,
                        ..Default::default()
                    };
                    let r = sut.gpu.run(|v, _| {
                        sut.space.prepare_map(
                            &mut sut.alloc,
                            v,
                            VaPlacement::Fixed(VirtAddr::new(*va)),
                            runs,
                            attrs,
                            *pinned,
                        )
                    });
                    match r {
                        Ok(op) => Some(op),
                        Err(VmmError::Va(VaError::InUse)) => None,
                        Err(e) => panic!("prepare failed: {e}"),
                    }
                };
                let pa = prep(&mut sut, a);
                let pb = prep(&mut sut, b);
                let exec = |sut: &mut Sut<S>, op| match sut
                    .gpu
                    .run(|vram, tlb| sut.space.execute(vram, tlb, op).ok())
                {
                    Some(Executed::Mapped(m, st)) => {
                        assert_eq!(st.invalidates, 1);
                        m
                    }
                    _ => panic!("execute failed"),
                };
                let mut new_maps = Vec::new();
                let run_a = |sut: &mut Sut<S>, new_maps: &mut Vec<Mapping>, op| {
                    if *cancel_a {
                        sut.space.cancel(&mut sut.alloc, op).unwrap();
                    } else {
                        new_maps.push(exec(sut, op));
                    }
                };
                let mut b_map = None;
                match (pa, pb, *b_first) {
                    (pa, Some(pb), true) => {
                        b_map = Some(exec(&mut sut, pb));
                        if let Some(pa) = pa {
                            run_a(&mut sut, &mut new_maps, pa);
                        }
                    }
                    (pa, pb, _) => {
                        if let Some(pa) = pa {
                            run_a(&mut sut, &mut new_maps, pa);
                        }
                        if let Some(pb) = pb {
                            b_map = Some(exec(&mut sut, pb));
                        }
                    }
                }
                // The model appends b, then a.
                if let Some(m) = b_map {
                    sut.maps.push(m);
                }
                sut.maps.extend(new_maps);
                assert_eq!(sut.maps.len(), model.recs.len());
                let (
                    Tr::Map {
                        va: av, len: al, ..
                    },
                    Tr::Map {
                        va: bv, len: bl, ..
                    },
                ) = (a.as_ref(), b.as_ref())
                else {
                    unreachable!()
                };
                sut.check_range(model, *av, *al);
                Some((*bv, *bl))
            }
        };
        if let Some((va, len)) = touched {
            sut.check_range(model, va, len);
        }
        for (r, _) in model.recs.clone() {
            sut.check(model, r.va);
            sut.check(model, r.va + r.len - 4096);
        }
        sut
    }

    fn teardown(mut sut: Sut<S>, _: Model<S>) {
        for m in std::mem::take(&mut sut.maps) {
            sut.gpu
                .run(|vram, tlb| sut.space.unmap(&mut sut.alloc, vram, tlb, m))
                .map_err(|(_, e)| e)
                .unwrap();
        }
        sut.gpu.assert_protocol();
        assert_eq!(sut.space.table_count(), 1, "only the root remains");
        assert_eq!(sut.alloc.used(), sut.baseline);
        sut.space.destroy(&mut sut.alloc);
        assert_eq!(sut.alloc.used(), 0);
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]
    #[test]
    fn vmm_turing(sequential 1..24 => Test<Turing>);
    #[test]
    fn vmm_ampere(sequential 1..24 => Test<Ampere>);
    #[test]
    fn vmm_hopper(sequential 1..24 => Test<Hopper>);
    #[test]
    fn vmm_blackwell(sequential 1..24 => Test<Blackwell>);
}

// The register path: PRAMIN with 32-bit MMIO on a pre-Hopper, a Hopper and a Blackwell chip
// (the three window registers), Pascal (hub PRI invalidate registers), 64-bit MMIO on one chip
// of each MMU version.
prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]
    #[test]
    fn vmm_regs_turing(sequential 1..20 => Test<TuringRegs>);
    #[test]
    fn vmm_regs_pascal(sequential 1..20 => Test<PascalRegs>);
    #[test]
    fn vmm_regs_hopper(sequential 1..20 => Test<HopperRegs>);
    #[test]
    fn vmm_regs_blackwell(sequential 1..20 => Test<BlackwellRegs>);
    #[test]
    fn vmm_regs64_ampere(sequential 1..20 => Test<AmpereRegs64>);
    #[test]
    fn vmm_regs64_blackwell_gb10x(sequential 1..20 => Test<Blackwell10xRegs64>);
}
