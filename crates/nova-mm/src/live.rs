//! `nova-mm vfio`: translate and list mappings on a live GPU through the VFIO backend.
//!
//! VRAM is read through the core's PRAMIN window over the VFIO BAR0 (read-only: the walker never
//! writes). Without `--pdb`, the BAR1 page directory is found as the GPU uses it: the BAR1
//! block register gives the BAR1 instance block, whose RAMIN words 128/129 give
//! `PAGE_DIR_BASE` (`mmu-formats.md` §5):
//!
//! - up to Ada, `NV_PBUS_BAR1_BLOCK` (0x1704): `PTR` 27:0 = instance block >> 12, `TARGET`
//!   29:28 (0 = VRAM), `MODE` 31 (1 = virtual);
//! - Hopper and later, `NV_XAL_EP…PRIV_FUNC_BAR1_BLOCK_LOW_ADDR` (0xB80F60): `MODE` 9, `TARGET`
//!   11:10, `PTR` 31:12 (low 20 bits of instance block >> 12), and `HIGH_ADDR` (0xB80F64) with
//!   the high bits.
//!
//! The VRAM size is not read from the GPU: PRAMIN is set up to cover what the window register
//! can reach, and the walker checks every table address against that.

use std::io::Write;

use nova_mm_core::hw::hal::Hal;
use nova_mm_core::hw::mmio::Mmio;
use nova_mm_core::hw::pramin::Pramin;
use nova_mm_core::{Chip, MmuVersion, VramAccess, VramAddress};

use crate::cli::{LiveTarget, VfioArgs, VfioCommand};
use crate::commands::{list_and_print, translate_and_print};
use crate::error::CliError;

/// `NV_PBUS_BAR1_BLOCK` (Maxwell to Ada).
pub const NV_PBUS_BAR1_BLOCK: u32 = 0x1704;
/// `…PRIV_FUNC_BAR1_BLOCK_LOW_ADDR` (Hopper and later).
pub const BAR1_BLOCK_LOW_ADDR: u32 = 0x00B8_0F60;
/// `…PRIV_FUNC_BAR1_BLOCK_HIGH_ADDR` (Hopper and later).
pub const BAR1_BLOCK_HIGH_ADDR: u32 = 0x00B8_0F64;
/// Byte offset of RAMIN word 128 (`PAGE_DIR_BASE` low word) in an instance block.
pub const RAMIN_PAGE_DIR_BASE_LO: u64 = 128 * 4;
/// Byte offset of RAMIN word 129 (`PAGE_DIR_BASE_HI`).
pub const RAMIN_PAGE_DIR_BASE_HI: u64 = 129 * 4;

fn live_err(msg: impl Into<String>) -> CliError {
    CliError::Live(msg.into())
}

/// The VRAM address of the BAR1 instance block, from the chip's BAR1 block register(s).
///
/// # Errors
///
/// [`CliError::Live`] when the registers cannot be read, BAR1 is in physical mode, or the
/// instance block is not in VRAM.
pub fn bar1_instance_block<M: Mmio + ?Sized>(mmio: &M, chip: Chip) -> Result<u64, CliError> {
    let rd = |off: u32| {
        mmio.read32(off)
            .map_err(|e| live_err(format!("cannot read BAR0 register {off:#x}: {e}")))
    };
    let (ptr, target, virt) = if chip.mmu_version() == MmuVersion::V3 {
        let lo = rd(BAR1_BLOCK_LOW_ADDR)?;
        let hi = rd(BAR1_BLOCK_HIGH_ADDR)?;
        (
            (u64::from(hi) << 20) | u64::from(lo >> 12),
            (lo >> 10) & 3,
            lo & (1 << 9) != 0,
        )
    } else {
        let v = rd(NV_PBUS_BAR1_BLOCK)?;
        (
            u64::from(v & 0x0FFF_FFFF),
            (v >> 28) & 3,
            v & (1 << 31) != 0,
        )
    };
    if !virt {
        return Err(live_err(
            "BAR1 is in physical mode (no BAR1 page directory); pass --pdb",
        ));
    }
    if target != 0 {
        return Err(live_err(format!(
            "the BAR1 instance block is not in VRAM (TARGET {target}); pass --pdb"
        )));
    }
    Ok(ptr << 12)
}

/// `PAGE_DIR_BASE` from the instance block at `inst`: RAMIN word 128 (`TARGET` 1:0 must be 0,
/// video memory; `PAGE_DIR_BASE_LO` 31:12) and word 129 (`PAGE_DIR_BASE_HI`).
///
/// # Errors
///
/// [`CliError::Live`] when VRAM cannot be read or the page directory is not in VRAM.
pub fn page_dir_base<V: VramAccess + ?Sized>(vram: &mut V, inst: u64) -> Result<u64, CliError> {
    let rd = |vram: &mut V, off: u64| {
        let a = inst.saturating_add(off);
        vram.read32(VramAddress::new(a)).map_err(|e| {
            live_err(format!(
                "cannot read the BAR1 instance block at {a:#x}: {e}"
            ))
        })
    };
    let lo = rd(vram, RAMIN_PAGE_DIR_BASE_LO)?;
    let hi = rd(vram, RAMIN_PAGE_DIR_BASE_HI)?;
    let target = lo & 3;
    if target != 0 {
        return Err(live_err(format!(
            "the BAR1 page directory is not in VRAM (PAGE_DIR_BASE TARGET {target}); pass --pdb"
        )));
    }
    Ok((u64::from(hi) << 32) | u64::from(lo & 0xFFFF_F000))
}

/// Finds the PDB (`--pdb` or the BAR1 instance block) and runs `f` over the PRAMIN window of
/// `mmio`.
///
/// # Errors
///
/// As [`bar1_instance_block`], [`page_dir_base`], or a PRAMIN setup failure, or `f`'s.
pub fn with_live_tables<M: Mmio, R>(
    mmio: M,
    chip: Chip,
    target: &LiveTarget,
    f: impl FnOnce(MmuVersion, &mut Pramin<M>, u64) -> Result<R, CliError>,
) -> Result<R, CliError> {
    let reach = Hal::new(chip).window_register().reach();
    let pdb_from_block = match target.pdb {
        Some(_) => None,
        None => Some(bar1_instance_block(&mmio, chip)?),
    };
    let mut pramin =
        Pramin::new(mmio, chip, reach).map_err(|e| live_err(format!("PRAMIN: {e}")))?;
    let pdb = match (target.pdb, pdb_from_block) {
        (Some(p), _) => p,
        (None, Some(inst)) => page_dir_base(&mut pramin, inst)?,
        (None, None) => return Err(live_err("no PDB")),
    };
    if pdb % 4096 != 0 {
        return Err(live_err(format!("PDB {pdb:#x} is not 4 KiB aligned")));
    }
    let mmu = target.mmu.map_or(chip.mmu_version(), MmuVersion::from);
    f(mmu, &mut pramin, pdb)
}

/// Runs `nova-mm vfio ...`.
///
/// # Errors
///
/// [`CliError::Live`] when the device cannot be opened (not bound to vfio-pci, no permission, no
/// such device) or its tables cannot be found; walk and output errors.
pub fn run(args: &VfioArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let options = nova_mm_vfio::OpenOptions {
        bar1: false,
        ..nova_mm_vfio::OpenOptions::default()
    };
    let gpu = nova_mm_vfio::VfioGpu::open(&args.device.to_string(), options)
        .map_err(|e| live_err(format!("cannot open {} through VFIO: {e}", args.device)))?;
    let chip = gpu.chip().chip;
    match &args.command {
        VfioCommand::Translate { target, json, vas } => {
            with_live_tables(gpu.bar0(), chip, target, |mmu, pramin, pdb| {
                translate_and_print(mmu, pramin, pdb, vas, *json, out)
            })
        }
        VfioCommand::Mappings { target, output } => {
            with_live_tables(gpu.bar0(), chip, target, |mmu, pramin, pdb| {
                list_and_print(mmu, pramin, pdb, output, out)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nova_mm_sim::bar0::{RecordingTlb, SimBar0};
    use nova_mm_sim::vram::SimVram;

    fn sim(chip: Chip) -> SimBar0<SimVram, RecordingTlb> {
        SimBar0::new(
            chip,
            SimVram::new(1 << 30).unwrap(),
            RecordingTlb::default(),
        )
    }

    #[test]
    fn finds_the_bar1_pdb_pre_hopper() {
        let bar0 = sim(Chip::Ampere);
        let inst = 0x3fe0_0000u64;
        bar0.write32(NV_PBUS_BAR1_BLOCK, (1 << 31) | (inst >> 12) as u32)
            .unwrap();
        bar0.with_vram(|v| {
            v.write32(VramAddress::new(inst + 0x200), 0x3ff0_1000 | (1 << 2))
                .unwrap();
            v.write32(VramAddress::new(inst + 0x204), 0).unwrap();
        });
        let got = with_live_tables(
            &bar0,
            Chip::Ampere,
            &LiveTarget {
                pdb: None,
                mmu: None,
            },
            |m, _, pdb| Ok((m, pdb)),
        )
        .unwrap();
        assert_eq!(got, (MmuVersion::V2, 0x3ff0_1000));
    }

    #[test]
    fn finds_the_bar1_pdb_hopper() {
        let bar0 = sim(Chip::Hopper);
        let inst = 0x2000_0000u64;
        let ptr = inst >> 12;
        bar0.write32(
            BAR1_BLOCK_LOW_ADDR,
            (((ptr & 0xF_FFFF) as u32) << 12) | (1 << 9),
        )
        .unwrap();
        bar0.write32(BAR1_BLOCK_HIGH_ADDR, (ptr >> 20) as u32)
            .unwrap();
        bar0.with_vram(|v| {
            v.write32(VramAddress::new(inst + 0x200), 0x1234_5000)
                .unwrap();
            v.write32(VramAddress::new(inst + 0x204), 0).unwrap();
        });
        let pdb = with_live_tables(
            &bar0,
            Chip::Hopper,
            &LiveTarget {
                pdb: None,
                mmu: None,
            },
            |m, _, pdb| {
                assert_eq!(m, MmuVersion::V3);
                Ok(pdb)
            },
        )
        .unwrap();
        assert_eq!(pdb, 0x1234_5000);
    }

    #[test]
    fn physical_mode_and_sysmem_are_clean_errors() {
        let bar0 = sim(Chip::Turing);
        bar0.write32(NV_PBUS_BAR1_BLOCK, 0x100).unwrap();
        let e = bar1_instance_block(&bar0, Chip::Turing).unwrap_err();
        assert!(e.to_string().contains("physical mode"), "{e}");
        bar0.write32(NV_PBUS_BAR1_BLOCK, (1 << 31) | (2 << 28) | 0x100)
            .unwrap();
        let e = bar1_instance_block(&bar0, Chip::Turing).unwrap_err();
        assert!(e.to_string().contains("not in VRAM"), "{e}");
        let mut v = SimVram::new(1 << 20).unwrap();
        v.write32(VramAddress::new(0x200), 0x5002).unwrap();
        let e = page_dir_base(&mut v, 0).unwrap_err();
        assert!(e.to_string().contains("TARGET 2"), "{e}");
        // --pdb skips the registers.
        let pdb = with_live_tables(
            &bar0,
            Chip::Turing,
            &LiveTarget {
                pdb: Some(0x7000),
                mmu: Some(crate::cli::MmuArg::V2),
            },
            |_, _, pdb| Ok(pdb),
        )
        .unwrap();
        assert_eq!(pdb, 0x7000);
    }
}
