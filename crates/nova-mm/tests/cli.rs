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
fn huge_sparse_image_is_walked_without_reading_it() {
    // 192 GiB apparent size: only the root directory is read (it is zero: nothing mapped).
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), 192 << 30);
    let pdb = format!("{:#x}", (192u64 << 30) - 4096);
    let out = nova_mm(&[
        "translate",
        "--vram",
        &img,
        "--pdb",
        &pdb,
        "--mmu",
        "v3",
        "--json",
        "0x1000",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"va\":\"0x1000\",\"state\":\"unmapped\"}\n"
    );
    let out = nova_mm(&[
        "mappings", "--vram", &img, "--pdb", &pdb, "--mmu", "v3", "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"[]\n");
}

/// Runs a small demo (2 GiB of simulated VRAM, fast in debug builds).
fn demo(chip: &str, extra: &[&str]) -> Output {
    let mut args = vec!["demo", "--vram-gib", "2", "--chip", chip];
    args.extend_from_slice(extra);
    nova_mm(&args)
}

#[test]
fn demo_passes_on_every_family() {
    for chip in [
        "pascal", "volta", "turing", "ampere", "ada", "hopper", "gb10x", "gb20x",
    ] {
        let out = demo(chip, &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{chip}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for needle in [
            "page-table tree",
            "(root)",
            "mappings:",
            "PTE writes",
            "TLB invalidates",
            "PRAMIN window moves",
            "page tables allocated",
            "page tables freed",
            "BAR1 accesses fault after the unmap: ok",
        ] {
            assert!(
                stdout.contains(needle),
                "{chip}: '{needle}' missing:\n{stdout}"
            );
        }
        assert!(out.stderr.is_empty(), "{chip}: stderr not empty");
    }
}

#[test]
fn demo_mmu_flag_picks_a_chip() {
    let out = nova_mm(&["demo", "--vram-gib", "2", "--mmu", "v3", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mmu"], "v3");
    fails_with(&["demo", "--chip", "gk104"], "unknown chip");
    fails_with(&["demo", "--vram-gib", "0"], "--vram-gib");
}

/// The "done when": the demo's JSON and its saved image agree, checked by decoding the
/// image with `nova-mm mappings`.
#[test]
fn demo_json_matches_the_saved_image() {
    let dir = tempfile::tempdir().unwrap();
    for (chip, mmu) in [
        ("turing", "v2"),
        ("ampere", "v2"),
        ("hopper", "v3"),
        ("gb20x", "v3"),
    ] {
        let path = dir.path().join(format!("{chip}.img"));
        let path = path.to_str().unwrap();
        let out = demo(chip, &["--json", "--save-vram", path]);
        assert_eq!(out.status.code(), Some(0), "{chip}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "one JSON object");
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = report
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        for k in ["mmu", "pdb", "mappings", "stats"] {
            assert!(keys.contains(&k), "{k} missing");
        }
        assert_eq!(report["mmu"], mmu);
        let stats = &report["stats"];
        for k in [
            "pte_writes",
            "tlb_invalidates",
            "window_moves",
            "page_tables_allocated",
            "page_tables_freed",
        ] {
            assert!(stats[k].as_u64().unwrap() > 0, "{chip}: stats.{k} is 0");
        }
        let pdb = report["pdb"].as_str().unwrap();
        let listed = nova_mm(&[
            "mappings", "--vram", path, "--pdb", pdb, "--mmu", mmu, "--json",
        ]);
        assert_eq!(listed.status.code(), Some(0));
        let from_image: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        assert_eq!(
            report["mappings"], from_image,
            "{chip}: demo JSON and image differ"
        );
        // The rows follow the documented shape, sorted by VA.
        let rows = from_image.as_array().unwrap();
        assert!(rows.len() > 10);
        let mut last = None;
        for r in rows {
            let o = r.as_object().unwrap();
            let mut ks: Vec<&str> = o.keys().map(String::as_str).collect();
            ks.sort_unstable();
            assert_eq!(ks, ["aperture", "pa", "page_size", "read_only", "va"]);
            let va = u64::from_str_radix(o["va"].as_str().unwrap().trim_start_matches("0x"), 16)
                .unwrap();
            assert!(last.is_none_or(|l| l < va), "not sorted by VA");
            last = Some(va);
        }
        let sizes: Vec<u64> = rows
            .iter()
            .map(|r| r["page_size"].as_u64().unwrap())
            .collect();
        for s in [4096u64, 65536, 2 << 20] {
            assert!(sizes.contains(&s), "{chip}: no {s}-byte page");
        }
        if chip != "turing" {
            assert!(sizes.contains(&(512 << 20)), "{chip}: no 512M page");
        }
        translate_documented(path, pdb, mmu, rows);
    }
}

/// `translate --json` on mapped, unmapped and sparse VAs of a demo image.
fn translate_documented(img: &str, pdb: &str, mmu: &str, rows: &[serde_json::Value]) {
    let hex = |s: &serde_json::Value| {
        u64::from_str_radix(s.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    let two_meg = rows.iter().find(|r| r["page_size"] == 2 << 20).unwrap();
    let va = hex(&two_meg["va"]) + 0x1_2345;
    let pa = hex(&two_meg["pa"]) + 0x1_2345;
    let sparse = nova_mm(&[
        "mappings", "--vram", img, "--pdb", pdb, "--mmu", mmu, "--sparse", "--json",
    ]);
    assert_eq!(sparse.status.code(), Some(0));
    let sparse: serde_json::Value = serde_json::from_slice(&sparse.stdout).unwrap();
    let sparse_va = hex(&sparse[0]["va"]) + 0x5000;
    assert!(sparse[0]["size"].as_u64().unwrap() >= 64 << 20);
    let unmapped = 0x7_0000_0000u64; // beyond the demo's BAR1 (4 GiB) on v2; unused on v3
    let args = [
        format!("{va:#x}"),
        format!("{sparse_va:#x}"),
        format!("{unmapped:#x}"),
    ];
    let mut argv = vec![
        "translate",
        "--vram",
        img,
        "--pdb",
        pdb,
        "--mmu",
        mmu,
        "--json",
    ];
    argv.extend(args.iter().map(String::as_str));
    let out = nova_mm(&argv);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{{\"va\":\"{va:#x}\",\"state\":\"mapped\",\"pa\":\"{pa:#x}\",\"aperture\":\"vidmem\",\"page_size\":2097152,\"read_only\":false}}"
            ),
            format!("{{\"va\":\"{sparse_va:#x}\",\"state\":\"sparse\"}}"),
            format!("{{\"va\":\"{unmapped:#x}\",\"state\":\"unmapped\"}}"),
        ]
    );
    // Text forms and the tree.
    let out = nova_mm(&[
        "translate",
        "--vram",
        img,
        "--pdb",
        pdb,
        "--mmu",
        mmu,
        &args[0],
    ]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{va:#x} -> {pa:#x} vidmem 2M rw\n")
    );
    let out = nova_mm(&[
        "mappings", "--vram", img, "--pdb", pdb, "--mmu", mmu, "--tree",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(
        tree.contains("(root)") && tree.contains("2M PTE ->"),
        "{tree}"
    );
    let out = nova_mm(&["mappings", "--vram", img, "--pdb", pdb, "--mmu", mmu]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("VA "));
    assert_eq!(table.lines().count(), rows.len() + 1);
}

#[test]
fn vfio_without_hardware_is_one_clean_line() {
    fails_with(
        &["vfio", "--device", "0000:ff:1f.7", "mappings", "--json"],
        "cannot open 0000:ff:1f.7 through VFIO",
    );
    fails_with(
        &[
            "vfio",
            "--device",
            "0000:ff:1f.7",
            "translate",
            "--pdb",
            "0x1000",
            "0x0",
        ],
        "cannot open",
    );
}
