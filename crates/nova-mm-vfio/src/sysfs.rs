//! What sysfs says about a PCI device: vendor, driver, IOMMU group, VFIO character device.
//!
//! Behind the [`SysFs`] seam so the checks are tested with a fake tree.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::VfioError;
use crate::pci::PciAddress;

/// NVIDIA's PCI vendor ID.
pub const NVIDIA_VENDOR: u16 = 0x10de;

/// The file-system operations the sysfs checks need.
pub trait SysFs {
    /// Reads a whole file.
    ///
    /// # Errors
    ///
    /// The OS error.
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// Reads a symbolic link.
    ///
    /// # Errors
    ///
    /// The OS error.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// Names of the entries of a directory.
    ///
    /// # Errors
    ///
    /// The OS error.
    fn read_dir_names(&self, path: &Path) -> io::Result<Vec<String>>;
}

/// The real `/sys`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealSysFs;

impl SysFs for RealSysFs {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }
    fn read_dir_names(&self, path: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }
}

/// A PCI device as sysfs describes it, already checked to be an NVIDIA device bound to
/// vfio-pci with an IOMMU group.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeviceInfo {
    /// The address.
    pub addr: PciAddress,
    /// PCI vendor ID (0x10de).
    pub vendor: u16,
    /// PCI device ID.
    pub device: u16,
    /// IOMMU group number (`/dev/vfio/<group>`).
    pub iommu_group: u32,
    /// The group is a no-IOMMU group (`/dev/vfio/noiommu-<group>`).
    pub noiommu: bool,
    /// The VFIO character device name (`vfioN` under `/dev/vfio/devices/`), if the kernel has
    /// `CONFIG_VFIO_DEVICE_CDEV`.
    pub cdev: Option<String>,
}

fn hex_u16(s: &str) -> Option<u16> {
    u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

fn last_component(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Checks the device at `addr` under `root` (normally `/sys/bus/pci/devices`).
///
/// # Errors
///
/// [`VfioError::NoSuchDevice`], [`VfioError::NotNvidia`], [`VfioError::NotBoundToVfio`],
/// [`VfioError::NoIommuGroup`], or [`VfioError::Io`] for unreadable attributes.
pub fn inspect(fs: &dyn SysFs, root: &Path, addr: PciAddress) -> Result<DeviceInfo, VfioError> {
    let dir = root.join(addr.to_string());
    let vendor_s = match fs.read_to_string(&dir.join("vendor")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(VfioError::NoSuchDevice(addr)),
        Err(e) => {
            return Err(VfioError::io(
                format!("reading {}/vendor", dir.display()),
                e,
            ))
        }
    };
    let bad = |what: &str| {
        VfioError::io(
            format!("parsing {}/{what}", dir.display()),
            io::Error::new(io::ErrorKind::InvalidData, "not a hexadecimal ID"),
        )
    };
    let vendor = hex_u16(&vendor_s).ok_or_else(|| bad("vendor"))?;
    if vendor != NVIDIA_VENDOR {
        return Err(VfioError::NotNvidia { addr, vendor });
    }
    let device = fs
        .read_to_string(&dir.join("device"))
        .ok()
        .and_then(|s| hex_u16(&s))
        .ok_or_else(|| bad("device"))?;
    let driver = match fs.read_link(&dir.join("driver")) {
        Ok(p) => last_component(&p).unwrap_or_default(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => "no driver".to_owned(),
        Err(e) => {
            return Err(VfioError::io(
                format!("reading {}/driver", dir.display()),
                e,
            ))
        }
    };
    if driver != "vfio-pci" {
        return Err(VfioError::NotBoundToVfio { addr, driver });
    }
    let group_link = fs
        .read_link(&dir.join("iommu_group"))
        .map_err(|_| VfioError::NoIommuGroup(addr))?;
    let iommu_group = last_component(&group_link)
        .and_then(|g| g.parse::<u32>().ok())
        .ok_or(VfioError::NoIommuGroup(addr))?;
    // A no-IOMMU group names its device node noiommu-<group>; sysfs shows it in the group's
    // `name` attribute as "vfio-noiommu".
    let noiommu = fs
        .read_to_string(&dir.join("iommu_group").join("name"))
        .map(|n| n.trim() == "vfio-noiommu")
        .unwrap_or(false);
    let cdev = fs
        .read_dir_names(&dir.join("vfio-dev"))
        .ok()
        .and_then(|names| names.into_iter().find(|n| n.starts_with("vfio")));
    Ok(DeviceInfo {
        addr,
        vendor,
        device,
        iommu_group,
        noiommu,
        cdev,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A fake sysfs: files and links by path.
    #[derive(Default)]
    pub(crate) struct FakeFs {
        pub files: BTreeMap<PathBuf, String>,
        pub links: BTreeMap<PathBuf, PathBuf>,
        pub dirs: BTreeMap<PathBuf, Vec<String>>,
    }

    impl SysFs for FakeFs {
        fn read_to_string(&self, path: &Path) -> io::Result<String> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| io::ErrorKind::NotFound.into())
        }
        fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
            self.links
                .get(path)
                .cloned()
                .ok_or_else(|| io::ErrorKind::NotFound.into())
        }
        fn read_dir_names(&self, path: &Path) -> io::Result<Vec<String>> {
            self.dirs
                .get(path)
                .cloned()
                .ok_or_else(|| io::ErrorKind::NotFound.into())
        }
    }

    pub(crate) fn gpu_fs(vendor: &str, driver: Option<&str>, group: bool) -> FakeFs {
        let d = PathBuf::from("/sys/bus/pci/devices/0000:01:00.0");
        let mut fs = FakeFs::default();
        fs.files.insert(d.join("vendor"), format!("{vendor}\n"));
        fs.files.insert(d.join("device"), "0x2684\n".into());
        if let Some(drv) = driver {
            fs.links.insert(
                d.join("driver"),
                PathBuf::from(format!("../../../bus/pci/drivers/{drv}")),
            );
        }
        if group {
            fs.links.insert(
                d.join("iommu_group"),
                PathBuf::from("../../../kernel/iommu_groups/17"),
            );
        }
        fs.dirs.insert(d.join("vfio-dev"), vec!["vfio3".into()]);
        fs
    }

    fn addr() -> PciAddress {
        "0000:01:00.0".parse().unwrap()
    }

    const ROOT: &str = "/sys/bus/pci/devices";

    #[test]
    fn a_good_device() {
        let fs = gpu_fs("0x10de", Some("vfio-pci"), true);
        let info = inspect(&fs, Path::new(ROOT), addr()).unwrap();
        assert_eq!(info.iommu_group, 17);
        assert_eq!(info.device, 0x2684);
        assert_eq!(info.cdev.as_deref(), Some("vfio3"));
        assert!(!info.noiommu);
    }

    #[test]
    fn each_failure_has_its_error() {
        let other: PciAddress = "0000:02:00.0".parse().unwrap();
        let fs = gpu_fs("0x10de", Some("vfio-pci"), true);
        assert!(
            matches!(inspect(&fs, Path::new(ROOT), other), Err(VfioError::NoSuchDevice(a)) if a == other)
        );
        let fs = gpu_fs("0x8086", Some("vfio-pci"), true);
        assert!(matches!(
            inspect(&fs, Path::new(ROOT), addr()),
            Err(VfioError::NotNvidia { vendor: 0x8086, .. })
        ));
        let fs = gpu_fs("0x10de", Some("nouveau"), true);
        let e = inspect(&fs, Path::new(ROOT), addr()).unwrap_err();
        assert!(matches!(&e, VfioError::NotBoundToVfio { driver, .. } if driver == "nouveau"));
        assert!(e.to_string().contains("not vfio-pci"));
        let fs = gpu_fs("0x10de", None, true);
        assert!(matches!(
            inspect(&fs, Path::new(ROOT), addr()),
            Err(VfioError::NotBoundToVfio { driver, .. }) if driver == "no driver"
        ));
        let fs = gpu_fs("0x10de", Some("vfio-pci"), false);
        assert!(matches!(
            inspect(&fs, Path::new(ROOT), addr()),
            Err(VfioError::NoIommuGroup(_))
        ));
        let fs = gpu_fs("garbage", Some("vfio-pci"), true);
        assert!(matches!(
            inspect(&fs, Path::new(ROOT), addr()),
            Err(VfioError::Io { .. })
        ));
    }
}
