//! The chip HAL: the one place that decides, per [`Chip`], which BAR0 registers the hardware layer
//! uses, how wide their fields are and what the chip can do (`mmu-formats.md` §3, §4, §7.7,
//! §7.8; `nova-series.md` review point 12: gate by chip, not by MMU version).
//!
//! Nothing else in the hardware layer names a register offset or a field width.

use crate::chip::{Chip, MmuVersion};
use crate::tlb::CacheLevel;

/// BAR0 offset of the PRAMIN aperture, `NV_PRAMIN` (0x700000–0x7FFFFF) on every supported chip.
pub const PRAMIN_APERTURE: u32 = 0x0070_0000;
/// Size of the PRAMIN aperture: 1 MiB (`mmu-formats.md` §7.6: trust 1 MiB).
pub const PRAMIN_SIZE: u64 = 1 << 20;
/// The window base moves in 64 KiB steps (`BASE_SHIFT` 16).
pub const PRAMIN_BASE_SHIFT: u32 = 16;

/// `NV_PMC_BOOT_0`: chip identification (architecture 28:24 plus 8, implementation 23:20).
pub const NV_PMC_BOOT_0: u32 = 0x0000_0000;
/// `NV_PMC_BOOT_42`: chip identification on newer chips (architecture 29:24, implementation 23:20).
pub const NV_PMC_BOOT_42: u32 = 0x0000_0A00;

/// Which register moves the PRAMIN window, and its layout.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct WindowRegister {
    /// BAR0 offset: `NV_PBUS_BAR0_WINDOW` (0x1700) up to Ada, `NV_XAL_EP_BAR0_WINDOW`
    /// (0x10FD40) on Hopper and Blackwell.
    pub offset: u32,
    /// Width of the `BASE` field (bits `base_bits-1:0`, VRAM address >> 16).
    pub base_bits: u32,
    /// Whether bits 25:24 are a `TARGET` field (0 = VRAM). Hopper and later are VRAM-only.
    pub has_target: bool,
}

impl WindowRegister {
    /// Mask of the `BASE` field.
    #[must_use]
    pub const fn base_mask(self) -> u32 {
        match 1u32.checked_shl(self.base_bits) {
            Some(v) => v.wrapping_sub(1),
            None => u32::MAX,
        }
    }

    /// Bytes of VRAM the window can reach: `2^(base_bits + 16)` (1 TiB = 40 bits before Hopper).
    #[must_use]
    pub const fn reach(self) -> u64 {
        match 1u64.checked_shl(self.base_bits.wrapping_add(PRAMIN_BASE_SHIFT)) {
            Some(v) => v,
            None => u64::MAX,
        }
    }

    /// Encodes the register value that puts the window at VRAM byte address `base` (a multiple
    /// of 64 KiB, inside the reach), with `TARGET` = VID_MEM (0) where the field exists.
    /// `None` when `base` is misaligned or out of reach.
    #[must_use]
    pub fn encode(self, base: u64) -> Option<u32> {
        if base & ((1 << PRAMIN_BASE_SHIFT) - 1) != 0 || base >= self.reach() {
            return None;
        }
        let field = u32::try_from(base >> PRAMIN_BASE_SHIFT).ok()?;
        (field & !self.base_mask() == 0).then_some(field)
    }

    /// Decodes a register value into (VRAM byte address of the window, `TARGET`); the target is 0
    /// on chips without the field.
    #[must_use]
    pub fn decode(self, value: u32) -> (u64, u32) {
        let base = u64::from(value & self.base_mask()) << PRAMIN_BASE_SHIFT;
        let target = if self.has_target {
            (value >> 24) & 3
        } else {
            0
        };
        (base, target)
    }
}

/// The TLB-invalidate register set of a chip (`mmu-formats.md` §4.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TlbRegisterSet {
    /// Pascal and Volta: the hub PRI registers, flow-controlled by `NV_PFB_PRI_MMU_CTRL`.
    HubPri {
        /// `NV_PFB_PRI_MMU_INVALIDATE_PDB` (0x100CB8).
        pdb: u32,
        /// `NV_PFB_PRI_MMU_INVALIDATE_UPPER_PDB` (0x100CEC).
        upper_pdb: u32,
        /// `NV_PFB_PRI_MMU_INVALIDATE` (0x100CBC).
        invalidate: u32,
        /// `NV_PFB_PRI_MMU_CTRL` (0x100C80): `PRI_FIFO_SPACE` 23:16, `PRI_FIFO_EMPTY` 15.
        mmu_ctrl: u32,
    },
    /// Turing and later: the virtual-function alias block at BAR0 0xB80000; `TRIGGER` (bit 31 of
    /// `INVALIDATE`) reads 1 while the invalidate is pending.
    VfAlias {
        /// `NV_VIRTUAL_FUNCTION_PRIV_MMU_INVALIDATE_PDB` (0xB830A0).
        pdb: u32,
        /// `NV_VIRTUAL_FUNCTION_PRIV_MMU_INVALIDATE_UPPER_PDB` (0xB830A4).
        upper_pdb: u32,
        /// `NV_VIRTUAL_FUNCTION_PRIV_MMU_INVALIDATE` (0xB830B0).
        invalidate: u32,
    },
}

/// The hub PRI set of Pascal and Volta.
pub const TLB_HUB_PRI: TlbRegisterSet = TlbRegisterSet::HubPri {
    pdb: 0x0010_0CB8,
    upper_pdb: 0x0010_0CEC,
    invalidate: 0x0010_0CBC,
    mmu_ctrl: 0x0010_0C80,
};

/// The VF-alias set of Turing and later.
pub const TLB_VF_ALIAS: TlbRegisterSet = TlbRegisterSet::VfAlias {
    pdb: 0x00B8_30A0,
    upper_pdb: 0x00B8_30A4,
    invalidate: 0x00B8_30B0,
};

/// `NV_PFB_PRI_MMU_CTRL` fields used by the Pascal/Volta sequence.
pub mod mmu_ctrl {
    /// `PRI_FIFO_EMPTY` (bit 15): 1 when every queued invalidate has completed.
    pub const PRI_FIFO_EMPTY: u32 = 1 << 15;
    /// Shift of `PRI_FIFO_SPACE` (23:16): free slots in the invalidate FIFO.
    pub const PRI_FIFO_SPACE_SHIFT: u32 = 16;
    /// Mask of `PRI_FIFO_SPACE` after shifting.
    pub const PRI_FIFO_SPACE_MASK: u32 = 0xFF;
}

/// `INVALIDATE` register fields (`mmu-formats.md` §4.1).
pub mod invalidate {
    /// `ALL_VA` (bit 0).
    pub const ALL_VA: u32 = 1 << 0;
    /// `ALL_PDB` (bit 1).
    pub const ALL_PDB: u32 = 1 << 1;
    /// `HUBTLB_ONLY` (bit 2).
    pub const HUBTLB_ONLY: u32 = 1 << 2;
    /// Shift of `ACK` (8:7).
    pub const ACK_SHIFT: u32 = 7;
    /// Mask of `ACK` after shifting.
    pub const ACK_MASK: u32 = 3;
    /// Shift of `CACHE_LEVEL` (26:24).
    pub const CACHE_LEVEL_SHIFT: u32 = 24;
    /// Mask of `CACHE_LEVEL` after shifting.
    pub const CACHE_LEVEL_MASK: u32 = 7;
    /// `TRIGGER` (bit 31): write 1 to start; reads 1 while pending (Turing and later).
    pub const TRIGGER: u32 = 1 << 31;
}

/// `INVALIDATE_PDB` / `INVALIDATE_UPPER_PDB` fields.
pub mod invalidate_pdb {
    /// `APERTURE` (bit 1): 0 VRAM, 1 system memory.
    pub const APERTURE_SYS: u32 = 1 << 1;
    /// Shift of `ADDR` (31:4), which holds PDB >> 12.
    pub const ADDR_SHIFT: u32 = 4;
    /// Bits of the PDB address in `INVALIDATE_PDB.ADDR` (PDB bits 39:12).
    pub const ADDR_BITS: u32 = 28;
    /// Width of `INVALIDATE_UPPER_PDB.ADDR` (19:0, PDB >> 40).
    pub const UPPER_BITS: u32 = 20;
}

/// Per-chip decisions of the hardware layer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Hal {
    chip: Chip,
}

impl Hal {
    /// The HAL of `chip`.
    #[must_use]
    pub const fn new(chip: Chip) -> Self {
        Hal { chip }
    }

    /// The chip.
    #[must_use]
    pub const fn chip(self) -> Chip {
        self.chip
    }

    /// The PRAMIN window register.
    ///
    /// Base widths: 24 bits up to Ada, 22 on Hopper GH100, 23 on GB10x and GB20x (RM
    /// `kbusWriteBAR0WindowBase_GB100`). The integrated Blackwell GB10B has 25 bits, but
    /// [`Chip`] has no integrated parts, so it is not represented here.
    #[must_use]
    pub const fn window_register(self) -> WindowRegister {
        match self.chip {
            Chip::Pascal | Chip::Volta | Chip::Turing | Chip::Ampere | Chip::Ada => {
                WindowRegister {
                    offset: 0x0000_1700,
                    base_bits: 24,
                    has_target: true,
                }
            }
            Chip::Hopper => WindowRegister {
                offset: 0x0010_FD40,
                base_bits: 22,
                has_target: false,
            },
            Chip::BlackwellGb10x | Chip::BlackwellGb20x => WindowRegister {
                offset: 0x0010_FD40,
                base_bits: 23,
                has_target: false,
            },
        }
    }

    /// The TLB-invalidate register set.
    #[must_use]
    pub const fn tlb_registers(self) -> TlbRegisterSet {
        match self.chip {
            Chip::Pascal | Chip::Volta => TLB_HUB_PRI,
            _ => TLB_VF_ALIAS,
        }
    }

    /// The `CACHE_LEVEL` that covers the root of an address space: `UP_TO_PDE3` for MMU v2 (PD3
    /// is the root), `UP_TO_PDE4` for MMU v3 (PD4 is the root). nouveau uses `UP_TO_PDE3` on
    /// Hopper too, one level short (`mmu-formats.md` §7.8); this HAL does not.
    #[must_use]
    pub const fn root_cache_level(self) -> CacheLevel {
        match self.chip.mmu_version() {
            MmuVersion::V2 => CacheLevel::UpToPde3,
            MmuVersion::V3 => CacheLevel::UpToPde4,
        }
    }

    /// The `CACHE_LEVEL` for a change whose highest modified page directory is `depth` levels
    /// below the root (0 = the root itself), as UVM computes it (`UP_TO_PDE3 − depth` on v2,
    /// `UP_TO_PDE4 − depth` on v3). `None` when `depth` is deeper than the dual PDE level; use
    /// [`CacheLevel::PteOnly`] for changes to PTEs alone.
    #[must_use]
    pub const fn cache_level_for_depth(self, depth: u32) -> Option<CacheLevel> {
        let root: u32 = match self.chip.mmu_version() {
            MmuVersion::V2 => 3,
            MmuVersion::V3 => 4,
        };
        match root.checked_sub(depth) {
            Some(level) => CacheLevel::up_to_pde(level),
            None => None,
        }
    }

    /// Whether the hardware accepts `level` in `INVALIDATE.CACHE_LEVEL` for this chip's page
    /// tables: `UP_TO_PDE4` names a level MMU v2 does not have.
    #[must_use]
    pub const fn accepts_cache_level(self, level: CacheLevel) -> bool {
        !matches!(
            (self.chip.mmu_version(), level),
            (MmuVersion::V2, CacheLevel::UpToPde4)
        )
    }
}

/// The architecture number of a chip as `NV_PMC_BOOT_0`/`NV_PMC_BOOT_42` report it (chipset >> 4:
/// GP10x 0x13, GV100 0x14, TU10x 0x16, GA10x 0x17, GH100 0x18, AD10x 0x19, GB10x 0x1A, GB20x 0x1B).
#[must_use]
pub const fn architecture_number(chip: Chip) -> u32 {
    match chip {
        Chip::Pascal => 0x13,
        Chip::Volta => 0x14,
        Chip::Turing => 0x16,
        Chip::Ampere => 0x17,
        Chip::Hopper => 0x18,
        Chip::Ada => 0x19,
        Chip::BlackwellGb10x => 0x1A,
        Chip::BlackwellGb20x => 0x1B,
    }
}

/// The chip identification registers did not name a supported architecture.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("unknown GPU: NV_PMC_BOOT_0 = {boot0:#010x}, NV_PMC_BOOT_42 = {boot42:#010x}")]
pub struct UnknownChip {
    /// The `NV_PMC_BOOT_0` value read.
    pub boot0: u32,
    /// The `NV_PMC_BOOT_42` value read.
    pub boot42: u32,
}

/// The chip family and implementation decoded from the identification registers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ChipId {
    /// The family.
    pub chip: Chip,
    /// The architecture number (e.g. 0x16 for Turing).
    pub architecture: u32,
    /// The implementation within the architecture (e.g. 2 for TU102).
    pub implementation: u32,
}

impl ChipId {
    /// The chipset number as NVIDIA writes it (architecture << 4 | implementation, e.g. 0x162).
    #[must_use]
    pub const fn chipset(self) -> u32 {
        (self.architecture << 4) | self.implementation
    }
}

fn chip_from_architecture(arch: u32) -> Option<Chip> {
    Chip::ALL
        .iter()
        .copied()
        .find(|&c| architecture_number(c) == arch)
}

/// Identifies the chip from `NV_PMC_BOOT_0` and `NV_PMC_BOOT_42`.
///
/// `NV_PMC_BOOT_42` (architecture 29:24, implementation 23:20) is authoritative when it names a
/// known architecture, as on every chip since Turing; otherwise `NV_PMC_BOOT_0` is decoded
/// (architecture = bits 28:24 | bit 8 << 5, implementation 23:20), which covers Pascal and Volta.
/// A value of all ones (a dead or fallen-off-the-bus device) never decodes.
///
/// The field positions follow nova-core's register definitions; the architecture numbers are
/// the chipset numbers of the public headers shifted right by 4. Preferring `BOOT_42` whenever
/// it decodes makes the result independent of the exact rule nova-core uses to choose between
/// the two registers.
///
/// # Errors
///
/// [`UnknownChip`] when neither register names a supported architecture.
pub fn identify_chip(boot0: u32, boot42: u32) -> Result<ChipId, UnknownChip> {
    let from42 = (boot42 != u32::MAX)
        .then(|| {
            let arch = (boot42 >> 24) & 0x3F;
            chip_from_architecture(arch).map(|chip| ChipId {
                chip,
                architecture: arch,
                implementation: (boot42 >> 20) & 0xF,
            })
        })
        .flatten();
    if let Some(id) = from42 {
        return Ok(id);
    }
    if boot0 != u32::MAX {
        let arch = ((boot0 >> 24) & 0x1F) | (((boot0 >> 8) & 1) << 5);
        if let Some(chip) = chip_from_architecture(arch) {
            return Ok(ChipId {
                chip,
                architecture: arch,
                implementation: (boot0 >> 20) & 0xF,
            });
        }
    }
    Err(UnknownChip { boot0, boot42 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_registers_per_family() {
        let pre = Hal::new(Chip::Ada).window_register();
        assert_eq!(pre.offset, 0x1700);
        assert_eq!(pre.reach(), 1 << 40);
        assert_eq!(pre.encode(0x12_3456_0000), Some(0x12_3456));
        assert_eq!(pre.encode(0x1_0001), None);
        assert_eq!(pre.encode(1 << 40), None);
        assert_eq!(pre.decode(0x0212_3456), (0x12_3456_0000, 2));
        let h = Hal::new(Chip::Hopper).window_register();
        assert_eq!(
            (h.offset, h.base_bits, h.has_target),
            (0x10_FD40, 22, false)
        );
        assert_eq!(h.reach(), 1 << 38);
        assert_eq!(h.decode(0xFFFF_FFFF), (((1 << 22) - 1) << 16, 0));
        let b = Hal::new(Chip::BlackwellGb20x).window_register();
        assert_eq!(b.reach(), 1 << 39);
        assert_eq!(b.encode((1 << 39) - (1 << 16)), Some((1 << 23) - 1));
    }

    #[test]
    fn tlb_registers_and_cache_levels() {
        assert_eq!(Hal::new(Chip::Volta).tlb_registers(), TLB_HUB_PRI);
        assert_eq!(Hal::new(Chip::Turing).tlb_registers(), TLB_VF_ALIAS);
        assert_eq!(Hal::new(Chip::BlackwellGb10x).tlb_registers(), TLB_VF_ALIAS);
        assert_eq!(Hal::new(Chip::Ada).root_cache_level(), CacheLevel::UpToPde3);
        // Not nouveau's off-by-one: Hopper's root is PD4.
        assert_eq!(
            Hal::new(Chip::Hopper).root_cache_level(),
            CacheLevel::UpToPde4
        );
        assert_eq!(
            Hal::new(Chip::Hopper).cache_level_for_depth(4),
            Some(CacheLevel::UpToPde0)
        );
        assert_eq!(
            Hal::new(Chip::Turing).cache_level_for_depth(3),
            Some(CacheLevel::UpToPde0)
        );
        assert_eq!(Hal::new(Chip::Turing).cache_level_for_depth(4), None);
        assert!(!Hal::new(Chip::Ampere).accepts_cache_level(CacheLevel::UpToPde4));
        assert!(Hal::new(Chip::Hopper).accepts_cache_level(CacheLevel::UpToPde4));
    }

    #[test]
    fn chip_identification() {
        // TU102 in BOOT_42.
        let id = identify_chip(0, (0x16 << 24) | (2 << 20)).unwrap();
        assert_eq!((id.chip, id.chipset()), (Chip::Turing, 0x162));
        let id = identify_chip(0, (0x19 << 24) | (2 << 20)).unwrap();
        assert_eq!((id.chip, id.chipset()), (Chip::Ada, 0x192));
        let id = identify_chip(0, (0x1B << 24) | (2 << 20)).unwrap();
        assert_eq!(id.chip, Chip::BlackwellGb20x);
        // GP102 via BOOT_0 only.
        let id = identify_chip((0x13 << 24) | (2 << 20) | 0xA1, 0).unwrap();
        assert_eq!((id.chip, id.chipset()), (Chip::Pascal, 0x132));
        assert_eq!(
            identify_chip(u32::MAX, u32::MAX),
            Err(UnknownChip {
                boot0: u32::MAX,
                boot42: u32::MAX
            })
        );
        assert!(identify_chip(0x0400_0000, 0).is_err());
        for c in Chip::ALL {
            let boot42 = architecture_number(c) << 24;
            assert_eq!(identify_chip(0, boot42).unwrap().chip, c);
        }
    }
}
