//! The memory apertures an entry can point into.
//!
//! PTEs and PDEs encode the aperture differently (`mmu-formats.md` §1.2, §1.4, §2.2, §2.3): in a
//! PTE the value 0 is video memory and 1 is peer memory, in a PDE 0 means "no table" and 1 is
//! video memory. Two distinct enums keep the encodings from being mixed up.

use core::fmt;

/// `NV_MMU_VER{2,3}_PTE_APERTURE`: where a PTE's page lives.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum PteAperture {
    /// `VIDEO_MEMORY` (0): this GPU's VRAM.
    Vidmem,
    /// `PEER_MEMORY` (1): another GPU's VRAM, selected by the PTE's peer id.
    Peer,
    /// `SYSTEM_COHERENT_MEMORY` (2): system memory, snooped.
    SysmemCoherent,
    /// `SYSTEM_NON_COHERENT_MEMORY` (3): system memory, not snooped.
    SysmemNonCoherent,
}

impl PteAperture {
    /// All PTE apertures, in encoding order.
    pub const ALL: [PteAperture; 4] = [
        PteAperture::Vidmem,
        PteAperture::Peer,
        PteAperture::SysmemCoherent,
        PteAperture::SysmemNonCoherent,
    ];

    /// The 2-bit field value.
    #[must_use]
    pub const fn bits(self) -> u8 {
        match self {
            PteAperture::Vidmem => 0,
            PteAperture::Peer => 1,
            PteAperture::SysmemCoherent => 2,
            PteAperture::SysmemNonCoherent => 3,
        }
    }

    /// The aperture for a 2-bit field value; only the low two bits of `bits` are looked at,
    /// so every input has an answer.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => PteAperture::Vidmem,
            1 => PteAperture::Peer,
            2 => PteAperture::SysmemCoherent,
            _ => PteAperture::SysmemNonCoherent,
        }
    }

    /// Whether the aperture is system memory (either coherence).
    #[must_use]
    pub const fn is_sysmem(self) -> bool {
        matches!(
            self,
            PteAperture::SysmemCoherent | PteAperture::SysmemNonCoherent
        )
    }
}

/// `NV_MMU_VER{2,3}_PDE_APERTURE` (also `APERTURE_BIG`/`APERTURE_SMALL` of a dual PDE): the
/// raw field of a page-directory entry, including the "no table" value 0.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum PdeAperture {
    /// `INVALID` (0): no next-level table (the entry is invalid or sparse).
    Invalid,
    /// `VIDEO_MEMORY` (1).
    Vidmem,
    /// `SYSTEM_COHERENT_MEMORY` (2).
    SysmemCoherent,
    /// `SYSTEM_NON_COHERENT_MEMORY` (3).
    SysmemNonCoherent,
}

impl PdeAperture {
    /// The 2-bit field value.
    #[must_use]
    pub const fn bits(self) -> u8 {
        match self {
            PdeAperture::Invalid => 0,
            PdeAperture::Vidmem => 1,
            PdeAperture::SysmemCoherent => 2,
            PdeAperture::SysmemNonCoherent => 3,
        }
    }

    /// The aperture for a 2-bit field value (only the low two bits are looked at).
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => PdeAperture::Invalid,
            1 => PdeAperture::Vidmem,
            2 => PdeAperture::SysmemCoherent,
            _ => PdeAperture::SysmemNonCoherent,
        }
    }

    /// The table aperture, or `None` for [`PdeAperture::Invalid`].
    #[must_use]
    pub const fn table(self) -> Option<TableAperture> {
        match self {
            PdeAperture::Invalid => None,
            PdeAperture::Vidmem => Some(TableAperture::Vidmem),
            PdeAperture::SysmemCoherent => Some(TableAperture::SysmemCoherent),
            PdeAperture::SysmemNonCoherent => Some(TableAperture::SysmemNonCoherent),
        }
    }
}

/// Where a next-level page table lives: a [`PdeAperture`] without `Invalid`, so that a
/// "table at an invalid aperture" cannot be expressed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum TableAperture {
    /// Video memory (PDE aperture 1).
    Vidmem,
    /// Coherent system memory (PDE aperture 2).
    SysmemCoherent,
    /// Non-coherent system memory (PDE aperture 3).
    SysmemNonCoherent,
}

impl TableAperture {
    /// All table apertures.
    pub const ALL: [TableAperture; 3] = [
        TableAperture::Vidmem,
        TableAperture::SysmemCoherent,
        TableAperture::SysmemNonCoherent,
    ];

    /// The 2-bit PDE field value (1, 2 or 3).
    #[must_use]
    pub const fn bits(self) -> u8 {
        PdeAperture::from_table(self).bits()
    }

    /// Whether the table is in system memory.
    #[must_use]
    pub const fn is_sysmem(self) -> bool {
        !matches!(self, TableAperture::Vidmem)
    }
}

impl From<TableAperture> for PdeAperture {
    fn from(a: TableAperture) -> Self {
        Self::from_table(a)
    }
}

impl PdeAperture {
    /// The PDE field value naming a table aperture (usable in `const` context).
    #[must_use]
    pub const fn from_table(a: TableAperture) -> Self {
        match a {
            TableAperture::Vidmem => PdeAperture::Vidmem,
            TableAperture::SysmemCoherent => PdeAperture::SysmemCoherent,
            TableAperture::SysmemNonCoherent => PdeAperture::SysmemNonCoherent,
        }
    }
}

impl fmt::Display for PteAperture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PteAperture::Vidmem => "vid",
            PteAperture::Peer => "peer",
            PteAperture::SysmemCoherent => "sys-coh",
            PteAperture::SysmemNonCoherent => "sys-noncoh",
        })
    }
}

impl fmt::Display for TableAperture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableAperture::Vidmem => "vid",
            TableAperture::SysmemCoherent => "sys-coh",
            TableAperture::SysmemNonCoherent => "sys-noncoh",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pte_and_pde_apertures_encode_differently() {
        // PTE: 0 vid, 1 peer, 2 sys coh, 3 sys noncoh; PDE: 0 invalid, 1 vid, 2, 3.
        assert_eq!(PteAperture::Vidmem.bits(), 0);
        assert_eq!(PteAperture::Peer.bits(), 1);
        assert_eq!(PdeAperture::Invalid.bits(), 0);
        assert_eq!(TableAperture::Vidmem.bits(), 1);
        assert_eq!(TableAperture::SysmemCoherent.bits(), 2);
        assert_eq!(TableAperture::SysmemNonCoherent.bits(), 3);
        for b in 0..8u8 {
            assert_eq!(PteAperture::from_bits(b).bits(), b & 3);
            assert_eq!(PdeAperture::from_bits(b).bits(), b & 3);
        }
        assert_eq!(PdeAperture::Invalid.table(), None);
        for t in TableAperture::ALL {
            assert_eq!(PdeAperture::from(t).table(), Some(t));
        }
    }
}
