//! The two back ends the address-space tests run over.
//!
//! - [`Backend::Direct`]: the VMM writes the simulated VRAM and invalidates the simulated TLB
//!   directly.
//! - [`Backend::Regs`]: the VMM goes through the core's hardware layer, as on a real GPU: VRAM
//!   through `hw::Pramin` (the PRAMIN aperture and window register of a [`SimBar0`]), TLB
//!   invalidates through `hw::TlbRegs` (the invalidate registers of that BAR0, polled with a fake
//!   clock). The BAR0 sits over the same [`SimGpu`] the test's oracle reads: its PRAMIN aperture
//!   is that GPU's VRAM, and a completed invalidate is forwarded to that GPU's TLB model, so the
//!   staleness checks through [`SimGpu::parts`] see exactly what the registers invalidated.

use std::cell::{RefCell, RefMut};
use std::rc::Rc;

use nova_mm_core::hw::mmio::{Mmio, MmioError};
use nova_mm_core::hw::pramin::{Pramin, PraminReadBack};
use nova_mm_core::hw::tlb_regs::{Clock, TlbRegs};
use nova_mm_core::{Chip, TlbError, TlbInvalidate, VramAccess};
use nova_mm_sim::bar0::{Bar0Counters, SimBar0, TriggerMode};
use nova_mm_sim::SimGpu;

/// Which path the VMM's VRAM accesses and TLB invalidates take.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    /// Straight to the simulated VRAM and TLB.
    Direct,
    /// Through `hw::Pramin` and `hw::TlbRegs` over a register-level [`SimBar0`].
    Regs {
        /// Native 64-bit MMIO offered by the BAR (PRAMIN then writes one 64-bit word at once).
        mmio64: bool,
    },
}

impl Backend {
    /// Both back ends (the register path with 32-bit MMIO, as the kernel has it).
    pub const BOTH: [Backend; 2] = [Backend::Direct, Backend::Regs { mmio64: false }];
}

/// A handle on the shared simulated GPU, as the BAR0 model's VRAM and TLB.
pub use nova_mm_sim::SharedGpu as GpuHandle;

/// The simulated BAR0 of a rig.
pub type Bar0 = SimBar0<GpuHandle, GpuHandle>;

/// A shared handle on the BAR0, so `Pramin`, `TlbRegs` and its flush all use one BAR.
#[derive(Clone, Debug)]
pub struct BarHandle(pub Rc<Bar0>);

impl Mmio for BarHandle {
    fn bar_size(&self) -> u64 {
        self.0.bar_size()
    }
    fn read32(&self, o: u32) -> Result<u32, MmioError> {
        self.0.read32(o)
    }
    fn write32(&self, o: u32, v: u32) -> Result<(), MmioError> {
        self.0.write32(o, v)
    }
    fn has_native_64(&self) -> bool {
        self.0.has_native_64()
    }
    fn read64(&self, o: u32) -> Result<u64, MmioError> {
        self.0.read64(o)
    }
    fn write64(&self, o: u32, v: u64) -> Result<(), MmioError> {
        self.0.write64(o, v)
    }
    fn read8(&self, o: u32) -> Result<u8, MmioError> {
        self.0.read8(o)
    }
    fn read16(&self, o: u32) -> Result<u16, MmioError> {
        self.0.read16(o)
    }
    fn write8(&self, o: u32, v: u8) -> Result<(), MmioError> {
        self.0.write8(o, v)
    }
    fn write16(&self, o: u32, v: u16) -> Result<(), MmioError> {
        self.0.write16(o, v)
    }
}

/// A clock that advances only by the delays asked of it, so timeouts are deterministic and
/// instant.
#[derive(Debug, Default)]
pub struct FakeClock(pub u64);

impl Clock for FakeClock {
    fn now_ns(&mut self) -> u64 {
        self.0
    }
    fn delay_ns(&mut self, ns: u64) {
        self.0 += ns.max(1);
    }
}

/// Poll timeout of the register path: 200 polls of 1 µs (fake time).
const TIMEOUT_NS: u64 = 200_000;

/// The register path's hardware layer.
#[derive(Debug)]
pub struct RegPath {
    /// The simulated BAR0 (counters, trigger mode).
    pub bar0: Rc<Bar0>,
    /// VRAM access through the PRAMIN window.
    pub pramin: Pramin<BarHandle>,
    /// TLB invalidation through the registers, flushing PRAMIN writes by a read-back first.
    pub tlb: TlbRegs<BarHandle, FakeClock, PraminReadBack<BarHandle>>,
}

/// A simulated GPU and the path the VMM takes to it.
#[derive(Debug)]
pub struct Rig {
    /// The GPU the oracle reads (reference MMU, TLB model).
    pub gpu: Rc<RefCell<SimGpu>>,
    /// `Some` on the register path.
    pub regs: Option<RegPath>,
    /// The back end.
    pub backend: Backend,
}

impl Rig {
    /// A `chip` with `vram` bytes of simulated VRAM, reached through `backend`.
    pub fn new(backend: Backend, chip: Chip, vram: u64) -> Self {
        let gpu = Rc::new(RefCell::new(SimGpu::new(chip, vram).unwrap()));
        let regs = match backend {
            Backend::Direct => None,
            Backend::Regs { mmio64 } => {
                let bar0 = Rc::new(
                    SimBar0::new(chip, GpuHandle(gpu.clone()), GpuHandle(gpu.clone()))
                        .with_native_64(mmio64),
                );
                let h = BarHandle(bar0.clone());
                let pramin = Pramin::new(h.clone(), chip, vram).unwrap();
                assert_eq!(pramin.uses_64bit(), mmio64);
                let tlb = TlbRegs::new(h.clone(), chip, FakeClock(0), PraminReadBack::new(h))
                    .with_timeout_ns(TIMEOUT_NS)
                    .with_poll_interval_ns(1000);
                Some(RegPath { bar0, pramin, tlb })
            }
        };
        Rig { gpu, regs, backend }
    }

    /// The simulated GPU, for the oracle (do not hold it across [`Rig::run`]).
    pub fn gpu(&self) -> RefMut<'_, SimGpu> {
        self.gpu.borrow_mut()
    }

    /// Runs `f` with the VRAM access and TLB invalidation of the back end.
    pub fn run<R>(
        &mut self,
        f: impl FnOnce(&mut dyn VramAccess, &mut dyn TlbInvalidate) -> R,
    ) -> R {
        match &mut self.regs {
            None => {
                let mut g = self.gpu.borrow_mut();
                let (v, t) = g.parts();
                f(v, t)
            }
            Some(r) => f(&mut r.pramin, &mut r.tlb),
        }
    }

    /// Makes the next TLB invalidate fail: the TLB model fails it on the direct path; on the
    /// register path the engine never finishes, so `TlbRegs` times out.
    pub fn fail_next_invalidate(&mut self) {
        match &self.regs {
            None => self
                .gpu
                .borrow_mut()
                .tlb_mut()
                .fail_invalidate(Some((1, TlbError::Timeout))),
            Some(r) => r.bar0.set_trigger_mode(TriggerMode::Never),
        }
    }

    /// Undoes [`Rig::fail_next_invalidate`] (on the register path, the engine finishes again).
    pub fn restore_invalidate(&mut self) {
        match &self.regs {
            None => self.gpu.borrow_mut().tlb_mut().fail_invalidate(None),
            Some(r) => r.bar0.set_trigger_mode(TriggerMode::ClearsAfter(2)),
        }
    }

    /// The BAR0 counters (register path only).
    pub fn bar0_counters(&self) -> Option<Bar0Counters> {
        self.regs.as_ref().map(|r| r.bar0.counters())
    }

    /// Checks the register protocol was kept: every invalidate saw flushed PRAMIN writes, no
    /// trigger while busy, no undecodable request.
    pub fn assert_protocol(&self) {
        if let Some(c) = self.bar0_counters() {
            assert_eq!(c.unflushed_invalidates, 0, "{c:?}");
            assert_eq!(c.protocol_violations, 0, "{c:?}");
        }
    }
}
