//! Small checked helpers shared by the v2 and v3 encoders.

use crate::chip::{Chip, MmuVersion};

use super::error::FormatError;

/// `1 << n` as a mask bit, or 0 if `n >= 64`.
pub(super) const fn bit(n: u32) -> u64 {
    match 1u64.checked_shl(n) {
        Some(b) => b,
        None => 0,
    }
}

/// `b` placed at bit `n`.
pub(super) const fn flag(b: bool, n: u32) -> u64 {
    if b {
        bit(n)
    } else {
        0
    }
}

/// Whether bit `n` of `raw` is set.
pub(super) const fn test(raw: u64, n: u32) -> bool {
    raw & bit(n) != 0
}

/// `v >> n` (0 if `n >= 64`).
pub(super) const fn shr(v: u64, n: u32) -> u64 {
    match v.checked_shr(n) {
        Some(x) => x,
        None => 0,
    }
}

/// `v << n`, for values known to fit (field values read back from a bitfield); bits shifted
/// out are lost, and `n >= 64` gives 0.
pub(super) const fn shl(v: u64, n: u32) -> u64 {
    match v.checked_shl(n) {
        Some(x) => x,
        None => 0,
    }
}

/// The largest value of an `n`-bit field.
pub(super) const fn max_of(n: u32) -> u64 {
    bit(n).wrapping_sub(1)
}

/// Checks that `address` is a multiple of `align` and below `1 << bits`.
pub(super) fn check_address(address: u64, align: u64, bits: u32) -> Result<(), FormatError> {
    if !align.is_power_of_two() || address & align.wrapping_sub(1) != 0 {
        return Err(FormatError::Misaligned { address, align });
    }
    if shr(address, bits) != 0 {
        return Err(FormatError::AddressTooWide { address, bits });
    }
    Ok(())
}

/// Checks that `value <= max`.
pub(super) fn check_field(field: &'static str, value: u64, max: u64) -> Result<(), FormatError> {
    if value > max {
        Err(FormatError::FieldOutOfRange { field, value, max })
    } else {
        Ok(())
    }
}

/// The error for a bitfield checked setter that failed after its value was range-checked:
/// cannot happen, but is reported instead of panicking.
pub(super) const fn setter(field: &'static str, value: u64) -> FormatError {
    FormatError::FieldOutOfRange {
        field,
        value,
        max: 0,
    }
}

/// Checks that `chip` uses `version`.
pub(super) fn check_chip(chip: Chip, version: MmuVersion) -> Result<(), FormatError> {
    if chip.mmu_version() == version {
        Ok(())
    } else {
        Err(FormatError::WrongVersion {
            chip,
            expected: version,
        })
    }
}

/// Decode's canonical check: `raw` (with the leniently ignored bits already cleared) must equal
/// what encoding the decoded state gives.
pub(super) fn canonical(raw: u64, expected: u64, qword: u8) -> Result<(), FormatError> {
    let bits = raw ^ expected;
    if bits == 0 {
        Ok(())
    } else {
        Err(FormatError::ReservedBits { qword, bits })
    }
}
