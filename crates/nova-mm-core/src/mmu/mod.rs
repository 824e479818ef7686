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
//! # Example
//!
//! ```
//! use nova_mm_core::mmu::{
//!     DualHalf, DualPdeState, Level, MmuFormat, MmuV2, PdeTable, PteAperture, PteMapping,
//!     PteState, TableAperture,
//! };
//! use nova_mm_core::{Chip, PhysAddr, VirtAddr};
//!
//! // A read-only 4 KiB page at VRAM 0x1_2345_6000: PA >> 4 | VALID | READ_ONLY.
//! let mut page = PteMapping::new(PteAperture::Vidmem, PhysAddr::new(0x1_2345_6000));
//! page.attrs.read_only = true;
//! let pte = MmuV2::encode_pte(Chip::Turing, Level::PtSmall, &PteState::Valid(page))?;
//! assert_eq!(pte, 0x1234_5641);
//! assert_eq!(MmuV2::decode_pte(Chip::Turing, Level::PtSmall, pte)?, PteState::Valid(page));
//!
//! // A PD0 entry pointing at a big page table (256 B aligned) and a small one.
//! let pd0 = DualPdeState::Tables {
//!     big: DualHalf::Table(PdeTable::new(TableAperture::Vidmem, PhysAddr::new(0x1_0100))),
//!     small: DualHalf::Table(PdeTable::new(TableAperture::Vidmem, PhysAddr::new(0x2_0000))),
//! };
//! assert_eq!(MmuV2::encode_dual_pde(Chip::Turing, &pd0)?, [0x1012, 0x2002]);
//!
//! // Where a VA lands.
//! let va = VirtAddr::new(0x1234_5678_9000);
//! assert_eq!(MmuV2::level_index(va, Level::Pd0)?, 0xb3);
//! assert_eq!(MmuV2::table_bytes(Level::PtBig)?, 256);
//! # Ok::<(), nova_mm_core::mmu::FormatError>(())
//! ```
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
//! kernel has no run-time 128-bit support. The big half stores the big page table's address
//! shifted right by 8 (v2: at 32:4 vidmem / 53:4 sysmem; v3: PA\[51:8\] in place at 51:8),
//! so big tables are 256 B aligned; the small half stores a 4 KiB-aligned address like an
//! upper PDE.
//!
//! # Decisions where the sources disagree (`mmu-formats.md` §7)
//!
//! 1. v2 "no valid 4 KiB page" big PTE (§7.1): encoded V=0 PRIV=1 (UVM, nouveau, the Pascal
//!    format note). RM's V=0 VOL=1 PRIV=1 decodes as *sparse*, since V=0 with VOL=1 is the sparse
//!    encoding. `NoValid4K` is only legal in a big page table; `MappingNowhere` (v3) in both.
//! 2. Big pages are 64 KiB only (§7.2): no 128 KiB geometry.
//! 3. Comptag line width (§7.3) comes from [`Chip::comptagline_bits`]: 18 bits on Pascal and
//!    Volta (55:54 then reserved), 20 bits from Turing. The comptag line is never read as extra
//!    address bits (UVM's NVSwitch fabric-address overload is not modelled); it is refused with
//!    a sysmem aperture because it overlaps `ADDRESS_SYS`.
//! 4. ENCRYPTED (§7.4) is accepted on every v2 chip (it is in the gp100/gv100 headers and UVM's
//!    Turing hwref); keeping it 0 ("do not use") is the caller's policy.
//! 5. v2 address widths (§7.5): vidmem and peer PA < 2^37 (`ADDRESS_VID` 32:8), sysmem
//!    PA < 2^58 (the whole 46-bit `ADDRESS_SYS` field, not the "47/35 bits used" remarks).
//! 6. v3 PTE PCF (§7.13): all 32 combinations of UNCACHED(bit 0), PRIVILEGE(1), RO(2),
//!    NO_ATOMIC(3), ACD(4) are encoded and decoded, including ones RM's table lacks.
//! 7. v3 vidmem addresses (§7.14): PA < 2^40 (`ADDRESS_VID` 39:12 as in UVM's hwref and the
//!    OGKM gh100 header, which keeps `ADDRESS_SYS`/`ADDRESS_PEER` at 51:12; nova review item 21), in
//!    PTEs and table pointers; peer and sysmem PA < 2^52 (the manual's 51:12 field), since
//!    fabric peer addresses can be wider.
//! 8. Large pages (§7.15): by [`Chip::supports_page_size`] — 2 MiB at PD0 everywhere, 512 MiB at
//!    PD1 on Ampere, Ada, Hopper, Blackwell, 256 GiB at PD2 on both Blackwell families. A large
//!    PTE's address must be aligned to its page size (encode and decode).
//! 9. v2 dual-PDE `NO_ATS` (bit 5) lies inside `ADDRESS_BIG` (53:4 / 32:4, PA bit 9). It is
//!    modelled as an attribute of the small half that can only be set while the big half is
//!    invalid; with a big table, bit 5 is an address bit and `no_ats` is refused
//!    ([`FormatError::Conflict`]). UVM only sets NO_ATS in PD1 entries.
//! 10. v3 sparse encodings: an upper PDE is sparse with PCF `SPARSE_ATS_ALLOWED` (1, raw 0x8,
//!     the same pattern as nouveau's PTE sparse filler); a dual PDE with `PCF_BIG` = 1 and
//!     `PCF_SMALL` = 0 (RM sets the PCF only in the big half).
//! 11. Kinds are not checked against the kind tables: any 8-bit value on v2, any 4-bit value on
//!     v3.

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

/// Encodes a leaf PTE for `chip`, choosing the format at run time (for tools; the walker
/// uses [`MmuFormat`] directly).
///
/// # Errors
///
/// As [`MmuFormat::encode_pte`].
pub fn encode_pte(chip: Chip, level: Level, state: &PteState) -> Result<u64, FormatError> {
    match chip.mmu_version() {
        MmuVersion::V2 => MmuV2::encode_pte(chip, level, state),
        MmuVersion::V3 => MmuV3::encode_pte(chip, level, state),
    }
}

/// Decodes a leaf PTE for `chip`, choosing the format at run time.
///
/// # Errors
///
/// As [`MmuFormat::decode_pte`].
pub fn decode_pte(chip: Chip, level: Level, raw: u64) -> Result<PteState, FormatError> {
    match chip.mmu_version() {
        MmuVersion::V2 => MmuV2::decode_pte(chip, level, raw),
        MmuVersion::V3 => MmuV3::decode_pte(chip, level, raw),
    }
}

/// Encodes an upper PDE for `chip`, choosing the format at run time.
///
/// # Errors
///
/// As [`MmuFormat::encode_pde`].
pub fn encode_pde(chip: Chip, level: Level, state: &PdeState) -> Result<u64, FormatError> {
    match chip.mmu_version() {
        MmuVersion::V2 => MmuV2::encode_pde(chip, level, state),
        MmuVersion::V3 => MmuV3::encode_pde(chip, level, state),
    }
}

/// Decodes an upper PDE for `chip`, choosing the format at run time.
///
/// # Errors
///
/// As [`MmuFormat::decode_pde`].
pub fn decode_pde(chip: Chip, level: Level, raw: u64) -> Result<PdeState, FormatError> {
    match chip.mmu_version() {
        MmuVersion::V2 => MmuV2::decode_pde(chip, level, raw),
        MmuVersion::V3 => MmuV3::decode_pde(chip, level, raw),
    }
}

/// Encodes a dual PD0 entry for `chip`, choosing the format at run time.
///
/// # Errors
///
/// As [`MmuFormat::encode_dual_pde`].
pub fn encode_dual_pde(chip: Chip, state: &DualPdeState) -> Result<[u64; 2], FormatError> {
    match chip.mmu_version() {
        MmuVersion::V2 => MmuV2::encode_dual_pde(chip, state),
        MmuVersion::V3 => MmuV3::encode_dual_pde(chip, state),
    }
}

/// Decodes a dual PD0 entry for `chip`, choosing the format at run time.
///
/// # Errors
///
/// As [`MmuFormat::decode_dual_pde`].
pub fn decode_dual_pde(chip: Chip, raw: [u64; 2]) -> Result<DualPdeState, FormatError> {
    match chip.mmu_version() {
        MmuVersion::V2 => MmuV2::decode_dual_pde(chip, raw),
        MmuVersion::V3 => MmuV3::decode_dual_pde(chip, raw),
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

#[cfg(test)]
mod proptests;
