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

/// The repository root (the parent of `xtask/`), so that the commands work from any directory.
fn repo_root() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?;
    std::env::set_current_dir(root).with_context(|| format!("cd {}", root.display()))
}

/// `cargo xtask fuzz [TARGET] [SECONDS]`: runs one target, or every target, for SECONDS each
/// (default 60), starting from the committed seed corpus in `fuzz/seeds/TARGET` and growing
/// the git-ignored working corpus `fuzz/corpus/TARGET`. Crashes land in
/// `fuzz/artifacts/TARGET/`; replay one with `cargo +nightly fuzz run --fuzz-dir fuzz -s none
/// TARGET FILE`.
///
/// The targets are built without a sanitizer: the code under test is safe Rust (miri covers
/// undefined behaviour), and AddressSanitizer would halve the executions per second. A
/// single input running longer than 10 s counts as a hang.
pub fn fuzz(args: &[String]) -> Result<()> {
    repo_root()?;
    setup(&[])?;
    ensure_cargo_fuzz()?;
    let all = fuzz_targets()?;
    let (targets, seconds) = match args {
        [] => (all.clone(), 60),
        [t] if t.parse::<u64>().is_ok() => (all.clone(), t.parse()?),
        [t] => (vec![t.clone()], 60),
        [t, s, ..] => (
            vec![t.clone()],
            s.parse().context("SECONDS must be a number")?,
        ),
    };
    for t in &targets {
        if !all.contains(t) {
            bail!("unknown fuzz target {t}; known: {}", all.join(", "));
        }
    }
    let build = [
        "+nightly",
        "fuzz",
        "build",
        "--fuzz-dir",
        "fuzz",
        "-s",
        "none",
    ];
    if let [one] = targets.as_slice() {
        run("cargo", &[&build[..], &[one.as_str()]].concat())?;
    } else {
        run("cargo", &build)?;
    }
    for t in &targets {
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
            "-s",
            "none",
            t.as_str(),
            corpus.as_str(),
        ];
        if Path::new(&seeds).is_dir() {
            cmd.push(seeds.as_str());
        }
        cmd.extend([
            "--",
            time.as_str(),
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
        ]);
        run("cargo", &cmd)?;
    }
    Ok(())
}

/// Runs the core's and the simulator's unit tests under miri (small proptest case counts).
///
/// Tests too slow for miri are marked `#[cfg_attr(miri, ignore)]`, and property tests use fewer
/// cases when `cfg!(miri)`.
pub fn miri() -> Result<()> {
    repo_root()?;
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
            // The buddy tests leak their metadata storage on purpose (`Box::leak` for a
            // `'static` borrow); a leak is not undefined behaviour.
            ("MIRIFLAGS", "-Zmiri-disable-isolation -Zmiri-ignore-leaks"),
        ],
    )
}
