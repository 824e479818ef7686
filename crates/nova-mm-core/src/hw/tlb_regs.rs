//! TLB invalidation through BAR0 registers (`mmu-formats.md` §4, `nova-series.md` §4.3).
//!
//! [`TlbRegs`] owns the invalidate registers of its chip (chosen by the [`Hal`]) and runs one of
//! two sequences:
//!
//! - Turing and later (VF alias block, RM `kgmmuCommitTlbInvalidate_TU102`/`_GB100`): poll
//!   `INVALIDATE.TRIGGER` clear (a free slot); unless `ALL_PDB`, write `INVALIDATE_PDB` and
//!   `INVALIDATE_UPPER_PDB`; write `INVALIDATE` with the fields and `TRIGGER`; poll until
//!   `TRIGGER` clears.
//! - Pascal and Volta (hub PRI, nouveau `gf100_vmm_invalidate`): poll
//!   `MMU_CTRL.PRI_FIFO_SPACE` ≠ 0; unless `ALL_PDB`, write the PDB registers; write `INVALIDATE`
//!   with `TRIGGER`; poll `MMU_CTRL.PRI_FIFO_EMPTY`.
//!
//! Before either, a [`Flush`] makes earlier PRAMIN writes visible (RM flushes before every
//! invalidate). Polls are bounded by a timeout measured with the embedder's [`Clock`]; running
//! out is [`TlbError::Timeout`].
//!
//! A ranged [`VaScope::Range`] is widened to `ALL_VA`, as RM and nouveau always do for register
//! invalidates: the hub `INVALIDATE_VADDR`/`INVALIDATE_SIZE` registers are not used, because
//! their interplay with the VF alias block is not documented well enough to rely on. Widening is
//! always correct, never cheaper.

use crate::chip::Chip;
use crate::tlb::{InvalidateRequest, PdbAperture, PdbTarget, TlbError, TlbInvalidate, VaScope};

use super::hal::{invalidate, invalidate_pdb, mmu_ctrl, Hal, TlbRegisterSet};
use super::mmio::Mmio;
use super::pramin::Flush;

/// Time and delay, as the embedder provides them (the kernel's `ktime_get`/`fsleep`, a monotonic
/// clock in userspace, a fake clock in tests).
pub trait Clock {
    /// Monotonic time in nanoseconds.
    fn now_ns(&mut self) -> u64;
    /// Waits about `ns` nanoseconds (may busy-wait; may return early).
    fn delay_ns(&mut self, ns: u64);
}

impl<C: Clock + ?Sized> Clock for &mut C {
    fn now_ns(&mut self) -> u64 {
        (**self).now_ns()
    }
    fn delay_ns(&mut self, ns: u64) {
        (**self).delay_ns(ns);
    }
}

/// The poll timeout nouveau and nova use: 2 s.
pub const DEFAULT_TIMEOUT_NS: u64 = 2_000_000_000;
/// Default delay between two polls: 1 µs.
pub const DEFAULT_POLL_INTERVAL_NS: u64 = 1_000;

/// The register values an invalidate request encodes to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EncodedInvalidate {
    /// `(INVALIDATE_PDB, INVALIDATE_UPPER_PDB)`, or `None` for `ALL_PDB`.
    pub pdb: Option<(u32, u32)>,
    /// `INVALIDATE`, including `TRIGGER`.
    pub invalidate: u32,
}

/// Counters of the work done by a [`TlbRegs`].
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TlbStats {
    /// Invalidates completed.
    pub invalidates: u64,
    /// Requests whose VA range was widened to `ALL_VA`.
    pub widened_ranges: u64,
    /// Register reads issued while polling.
    pub polls: u64,
    /// Register writes issued.
    pub mmio_writes: u64,
}

/// Encodes `req` for `hal`'s chip into register values.
///
/// # Errors
///
/// [`TlbError::Unsupported`] when the PDB is not 4 KiB aligned, lies above 2^60 (beyond
/// `ADDR` + `UPPER_PDB`), or the cache level names a level the chip's MMU does not have.
pub fn encode_invalidate(hal: Hal, req: &InvalidateRequest) -> Result<EncodedInvalidate, TlbError> {
    if !hal.accepts_cache_level(req.cache_level) {
        return Err(TlbError::Unsupported);
    }
    let mut value = invalidate::ALL_VA | invalidate::TRIGGER;
    value |= (req.ack.bits() & invalidate::ACK_MASK) << invalidate::ACK_SHIFT;
    value |=
        (req.cache_level.bits() & invalidate::CACHE_LEVEL_MASK) << invalidate::CACHE_LEVEL_SHIFT;
    if req.hub_tlb_only {
        value |= invalidate::HUBTLB_ONLY;
    }
    let pdb = match req.pdb {
        PdbTarget::All => {
            value |= invalidate::ALL_PDB;
            None
        }
        PdbTarget::One { addr, aperture } => Some(encode_pdb(addr, aperture)?),
    };
    Ok(EncodedInvalidate {
        pdb,
        invalidate: value,
    })
}

fn encode_pdb(addr: u64, aperture: PdbAperture) -> Result<(u32, u32), TlbError> {
    if addr & 0xFFF != 0 {
        return Err(TlbError::Unsupported);
    }
    let page = addr >> 12;
    let lo_mask = (1u64 << invalidate_pdb::ADDR_BITS) - 1;
    let hi = page >> invalidate_pdb::ADDR_BITS;
    if hi >> invalidate_pdb::UPPER_BITS != 0 {
        return Err(TlbError::Unsupported);
    }
    let lo = u32::try_from(page & lo_mask).map_err(|_| TlbError::Unsupported)?;
    let hi = u32::try_from(hi).map_err(|_| TlbError::Unsupported)?;
    let ap = match aperture {
        PdbAperture::Vidmem => 0,
        PdbAperture::Sysmem => invalidate_pdb::APERTURE_SYS,
    };
    Ok(((lo << invalidate_pdb::ADDR_SHIFT) | ap, hi))
}

/// TLB invalidation through the BAR0 registers of one chip.
#[derive(Debug)]
pub struct TlbRegs<M, C, F> {
    mmio: M,
    hal: Hal,
    clock: C,
    flush: F,
    timeout_ns: u64,
    poll_interval_ns: u64,
    stats: TlbStats,
}

impl<M: Mmio, C: Clock, F: Flush> TlbRegs<M, C, F> {
    /// Invalidation for `chip` through `mmio`, timing polls with `clock` and calling `flush`
    /// before every invalidate. Timeout 2 s, poll interval 1 µs.
    pub fn new(mmio: M, chip: Chip, clock: C, flush: F) -> Self {
        TlbRegs {
            mmio,
            hal: Hal::new(chip),
            clock,
            flush,
            timeout_ns: DEFAULT_TIMEOUT_NS,
            poll_interval_ns: DEFAULT_POLL_INTERVAL_NS,
            stats: TlbStats::default(),
        }
    }

    /// Sets the poll timeout.
    #[must_use]
    pub fn with_timeout_ns(mut self, ns: u64) -> Self {
        self.timeout_ns = ns;
        self
    }

    /// Sets the delay between polls.
    #[must_use]
    pub fn with_poll_interval_ns(mut self, ns: u64) -> Self {
        self.poll_interval_ns = ns;
        self
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> TlbStats {
        self.stats
    }

    /// The chip HAL in use.
    #[must_use]
    pub fn hal(&self) -> Hal {
        self.hal
    }

    /// The flush hook, e.g. to reach a [`super::pramin::Pramin`] owned here.
    pub fn flush_hook_mut(&mut self) -> &mut F {
        &mut self.flush
    }

    /// Gives the parts back.
    pub fn into_parts(self) -> (M, C, F) {
        (self.mmio, self.clock, self.flush)
    }

    fn write(&mut self, offset: u32, value: u32) -> Result<(), TlbError> {
        self.stats.mmio_writes = self.stats.mmio_writes.saturating_add(1);
        Ok(self.mmio.write32(offset, value)?)
    }

    /// Reads `offset` until `done` holds or the timeout passes.
    fn poll(&mut self, offset: u32, done: impl Fn(u32) -> bool) -> Result<(), TlbError> {
        let start = self.clock.now_ns();
        loop {
            self.stats.polls = self.stats.polls.saturating_add(1);
            if done(self.mmio.read32(offset)?) {
                return Ok(());
            }
            if self.clock.now_ns().saturating_sub(start) >= self.timeout_ns {
                return Err(TlbError::Timeout);
            }
            self.clock.delay_ns(self.poll_interval_ns);
        }
    }

    fn write_pdb(&mut self, enc: EncodedInvalidate, pdb: u32, upper: u32) -> Result<(), TlbError> {
        if let Some((lo, hi)) = enc.pdb {
            self.write(pdb, lo)?;
            self.write(upper, hi)?;
        }
        Ok(())
    }
}

impl<M: Mmio, C: Clock, F: Flush> TlbInvalidate for TlbRegs<M, C, F> {
    fn invalidate(&mut self, req: &InvalidateRequest) -> Result<(), TlbError> {
        let enc = encode_invalidate(self.hal, req)?;
        if matches!(req.va, VaScope::Range { .. }) {
            self.stats.widened_ranges = self.stats.widened_ranges.saturating_add(1);
        }
        self.flush.flush()?;
        match self.hal.tlb_registers() {
            TlbRegisterSet::VfAlias {
                pdb,
                upper_pdb,
                invalidate: inv,
            } => {
                self.poll(inv, |v| v & invalidate::TRIGGER == 0)?;
                self.write_pdb(enc, pdb, upper_pdb)?;
                self.write(inv, enc.invalidate)?;
                self.poll(inv, |v| v & invalidate::TRIGGER == 0)?;
            }
            TlbRegisterSet::HubPri {
                pdb,
                upper_pdb,
                invalidate: inv,
                mmu_ctrl: ctrl,
            } => {
                self.poll(ctrl, |v| {
                    (v >> mmu_ctrl::PRI_FIFO_SPACE_SHIFT) & mmu_ctrl::PRI_FIFO_SPACE_MASK != 0
                })?;
                self.write_pdb(enc, pdb, upper_pdb)?;
                self.write(inv, enc.invalidate)?;
                self.poll(ctrl, |v| v & mmu_ctrl::PRI_FIFO_EMPTY != 0)?;
            }
        }
        self.stats.invalidates = self.stats.invalidates.saturating_add(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::VirtAddr;
    use crate::hw::mmio::MmioError;
    use crate::hw::pramin::NoFlush;
    use crate::tlb::{AckMode, CacheLevel};
    use core::cell::{Cell, RefCell};
    use std::vec::Vec;

    extern crate std;

    /// Records every access; the invalidate engine is busy for `busy_polls` reads after a
    /// trigger (or forever when `stuck`).
    #[derive(Default)]
    struct Regs {
        log: RefCell<Vec<(char, u32, u32)>>,
        busy_left: Cell<u32>,
        busy_polls: u32,
        stuck: bool,
        hub: bool,
    }

    impl Mmio for Regs {
        fn bar_size(&self) -> u64 {
            16 << 20
        }
        fn read32(&self, offset: u32) -> Result<u32, MmioError> {
            let busy = self.stuck || self.busy_left.get() > 0;
            self.busy_left.set(self.busy_left.get().saturating_sub(1));
            let v = if self.hub {
                if busy {
                    0
                } else {
                    (4 << 16) | (1 << 15)
                }
            } else if busy {
                1 << 31
            } else {
                0
            };
            self.log.borrow_mut().push(('r', offset, v));
            Ok(v)
        }
        fn write32(&self, offset: u32, value: u32) -> Result<(), MmioError> {
            self.log.borrow_mut().push(('w', offset, value));
            if value & (1 << 31) != 0 {
                self.busy_left.set(self.busy_polls);
            }
            Ok(())
        }
    }

    /// A clock that advances 1 µs per reading.
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

    struct CountingFlush<'a>(&'a Regs);
    impl Flush for CountingFlush<'_> {
        fn flush(&mut self) -> Result<(), MmioError> {
            self.0.log.borrow_mut().push(('f', 0, 0));
            Ok(())
        }
    }

    fn req(pdb: PdbTarget) -> InvalidateRequest {
        InvalidateRequest {
            pdb,
            va: VaScope::Range {
                start: VirtAddr::new(0x1000),
                size: 0x1000,
            },
            hub_tlb_only: true,
            cache_level: CacheLevel::UpToPde3,
            ack: AckMode::Globally,
        }
    }

    #[test]
    fn encoding_of_fields() {
        let hal = Hal::new(Chip::Ampere);
        let e = encode_invalidate(
            hal,
            &req(PdbTarget::One {
                addr: 0x12_3456_7000 | (0xAB << 40),
                aperture: PdbAperture::Sysmem,
            }),
        )
        .unwrap();
        assert_eq!(e.pdb, Some(((0x23_4567 | (0x1 << 24)) << 4 | 2, 0xAB)));
        assert_eq!(e.invalidate, 1 | 4 | (1 << 7) | (5 << 24) | (1 << 31));
        let all = encode_invalidate(hal, &InvalidateRequest::EVERYTHING).unwrap();
        assert_eq!(all.pdb, None);
        assert_eq!(all.invalidate, 1 | 2 | (1 << 7) | (1 << 31));
        let bad = PdbTarget::One {
            addr: 0x800,
            aperture: PdbAperture::Vidmem,
        };
        assert_eq!(
            encode_invalidate(hal, &req(bad)),
            Err(TlbError::Unsupported)
        );
        let high = PdbTarget::One {
            addr: 1 << 60,
            aperture: PdbAperture::Vidmem,
        };
        assert_eq!(
            encode_invalidate(hal, &req(high)),
            Err(TlbError::Unsupported)
        );
        let mut r = InvalidateRequest::EVERYTHING;
        r.cache_level = CacheLevel::UpToPde4;
        assert_eq!(encode_invalidate(hal, &r), Err(TlbError::Unsupported));
        assert!(encode_invalidate(Hal::new(Chip::Hopper), &r).is_ok());
    }

    #[test]
    fn turing_sequence() {
        let regs = Regs {
            busy_polls: 3,
            ..Regs::default()
        };
        let mut t = TlbRegs::new(
            &regs,
            Chip::Turing,
            FakeClock::default(),
            CountingFlush(&regs),
        );
        let r = req(PdbTarget::One {
            addr: 0x20_0000,
            aperture: PdbAperture::Vidmem,
        });
        t.invalidate(&r).unwrap();
        let log = regs.log.borrow().clone();
        let inv = encode_invalidate(Hal::new(Chip::Turing), &r)
            .unwrap()
            .invalidate;
        assert_eq!(
            log,
            std::vec![
                ('f', 0, 0),
                ('r', 0xB830B0, 0),
                ('w', 0xB830A0, 0x200 << 4),
                ('w', 0xB830A4, 0),
                ('w', 0xB830B0, inv),
                ('r', 0xB830B0, 1 << 31),
                ('r', 0xB830B0, 1 << 31),
                ('r', 0xB830B0, 1 << 31),
                ('r', 0xB830B0, 0),
            ]
        );
        assert_eq!(t.stats().invalidates, 1);
        assert_eq!(t.stats().widened_ranges, 1);
    }

    #[test]
    fn hub_sequence() {
        let regs = Regs {
            busy_polls: 1,
            hub: true,
            ..Regs::default()
        };
        let mut t = TlbRegs::new(&regs, Chip::Pascal, FakeClock::default(), NoFlush);
        t.invalidate(&InvalidateRequest::EVERYTHING).unwrap();
        let log = regs.log.borrow().clone();
        assert_eq!(
            log,
            std::vec![
                ('r', 0x100C80, (4 << 16) | (1 << 15)),
                ('w', 0x100CBC, 1 | 2 | (1 << 7) | (1 << 31)),
                ('r', 0x100C80, 0),
                ('r', 0x100C80, (4 << 16) | (1 << 15)),
            ]
        );
    }

    #[test]
    fn stuck_trigger_times_out() {
        for (chip, hub) in [(Chip::Volta, true), (Chip::BlackwellGb10x, false)] {
            let regs = Regs {
                stuck: true,
                hub,
                ..Regs::default()
            };
            let mut t = TlbRegs::new(&regs, chip, FakeClock::default(), NoFlush)
                .with_timeout_ns(50_000)
                .with_poll_interval_ns(1_000);
            assert_eq!(
                t.invalidate(&InvalidateRequest::EVERYTHING),
                Err(TlbError::Timeout)
            );
            // Nothing was written: the engine never had a free slot.
            assert!(regs.log.borrow().iter().all(|e| e.0 == 'r'));
            assert!(t.stats().polls < 100);
        }
    }
}
