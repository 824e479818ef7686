//! One simulated GPU shared by several users at once, and the simulated BAR1 as the core's
//! [`Bar1Io`].

use std::cell::RefCell;
use std::rc::Rc;

use nova_mm_core::tlb::{InvalidateRequest, TlbError, TlbInvalidate};
use nova_mm_core::vmm::{Bar1Error, Bar1Io};
use nova_mm_core::{VirtAddr, VramAccess, VramAddress, VramError};

use super::SimGpu;

/// A cloneable handle on one [`SimGpu`], usable as its VRAM, TLB and BAR1.
///
/// A rig needs the same GPU in several places: the BAR0 model's PRAMIN target and invalidate
/// target, and the test or demo that reads BAR1 and checks the reference MMU. Each clone is
/// the same GPU; [`SharedGpu::gpu`] reaches it directly.
#[derive(Clone, Debug)]
pub struct SharedGpu(pub Rc<RefCell<SimGpu>>);

impl SharedGpu {
    /// Shares `gpu`.
    #[must_use]
    pub fn new(gpu: SimGpu) -> Self {
        Self(Rc::new(RefCell::new(gpu)))
    }

    /// The GPU behind the handle.
    #[must_use]
    pub fn gpu(&self) -> &RefCell<SimGpu> {
        &self.0
    }
}

impl VramAccess for SharedGpu {
    fn size(&self) -> u64 {
        self.0.borrow().vram().size()
    }
    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
        self.0.borrow_mut().read32(addr)
    }
    fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError> {
        self.0.borrow_mut().write32(addr, value)
    }
    fn read64(&mut self, addr: VramAddress) -> Result<u64, VramError> {
        self.0.borrow_mut().read64(addr)
    }
    fn write64(&mut self, addr: VramAddress, value: u64) -> Result<(), VramError> {
        self.0.borrow_mut().write64(addr, value)
    }
    fn read_u64s(&mut self, addr: VramAddress, out: &mut [u64]) -> Result<(), VramError> {
        self.0.borrow_mut().read_u64s(addr, out)
    }
    fn write_u64s(&mut self, addr: VramAddress, words: &[u64]) -> Result<(), VramError> {
        self.0.borrow_mut().write_u64s(addr, words)
    }
    fn fill_u64(&mut self, addr: VramAddress, value: u64, count: u64) -> Result<(), VramError> {
        self.0.borrow_mut().fill_u64(addr, value, count)
    }
}

impl TlbInvalidate for SharedGpu {
    fn invalidate(&mut self, req: &InvalidateRequest) -> Result<(), TlbError> {
        self.0.borrow_mut().invalidate(req)
    }
}

/// A BAR1 access that faults (no translation, a permission fault, ...) reads as `-EFAULT`, as a
/// real BAR read of an unmapped address would be reported by a driver.
const EFAULT: i32 = -14;

/// The BAR1 aperture of a borrowed [`SimGpu`] as the core's [`Bar1Io`] (a wrapper rather than
/// an impl on `SimGpu`, whose `read32`/`write32` are its VRAM accesses).
#[derive(Debug)]
pub struct SimBar1<'a>(pub &'a mut SimGpu);

impl Bar1Io for SimBar1<'_> {
    fn read32(&mut self, va: VirtAddr) -> Result<u32, Bar1Error> {
        self.0.bar1_read32(va).map_err(|_| Bar1Error::Io(EFAULT))
    }
    fn write32(&mut self, va: VirtAddr, value: u32) -> Result<(), Bar1Error> {
        self.0
            .bar1_write32(va, value)
            .map_err(|_| Bar1Error::Io(EFAULT))
    }
    fn read64(&mut self, va: VirtAddr) -> Result<u64, Bar1Error> {
        self.0.bar1_read64(va).map_err(|_| Bar1Error::Io(EFAULT))
    }
    fn write64(&mut self, va: VirtAddr, value: u64) -> Result<(), Bar1Error> {
        self.0
            .bar1_write64(va, value)
            .map_err(|_| Bar1Error::Io(EFAULT))
    }
}

impl Bar1Io for SharedGpu {
    fn read32(&mut self, va: VirtAddr) -> Result<u32, Bar1Error> {
        SimBar1(&mut self.0.borrow_mut()).read32(va)
    }
    fn write32(&mut self, va: VirtAddr, value: u32) -> Result<(), Bar1Error> {
        SimBar1(&mut self.0.borrow_mut()).write32(va, value)
    }
    fn read64(&mut self, va: VirtAddr) -> Result<u64, Bar1Error> {
        SimBar1(&mut self.0.borrow_mut()).read64(va)
    }
    fn write64(&mut self, va: VirtAddr, value: u64) -> Result<(), Bar1Error> {
        SimBar1(&mut self.0.borrow_mut()).write64(va, value)
    }
}
