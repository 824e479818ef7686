//! Bit-exact MMU version 2 and version 3 page-table entries and level geometry
//! (`mmu-formats.md` §1, §2).
//!
//! The walker, the address-space manager and the tools work with version-independent
//! semantic types ([`PteState`], [`PdeState`], [`DualPdeState`], [`PteMapping`],
//! [`PdeTable`]) and turn them into bits through a format type chosen at compile time:
//! [`MmuV2`] or [`MmuV3`], both implementing [`MmuFormat`]. Every encoder takes the [`Chip`]
//! because what is legal depends on the chip, not only on the version (512 MiB PTEs on Ampere
//! and Ada, 256 GiB only on Blackwell, the comptag line width, NO_ATS from Volta on).
//!
//! # Decoding policy
//!
//! Decoding never panics. It is *strict*: a raw entry decodes to a state only if encoding
//! that state gives the same bits back, so a corrupt or foreign table is reported as a typed
//! [`FormatError`] (mostly [`FormatError::ReservedBits`] with the unexpected bits). The
//! exceptions are bits the hardware has no use for, which are ignored (and therefore not
//! reproduced by re-encoding):
//!
//! - v2: PRIVILEGE in a PTE with V=0 and VOL=1 (RM's "no valid 4K" variant; V=0 VOL=1 is
//!   sparse, `mmu-formats.md` §7.1), NO_ATS of a PDE without a table, `VOL_BIG` next to a
//!   valid small pointer, `VOL_SMALL` of an invalid small pointer, NO_ATS when both dual
//!   pointers are invalid;
//! - v3: the ATS bit of a PDE PCF without a table, the PCF of an invalid dual-PDE half
//!   (except the sparse bit of `PCF_BIG` when both halves are invalid).
//!
//! # Dual PDEs
//!
//! A dual PD0 entry is two `u64` halves, low qword first (`[u64; 2]`), never a `u128`: the
//! kernel has no run-time 128-bit support.

mod aperture;
mod bits;
mod error;
mod level;
mod state;
pub mod v2;
pub mod v3;

use static_assertions::assert_impl_all;

pub use aperture::{PdeAperture, PteAperture, TableAperture};
pub use error::FormatError;
pub use level::{
    level_index, level_info, levels, table_bytes, Level, LevelInfo, V2_LEVELS, V3_LEVELS,
};
pub use state::{
    DualHalf, DualPdeState, PdeAttrs, PdeState, PdeTable, PteAttrs, PteMapping, PteState,
};

use crate::addr::VirtAddr;
use crate::chip::{Chip, MmuVersion};

/// Size of an ordinary entry (PTE, upper PDE) in bytes.
pub const ENTRY_BYTES: u64 = 8;
/// Size of a dual PD0 entry in bytes.
pub const DUAL_ENTRY_BYTES: u64 = 16;

/// One MMU page-table format, for static dispatch (like nova-core's `MmuConfig`).
///
/// All functions are associated functions: a walker is generic over `F: MmuFormat` and calls
/// `F::encode_pte(...)`; nothing is chosen at run time per entry.
pub trait MmuFormat {
    /// The format version.
    const VERSION: MmuVersion;
    /// The levels, root first, then [`Level::PtBig`] and [`Level::PtSmall`] (the two
    /// alternative leaf tables under a dual PD0 entry).
    const LEVELS: &'static [LevelInfo];
    /// The root level (PD3 on v2, PD4 on v3).
    const ROOT: Level;
    /// Width of the virtual address space in bits.
    const VA_BITS: u32;

    /// The geometry of `level`.
    ///
    /// # Errors
    ///
    /// [`FormatError::NoSuchLevel`] for a level the version lacks (PD4 on v2).
    fn level_info(level: Level) -> Result<&'static LevelInfo, FormatError> {
        level::level_info(Self::VERSION, level)
    }

    /// The index of `va` in a table of `level`.
    ///
    /// # Errors
    ///
    /// [`FormatError::VaOutOfRange`] if `va` is outside the VA space;
    /// [`FormatError::NoSuchLevel`].
    fn level_index(va: VirtAddr, level: Level) -> Result<usize, FormatError> {
        level::level_index(Self::VERSION, va, level)
    }

    /// The size in bytes of a table of `level`.
    ///
    /// # Errors
    ///
    /// [`FormatError::NoSuchLevel`].
    fn table_bytes(level: Level) -> Result<u64, FormatError> {
        level::table_bytes(Self::VERSION, level)
    }

    /// Encodes a PTE of a leaf table ([`Level::PtBig`] or [`Level::PtSmall`]).
    ///
    /// # Errors
    ///
    /// See [`v2::encode_pte`] and [`v3::encode_pte`].
    fn encode_pte(chip: Chip, level: Level, state: &PteState) -> Result<u64, FormatError>;

    /// Decodes a PTE of a leaf table.
    ///
    /// # Errors
    ///
    /// See [`v2::decode_pte`] and [`v3::decode_pte`].
    fn decode_pte(chip: Chip, level: Level, raw: u64) -> Result<PteState, FormatError>;

    /// Encodes an upper (8-byte) PDE of a directory level above PD0.
    ///
    /// # Errors
    ///
    /// See [`v2::encode_pde`] and [`v3::encode_pde`].
    fn encode_pde(chip: Chip, level: Level, state: &PdeState) -> Result<u64, FormatError>;

    /// Decodes an upper PDE.
    ///
    /// # Errors
    ///
    /// See [`v2::decode_pde`] and [`v3::decode_pde`].
    fn decode_pde(chip: Chip, level: Level, raw: u64) -> Result<PdeState, FormatError>;

    /// Encodes a dual PD0 entry as `[low, high]`.
    ///
    /// # Errors
    ///
    /// See [`v2::encode_dual_pde`] and [`v3::encode_dual_pde`].
    fn encode_dual_pde(chip: Chip, state: &DualPdeState) -> Result<[u64; 2], FormatError>;

    /// Decodes a dual PD0 entry `[low, high]`.
    ///
    /// # Errors
    ///
    /// See [`v2::decode_dual_pde`] and [`v3::decode_dual_pde`].
    fn decode_dual_pde(chip: Chip, raw: [u64; 2]) -> Result<DualPdeState, FormatError>;
}

/// MMU version 2: Pascal, Volta, Turing, Ampere, Ada.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MmuV2;

/// MMU version 3: Hopper, Blackwell.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MmuV3;

impl MmuFormat for MmuV2 {
    const VERSION: MmuVersion = MmuVersion::V2;
    const LEVELS: &'static [LevelInfo] = &V2_LEVELS;
    const ROOT: Level = Level::Pd3;
    const VA_BITS: u32 = 49;

    fn encode_pte(chip: Chip, level: Level, state: &PteState) -> Result<u64, FormatError> {
        v2::encode_pte(chip, level, state)
    }
    fn decode_pte(chip: Chip, level: Level, raw: u64) -> Result<PteState, FormatError> {
        v2::decode_pte(chip, level, raw)
    }
    fn encode_pde(chip: Chip, level: Level, state: &PdeState) -> Result<u64, FormatError> {
        v2::encode_pde(chip, level, state)
    }
    fn decode_pde(chip: Chip, level: Level, raw: u64) -> Result<PdeState, FormatError> {
        v2::decode_pde(chip, level, raw)
    }
    fn encode_dual_pde(chip: Chip, state: &DualPdeState) -> Result<[u64; 2], FormatError> {
        v2::encode_dual_pde(chip, state)
    }
    fn decode_dual_pde(chip: Chip, raw: [u64; 2]) -> Result<DualPdeState, FormatError> {
        v2::decode_dual_pde(chip, raw)
    }
}

impl MmuFormat for MmuV3 {
    const VERSION: MmuVersion = MmuVersion::V3;
    const LEVELS: &'static [LevelInfo] = &V3_LEVELS;
    const ROOT: Level = Level::Pd4;
    const VA_BITS: u32 = 57;

    fn encode_pte(chip: Chip, level: Level, state: &PteState) -> Result<u64, FormatError> {
        v3::encode_pte(chip, level, state)
    }
    fn decode_pte(chip: Chip, level: Level, raw: u64) -> Result<PteState, FormatError> {
        v3::decode_pte(chip, level, raw)
    }
    fn encode_pde(chip: Chip, level: Level, state: &PdeState) -> Result<u64, FormatError> {
        v3::encode_pde(chip, level, state)
    }
    fn decode_pde(chip: Chip, level: Level, raw: u64) -> Result<PdeState, FormatError> {
        v3::decode_pde(chip, level, raw)
    }
    fn encode_dual_pde(chip: Chip, state: &DualPdeState) -> Result<[u64; 2], FormatError> {
        v3::encode_dual_pde(chip, state)
    }
    fn decode_dual_pde(chip: Chip, raw: [u64; 2]) -> Result<DualPdeState, FormatError> {
        v3::decode_dual_pde(chip, raw)
    }
}

assert_impl_all!(MmuV2: Send, Sync, MmuFormat);
assert_impl_all!(MmuV3: Send, Sync, MmuFormat);
assert_impl_all!(PteState: Send, Sync, Copy);
assert_impl_all!(PdeState: Send, Sync, Copy);
assert_impl_all!(DualPdeState: Send, Sync, Copy);
assert_impl_all!(FormatError: Send, Sync, Copy);
assert_impl_all!(v2::Ver2PteVid: Send, Sync, zerocopy::FromBytes, zerocopy::IntoBytes);
assert_impl_all!(v3::Ver3Pte: Send, Sync, zerocopy::FromBytes, zerocopy::IntoBytes);

const _: () = {
    assert!(core::mem::size_of::<[u64; 2]>() == 16 && DUAL_ENTRY_BYTES == 16);
    assert!(<MmuV2 as MmuFormat>::VA_BITS == MmuVersion::V2.va_bits());
    assert!(<MmuV3 as MmuFormat>::VA_BITS == MmuVersion::V3.va_bits());
};
