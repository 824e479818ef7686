//! The bodies of the subcommands.
//!
//! Everything that does not need the page-table walker, the address-space manager or the VFIO
//! backend is done here already: images are opened and the PDB checked, so bad input fails with
//! the right one-line error today. The parts that need those pieces are marked
//! `STUB(walker)`, `STUB(vmm)` and `STUB(vfio)` and return [`CliError::NotYetAvailable`].

use std::io::{self, Write};
use std::path::Path;

use nova_mm_core::MmuVersion;

use crate::cli::{Command, DemoArgs, ImageArgs, MappingsArgs, TranslateArgs, VfioArgs};
use crate::error::CliError;
use crate::image::{ImageError, VramImage};

/// Runs one command, writing its normal output to `out`.
///
/// # Errors
///
/// [`CliError`] for bad input, unavailable commands and output failures.
pub fn run(command: Command, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        Command::Demo(args) => demo(&args, out),
        Command::Translate(args) => translate(&args, out),
        Command::Mappings(args) => mappings(&args, out),
        Command::Vfio(args) => vfio(&args, out),
    }
}

/// Opens the image and checks that the root directory at the PDB lies inside it.
///
/// # Errors
///
/// [`ImageError`] (missing file, not a file, PDB misaligned or outside the image).
pub fn open_image(args: &ImageArgs) -> Result<VramImage, CliError> {
    let image = VramImage::open(&args.vram)?;
    image.check_pdb(args.pdb, MmuVersion::from(args.mmu))?;
    Ok(image)
}

fn demo(args: &DemoArgs, _out: &mut dyn Write) -> Result<(), CliError> {
    let _chip = args.chip();
    if let Some(path) = &args.save_vram {
        check_output_dir(path)?;
    }
    // STUB(vmm): needs the simulated GPU, the buddy allocator and the address-space manager.
    Err(CliError::NotYetAvailable {
        command: "demo",
        needs: "the address-space manager and the simulated GPU",
    })
}

fn translate(args: &TranslateArgs, _out: &mut dyn Write) -> Result<(), CliError> {
    let _image = open_image(&args.image)?;
    // STUB(walker): translate each VA, print with `json::write_json_lines` (one
    // `TranslateJson` per line) or `text::write_translations`.
    Err(CliError::NotYetAvailable {
        command: "translate",
        needs: "the page-table walker",
    })
}

fn mappings(args: &MappingsArgs, _out: &mut dyn Write) -> Result<(), CliError> {
    let _image = open_image(&args.image)?;
    // STUB(walker): walk the whole VA range (with a `progress::Progress` over the VA space),
    // print `json::write_json_array` of `MappingJson`/`SparseJson`, `text::write_mappings_table`
    // / `write_sparse_table`, or the tree.
    Err(CliError::NotYetAvailable {
        command: "mappings",
        needs: "the page-table walker",
    })
}

fn vfio(_args: &VfioArgs, _out: &mut dyn Write) -> Result<(), CliError> {
    // STUB(vfio): open the device through the VFIO backend, read the BAR1 PDB from the instance
    // block unless --pdb is given, then run translate/mappings over it.
    Err(CliError::NotYetAvailable {
        command: "vfio",
        needs: "the VFIO backend",
    })
}

/// Fails early if the directory that would hold `path` does not exist, so a long demo does not
/// end with a write error.
fn check_output_dir(path: &Path) -> Result<(), CliError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(ImageError::Write {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "its directory does not exist"),
        }
        .into())
    }
}
