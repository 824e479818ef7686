//! An NVIDIA GPU opened through VFIO: checks, chip identification, BAR0 and BAR1.

use std::path::Path;

use nova_mm_core::hw::hal::{identify_chip, ChipId, NV_PMC_BOOT_0, NV_PMC_BOOT_42};
use nova_mm_core::hw::mmio::Mmio;

use crate::bar::VfioBar;
use crate::device::{DeviceFd, Interface, RealDevice};
use crate::error::VfioError;
use crate::pci::PciAddress;
use crate::sysfs::{inspect, RealSysFs, NVIDIA_VENDOR};

/// Smallest BAR0 nova-mm accepts: 16 MiB, the BAR0 size of every supported chip; it holds the
/// PRAMIN aperture (7 MiB) and the invalidate registers (0xB830B0).
pub const MIN_BAR0_SIZE: u64 = 16 << 20;

/// VFIO region indices for PCI devices (`VFIO_PCI_*_REGION_INDEX`).
const BAR0_INDEX: u32 = vfio_bindings::bindings::vfio::VFIO_PCI_BAR0_REGION_INDEX;
const BAR1_INDEX: u32 = vfio_bindings::bindings::vfio::VFIO_PCI_BAR1_REGION_INDEX;
const CONFIG_INDEX: u32 = vfio_bindings::bindings::vfio::VFIO_PCI_CONFIG_REGION_INDEX;

/// Options for opening a GPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OpenOptions {
    /// Which kernel interface to use.
    pub interface: Interface,
    /// mmap the BARs where allowed (else every access is a `pread`/`pwrite`).
    pub map_bars: bool,
    /// Also set up BAR1.
    pub bar1: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            interface: Interface::Auto,
            map_bars: true,
            bar1: true,
        }
    }
}

/// An NVIDIA GPU bound to vfio-pci.
#[derive(Debug)]
pub struct VfioGpu<D: DeviceFd + Clone> {
    addr: PciAddress,
    chip: ChipId,
    bar0: VfioBar<D>,
    bar1: Option<VfioBar<D>>,
}

impl VfioGpu<std::sync::Arc<RealDevice>> {
    /// Opens the GPU at `addr` (`DDDD:BB:DD.F`).
    ///
    /// # Errors
    ///
    /// Every failure has its own [`VfioError`]: a bad address, no such device, not an NVIDIA
    /// device, not bound to vfio-pci, no IOMMU group, permission denied, a non-viable group,
    /// an unknown chip, a BAR too small.
    pub fn open(addr: &str, options: OpenOptions) -> Result<Self, VfioError> {
        let addr: PciAddress = addr.parse()?;
        let info = inspect(&RealSysFs, Path::new("/sys/bus/pci/devices"), addr)?;
        let device = RealDevice::open(&info, options.interface)?;
        Self::from_device(addr, std::sync::Arc::new(device), options)
    }
}

impl<D: DeviceFd + Clone> VfioGpu<D> {
    /// Sets up a GPU from an open device: checks the vendor ID in config space, the BAR0 size,
    /// identifies the chip from `NV_PMC_BOOT_0`/`NV_PMC_BOOT_42`, and maps the BARs.
    ///
    /// # Errors
    ///
    /// [`VfioError::NotNvidia`], [`VfioError::BarTooSmall`], [`VfioError::UnknownChip`], or
    /// region and I/O errors.
    pub fn from_device(
        addr: PciAddress,
        device: D,
        options: OpenOptions,
    ) -> Result<Self, VfioError> {
        let config = device.region_info(CONFIG_INDEX)?;
        let mut vendor = [0u8; 2];
        match device.read_at(&mut vendor, config.offset) {
            Ok(2) => {}
            Ok(_) => {
                return Err(VfioError::io(
                    "reading the PCI vendor ID",
                    std::io::ErrorKind::UnexpectedEof.into(),
                ))
            }
            Err(e) => return Err(VfioError::io("reading the PCI vendor ID", e)),
        }
        let vendor = u16::from_le_bytes(vendor);
        if vendor != NVIDIA_VENDOR {
            return Err(VfioError::NotNvidia { addr, vendor });
        }
        let info0 = device.region_info(BAR0_INDEX)?;
        if info0.size < MIN_BAR0_SIZE {
            return Err(VfioError::BarTooSmall {
                bar: 0,
                size: info0.size,
                need: MIN_BAR0_SIZE,
            });
        }
        let bar0 = VfioBar::new(device.clone(), info0, options.map_bars)?;
        let read = |off| {
            bar0.read32(off)
                .map_err(|e| VfioError::io("reading the chip ID", std::io::Error::other(e)))
        };
        let chip = identify_chip(read(NV_PMC_BOOT_0)?, read(NV_PMC_BOOT_42)?)?;
        let bar1 = if options.bar1 {
            let info1 = device.region_info(BAR1_INDEX)?;
            (info1.size > 0)
                .then(|| VfioBar::new(device.clone(), info1, options.map_bars))
                .transpose()?
        } else {
            None
        };
        Ok(VfioGpu {
            addr,
            chip,
            bar0,
            bar1,
        })
    }

    /// The PCI address.
    #[must_use]
    pub fn addr(&self) -> PciAddress {
        self.addr
    }

    /// The chip, as identified from the boot registers.
    #[must_use]
    pub fn chip(&self) -> ChipId {
        self.chip
    }

    /// BAR0, the register BAR: give it to `Pramin` and `TlbRegs`.
    #[must_use]
    pub fn bar0(&self) -> &VfioBar<D> {
        &self.bar0
    }

    /// BAR1, the CPU window onto the BAR1 virtual address space; its size is the PCI resource
    /// size (review point 15), never a constant.
    #[must_use]
    pub fn bar1(&self) -> Option<&VfioBar<D>> {
        self.bar1.as_ref()
    }
}
