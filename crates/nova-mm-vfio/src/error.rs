//! Errors of the VFIO backend, each with a message that says what to do.

use std::io;
use std::path::PathBuf;

use nova_mm_core::hw::hal::UnknownChip;

use crate::pci::PciAddress;

/// Why a GPU could not be opened or used through VFIO.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    /// The string is not a PCI address.
    #[error("invalid PCI address {0:?}: expected DDDD:BB:DD.F")]
    BadAddress(String),
    /// No such PCI device in sysfs.
    #[error("no PCI device {0} (see lspci -D)")]
    NoSuchDevice(PciAddress),
    /// The device is bound to another driver, or to none.
    #[error("{addr} is bound to {driver}, not vfio-pci: bind it with driverctl or echo vfio-pci > driver_override")]
    NotBoundToVfio {
        /// The device.
        addr: PciAddress,
        /// The current driver, or "no driver".
        driver: String,
    },
    /// Opening a VFIO node was refused.
    #[error("permission denied opening {}: run as root or grant access to the VFIO device nodes", path.display())]
    PermissionDenied {
        /// The node.
        path: PathBuf,
    },
    /// The device has no IOMMU group.
    #[error("{0} has no IOMMU group: enable the IOMMU (intel_iommu=on / amd_iommu=on)")]
    NoIommuGroup(PciAddress),
    /// Another device in the group is not bound to vfio-pci.
    #[error("IOMMU group {0} is not viable: bind every device in the group to vfio-pci")]
    GroupNotViable(u32),
    /// The kernel exposes no VFIO character device for the device.
    #[error("{0} has no VFIO character device (kernel without CONFIG_VFIO_DEVICE_CDEV); use the legacy group interface")]
    NoCdev(PciAddress),
    /// The vendor ID is not NVIDIA's.
    #[error("{addr} is not an NVIDIA GPU (vendor {vendor:#06x}, expected 0x10de)")]
    NotNvidia {
        /// The device.
        addr: PciAddress,
        /// The vendor ID read.
        vendor: u16,
    },
    /// The chip ID registers do not name a supported architecture.
    #[error("{0}")]
    UnknownChip(#[from] UnknownChip),
    /// A BAR is smaller than the registers nova-mm uses.
    #[error("BAR{bar} is {size:#x} bytes, nova-mm needs at least {need:#x}")]
    BarTooSmall {
        /// The BAR index.
        bar: u32,
        /// Its size.
        size: u64,
        /// The minimum.
        need: u64,
    },
    /// The VFIO container reports an API version other than `VFIO_API_VERSION`.
    #[error("unsupported VFIO API version {0}")]
    ApiVersion(i32),
    /// The container lacks the type-1 v2 IOMMU.
    #[error("the VFIO container does not support the type-1 v2 IOMMU")]
    NoType1Iommu,
    /// Region information from the kernel is malformed.
    #[error("malformed VFIO region info for region {index}: {what}")]
    BadRegionInfo {
        /// The region index.
        index: u32,
        /// What is wrong.
        what: &'static str,
    },
    /// Any other system-call failure, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl VfioError {
    /// An I/O error while `context`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        VfioError::Io {
            context: context.into(),
            source,
        }
    }

    /// An error opening `path`: permission problems get their own variant.
    pub fn opening(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            io::ErrorKind::PermissionDenied => VfioError::PermissionDenied { path },
            _ => VfioError::io(format!("opening {}", path.display()), source),
        }
    }
}
