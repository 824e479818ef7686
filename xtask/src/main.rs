//! Project automation (the cargo-xtask pattern): `cargo xtask <command>`.
//!
//! - `ci`: everything CI checks, installing what is missing first.
//! - `demo`: the main job (the demo on the simulated GPU).
//! - `fuzz [TARGET] [SECONDS]`, `miri`: the nightly-toolchain checks (also run by `ci`).

use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};

mod kernel;
mod nightly;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("demo") => demo(&args[1..]),
        Some("setup") => setup(),
        Some("fuzz") => nightly::fuzz(&args[1..]),
        Some("miri") => nightly::miri(),
        Some("kernel-test") => kernel::kernel_test(),
        _ => {
            eprintln!("usage: cargo xtask <ci|demo|setup|fuzz [TARGET] [SECONDS]|miri|kernel-test> [args]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command, echoing it, and fails if it fails.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<()> {
    run_env(program, args, &[])
}

pub(crate) fn run_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    eprintln!("  ({:.1} s)", start.elapsed().as_secs_f64());
    if !status.success() {
        bail!("`{program} {}` failed: {status}", args.join(" "));
    }
    Ok(())
}

pub(crate) fn output_of(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs the targets and components CI needs, if they are missing.
fn setup() -> Result<()> {
    let targets = output_of("rustup", &["target", "list", "--installed"])?;
    if !targets.lines().any(|l| l.trim() == "x86_64-unknown-none") {
        run("rustup", &["target", "add", "x86_64-unknown-none"])?;
    }
    let components = output_of("rustup", &["component", "list", "--installed"])?;
    for c in ["clippy", "rustfmt"] {
        if !components.lines().any(|l| l.starts_with(c)) {
            run("rustup", &["component", "add", c])?;
        }
    }
    Ok(())
}

fn ci() -> Result<()> {
    let start = Instant::now();
    setup()?;
    run("cargo", &["fmt", "--all", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The core as a kernel would build it: no std, no alloc, bare-metal target.
    run(
        "cargo",
        &[
            "build",
            "-p",
            "nova-mm-core",
            "--target",
            "x86_64-unknown-none",
            "--no-default-features",
        ],
    )?;
    run(
        "cargo",
        &[
            "build",
            "-p",
            "nova-mm-core",
            "--target",
            "x86_64-unknown-none",
            "--features",
            "alloc,selftest",
        ],
    )?;
    // The kernel glue, for the same target.
    run(
        "cargo",
        &[
            "build",
            "-p",
            "nova-mm-kernel",
            "--target",
            "x86_64-unknown-none",
        ],
    )?;
    run(
        "cargo",
        &[
            "clippy",
            "-p",
            "nova-mm-core",
            "--target",
            "x86_64-unknown-none",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run_env(
        "cargo",
        &["doc", "--workspace", "--no-deps", "--all-features"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    run("cargo", &["test", "--workspace", "--all-features"])?;
    kernel::kernel_test()?;
    // Nightly toolchain: miri over the core's and the simulator's unit tests, then a smoke run
    // of every fuzz target (a minute each).
    nightly::miri()?;
    nightly::fuzz(&["60".to_owned()])?;
    eprintln!(
        "xtask ci: all steps passed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn demo(args: &[String]) -> Result<()> {
    let mut cmd = vec!["run", "--quiet", "--release", "-p", "nova-mm", "--", "demo"];
    cmd.extend(args.iter().map(String::as_str));
    run("cargo", &cmd)
}
