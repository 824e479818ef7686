//! GPU families and what each one allows.
//!
//! Behaviour is gated by chip, not by MMU version alone: Ampere and Ada use the version 2 format
//! but allow 512 MiB PTEs that Turing does not, and only Blackwell allows 256 GiB PTEs
//! (`mmu-formats.md` §1.1, §2.1, §7.15).

use core::fmt;
use core::str::FromStr;

use crate::addr::PageSize;

/// The page-table format generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MmuVersion {
    /// MMU version 2: Pascal through Ada, 5 levels, 49-bit VA.
    V2,
    /// MMU version 3: Hopper and Blackwell, 6 levels, 57-bit VA.
    V3,
}

impl MmuVersion {
    /// Short name as used on the command line: `v2` or `v3`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            MmuVersion::V2 => "v2",
            MmuVersion::V3 => "v3",
        }
    }

    /// Width of the GPU virtual address space in bits.
    #[must_use]
    pub const fn va_bits(self) -> u32 {
        match self {
            MmuVersion::V2 => 49,
            MmuVersion::V3 => 57,
        }
    }
}

impl fmt::Display for MmuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for a name that is not a known chip or MMU version.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("unknown chip or MMU version name")]
pub struct UnknownName;

impl FromStr for MmuVersion {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v2" | "V2" | "2" => Ok(MmuVersion::V2),
            "v3" | "V3" | "3" => Ok(MmuVersion::V3),
            _ => Err(UnknownName),
        }
    }
}

/// A GPU architecture family, Pascal through Blackwell.
///
/// nova-core itself starts at Turing; VFIO users also run Pascal and Volta.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Chip {
    /// GP10x.
    Pascal,
    /// GV100.
    Volta,
    /// TU10x, TU11x.
    Turing,
    /// GA10x.
    Ampere,
    /// AD10x.
    Ada,
    /// GH100.
    Hopper,
    /// Blackwell data-centre parts (GB10x).
    BlackwellGb10x,
    /// Blackwell GB20x.
    BlackwellGb20x,
}

impl Chip {
    /// Every chip family, oldest first.
    pub const ALL: [Chip; 8] = [
        Chip::Pascal,
        Chip::Volta,
        Chip::Turing,
        Chip::Ampere,
        Chip::Ada,
        Chip::Hopper,
        Chip::BlackwellGb10x,
        Chip::BlackwellGb20x,
    ];

    /// The page-table format the chip uses.
    #[must_use]
    pub const fn mmu_version(self) -> MmuVersion {
        match self {
            Chip::Pascal | Chip::Volta | Chip::Turing | Chip::Ampere | Chip::Ada => MmuVersion::V2,
            Chip::Hopper | Chip::BlackwellGb10x | Chip::BlackwellGb20x => MmuVersion::V3,
        }
    }

    /// Whether the chip's MMU accepts a PTE of this size.
    ///
    /// 4 KiB, 64 KiB and 2 MiB everywhere; 512 MiB at PD1 from Ampere on (RM
    /// `kern_gmmu_fmt_ga10x.c`, UVM); 256 GiB at PD2 on Blackwell only.
    #[must_use]
    pub const fn supports_page_size(self, size: PageSize) -> bool {
        match size {
            PageSize::Size4K | PageSize::Size64K | PageSize::Size2M => true,
            PageSize::Size512M => !matches!(self, Chip::Pascal | Chip::Volta | Chip::Turing),
            PageSize::Size256G => matches!(self, Chip::BlackwellGb10x | Chip::BlackwellGb20x),
        }
    }

    /// The largest page size the chip supports.
    #[must_use]
    pub const fn largest_page_size(self) -> PageSize {
        if self.supports_page_size(PageSize::Size256G) {
            PageSize::Size256G
        } else if self.supports_page_size(PageSize::Size512M) {
            PageSize::Size512M
        } else {
            PageSize::Size2M
        }
    }

    /// Width of the v2 PTE `COMPTAGLINE` field: 18 bits (53:36) on Pascal and Volta, 20 bits
    /// (55:36) from Turing on (`mmu-formats.md` §7.3). Zero on MMU v3, which has no comptag
    /// line in the PTE.
    #[must_use]
    pub const fn comptagline_bits(self) -> u32 {
        match self {
            Chip::Pascal | Chip::Volta => 18,
            Chip::Turing | Chip::Ampere | Chip::Ada => 20,
            Chip::Hopper | Chip::BlackwellGb10x | Chip::BlackwellGb20x => 0,
        }
    }

    /// Whether the v2 PDE/PTE bit 5 `NO_ATS` exists (Volta and later).
    #[must_use]
    pub const fn has_no_ats(self) -> bool {
        !matches!(self, Chip::Pascal)
    }

    /// The lowercase name used on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Chip::Pascal => "pascal",
            Chip::Volta => "volta",
            Chip::Turing => "turing",
            Chip::Ampere => "ampere",
            Chip::Ada => "ada",
            Chip::Hopper => "hopper",
            Chip::BlackwellGb10x => "gb10x",
            Chip::BlackwellGb20x => "gb20x",
        }
    }
}

impl fmt::Display for Chip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Chip {
    type Err = UnknownName;

    /// Accepts the family names (`turing`, `hopper`, `gb10x`, ...), a few common chip names
    /// (`gp100`, `gv100`, `tu102`, `ga102`, `ad102`, `gh100`, `gb100`, `gb202`) and `blackwell`
    /// (meaning GB20x), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const NAMES: [(&str, Chip); 24] = [
            ("pascal", Chip::Pascal),
            ("gp100", Chip::Pascal),
            ("gp102", Chip::Pascal),
            ("gp104", Chip::Pascal),
            ("volta", Chip::Volta),
            ("gv100", Chip::Volta),
            ("turing", Chip::Turing),
            ("tu102", Chip::Turing),
            ("tu104", Chip::Turing),
            ("tu106", Chip::Turing),
            ("ampere", Chip::Ampere),
            ("ga100", Chip::Ampere),
            ("ga102", Chip::Ampere),
            ("ada", Chip::Ada),
            ("ad102", Chip::Ada),
            ("hopper", Chip::Hopper),
            ("gh100", Chip::Hopper),
            ("gb10x", Chip::BlackwellGb10x),
            ("gb100", Chip::BlackwellGb10x),
            ("gb102", Chip::BlackwellGb10x),
            ("gb20x", Chip::BlackwellGb20x),
            ("gb202", Chip::BlackwellGb20x),
            ("gb203", Chip::BlackwellGb20x),
            ("blackwell", Chip::BlackwellGb20x),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|&(_, c)| c)
            .ok_or(UnknownName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_gating_is_by_chip() {
        assert!(!Chip::Turing.supports_page_size(PageSize::Size512M));
        assert!(Chip::Ampere.supports_page_size(PageSize::Size512M));
        assert_eq!(Chip::Ampere.mmu_version(), Chip::Turing.mmu_version());
        assert!(!Chip::Hopper.supports_page_size(PageSize::Size256G));
        assert!(Chip::BlackwellGb10x.supports_page_size(PageSize::Size256G));
        assert_eq!(Chip::Hopper.largest_page_size(), PageSize::Size512M);
        assert_eq!(Chip::Volta.largest_page_size(), PageSize::Size2M);
    }

    #[test]
    fn names_parse_back() {
        for c in Chip::ALL {
            assert_eq!(c.name().parse::<Chip>(), Ok(c));
        }
        assert_eq!("GH100".parse::<Chip>(), Ok(Chip::Hopper));
        assert!("rtx".parse::<Chip>().is_err());
        assert_eq!("v3".parse::<MmuVersion>(), Ok(MmuVersion::V3));
    }
}
