//! What the walker and the address-space manager need from a page-table format.
//!
//! [`PtFormat`] is implemented once per MMU version (static dispatch, review point 14 of
//! `nova-series.md` §5) on top of the bit-exact entry codecs of [`crate::mmu`]. It speaks in
//! decoded states ([`PdeState`], [`DualState`], [`LeafState`]) so that the walker never looks at
//! a bit, and it exposes the level geometry of `mmu-formats.md` §1.1/§2.1 as plain numbers.

use crate::addr::{PageSize, PhysAddr, VramAddress};
use crate::chip::MmuVersion;

/// Where a PTE points.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Aperture {
    /// Local video memory.
    Vidmem,
    /// Another GPU's video memory over NVLink/PCIe, through peer slot `0..=7`.
    Peer(u8),
    /// System memory, snooped (coherent).
    SysCoherent,
    /// System memory, not snooped.
    SysNonCoherent,
}

impl Aperture {
    /// Whether a PTE with this aperture lets the GPU reach memory outside its own VRAM.
    #[must_use]
    pub const fn is_external(self) -> bool {
        !matches!(self, Aperture::Vidmem)
    }
}

/// Attributes of a leaf PTE, independent of the MMU version.
///
/// On MMU v3, `volatile`, `privileged`, `read_only` and `atomic_disable` are folded into the PTE
/// PCF; `kind` has 4 bits there and 8 bits on v2.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PteAttrs {
    /// Writes fault.
    pub read_only: bool,
    /// Only privileged (kernel/host) accesses are allowed.
    pub privileged: bool,
    /// Not cached in the GPU L2 (`VOL` on v2, `UNCACHED` on v3).
    pub volatile: bool,
    /// Atomics fault (`ATOMIC_DISABLE` on v2, `NO_ATOMIC` on v3).
    pub atomic_disable: bool,
    /// Memory kind (0 = pitch).
    pub kind: u8,
}

/// A valid leaf PTE, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PteValue {
    /// Where the page is.
    pub aperture: Aperture,
    /// Physical address of the page (aligned to the page size).
    pub addr: PhysAddr,
    /// Access attributes.
    pub attrs: PteAttrs,
}

/// A leaf PTE slot (small, big, or a large PTE in a directory), decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LeafState {
    /// Not mapped (all zero, or another invalid encoding).
    Invalid,
    /// Sparse: reads return zero, writes are dropped, no fault.
    Sparse,
    /// Big PTE only: "no valid 4 KiB PTE below"; the small page table is not consulted.
    NoValid4K,
    /// Mapped.
    Valid(PteValue),
}

/// Where a directory entry points to a next-level table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TablePtr {
    /// The aperture holding the table (`Vidmem`, `SysCoherent` or `SysNonCoherent`).
    pub aperture: Aperture,
    /// Byte address of the table.
    pub addr: u64,
}

/// An upper (8-byte) directory entry, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PdeState {
    /// No next level.
    Invalid,
    /// The whole range covered by the entry is sparse.
    Sparse,
    /// Points to the next-level table.
    Table(TablePtr),
    /// A large-page PTE (512 MiB at PD1, 256 GiB at v3 PD2).
    Leaf(LeafState),
}

/// A dual PD0 (16-byte) entry, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DualState {
    /// A 2 MiB PTE in the low half.
    Leaf(LeafState),
    /// Both pointers invalid and the big half marked sparse: the 2 MiB are sparse.
    Sparse,
    /// Pointers to the big (64 KiB pages) and small (4 KiB pages) page tables; `None` = invalid.
    Tables {
        /// The big page table (32 entries, 256 bytes).
        big: Option<TablePtr>,
        /// The small page table (512 entries, 4 KiB).
        small: Option<TablePtr>,
    },
}

/// Why an entry could not be decoded or encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FormatError {
    /// A reserved bit or an impossible field combination is set.
    #[error("reserved bits set in page-table entry {0:#x}")]
    Reserved(u64),
    /// An address does not fit the entry's address field, or is misaligned.
    #[error("address {0:#x} cannot be encoded in this entry")]
    Address(u64),
    /// An attribute (kind, peer id) does not fit the entry.
    #[error("attribute cannot be encoded in this entry")]
    Attribute,
    /// The entry cannot hold a PTE of this page size at this level.
    #[error("no PTE of this size at this level")]
    Level,
}

/// One MMU version's level geometry and entry codecs, as the walker uses them.
///
/// Directory levels are numbered from the root (`0`) down to PD0 (`DIR_LEVELS - 1`, the dual
/// level). Below PD0 are the two leaf tables: the small page table (512 × 4 KiB PTEs) and the
/// big one (32 × 64 KiB PTEs).
pub trait PtFormat {
    /// The MMU version.
    const VERSION: MmuVersion;
    /// Number of directory levels including the root and PD0 (v2: 4, v3: 5).
    const DIR_LEVELS: usize;

    /// log2 of the VA span of one entry at directory level `level` (root = 0).
    fn dir_shift(level: usize) -> u32;
    /// Number of entries in a table at directory level `level`.
    fn dir_entries(level: usize) -> u64;
    /// The page size a PTE stored at directory level `level` would have, if the format allows
    /// one there at all (the chip decides whether it is legal).
    fn dir_leaf_size(level: usize) -> Option<PageSize>;

    /// Decodes an upper PDE (levels above PD0).
    ///
    /// # Errors
    ///
    /// [`FormatError::Reserved`] for encodings the hardware does not define.
    fn decode_pde(level: usize, raw: u64) -> Result<PdeState, FormatError>;
    /// Encodes an upper PDE pointing at a vidmem table.
    ///
    /// # Errors
    ///
    /// [`FormatError::Address`] if the table address does not fit.
    fn encode_pde_table(table: VramAddress) -> Result<u64, FormatError>;
    /// The sparse upper PDE.
    fn pde_sparse() -> u64;
    /// Encodes a large-page PTE stored in an upper PDE slot at `level`.
    ///
    /// # Errors
    ///
    /// [`FormatError`] if the value or the level cannot hold it.
    fn encode_pde_leaf(level: usize, v: &PteValue) -> Result<u64, FormatError>;

    /// Decodes a dual PD0 entry.
    ///
    /// # Errors
    ///
    /// [`FormatError::Reserved`] for encodings the hardware does not define.
    fn decode_dual(raw: [u64; 2]) -> Result<DualState, FormatError>;
    /// Encodes a dual PD0 entry with the given vidmem big and small page tables.
    ///
    /// # Errors
    ///
    /// [`FormatError::Address`] if a table address does not fit or is misaligned.
    fn encode_dual_tables(
        big: Option<VramAddress>,
        small: Option<VramAddress>,
    ) -> Result<[u64; 2], FormatError>;
    /// The sparse dual PD0 entry (2 MiB sparse).
    fn dual_sparse() -> [u64; 2];
    /// Encodes a 2 MiB PTE stored in a dual PD0 entry.
    ///
    /// # Errors
    ///
    /// [`FormatError`] if the value cannot be encoded.
    fn encode_dual_leaf(v: &PteValue) -> Result<[u64; 2], FormatError>;

    /// Decodes a small (`big == false`) or big PTE.
    ///
    /// # Errors
    ///
    /// [`FormatError::Reserved`] for encodings the hardware does not define.
    fn decode_pte(raw: u64, big: bool) -> Result<LeafState, FormatError>;
    /// Encodes a valid 4 KiB or 64 KiB PTE.
    ///
    /// # Errors
    ///
    /// [`FormatError`] if the value cannot be encoded.
    fn encode_pte(v: &PteValue, size: PageSize) -> Result<u64, FormatError>;
    /// The sparse PTE.
    fn pte_sparse() -> u64;
    /// The big PTE meaning "no valid 4 KiB PTE below" (`mmu-formats.md` §1.5, §7.1).
    fn pte_no_valid_4k() -> u64;

    /// Changes the attributes of an encoded valid PTE word (small, big, or large) without
    /// touching its address, for change-protection.
    ///
    /// # Errors
    ///
    /// [`FormatError`] if the word is not a valid PTE or the attributes cannot be encoded.
    fn reprotect(raw: u64, attrs: &PteAttrs) -> Result<u64, FormatError>;
}

/// Number of 4 KiB slots in a small page table.
pub const SMALL_PT_ENTRIES: u64 = 512;
/// Number of 64 KiB slots in a big page table.
pub const BIG_PT_ENTRIES: u64 = 32;
/// Bytes of a small page table.
pub const SMALL_PT_BYTES: u64 = 4096;
/// Bytes of a big page table.
pub const BIG_PT_BYTES: u64 = 256;

/// Bytes of a table at directory level `level` (`entries × entry size`; PD0 entries are 16 B).
#[must_use]
pub fn dir_table_bytes<M: PtFormat>(level: usize) -> u64 {
    let entry = if is_dual::<M>(level) { 16 } else { 8 };
    M::dir_entries(level).saturating_mul(entry)
}

/// Whether `level` is the dual PD0 level.
#[must_use]
pub fn is_dual<M: PtFormat>(level: usize) -> bool {
    level.checked_add(1) == Some(M::DIR_LEVELS)
}

/// Number of 64-bit words per entry at directory level `level`.
#[must_use]
pub fn dir_entry_words<M: PtFormat>(level: usize) -> u64 {
    if is_dual::<M>(level) {
        2
    } else {
        1
    }
}
