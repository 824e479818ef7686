//! Steps that need the nightly toolchain: fuzzing (cargo-fuzz) and miri.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{output_of, run, run_env};

/// Installs the nightly toolchain with the given components, and cargo-fuzz, when missing.
pub fn setup(components: &[&str]) -> Result<()> {
    let toolchains = output_of("rustup", &["toolchain", "list"])?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        run(
            "rustup",
            &["toolchain", "install", "nightly", "--profile", "minimal"],
        )?;
    }
    let installed = output_of(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )?;
    for c in components {
        if !installed.lines().any(|l| l.starts_with(c)) {
            run("rustup", &["component", "add", c, "--toolchain", "nightly"])?;
        }
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result<()> {
    let ok = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        run("cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    Ok(())
}

/// The fuzz targets, from `fuzz/fuzz_targets/*.rs`.
pub fn fuzz_targets() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("fuzz/fuzz_targets").context("reading fuzz/fuzz_targets")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// `cargo xtask fuzz [TARGET] [SECONDS]`: runs one target, or every target, for SECONDS each
/// (default 60), starting from the committed seed corpus in `fuzz/seeds/TARGET`.
pub fn fuzz(args: &[String]) -> Result<()> {
    setup(&[])?;
    ensure_cargo_fuzz()?;
    let all = fuzz_targets()?;
    let (targets, seconds) = match args {
        [] => (all, 60),
        [t] if t.parse::<u64>().is_ok() => (all, t.parse()?),
        [t] => (vec![t.clone()], 60),
        [t, s, ..] => (
            vec![t.clone()],
            s.parse().context("SECONDS must be a number")?,
        ),
    };
    for t in &targets {
        let known = fuzz_targets()?;
        if !known.contains(t) {
            bail!("unknown fuzz target {t}; known: {}", known.join(", "));
        }
        let corpus = format!("fuzz/corpus/{t}");
        std::fs::create_dir_all(&corpus)?;
        let seeds = format!("fuzz/seeds/{t}");
        let time = format!("-max_total_time={seconds}");
        let mut cmd = vec![
            "+nightly",
            "fuzz",
            "run",
            "--fuzz-dir",
            "fuzz",
            t.as_str(),
            corpus.as_str(),
        ];
        if Path::new(&seeds).is_dir() {
            cmd.push(seeds.as_str());
        }
        cmd.extend(["--", time.as_str(), "-print_final_stats=1"]);
        run("cargo", &cmd)?;
    }
    Ok(())
}

/// Runs the core's and the simulator's unit tests under miri (small proptest case counts).
pub fn miri() -> Result<()> {
    setup(&["miri", "rust-src"])?;
    run_env(
        "cargo",
        &[
            "+nightly",
            "miri",
            "test",
            "-p",
            "nova-mm-core",
            "-p",
            "nova-mm-sim",
            "--lib",
            "--all-features",
        ],
        &[
            ("PROPTEST_CASES", "4"),
            ("PROPTEST_FAILURE_PERSISTENCE", "off"),
            ("MIRIFLAGS", "-Zmiri-disable-isolation"),
        ],
    )
}
