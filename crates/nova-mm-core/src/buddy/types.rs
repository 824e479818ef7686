//! The request, block and error types of the buddy allocator's public contract.

/// How a [`Buddy`](super::Buddy) is laid out: where the managed space starts, how big it is and the
/// smallest unit it hands out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BuddyParams {
    /// Absolute address of the first managed byte; every [`Block::offset`] includes it.
    pub base_offset: u64,
    /// Bytes to manage; rounded down to a multiple of `chunk_size` (the remainder is dropped, as
    /// `gpu_buddy_init` does).
    pub size: u64,
    /// The smallest block: a power of two, at least 4 KiB.
    pub chunk_size: u64,
}

/// Where an allocation may be placed. An enum, so `RANGE | TOPDOWN` cannot be asked for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AllocMode {
    /// Anywhere: the smallest free order that fits, highest address first (gpu_buddy's default).
    Simple,
    /// Inside `[start, end)` (absolute addresses, base included). `start + size == end` asks for
    /// exactly that range.
    Range {
        /// First allowed byte (absolute).
        start: u64,
        /// One past the last allowed byte (absolute).
        end: u64,
    },
    /// The highest free address (kernel buffers that should stay out of the CPU-visible window).
    TopDown,
}

/// Request flags; the placement flags of gpu_buddy live in [`AllocMode`] instead.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct AllocFlags(u8);

impl AllocFlags {
    /// No flag.
    pub const NONE: Self = Self(0);
    /// One physically contiguous run (gpu_buddy `CONTIGUOUS_ALLOCATION`).
    pub const CONTIGUOUS: Self = Self(1);
    /// Prefer memory known to be zeroed (gpu_buddy `CLEAR_ALLOCATION`); a preference only, check
    /// [`Block::is_clear`].
    pub const CLEAR: Self = Self(2);
    /// Keep the rounded-up size; the caller trims (amdgpu's DCC alignment).
    pub const TRIM_DISABLE: Self = Self(4);

    /// Whether every flag of `other` is set in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl core::ops::BitOr for AllocFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// One allocation request (gpu_buddy_alloc_blocks' arguments).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AllocRequest {
    /// Placement.
    pub mode: AllocMode,
    /// Bytes wanted; a multiple of the chunk size.
    pub size: u64,
    /// Every block is at least this big and aligned to it (a power of two ≥ chunk size). With
    /// `size < min_block_size` and `size` a power of two, one block of exactly `size` at a
    /// `min_block_size`-aligned offset is returned instead (offset-aligned request).
    pub min_block_size: u64,
    /// Flags.
    pub flags: AllocFlags,
}

impl AllocRequest {
    /// A request of `size` bytes in `mode` with blocks of at least `min_block_size` and no flags.
    #[must_use]
    pub const fn new(mode: AllocMode, size: u64, min_block_size: u64) -> Self {
        Self {
            mode,
            size,
            min_block_size,
            flags: AllocFlags::NONE,
        }
    }

    /// The same request with `flags`.
    #[must_use]
    pub const fn with_flags(self, flags: AllocFlags) -> Self {
        Self { flags, ..self }
    }
}

/// One allocated block: naturally aligned (relative to the base), `chunk_size << order` bytes.
///
/// Only the allocator makes these, so a block always names memory that was handed out.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Block {
    pub(crate) offset: u64,
    pub(crate) order: u8,
    pub(crate) chunk_shift: u8,
    pub(crate) clear: bool,
}

impl Block {
    /// A placeholder for caller-provided output arrays; never returned by the allocator.
    pub const EMPTY: Self = Self {
        offset: 0,
        order: 0,
        chunk_shift: 0,
        clear: false,
    };

    /// Absolute address of the first byte (base offset included).
    #[must_use]
    pub const fn offset(&self) -> u64 {
        self.offset
    }

    /// `log2(size / chunk_size)`.
    #[must_use]
    pub const fn order(&self) -> u32 {
        self.order as u32
    }

    /// Bytes in the block.
    #[must_use]
    pub const fn size(&self) -> u64 {
        match 1u64.checked_shl((self.order as u32).saturating_add(self.chunk_shift as u32)) {
            Some(s) => s,
            None => 0,
        }
    }

    /// Whether every byte was known to be zeroed when the block was handed out.
    #[must_use]
    pub const fn is_clear(&self) -> bool {
        self.clear
    }
}

/// Which argument check failed (gpu_buddy returns `-EINVAL` for all of them; the checks run in the
/// kernel's order).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InvalidArg {
    /// `chunk_size` is below 4 KiB or not a power of two, or `size < chunk_size` (init).
    Params,
    /// `size < chunk_size`.
    SizeBelowChunk,
    /// `min_block_size < chunk_size`, or not a power of two.
    MinBlockSize,
    /// `start`, `end` or `size` is not a multiple of the chunk size (or `start` is below the base).
    Unaligned,
    /// `end` is beyond the managed size.
    EndBeyondSize,
    /// `start >= size` or `size > managed size - start`.
    RangeOverflow,
    /// An exact range whose start or end is not aligned to `min_block_size`.
    ExactRangeMisaligned,
    /// The rounded request is bigger than the largest order or the managed size.
    Oversized,
    /// A trim size or start that does not fit the block.
    Trim,
}

/// Why an operation failed. Every failure leaves the allocator exactly as it was.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BuddyError {
    /// Bad arguments (kernel `-EINVAL`).
    #[error("invalid argument: {0:?}")]
    Invalid(InvalidArg),
    /// Not enough free memory of the requested shape (kernel `-ENOSPC`).
    #[error("no space")]
    NoSpace,
    /// The caller's block sink had no room for the result.
    #[error("the block sink is full")]
    SinkFull,
    /// A freed or trimmed block is not (wholly) allocated: a double free or a foreign block.
    #[error("block at {offset:#x} of order {order} is not allocated")]
    NotAllocated {
        /// The block's offset.
        offset: u64,
        /// The block's order.
        order: u32,
    },
    /// The metadata could not be allocated (`Buddy::new`), or the caller's storage is too small.
    #[error("metadata storage unavailable or too small")]
    NoMemory,
}

impl BuddyError {
    /// The negative errno the kernel's gpu_buddy returns for the same situation.
    #[must_use]
    pub const fn errno(&self) -> i32 {
        match self {
            Self::Invalid(_) | Self::NotAllocated { .. } => -22,
            Self::NoSpace => -28,
            Self::SinkFull | Self::NoMemory => -12,
        }
    }
}

/// An inconsistency found by [`Buddy::check`](super::Buddy::check).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Violation {
    /// The free bit of block `index` at `order` disagrees with the free-chunk map (not free, not
    /// maximal, or missing).
    #[error("free map of order {order} is wrong at block {index}")]
    FreeMap {
        /// Order.
        order: u32,
        /// Block index at that order.
        index: u64,
    },
    /// A summary bit disagrees with the words below it.
    #[error("summary of bitmap {tree} level {level} is wrong at word {word}")]
    Summary {
        /// Bitmap number.
        tree: usize,
        /// Summary level.
        level: usize,
        /// Word index at that level.
        word: u64,
    },
    /// A per-order free count or the non-empty mask is wrong.
    #[error("free count of order {order} is wrong")]
    Count {
        /// Order.
        order: u32,
    },
    /// `avail` or `clear_avail` disagree with the maps.
    #[error("available-byte counters are wrong")]
    Avail,
    /// Bits beyond the managed size are set.
    #[error("padding bits are set")]
    Padding,
}

/// What is still allocated at teardown (gpu_buddy_fini's leak check, as a value instead of a WARN).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Leak {
    /// Bytes still allocated.
    pub allocated_bytes: u64,
    /// Bytes free (`size - allocated_bytes`).
    pub free_bytes: u64,
}
