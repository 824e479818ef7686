//! Runs the built `nova-mm` binary: argument errors give exactly one line on stderr and exit
//! status 2, and nothing panics.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Output};

fn nova_mm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nova-mm"))
        .args(args)
        .output()
        .expect("run nova-mm")
}

/// Asserts exit status 2, empty stdout, and exactly one `nova-mm: error:` line on stderr that
/// contains `needle`.
#[track_caller]
fn fails_with(args: &[&str], needle: &str) {
    let out = nova_mm(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout not empty");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line: {stderr}"
    );
    assert!(stderr.ends_with('\n'));
    assert!(stderr.starts_with("nova-mm: error: "), "{stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: '{needle}' not in: {stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

/// A sparse image of `size` bytes in a temporary directory.
fn image(dir: &Path, size: u64) -> String {
    let path = dir.join("vram.bin");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(size).unwrap();
    f.write_all_at(&[1], 0).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn help_and_version_succeed() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["translate", "--help"],
        &["vfio", "--help"],
    ] {
        let out = nova_mm(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty());
    }
    let help = String::from_utf8(nova_mm(&["--help"]).stdout).unwrap();
    for cmd in ["demo", "translate", "mappings", "vfio"] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
    }
}

#[test]
fn usage_errors() {
    fails_with(&[], "subcommand");
    fails_with(&["frobnicate"], "frobnicate");
    fails_with(
        &["translate", "--vram", "x", "--pdb", "0x1000", "--mmu", "v2"],
        "VA",
    );
    fails_with(
        &["translate", "--pdb", "0x1000", "--mmu", "v2", "0x0"],
        "--vram",
    );
    fails_with(
        &[
            "translate",
            "--vram",
            "x",
            "--pdb",
            "0x1000",
            "--mmu",
            "v4",
            "0",
        ],
        "v4",
    );
    fails_with(
        &[
            "mappings", "--vram", "x", "--pdb", "0", "--mmu", "v2", "--tree", "--json",
        ],
        "--json",
    );
}

#[test]
fn malformed_addresses() {
    fails_with(
        &[
            "translate",
            "--vram",
            "x",
            "--pdb",
            "0xZZ",
            "--mmu",
            "v2",
            "0",
        ],
        "'0xZZ' is not a hexadecimal number",
    );
    fails_with(
        &[
            "translate",
            "--vram",
            "x",
            "--pdb",
            "0x1000",
            "--mmu",
            "v2",
            "12k",
        ],
        "'12k' is not an address",
    );
    fails_with(
        &[
            "translate",
            "--vram",
            "x",
            "--pdb",
            "0x1000",
            "--mmu",
            "v3",
            "0x10000000000000000",
        ],
        "does not fit in 64 bits",
    );
    fails_with(
        &["mappings", "--vram", "x", "--pdb", "", "--mmu", "v3"],
        "empty address",
    );
}

#[test]
fn unknown_chip_and_conflicts() {
    fails_with(&["demo", "--chip", "rtx9090"], "unknown chip 'rtx9090'");
    fails_with(&["demo", "--chip", "ga102", "--mmu", "v2"], "--mmu");
}

#[test]
fn bad_pci_address() {
    fails_with(
        &["vfio", "--device", "01:00", "translate", "0x0"],
        "is not a PCI address",
    );
    fails_with(&["vfio", "--device", "0000:01:00.0"], "subcommand");
}

#[test]
fn image_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.bin");
    let missing = missing.to_str().unwrap();
    fails_with(
        &[
            "translate",
            "--vram",
            missing,
            "--pdb",
            "0x1000",
            "--mmu",
            "v2",
            "0x0",
        ],
        "cannot open VRAM image",
    );
    fails_with(
        &[
            "mappings",
            "--vram",
            dir.path().to_str().unwrap(),
            "--pdb",
            "0",
            "--mmu",
            "v2",
        ],
        "is not a regular file",
    );
    let img = image(dir.path(), 1 << 20);
    fails_with(
        &[
            "translate",
            "--vram",
            &img,
            "--pdb",
            "0x100000",
            "--mmu",
            "v2",
            "0x0",
        ],
        "PDB 0x100000 is outside the VRAM image",
    );
    fails_with(
        &[
            "mappings",
            "--vram",
            &img,
            "--pdb",
            "0xffffffffffff0000",
            "--mmu",
            "v3",
        ],
        "is outside the VRAM image",
    );
    fails_with(
        &["mappings", "--vram", &img, "--pdb", "0x1008", "--mmu", "v3"],
        "not 4 KiB aligned",
    );
    fails_with(
        &[
            "demo",
            "--save-vram",
            missing.replace("missing.bin", "no/such/dir/x.bin").as_str(),
        ],
        "its directory does not exist",
    );
}

#[test]
fn huge_sparse_image_is_accepted_without_reading_it() {
    // 192 GiB apparent size: opening and checking the PDB must not read the file.
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), 192 << 30);
    let pdb = format!("{:#x}", (192u64 << 30) - 4096);
    // STUB: once the walker is wired this succeeds; until then it reports the missing piece.
    fails_with(
        &[
            "translate",
            "--vram",
            &img,
            "--pdb",
            &pdb,
            "--mmu",
            "v3",
            "0x1000",
        ],
        "not available yet",
    );
}

/// STUB: these assert the placeholders; replace them with real output checks when the walker,
/// the VMM and the VFIO backend are wired.
#[test]
fn stubs_report_not_yet_available() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), 1 << 20);
    fails_with(
        &[
            "translate",
            "--vram",
            &img,
            "--pdb",
            "4096",
            "--mmu",
            "v2",
            "--json",
            "0x0",
        ],
        "'translate' is not available yet: it needs the page-table walker",
    );
    fails_with(
        &[
            "mappings", "--vram", &img, "--pdb", "0", "--mmu", "v2", "--sparse",
        ],
        "'mappings' is not available yet",
    );
    fails_with(&["demo", "--json"], "'demo' is not available yet");
    fails_with(
        &["vfio", "--device", "0000:01:00.0", "mappings", "--json"],
        "'vfio' is not available yet",
    );
}
