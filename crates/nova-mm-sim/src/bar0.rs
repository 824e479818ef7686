//! A register-level simulated BAR0 (`mmu-formats.md` §3, §4).
//!
//! [`SimBar0`] decodes MMIO the way the GPU does, for one [`Chip`]:
//!
//! - the PRAMIN window register of the chip family (`NV_PBUS_BAR0_WINDOW` with `TARGET` up to
//!   Ada, `NV_XAL_EP_BAR0_WINDOW` with the chip's base width on Hopper and Blackwell);
//! - the 1 MiB PRAMIN aperture at 0x700000, mapped onto a [`VramAccess`] `V`;
//! - the TLB-invalidate registers of the chip (hub PRI with `MMU_CTRL` on Pascal/Volta, the VF
//!   alias block on Turing and later), decoded into an [`InvalidateRequest`] and forwarded to a
//!   [`TlbInvalidate`] `T` (the reference MMU's TLB model, or a recorder in tests) when the
//!   engine finishes, so a caller that does not wait for completion keeps stale translations;
//! - `NV_PMC_BOOT_0`/`NV_PMC_BOOT_42` reporting the chip's architecture.
//!
//! The invalidate engine stays busy (`TRIGGER` reads 1, or `MMU_CTRL` reports no FIFO space and
//! not empty) for a configurable number of polls, or forever ([`TriggerMode::Never`]); reads can
//! be made to fail. The model also checks the protocol: a trigger written while the engine is
//! busy, an undecodable request, or an invalidate issued while PRAMIN writes are not yet flushed
//! by a read-back is counted in [`Bar0Counters`].
//!
//! It implements the core's [`Mmio`], so the core's [`nova_mm_core::hw::pramin::Pramin`] and
//! [`nova_mm_core::hw::tlb_regs::TlbRegs`] run against it unchanged.

use std::cell::RefCell;
use std::collections::BTreeMap;

use nova_mm_core::hw::hal::{
    architecture_number, invalidate, invalidate_pdb, mmu_ctrl, Hal, TlbRegisterSet, WindowRegister,
    NV_PMC_BOOT_0, NV_PMC_BOOT_42, PRAMIN_APERTURE, PRAMIN_SIZE,
};
use nova_mm_core::hw::mmio::{check_mmio, Mmio, MmioError};
use nova_mm_core::{
    AckMode, CacheLevel, Chip, InvalidateRequest, PdbAperture, PdbTarget, TlbError, TlbInvalidate,
    VaScope, VramAccess, VramAddress, VramError,
};

/// BAR0 size of the simulated GPU: 16 MiB, which holds every register used here.
pub const SIM_BAR0_SIZE: u64 = 16 << 20;

/// `EIO`, the code of injected and unmappable failures.
const EIO: i32 = 5;

/// How the invalidate engine's busy state ends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TriggerMode {
    /// Busy for this many status reads after a trigger (0 = done at once).
    ClearsAfter(u32),
    /// Never finishes: every poll sees the engine busy.
    Never,
}

/// Counters of the MMIO traffic seen by a [`SimBar0`].
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Bar0Counters {
    /// 32-bit (and narrower) reads.
    pub reads32: u64,
    /// 32-bit (and narrower) writes.
    pub writes32: u64,
    /// Native 64-bit reads.
    pub reads64: u64,
    /// Native 64-bit writes.
    pub writes64: u64,
    /// Writes through the PRAMIN aperture, any width.
    pub pramin_writes: u64,
    /// Reads through the PRAMIN aperture, any width.
    pub pramin_reads: u64,
    /// Writes to the window register.
    pub window_writes: u64,
    /// Writes to the window register that changed the window position.
    pub window_moves: u64,
    /// Invalidates triggered with a decodable request.
    pub invalidates: u64,
    /// Invalidates completed, i.e. forwarded to the TLB model (when the busy state ends: a
    /// caller that does not wait for completion keeps seeing stale translations).
    pub completed: u64,
    /// Invalidates triggered while PRAMIN writes were not flushed by a read-back.
    pub unflushed_invalidates: u64,
    /// Protocol errors: a trigger while busy, or an undecodable request (not forwarded).
    pub protocol_violations: u64,
    /// Forwarded invalidates that the TLB model failed.
    pub tlb_errors: u64,
}

/// The mutable state behind the `&self` MMIO interface.
#[derive(Debug)]
struct State<V, T> {
    vram: V,
    tlb: T,
    window_reg: u32,
    pdb: u32,
    upper_pdb: u32,
    invalidate_reg: u32,
    busy_left: u32,
    busy: bool,
    pramin_dirty: bool,
    trigger: TriggerMode,
    fail_reads: bool,
    counters: Bar0Counters,
    last_request: Option<InvalidateRequest>,
    /// The request being processed, forwarded when the engine finishes.
    pending: Option<InvalidateRequest>,
    /// Every other register: written values read back.
    scratch: BTreeMap<u32, u32>,
}

/// A simulated BAR0 over VRAM `V` and a TLB model `T`.
#[derive(Debug)]
pub struct SimBar0<V, T> {
    chip: Chip,
    window: WindowRegister,
    tlb_regs: TlbRegisterSet,
    native_64: bool,
    state: RefCell<State<V, T>>,
}

fn vram_to_mmio(e: VramError) -> MmioError {
    match e {
        VramError::DeviceGone => MmioError::DeviceGone,
        VramError::Backend(code) => MmioError::Io(code),
        VramError::OutOfRange { .. } | VramError::Misaligned { .. } => MmioError::Io(-EIO),
    }
}

impl<V: VramAccess, T: TlbInvalidate> SimBar0<V, T> {
    /// A BAR0 of `chip` over `vram` and `tlb`: window at 0, triggers that clear after 2 polls,
    /// 32-bit MMIO only.
    pub fn new(chip: Chip, vram: V, tlb: T) -> Self {
        let hal = Hal::new(chip);
        SimBar0 {
            chip,
            window: hal.window_register(),
            tlb_regs: hal.tlb_registers(),
            native_64: false,
            state: RefCell::new(State {
                vram,
                tlb,
                window_reg: 0,
                pdb: 0,
                upper_pdb: 0,
                invalidate_reg: 0,
                busy_left: 0,
                busy: false,
                pramin_dirty: false,
                trigger: TriggerMode::ClearsAfter(2),
                fail_reads: false,
                counters: Bar0Counters::default(),
                last_request: None,
                pending: None,
                scratch: BTreeMap::new(),
            }),
        }
    }

    /// Offers (or withdraws) native 64-bit MMIO.
    #[must_use]
    pub fn with_native_64(mut self, on: bool) -> Self {
        self.native_64 = on;
        self
    }

    /// Sets how triggers complete (applies from the next trigger; `Never` also freezes a
    /// pending one).
    pub fn set_trigger_mode(&self, mode: TriggerMode) {
        let mut s = self.state.borrow_mut();
        s.trigger = mode;
        if mode == TriggerMode::Never && s.busy_left > 0 {
            s.busy = true;
        }
    }

    /// Makes every read fail with `Io(-EIO)` (or stops doing so).
    pub fn set_fail_reads(&self, on: bool) {
        self.state.borrow_mut().fail_reads = on;
    }

    /// The simulated chip.
    pub fn chip(&self) -> Chip {
        self.chip
    }

    /// The counters.
    pub fn counters(&self) -> Bar0Counters {
        self.state.borrow().counters
    }

    /// Resets the counters.
    pub fn reset_counters(&self) {
        self.state.borrow_mut().counters = Bar0Counters::default();
    }

    /// The last invalidate request forwarded to the TLB model.
    pub fn last_request(&self) -> Option<InvalidateRequest> {
        self.state.borrow().last_request
    }

    /// The VRAM address the window currently shows, and its `TARGET`.
    pub fn window(&self) -> (u64, u32) {
        self.window.decode(self.state.borrow().window_reg)
    }

    /// Runs `f` on the VRAM (e.g. to check contents without MMIO).
    pub fn with_vram<R>(&self, f: impl FnOnce(&mut V) -> R) -> R {
        f(&mut self.state.borrow_mut().vram)
    }

    /// Runs `f` on the TLB model.
    pub fn with_tlb<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.state.borrow_mut().tlb)
    }

    /// Gives the VRAM and the TLB model back.
    pub fn into_parts(self) -> (V, T) {
        let s = self.state.into_inner();
        (s.vram, s.tlb)
    }

    /// The VRAM address behind BAR0 offset `offset` in the aperture, if it is one.
    fn pramin_addr(&self, s: &State<V, T>, offset: u32) -> Option<Result<VramAddress, MmioError>> {
        let inside = offset.checked_sub(PRAMIN_APERTURE)?;
        if u64::from(inside) >= PRAMIN_SIZE {
            return None;
        }
        let (base, target) = self.window.decode(s.window_reg);
        if target != 0 {
            // System-memory targets are not simulated.
            return Some(Err(MmioError::Io(-EIO)));
        }
        Some(
            base.checked_add(u64::from(inside))
                .map(VramAddress::new)
                .ok_or(MmioError::Io(-EIO)),
        )
    }

    fn status_read(&self, s: &mut State<V, T>) -> bool {
        let busy = s.busy;
        if s.busy && s.trigger != TriggerMode::Never {
            s.busy_left = s.busy_left.saturating_sub(1);
            if s.busy_left == 0 {
                s.busy = false;
                Self::complete(s);
            }
        }
        busy
    }

    /// Forwards the pending request to the TLB model.
    fn complete(s: &mut State<V, T>) {
        if let Some(req) = s.pending.take() {
            s.counters.completed += 1;
            if s.tlb.invalidate(&req).is_err() {
                s.counters.tlb_errors += 1;
            }
        }
    }

    fn register_read(&self, s: &mut State<V, T>, offset: u32) -> u32 {
        if offset == self.window.offset {
            return s.window_reg;
        }
        match offset {
            NV_PMC_BOOT_0 => {
                // Pascal and Volta identify through BOOT_0; later chips through BOOT_42.
                if matches!(self.chip, Chip::Pascal | Chip::Volta) {
                    (architecture_number(self.chip) << 24) | (2 << 20) | 0xA1
                } else {
                    0
                }
            }
            NV_PMC_BOOT_42 => {
                if matches!(self.chip, Chip::Pascal | Chip::Volta) {
                    0
                } else {
                    (architecture_number(self.chip) << 24) | (2 << 20)
                }
            }
            _ => match self.tlb_regs {
                TlbRegisterSet::VfAlias {
                    pdb,
                    upper_pdb,
                    invalidate: inv,
                } => {
                    if offset == inv {
                        let busy = self.status_read(s);
                        let v = s.invalidate_reg & !invalidate::TRIGGER;
                        if busy {
                            v | invalidate::TRIGGER
                        } else {
                            v
                        }
                    } else if offset == pdb {
                        s.pdb
                    } else if offset == upper_pdb {
                        s.upper_pdb
                    } else {
                        s.scratch.get(&offset).copied().unwrap_or(0)
                    }
                }
                TlbRegisterSet::HubPri {
                    pdb,
                    upper_pdb,
                    invalidate: inv,
                    mmu_ctrl: ctrl,
                } => {
                    if offset == ctrl {
                        if self.status_read(s) {
                            0
                        } else {
                            (8 << mmu_ctrl::PRI_FIFO_SPACE_SHIFT) | mmu_ctrl::PRI_FIFO_EMPTY
                        }
                    } else if offset == inv {
                        s.invalidate_reg & !invalidate::TRIGGER
                    } else if offset == pdb {
                        s.pdb
                    } else if offset == upper_pdb {
                        s.upper_pdb
                    } else {
                        s.scratch.get(&offset).copied().unwrap_or(0)
                    }
                }
            },
        }
    }

    fn register_write(&self, s: &mut State<V, T>, offset: u32, value: u32) {
        if offset == self.window.offset {
            let mask = self.window.base_mask() | if self.window.has_target { 3 << 24 } else { 0 };
            let v = value & mask;
            s.counters.window_writes += 1;
            if v != s.window_reg {
                s.counters.window_moves += 1;
            }
            s.window_reg = v;
            return;
        }
        let (pdb, upper_pdb, inv) = match self.tlb_regs {
            TlbRegisterSet::VfAlias {
                pdb,
                upper_pdb,
                invalidate,
            }
            | TlbRegisterSet::HubPri {
                pdb,
                upper_pdb,
                invalidate,
                ..
            } => (pdb, upper_pdb, invalidate),
        };
        if offset == pdb {
            s.pdb = value;
        } else if offset == upper_pdb {
            s.upper_pdb = value;
        } else if offset == inv {
            s.invalidate_reg = value;
            if value & invalidate::TRIGGER != 0 {
                self.trigger(s, value);
            }
        } else {
            s.scratch.insert(offset, value);
        }
    }

    fn trigger(&self, s: &mut State<V, T>, value: u32) {
        if s.busy {
            // The engine was not free: count it, and let the earlier request finish first.
            s.counters.protocol_violations += 1;
            Self::complete(s);
        }
        if s.pramin_dirty {
            s.counters.unflushed_invalidates += 1;
        }
        match decode_request(value, s.pdb, s.upper_pdb) {
            Some(req) => {
                s.counters.invalidates += 1;
                s.last_request = Some(req);
                s.pending = Some(req);
            }
            None => s.counters.protocol_violations += 1,
        }
        match s.trigger {
            TriggerMode::ClearsAfter(0) => {
                s.busy = false;
                s.busy_left = 0;
                Self::complete(s);
            }
            TriggerMode::ClearsAfter(n) => {
                s.busy = true;
                s.busy_left = n;
            }
            TriggerMode::Never => {
                s.busy = true;
                s.busy_left = 1;
            }
        }
    }

    fn check_read(&self, offset: u32, width: u8) -> Result<(), MmioError> {
        check_mmio(offset, width, SIM_BAR0_SIZE)?;
        if self.state.borrow().fail_reads {
            return Err(MmioError::Io(-EIO));
        }
        Ok(())
    }

    /// A PRAMIN read of `width` bytes (1, 2, 4, 8) at `offset`, or `None` when not in the aperture.
    fn pramin_read(&self, offset: u32, width: u8) -> Option<Result<u64, MmioError>> {
        let mut s = self.state.borrow_mut();
        let addr = match self.pramin_addr(&s, offset)? {
            Ok(a) => a,
            Err(e) => return Some(Err(e)),
        };
        s.counters.pramin_reads += 1;
        s.pramin_dirty = false;
        let r = match width {
            8 => s.vram.read64(addr),
            4 => s.vram.read32(addr).map(u64::from),
            _ => {
                let word = VramAddress::new(addr.raw() & !3);
                let shift = (addr.raw() & 3) * 8;
                let mask = if width == 1 { 0xFF } else { 0xFFFF };
                s.vram.read32(word).map(|w| (u64::from(w) >> shift) & mask)
            }
        };
        Some(r.map_err(vram_to_mmio))
    }

    fn pramin_write(&self, offset: u32, width: u8, value: u64) -> Option<Result<(), MmioError>> {
        let mut s = self.state.borrow_mut();
        let addr = match self.pramin_addr(&s, offset)? {
            Ok(a) => a,
            Err(e) => return Some(Err(e)),
        };
        s.counters.pramin_writes += 1;
        s.pramin_dirty = true;
        let r = match width {
            8 => s.vram.write64(addr, value),
            // Truncation is the point: a 32-bit write carries the low 32 bits.
            4 => s.vram.write32(addr, value as u32),
            _ => {
                let word = VramAddress::new(addr.raw() & !3);
                let shift = (addr.raw() & 3) * 8;
                let mask: u64 = if width == 1 { 0xFF } else { 0xFFFF };
                s.vram.read32(word).and_then(|w| {
                    let w = (u64::from(w) & !(mask << shift)) | ((value & mask) << shift);
                    s.vram.write32(word, w as u32)
                })
            }
        };
        Some(r.map_err(vram_to_mmio))
    }

    fn read_n(&self, offset: u32, width: u8) -> Result<u64, MmioError> {
        self.check_read(offset, width)?;
        {
            let mut s = self.state.borrow_mut();
            if width == 8 {
                s.counters.reads64 += 1;
            } else {
                s.counters.reads32 += 1;
            }
        }
        if let Some(r) = self.pramin_read(offset, width) {
            return r;
        }
        let mut s = self.state.borrow_mut();
        let word = self.register_read(&mut s, offset & !3);
        Ok(match width {
            1 => u64::from((word >> ((offset & 3) * 8)) & 0xFF),
            2 => u64::from((word >> ((offset & 2) * 8)) & 0xFFFF),
            _ => u64::from(word),
        })
    }

    fn write_n(&self, offset: u32, width: u8, value: u64) -> Result<(), MmioError> {
        check_mmio(offset, width, SIM_BAR0_SIZE)?;
        {
            let mut s = self.state.borrow_mut();
            if width == 8 {
                s.counters.writes64 += 1;
            } else {
                s.counters.writes32 += 1;
            }
        }
        if let Some(r) = self.pramin_write(offset, width, value) {
            return r;
        }
        if width != 4 {
            // Registers are written 32 bits at a time.
            return Err(MmioError::Unsupported { width });
        }
        let mut s = self.state.borrow_mut();
        self.register_write(&mut s, offset, value as u32);
        Ok(())
    }
}

/// Decodes an `INVALIDATE` value plus the PDB registers; `None` when a field is undecodable or
/// `ALL_VA` is clear (the simulated GPU has no VADDR registers).
fn decode_request(value: u32, pdb: u32, upper: u32) -> Option<InvalidateRequest> {
    if value & invalidate::ALL_VA == 0 {
        return None;
    }
    let ack = match (value >> invalidate::ACK_SHIFT) & invalidate::ACK_MASK {
        0 => AckMode::None,
        1 => AckMode::Globally,
        2 => AckMode::Intranode,
        _ => return None,
    };
    let cache_level = match (value >> invalidate::CACHE_LEVEL_SHIFT) & invalidate::CACHE_LEVEL_MASK
    {
        0 => CacheLevel::All,
        1 => CacheLevel::PteOnly,
        2 => CacheLevel::UpToPde0,
        3 => CacheLevel::UpToPde1,
        4 => CacheLevel::UpToPde2,
        5 => CacheLevel::UpToPde3,
        6 => CacheLevel::UpToPde4,
        _ => return None,
    };
    let target = if value & invalidate::ALL_PDB != 0 {
        PdbTarget::All
    } else {
        let lo = u64::from(pdb >> invalidate_pdb::ADDR_SHIFT);
        let hi = u64::from(upper & ((1 << invalidate_pdb::UPPER_BITS) - 1));
        PdbTarget::One {
            addr: (lo << 12) | (hi << 40),
            aperture: if pdb & invalidate_pdb::APERTURE_SYS != 0 {
                PdbAperture::Sysmem
            } else {
                PdbAperture::Vidmem
            },
        }
    };
    Some(InvalidateRequest {
        pdb: target,
        va: VaScope::All,
        hub_tlb_only: value & invalidate::HUBTLB_ONLY != 0,
        cache_level,
        ack,
    })
}

impl<V: VramAccess, T: TlbInvalidate> Mmio for SimBar0<V, T> {
    fn bar_size(&self) -> u64 {
        SIM_BAR0_SIZE
    }
    fn read32(&self, offset: u32) -> Result<u32, MmioError> {
        self.read_n(offset, 4).map(|v| v as u32)
    }
    fn write32(&self, offset: u32, value: u32) -> Result<(), MmioError> {
        self.write_n(offset, 4, value.into())
    }
    fn has_native_64(&self) -> bool {
        self.native_64
    }
    fn read64(&self, offset: u32) -> Result<u64, MmioError> {
        if !self.native_64 {
            check_mmio(offset, 8, SIM_BAR0_SIZE)?;
            let lo = self.read32(offset)?;
            let hi = self.read32(offset + 4)?;
            return Ok(u64::from(lo) | (u64::from(hi) << 32));
        }
        self.read_n(offset, 8)
    }
    fn write64(&self, offset: u32, value: u64) -> Result<(), MmioError> {
        if !self.native_64 {
            check_mmio(offset, 8, SIM_BAR0_SIZE)?;
            self.write32(offset, value as u32)?;
            return self.write32(offset + 4, (value >> 32) as u32);
        }
        self.write_n(offset, 8, value)
    }
    fn read8(&self, offset: u32) -> Result<u8, MmioError> {
        self.read_n(offset, 1).map(|v| v as u8)
    }
    fn read16(&self, offset: u32) -> Result<u16, MmioError> {
        self.read_n(offset, 2).map(|v| v as u16)
    }
    fn write8(&self, offset: u32, value: u8) -> Result<(), MmioError> {
        self.write_n(offset, 1, value.into())
    }
    fn write16(&self, offset: u32, value: u16) -> Result<(), MmioError> {
        self.write_n(offset, 2, value.into())
    }
}

/// A TLB model that records every request it receives, for tests of the register path.
#[derive(Clone, Debug, Default)]
pub struct RecordingTlb {
    /// Requests received, oldest first.
    pub requests: Vec<InvalidateRequest>,
    /// When set, every request fails with this error (after being recorded).
    pub fail_with: Option<TlbError>,
}

impl TlbInvalidate for RecordingTlb {
    fn invalidate(&mut self, req: &InvalidateRequest) -> Result<(), TlbError> {
        self.requests.push(*req);
        self.fail_with.map_or(Ok(()), Err)
    }
}
