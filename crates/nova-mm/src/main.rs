//! `nova-mm`: see the library crate for the commands.

use std::process::ExitCode;

fn main() -> ExitCode {
    nova_mm::run(std::env::args_os())
}
