//! Self-tests of [`crate::hw`]: PRAMIN window moves and the TLB-invalidate register sequences,
//! over an [`Mmio`] provider that emulates the registers: the window register, the PRAMIN
//! aperture (backed by the VRAM image of the caller's [`Scratch`]), and the invalidate
//! registers with a `TRIGGER` that reads 1 for a few polls and then clears.

use core::cell::Cell;

use super::{Scratch, SelfTestResult};
use crate::addr::{VirtAddr, VramAddress};
use crate::chip::Chip;
use crate::hw::hal::{Hal, PRAMIN_APERTURE, PRAMIN_SIZE};
use crate::hw::mmio::{Mmio, MmioError};
use crate::hw::pramin::{NoFlush, Pramin, PraminError};
use crate::hw::tlb_regs::{encode_invalidate, Clock, TlbRegs};
use crate::tlb::{
    AckMode, CacheLevel, InvalidateRequest, PdbAperture, PdbTarget, TlbError, TlbInvalidate,
    VaScope,
};
use crate::vram::{VramAccess, VramError};
use crate::{st_ensure, st_eq};

pub(crate) const TESTS: &[super::SelfTest] = crate::selftests!(
    "hw",
    [
        window_register_encodings,
        invalidate_encoding,
        tlb_turing_sequence,
        tlb_hub_sequence,
        tlb_stuck_trigger_times_out,
    ]
);

pub(crate) const SCRATCH_TESTS: &[super::SelfTest] = crate::selftests!(
    "hw",
    scratch [
        pramin_moves_the_window,
        pramin_bulk_and_64bit,
        pramin_hopper_register_and_errors,
    ]
);

/// Emulated VRAM: 64 MiB, of which the first and last 512 KiB are backed by the scratch image
/// (accesses elsewhere fail), so reaching both ends needs the window to move.
const EMU_VRAM: u64 = 64 << 20;
const HALF: u64 = 512 * 1024;

/// One logged register access.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
struct Access {
    write: bool,
    offset: u32,
    value: u32,
}

const LOG_LEN: usize = 24;

/// The emulated BAR0.
struct EmuBar<'a> {
    chip: Chip,
    /// VRAM backing (see [`EMU_VRAM`]); empty for register-only tests.
    vram: &'a [Cell<u32>],
    window: Cell<u32>,
    window_writes: Cell<u32>,
    /// Reads of `INVALIDATE` (or `MMU_CTRL`) left that still report busy after a trigger.
    busy_left: Cell<u32>,
    busy_polls: u32,
    stuck: bool,
    triggers: Cell<u32>,
    /// Register accesses outside the PRAMIN aperture, in order (the first [`LOG_LEN`]).
    log: [Cell<Access>; LOG_LEN],
    logged: Cell<usize>,
}

impl<'a> EmuBar<'a> {
    fn new(chip: Chip, vram: &'a [Cell<u32>], busy_polls: u32, stuck: bool) -> Self {
        Self {
            chip,
            vram,
            window: Cell::new(0),
            window_writes: Cell::new(0),
            busy_left: Cell::new(0),
            busy_polls,
            stuck,
            triggers: Cell::new(0),
            log: Default::default(),
            logged: Cell::new(0),
        }
    }

    fn record(&self, write: bool, offset: u32, value: u32) {
        let n = self.logged.get();
        if let Some(slot) = self.log.get(n) {
            slot.set(Access {
                write,
                offset,
                value,
            });
        }
        self.logged.set(n.saturating_add(1));
    }

    /// Whether the log is exactly `expected`.
    fn log_is(&self, expected: &[(bool, u32, u32)]) -> bool {
        self.logged.get() == expected.len()
            && self
                .log
                .iter()
                .zip(expected)
                .all(|(a, &(write, offset, value))| {
                    a.get()
                        == Access {
                            write,
                            offset,
                            value,
                        }
                })
    }

    /// The backing word of VRAM byte address `addr`.
    fn vram_word(&self, addr: u64) -> Option<&Cell<u32>> {
        let index = if addr < HALF {
            addr
        } else if addr >= EMU_VRAM.saturating_sub(HALF) && addr < EMU_VRAM {
            addr.saturating_sub(EMU_VRAM.saturating_sub(HALF))
                .saturating_add(HALF)
        } else {
            return None;
        };
        self.vram.get(usize::try_from(index / 4).ok()?)
    }

    fn aperture_word(&self, offset: u32) -> Option<&Cell<u32>> {
        let off = offset.checked_sub(PRAMIN_APERTURE)?;
        if u64::from(off) >= PRAMIN_SIZE {
            return None;
        }
        let wr = Hal::new(self.chip).window_register();
        let (base, _) = wr.decode(self.window.get());
        self.vram_word(base.saturating_add(u64::from(off)))
    }

    fn hub(&self) -> bool {
        matches!(self.chip, Chip::Pascal | Chip::Volta)
    }
}

const BAD: MmioError = MmioError::Io(-5);

impl Mmio for EmuBar<'_> {
    fn bar_size(&self) -> u64 {
        16 << 20
    }

    fn read32(&self, offset: u32) -> Result<u32, MmioError> {
        if offset >= PRAMIN_APERTURE && u64::from(offset) < u64::from(PRAMIN_APERTURE) + PRAMIN_SIZE
        {
            return self.aperture_word(offset).map(Cell::get).ok_or(BAD);
        }
        let busy = self.stuck || self.busy_left.get() > 0;
        let v = match offset {
            o if o == Hal::new(self.chip).window_register().offset => self.window.get(),
            // Turing+: INVALIDATE reads TRIGGER while pending.
            0x00B8_30B0 => {
                self.busy_left.set(self.busy_left.get().saturating_sub(1));
                if busy {
                    1 << 31
                } else {
                    0
                }
            }
            // Pascal/Volta: MMU_CTRL reports FIFO space and empty when idle.
            0x0010_0C80 => {
                self.busy_left.set(self.busy_left.get().saturating_sub(1));
                if busy {
                    0
                } else {
                    (4 << 16) | (1 << 15)
                }
            }
            _ => 0,
        };
        self.record(false, offset, v);
        Ok(v)
    }

    fn write32(&self, offset: u32, value: u32) -> Result<(), MmioError> {
        if offset >= PRAMIN_APERTURE && u64::from(offset) < u64::from(PRAMIN_APERTURE) + PRAMIN_SIZE
        {
            let w = self.aperture_word(offset).ok_or(BAD)?;
            w.set(value);
            return Ok(());
        }
        self.record(true, offset, value);
        if offset == Hal::new(self.chip).window_register().offset {
            self.window.set(value);
            self.window_writes
                .set(self.window_writes.get().saturating_add(1));
        } else if (offset == 0x00B8_30B0 || (self.hub() && offset == 0x0010_0CBC))
            && value & (1 << 31) != 0
        {
            self.triggers.set(self.triggers.get().saturating_add(1));
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
        self.0 = self.0.saturating_add(1_000);
        self.0
    }
    fn delay_ns(&mut self, ns: u64) {
        self.0 = self.0.saturating_add(ns);
    }
}

fn window_register_encodings() -> SelfTestResult {
    let pre = Hal::new(Chip::Turing).window_register();
    st_eq!(pre.offset, 0x1700);
    st_eq!(pre.reach(), 1 << 40);
    st_eq!(pre.encode(0x1_0000), Some(1));
    st_eq!(pre.encode(0x12_3450_0000), Some(0x12_3450));
    st_eq!(pre.encode(0x8000), None);
    st_eq!(pre.encode(1 << 40), None);
    st_eq!(pre.decode(0x0100_0001), (0x1_0000, 1));
    let h = Hal::new(Chip::Hopper).window_register();
    st_eq!(h.offset, 0x10_FD40);
    st_eq!(h.reach(), 1 << 38);
    st_eq!(h.decode(0x0100_0001), (0x1_0000, 0));
    st_eq!(h.encode(1 << 38), None);
    let b = Hal::new(Chip::BlackwellGb20x).window_register();
    st_eq!(b.reach(), 1 << 39);
    Ok(())
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

fn invalidate_encoding() -> SelfTestResult {
    let hal = Hal::new(Chip::Ampere);
    let e = encode_invalidate(
        hal,
        &req(PdbTarget::One {
            addr: 0x12_3456_7000 | (0xAB << 40),
            aperture: PdbAperture::Sysmem,
        }),
    )
    .map_err(|_| "encode")?;
    st_eq!(e.pdb, Some((((0x23_4567 | (0x1 << 24)) << 4) | 2, 0xAB)));
    st_eq!(e.invalidate, 1 | 4 | (1 << 7) | (5 << 24) | (1 << 31));
    let all = encode_invalidate(hal, &InvalidateRequest::EVERYTHING).map_err(|_| "everything")?;
    st_eq!(all.pdb, None);
    st_eq!(all.invalidate, 1 | 2 | (1 << 7) | (1 << 31));
    let bad = PdbTarget::One {
        addr: 0x800,
        aperture: PdbAperture::Vidmem,
    };
    st_eq!(
        encode_invalidate(hal, &req(bad)),
        Err(TlbError::Unsupported)
    );
    let mut r = InvalidateRequest::EVERYTHING;
    r.cache_level = CacheLevel::UpToPde4;
    st_eq!(encode_invalidate(hal, &r), Err(TlbError::Unsupported));
    st_ensure!(encode_invalidate(Hal::new(Chip::Hopper), &r).is_ok());
    Ok(())
}

fn tlb_turing_sequence() -> SelfTestResult {
    let bar = EmuBar::new(Chip::Turing, &[], 3, false);
    let r = req(PdbTarget::One {
        addr: 0x20_0000,
        aperture: PdbAperture::Vidmem,
    });
    let inv = encode_invalidate(Hal::new(Chip::Turing), &r)
        .map_err(|_| "encode")?
        .invalidate;
    let mut t = TlbRegs::new(&bar, Chip::Turing, FakeClock::default(), NoFlush);
    st_ensure!(t.invalidate(&r).is_ok());
    // Idle check, PDB, upper PDB, INVALIDATE with TRIGGER, then polls until TRIGGER clears.
    st_ensure!(bar.log_is(&[
        (false, 0xB8_30B0, 0),
        (true, 0xB8_30A0, 0x200 << 4),
        (true, 0xB8_30A4, 0),
        (true, 0xB8_30B0, inv),
        (false, 0xB8_30B0, 1 << 31),
        (false, 0xB8_30B0, 1 << 31),
        (false, 0xB8_30B0, 1 << 31),
        (false, 0xB8_30B0, 0),
    ]));
    st_eq!(bar.triggers.get(), 1);
    st_eq!(t.stats().invalidates, 1);
    st_eq!(t.stats().widened_ranges, 1);
    Ok(())
}

fn tlb_hub_sequence() -> SelfTestResult {
    let bar = EmuBar::new(Chip::Pascal, &[], 1, false);
    let mut t = TlbRegs::new(&bar, Chip::Pascal, FakeClock::default(), NoFlush);
    st_ensure!(t.invalidate(&InvalidateRequest::EVERYTHING).is_ok());
    st_ensure!(bar.log_is(&[
        (false, 0x10_0C80, (4 << 16) | (1 << 15)),
        (true, 0x10_0CBC, 1 | 2 | (1 << 7) | (1 << 31)),
        (false, 0x10_0C80, 0),
        (false, 0x10_0C80, (4 << 16) | (1 << 15)),
    ]));
    st_eq!(bar.triggers.get(), 1);
    Ok(())
}

fn tlb_stuck_trigger_times_out() -> SelfTestResult {
    for chip in [Chip::Volta, Chip::BlackwellGb10x] {
        let bar = EmuBar::new(chip, &[], 0, true);
        let mut t = TlbRegs::new(&bar, chip, FakeClock::default(), NoFlush)
            .with_timeout_ns(50_000)
            .with_poll_interval_ns(1_000);
        st_eq!(
            t.invalidate(&InvalidateRequest::EVERYTHING),
            Err(TlbError::Timeout)
        );
        // Nothing was written: the engine never had a free slot.
        st_ensure!(bar.log.iter().take(LOG_LEN).all(|a| !a.get().write));
        st_eq!(bar.triggers.get(), 0);
        st_ensure!(t.stats().polls < 100);
    }
    Ok(())
}

fn cells<'a>(s: &'a mut Scratch<'_>) -> &'a [Cell<u32>] {
    Cell::from_mut(&mut *s.vram).as_slice_of_cells()
}

fn pramin_moves_the_window(s: &mut Scratch<'_>) -> SelfTestResult {
    let vram = cells(s);
    let bar = EmuBar::new(Chip::Turing, vram, 0, false);
    let mut p = Pramin::new(&bar, Chip::Turing, EMU_VRAM).map_err(|_| "pramin")?;
    st_eq!(p.window_base(), None);
    // The first access programs the window (64 KiB aligned, covering the address).
    st_ensure!(p.write32(VramAddress::new(0x1_2344), 0xDEAD_BEEF).is_ok());
    st_eq!(bar.window_writes.get(), 1);
    st_ensure!(p.window_base().is_some_and(|b| b.raw() <= 0x1_2344));
    st_eq!(bar.vram_word(0x1_2344).map(Cell::get), Some(0xDEAD_BEEF));
    // Nearby: no move.
    st_ensure!(p.write32(VramAddress::new(0x1_2348), 7).is_ok());
    st_eq!(bar.window_writes.get(), 1);
    // The top of VRAM: one move, to a window that covers it.
    let top = EMU_VRAM - 4;
    st_ensure!(p.write32(VramAddress::new(top), 0x1234_5678).is_ok());
    st_eq!(bar.window_writes.get(), 2);
    st_eq!(bar.vram_word(top).map(Cell::get), Some(0x1234_5678));
    let (base, target) = Hal::new(Chip::Turing)
        .window_register()
        .decode(bar.window.get());
    st_ensure!(base <= top && top < base.saturating_add(PRAMIN_SIZE) && base % 0x1_0000 == 0);
    st_eq!(target, 0);
    // Reading back the first word moves the window back.
    st_eq!(p.read32(VramAddress::new(0x1_2344)), Ok(0xDEAD_BEEF));
    st_eq!(bar.window_writes.get(), 3);
    st_eq!(p.stats().window_moves, 3);
    Ok(())
}

fn pramin_bulk_and_64bit(s: &mut Scratch<'_>) -> SelfTestResult {
    let vram = cells(s);
    let bar = EmuBar::new(Chip::Ampere, vram, 0, false);
    let mut p = Pramin::new(&bar, Chip::Ampere, EMU_VRAM).map_err(|_| "pramin")?;
    // 64-bit values land little-endian in two words.
    st_ensure!(p
        .write64(VramAddress::new(0x2000), 0x1122_3344_5566_7788)
        .is_ok());
    st_eq!(bar.vram_word(0x2000).map(Cell::get), Some(0x5566_7788));
    st_eq!(bar.vram_word(0x2004).map(Cell::get), Some(0x1122_3344));
    st_eq!(
        p.read64(VramAddress::new(0x2000)),
        Ok(0x1122_3344_5566_7788)
    );
    // A fill of a whole table near the top of VRAM.
    let table = EMU_VRAM - 0x1000;
    st_ensure!(p.fill_u64(VramAddress::new(table), 0xABCD, 512).is_ok());
    for i in (0..0x1000u64).step_by(8) {
        st_eq!(
            bar.vram_word(table.saturating_add(i)).map(Cell::get),
            Some(0xABCD)
        );
        st_eq!(
            bar.vram_word(table.saturating_add(i).saturating_add(4))
                .map(Cell::get),
            Some(0)
        );
    }
    st_eq!(p.read64(VramAddress::new(table + 0xFF8)), Ok(0xABCD));
    Ok(())
}

fn pramin_hopper_register_and_errors(s: &mut Scratch<'_>) -> SelfTestResult {
    let vram = cells(s);
    let bar = EmuBar::new(Chip::Hopper, vram, 0, false);
    // VRAM beyond the reach of the window register: a typed error.
    st_ensure!(matches!(
        Pramin::new(&bar, Chip::Hopper, (1 << 38) + 0x1_0000),
        Err(PraminError::BeyondReach { .. })
    ));
    st_ensure!(matches!(
        Pramin::new(&bar, Chip::Hopper, 0),
        Err(PraminError::NoVram)
    ));
    let mut p = Pramin::new(&bar, Chip::Hopper, EMU_VRAM).map_err(|_| "pramin")?;
    st_ensure!(p.write32(VramAddress::new(EMU_VRAM - 8), 5).is_ok());
    // Hopper's window register is NV_XAL_EP_BAR0_WINDOW, BASE only: one write, to a window
    // that covers the address.
    st_eq!(bar.logged.get(), 1);
    let a = bar.log.first().map(Cell::get).unwrap_or_default();
    st_ensure!(a.write && a.offset == 0x10_FD40);
    let (base, _) = Hal::new(Chip::Hopper).window_register().decode(a.value);
    st_ensure!(base <= EMU_VRAM - 8 && EMU_VRAM - 8 < base.saturating_add(PRAMIN_SIZE));
    st_eq!(bar.window_writes.get(), 1);
    // Out of range and misaligned: typed errors, no window move.
    st_ensure!(matches!(
        p.write32(VramAddress::new(EMU_VRAM), 1),
        Err(VramError::OutOfRange { .. })
    ));
    st_ensure!(p.write32(VramAddress::new(0x2), 1).is_err());
    st_eq!(bar.window_writes.get(), 1);
    // A backend failure is reported, not hidden (the middle of VRAM has no backing here).
    st_ensure!(p.read32(VramAddress::new(EMU_VRAM / 2)).is_err());
    Ok(())
}
