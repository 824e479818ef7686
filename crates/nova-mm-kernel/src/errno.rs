//! Kernel errnos and the mapping of every core error to one.

use nova_mm_core::buddy::BuddyError;
use nova_mm_core::chip::UnknownName;
use nova_mm_core::hw::fb::FbError;
use nova_mm_core::hw::hal::UnknownChip;
use nova_mm_core::hw::mmio::MmioError;
use nova_mm_core::hw::pramin::PraminError;
use nova_mm_core::mmu::FormatError;
use nova_mm_core::vmm::{Bar1Error, NoRoom, PtAllocError, VmmError};
use nova_mm_core::walk::WalkError;
use nova_mm_core::{TlbError, VaError, VramError};

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
/// wildcard), each naming the errno. This is the pattern for error types added later (as the
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

// The allocators and the address-space manager. The rule: a bad argument is `EINVAL`, no room in
// VRAM or in a VA space is `ENOSPC` (what `gpu_buddy` and `drm_mm_reserve_node` return, also for a
// VA range that is already taken), host storage or page-table memory that cannot be had is
// `ENOMEM`, a backend failure keeps the errno of the layer below (`ETIMEDOUT`, `ENODEV`, ...), and
// page tables found corrupt in VRAM, or a manager whose state no longer matches the hardware,
// are `EIO`. Every variant is named, so a new one must be given an errno here.

impl_to_errno!(BuddyError {
    BuddyError::Invalid(_) | BuddyError::NotAllocated { .. } => Errno::EINVAL,
    BuddyError::NoSpace => Errno::ENOSPC,
    BuddyError::SinkFull | BuddyError::NoMemory => Errno::ENOMEM,
});

impl_to_errno!(VaError {
    VaError::ZeroSize
    | VaError::InvalidAlignment { .. }
    | VaError::Misaligned { .. }
    | VaError::OutOfSpace { .. }
    | VaError::BadWindow { .. }
    | VaError::EmptySpace { .. }
    | VaError::NotFound { .. }
    | VaError::SizeMismatch { .. } => Errno::EINVAL,
    VaError::NoSpace { .. } | VaError::Overlap { .. } => Errno::ENOSPC,
    VaError::StorageFull => Errno::ENOMEM,
});

impl_to_errno!(nova_mm_core::vmm::VaError {
    nova_mm_core::vmm::VaError::InUse | nova_mm_core::vmm::VaError::NoSpace => Errno::ENOSPC,
    nova_mm_core::vmm::VaError::NoRoom(_) => Errno::ENOMEM,
    nova_mm_core::vmm::VaError::NotReserved | nova_mm_core::vmm::VaError::Invalid => Errno::EINVAL,
});

impl_to_errno!(NoRoom {
    NoRoom => Errno::ENOMEM,
});

impl_to_errno!(PtAllocError {
    PtAllocError::OutOfMemory => Errno::ENOMEM,
    PtAllocError::Backend(code) => Errno::from_kernel(*code),
});

impl_to_errno!(FormatError {
    FormatError::WrongVersion { .. }
    | FormatError::NoSuchLevel { .. }
    | FormatError::WrongLevel { .. }
    | FormatError::VaOutOfRange { .. }
    | FormatError::AddressTooWide { .. }
    | FormatError::Misaligned { .. }
    | FormatError::FieldOutOfRange { .. }
    | FormatError::FieldNotInFormat { .. }
    | FormatError::Conflict { .. }
    | FormatError::PteNotAllowed { .. }
    | FormatError::StateNotAllowed { .. } => Errno::EINVAL,
    // Only decoding an entry read from VRAM finds these: a corrupt table.
    FormatError::ReservedBits { .. } | FormatError::UndefinedEncoding { .. } => Errno::EIO,
});

impl_to_errno!(WalkError {
    WalkError::VaOutOfRange(_) => Errno::EINVAL,
    WalkError::Vram(e) => e.to_errno(),
    WalkError::WildTable { .. }
    | WalkError::SysmemTable { .. }
    | WalkError::Malformed { .. }
    | WalkError::Loop(_)
    | WalkError::TooManyTables => Errno::EIO,
});

impl_to_errno!(VmmError {
    VmmError::WrongFormat(_)
    | VmmError::BadRange
    | VmmError::BadRuns
    | VmmError::BadPageSize(_)
    | VmmError::BadAttrs
    | VmmError::ExternalAperture
    | VmmError::WrongSpace
    | VmmError::SplitsPage => Errno::EINVAL,
    VmmError::Va(e) => e.to_errno(),
    VmmError::PtAlloc(e) => e.to_errno(),
    VmmError::NoRoom(e) => e.to_errno(),
    VmmError::Vram(e) => e.to_errno(),
    VmmError::Tlb(e) => e.to_errno(),
    VmmError::Walk(e) => e.to_errno(),
    // The hardware state of the range is unknown: the device is gone, or it is an I/O error.
    VmmError::RollbackFailed { rollback, .. } => match rollback {
        VramError::DeviceGone => Errno::ENODEV,
        _ => Errno::EIO,
    },
    VmmError::Inconsistent => Errno::EIO,
});

impl_to_errno!(Bar1Error {
    Bar1Error::OutOfBounds { .. } => Errno::ERANGE,
    Bar1Error::Misaligned { .. } => Errno::EINVAL,
    Bar1Error::Io(code) => Errno::from_kernel(*code),
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

    #[test]
    fn buddy_errors_map_like_gpu_buddy() {
        use nova_mm_core::buddy::{
            AllocMode, AllocRequest, Buddy, BuddyParams, InvalidArg, SliceSink,
        };
        // Real errors from a real allocator (no allocation: caller storage).
        let p = BuddyParams {
            base_offset: 0,
            size: 1 << 20,
            chunk_size: 4096,
        };
        let mut storage = [0u64; 256];
        let mut b = Buddy::with_storage(p, &mut storage).unwrap();
        // More than the pool: a bad argument, as in gpu_buddy.
        let e = b
            .alloc_into(
                &AllocRequest::new(AllocMode::Simple, 2 << 20, 4096),
                &mut SliceSink::new(&mut []),
            )
            .unwrap_err();
        assert_eq!(e.to_errno(), Errno::EINVAL);
        let mut one = [nova_mm_core::buddy::Block::EMPTY];
        b.alloc_into(
            &AllocRequest::new(AllocMode::Simple, 1 << 20, 1 << 20),
            &mut SliceSink::new(&mut one),
        )
        .unwrap();
        let e = b
            .alloc_into(
                &AllocRequest::new(AllocMode::Simple, 4096, 4096),
                &mut SliceSink::new(&mut one),
            )
            .unwrap_err();
        assert_eq!(e, BuddyError::NoSpace);
        assert_eq!(e.to_errno(), Errno::ENOSPC);
        b.free_blocks(&one, false).unwrap();
        let e = b
            .alloc_into(
                &AllocRequest::new(AllocMode::Simple, 4096, 4096),
                &mut SliceSink::new(&mut []),
            )
            .unwrap_err();
        assert_eq!(e.to_errno(), Errno::ENOMEM, "{e:?}");
        let e = b.free_at(0, 0, false).unwrap_err();
        assert_eq!(e.to_errno(), Errno::EINVAL);
        let bad = BuddyParams {
            chunk_size: 1000,
            ..p
        };
        assert_eq!(
            Buddy::with_storage(bad, &mut storage)
                .unwrap_err()
                .to_errno(),
            Errno::EINVAL
        );
        assert_eq!(
            Buddy::with_storage(p, &mut []).unwrap_err().to_errno(),
            Errno::ENOMEM
        );
        assert_eq!(BuddyError::SinkFull.to_errno(), Errno::ENOMEM);
        assert_eq!(
            BuddyError::Invalid(InvalidArg::Params).to_errno(),
            Errno::EINVAL
        );
        // Consistent with the core's own gpu_buddy errno.
        for e in [
            BuddyError::NoSpace,
            BuddyError::SinkFull,
            BuddyError::NoMemory,
            BuddyError::Invalid(InvalidArg::MinBlockSize),
            BuddyError::NotAllocated {
                offset: 0,
                order: 0,
            },
        ] {
            assert_eq!(e.to_errno().to_kernel(), e.errno(), "{e:?}");
        }
    }

    #[test]
    fn va_errors_map() {
        use nova_mm_core::{VaRange, VirtAddr};
        let va = VirtAddr::new(0x1000);
        assert_eq!(VaError::ZeroSize.to_errno(), Errno::EINVAL);
        assert_eq!(
            VaError::InvalidAlignment { align: 3 }.to_errno(),
            Errno::EINVAL
        );
        assert_eq!(
            VaError::NoSpace {
                size: 4096,
                align: 4096
            }
            .to_errno(),
            Errno::ENOSPC
        );
        assert_eq!(
            VaError::Overlap {
                existing: VaRange::new(va, 4096).unwrap()
            }
            .to_errno(),
            Errno::ENOSPC
        );
        assert_eq!(VaError::NotFound { start: va }.to_errno(), Errno::EINVAL);
        assert_eq!(VaError::StorageFull.to_errno(), Errno::ENOMEM);
        use nova_mm_core::vmm::VaError as SpaceVa;
        assert_eq!(SpaceVa::InUse.to_errno(), Errno::ENOSPC);
        assert_eq!(SpaceVa::NoSpace.to_errno(), Errno::ENOSPC);
        assert_eq!(SpaceVa::NoRoom(NoRoom).to_errno(), Errno::ENOMEM);
        assert_eq!(SpaceVa::Invalid.to_errno(), Errno::EINVAL);
        assert_eq!(SpaceVa::NotReserved.to_errno(), Errno::EINVAL);
    }

    #[test]
    fn format_and_walk_errors_map() {
        use nova_mm_core::mmu::Level;
        use nova_mm_core::{Chip, MmuVersion, VirtAddr};
        assert_eq!(
            FormatError::WrongVersion {
                chip: Chip::Turing,
                expected: MmuVersion::V3
            }
            .to_errno(),
            Errno::EINVAL
        );
        assert_eq!(
            FormatError::Misaligned {
                address: 1,
                align: 4096
            }
            .to_errno(),
            Errno::EINVAL
        );
        assert_eq!(
            FormatError::ReservedBits { qword: 0, bits: 1 }.to_errno(),
            Errno::EIO
        );
        assert_eq!(
            FormatError::UndefinedEncoding {
                field: "APERTURE",
                value: 3
            }
            .to_errno(),
            Errno::EIO
        );
        assert_eq!(
            WalkError::VaOutOfRange(VirtAddr::new(1 << 60)).to_errno(),
            Errno::EINVAL
        );
        assert_eq!(
            WalkError::Vram(VramError::DeviceGone).to_errno(),
            Errno::ENODEV
        );
        assert_eq!(
            WalkError::Vram(VramError::Backend(-110)).to_errno(),
            Errno::ETIMEDOUT
        );
        assert_eq!(
            WalkError::Loop(VramAddress::new(0x1000)).to_errno(),
            Errno::EIO
        );
        assert_eq!(WalkError::TooManyTables.to_errno(), Errno::EIO);
        assert_eq!(
            WalkError::Malformed {
                level: 1,
                entry: VramAddress::new(8),
                error: FormatError::StateNotAllowed { level: Level::Pd1 },
            }
            .to_errno(),
            Errno::EIO
        );
    }

    #[test]
    fn vmm_errors_map() {
        use nova_mm_core::{Chip, PageSize};
        for e in [
            VmmError::WrongFormat(Chip::Hopper),
            VmmError::BadRange,
            VmmError::BadRuns,
            VmmError::BadPageSize(PageSize::Size512M),
            VmmError::BadAttrs,
            VmmError::ExternalAperture,
            VmmError::WrongSpace,
            VmmError::SplitsPage,
        ] {
            assert_eq!(e.to_errno(), Errno::EINVAL, "{e}");
        }
        assert_eq!(
            VmmError::Va(nova_mm_core::vmm::VaError::InUse).to_errno(),
            Errno::ENOSPC
        );
        assert_eq!(
            VmmError::PtAlloc(PtAllocError::OutOfMemory).to_errno(),
            Errno::ENOMEM
        );
        assert_eq!(
            VmmError::PtAlloc(PtAllocError::Backend(-28)).to_errno(),
            Errno::ENOSPC
        );
        assert_eq!(VmmError::NoRoom(NoRoom).to_errno(), Errno::ENOMEM);
        assert_eq!(
            VmmError::Tlb(TlbError::Timeout).to_errno(),
            Errno::ETIMEDOUT
        );
        assert_eq!(
            VmmError::Tlb(TlbError::DeviceGone).to_errno(),
            Errno::ENODEV
        );
        assert_eq!(
            VmmError::Vram(VramError::Backend(-5)).to_errno(),
            Errno::EIO
        );
        assert_eq!(
            VmmError::Walk(WalkError::TooManyTables).to_errno(),
            Errno::EIO
        );
        assert_eq!(
            VmmError::RollbackFailed {
                first: VramError::Backend(-5),
                rollback: VramError::DeviceGone
            }
            .to_errno(),
            Errno::ENODEV
        );
        assert_eq!(
            VmmError::RollbackFailed {
                first: VramError::DeviceGone,
                rollback: VramError::Backend(-110)
            }
            .to_errno(),
            Errno::EIO
        );
        assert_eq!(VmmError::Inconsistent.to_errno(), Errno::EIO);
        assert_eq!(Bar1Error::Io(-19).to_errno(), Errno::ENODEV);
        assert_eq!(
            Bar1Error::OutOfBounds {
                offset: 0,
                size: 4,
                len: 0
            }
            .to_errno(),
            Errno::ERANGE
        );
        assert_eq!(
            Bar1Error::Misaligned { offset: 1, size: 4 }.to_errno(),
            Errno::EINVAL
        );
    }
}
