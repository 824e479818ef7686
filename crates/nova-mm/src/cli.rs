//! The command-line structure (clap derive), exactly as issue 6 specifies it:
//!
//! ```text
//! nova-mm demo [--chip NAME | --mmu v2|v3] [--save-vram FILE] [--json] [--vram-gib N]
//! nova-mm translate --vram FILE --pdb ADDR --mmu v2|v3 [--json] VA...
//! nova-mm mappings --vram FILE --pdb ADDR --mmu v2|v3 [--json] [--tree] [--sparse]
//! nova-mm vfio --device PCI_ADDR translate [--pdb ADDR] [--mmu v2|v3] [--json] VA...
//! nova-mm vfio --device PCI_ADDR mappings [--pdb ADDR] [--mmu v2|v3] [--json] [--tree] [--sparse]
//! ```
//!
//! Addresses are hex (`0x...`) or decimal; values are validated while parsing, so a malformed
//! address or an unknown chip is a usage error (exit status 2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nova_mm_core::{Chip, MmuVersion};

use crate::parse::{parse_chip, parse_u64, PciAddress};

/// nova-mm: memory management for NVIDIA GPUs, on the simulated GPU, VRAM images and live GPUs.
#[derive(Debug, Parser)]
#[command(name = "nova-mm", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole stack on the simulated GPU and print a report.
    Demo(DemoArgs),
    /// Translate VAs through the page tables in a VRAM image.
    Translate(TranslateArgs),
    /// List every mapping (or sparse range) in the page tables of a VRAM image.
    Mappings(MappingsArgs),
    /// Translate or list mappings on a live GPU through VFIO.
    Vfio(VfioArgs),
}

/// The MMU format of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MmuArg {
    /// MMU v2: Pascal, Volta, Turing, Ampere, Ada (5 levels, 49-bit VA).
    V2,
    /// MMU v3: Hopper, Blackwell (6 levels, 57-bit VA).
    V3,
}

impl From<MmuArg> for MmuVersion {
    fn from(m: MmuArg) -> Self {
        match m {
            MmuArg::V2 => MmuVersion::V2,
            MmuArg::V3 => MmuVersion::V3,
        }
    }
}

/// `demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The simulated chip (family such as turing, ampere, hopper, gb20x, or a chip such as ga102).
    #[arg(long, value_name = "NAME", value_parser = parse_chip, conflicts_with = "mmu")]
    pub chip: Option<Chip>,
    /// Pick a representative chip of this MMU version instead of naming one.
    #[arg(long, value_enum, value_name = "v2|v3")]
    pub mmu: Option<MmuArg>,
    /// Write the final VRAM to FILE as an image (readable by `translate` and `mappings`).
    #[arg(long, value_name = "FILE")]
    pub save_vram: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Size of the simulated VRAM in GiB (1..=256; default 16). It is sparse: only written
    /// pages take host memory.
    #[arg(long, value_name = "GIB", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub vram_gib: Option<u64>,
}

impl DemoArgs {
    /// The chip to simulate: `--chip`, else Ampere for `--mmu v2` and by default, Hopper for
    /// `--mmu v3`.
    #[must_use]
    pub fn chip(&self) -> Chip {
        match (self.chip, self.mmu) {
            (Some(chip), _) => chip,
            (None, Some(MmuArg::V3)) => Chip::Hopper,
            (None, Some(MmuArg::V2) | None) => Chip::Ampere,
        }
    }
}

/// Where the tables of an image are.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The VRAM image: a raw (usually sparse) file whose byte offset is the VRAM address.
    #[arg(long, value_name = "FILE")]
    pub vram: PathBuf,
    /// VRAM address of the root page directory (4 KiB aligned).
    #[arg(long, value_name = "ADDR", value_parser = parse_u64)]
    pub pdb: u64,
    /// MMU format of the tables.
    #[arg(long, value_enum, value_name = "v2|v3")]
    pub mmu: MmuArg,
}

/// `translate` options.
#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// The image and its tables.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Print one JSON object per VA per line.
    #[arg(long)]
    pub json: bool,
    /// The virtual addresses to translate.
    #[arg(value_name = "VA", required = true, value_parser = parse_u64)]
    pub vas: Vec<u64>,
}

/// Output options shared by `mappings` and `vfio mappings`.
#[derive(Debug, Args)]
pub struct MappingsOutput {
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
    /// Print the page-table tree instead of a table.
    #[arg(long, conflicts_with = "json")]
    pub tree: bool,
    /// List the sparse ranges instead of the mappings.
    #[arg(long)]
    pub sparse: bool,
}

/// `mappings` options.
#[derive(Debug, Args)]
pub struct MappingsArgs {
    /// The image and its tables.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Output format.
    #[command(flatten)]
    pub output: MappingsOutput,
}

/// `vfio` options.
#[derive(Debug, Args)]
pub struct VfioArgs {
    /// PCI address of the GPU bound to vfio-pci, e.g. 0000:01:00.0.
    #[arg(long, value_name = "PCI_ADDR", value_parser = clap::value_parser!(PciAddress))]
    pub device: PciAddress,
    /// What to do on the live GPU.
    #[command(subcommand)]
    pub command: VfioCommand,
}

/// Which address space on a live GPU.
#[derive(Debug, Args)]
pub struct LiveTarget {
    /// Root page directory; by default the BAR1 PDB from the BAR1 instance block.
    #[arg(long, value_name = "ADDR", value_parser = parse_u64)]
    pub pdb: Option<u64>,
    /// MMU format; by default the chip's, read from the boot registers.
    #[arg(long, value_enum, value_name = "v2|v3")]
    pub mmu: Option<MmuArg>,
}

/// `vfio` subcommands.
#[derive(Debug, Subcommand)]
pub enum VfioCommand {
    /// Translate VAs on the live GPU.
    Translate {
        /// Which address space.
        #[command(flatten)]
        target: LiveTarget,
        /// Print one JSON object per VA per line.
        #[arg(long)]
        json: bool,
        /// The virtual addresses to translate.
        #[arg(value_name = "VA", required = true, value_parser = parse_u64)]
        vas: Vec<u64>,
    },
    /// List the mappings on the live GPU.
    Mappings {
        /// Which address space.
        #[command(flatten)]
        target: LiveTarget,
        /// Output format.
        #[command(flatten)]
        output: MappingsOutput,
    },
}

impl clap::builder::ValueParserFactory for PciAddress {
    type Parser = fn(&str) -> Result<PciAddress, crate::parse::BadPciAddress>;
    fn value_parser() -> Self::Parser {
        |s| s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn structure_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_forms() {
        let c = Cli::try_parse_from([
            "nova-mm",
            "translate",
            "--vram",
            "x.bin",
            "--pdb",
            "0x1000",
            "--mmu",
            "v3",
            "--json",
            "0x10",
            "32",
        ])
        .unwrap();
        let Command::Translate(t) = c.command else {
            panic!("not translate")
        };
        assert_eq!(t.image.pdb, 0x1000);
        assert_eq!(t.image.mmu, MmuArg::V3);
        assert!(t.json);
        assert_eq!(t.vas, [0x10, 32]);

        let c = Cli::try_parse_from(["nova-mm", "demo", "--chip", "gh100", "--json"]).unwrap();
        let Command::Demo(d) = c.command else {
            panic!("not demo")
        };
        assert_eq!(d.chip(), Chip::Hopper);
        let c = Cli::try_parse_from(["nova-mm", "demo", "--mmu", "v3"]).unwrap();
        let Command::Demo(d) = c.command else {
            panic!("not demo")
        };
        assert_eq!(d.chip().mmu_version(), MmuVersion::V3);
        assert!(Cli::try_parse_from(["nova-mm", "demo", "--chip", "ada", "--mmu", "v2"]).is_err());

        let c = Cli::try_parse_from([
            "nova-mm", "mappings", "--vram", "x", "--pdb", "4096", "--mmu", "v2", "--tree",
            "--sparse",
        ])
        .unwrap();
        let Command::Mappings(m) = c.command else {
            panic!("not mappings")
        };
        assert!(m.output.tree && m.output.sparse && !m.output.json);
        assert!(Cli::try_parse_from([
            "nova-mm", "mappings", "--vram", "x", "--pdb", "0", "--mmu", "v2", "--tree", "--json"
        ])
        .is_err());

        let c = Cli::try_parse_from([
            "nova-mm",
            "vfio",
            "--device",
            "0000:65:00.0",
            "translate",
            "--json",
            "0x1000",
        ])
        .unwrap();
        let Command::Vfio(v) = c.command else {
            panic!("not vfio")
        };
        assert_eq!(v.device.to_string(), "0000:65:00.0");
        assert!(matches!(
            v.command,
            VfioCommand::Translate { json: true, ref vas, target: LiveTarget { pdb: None, mmu: None } } if vas == &[0x1000]
        ));
        assert!(Cli::try_parse_from([
            "nova-mm",
            "vfio",
            "--device",
            "0000:65:00.0",
            "mappings",
            "--pdb",
            "0x2000",
            "--mmu",
            "v3",
            "--sparse",
            "--json",
        ])
        .is_ok());
    }
}
