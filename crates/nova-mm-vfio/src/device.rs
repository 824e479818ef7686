//! The VFIO device file: the seam between the backend's logic and the kernel.
//!
//! [`DeviceFd`] is everything the backend does with an open VFIO device (region info, `pread`,
//! `pwrite`, `mmap`); [`RealDevice`] implements it with `ioctl`s and opens the device through the
//! cdev + iommufd interface or the legacy container/group interface. Tests use a fake.

use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use rustix::ioctl::{ioctl, opcode, Ioctl, IoctlOutput, Opcode};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use vfio_bindings::bindings::vfio::{
    vfio_device_bind_iommufd, vfio_group_status, vfio_region_info, VFIO_TYPE1v2_IOMMU,
    VFIO_API_VERSION, VFIO_BASE, VFIO_GROUP_FLAGS_VIABLE, VFIO_TYPE,
};

use crate::error::VfioError;
use crate::region::{parse_region_info, required_argsz, RegionInfo};
use crate::sysfs::DeviceInfo;

/// A shared memory mapping of part of the device file; unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Takes ownership of a mapping made with `mmap`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the start of a live mapping of `len` bytes that nothing else unmaps.
    pub unsafe fn from_raw(ptr: NonNull<u8>, len: usize) -> Self {
        Mapping { ptr, len }
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, for a mapping that was made).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pointer to byte `at`, if an access of `width` bytes there stays inside.
    fn at(&self, at: usize, width: usize) -> Option<*mut u8> {
        (at.checked_add(width)? <= self.len).then(|| self.ptr.as_ptr().wrapping_add(at))
    }

    /// Volatile read of a `T` at byte `at` (aligned by the caller).
    pub(crate) fn read<T: Copy>(&self, at: usize) -> Option<T> {
        let p = self.at(at, std::mem::size_of::<T>())?;
        if p.align_offset(std::mem::align_of::<T>()) != 0 {
            return None;
        }
        // SAFETY: `p` is inside the live mapping (checked by `at`) and aligned for T; device
        // memory is accessed with a single volatile load of the exact width.
        Some(unsafe { std::ptr::read_volatile(p.cast::<T>()) })
    }

    /// Volatile write of a `T` at byte `at`.
    pub(crate) fn write<T: Copy>(&self, at: usize, value: T) -> Option<()> {
        let p = self.at(at, std::mem::size_of::<T>())?;
        if p.align_offset(std::mem::align_of::<T>()) != 0 {
            return None;
        }
        // SAFETY: as in `read`; the mapping is shared and writable (PROT_WRITE).
        unsafe { std::ptr::write_volatile(p.cast::<T>(), value) };
        Some(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this value owns (see `from_raw`); nothing can
        // use it after drop.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

/// What the backend does with an open VFIO device.
pub trait DeviceFd {
    /// Region information for `index` (`VFIO_DEVICE_GET_REGION_INFO`, with capabilities).
    ///
    /// # Errors
    ///
    /// The ioctl failed or the reply is malformed.
    fn region_info(&self, index: u32) -> Result<RegionInfo, VfioError>;

    /// `pread` at a device-file offset.
    ///
    /// # Errors
    ///
    /// The OS error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// `pwrite` at a device-file offset.
    ///
    /// # Errors
    ///
    /// The OS error.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;

    /// Maps `len` bytes at device-file `offset`, shared, read-write.
    ///
    /// # Errors
    ///
    /// The OS error (e.g. the area is not mmap-able).
    fn map(&self, offset: u64, len: usize) -> io::Result<Mapping>;
}

impl<D: DeviceFd + ?Sized> DeviceFd for std::sync::Arc<D> {
    fn region_info(&self, index: u32) -> Result<RegionInfo, VfioError> {
        (**self).region_info(index)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        (**self).write_at(buf, offset)
    }
    fn map(&self, offset: u64, len: usize) -> io::Result<Mapping> {
        (**self).map(offset, len)
    }
}

/// Which kernel interface opens the device.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Interface {
    /// The cdev + iommufd interface (`/dev/vfio/devices/vfioN`, `/dev/iommu`).
    Cdev,
    /// The legacy container/group interface (`/dev/vfio/vfio`, `/dev/vfio/<group>`).
    Legacy,
    /// The cdev interface when the kernel offers it for the device, else the legacy one.
    #[default]
    Auto,
}

/// An ioctl with an arbitrary argument word, returning the ioctl's value.
struct RawIoctl {
    op: Opcode,
    arg: *mut c_void,
}

// SAFETY: the opcode and argument are those of a VFIO ioctl whose argument is either a value
// or a pointer to a live, correctly sized structure the caller owns (see each use).
unsafe impl Ioctl for RawIoctl {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = true;
    fn opcode(&self) -> Opcode {
        self.op
    }
    fn as_ptr(&mut self) -> *mut c_void {
        self.arg
    }
    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: VFIO ioctls carry no size or direction.
const fn vfio_op(n: u32) -> Opcode {
    // VFIO_BASE + n < 256 for every ioctl used here.
    opcode::none(VFIO_TYPE, (VFIO_BASE + n) as u8)
}

const VFIO_GET_API_VERSION: Opcode = vfio_op(0);
const VFIO_CHECK_EXTENSION: Opcode = vfio_op(1);
const VFIO_SET_IOMMU: Opcode = vfio_op(2);
const VFIO_GROUP_GET_STATUS: Opcode = vfio_op(3);
const VFIO_GROUP_SET_CONTAINER: Opcode = vfio_op(4);
const VFIO_GROUP_GET_DEVICE_FD: Opcode = vfio_op(6);
const VFIO_DEVICE_GET_REGION_INFO: Opcode = vfio_op(8);
const VFIO_DEVICE_BIND_IOMMUFD: Opcode = vfio_op(18);

/// Runs a VFIO ioctl.
///
/// # Safety
///
/// `arg` must be what `op` expects: a value, or a pointer to a live structure of the right
/// type and size.
unsafe fn vfio_ioctl(fd: impl AsFd, op: Opcode, arg: *mut c_void) -> io::Result<IoctlOutput> {
    // SAFETY: forwarded from the caller.
    unsafe { ioctl(fd, RawIoctl { op, arg }) }.map_err(io::Error::from)
}

/// A VFIO device opened through the kernel, with the files that keep it usable.
#[derive(Debug)]
pub struct RealDevice {
    device: File,
    /// The iommufd or the container and group: closing them would detach the device.
    _keep: Vec<File>,
    interface: Interface,
}

fn open_rw(path: &Path) -> Result<File, VfioError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| VfioError::opening(path, e))
}

impl RealDevice {
    /// Opens the device `info` describes through `interface`.
    ///
    /// With [`Interface::Auto`], the cdev interface is tried first and the legacy one second.
    /// The cdev path binds the device to a fresh iommufd (`VFIO_DEVICE_BIND_IOMMUFD`), which is
    /// what grants access to its regions; DMA would additionally need an IOAS attached, which
    /// MMIO does not. The legacy path sets a type-1 v2 IOMMU on a new container.
    ///
    /// # Errors
    ///
    /// [`VfioError::NoCdev`], [`VfioError::PermissionDenied`], [`VfioError::GroupNotViable`],
    /// [`VfioError::ApiVersion`], [`VfioError::NoType1Iommu`] or [`VfioError::Io`].
    pub fn open(info: &DeviceInfo, interface: Interface) -> Result<Self, VfioError> {
        match (interface, &info.cdev) {
            (Interface::Cdev, None) => Err(VfioError::NoCdev(info.addr)),
            (Interface::Cdev, Some(cdev)) => Self::open_cdev(cdev),
            // Auto: the cdev first; if that fails (no /dev/iommu, an old kernel), the legacy
            // interface, reporting the cdev error when both fail.
            (Interface::Auto, Some(cdev)) => {
                Self::open_cdev(cdev).or_else(|e| Self::open_legacy(info).map_err(|_| e))
            }
            (Interface::Legacy | Interface::Auto, None) | (Interface::Legacy, Some(_)) => {
                Self::open_legacy(info)
            }
        }
    }

    fn open_cdev(cdev: &str) -> Result<Self, VfioError> {
        let device = open_rw(&PathBuf::from("/dev/vfio/devices").join(cdev))?;
        let iommufd = open_rw(Path::new("/dev/iommu"))?;
        let mut bind = vfio_device_bind_iommufd {
            argsz: std::mem::size_of::<vfio_device_bind_iommufd>() as u32,
            iommufd: iommufd.as_raw_fd(),
            ..Default::default()
        };
        // SAFETY: VFIO_DEVICE_BIND_IOMMUFD takes a pointer to vfio_device_bind_iommufd with
        // argsz set; `bind` lives across the call.
        unsafe {
            vfio_ioctl(
                &device,
                VFIO_DEVICE_BIND_IOMMUFD,
                (&raw mut bind).cast::<c_void>(),
            )
        }
        .map_err(|e| VfioError::io(format!("binding {cdev} to iommufd"), e))?;
        Ok(RealDevice {
            device,
            _keep: vec![iommufd],
            interface: Interface::Cdev,
        })
    }

    fn open_legacy(info: &DeviceInfo) -> Result<Self, VfioError> {
        let container = open_rw(Path::new("/dev/vfio/vfio"))?;
        // SAFETY: VFIO_GET_API_VERSION takes no argument.
        let version = unsafe { vfio_ioctl(&container, VFIO_GET_API_VERSION, std::ptr::null_mut()) }
            .map_err(|e| VfioError::io("VFIO_GET_API_VERSION", e))?;
        if u32::try_from(version).ok() != Some(VFIO_API_VERSION) {
            return Err(VfioError::ApiVersion(version));
        }
        // SAFETY: VFIO_CHECK_EXTENSION takes the extension number by value.
        let has = unsafe {
            vfio_ioctl(
                &container,
                VFIO_CHECK_EXTENSION,
                VFIO_TYPE1v2_IOMMU as usize as *mut c_void,
            )
        }
        .map_err(|e| VfioError::io("VFIO_CHECK_EXTENSION", e))?;
        if has != 1 && !info.noiommu {
            return Err(VfioError::NoType1Iommu);
        }
        let group_name = if info.noiommu {
            format!("noiommu-{}", info.iommu_group)
        } else {
            info.iommu_group.to_string()
        };
        let group = open_rw(&PathBuf::from("/dev/vfio").join(group_name))?;
        let mut status = vfio_group_status {
            argsz: std::mem::size_of::<vfio_group_status>() as u32,
            flags: 0,
        };
        // SAFETY: VFIO_GROUP_GET_STATUS takes a pointer to vfio_group_status with argsz set.
        unsafe {
            vfio_ioctl(
                &group,
                VFIO_GROUP_GET_STATUS,
                (&raw mut status).cast::<c_void>(),
            )
        }
        .map_err(|e| VfioError::io("VFIO_GROUP_GET_STATUS", e))?;
        if status.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(VfioError::GroupNotViable(info.iommu_group));
        }
        let mut container_fd = container.as_raw_fd();
        // SAFETY: VFIO_GROUP_SET_CONTAINER takes a pointer to the container's fd (an int).
        unsafe {
            vfio_ioctl(
                &group,
                VFIO_GROUP_SET_CONTAINER,
                (&raw mut container_fd).cast::<c_void>(),
            )
        }
        .map_err(|e| VfioError::io("VFIO_GROUP_SET_CONTAINER", e))?;
        let iommu = if info.noiommu { 8 } else { VFIO_TYPE1v2_IOMMU };
        // SAFETY: VFIO_SET_IOMMU takes the IOMMU type by value.
        unsafe { vfio_ioctl(&container, VFIO_SET_IOMMU, iommu as usize as *mut c_void) }
            .map_err(|e| VfioError::io("VFIO_SET_IOMMU", e))?;
        let mut name = info.addr.to_string().into_bytes();
        name.push(0);
        // SAFETY: VFIO_GROUP_GET_DEVICE_FD takes a NUL-terminated device name; `name` lives
        // across the call and the kernel only reads it.
        let fd = unsafe {
            vfio_ioctl(
                &group,
                VFIO_GROUP_GET_DEVICE_FD,
                name.as_mut_ptr().cast::<c_void>(),
            )
        }
        .map_err(|e| VfioError::io(format!("VFIO_GROUP_GET_DEVICE_FD {}", info.addr), e))?;
        // SAFETY: on success the ioctl returns a new file descriptor that nothing else owns.
        let device = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(RealDevice {
            device,
            _keep: vec![group, container],
            interface: Interface::Legacy,
        })
    }

    /// The interface that opened the device.
    #[must_use]
    pub fn interface(&self) -> Interface {
        self.interface
    }
}

impl DeviceFd for RealDevice {
    fn region_info(&self, index: u32) -> Result<RegionInfo, VfioError> {
        let head = std::mem::size_of::<vfio_region_info>();
        let mut buf = vec![0u64; head.div_ceil(8)];
        for _ in 0..2 {
            let bytes = buf.len() * 8;
            {
                // SAFETY: `buf` is u64-aligned and at least `bytes` long; viewing it as bytes
                // for the header fields is sound.
                let b =
                    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), bytes) };
                b[..4].copy_from_slice(&(bytes as u32).to_ne_bytes());
                b[8..12].copy_from_slice(&index.to_ne_bytes());
            }
            // SAFETY: VFIO_DEVICE_GET_REGION_INFO takes a pointer to a vfio_region_info of
            // `argsz` bytes; `buf` is that large, aligned, and lives across the call.
            unsafe {
                vfio_ioctl(
                    &self.device,
                    VFIO_DEVICE_GET_REGION_INFO,
                    buf.as_mut_ptr().cast::<c_void>(),
                )
            }
            .map_err(|e| VfioError::io(format!("VFIO_DEVICE_GET_REGION_INFO {index}"), e))?;
            // SAFETY: as above.
            let b = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), bytes) };
            let want = required_argsz(b).map_or(0, |a| a as usize);
            if want <= bytes {
                return parse_region_info(index, b);
            }
            buf = vec![0u64; want.div_ceil(8)];
        }
        Err(VfioError::BadRegionInfo {
            index,
            what: "argsz keeps growing",
        })
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.device.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.device.write_at(buf, offset)
    }

    fn map(&self, offset: u64, len: usize) -> io::Result<Mapping> {
        // SAFETY: a new shared mapping of the device file at a fresh address; it aliases no
        // Rust object, and `Mapping` unmaps it exactly once.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &self.device,
                offset,
            )
        }?;
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        // SAFETY: `ptr` is a live mapping of `len` bytes owned by nobody else.
        Ok(unsafe { Mapping::from_raw(ptr, len) })
    }
}
