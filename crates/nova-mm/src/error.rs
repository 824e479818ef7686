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
    /// The page tables could not be walked (unreadable VRAM, corrupt tables on the path).
    #[error("page-table walk failed: {0}")]
    Walk(#[from] nova_mm_core::walk::WalkError),
    /// A live GPU could not be opened, or its BAR1 page directory not found.
    #[error("{0}")]
    Live(String),
    /// A step of the demo failed (allocation, mapping, the simulated hardware).
    #[error("demo: {0}")]
    Demo(String),
    /// A cross-check of the demo failed: the stack did something wrong.
    #[error("cross-check failed: {0}")]
    CheckFailed(String),
    /// The output could not be written (other than a closed pipe, which ends the tool quietly).
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

impl CliError {
    /// The exit status for bad input and failures: 2, like a usage error.
    pub const EXIT_CODE: u8 = 2;
    /// The exit status when a cross-check of the demo fails: 1.
    pub const CHECK_FAILED_CODE: u8 = 1;

    /// The exit status for this error.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::CheckFailed(_) => Self::CHECK_FAILED_CODE,
            _ => Self::EXIT_CODE,
        }
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Output(e)
    }
}
