//! Self-tests of the kernel glue (feature `selftest`): the errno mapping and the BAR adapter.
//!
//! The kernel module runs [`TESTS`] after the core's table
//! ([`nova_mm_core::selftest::all`]); `cargo xtask kernel-test` expects
//! `nova_mm_core::selftest::count() + TESTS.len()` passes. Same rules as the core's
//! self-tests: no panics, no allocation, a few hundred bytes of stack.

use core::cell::Cell;

use nova_mm_core::chip::UnknownName;
use nova_mm_core::hw::fb::FbError;
use nova_mm_core::hw::hal::UnknownChip;
use nova_mm_core::hw::mmio::{Mmio, MmioError};
use nova_mm_core::hw::pramin::PraminError;
use nova_mm_core::selftest::{SelfTest, SelfTestResult};
use nova_mm_core::{selftests, st_ensure, st_eq, TlbError, VramAddress, VramError};

use crate::{Errno, KernelBar, KernelMmio, ToErrno};

/// The self-tests of this crate, to run after the core's.
pub const TESTS: &[SelfTest] = selftests!(
    "kernel",
    [
        errno_round_trips,
        vram_errors,
        tlb_errors,
        mmio_errors,
        pramin_fb_and_chip_errors,
        buddy_and_vmm_errors,
        kernel_mmio_forwards,
        kernel_mmio_maps_errnos,
    ]
);

fn errno_round_trips() -> SelfTestResult {
    st_eq!(Errno::from_kernel(-22), Errno::EINVAL);
    st_eq!(Errno::EINVAL.to_kernel(), -22);
    st_eq!(Errno::EINVAL.code(), 22);
    st_eq!(Errno::from_kernel(0), Errno::EIO);
    st_eq!(Errno::from_kernel(i32::MIN), Errno::EIO);
    st_eq!(Errno::from_kernel(-5000), Errno::EIO);
    st_eq!(Errno::from_kernel(-4095).code(), 4095);
    st_eq!(Errno::new(0), None);
    st_eq!(Errno::new(4096), None);
    st_eq!(Errno::new(110), Some(Errno::ETIMEDOUT));
    Ok(())
}

fn vram_errors() -> SelfTestResult {
    let a = VramAddress::new(1);
    st_eq!(
        VramError::OutOfRange { addr: a, len: 8 }.to_errno(),
        Errno::ERANGE
    );
    st_eq!(
        VramError::Misaligned { addr: a, align: 8 }.to_errno(),
        Errno::EINVAL
    );
    st_eq!(VramError::DeviceGone.to_errno(), Errno::ENODEV);
    st_eq!(VramError::Backend(-110).to_errno(), Errno::ETIMEDOUT);
    st_eq!(VramError::Backend(7).to_errno(), Errno::EIO);
    Ok(())
}

fn tlb_errors() -> SelfTestResult {
    st_eq!(TlbError::Timeout.to_errno(), Errno::ETIMEDOUT);
    st_eq!(TlbError::DeviceGone.to_errno(), Errno::ENODEV);
    st_eq!(TlbError::Unsupported.to_errno(), Errno::EOPNOTSUPP);
    st_eq!(TlbError::Backend(-16).to_errno(), Errno::EBUSY);
    Ok(())
}

fn mmio_errors() -> SelfTestResult {
    st_eq!(
        MmioError::OutOfRange {
            offset: 0,
            width: 4
        }
        .to_errno(),
        Errno::ERANGE
    );
    st_eq!(
        MmioError::Misaligned {
            offset: 1,
            width: 4
        }
        .to_errno(),
        Errno::EINVAL
    );
    st_eq!(
        MmioError::Unsupported { width: 1 }.to_errno(),
        Errno::EOPNOTSUPP
    );
    st_eq!(MmioError::DeviceGone.to_errno(), Errno::ENODEV);
    st_eq!(MmioError::Io(-19).to_errno(), Errno::ENODEV);
    Ok(())
}

fn pramin_fb_and_chip_errors() -> SelfTestResult {
    st_eq!(PraminError::NoVram.to_errno(), Errno::ENODEV);
    st_eq!(
        PraminError::BeyondReach {
            vram_size: 1,
            reach: 0
        }
        .to_errno(),
        Errno::ERANGE
    );
    st_eq!(
        PraminError::BarTooSmall { bar_size: 0 }.to_errno(),
        Errno::ENXIO
    );
    st_eq!(FbError::NoUsableRegion.to_errno(), Errno::ENOMEM);
    st_eq!(
        UnknownChip {
            boot0: 0,
            boot42: 0
        }
        .to_errno(),
        Errno::ENODEV
    );
    st_eq!(UnknownName.to_errno(), Errno::EINVAL);
    Ok(())
}

/// The allocator and address-space errors, including the ones that wrap another error (the
/// wrapped error's errno passes through).
fn buddy_and_vmm_errors() -> SelfTestResult {
    use nova_mm_core::buddy::BuddyError;
    use nova_mm_core::vmm::{NoRoom, PtAllocError, VaError, VmmError};
    use nova_mm_core::walk::WalkError;
    st_eq!(BuddyError::NoSpace.to_errno(), Errno::ENOSPC);
    st_eq!(BuddyError::SinkFull.to_errno(), Errno::ENOMEM);
    st_eq!(BuddyError::NoMemory.to_errno(), Errno::ENOMEM);
    st_eq!(
        BuddyError::NotAllocated {
            offset: 0,
            order: 0
        }
        .to_errno(),
        Errno::EINVAL
    );
    st_eq!(PtAllocError::OutOfMemory.to_errno(), Errno::ENOMEM);
    st_eq!(PtAllocError::Backend(-5).to_errno(), Errno::EIO);
    st_eq!(NoRoom.to_errno(), Errno::ENOMEM);
    st_eq!(VaError::InUse.to_errno(), Errno::ENOSPC);
    st_eq!(VmmError::BadRange.to_errno(), Errno::EINVAL);
    st_eq!(
        VmmError::PtAlloc(PtAllocError::OutOfMemory).to_errno(),
        Errno::ENOMEM
    );
    st_eq!(VmmError::NoRoom(NoRoom).to_errno(), Errno::ENOMEM);
    st_eq!(VmmError::Va(VaError::InUse).to_errno(), Errno::ENOSPC);
    st_eq!(
        VmmError::Vram(VramError::Backend(-110)).to_errno(),
        Errno::ETIMEDOUT
    );
    st_eq!(
        VmmError::Tlb(TlbError::Timeout).to_errno(),
        Errno::ETIMEDOUT
    );
    st_eq!(
        VmmError::Walk(WalkError::Vram(VramError::DeviceGone)).to_errno(),
        Errno::ENODEV
    );
    Ok(())
}

/// A 16-word BAR; fails with `fail` when set.
struct FakeBar {
    regs: [Cell<u32>; 16],
    fail: Cell<Option<Errno>>,
}

impl FakeBar {
    fn new() -> Self {
        Self {
            regs: Default::default(),
            fail: Cell::new(None),
        }
    }
}

impl KernelBar for FakeBar {
    fn maxsize(&self) -> usize {
        64
    }
    fn try_read32(&self, offset: usize) -> Result<u32, Errno> {
        if let Some(e) = self.fail.get() {
            return Err(e);
        }
        self.regs
            .get(offset / 4)
            .map(Cell::get)
            .ok_or(Errno::EINVAL)
    }
    fn try_write32(&self, value: u32, offset: usize) -> Result<(), Errno> {
        if let Some(e) = self.fail.get() {
            return Err(e);
        }
        self.regs
            .get(offset / 4)
            .map(|r| r.set(value))
            .ok_or(Errno::EINVAL)
    }
}

fn kernel_mmio_forwards() -> SelfTestResult {
    let m = KernelMmio::new(FakeBar::new());
    st_eq!(m.bar_size(), 64);
    st_ensure!(m.write32(8, 0xCAFE_F00D).is_ok());
    st_eq!(m.read32(8), Ok(0xCAFE_F00D));
    // 64-bit accesses without native support: two 32-bit ones, low half first.
    st_ensure!(!m.has_native_64());
    st_ensure!(m.write64(16, 0x1122_3344_5566_7788).is_ok());
    st_eq!(m.bar().regs.get(4).map(Cell::get), Some(0x5566_7788));
    st_eq!(m.bar().regs.get(5).map(Cell::get), Some(0x1122_3344));
    st_eq!(m.read64(16), Ok(0x1122_3344_5566_7788));
    // Out of the BAR or misaligned: refused before the BAR is touched.
    st_ensure!(matches!(m.read32(64), Err(MmioError::OutOfRange { .. })));
    st_ensure!(matches!(m.read32(2), Err(MmioError::Misaligned { .. })));
    // 8-bit writes are not supported by a 32-bit-only BAR.
    st_ensure!(matches!(
        m.write8(0, 1),
        Err(MmioError::Unsupported { width: 1 })
    ));
    Ok(())
}

fn kernel_mmio_maps_errnos() -> SelfTestResult {
    let m = KernelMmio::new(FakeBar::new());
    m.bar().fail.set(Some(Errno::ENODEV));
    st_eq!(m.read32(0), Err(MmioError::DeviceGone));
    m.bar().fail.set(Some(Errno::EIO));
    st_eq!(m.write32(0, 1), Err(MmioError::Io(-5)));
    // And back: the errno a driver returns is the one the BAR reported.
    st_eq!(m.read32(0).err().map(|e| e.to_errno()), Some(Errno::EIO));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kernel_selftest_passes_on_the_host() {
        let s = nova_mm_core::selftest::run(super::TESTS, None, |t, msg| {
            panic!("{} failed: {msg}", t.name);
        });
        assert_eq!(s.failed, 0);
        assert_eq!(s.passed, super::TESTS.len());
    }
}
