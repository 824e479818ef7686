//! [`FormatError`]: why an entry could not be encoded or decoded.

use crate::chip::{Chip, MmuVersion};

use super::level::Level;

/// Why a page-table entry could not be encoded from its semantic state, or why a raw entry
/// read from a table is not one the format (as this crate models it) can produce.
///
/// The walker reports a decode error as a corrupt table; it is never a panic.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FormatError {
    /// The chip uses the other MMU version.
    #[error("{chip} uses MMU {}, not {expected}", chip.mmu_version())]
    WrongVersion {
        /// The chip passed in.
        chip: Chip,
        /// The version of the format that was asked.
        expected: MmuVersion,
    },
    /// The level does not exist in this MMU version (PD4 on v2).
    #[error("level {level} does not exist in MMU {version}")]
    NoSuchLevel {
        /// The level asked for.
        level: Level,
        /// The MMU version.
        version: MmuVersion,
    },
    /// The operation does not apply to entries of this level (a PTE encoder called for a
    /// directory level, the dual-PDE encoder for a level other than PD0, ...).
    #[error("operation not valid for level {level}")]
    WrongLevel {
        /// The level passed in.
        level: Level,
    },
    /// The virtual address is not inside the MMU version's VA space.
    #[error("virtual address {va:#x} does not fit in {bits} bits")]
    VaOutOfRange {
        /// The virtual address.
        va: u64,
        /// The VA width of the MMU version.
        bits: u32,
    },
    /// A physical address does not fit the entry's address field.
    #[error("physical address {address:#x} does not fit in {bits} bits")]
    AddressTooWide {
        /// The physical address.
        address: u64,
        /// The number of address bits the field can hold (the address must be `< 1 << bits`).
        bits: u32,
    },
    /// A physical address is not aligned as the entry requires (4 KiB tables, 256 B big page
    /// tables, pages to their size).
    #[error("physical address {address:#x} is not aligned to {align:#x}")]
    Misaligned {
        /// The physical address.
        address: u64,
        /// The required alignment in bytes.
        align: u64,
    },
    /// A field value is larger than its field (kind, comptag line, peer id, PCF).
    #[error("{field} value {value:#x} exceeds the maximum {max:#x}")]
    FieldOutOfRange {
        /// The field's manual name.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The largest value the field holds.
        max: u64,
    },
    /// An attribute or state that this format or chip does not have (ENCRYPTED on v3, ACD
    /// on v2, MAPPING_NOWHERE on v2, NO_ATS on Pascal, COMPTAGLINE on v3).
    #[error("{field} does not exist in this format on this chip")]
    FieldNotInFormat {
        /// The field's name.
        field: &'static str,
    },
    /// Two fields that share bits (v2 sysmem address vs. comptag line, peer id vs. a
    /// non-peer aperture, v2 dual-PDE NO_ATS vs. the big table address) were both given.
    #[error("conflicting fields: {what}")]
    Conflict {
        /// What collides.
        what: &'static str,
    },
    /// A PTE at a directory level (large page) that the chip does not allow there.
    #[error("a PTE is not allowed at {level} on {chip}")]
    PteNotAllowed {
        /// The level.
        level: Level,
        /// The chip.
        chip: Chip,
    },
    /// A PTE state that has no meaning at this level (NO_VALID_4KB_PAGE in a small page
    /// table).
    #[error("this PTE state is not allowed at {level}")]
    StateNotAllowed {
        /// The level.
        level: Level,
    },
    /// Decoding: bits are set that the format reserves or that no encoding of the decoded
    /// state sets. `qword` is 0 for an 8-byte entry or the low half of a dual PDE, 1 for
    /// the high half.
    #[error("unexpected bits {bits:#x} set in qword {qword}")]
    ReservedBits {
        /// Which 64-bit half.
        qword: u8,
        /// The offending bits.
        bits: u64,
    },
    /// Decoding: a field holds a value the hardware manual does not define (a v3 PCF value
    /// above 3 in an invalid PTE or in a PDE).
    #[error("undefined value {value:#x} in {field}")]
    UndefinedEncoding {
        /// The field's manual name.
        field: &'static str,
        /// The raw field value.
        value: u64,
    },
}
