//! The bodies of the subcommands.
//!
//! Images are opened and the PDB checked before anything is walked, so bad input fails with one
//! line; the walking itself is in [`crate::tables`], the demo in [`crate::demo`], the live GPU
//! in [`crate::live`].

use std::io::{self, Write};
use std::path::Path;

use nova_mm_core::{MmuVersion, VramAccess};

use crate::cli::{
    Command, DemoArgs, ImageArgs, MappingsArgs, MappingsOutput, TranslateArgs, VfioArgs,
};
use crate::error::CliError;
use crate::image::{ImageError, VramImage};
use crate::progress::Progress;
use crate::{json, tables, text};

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

fn demo(args: &DemoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if let Some(path) = &args.save_vram {
        check_output_dir(path)?;
    }
    crate::demo::run(args, out)
}

fn translate(args: &TranslateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut image = open_image(&args.image)?;
    let mmu = MmuVersion::from(args.image.mmu);
    translate_and_print(mmu, &mut image, args.image.pdb, &args.vas, args.json, out)
}

/// Translates `vas` through the tables at `pdb` in `vram` and prints them (JSON lines or text).
///
/// # Errors
///
/// [`CliError::Walk`] for unreadable or corrupt tables on a VA's path; output errors.
pub fn translate_and_print<V: VramAccess + ?Sized>(
    mmu: MmuVersion,
    vram: &mut V,
    pdb: u64,
    vas: &[u64],
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let rows = tables::translate_vas(mmu, tables::decode_chip(mmu), vram, pdb, vas)?;
    if json {
        json::write_json_lines(out, &rows)?;
    } else {
        text::write_translations(out, &rows)?;
    }
    Ok(())
}

fn mappings(args: &MappingsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut image = open_image(&args.image)?;
    let mmu = MmuVersion::from(args.image.mmu);
    list_and_print(mmu, &mut image, args.image.pdb, &args.output, out)
}

/// Lists the mappings (or sparse ranges, or the tree) of the tables at `pdb` in `vram`.
/// Subtrees that cannot be walked are reported on stderr as warnings, one line each.
///
/// # Errors
///
/// [`CliError::Walk`] when the root cannot be read; output errors.
pub fn list_and_print<V: VramAccess + ?Sized>(
    mmu: MmuVersion,
    vram: &mut V,
    pdb: u64,
    output: &MappingsOutput,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let chip = tables::decode_chip(mmu);
    if output.tree {
        tables::write_tree(mmu, chip, vram, pdb, out)?;
        return Ok(());
    }
    let progress = Progress::bytes(0, "scanning page tables");
    let listing = tables::list_mappings(mmu, chip, vram, pdb, &progress)?;
    drop(progress);
    for bad in &listing.bad {
        warn(bad);
    }
    match (output.sparse, output.json) {
        (false, true) => json::write_json_array(out, &listing.mapped)?,
        (true, true) => json::write_json_array(out, &listing.sparse)?,
        (false, false) => text::write_mappings_table(out, &listing.mapped)?,
        (true, false) => text::write_sparse_table(out, &listing.sparse)?,
    }
    Ok(())
}

/// Prints `nova-mm: warning: <msg>` on stderr (one line).
pub fn warn(msg: &str) {
    let one: String = msg
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    let _ = writeln!(io::stderr().lock(), "nova-mm: warning: {one}");
}

fn vfio(args: &VfioArgs, out: &mut dyn Write) -> Result<(), CliError> {
    crate::live::run(args, out)
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
