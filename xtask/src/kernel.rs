//! `cargo xtask kernel-test`: nova-mm-core's self-tests inside a booted Linux 6.12 kernel.
//!
//! Steps (each timed):
//! 1. install what is missing: Debian packages, bindgen-cli 0.72.1, the `rust-src` component;
//! 2. build a tinyconfig + Rust kernel from Debian's `linux-source-6.12`, once, cached under
//!    `~/.cache/nova-mm/kernel-<hash>/` keyed by everything that goes into it (config fragment,
//!    source package version, rustc, bindgen and clang versions);
//! 3. build the host proc-macros (zerocopy-derive, thiserror-impl, bitfield-struct) with cargo,
//!    i.e. with the same rustc as the kernel;
//! 4. build `nova_mm.ko` from `crates/nova-mm-kernel/module/` with Kbuild, which compiles
//!    nova-mm-core and its dependencies as crate objects with the kernel's own rustc flags;
//! 5. pack a busybox initramfs whose `/init` loads the module and runs `reboot -f`;
//! 6. boot it in QEMU (TCG; `/dev/kvm` here is not usable) with a timeout, and require the serial
//!    log to show `nova-mm: N passed, 0 failed` with N = `nova_mm_core::selftest::count()` and no
//!    oops, panic, BUG or warning.
//!
//! `NOVA_MM_KERNEL_BUILD=<dir>` uses an already built kernel (its `O=` directory, configured
//! like [`CONFIG_FRAGMENT`]) instead of the cache.
//!
//! What the build scripts of the dependencies would do is replaced by hand here (Kbuild runs no
//! build scripts): see [`CrateSrc`] and `crates/nova-mm-kernel/module/Kbuild`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Debian packages the step needs (`apt-get install`ed when missing).
const APT_PACKAGES: &[&str] = &[
    "linux-source-6.12",
    "qemu-system-x86",
    "clang-19",
    "lld-19",
    "llvm-19",
    "libclang-19-dev",
    "libelf-dev",
    "flex",
    "bison",
    "busybox-static",
    "cpio",
    "bc",
    "libssl-dev",
];

const KERNEL_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
const LIBCLANG_PATH: &str = "/usr/lib/llvm-19/lib";
const BINDGEN_VERSION: &str = "0.72.1";
/// `make LLVM=-19`: clang-19, ld.lld-19, llvm-*-19.
const LLVM: &str = "LLVM=-19";
/// Bump when the way the kernel is built changes, to invalidate caches.
const RECIPE: &str = "nova-mm kernel recipe 1";

/// Options set on top of `tinyconfig` (`kernel-in-qemu.md`): a 64-bit kernel with a serial
/// console, initramfs, ELF and script binaries, modules, and Rust. `CONFIG_BUG` so that a Rust
/// panic is a visible BUG. All must survive `olddefconfig` (checked).
const CONFIG_FRAGMENT: &[&str] = &[
    "CONFIG_64BIT=y",
    "CONFIG_PRINTK=y",
    "CONFIG_BUG=y",
    "CONFIG_TTY=y",
    "CONFIG_SERIAL_8250=y",
    "CONFIG_SERIAL_8250_CONSOLE=y",
    "CONFIG_BLK_DEV_INITRD=y",
    "CONFIG_BINFMT_ELF=y",
    "CONFIG_BINFMT_SCRIPT=y",
    "CONFIG_DEVTMPFS=y",
    "CONFIG_PROC_FS=y",
    "CONFIG_SYSFS=y",
    "CONFIG_MODULES=y",
    "CONFIG_MODULE_UNLOAD=y",
    "CONFIG_RUST=y",
];

/// The QEMU run may not take longer than this (a TCG boot takes a few seconds).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Lines in the serial log that fail the run whatever else it says.
const BAD_MARKERS: &[&str] = &[
    "Oops",
    "BUG:",
    "Kernel panic",
    "kernel BUG",
    "Call Trace",
    "WARNING:",
    "rust_panic",
    "panicked at",
    "nova-mm: FAIL",
    "nova-mm-init: insmod failed",
];

/// Timings of the steps, printed at the end.
struct Timer {
    start: Instant,
    steps: Vec<(String, f64)>,
}

impl Timer {
    fn step<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        eprintln!("kernel-test: == {name}");
        let t = Instant::now();
        let r = f();
        let secs = t.elapsed().as_secs_f64();
        eprintln!("kernel-test: == {name}: {secs:.1} s");
        self.steps.push((name.to_owned(), secs));
        r
    }

    fn report(&self) {
        eprintln!("kernel-test: timings:");
        for (name, secs) in &self.steps {
            eprintln!("  {secs:>7.1} s  {name}");
        }
        eprintln!("  {:>7.1} s  total", self.start.elapsed().as_secs_f64());
    }
}

/// Entry point of `cargo xtask kernel-test`.
pub fn kernel_test() -> Result<()> {
    let mut timer = Timer {
        start: Instant::now(),
        steps: Vec::new(),
    };
    let r = kernel_test_steps(&mut timer);
    timer.report();
    r
}

fn kernel_test_steps(timer: &mut Timer) -> Result<()> {
    let root = workspace_root()?;
    let work = root.join("target").join("kernel-test");
    fs::create_dir_all(&work)?;

    timer.step("install missing tools", install_missing)?;
    let kernel = timer.step("kernel (cached by configuration)", build_kernel_cached)?;
    let macros = timer.step("host proc-macros (cargo)", || {
        build_host_macros(&root, &work)
    })?;
    let crates = timer.step("dependency sources (cargo metadata)", || {
        crate_sources(&root, &work)
    })?;
    let ko = timer.step("module nova_mm.ko (Kbuild)", || {
        build_module(&root, &work, &kernel, &macros, &crates)
    })?;
    let initrd = timer.step("initramfs (busybox)", || {
        build_initramfs(&work, &kernel, &ko)
    })?;
    let log = timer.step("boot in QEMU", || boot(&work, &kernel, &initrd))?;
    timer.step("check serial log", || check_log(&log))
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("xtask has no parent directory"))
}

fn cmd_env(program: &str) -> Command {
    let mut c = Command::new(program);
    if std::env::var_os("LIBCLANG_PATH").is_none() {
        c.env("LIBCLANG_PATH", LIBCLANG_PATH);
    }
    c
}

/// Runs `c`, echoing it, and fails with its output if it fails. Output goes to the terminal.
fn run_cmd(c: &mut Command) -> Result<()> {
    eprintln!("$ {c:?}");
    let status = c.status().with_context(|| format!("cannot start {c:?}"))?;
    if !status.success() {
        bail!("{c:?} failed: {status}");
    }
    Ok(())
}

/// Runs `c` and returns its stdout; fails (printing stderr) if it fails.
fn capture(c: &mut Command) -> Result<String> {
    let out = c
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {c:?}"))?;
    if !out.status.success() {
        bail!("{c:?} failed: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// stdout of `program args`, or `None` if it cannot run or fails.
fn probe(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_root() -> bool {
    probe("id", &["-u"]).is_some_and(|s| s.trim() == "0")
}

/// `apt-get` as root, through `sudo -n` when not root.
fn apt_get(args: &[&str]) -> Result<()> {
    let mut c = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "apt-get"]);
        c
    };
    c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run_cmd(&mut c)
}

fn install_missing() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !probe("dpkg-query", &["-W", "-f=${Status}", p])
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if !missing.is_empty() {
        eprintln!("kernel-test: installing {}", missing.join(" "));
        apt_get(&["update", "-q"])?;
        let mut args = vec!["install", "-y", "-q"];
        args.extend(missing.iter().copied());
        apt_get(&args)?;
    }
    let bindgen_ok = probe("bindgen", &["--version"])
        .is_some_and(|v| v.split_whitespace().any(|w| w == BINDGEN_VERSION));
    if !bindgen_ok {
        run_cmd(Command::new("cargo").args([
            "install",
            "--locked",
            &format!("bindgen-cli@{BINDGEN_VERSION}"),
        ]))?;
    }
    let sysroot = probe("rustc", &["--print", "sysroot"]).unwrap_or_default();
    let core_src = Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core/src/lib.rs");
    if !core_src.exists() {
        run_cmd(Command::new("rustup").args(["component", "add", "rust-src"]))?;
    }
    Ok(())
}

/// 64-bit FNV-1a: a stable hash for cache keys (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A built kernel: its build directory (`O=`), with `arch/x86/boot/bzImage` and
/// `usr/gen_init_cpio`.
struct Kernel {
    build: PathBuf,
}

impl Kernel {
    fn bzimage(&self) -> PathBuf {
        self.build.join("arch/x86/boot/bzImage")
    }
}

fn cache_root() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("nova-mm"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?;
    Ok(PathBuf::from(home).join(".cache").join("nova-mm"))
}

/// Everything the kernel build depends on, as text: hashed for the cache key and stored
/// beside the build for inspection.
fn kernel_key() -> Result<String> {
    let mut key = String::new();
    writeln!(key, "{RECIPE}")?;
    writeln!(
        key,
        "linux-source-6.12 {}",
        probe("dpkg-query", &["-W", "-f=${Version}", "linux-source-6.12"]).unwrap_or_default()
    )?;
    for line in CONFIG_FRAGMENT {
        writeln!(key, "{line}")?;
    }
    for (program, args) in [
        ("rustc", &["-vV"][..]),
        ("bindgen", &["--version"][..]),
        ("clang-19", &["--version"][..]),
    ] {
        let out = probe(program, args).ok_or_else(|| anyhow!("`{program}` does not run"))?;
        writeln!(key, "{out}")?;
    }
    Ok(key)
}

fn build_kernel_cached() -> Result<Kernel> {
    if let Some(dir) = std::env::var_os("NOVA_MM_KERNEL_BUILD").filter(|d| !d.is_empty()) {
        // A kernel built elsewhere (its `O=` directory), e.g. by a developer; used as is.
        let kernel = Kernel {
            build: PathBuf::from(dir),
        };
        eprintln!(
            "kernel-test: using NOVA_MM_KERNEL_BUILD={}",
            kernel.build.display()
        );
        return Ok(kernel);
    }
    let key = kernel_key()?;
    let dir = cache_root()?.join(format!("kernel-{:016x}", fnv1a(key.as_bytes())));
    let kernel = Kernel {
        build: dir.join("build"),
    };
    // One builder at a time per configuration (two CI runs on one machine): the second waits and
    // then finds the kernel built. Released when `lock` is dropped at return.
    fs::create_dir_all(cache_root()?)?;
    let lock = fs::File::create(dir.with_extension("lock"))?;
    lock.lock().context("locking the kernel cache")?;
    let done = dir.join("done");
    if done.exists() && kernel.bzimage().exists() {
        eprintln!("kernel-test: using cached kernel {}", dir.display());
        return Ok(kernel);
    }
    if dir.exists() {
        eprintln!("kernel-test: removing incomplete {}", dir.display());
        fs::remove_dir_all(&dir)?;
    }
    let src = dir.join("src");
    fs::create_dir_all(&src)?;
    fs::create_dir_all(&kernel.build)?;
    fs::write(dir.join("key.txt"), &key)?;
    eprintln!("kernel-test: building kernel in {}", dir.display());

    let t = Instant::now();
    run_cmd(
        Command::new("tar")
            .args(["-xf", KERNEL_TARBALL, "--strip-components=1", "-C"])
            .arg(&src),
    )?;
    eprintln!(
        "kernel-test: unpacked in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let make = |targets: &[&str]| -> Result<()> {
        let mut c = cmd_env("make");
        c.arg("-C")
            .arg(&src)
            .arg(format!("O={}", kernel.build.display()))
            .arg(LLVM)
            .args(targets);
        run_cmd(&mut c)
    };
    make(&["-s", "rustavailable"])?;
    make(&["-s", "tinyconfig"])?;
    let config = kernel.build.join(".config");
    let mut text = fs::read_to_string(&config)?;
    for line in CONFIG_FRAGMENT {
        text.push_str(line);
        text.push('\n');
    }
    fs::write(&config, text)?;
    make(&["-s", "olddefconfig"])?;
    let text = fs::read_to_string(&config)?;
    for line in CONFIG_FRAGMENT {
        if !text.lines().any(|l| l == *line) {
            bail!(
                "{line} did not survive olddefconfig (is Rust available? see `make rustavailable`)"
            );
        }
    }
    let t = Instant::now();
    let jobs = format!(
        "-j{}",
        std::thread::available_parallelism().map_or(2, usize::from)
    );
    make(&[jobs.as_str()])?;
    eprintln!(
        "kernel-test: kernel built in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    for needed in [kernel.bzimage(), kernel.build.join("usr/gen_init_cpio")] {
        if !needed.exists() {
            bail!("the kernel build did not produce {}", needed.display());
        }
    }
    // The unpacked source is needed by out-of-tree module builds (the build dir links to it).
    fs::write(&done, "")?;
    Ok(kernel)
}

// --- A very small JSON reader, enough for `cargo metadata` and cargo's build messages. ---

#[derive(Debug, Clone)]
enum Json {
    Null,
    /// A boolean or a number (their values are not needed).
    Scalar,
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    fn parse(s: &str) -> Result<Json> {
        let mut p = JsonParser {
            b: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.b.len() {
            bail!("trailing characters in JSON at byte {}", p.i);
        }
        Ok(v)
    }

    fn get(&self, k: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.get(k),
            _ => None,
        }
    }

    fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => &[],
        }
    }

    fn field(&self, k: &str) -> Option<&str> {
        self.get(k).and_then(Json::str)
    }
}

struct JsonParser<'a> {
    b: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<()> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            bail!("expected `{}` in JSON at byte {}", c as char, self.i)
        }
    }

    fn lit(&mut self, word: &str, v: Json) -> Result<Json> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            bail!("bad JSON literal at byte {}", self.i)
        }
    }

    fn value(&mut self) -> Result<Json> {
        self.ws();
        match self.b.get(self.i).copied() {
            Some(b'{') => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    let v = self.value()?;
                    m.insert(k, v);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => bail!("bad JSON object at byte {}", self.i),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(a));
                        }
                        _ => bail!("bad JSON array at byte {}", self.i),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.lit("true", Json::Scalar),
            Some(b'f') => self.lit("false", Json::Scalar),
            Some(b'n') => self.lit("null", Json::Null),
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    self.i += 1;
                }
                Ok(Json::Scalar)
            }
            _ => bail!("bad JSON value at byte {}", self.i),
        }
    }

    fn string(&mut self) -> Result<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = *self
                .b
                .get(self.i)
                .ok_or_else(|| anyhow!("unterminated JSON string"))?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self
                        .b
                        .get(self.i)
                        .ok_or_else(|| anyhow!("bad JSON escape"))?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self
                                .b
                                .get(self.i..self.i + 4)
                                .ok_or_else(|| anyhow!("bad JSON \\u escape"))?;
                            let code = u32::from_str_radix(&String::from_utf8_lossy(hex), 16)?;
                            self.i += 4;
                            let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                            let mut buf = [0; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The proc-macro `.so` files, by crate name, copied into one directory.
struct HostMacros {
    dir: PathBuf,
    so: BTreeMap<String, PathBuf>,
}

const PROC_MACROS: &[(&str, &str)] = &[
    ("zerocopy-derive", "zerocopy_derive"),
    ("thiserror-impl", "thiserror_impl"),
    ("bitfield-struct", "bitfield_struct"),
];

fn build_host_macros(root: &Path, work: &Path) -> Result<HostMacros> {
    // Built by cargo from the workspace's Cargo.lock, for the host, by the rustc on PATH: the
    // same rustc the kernel is built with (`kernel_key` records it).
    let mut c = Command::new("cargo");
    c.current_dir(root)
        .args(["build", "--message-format=json-render-diagnostics"]);
    for (pkg, _) in PROC_MACROS {
        c.args(["-p", pkg]);
    }
    let out = capture(&mut c)?;
    let dir = work.join("host-macros");
    fs::create_dir_all(&dir)?;
    let mut so = BTreeMap::new();
    for line in out.lines().filter(|l| l.starts_with('{')) {
        let msg = Json::parse(line)?;
        if msg.field("reason") != Some("compiler-artifact") {
            continue;
        }
        let Some(target) = msg.get("target") else {
            continue;
        };
        let is_proc_macro = target
            .get("kind")
            .map(Json::arr)
            .unwrap_or_default()
            .iter()
            .any(|k| k.str() == Some("proc-macro"));
        let Some(name) = target.field("name") else {
            continue;
        };
        let crate_name = name.replace('-', "_");
        if !is_proc_macro || !PROC_MACROS.iter().any(|(_, c)| *c == crate_name) {
            continue;
        }
        for f in msg.get("filenames").map(Json::arr).unwrap_or_default() {
            let Some(f) = f.str() else { continue };
            if f.ends_with(".so") {
                let file = Path::new(f)
                    .file_name()
                    .ok_or_else(|| anyhow!("no file name in {f}"))?;
                let dst = dir.join(file);
                // Copied only when changed: Kbuild rebuilds whatever depends on a newer `.so`.
                let new = fs::read(f)?;
                if fs::read(&dst).ok().as_deref() != Some(&new[..]) {
                    fs::write(&dst, new)?;
                }
                so.insert(crate_name.clone(), dst);
            }
        }
    }
    for (_, c) in PROC_MACROS {
        if !so.contains_key(*c) {
            bail!("cargo did not report the proc-macro {c}");
        }
    }
    Ok(HostMacros { dir, so })
}

/// A library crate compiled into the module: where its source is and how to replace its build
/// script.
struct CrateSrc {
    /// Crate name (underscores), also the object's name in Kbuild.
    name: String,
    version: String,
    edition: String,
    lib_rs: PathBuf,
    manifest_dir: PathBuf,
    /// `--cfg` flags standing in for the build script.
    cfgs: Vec<String>,
}

impl CrateSrc {
    /// The environment cargo would give the compiler (some crates use `env!` on it).
    fn env(&self) -> String {
        let mut parts = self.version.splitn(3, '.');
        let (major, minor, patch) = (
            parts.next().unwrap_or("0"),
            parts.next().unwrap_or("0"),
            parts.next().unwrap_or("0"),
        );
        format!(
            "CARGO_PKG_NAME={n} CARGO_CRATE_NAME={n} CARGO_PKG_VERSION={v} \
             CARGO_PKG_VERSION_MAJOR={major} CARGO_PKG_VERSION_MINOR={minor} \
             CARGO_PKG_VERSION_PATCH={patch} CARGO_MANIFEST_DIR={d}",
            n = self.name,
            v = self.version,
            d = self.manifest_dir.display(),
        )
    }
}

/// The normal dependencies of nova-mm-core this step knows how to build into the kernel. Any
/// other dependency fails the step with a message saying where to add it.
const KNOWN_CORE_DEPS: &[&str] = &[
    "bitfield-struct",
    "static_assertions",
    "thiserror",
    "zerocopy",
];

/// Sources of nova-mm-core and of its library dependencies, from `cargo metadata`.
fn crate_sources(root: &Path, work: &Path) -> Result<BTreeMap<String, CrateSrc>> {
    let meta = capture(Command::new("cargo").current_dir(root).args([
        "metadata",
        "--format-version",
        "1",
        "--locked",
    ]))?;
    let meta = Json::parse(&meta)?;
    let packages = meta.get("packages").map(Json::arr).unwrap_or_default();
    let by_id: BTreeMap<&str, &Json> = packages
        .iter()
        .filter_map(|p| Some((p.field("id")?, p)))
        .collect();
    let core = packages
        .iter()
        .find(|p| p.field("name") == Some("nova-mm-core"))
        .ok_or_else(|| anyhow!("nova-mm-core not in cargo metadata"))?;
    let core_id = core.field("id").unwrap_or_default();
    let node = meta
        .get("resolve")
        .and_then(|r| r.get("nodes"))
        .map(Json::arr)
        .unwrap_or_default()
        .iter()
        .find(|n| n.field("id") == Some(core_id))
        .ok_or_else(|| anyhow!("nova-mm-core not in the resolve graph"))?;

    let rustc = rustc_version()?;
    let mut out = BTreeMap::new();
    let mut add = |p: &Json| -> Result<()> {
        let name = p.field("name").unwrap_or_default().replace('-', "_");
        let manifest = PathBuf::from(p.field("manifest_path").unwrap_or_default());
        let manifest_dir = manifest
            .parent()
            .ok_or_else(|| anyhow!("bad manifest path"))?
            .to_path_buf();
        let lib = p
            .get("targets")
            .map(Json::arr)
            .unwrap_or_default()
            .iter()
            .find(|t| {
                t.get("kind")
                    .map(Json::arr)
                    .unwrap_or_default()
                    .iter()
                    .any(|k| k.str() == Some("lib"))
            })
            .and_then(|t| t.field("src_path"))
            .ok_or_else(|| anyhow!("{name} has no lib target"))?;
        let mut src = CrateSrc {
            name: name.clone(),
            version: p.field("version").unwrap_or_default().to_owned(),
            edition: p.field("edition").unwrap_or("2015").to_owned(),
            lib_rs: PathBuf::from(lib),
            manifest_dir,
            cfgs: Vec::new(),
        };
        match name.as_str() {
            "zerocopy" => src.cfgs = zerocopy_cfgs(&manifest, rustc)?,
            "thiserror" => src.cfgs = thiserror_setup(&src, work)?,
            _ => {}
        }
        out.insert(name, src);
        Ok(())
    };
    add(core)?;
    // The kernel glue: its only normal dependency is the core.
    let glue = packages
        .iter()
        .find(|p| p.field("name") == Some("nova-mm-kernel"))
        .ok_or_else(|| anyhow!("nova-mm-kernel not in cargo metadata"))?;
    add(glue)?;
    for dep in node.get("deps").map(Json::arr).unwrap_or_default() {
        let normal = dep
            .get("dep_kinds")
            .map(Json::arr)
            .unwrap_or_default()
            .iter()
            .any(|k| matches!(k.get("kind"), Some(Json::Null)));
        if !normal {
            continue;
        }
        let pkg = by_id
            .get(dep.field("pkg").unwrap_or_default())
            .ok_or_else(|| anyhow!("dependency not in packages"))?;
        let pname = pkg.field("name").unwrap_or_default();
        if !KNOWN_CORE_DEPS.contains(&pname) {
            bail!(
                "nova-mm-core depends on `{pname}`, which the kernel module does not build yet: \
                 add it to crates/nova-mm-kernel/module/Kbuild and KNOWN_CORE_DEPS in \
                 xtask/src/kernel.rs (or keep it out of the core's kernel path)"
            );
        }
        if pname != "bitfield-struct" {
            add(pkg)?;
        }
    }
    for needed in [
        "nova_mm_core",
        "nova_mm_kernel",
        "zerocopy",
        "thiserror",
        "static_assertions",
    ] {
        if !out.contains_key(needed) {
            bail!("{needed} not found among nova-mm-core's dependencies");
        }
    }
    Ok(out)
}

/// (major, minor, patch) of the rustc on PATH.
fn rustc_version() -> Result<(u32, u32, u32)> {
    let v = probe("rustc", &["--version"]).ok_or_else(|| anyhow!("rustc does not run"))?;
    parse_version(
        v.trim_start_matches("rustc ")
            .split(|c: char| c != '.' && !c.is_ascii_digit())
            .next()
            .unwrap_or_default(),
    )
}

fn parse_version(s: &str) -> Result<(u32, u32, u32)> {
    let mut it = s.trim().trim_matches('"').split('.').map(str::parse::<u32>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Ok((a, b, c)),
        _ => bail!("cannot parse version `{s}`"),
    }
}

/// What zerocopy's build script does: for each `name = "x.y.z"` in
/// `[package.metadata.build-rs]` of its Cargo.toml with rustc older than x.y.z,
/// `--cfg name` (dashes as underscores). Plus `no_fp_fmt_parse`: the kernel's `core` is built
/// without float formatting and parsing.
fn zerocopy_cfgs(manifest: &Path, rustc: (u32, u32, u32)) -> Result<Vec<String>> {
    let toml = fs::read_to_string(manifest)?;
    let section = toml
        .split("[package.metadata.build-rs]")
        .nth(1)
        .ok_or_else(|| anyhow!("zerocopy's Cargo.toml has no [package.metadata.build-rs]"))?;
    let section = section.split("\n[").next().unwrap_or_default();
    let mut cfgs = vec!["--cfg no_fp_fmt_parse".to_owned()];
    for line in section.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if rustc < parse_version(value)? {
            cfgs.push(format!("--cfg {}", name.trim().replace('-', "_")));
        }
    }
    Ok(cfgs)
}

/// What thiserror 2's build script does: writes `$OUT_DIR/private.rs` (a module named after the
/// patch version, which thiserror-impl's expansion refers to). Its probe for the nightly
/// `error_generic_member_access` is not replaced: the kernel allows only its own unstable
/// features, so that cfg stays off, as on stable. rustc >= 1.81 is assumed (no `std` fallback).
fn thiserror_setup(src: &CrateSrc, work: &Path) -> Result<Vec<String>> {
    let patch = src
        .version
        .split('.')
        .nth(2)
        .ok_or_else(|| anyhow!("bad thiserror version {}", src.version))?;
    let out_dir = work.join("thiserror-out");
    fs::create_dir_all(&out_dir)?;
    write_if_changed(
        &out_dir.join("private.rs"),
        &format!(
            "#[doc(hidden)]\npub mod __private{patch} {{\n    #[doc(hidden)]\n    \
             pub use crate::private::*;\n}}\n"
        ),
    )?;
    Ok(Vec::new())
}

/// Writes `text` unless the file already holds it: Kbuild rebuilds whatever depends on a file
/// with a new modification time.
fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if fs::read(path).ok().as_deref() != Some(text.as_bytes()) {
        fs::write(path, text)?;
    }
    Ok(())
}

fn build_module(
    root: &Path,
    work: &Path,
    kernel: &Kernel,
    macros: &HostMacros,
    crates: &BTreeMap<String, CrateSrc>,
) -> Result<PathBuf> {
    let src_dir = root.join("crates/nova-mm-kernel/module");
    let dir = work.join("module");
    // Objects built against another kernel (another cache key or NOVA_MM_KERNEL_BUILD) must not
    // be reused: their metadata refers to that kernel's `core` and `kernel` crates.
    let stamp = format!(
        "{}\n{:?}\n",
        kernel.build.display(),
        fs::metadata(kernel.build.join("rust/libkernel.rmeta"))
            .and_then(|m| m.modified())
            .ok()
    );
    let stamp_file = work.join("module.kernel");
    if fs::read_to_string(&stamp_file).ok().as_deref() != Some(stamp.as_str()) && dir.exists() {
        eprintln!("kernel-test: kernel changed, rebuilding the module from scratch");
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    fs::write(&stamp_file, &stamp)?;
    // Kbuild writes its outputs next to the sources: build in a copy.
    for f in ["Kbuild", "Makefile", "nova_mm_selftest.rs"] {
        let from = src_dir.join(f);
        let to = dir.join(f);
        let new = fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        if fs::read(&to).ok().as_deref() != Some(&new[..]) {
            fs::write(&to, new)?;
        }
    }
    let get = |name: &str| {
        crates
            .get(name)
            .ok_or_else(|| anyhow!("missing crate {name}"))
    };
    let so = |name: &str| {
        macros
            .so
            .get(name)
            .ok_or_else(|| anyhow!("missing proc-macro {name}"))
    };
    let mut vars: Vec<(String, String)> = vec![
        ("NOVA_HOST_MACROS".into(), macros.dir.display().to_string()),
        (
            "NOVA_ZEROCOPY_DERIVE_SO".into(),
            so("zerocopy_derive")?.display().to_string(),
        ),
        (
            "NOVA_THISERROR_IMPL_SO".into(),
            so("thiserror_impl")?.display().to_string(),
        ),
        (
            "NOVA_BITFIELD_STRUCT_SO".into(),
            so("bitfield_struct")?.display().to_string(),
        ),
        (
            "NOVA_THISERROR_OUT_DIR".into(),
            work.join("thiserror-out").display().to_string(),
        ),
    ];
    for (var, name) in [
        ("CORE", "nova_mm_core"),
        ("GLUE", "nova_mm_kernel"),
        ("ZEROCOPY", "zerocopy"),
        ("THISERROR", "thiserror"),
        ("STATIC_ASSERTIONS", "static_assertions"),
    ] {
        let c = get(name)?;
        vars.push((format!("NOVA_{var}_SRC"), c.lib_rs.display().to_string()));
        vars.push((format!("NOVA_{var}_EDITION"), c.edition.clone()));
        vars.push((format!("NOVA_{var}_CFGS"), c.cfgs.join(" ")));
        vars.push((format!("NOVA_{var}_ENV"), c.env()));
    }
    let mut c = cmd_env("make");
    c.arg("-C")
        .arg(&kernel.build)
        .arg(format!("M={}", dir.display()))
        .arg(LLVM)
        .arg("-j2")
        .arg("modules");
    if std::env::var_os("NOVA_MM_KBUILD_VERBOSE").is_some() {
        c.arg("V=1");
    }
    for (k, v) in &vars {
        c.arg(format!("{k}={v}"));
    }
    run_cmd(&mut c)?;
    let ko = dir.join("nova_mm.ko");
    if !ko.exists() {
        bail!("Kbuild did not produce {}", ko.display());
    }
    Ok(ko)
}

/// The initramfs: static busybox, the module, and an `/init` that loads it and reboots.
fn build_initramfs(work: &Path, kernel: &Kernel, ko: &Path) -> Result<PathBuf> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| anyhow!("busybox not found (package busybox-static)"))?;
    let init = work.join("init");
    fs::write(
        &init,
        "#!/bin/busybox sh\n\
         /bin/busybox mount -t proc proc /proc\n\
         echo nova-mm-init: loading nova_mm.ko\n\
         /bin/busybox insmod /lib/modules/nova_mm.ko || echo nova-mm-init: insmod failed\n\
         echo nova-mm-init: done\n\
         /bin/busybox reboot -f\n",
    )?;
    let list = work.join("initramfs.list");
    fs::write(
        &list,
        format!(
            "dir /dev 0755 0 0\n\
             nod /dev/console 0600 0 0 c 5 1\n\
             dir /proc 0755 0 0\n\
             dir /sys 0755 0 0\n\
             dir /bin 0755 0 0\n\
             file /bin/busybox {} 0755 0 0\n\
             slink /bin/sh busybox 0777 0 0\n\
             dir /lib 0755 0 0\n\
             dir /lib/modules 0755 0 0\n\
             file /lib/modules/nova_mm.ko {} 0644 0 0\n\
             file /init {} 0755 0 0\n",
            busybox.display(),
            ko.display(),
            init.display()
        ),
    )?;
    let cpio = work.join("initramfs.cpio");
    let out = Command::new(kernel.build.join("usr/gen_init_cpio"))
        .arg(&list)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run gen_init_cpio")?;
    if !out.status.success() {
        bail!("gen_init_cpio failed: {}", out.status);
    }
    fs::write(&cpio, out.stdout)?;
    Ok(cpio)
}

/// Boots the kernel and returns the serial log. Kills QEMU at the timeout.
fn boot(work: &Path, kernel: &Kernel, initrd: &Path) -> Result<String> {
    let log = work.join("serial.log");
    let _ = fs::remove_file(&log);
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-accel", "tcg", "-m", "256M", "-smp", "1"])
        .args([
            "-display", "none", "-vga", "none", "-monitor", "none", "-nic", "none",
        ])
        .arg("-no-reboot")
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .arg("-kernel")
        .arg(kernel.bzimage())
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 oops=panic loglevel=7"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("$ {c:?}");
    let mut child = c.spawn().context("cannot start qemu-system-x86_64")?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut qemu_err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut qemu_err);
    }
    let text = fs::read(&log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    match status {
        None => {
            eprintln!("{text}");
            bail!(
                "QEMU did not exit within {} s (hang?); serial log above",
                BOOT_TIMEOUT.as_secs()
            )
        }
        Some(s) if !s.success() => {
            eprintln!("{text}\n{qemu_err}");
            bail!("QEMU failed: {s}; serial log and QEMU's stderr above")
        }
        Some(_) => {
            eprintln!(
                "kernel-test: QEMU ran {:.1} s; serial log in {}",
                start.elapsed().as_secs_f64(),
                log.display()
            );
            Ok(text)
        }
    }
}

/// `Some((passed, failed))` if `line` contains `nova-mm: N passed, M failed`.
fn summary_line(line: &str) -> Option<(usize, usize)> {
    let rest = &line[line.find("nova-mm: ")? + "nova-mm: ".len()..];
    let (passed, rest) = rest.split_once(" passed, ")?;
    let failed = rest.trim_end().strip_suffix(" failed")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}

/// The number of self-tests the module runs: the core's table, then the kernel glue's.
fn expected_count() -> usize {
    nova_mm_core::selftest::count() + nova_mm_kernel::selftest::TESTS.len()
}

fn check_log(log: &str) -> Result<()> {
    let expected = expected_count();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| BAD_MARKERS.iter().any(|m| l.contains(m)))
        .collect();
    let summaries: Vec<(&str, (usize, usize))> = log
        .lines()
        .filter_map(|l| Some((l, summary_line(l)?)))
        .collect();
    let verdict = match (bad.is_empty(), summaries.as_slice()) {
        (false, _) => Err(anyhow!(
            "the kernel log shows failures:\n  {}",
            bad.join("\n  ")
        )),
        (true, []) => Err(anyhow!(
            "no `nova-mm: N passed, M failed` line in the serial log"
        )),
        (true, [(line, (passed, failed))]) => {
            if *failed == 0 && *passed == expected {
                eprintln!("kernel-test: {}", line.trim());
                Ok(())
            } else {
                Err(anyhow!(
                    "in-kernel self-tests: `{}`, expected {expected} passed, 0 failed",
                    line.trim()
                ))
            }
        }
        (true, _) => Err(anyhow!("more than one summary line in the serial log")),
    };
    if verdict.is_err() {
        eprintln!("----- serial log -----\n{log}\n----- end of serial log -----");
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines() {
        assert_eq!(
            summary_line("[    1.2] nova-mm: 31 passed, 0 failed\r"),
            Some((31, 0))
        );
        assert_eq!(summary_line("nova-mm: 3 passed, 2 failed"), Some((3, 2)));
        assert_eq!(summary_line("nova-mm: FAIL x: y"), None);
        assert_eq!(summary_line("nova_mm: loaded"), None);
    }

    #[test]
    fn log_verdicts() {
        let n = expected_count();
        assert!(check_log(&format!("boot\nnova-mm: {n} passed, 0 failed\n")).is_ok());
        assert!(check_log(&format!("nova-mm: {} passed, 0 failed\n", n + 1)).is_err());
        assert!(check_log("nova-mm: 1 passed, 1 failed\n").is_err());
        assert!(check_log("nothing\n").is_err());
        assert!(check_log(&format!("nova-mm: {n} passed, 0 failed\nOops: 0000\n")).is_err());
    }

    #[test]
    fn json_reader() {
        let v = Json::parse(r#"{"a":[1,true,null,"x\"y\u0041"],"b":{}}"#).unwrap();
        assert_eq!(v.get("a").unwrap().arr()[3].str(), Some("x\"yA"));
        assert!(Json::parse("{").is_err());
    }

    #[test]
    fn zerocopy_cfgs_follow_the_build_script() {
        let dir = std::env::temp_dir().join(format!("nova-mm-zc-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("Cargo.toml");
        fs::write(
            &toml,
            "[package]\n[package.metadata.build-rs]\n# c\nno-zerocopy-a-1-100-0 = \"1.100.0\"\n\
             no-zerocopy-b-1-81-0 = \"1.81.0\"\n\n[features]\nx = []\n",
        )
        .unwrap();
        let cfgs = zerocopy_cfgs(&toml, (1, 95, 0)).unwrap();
        assert_eq!(
            cfgs,
            ["--cfg no_fp_fmt_parse", "--cfg no_zerocopy_a_1_100_0"]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
