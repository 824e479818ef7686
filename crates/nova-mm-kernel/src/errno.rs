//! Kernel errnos and the mapping of every core error to one.

use nova_mm_core::chip::UnknownName;
use nova_mm_core::hw::fb::FbError;
use nova_mm_core::hw::hal::UnknownChip;
use nova_mm_core::hw::mmio::MmioError;
use nova_mm_core::hw::pramin::PraminError;
use nova_mm_core::{TlbError, VramError};

/// A Linux errno, stored positive (`EINVAL` = 22); the kernel returns it negated
/// ([`Errno::to_kernel`]), as `kernel::error::Error::to_errno` does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Errno(i32);

impl Errno {
    /// I/O error.
    pub const EIO: Errno = Errno(5);
    /// No such device or address.
    pub const ENXIO: Errno = Errno(6);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(12);
    /// Bad address.
    pub const EFAULT: Errno = Errno(14);
    /// Device or resource busy.
    pub const EBUSY: Errno = Errno(16);
    /// No such device.
    pub const ENODEV: Errno = Errno(19);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(22);
    /// No space left on device.
    pub const ENOSPC: Errno = Errno(28);
    /// Result out of range.
    pub const ERANGE: Errno = Errno(34);
    /// Operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(95);
    /// Connection timed out (what `read_poll_timeout` returns).
    pub const ETIMEDOUT: Errno = Errno(110);

    /// Largest errno value the kernel uses (`MAX_ERRNO`).
    pub const MAX: i32 = 4095;

    /// The errno `code` (positive), or `None` outside `1..=4095`.
    #[must_use]
    pub const fn new(code: i32) -> Option<Errno> {
        if code >= 1 && code <= Self::MAX {
            Some(Errno(code))
        } else {
            None
        }
    }

    /// From a kernel return value (`-code`); anything that is not a valid negative errno is
    /// reported as `EIO`.
    #[must_use]
    pub const fn from_kernel(ret: i32) -> Errno {
        match ret.checked_neg() {
            Some(code) => match Errno::new(code) {
                Some(e) => e,
                None => Errno::EIO,
            },
            None => Errno::EIO,
        }
    }

    /// The positive code.
    #[must_use]
    pub const fn code(self) -> i32 {
        self.0
    }

    /// The negative value a kernel function returns.
    #[must_use]
    pub const fn to_kernel(self) -> i32 {
        // `self.0` is in 1..=4095, so negation cannot overflow.
        0i32.wrapping_sub(self.0)
    }
}

/// Maps an error to the errno a kernel driver returns for it.
pub trait ToErrno {
    /// The errno.
    fn to_errno(&self) -> Errno;
}

/// Implements [`ToErrno`] for an error type by a `match` on it: one arm per variant (or
/// wildcard), each naming the errno. This is the pattern for error types added later (the
/// buddy allocator's, the VMM's), declared in this crate next to the others:
///
/// ```
/// # use nova_mm_kernel::{impl_to_errno, Errno, ToErrno};
/// # mod buddy { #[derive(Debug)] pub enum AllocError { NoSpace, BadSize { size: u64 } } }
/// impl_to_errno!(buddy::AllocError {
///     buddy::AllocError::NoSpace => Errno::ENOSPC,
///     buddy::AllocError::BadSize { .. } => Errno::EINVAL,
/// });
/// assert_eq!(buddy::AllocError::NoSpace.to_errno(), Errno::ENOSPC);
/// ```
#[macro_export]
macro_rules! impl_to_errno {
    ($ty:ty { $($pat:pat => $errno:expr),+ $(,)? }) => {
        impl $crate::ToErrno for $ty {
            fn to_errno(&self) -> $crate::Errno {
                #[allow(unused_imports)]
                use $crate::Errno;
                match self {
                    $($pat => $errno,)+
                }
            }
        }
    };
}

impl_to_errno!(VramError {
    VramError::OutOfRange { .. } => Errno::ERANGE,
    VramError::Misaligned { .. } => Errno::EINVAL,
    VramError::DeviceGone => Errno::ENODEV,
    VramError::Backend(code) => Errno::from_kernel(*code),
});

impl_to_errno!(TlbError {
    TlbError::Timeout => Errno::ETIMEDOUT,
    TlbError::DeviceGone => Errno::ENODEV,
    TlbError::Unsupported => Errno::EOPNOTSUPP,
    TlbError::Backend(code) => Errno::from_kernel(*code),
});

impl_to_errno!(MmioError {
    MmioError::OutOfRange { .. } => Errno::ERANGE,
    MmioError::Misaligned { .. } => Errno::EINVAL,
    MmioError::Unsupported { .. } => Errno::EOPNOTSUPP,
    MmioError::DeviceGone => Errno::ENODEV,
    MmioError::Io(code) => Errno::from_kernel(*code),
});

impl_to_errno!(PraminError {
    PraminError::NoVram => Errno::ENODEV,
    PraminError::BeyondReach { .. } => Errno::ERANGE,
    PraminError::BarTooSmall { .. } => Errno::ENXIO,
});

impl_to_errno!(FbError {
    FbError::BadCount { .. } | FbError::Overflow { .. } | FbError::Overlap { .. } => Errno::EINVAL,
    FbError::NoUsableRegion => Errno::ENOMEM,
});

impl_to_errno!(UnknownChip {
    UnknownChip { .. } => Errno::ENODEV,
});

impl_to_errno!(UnknownName {
    UnknownName => Errno::EINVAL,
});

#[cfg(test)]
mod tests {
    use super::*;
    use nova_mm_core::VramAddress;

    #[test]
    fn errno_round_trips() {
        assert_eq!(Errno::from_kernel(-22), Errno::EINVAL);
        assert_eq!(Errno::EINVAL.to_kernel(), -22);
        assert_eq!(Errno::from_kernel(0), Errno::EIO);
        assert_eq!(Errno::from_kernel(i32::MIN), Errno::EIO);
        assert_eq!(Errno::from_kernel(-5000), Errno::EIO);
        assert_eq!(Errno::new(0), None);
    }

    #[test]
    fn core_errors_map_to_errnos() {
        let a = VramAddress::new(1);
        assert_eq!(
            VramError::OutOfRange { addr: a, len: 8 }.to_errno(),
            Errno::ERANGE
        );
        assert_eq!(
            VramError::Misaligned { addr: a, align: 8 }.to_errno(),
            Errno::EINVAL
        );
        assert_eq!(VramError::Backend(-110).to_errno(), Errno::ETIMEDOUT);
        assert_eq!(TlbError::Unsupported.to_errno(), Errno::EOPNOTSUPP);
        assert_eq!(MmioError::Io(-19).to_errno(), Errno::ENODEV);
        assert_eq!(FbError::NoUsableRegion.to_errno(), Errno::ENOMEM);
        assert_eq!(PraminError::NoVram.to_errno(), Errno::ENODEV);
        assert_eq!(
            UnknownChip {
                boot0: 0,
                boot42: 0
            }
            .to_errno(),
            Errno::ENODEV
        );
    }
}
