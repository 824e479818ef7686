//! `nova-mm demo`: the whole stack on the simulated GPU.
//!
//! 1. A [`SimGpu`] with sparse VRAM and a firmware framebuffer region table: the usable region
//!    comes from the core's `hw::fb::usable_region`, the rest is firmware-reserved.
//! 2. The core's VRAM buddy allocator over the usable region; page tables come from it too.
//! 3. "Firmware" builds a BAR1 page directory in its reserved memory (root, one table per level,
//!    1 MiB of its own memory mapped with 64 KiB pages at BAR1 offset 0), written directly to
//!    VRAM as the GSP would, and binds BAR1 to it ([`SimGpu::bind_bar`]).
//! 4. The core VMM takes over that directory
//!    ([`AddressSpace::over_existing`](nova_mm_core::vmm::AddressSpace::over_existing)); every VRAM
//!    access it makes goes through the core's `hw::Pramin` over the simulated BAR0 (a real
//!    window register, so window moves are counted), and every TLB invalidate through the
//!    core's `hw::TlbRegs` writing the invalidate registers of the simulated BAR0, which
//!    forwards the decoded request to the GPU's TLB model when its engine finishes.
//! 5. Buffers of several sizes are allocated and mapped with 4 KiB, 64 KiB, 2 MiB and (where the
//!    chip allows) 512 MiB pages, plus one buffer of mixed runs that the VMM maps with mixed page
//!    sizes, and a sparse reservation (256 GiB sparse entries on Blackwell). Every page of every
//!    buffer is checked both ways: BAR1 write then PRAMIN read, PRAMIN write then BAR1 read.
//! 6. Some buffers are unmapped (their tables freed, their VRAM returned); BAR1 accesses to them
//!    must fault (a stale TLB entry would be caught here).
//! 7. The walker lists the final tables; the list must match the buffers exactly. With
//!    `--save-vram`, the image is written and re-read from the file to check it lists the same.
//!
//! Direct VRAM access (not PRAMIN) is used only by the firmware step (firmware does not go
//! through the host's BAR0) and for the report after the counters were taken.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use nova_mm_core::buddy::{AllocMode, AllocRequest, Block, Buddy, BuddyParams};
use nova_mm_core::hw::fb::{total_fb_end, usable_region, FbRegion};
use nova_mm_core::hw::hal::{Hal, TlbRegisterSet};
use nova_mm_core::hw::pramin::{Pramin, PraminReadBack};
use nova_mm_core::hw::tlb_regs::{Clock, TlbRegs};
use nova_mm_core::mmu::{PteAperture, PteAttrs, PteMapping, PteState};
use nova_mm_core::vmm::{
    Mapping, OpStats, PageTableAllocator, PhysRun, PtAllocError, SpaceConfig, SpaceKind,
    VaPlacement, VecAddressSpace,
};
use nova_mm_core::walk::{format::dir_entry_words, PtFormat};
use nova_mm_core::{
    Chip, MmuV2, MmuV3, MmuVersion, PageSize, PhysAddr, VirtAddr, VramAccess, VramAddress,
    VramError,
};
use nova_mm_sim::bar0::SimBar0;
use nova_mm_sim::refmmu::Pdb;
use nova_mm_sim::{Bar, SharedGpu, SimGpu};

use crate::cli::DemoArgs;
use crate::error::CliError;
use crate::image::VramImage;
use crate::json::{DemoJson, DemoStats, Hex, MappingJson};
use crate::progress::Progress;
use crate::tables::{self, human_size, Listing};
use crate::text;

/// Default simulated VRAM: 16 GiB (sparse: only written pages take host memory).
pub const DEFAULT_VRAM_GIB: u64 = 16;
/// Firmware-reserved memory at the top of VRAM.
const FW_RESERVED: u64 = 64 << 20;
/// What firmware maps at BAR1 offset 0: 1 MiB of its memory, 64 KiB pages.
const FW_MAP_LEN: u64 = 1 << 20;
/// Where buffer G goes: 3 GiB, under a PD1 entry of its own (new PD0 and page table).
const G_VA: u64 = 3 << 30;
/// Offset of that memory inside the reserved region.
const FW_MAP_OFFSET: u64 = 16 << 20;

/// A failed cross-check.
fn check_failed(msg: impl Into<String>) -> CliError {
    CliError::CheckFailed(msg.into())
}

/// The host's monotonic clock for the TLB polls (the simulated engine finishes after two polls).
struct StdClock(Instant);

impl Clock for StdClock {
    fn now_ns(&mut self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    fn delay_ns(&mut self, _ns: u64) {
        std::hint::spin_loop();
    }
}

/// Page tables from the buddy allocator (the core's `PageTableAllocator for Buddy`: top-down
/// 4 KiB blocks), counted.
struct TableAlloc {
    buddy: Buddy<'static>,
    allocated: u64,
    freed: u64,
}

impl PageTableAllocator for TableAlloc {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        let a = self.buddy.alloc_table()?;
        self.allocated += 1;
        Ok(a)
    }
    fn free_table(&mut self, addr: VramAddress) {
        self.buddy.free_table(addr);
        self.freed += 1;
    }
}

/// A buffer to make: name, parts as (size, minimum block), page size (`None`: the VMM picks).
type BufSpec = (&'static str, Vec<(u64, u64)>, Option<PageSize>);

/// One buffer of the demo.
struct Buffer {
    name: String,
    blocks: Vec<Block>,
    runs: Vec<PhysRun>,
    page: Option<PageSize>,
    mapping: Option<Mapping>,
    va: u64,
    len: u64,
}

impl Buffer {
    /// The VRAM address of byte `off` of the buffer.
    fn phys_at(&self, off: u64) -> Option<u64> {
        let mut o = off;
        for r in &self.runs {
            if o < r.len {
                return r.addr.raw().checked_add(o);
            }
            o -= r.len;
        }
        None
    }
}

/// Counters gathered along the way.
#[derive(Default)]
struct Totals {
    pte_writes: u64,
    words_written: u64,
    bulk_writes: u64,
    checks: u64,
}

impl Totals {
    fn add(&mut self, s: &OpStats) {
        self.pte_writes += s.leaves;
        self.words_written += s.words_written;
        self.bulk_writes += s.bulk_writes;
    }
}

/// Runs the demo and prints the report.
///
/// # Errors
///
/// [`CliError::CheckFailed`] when a cross-check fails, [`CliError::Demo`] when a step of the
/// stack fails, image errors for `--save-vram`, output errors.
pub fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let chip = args.chip();
    let gib = args.vram_gib.unwrap_or(DEFAULT_VRAM_GIB);
    if !(1..=256).contains(&gib) {
        return Err(CliError::Demo(format!(
            "--vram-gib {gib} is out of range (1..=256)"
        )));
    }
    let vram_size = gib << 30;
    match chip.mmu_version() {
        MmuVersion::V2 => run_as::<MmuV2>(chip, vram_size, args, out),
        MmuVersion::V3 => run_as::<MmuV3>(chip, vram_size, args, out),
    }
}

fn demo_err(what: &str) -> impl Fn(String) -> CliError + '_ {
    move |e| CliError::Demo(format!("{what}: {e}"))
}

/// BAR1 size of the simulated GPU: room for every buffer and, on Blackwell, for a 256 GiB-aligned
/// sparse range.
fn bar1_size(chip: Chip) -> u64 {
    if chip.supports_page_size(PageSize::Size256G) {
        1 << 40
    } else {
        4 << 30
    }
}

#[allow(clippy::too_many_lines)]
fn run_as<M: PtFormat>(
    chip: Chip,
    vram_size: u64,
    args: &DemoArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut log = String::new();
    let mut totals = Totals::default();
    let progress = Progress::steps(7, "demo", crate::progress::should_draw() && !args.json);

    // 1. The GPU and its framebuffer region table.
    let gpu = SimGpu::new(chip, vram_size).map_err(|e| demo_err("simulated GPU")(e.to_string()))?;
    let gpu = SharedGpu(Rc::new(RefCell::new(gpu)));
    let fw_base = vram_size - FW_RESERVED;
    let regions = [
        FbRegion {
            base: 0,
            limit: fw_base - 1,
            reserved: 0,
            protected: false,
            supports_compression: true,
            supports_iso: true,
        },
        FbRegion {
            base: fw_base,
            limit: vram_size - 1,
            reserved: FW_RESERVED,
            protected: true,
            supports_compression: false,
            supports_iso: false,
        },
    ];
    let usable =
        usable_region(2, &regions).map_err(|e| demo_err("framebuffer regions")(e.to_string()))?;
    let fb_end =
        total_fb_end(2, &regions).map_err(|e| demo_err("framebuffer regions")(e.to_string()))?;
    let _ = writeln!(
        log,
        "framebuffer regions: usable {:#x}..{:#x} ({}), firmware-reserved {:#x}..{:#x}",
        usable.start,
        usable.end,
        human_size(usable.end - usable.start),
        fw_base,
        fb_end
    );

    // 2. The buddy allocator over the usable region.
    let buddy = Buddy::new(BuddyParams {
        base_offset: usable.start,
        size: usable.end - usable.start,
        chunk_size: 4096,
    })
    .map_err(|e| demo_err("buddy allocator")(e.to_string()))?;
    let mut alloc = TableAlloc {
        buddy,
        allocated: 0,
        freed: 0,
    };
    progress.inc(1);

    // 3. Firmware's BAR1 page directory, written directly into reserved VRAM.
    let (pdb, fw_tables) = firmware_bar1::<M>(chip, &gpu, fw_base)?;
    gpu.0
        .borrow_mut()
        .bind_bar(Bar::Bar1, Some(Pdb::vidmem(pdb)));
    let _ = writeln!(
        log,
        "firmware: BAR1 page directory at {pdb:#x} ({} tables in reserved memory), {} of firmware memory mapped at BAR1 0x0 with 64K pages; BAR1 bound",
        fw_tables,
        human_size(FW_MAP_LEN)
    );
    progress.inc(1);

    // 4. The register path: PRAMIN and the TLB registers of the simulated BAR0.
    let bar0 = SimBar0::new(chip, gpu.clone(), gpu.clone());
    let mut pramin =
        Pramin::new(&bar0, chip, vram_size).map_err(|e| demo_err("PRAMIN")(e.to_string()))?;
    let mut tlb = TlbRegs::new(
        &bar0,
        chip,
        StdClock(Instant::now()),
        PraminReadBack::new(&bar0),
    );
    let hal = Hal::new(chip);
    let win = hal.window_register();
    let tlb_desc = match hal.tlb_registers() {
        TlbRegisterSet::HubPri { invalidate, .. } => {
            format!("hub PRI INVALIDATE at {invalidate:#x}")
        }
        TlbRegisterSet::VfAlias { invalidate, .. } => {
            format!("VF alias INVALIDATE at {invalidate:#x}")
        }
    };
    let _ = writeln!(
        log,
        "host access: VRAM through the PRAMIN window (register at {:#x}), TLB invalidates through BAR0 registers ({tlb_desc})",
        win.offset
    );
    let cfg = SpaceConfig {
        chip,
        va_start: 0,
        va_end: bar1_size(chip),
        kind: SpaceKind::Bar,
    };
    let mut space =
        VecAddressSpace::<M>::over_existing_vec(cfg, VramAddress::new(pdb), &mut pramin)
            .map_err(|e| demo_err("VMM over the firmware BAR1 directory")(e.to_string()))?;
    let _ = writeln!(
        log,
        "VMM: BAR1 address space 0x0..{:#x} over the firmware directory ({} foreign tables imported)",
        cfg.va_end,
        space.table_count()
    );
    progress.inc(1);

    // 5. Buffers.
    let mut specs: Vec<BufSpec> = vec![
        ("A", vec![(20 << 10, 4 << 10)], Some(PageSize::Size4K)),
        ("B", vec![(256 << 10, 64 << 10)], Some(PageSize::Size64K)),
        ("C", vec![(6 << 20, 2 << 20)], Some(PageSize::Size2M)),
        (
            "D",
            vec![
                (2 << 20, 2 << 20),
                (128 << 10, 64 << 10),
                (8 << 10, 4 << 10),
            ],
            None,
        ),
        ("E", vec![(12 << 10, 4 << 10)], Some(PageSize::Size4K)),
    ];
    if chip.supports_page_size(PageSize::Size512M) {
        specs.push(("F", vec![(512 << 20, 512 << 20)], Some(PageSize::Size512M)));
    }
    // G lands at a fixed VA under a PD1 entry nobody uses yet: it needs new tables, which
    // its unmap frees again.
    specs.push(("G", vec![(1 << 20, 64 << 10)], Some(PageSize::Size64K)));
    let mut buffers = Vec::new();
    for (name, parts, page) in specs {
        let mut blocks = Vec::new();
        for (size, min) in parts {
            let req = AllocRequest::new(AllocMode::Simple, size, min);
            let got = alloc
                .buddy
                .alloc_blocks(&req)
                .map_err(|e| demo_err("buddy allocation")(e.to_string()))?;
            let sum: u64 = got.iter().map(Block::size).sum();
            if sum != size || got.iter().any(|b| b.offset() % min != 0) {
                return Err(check_failed(format!(
                    "buddy returned {sum:#x} bytes for a {size:#x}-byte request with {min:#x} blocks"
                )));
            }
            blocks.extend(got);
        }
        let runs: Vec<PhysRun> = blocks
            .iter()
            .map(|b| PhysRun::vram(VramAddress::new(b.offset()), b.size()))
            .collect();
        let len = runs.iter().map(|r| r.len).sum();
        let (vram, tlbi) = (&mut pramin, &mut tlb);
        let (m, st) = space
            .map(
                &mut alloc,
                vram,
                tlbi,
                if name == "G" {
                    VaPlacement::Fixed(VirtAddr::new(G_VA))
                } else {
                    VaPlacement::Anywhere { align: 4096 }
                },
                &runs,
                PteAttrs::default(),
                page,
            )
            .map_err(|e| demo_err(&format!("map buffer {name}"))(e.to_string()))?;
        totals.add(&st);
        let va = m.va().raw();
        let _ = writeln!(
            log,
            "map   {name} {:>5} in {} run(s) at VA {va:#x} ({}): {} PTEs, {} tables allocated, {} invalidate",
            human_size(len),
            runs.len(),
            page.map_or_else(|| "mixed pages".to_owned(), |p| format!("{p} pages")),
            st.leaves,
            st.tables_allocated,
            st.invalidates
        );
        buffers.push(Buffer {
            name: name.to_owned(),
            blocks,
            runs,
            page,
            mapping: Some(m),
            va,
            len,
        });
    }
    // A sparse reservation with the largest sparse entries the chip has.
    let sparse_len = chip.largest_page_size().bytes().max(64 << 20);
    let (sparse, st) = space
        .reserve_sparse(
            &mut alloc,
            &mut pramin,
            &mut tlb,
            VaPlacement::Anywhere { align: sparse_len },
            sparse_len,
        )
        .map_err(|e| demo_err("sparse reservation")(e.to_string()))?;
    totals.add(&st);
    let _ = writeln!(
        log,
        "sparse  {} at VA {:#x}: {} entries, {} tables allocated, {} invalidate",
        human_size(sparse_len),
        sparse.va().raw(),
        st.leaves,
        st.tables_allocated,
        st.invalidates
    );
    progress.inc(1);

    // Both directions on every page of every buffer.
    for (i, b) in buffers.iter().enumerate() {
        let n = cross_check_buffer(b, i, &gpu, &mut pramin, &mut totals)?;
        let _ = writeln!(
            log,
            "check {}: BAR1 write -> PRAMIN read and PRAMIN write -> BAR1 read on {n} pages: ok",
            b.name
        );
    }
    progress.inc(1);

    // 6. Unmap some: their tables are freed, their memory returned, BAR1 faults there.
    for name in ["A", "C", "E", "G"] {
        let Some(b) = buffers.iter_mut().find(|b| b.name == name) else {
            continue;
        };
        let Some(m) = b.mapping.take() else { continue };
        let freed_before = alloc.freed;
        let st = space
            .unmap(&mut alloc, &mut pramin, &mut tlb, m)
            .map_err(|(_, e)| demo_err(&format!("unmap buffer {name}"))(e.to_string()))?;
        totals.add(&st);
        alloc
            .buddy
            .free_blocks(&b.blocks, false)
            .map_err(|e| demo_err("buddy free")(e.to_string()))?;
        b.blocks.clear();
        let _ = writeln!(
            log,
            "unmap {name} at VA {:#x}: {} PTEs cleared, {} tables freed, {} invalidate",
            b.va,
            st.leaves,
            alloc.freed - freed_before,
            st.invalidates
        );
        let mut off = 0;
        while off < b.len {
            let va = VirtAddr::new(b.va + off);
            totals.checks += 1;
            if gpu.0.borrow_mut().bar1_read32(va).is_ok() {
                return Err(check_failed(format!(
                    "BAR1 read at {:#x} of unmapped buffer {name} succeeded (stale TLB or PTE)",
                    va.raw()
                )));
            }
            off += 4096;
        }
        let _ = writeln!(log, "check {name}: BAR1 accesses fault after the unmap: ok");
    }
    progress.inc(1);

    // Counters, before the report reads anything.
    let c = bar0.counters();
    let tlb_model = gpu.0.borrow().tlb().invalidate_count();
    let pstats = pramin.stats();
    let stats = DemoStats {
        pte_writes: totals.pte_writes,
        tlb_invalidates: c.invalidates,
        window_moves: c.window_moves,
        page_tables_allocated: alloc.allocated,
        page_tables_freed: alloc.freed,
    };
    if c.protocol_violations != 0 || c.unflushed_invalidates != 0 || c.tlb_errors != 0 {
        return Err(check_failed(format!(
            "BAR0 protocol: {} violations, {} invalidates before a PRAMIN flush, {} TLB errors",
            c.protocol_violations, c.unflushed_invalidates, c.tlb_errors
        )));
    }
    if c.completed != c.invalidates || u64::try_from(tlb_model).ok() != Some(c.invalidates) {
        return Err(check_failed(format!(
            "{} invalidates triggered, {} completed, {} reached the TLB model",
            c.invalidates, c.completed, tlb_model
        )));
    }
    alloc
        .buddy
        .check()
        .map_err(|v| check_failed(format!("buddy allocator inconsistent: {v:?}")))?;
    drop(bar0);
    let Ok(gpu) = Rc::try_unwrap(gpu.0).map(RefCell::into_inner) else {
        return Err(CliError::Demo("the simulated GPU is still shared".into()));
    };
    let mut gpu = gpu;

    // 7. The final tables, as the walker sees them, must be exactly the live buffers.
    let listing =
        tables::list_mappings(M::VERSION, chip, gpu.vram_mut(), pdb, &Progress::hidden())?;
    check_listing(
        &listing,
        &buffers,
        fw_base + FW_MAP_OFFSET,
        sparse.va().raw(),
        sparse_len,
    )?;
    totals.checks += 1;
    progress.inc(1);

    if let Some(path) = &args.save_vram {
        gpu.vram()
            .save_image(path)
            .map_err(|e| CliError::Demo(format!("cannot save VRAM to {}: {e}", path.display())))?;
        check_saved(path, M::VERSION, pdb, &listing)?;
        totals.checks += 1;
        let _ = writeln!(
            log,
            "saved VRAM to {} and re-read it: same mappings",
            path.display()
        );
    }
    progress.finish();

    if args.json {
        let report = DemoJson {
            mmu: M::VERSION.into(),
            pdb: Hex(pdb),
            mappings: listing.mapped,
            stats,
        };
        crate::json::write_json(out, &report)?;
        return Ok(());
    }

    writeln!(
        out,
        "nova-mm demo: {} (MMU {}), {} of simulated VRAM, BAR1 {}",
        chip.name(),
        match M::VERSION {
            MmuVersion::V2 => "v2",
            MmuVersion::V3 => "v3",
        },
        human_size(vram_size),
        human_size(cfg.va_end)
    )?;
    writeln!(out)?;
    out.write_all(log.as_bytes())?;
    writeln!(out)?;
    writeln!(out, "page-table tree (BAR1, PDB {pdb:#x}):")?;
    tables::write_tree(M::VERSION, chip, gpu.vram_mut(), pdb, out)?;
    writeln!(out)?;
    writeln!(out, "mappings:")?;
    text::write_mappings_table(out, &listing.mapped)?;
    writeln!(out)?;
    writeln!(out, "sparse ranges:")?;
    text::write_sparse_table(out, &listing.sparse)?;
    writeln!(out)?;
    writeln!(out, "stats:")?;
    writeln!(out, "  PTE writes             {}", stats.pte_writes)?;
    writeln!(
        out,
        "  entry words written    {} in {} bulk writes",
        totals.words_written, totals.bulk_writes
    )?;
    writeln!(out, "  TLB invalidates        {}", stats.tlb_invalidates)?;
    writeln!(out, "  PRAMIN window moves    {}", stats.window_moves)?;
    writeln!(
        out,
        "  PRAMIN MMIO            {} reads, {} writes",
        pstats.mmio_reads, pstats.mmio_writes
    )?;
    writeln!(
        out,
        "  page tables allocated  {}",
        stats.page_tables_allocated
    )?;
    writeln!(out, "  page tables freed      {}", stats.page_tables_freed)?;
    writeln!(out, "  cross-checks passed    {}", totals.checks)?;
    Ok(())
}

/// Writes the firmware's BAR1 directory straight into reserved VRAM: a root, one table per
/// level on the path to VA 0, a big page table mapping [`FW_MAP_LEN`] of reserved memory with
/// 64 KiB pages. Returns the PDB and the number of tables.
fn firmware_bar1<M: PtFormat>(
    chip: Chip,
    gpu: &SharedGpu,
    fw_base: u64,
) -> Result<(u64, u64), CliError> {
    let fmt_err =
        |e: nova_mm_core::mmu::FormatError| CliError::Demo(format!("firmware tables: {e}"));
    let vram_err = |e: VramError| CliError::Demo(format!("firmware tables: {e}"));
    let mut g = gpu.0.borrow_mut();
    let vram = g.vram_mut();
    let mut next = fw_base;
    let mut bump = || {
        let a = next;
        next += 4096;
        a
    };
    let root = bump();
    let mut table = root;
    let mut tables = 1;
    for level in 0..M::DIR_LEVELS {
        let entry_bytes = dir_entry_words::<M>(level) * 8;
        let child = bump();
        tables += 1;
        if level + 1 == M::DIR_LEVELS {
            // PD0: a dual entry with only the big page table.
            let words =
                M::dual_tables(chip, Some(VramAddress::new(child)), None).map_err(fmt_err)?;
            vram.write_u64s(VramAddress::new(table), &words)
                .map_err(vram_err)?;
            let mut ptes = [0u64; 32];
            for (i, p) in ptes
                .iter_mut()
                .take(usize::try_from(FW_MAP_LEN >> 16).unwrap_or(0))
                .enumerate()
            {
                let pa = fw_base + FW_MAP_OFFSET + (u64::try_from(i).unwrap_or(0) << 16);
                let pte = PteMapping::new(PteAperture::Vidmem, PhysAddr::new(pa));
                *p = M::encode_leaf(chip, &PteState::Valid(pte), true).map_err(fmt_err)?;
            }
            vram.write_u64s(VramAddress::new(child), &ptes)
                .map_err(vram_err)?;
        } else {
            let e = M::upper_table(chip, level, VramAddress::new(child)).map_err(fmt_err)?;
            vram.write64(VramAddress::new(table), e).map_err(vram_err)?;
            let _ = entry_bytes;
            table = child;
        }
    }
    Ok((root, tables))
}

/// Checks every page of `b` both ways: a BAR1 write read back through PRAMIN, and a PRAMIN
/// write read back through BAR1. Returns the number of pages checked.
fn cross_check_buffer(
    b: &Buffer,
    index: usize,
    gpu: &SharedGpu,
    pramin: &mut dyn VramAccess,
    totals: &mut Totals,
) -> Result<u64, CliError> {
    let page = b.page.map_or(4096, PageSize::bytes);
    let mut pages = 0;
    let mut off = 0;
    let tag = u64::try_from(index).unwrap_or(0) << 56;
    while off < b.len {
        // A different offset in every page, 8-byte aligned, inside the page.
        let inner = ((pages * 0x1238) % (page.min(4096) - 16)) & !7;
        let o = off + inner;
        let va = VirtAddr::new(b.va + o);
        let pa = b
            .phys_at(o)
            .ok_or_else(|| check_failed(format!("buffer {} has no byte at {o:#x}", b.name)))?;
        let pattern = 0xB1_0000_0000_0000 | tag | o;
        gpu.0.borrow_mut().bar1_write64(va, pattern).map_err(|e| {
            check_failed(format!(
                "BAR1 write at {:#x} (buffer {}): {e}",
                va.raw(),
                b.name
            ))
        })?;
        let got = pramin
            .read64(VramAddress::new(pa))
            .map_err(|e| check_failed(format!("PRAMIN read at {pa:#x}: {e}")))?;
        if got != pattern {
            return Err(check_failed(format!(
                "buffer {}: BAR1 wrote {pattern:#x} at VA {:#x}, PRAMIN reads {got:#x} at {pa:#x}",
                b.name,
                va.raw()
            )));
        }
        let back = 0x9A_0000_0000_0000 | tag | o;
        let pa2 = pa + 8;
        pramin
            .write64(VramAddress::new(pa2), back)
            .map_err(|e| check_failed(format!("PRAMIN write at {pa2:#x}: {e}")))?;
        let got = gpu
            .0
            .borrow_mut()
            .bar1_read64(VirtAddr::new(va.raw() + 8))
            .map_err(|e| {
                check_failed(format!(
                    "BAR1 read at {:#x} (buffer {}): {e}",
                    va.raw() + 8,
                    b.name
                ))
            })?;
        if got != back {
            return Err(check_failed(format!(
                "buffer {}: PRAMIN wrote {back:#x} at {pa2:#x}, BAR1 reads {got:#x} at VA {:#x}",
                b.name,
                va.raw() + 8
            )));
        }
        totals.checks += 2;
        pages += 1;
        // Every page (4 KiB steps for a mixed buffer, which touches all of its page sizes).
        off += page;
    }
    Ok(pages)
}

/// The walker's list must be exactly: the firmware's 64 KiB pages, and for every live buffer,
/// pages that tile it with the right physical addresses (and its page size when fixed). The
/// sparse list must cover the reservation.
fn check_listing(
    l: &Listing,
    buffers: &[Buffer],
    fw_pa: u64,
    sparse_va: u64,
    sparse_len: u64,
) -> Result<(), CliError> {
    if let Some(bad) = l.bad.first() {
        return Err(check_failed(format!("walker found a bad subtree: {bad}")));
    }
    let mut expected_ranges: Vec<(u64, u64, String)> = vec![(0, FW_MAP_LEN, "firmware".into())];
    for b in buffers.iter().filter(|b| b.mapping.is_some()) {
        expected_ranges.push((b.va, b.len, b.name.clone()));
    }
    for row in &l.mapped {
        let va = row.va.0;
        let Some((start, _, name)) = expected_ranges
            .iter()
            .find(|(s, len, _)| va >= *s && va < s + len)
        else {
            return Err(check_failed(format!("unexpected mapping at VA {va:#x}")));
        };
        let off = va - start;
        let (pa, page) = if name == "firmware" {
            (Some(fw_pa + off), Some(64 << 10))
        } else {
            let b = buffers
                .iter()
                .find(|b| &b.name == name)
                .ok_or_else(|| check_failed("lost buffer"))?;
            (b.phys_at(off), b.page.map(PageSize::bytes))
        };
        if Some(row.pa.0) != pa || page.is_some_and(|p| p != row.page_size) || row.read_only {
            return Err(check_failed(format!(
                "mapping at VA {va:#x} ({name}) is {:#x}/{} bytes, expected {pa:#x?}/{page:?}",
                row.pa.0, row.page_size
            )));
        }
    }
    // Tiling: per range, the pages are contiguous and cover it.
    for (start, len, name) in &expected_ranges {
        let mut at = *start;
        for row in l
            .mapped
            .iter()
            .filter(|r| r.va.0 >= *start && r.va.0 < start + len)
        {
            if row.va.0 != at {
                return Err(check_failed(format!(
                    "{name}: hole or overlap at VA {at:#x}"
                )));
            }
            at += row.page_size;
        }
        if at != start + len {
            return Err(check_failed(format!(
                "{name}: pages cover {:#x} bytes of {len:#x}",
                at - start
            )));
        }
    }
    let covered: u64 = l
        .sparse
        .iter()
        .filter(|s| s.va.0 >= sparse_va && s.va.0 < sparse_va + sparse_len)
        .map(|s| s.size)
        .sum();
    if covered != sparse_len || l.sparse.len() != 1 {
        return Err(check_failed(format!(
            "sparse ranges {:?} do not match the {sparse_len:#x}-byte reservation at {sparse_va:#x}",
            l.sparse
        )));
    }
    Ok(())
}

/// Re-reads the saved image as `nova-mm mappings` would and compares.
fn check_saved(path: &Path, mmu: MmuVersion, pdb: u64, listing: &Listing) -> Result<(), CliError> {
    let mut image = VramImage::open(path)?;
    let again = tables::list_mappings(
        mmu,
        tables::decode_chip(mmu),
        &mut image,
        pdb,
        &Progress::hidden(),
    )?;
    let same = |a: &[MappingJson], b: &[MappingJson]| a == b;
    if !same(&again.mapped, &listing.mapped) || again.sparse != listing.sparse {
        return Err(check_failed(format!(
            "the saved image {} lists {} mappings, the demo {}",
            path.display(),
            again.mapped.len(),
            listing.mapped.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{Aperture, SparseJson};

    fn args(chip: &str) -> DemoArgs {
        DemoArgs {
            chip: Some(chip.parse().unwrap()),
            mmu: None,
            save_vram: None,
            json: true,
            vram_gib: Some(1),
        }
    }

    #[test]
    fn demo_json_in_process() {
        for chip in ["turing", "gb20x"] {
            let mut out = Vec::new();
            run(&args(chip), &mut out).unwrap();
            let report: DemoJson = serde_json::from_slice(&out).unwrap();
            assert!(report.mappings.len() > 10);
            assert!(report.stats.page_tables_freed > 0);
        }
    }

    fn listing_and_buffers() -> (Listing, Vec<Buffer>) {
        let fw_pa = 0x7d00_0000;
        let mut mapped: Vec<MappingJson> = (0..16)
            .map(|i| MappingJson::new(i << 16, fw_pa + (i << 16), 1 << 16, Aperture::Vidmem, false))
            .collect();
        mapped.push(MappingJson::new(
            0x20_0000,
            0x4000_0000,
            2 << 20,
            Aperture::Vidmem,
            false,
        ));
        let buffers = vec![Buffer {
            name: "X".into(),
            blocks: Vec::new(),
            runs: vec![PhysRun::vram(VramAddress::new(0x4000_0000), 2 << 20)],
            page: Some(PageSize::Size2M),
            mapping: None,
            va: 0x20_0000,
            len: 2 << 20,
        }];
        let l = Listing {
            mapped,
            sparse: vec![SparseJson {
                va: Hex(0x4000_0000),
                size: 64 << 20,
            }],
            bad: Vec::new(),
            tables: 0,
        };
        (l, buffers)
    }

    #[test]
    fn the_listing_check_catches_every_kind_of_difference() {
        let (l, b) = listing_and_buffers();
        // Buffer X is not live (no mapping): its row is unexpected.
        let e = check_listing(&l, &b, 0x7d00_0000, 0x4000_0000, 64 << 20).unwrap_err();
        assert!(
            e.to_string().contains("unexpected mapping at VA 0x200000"),
            "{e}"
        );
        let mut fine = l.clone();
        fine.mapped.pop();
        check_listing(&fine, &b, 0x7d00_0000, 0x4000_0000, 64 << 20).unwrap();
        let mut wrong_pa = fine.clone();
        wrong_pa.mapped[3].pa = Hex(0x1000);
        assert!(check_listing(&wrong_pa, &b, 0x7d00_0000, 0x4000_0000, 64 << 20).is_err());
        let mut hole = fine.clone();
        hole.mapped.remove(5);
        let e = check_listing(&hole, &b, 0x7d00_0000, 0x4000_0000, 64 << 20).unwrap_err();
        assert!(e.to_string().contains("hole"), "{e}");
        let mut ro = fine.clone();
        ro.mapped[0].read_only = true;
        assert!(check_listing(&ro, &b, 0x7d00_0000, 0x4000_0000, 64 << 20).is_err());
        assert!(check_listing(&fine, &b, 0x7d00_0000, 0x4000_0000, 32 << 20).is_err());
        let mut bad = fine.clone();
        bad.bad.push("x".into());
        assert!(check_listing(&bad, &b, 0x7d00_0000, 0x4000_0000, 64 << 20).is_err());
        assert_eq!(
            CliError::CheckFailed(String::new()).exit_code(),
            CliError::CHECK_FAILED_CODE
        );
    }
}
