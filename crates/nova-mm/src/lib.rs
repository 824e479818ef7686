//! The `nova-mm` command-line tool, as a library so that its pieces can be tested and reused.
//!
//! - [`cli`]: the clap command structure;
//! - [`parse`]: addresses (hex or decimal), chips, PCI addresses;
//! - [`image`]: [`image::VramImage`], a VRAM image file as a read-only `VramAccess` backend;
//! - [`json`]: the stable JSON output types;
//! - [`text`]: the same rows as text;
//! - [`progress`]: a progress bar that stays quiet when piped;
//! - [`tables`]: translate, list and draw page tables through the core's walker;
//! - [`demo`]: the demo on the simulated GPU; [`live`]: the VFIO commands;
//! - [`commands`]: the command bodies; [`run`] ties it together with the exit status.
//!
//! Exit status: 0 on success, 2 for any error (usage errors included), 1 when a cross-check of
//! the demo fails; with exactly one line on stderr.

pub mod cli;
pub mod commands;
pub mod demo;
pub mod error;
pub mod image;
pub mod json;
pub mod live;
pub mod parse;
pub mod progress;
pub mod tables;
pub mod text;

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

pub use error::CliError;

/// Parses `args` (the program name first) and runs the command.
///
/// Returns the exit status: success, or 2 after printing one line on stderr. Help and version
/// requests print normally and succeed. A closed stdout (`nova-mm ... | head`) ends the output
/// quietly with success.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help / --version: clap prints to stdout.
            return if e.print().is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(CliError::EXIT_CODE)
            };
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Clap would print the whole help on stderr.
            error_line("a subcommand is required (see --help)");
            return ExitCode::from(CliError::EXIT_CODE);
        }
        Err(e) => {
            // Clap's message is a paragraph saying what is wrong (sometimes with indented
            // continuation lines, e.g. the missing arguments), then usage and tips after a
            // blank line: keep the first paragraph, joined into one line.
            let msg = e.to_string();
            let what: Vec<&str> = msg
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let what = what.join(" ");
            let what = what.strip_prefix("error: ").unwrap_or(&what);
            error_line(&format!("{what} (see --help)"));
            return ExitCode::from(CliError::EXIT_CODE);
        }
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result =
        commands::run(cli.command, &mut out).and_then(|()| out.flush().map_err(Into::into));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            error_line(&e.to_string());
            ExitCode::from(e.exit_code())
        }
    }
}

/// Prints `nova-mm: error: <msg>` as exactly one line on stderr.
fn error_line(msg: &str) {
    let one_line: String = msg
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    // Nothing sensible is left to do if stderr itself is gone.
    let _ = writeln!(io::stderr().lock(), "nova-mm: error: {one_line}");
}
