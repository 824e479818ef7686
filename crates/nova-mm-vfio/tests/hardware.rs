//! Runs against a real GPU when `NOVA_MM_VFIO_DEVICE=DDDD:BB:DD.F` names one bound to vfio-pci;
//! otherwise prints that it is skipped and passes.
//!
//! It only reads: the chip ID and one PRAMIN word at VRAM address 0 (the window is restored).

use nova_mm_core::hw::mmio::Mmio;
use nova_mm_core::hw::pramin::Pramin;
use nova_mm_core::{VramAccess, VramAddress};
use nova_mm_vfio::{OpenOptions, VfioGpu};

#[test]
fn real_gpu_when_configured() {
    let Ok(addr) = std::env::var("NOVA_MM_VFIO_DEVICE") else {
        println!("skipped: NOVA_MM_VFIO_DEVICE is not set");
        return;
    };
    let gpu =
        VfioGpu::open(&addr, OpenOptions::default()).unwrap_or_else(|e| panic!("{addr}: {e}"));
    let id = gpu.chip();
    println!(
        "{addr}: {} (chipset {:#x}), BAR0 {:#x} bytes ({:#x} mapped), BAR1 {:#x} bytes",
        id.chip,
        id.chipset(),
        gpu.bar0().bar_size(),
        gpu.bar0().mapped_bytes(),
        gpu.bar1().map_or(0, |b| b.bar_size()),
    );
    let window = nova_mm_core::hw::hal::Hal::new(id.chip).window_register();
    let saved = gpu
        .bar0()
        .read32(window.offset)
        .expect("read the window register");
    let mut p = Pramin::new(gpu.bar0(), id.chip, 1 << 20).expect("PRAMIN");
    let word = p.read32(VramAddress::new(0)).expect("PRAMIN read");
    println!("VRAM[0] = {word:#010x}");
    gpu.bar0()
        .write32(window.offset, saved)
        .expect("restore the window");
}
