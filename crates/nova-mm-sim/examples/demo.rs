//! Demo of the simulated GPU: builds small page-table trees by hand (raw 64-bit entries written
//! into simulated VRAM, MMU v2 and v3) with 4 KiB, 64 KiB, 2 MiB and 512 MiB pages and sparse
//! ranges, then prints what the reference MMU makes of a set of virtual addresses, and shows a
//! stale TLB entry disappearing after a correctly scoped invalidate.
//!
//! Run: `cargo run --release -p nova-mm-sim --example demo`

use std::process::ExitCode;

use nova_mm_core::{
    AckMode, CacheLevel, Chip, InvalidateRequest, PdbAperture, PdbTarget, TlbInvalidate, VaScope,
    VirtAddr, VramAccess,
};
use nova_mm_sim::{Access, Level, Pdb, RefMmu, SimGpu, SimVram, Translation, VramEntries};

/// v2 PDE / small half to a vidmem table: APERTURE (2:1) = 1, ADDRESS_VID (32:8) = PA >> 12.
fn v2_pde(pa: u64) -> u64 {
    (pa >> 4) | 0b010
}
/// v2 valid vidmem PTE: VALID (0) = 1, APERTURE = 0 (video), ADDRESS_VID (32:8) = PA >> 12.
fn v2_pte(pa: u64) -> u64 {
    (pa >> 4) | 1
}
/// v3 PDE to a vidmem table: APERTURE (2:1) = 1, ADDRESS (51:12) in place.
fn v3_pde(pa: u64) -> u64 {
    pa | 0b010
}
/// v3 valid vidmem PTE, PCF 0 (read-write, atomics, cached).
fn v3_pte(pa: u64) -> u64 {
    pa | 1
}

fn put(v: &mut SimVram, addr: u64, value: u64) {
    if !v.poke64(addr, value) {
        eprintln!("demo: {addr:#x} outside VRAM");
    }
}

/// v2 tree at `base`: PD3 -> PD2 -> PD1 -> PD0 for VA 0..1 GiB.
fn build_v2(v: &mut SimVram, base: u64) -> Pdb {
    let (pd3, pd2, pd1, pd0, big, small) = (
        base,
        base + 0x1000,
        base + 0x2000,
        base + 0x3000,
        base + 0x4000,
        base + 0x5000,
    );
    put(v, pd3, v2_pde(pd2)); // PD3[0]
    put(v, pd2, v2_pde(pd1)); // PD2[0]
    put(v, pd1, v2_pde(pd0)); // PD1[0]
                              // PD0[0]: dual, big PT (ADDRESS_BIG 32:4 = PA >> 8, i.e. PA >> 4 again) and small PT.
    put(v, pd0, (big >> 4) | 0b010);
    put(v, pd0 + 8, v2_pde(small));
    put(v, small, v2_pte(0x100_0000)); // VA 0x0000: 4 KiB RW
    put(v, small + 8, v2_pte(0x100_1000) | 0x40); // VA 0x1000: READ_ONLY (bit 6)
    put(v, small + 16, v2_pte(0x100_2000) | 0x20); // VA 0x2000: PRIVILEGE (bit 5)
    put(v, big + 8, v2_pte(0x200_0000)); // big[1], VA 0x1_0000: 64 KiB
    put(v, big + 16, 0x8); // big[2]: sparse (V=0, VOL=1): blocks small PTEs
    put(v, big + 24, 0x20); // big[3]: V=0 PRIV=1, "no valid 4 KiB PTE below"
    put(v, small + 0x30 * 8, v2_pte(0x100_3000)); // hidden under big[3]
                                                  // Peer page: APERTURE 1 (0x2), peer 3 at 35:33.
    put(v, small + 0x40 * 8, v2_pte(0x5000) | 0x2 | (3 << 33));
    // Sysmem page: APERTURE 2 (0x4), ADDRESS_SYS 53:8 beyond 37 bits.
    put(v, small + 0x41 * 8, (0x80_0000_0000 >> 4) | 0x4 | 1);
    put(v, pd0 + 16, v2_pte(0x400_0000)); // PD0[1], VA 0x20_0000: 2 MiB
    put(v, pd0 + 32, 0x8); // PD0[2], VA 0x40_0000: sparse dual PDE (VOL_BIG)
    put(v, pd1 + 8, v2_pte(0x2000_0000)); // PD1[1], VA 0x2000_0000: 512 MiB (Ampere/Ada)
    put(v, pd1 + 16, 0x8); // PD1[2], VA 0x4000_0000: sparse PDE
    Pdb::vidmem(pd3)
}

/// v3 tree at `base`: PD4 -> PD3 -> PD2 -> PD1 -> PD0.
fn build_v3(v: &mut SimVram, base: u64) -> Pdb {
    let t = |i: u64| base + 0x1000 * i;
    put(v, t(0), v3_pde(t(1))); // PD4[0]
    put(v, t(1), v3_pde(t(2))); // PD3[0]
    put(v, t(2), v3_pde(t(3))); // PD2[0]
    put(v, t(3), v3_pde(t(4))); // PD1[0]
    let (big, small) = (t(5) + 0x100, t(6)); // the big PT only 256-byte aligned
    put(v, t(4), big | 0b010); // PD0[0] big half: ADDRESS_BIG 51:8 in place
    put(v, t(4) + 8, v3_pde(small)); // small half
    put(v, small, v3_pte(0x100_0000));
    put(v, small + 8, v3_pte(0x100_1000) | (0x4 << 3)); // PCF READ_ONLY
    put(v, small + 16, v3_pte(0x100_2000) | (0x2 << 3)); // PCF PRIVILEGE
    put(v, big + 8, v3_pte(0x200_0000));
    put(v, big + 16, 1 << 3); // PCF 1 = SPARSE
    put(v, big + 24, 3 << 3); // PCF 3 = NO_VALID_4KB_PAGE
    put(v, small + 0x40 * 8, v3_pte(0x5000) | 0x2 | (3 << 61)); // peer 3
    put(v, small + 0x41 * 8, 0x80_0000_0000 | 0x4 | 1); // sysmem coherent
    put(v, t(4) + 16, v3_pte(0x400_0000)); // 2 MiB
    put(v, t(4) + 32, 1 << 3); // sparse dual PDE
    put(v, t(3) + 8, v3_pte(0x2000_0000)); // 512 MiB
    put(v, t(3) + 16, 1 << 3); // sparse PD1
    Pdb::vidmem(t(0))
}

const VAS: [u64; 13] = [
    0x0000_0abc,
    0x0000_1abc,
    0x0000_2abc,
    0x0001_2345,
    0x0002_0000,
    0x0003_0000,
    0x0004_0000,
    0x0004_1000,
    0x0025_4321,
    0x0040_0000,
    0x0060_0000,
    0x2345_6789,
    0x4000_0000,
];

fn describe(r: &Result<Translation, nova_mm_sim::Fault>) -> String {
    match r {
        Ok(t) => {
            let m = &t.mapping;
            let a = m.attrs;
            let mut perms = String::new();
            perms.push(if a.privileged { 'P' } else { '-' });
            perms.push(if a.read_only { 'R' } else { 'W' });
            perms.push(if a.atomic_disabled { '-' } else { 'A' });
            perms.push(if a.uncached { 'U' } else { 'C' });
            let ap = match m.aperture {
                nova_mm_sim::Aperture::Peer => format!("Peer{}", m.peer_id),
                other => format!("{other:?}"),
            };
            format!(
                "{:#014x} {:<15} {:>4} {} at {}",
                t.pa.raw(),
                ap,
                m.page_size.to_string(),
                perms,
                m.level
            )
        }
        Err(f) => format!("fault: {f}"),
    }
}

fn table(chip: Chip, vram: &SimVram, pdb: Pdb) {
    let mmu = RefMmu::new(chip);
    println!(
        "\n{} (MMU {}), PDB {:#x}; perms: P privileged / R read-only or W / A atomics / C cached or U",
        chip,
        chip.mmu_version(),
        pdb.addr
    );
    println!("VA             PA             aperture        size perm level");
    for va in VAS {
        let r = mmu.translate(vram, pdb, VirtAddr::new(va), Access::READ);
        println!("{:#014x} {}", va, describe(&r));
    }
    let w = mmu.translate(vram, pdb, VirtAddr::new(0x1abc), Access::WRITE);
    println!("{:#014x} write: {}", 0x1abc, describe(&w));
    let p = mmu.translate(vram, pdb, VirtAddr::new(0x2abc), Access::READ.privileged());
    println!("{:#014x} privileged read: {}", 0x2abc, describe(&p));
}

fn main() -> ExitCode {
    let mut vram = match SimVram::new(256 << 20) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pdb2 = build_v2(&mut vram, 0x1000);
    let pdb3 = build_v3(&mut vram, 0x10_0000);
    println!(
        "nova-mm-sim demo: {} MiB simulated VRAM, {} pages allocated",
        vram.size() >> 20,
        vram.allocated_pages()
    );
    table(Chip::Turing, &vram, pdb2);
    table(Chip::Ampere, &vram, pdb2);
    table(Chip::Hopper, &vram, pdb3);

    // One walk step by step: the entries the reference MMU read.
    let walk =
        RefMmu::new(Chip::Hopper).walk_with(&mut VramEntries(&vram), pdb3, VirtAddr::new(0x1_2345));
    println!("\nWalk of VA 0x12345 on hopper:");
    for s in &walk.steps {
        let entry = if s.level == Level::Pd0 {
            format!("{:#018x} {:#018x}", s.entry[1], s.entry[0])
        } else {
            format!("{:#018x}", s.entry[0])
        };
        println!(
            "  {:<8} entry at {:#010x} = {entry}{}",
            s.level.to_string(),
            s.entry_addr,
            if s.followed { "  (followed)" } else { "" }
        );
    }
    match walk.result {
        Ok(m) => println!("  -> {} page at {:#x}", m.page_size, m.page_base.raw()),
        Err(f) => println!("  -> fault: {f}"),
    }

    // TLB staleness: translate, remap without invalidating, translate again, invalidate.
    let mut gpu = SimGpu::from_vram(Chip::Hopper, vram);
    let va = VirtAddr::new(0x0abc);
    let show = |gpu: &mut SimGpu, what: &str| {
        let r = gpu.channel_translate(pdb3, va, Access::READ);
        println!("  {what:<44} {}", describe(&r));
    };
    println!("\nTLB model (Hopper, GPC TLB), VA {va}:");
    show(&mut gpu, "first translation");
    // Small PT of the v3 tree is at 0x10_6000; entry 0 -> 0x180_0000.
    gpu.vram_mut().poke64(0x10_6000, v3_pte(0x180_0000));
    show(&mut gpu, "after remapping, no invalidate (stale)");
    let req = InvalidateRequest {
        pdb: PdbTarget::One {
            addr: pdb3.addr,
            aperture: PdbAperture::Vidmem,
        },
        va: VaScope::All,
        hub_tlb_only: true,
        cache_level: CacheLevel::PteOnly,
        ack: AckMode::Globally,
    };
    let _ = gpu.invalidate(&req);
    show(&mut gpu, "after a hub-only invalidate (still stale)");
    let _ = gpu.invalidate(&InvalidateRequest {
        hub_tlb_only: false,
        ..req
    });
    show(&mut gpu, "after a PTE invalidate of all TLBs");
    println!("  invalidates recorded: {}", gpu.tlb().invalidate_count());
    ExitCode::SUCCESS
}
