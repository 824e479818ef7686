//! [`CliError`]: everything that makes the tool exit with status 2, each as one line.

use std::io;

use crate::image::ImageError;

/// Why a command failed. Every variant is bad input or a missing capability; the tool prints it
/// as one line on stderr and exits with [`CliError::EXIT_CODE`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The VRAM image could not be opened or the PDB is not inside it.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The command needs a part of the stack that is not wired into the tool yet.
    #[error("'{command}' is not available yet: it needs {needs}")]
    NotYetAvailable {
        /// The command.
        command: &'static str,
        /// What is missing.
        needs: &'static str,
    },
    /// The output could not be written (other than a closed pipe, which ends the tool quietly).
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

impl CliError {
    /// The exit status for every error: 2, like a usage error.
    pub const EXIT_CODE: u8 = 2;
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Output(e)
    }
}
