//! `Arbitrary` inputs for the core's semantic types.
//!
//! The core's types do not derive `Arbitrary` (it is not a kernel dependency), so each one has
//! a small mirror here with a `get` that turns it into the real value. Addresses and fields
//! are biased: a few selector bits choose an alignment and a width so that many generated
//! values are legal for some chip and level, and the rest probe the edges.

use arbitrary::Arbitrary;
use nova_mm_core::mmu::{
    DualHalf, DualPdeState, Level, PdeAttrs, PdeState, PdeTable, PteAperture, PteAttrs, PteMapping,
    PteState, TableAperture,
};
use nova_mm_core::{Chip, PhysAddr};

/// Every level, in a fixed order (the index a fuzz input picks from).
pub const ALL_LEVELS: [Level; 7] = [
    Level::Pd4,
    Level::Pd3,
    Level::Pd2,
    Level::Pd1,
    Level::Pd0,
    Level::PtBig,
    Level::PtSmall,
];

/// The chip for a fuzz byte (every value maps to one of [`Chip::ALL`]).
#[must_use]
pub fn chip(b: u8) -> Chip {
    let i = usize::from(b) % Chip::ALL.len();
    Chip::ALL.get(i).copied().unwrap_or(Chip::Turing)
}

/// The level for a fuzz byte (every value maps to one of [`ALL_LEVELS`]).
#[must_use]
pub fn level(b: u8) -> Level {
    let i = usize::from(b) % ALL_LEVELS.len();
    ALL_LEVELS.get(i).copied().unwrap_or(Level::PtSmall)
}

/// A physical address: `raw`, optionally aligned and truncated to a width that some entry
/// field has (37 bits v2 vidmem, 40 v3 vidmem, 52 v3 sysmem, 58 v2 sysmem, ...).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ArbAddr {
    /// The address bits.
    pub raw: u64,
    /// Low 3 bits: the alignment (none, 256 B, 4 KiB, 64 KiB, 2 MiB, 512 MiB, 256 GiB, none);
    /// bits 3..6: the width.
    pub shape: u8,
}

impl ArbAddr {
    /// The address.
    #[must_use]
    pub fn get(self) -> PhysAddr {
        const SHIFTS: [u32; 8] = [0, 8, 12, 16, 21, 29, 38, 0];
        const WIDTHS: [u32; 8] = [64, 37, 40, 52, 58, 24, 36, 64];
        let shift = SHIFTS
            .get(usize::from(self.shape & 7))
            .copied()
            .unwrap_or(0);
        let width = WIDTHS
            .get(usize::from((self.shape >> 3) & 7))
            .copied()
            .unwrap_or(64);
        let mut a = self.raw;
        if width < 64 {
            a &= (1u64 << width) - 1;
        }
        a &= !((1u64 << shift) - 1);
        PhysAddr::new(a)
    }
}

/// A valid-PTE mapping.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ArbPteMapping {
    /// Aperture field value (low two bits).
    pub aperture: u8,
    /// The page address.
    pub address: ArbAddr,
    /// Peer id.
    pub peer_id: u8,
    /// Bits 0..6: read-only, privileged, volatile, atomic-disable, encrypted, ACD; bit 6: keep
    /// peer id, kind and comptag line small (so that they fit their fields).
    pub flags: u8,
    /// Kind.
    pub kind: u8,
    /// Comptag line.
    pub comptagline: u32,
}

impl ArbPteMapping {
    /// The mapping.
    #[must_use]
    pub fn get(self) -> PteMapping {
        let f = |b: u8| self.flags & (1 << b) != 0;
        let small = f(6);
        let aperture = PteAperture::from_bits(self.aperture);
        PteMapping {
            aperture,
            address: self.address.get(),
            peer_id: if small {
                if aperture == PteAperture::Peer {
                    self.peer_id & 7
                } else {
                    0
                }
            } else {
                self.peer_id
            },
            attrs: PteAttrs {
                read_only: f(0),
                privileged: f(1),
                volatile: f(2),
                atomic_disable: f(3),
                encrypted: f(4),
                access_counting_disabled: f(5),
                kind: if small { self.kind & 0xf } else { self.kind },
                comptagline: if small {
                    if aperture.is_sysmem() {
                        0
                    } else {
                        self.comptagline & 0x3_ffff
                    }
                } else {
                    self.comptagline
                },
            },
        }
    }
}

/// A leaf PTE state.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ArbPteState {
    /// [`PteState::Invalid`].
    Invalid,
    /// [`PteState::Sparse`].
    Sparse,
    /// [`PteState::NoValid4K`].
    NoValid4K,
    /// [`PteState::MappingNowhere`].
    MappingNowhere,
    /// [`PteState::Valid`].
    Valid(ArbPteMapping),
}

impl ArbPteState {
    /// The state.
    #[must_use]
    pub fn get(self) -> PteState {
        match self {
            ArbPteState::Invalid => PteState::Invalid,
            ArbPteState::Sparse => PteState::Sparse,
            ArbPteState::NoValid4K => PteState::NoValid4K,
            ArbPteState::MappingNowhere => PteState::MappingNowhere,
            ArbPteState::Valid(m) => PteState::Valid(m.get()),
        }
    }
}

/// A pointer to a next-level table.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ArbPdeTable {
    /// 0, 1, 2 → vidmem, coherent, non-coherent (mod 3).
    pub aperture: u8,
    /// The table address.
    pub address: ArbAddr,
    /// Uncached.
    pub uncached: bool,
    /// ATS not allowed.
    pub no_ats: bool,
}

impl ArbPdeTable {
    /// The table pointer.
    #[must_use]
    pub fn get(self) -> PdeTable {
        let i = usize::from(self.aperture) % TableAperture::ALL.len();
        PdeTable {
            aperture: TableAperture::ALL
                .get(i)
                .copied()
                .unwrap_or(TableAperture::Vidmem),
            address: self.address.get(),
            attrs: PdeAttrs {
                uncached: self.uncached,
                no_ats: self.no_ats,
            },
        }
    }
}

/// An upper PDE state.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ArbPdeState {
    /// [`PdeState::Invalid`].
    Invalid,
    /// [`PdeState::Sparse`].
    Sparse,
    /// [`PdeState::Table`].
    Table(ArbPdeTable),
    /// [`PdeState::Pte`].
    Pte(ArbPteMapping),
}

impl ArbPdeState {
    /// The state.
    #[must_use]
    pub fn get(self) -> PdeState {
        match self {
            ArbPdeState::Invalid => PdeState::Invalid,
            ArbPdeState::Sparse => PdeState::Sparse,
            ArbPdeState::Table(t) => PdeState::Table(t.get()),
            ArbPdeState::Pte(m) => PdeState::Pte(m.get()),
        }
    }
}

/// One half of a dual PDE.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ArbDualHalf {
    /// [`DualHalf::Invalid`].
    Invalid,
    /// [`DualHalf::Table`].
    Table(ArbPdeTable),
}

impl ArbDualHalf {
    /// The half.
    #[must_use]
    pub fn get(self) -> DualHalf {
        match self {
            ArbDualHalf::Invalid => DualHalf::Invalid,
            ArbDualHalf::Table(t) => DualHalf::Table(t.get()),
        }
    }
}

/// A dual PD0 state.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ArbDualPdeState {
    /// [`DualPdeState::Pte`].
    Pte(ArbPteMapping),
    /// [`DualPdeState::Sparse`].
    Sparse,
    /// [`DualPdeState::Tables`].
    Tables {
        /// Big half.
        big: ArbDualHalf,
        /// Small half.
        small: ArbDualHalf,
    },
}

impl ArbDualPdeState {
    /// The state.
    #[must_use]
    pub fn get(self) -> DualPdeState {
        match self {
            ArbDualPdeState::Pte(m) => DualPdeState::Pte(m.get()),
            ArbDualPdeState::Sparse => DualPdeState::Sparse,
            ArbDualPdeState::Tables { big, small } => DualPdeState::Tables {
                big: big.get(),
                small: small.get(),
            },
        }
    }
}
