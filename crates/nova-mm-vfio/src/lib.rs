//! `nova-mm-vfio`: nova-mm on an NVIDIA GPU bound to `vfio-pci`, from Linux userspace.
//!
//! [`VfioGpu::open`] checks the device in sysfs (exists, vendor 0x10de, bound to vfio-pci, has
//! an IOMMU group), opens it through the VFIO cdev + iommufd interface
//! (`/dev/vfio/devices/vfioN`) or the legacy container/group interface, reads the region
//! information, maps BAR0 (and BAR1) honouring sparse-mmap areas with `pread`/`pwrite` as the
//! fallback, and identifies the chip from `NV_PMC_BOOT_0`/`NV_PMC_BOOT_42`. BAR0 implements the
//! core's [`Mmio`](nova_mm_core::hw::mmio::Mmio), so the core's PRAMIN and TLB code run on it:
//!
//! ```no_run
//! use nova_mm_core::hw::pramin::{Pramin, PraminReadBack};
//! use nova_mm_vfio::{OpenOptions, VfioGpu};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let gpu = VfioGpu::open("0000:01:00.0", OpenOptions::default())?;
//! let mut pramin = Pramin::new(gpu.bar0(), gpu.chip().chip, 1 << 30)?;
//! # let _ = (&mut pramin, PraminReadBack::new(gpu.bar0()));
//! # Ok(()) }
//! ```
//!
//! The kernel ABI comes from `vfio-bindings` (structures and constants) and `rustix` (ioctl,
//! mmap); the ioctl layer sits behind [`DeviceFd`] and sysfs behind [`sysfs::SysFs`], so the
//! logic is tested without hardware. Set `NOVA_MM_VFIO_DEVICE=DDDD:BB:DD.F` to run the hardware
//! test. [`StdClock`] is the host's monotonic clock for the core's TLB-invalidate polls.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bar;
pub mod clock;
pub mod device;
pub mod error;
pub mod gpu;
pub mod pci;
pub mod region;
pub mod sysfs;

pub use bar::{BarStats, VfioBar};
pub use clock::StdClock;
pub use device::{DeviceFd, Interface, Mapping, RealDevice};
pub use error::VfioError;
pub use gpu::{OpenOptions, VfioGpu, MIN_BAR0_SIZE};
pub use pci::PciAddress;
pub use region::{MmapArea, RegionInfo};

#[cfg(test)]
mod tests;
