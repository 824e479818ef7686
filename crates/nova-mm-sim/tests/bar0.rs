//! The register path (core `Pramin` + `TlbRegs`) against the simulated BAR0, for a pre-Hopper,
//! a Hopper and a Blackwell chip: the nova PRAMIN self-test edge cases, TLB sequences and their
//! timeouts, and the MMIO cost of bulk page-table writes.

use std::collections::BTreeMap;

use nova_mm_core::hw::hal::Hal;
use nova_mm_core::hw::mmio::{Mmio, MmioError};
use nova_mm_core::hw::pramin::{NoFlush, Pramin, PraminReadBack};
use nova_mm_core::hw::tlb_regs::{Clock, TlbRegs};
use nova_mm_core::vram::check_access;
use nova_mm_core::{
    AckMode, CacheLevel, Chip, InvalidateRequest, PdbAperture, PdbTarget, TlbError, TlbInvalidate,
    VaScope, VirtAddr, VramAccess, VramAddress, VramError,
};
use nova_mm_sim::bar0::{RecordingTlb, SimBar0, TriggerMode};

/// Sparse VRAM: 4 KiB pages allocated on first write, zero elsewhere.
struct SparseVram {
    size: u64,
    pages: BTreeMap<u64, Box<[u32; 1024]>>,
}

impl SparseVram {
    fn new(size: u64) -> Self {
        SparseVram {
            size,
            pages: BTreeMap::new(),
        }
    }
}

impl VramAccess for SparseVram {
    fn size(&self) -> u64 {
        self.size
    }
    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
        check_access(addr, 4, 4, self.size)?;
        let a = addr.raw();
        Ok(self
            .pages
            .get(&(a >> 12))
            .map_or(0, |p| p[((a & 0xFFF) / 4) as usize]))
    }
    fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError> {
        check_access(addr, 4, 4, self.size)?;
        let a = addr.raw();
        self.pages
            .entry(a >> 12)
            .or_insert_with(|| Box::new([0; 1024]))[((a & 0xFFF) / 4) as usize] = value;
        Ok(())
    }
}

/// Dense VRAM in a `Vec`, for the larger scenarios.
struct DenseVram(Vec<u32>);

impl VramAccess for DenseVram {
    fn size(&self) -> u64 {
        self.0.len() as u64 * 4
    }
    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
        check_access(addr, 4, 4, self.size())?;
        Ok(self.0[(addr.raw() / 4) as usize])
    }
    fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError> {
        check_access(addr, 4, 4, self.size())?;
        self.0[(addr.raw() / 4) as usize] = value;
        Ok(())
    }
}

fn dense_sim(chip: Chip, vram: u64) -> SimBar0<DenseVram, RecordingTlb> {
    SimBar0::new(
        chip,
        DenseVram(vec![0; (vram / 4) as usize]),
        RecordingTlb::default(),
    )
}

/// A clock advancing 1 µs per reading.
#[derive(Default)]
struct FakeClock(u64);
impl Clock for FakeClock {
    fn now_ns(&mut self) -> u64 {
        self.0 += 1_000;
        self.0
    }
    fn delay_ns(&mut self, ns: u64) {
        self.0 += ns;
    }
}

const CHIPS: [Chip; 3] = [Chip::Turing, Chip::Hopper, Chip::BlackwellGb20x];

fn sim(chip: Chip, vram: u64) -> SimBar0<SparseVram, RecordingTlb> {
    SimBar0::new(chip, SparseVram::new(vram), RecordingTlb::default())
}

/// nova's PRAMIN self-test (`nova-series.md` §4.10), on each chip family.
#[test]
fn nova_pramin_selftest_edge_cases() {
    for chip in CHIPS {
        let reach = Hal::new(chip).window_register().reach();
        let bar = sim(chip, reach);
        let mut p = Pramin::new(&bar, chip, reach).unwrap();
        let base = 0x1000u64;
        // Byte writes at unaligned offsets, read back as bytes and as a little-endian u32.
        for (i, b) in [0x11u8, 0x22, 0x33, 0x44].into_iter().enumerate() {
            p.write8(VramAddress::new(base + 1 + i as u64), b).unwrap();
        }
        for (i, b) in [0x11u8, 0x22, 0x33, 0x44].into_iter().enumerate() {
            assert_eq!(p.read8(VramAddress::new(base + 1 + i as u64)).unwrap(), b);
        }
        assert_eq!(p.read32(VramAddress::new(base + 4)).unwrap(), 0x44);
        p.write32(VramAddress::new(base + 8), 0xDEAD_BEEF).unwrap();
        let bytes: Vec<u8> = (0..4)
            .map(|i| p.read8(VramAddress::new(base + 8 + i)).unwrap())
            .collect();
        assert_eq!(bytes, 0xDEAD_BEEFu32.to_le_bytes());
        p.write16(VramAddress::new(base + 14), 0xCAFE).unwrap();
        assert_eq!(p.read16(VramAddress::new(base + 14)).unwrap(), 0xCAFE);
        assert_eq!(p.read32(VramAddress::new(base + 12)).unwrap(), 0xCAFE_0000);

        // Window moves across 1 MiB: base and base + 2 MiB.
        let moves = bar.counters().window_moves;
        let far = base + (2 << 20);
        p.write64(VramAddress::new(far), 0x0102_0304_0506_0708)
            .unwrap();
        assert_eq!(bar.counters().window_moves, moves + 1);
        assert_eq!(bar.window().0, far & !0xF_FFFF);
        assert_eq!(p.read32(VramAddress::new(base + 8)).unwrap(), 0xDEAD_BEEF);
        assert_eq!(
            p.read64(VramAddress::new(far)).unwrap(),
            0x0102_0304_0506_0708
        );
        assert_eq!(bar.counters().window_moves, moves + 3);
        bar.with_vram(|v| assert_eq!(v.read32(VramAddress::new(far)).unwrap(), 0x0506_0708));

        // The register's limit: the last word is reachable, the next byte is not
        // (40 bits before Hopper, 38 on Hopper, 39 on GB20x).
        let top = VramAddress::new(reach - 8);
        p.write64(top, 7).unwrap();
        assert_eq!(bar.window().0, reach - 0x10_0000);
        assert_eq!(p.read64(top).unwrap(), 7);
        let beyond = VramAddress::new(reach);
        assert!(matches!(p.read8(beyond), Err(VramError::OutOfRange { .. })));
        assert!(matches!(
            p.write32(beyond, 0),
            Err(VramError::OutOfRange { .. })
        ));
        // A VRAM larger than the window's reach is refused up front.
        assert!(Pramin::new(&bar, chip, reach + 1).is_err());

        // Misaligned u16, u32, u64 are rejected and touch nothing.
        let writes = bar.counters().pramin_writes;
        let a = VramAddress::new(base + 1);
        assert_eq!(
            p.read16(a),
            Err(VramError::Misaligned { addr: a, align: 2 })
        );
        assert_eq!(
            p.write32(a, 1),
            Err(VramError::Misaligned { addr: a, align: 4 })
        );
        assert_eq!(
            p.write64(a, 1),
            Err(VramError::Misaligned { addr: a, align: 8 })
        );
        assert_eq!(bar.counters().pramin_writes, writes);
    }
}

#[test]
fn window_register_layouts() {
    // Turing: TARGET field kept at VID_MEM, 24-bit base at 0x1700.
    let bar = sim(Chip::Ada, 1 << 32);
    bar.write32(0x1700, 0x0312_3456).unwrap();
    assert_eq!(bar.window(), (0x12_3456_0000, 3));
    // A system-memory target is not simulated: PRAMIN accesses fail.
    assert_eq!(bar.read32(0x70_0000), Err(MmioError::Io(-5)));
    // Hopper: 22-bit base at 0x10FD40, no target; Blackwell: 23 bits.
    let h = sim(Chip::Hopper, 1 << 32);
    h.write32(0x10_FD40, 0xFFFF_FFFF).unwrap();
    assert_eq!(h.window(), (((1 << 22) - 1) << 16, 0));
    let b = sim(Chip::BlackwellGb10x, 1 << 32);
    b.write32(0x10_FD40, 0xFFFF_FFFF).unwrap();
    assert_eq!(b.window(), (((1 << 23) - 1) << 16, 0));
    // The chip ID registers identify the chip.
    for chip in Chip::ALL {
        let s = sim(chip, 1 << 20);
        let id =
            nova_mm_core::hw::hal::identify_chip(s.read32(0).unwrap(), s.read32(0xA00).unwrap())
                .unwrap();
        assert_eq!(id.chip, chip);
    }
}

fn request(chip: Chip) -> InvalidateRequest {
    InvalidateRequest {
        pdb: PdbTarget::One {
            addr: 0x3_4567_8000 | (0x5 << 40),
            aperture: PdbAperture::Vidmem,
        },
        va: VaScope::Range {
            start: VirtAddr::new(0x20_0000),
            size: 0x1000,
        },
        hub_tlb_only: false,
        cache_level: Hal::new(chip).root_cache_level(),
        ack: AckMode::Globally,
    }
}

#[test]
fn tlb_sequences_forward_the_request() {
    for chip in [
        Chip::Pascal,
        Chip::Volta,
        Chip::Turing,
        Chip::Hopper,
        Chip::BlackwellGb20x,
    ] {
        let bar = sim(chip, 64 << 20);
        bar.set_trigger_mode(TriggerMode::ClearsAfter(5));
        let mut p = Pramin::new(&bar, chip, 64 << 20).unwrap();
        let mut t = TlbRegs::new(&bar, chip, FakeClock::default(), PraminReadBack::new(&bar));
        p.write64(VramAddress::new(0x8000), 42).unwrap();
        let req = request(chip);
        t.invalidate(&req).unwrap();
        t.invalidate(&InvalidateRequest::EVERYTHING).unwrap();
        let c = bar.counters();
        assert_eq!(c.invalidates, 2, "{chip}");
        assert_eq!(c.completed, 2, "{chip}");
        assert_eq!(c.protocol_violations, 0, "{chip}");
        assert_eq!(
            c.unflushed_invalidates, 0,
            "{chip}: PRAMIN flushed before invalidating"
        );
        let got = bar.with_tlb(|tlb| tlb.requests.clone());
        // The range is widened to ALL_VA; every other field survives the registers.
        assert_eq!(
            got,
            vec![
                InvalidateRequest {
                    va: VaScope::All,
                    ..req
                },
                InvalidateRequest::EVERYTHING
            ]
        );
        let root = got[0].cache_level;
        if chip.mmu_version() == nova_mm_core::MmuVersion::V3 {
            assert_eq!(
                root,
                CacheLevel::UpToPde4,
                "no nouveau off-by-one on {chip}"
            );
        } else {
            assert_eq!(root, CacheLevel::UpToPde3);
        }
        assert_eq!(t.stats().widened_ranges, 1);
    }
}

#[test]
fn missing_flush_is_detected_by_the_model() {
    let bar = sim(Chip::Ampere, 64 << 20);
    let mut p = Pramin::new(&bar, Chip::Ampere, 64 << 20).unwrap();
    let mut t = TlbRegs::new(&bar, Chip::Ampere, FakeClock::default(), NoFlush);
    p.write64(VramAddress::new(0), 1).unwrap();
    t.invalidate(&InvalidateRequest::EVERYTHING).unwrap();
    assert_eq!(bar.counters().unflushed_invalidates, 1);
    // With the Pramin itself as the flush hook, the read-back happens.
    let mut t = TlbRegs::new(&bar, Chip::Ampere, FakeClock::default(), &mut p);
    t.flush_hook_mut().write64(VramAddress::new(8), 2).unwrap();
    t.invalidate(&InvalidateRequest::EVERYTHING).unwrap();
    assert_eq!(bar.counters().unflushed_invalidates, 1);
}

#[test]
fn tlb_timeouts_and_failing_reads() {
    for chip in [
        Chip::Volta,
        Chip::Turing,
        Chip::Hopper,
        Chip::BlackwellGb10x,
    ] {
        // A trigger that never clears: the first invalidate starts and times out waiting for
        // completion; the next one times out waiting for a free slot and writes nothing.
        let bar = sim(chip, 1 << 20);
        bar.set_trigger_mode(TriggerMode::Never);
        let mut t =
            TlbRegs::new(&bar, chip, FakeClock::default(), NoFlush).with_timeout_ns(100_000);
        assert_eq!(
            t.invalidate(&InvalidateRequest::EVERYTHING),
            Err(TlbError::Timeout)
        );
        assert_eq!(bar.counters().invalidates, 1);
        let writes = bar.counters().writes32;
        assert_eq!(
            t.invalidate(&InvalidateRequest::EVERYTHING),
            Err(TlbError::Timeout)
        );
        assert_eq!(bar.counters().writes32, writes);
        assert_eq!(bar.counters().protocol_violations, 0);
        // Recovery: once the engine clears, invalidates work again.
        bar.set_trigger_mode(TriggerMode::ClearsAfter(1));
        let bar2 = sim(chip, 1 << 20);
        let mut t2 = TlbRegs::new(&bar2, chip, FakeClock::default(), NoFlush);
        t2.invalidate(&InvalidateRequest::EVERYTHING).unwrap();
        // Reads that fail surface as backend errors, in PRAMIN and in the TLB path.
        bar2.set_fail_reads(true);
        assert_eq!(
            t2.invalidate(&InvalidateRequest::EVERYTHING),
            Err(TlbError::Backend(-5))
        );
        let mut p = Pramin::new(&bar2, chip, 1 << 20).unwrap();
        assert_eq!(p.read32(VramAddress::new(0)), Err(VramError::Backend(-5)));
    }
}

#[test]
fn triggering_while_busy_is_a_protocol_violation() {
    let bar = sim(Chip::Turing, 1 << 20);
    bar.set_trigger_mode(TriggerMode::ClearsAfter(3));
    bar.write32(0xB8_30B0, 0x8000_0003).unwrap();
    bar.write32(0xB8_30B0, 0x8000_0003).unwrap();
    assert_eq!(bar.counters().protocol_violations, 1);
    // ALL_VA clear cannot be decoded (no VADDR registers): counted, not forwarded.
    bar.write32(0xB8_30B0, 0x8000_0002).unwrap();
    assert_eq!(bar.counters().invalidates, 2);
    assert_eq!(bar.counters().protocol_violations, 3);
    // Requests reach the TLB model only when the engine finishes.
    assert_eq!(bar.counters().completed, 2);
    let fresh = sim(Chip::Turing, 1 << 20);
    fresh.set_trigger_mode(TriggerMode::ClearsAfter(2));
    fresh.write32(0xB8_30B0, 0x8000_0003).unwrap();
    assert_eq!(fresh.counters().completed, 0);
    assert_eq!(fresh.read32(0xB8_30B0).unwrap() >> 31, 1);
    assert_eq!(fresh.counters().completed, 0);
    assert_eq!(fresh.read32(0xB8_30B0).unwrap() >> 31, 1);
    assert_eq!(fresh.counters().completed, 1);
    assert_eq!(fresh.read32(0xB8_30B0).unwrap() >> 31, 0);
}

/// MMIO cost of writing 1 GiB worth of 4 KiB PTEs (262,144 u64 words, 2 MiB of page tables)
/// through PRAMIN. Run with `--nocapture` to see the figures.
#[test]
fn bulk_pte_write_cost() {
    const PTES: u64 = 262_144;
    for chip in CHIPS {
        for (native, start) in [
            (false, 0x40_0000),
            (true, 0x40_0000),
            (false, 0x4_8000),
            (true, 0x4_8000),
        ] {
            // 8 MiB of VRAM hold the 2 MiB of page tables; the MMIO cost does not depend on
            // the VRAM size.
            let bar = dense_sim(chip, 8 << 20).with_native_64(native);
            let mut p = Pramin::new(&bar, chip, 8 << 20).unwrap();
            let ptes: Vec<u64> = (0..PTES).map(|i| (i << 8) | 1).collect();
            let start = VramAddress::new(start);
            p.write_u64s(start, &ptes).unwrap();
            let c = bar.counters();
            let mmio_writes = c.writes32 + c.writes64;
            let data_writes = c.pramin_writes;
            let windows_touched = ((start.raw() + 8 * PTES - 1) >> 20) - (start.raw() >> 20) + 1;
            println!(
                "{chip:>6} start {start:#x} {:>2}-bit MMIO: {} MMIO writes ({} through PRAMIN, {} window moves) \
                 = {:.4} writes/PTE; 1 MiB windows touched: {}",
                if native { 64 } else { 32 },
                mmio_writes,
                data_writes,
                c.window_moves,
                mmio_writes as f64 / PTES as f64,
                windows_touched,
            );
            let per_pte_limit = if native { 1.05 } else { 2.05 };
            assert!((mmio_writes as f64) / (PTES as f64) <= per_pte_limit);
            assert!(c.window_moves <= windows_touched);
            // Every register write is a move PRAMIN decided; the model counts as moves the
            // writes that change the register (the first may rewrite its reset value, 0).
            assert_eq!(c.window_writes, p.stats().window_moves);
            assert!(c.window_moves <= c.window_writes);
            let mut back = vec![0u64; PTES as usize];
            p.read_u64s(start, &mut back).unwrap();
            assert_eq!(back, ptes);
        }
    }
}

mod register_path_model {
    //! Random sequences of PRAMIN accesses and invalidates through the register path equal a
    //! flat-memory model and a list of expected requests, on each chip family.

    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Write(u64, Vec<u64>),
        Read(u64, usize),
        Fill(u64, u64, u64),
        Invalidate {
            one_pdb: Option<u64>,
            hub: bool,
            level: u32,
            ack: u32,
        },
    }

    const SIZE: u64 = 2 << 20;

    fn op() -> impl Strategy<Value = Op> {
        let addr = (0..SIZE / 8).prop_map(|w| w * 8);
        prop_oneof![
            (addr.clone(), proptest::collection::vec(any::<u64>(), 1..40))
                .prop_map(|(a, v)| Op::Write(a, v)),
            (addr.clone(), 1..40usize).prop_map(|(a, n)| Op::Read(a, n)),
            (addr, any::<u64>(), 0..20_000u64).prop_map(|(a, v, n)| Op::Fill(a, v, n)),
            (
                proptest::option::of(0..(1u64 << 47)),
                any::<bool>(),
                0..6u32,
                0..3u32
            )
                .prop_map(|(p, hub, level, ack)| Op::Invalidate {
                    one_pdb: p.map(|p| p & !0xFFF),
                    hub,
                    level,
                    ack
                }),
        ]
    }

    fn level(l: u32) -> CacheLevel {
        [
            CacheLevel::All,
            CacheLevel::PteOnly,
            CacheLevel::UpToPde0,
            CacheLevel::UpToPde1,
            CacheLevel::UpToPde2,
            CacheLevel::UpToPde3,
        ][l as usize]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn register_path_equals_model(
            chip in prop_oneof![Just(Chip::Volta), Just(Chip::Ada), Just(Chip::Hopper), Just(Chip::BlackwellGb10x)],
            native in any::<bool>(),
            polls in 0..4u32,
            ops in proptest::collection::vec(op(), 1..20),
        ) {
            let bar = dense_sim(chip, SIZE).with_native_64(native);
            bar.set_trigger_mode(TriggerMode::ClearsAfter(polls));
            let mut p = Pramin::new(&bar, chip, SIZE).unwrap();
            let mut t = TlbRegs::new(&bar, chip, FakeClock::default(), PraminReadBack::new(&bar));
            let mut model = vec![0u64; (SIZE / 8) as usize];
            let mut expected = Vec::new();
            for op in ops {
                match op {
                    Op::Write(a, v) => {
                        let ok = a + 8 * v.len() as u64 <= SIZE;
                        prop_assert_eq!(p.write_u64s(VramAddress::new(a), &v).is_ok(), ok);
                        if ok {
                            model[(a / 8) as usize..][..v.len()].copy_from_slice(&v);
                        }
                    }
                    Op::Read(a, n) => {
                        let mut out = vec![0; n];
                        let r = p.read_u64s(VramAddress::new(a), &mut out);
                        if a + 8 * n as u64 <= SIZE {
                            prop_assert!(r.is_ok());
                            prop_assert_eq!(&out[..], &model[(a / 8) as usize..][..n]);
                        } else {
                            prop_assert!(r.is_err());
                        }
                    }
                    Op::Fill(a, v, n) => {
                        let ok = a + 8 * n <= SIZE;
                        prop_assert_eq!(p.fill_u64(VramAddress::new(a), v, n).is_ok(), ok);
                        if ok {
                            model[(a / 8) as usize..][..n as usize].fill(v);
                        }
                    }
                    Op::Invalidate { one_pdb, hub, level: l, ack } => {
                        let req = InvalidateRequest {
                            pdb: one_pdb.map_or(PdbTarget::All, |addr| PdbTarget::One {
                                addr,
                                aperture: PdbAperture::Vidmem,
                            }),
                            va: VaScope::All,
                            hub_tlb_only: hub,
                            cache_level: level(l),
                            ack: [AckMode::None, AckMode::Globally, AckMode::Intranode][ack as usize],
                        };
                        t.invalidate(&req).unwrap();
                        expected.push(req);
                    }
                }
                let c = bar.counters();
                prop_assert_eq!(c.window_writes, p.stats().window_moves);
                prop_assert!(c.window_moves <= c.window_writes);
                prop_assert_eq!(c.protocol_violations, 0);
                prop_assert_eq!(c.unflushed_invalidates, 0);
            }
            prop_assert_eq!(bar.with_tlb(|tlb| tlb.requests.clone()), expected);
            let mut direct = vec![0u64; (SIZE / 8) as usize];
            bar.with_vram(|v| v.read_u64s(VramAddress::new(0), &mut direct)).unwrap();
            prop_assert!(direct == model);
        }
    }
}
