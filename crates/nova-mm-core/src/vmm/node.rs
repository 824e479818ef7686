//! The host shadow of the page-table tree: one [`Node`] per table, child arrays for directories.
//!
//! Every table the manager knows has a node holding its VRAM address and two counts:
//! - `refs`: slots (PTEs, or directory child slots) referenced by a live mapping *or* by a
//!   prepared operation; the table exists while `refs > 0`;
//! - `live`: slots that the hardware currently sees as valid or sparse; the table is linked
//!   into its parent exactly while `live > 0` (the root is always linked).
//!
//! At the dual PD0 level each entry has two child slots (big page table, small page table), so
//! each PD0 entry is counted twice, once per half, and each half is linked and unlinked on its
//! own. A small page table keeps, per 64 KiB, the number of live 4 KiB PTEs (`sub`), which
//! decides the big PTE of that 64 KiB when it is not itself mapped: `0` (use the small table)
//! when some small PTE is live, "no valid 4 KiB below" otherwise. A big page table keeps one
//! live flag per slot in `sub`.
//!
//! A new small page table is zeroed in prepare except for the slots its creating operation
//! will write anyway (`dirty`), which saves writing most of the table twice.

use crate::addr::VramAddress;

/// Child slot: nothing referenced.
pub const KID_NONE: u32 = u32::MAX;
/// Child slot: a large-page PTE (or sparse entry) referenced by a prepared operation.
pub const KID_LEAF_REF: u32 = u32::MAX - 1;
/// Child slot: a large-page PTE (or sparse entry) the hardware sees.
pub const KID_LEAF_LIVE: u32 = u32::MAX - 2;
/// Child slot: an entry the manager did not write (an existing address space's own mapping);
/// never touched.
pub const KID_FOREIGN: u32 = u32::MAX - 3;

/// Whether a child slot value names a node.
#[must_use]
pub const fn is_node(kid: u32) -> bool {
    kid < KID_FOREIGN
}

/// Child slots of one directory (PD0: slot `2i` = big half or 2 MiB leaf, `2i + 1` = small).
pub type Kids = [u32; 512];

/// What a node is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum NodeKind {
    /// Unused slab slot (on the free list).
    #[default]
    Free,
    /// A directory (root .. PD0).
    Dir,
    /// A small page table (512 × 4 KiB PTEs).
    Small,
    /// A big page table (32 × 64 KiB PTEs).
    Big,
    /// Unlinked by an executed operation; its table is returned to the allocator by cleanup.
    Pending,
}

/// One page table in the shadow.
#[derive(Clone, Copy, Debug, Default)]
pub struct Node {
    /// VRAM address of the table.
    pub addr: VramAddress,
    /// Directory level (root = 0) or `DIR_LEVELS` for page tables.
    pub level: u8,
    /// What it is.
    pub kind: NodeKind,
    /// Not allocated by the manager (part of an existing address space): never freed.
    pub foreign: bool,
    /// Referenced slots (see the module docs).
    pub refs: u32,
    /// Live slots.
    pub live: u32,
    /// Directory: index of its child array. Free/pending: next node in the list.
    pub link: u32,
    /// Small page table: live 4 KiB PTEs per 64 KiB. Big page table: 1 per live slot.
    pub sub: [u8; 32],
    /// Small page table not linked yet: slots `dirty.0..dirty.1` were not zeroed, because the
    /// operation that created the table writes exactly them before linking it. Whoever links
    /// the table first zeroes them unless it is that operation. Empty once linked.
    pub dirty: (u16, u16),
}
