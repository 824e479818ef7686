//! [`SimGpu`]: a chip, its simulated VRAM and its TLB model, with BAR1/BAR2-style accessors.
//!
//! The BAR accessors translate a GPU virtual address in the bound BAR address space through the
//! *hub* TLB (and so through the reference MMU on a miss), then read or write VRAM at the
//! physical address. Together with a PRAMIN-style write through [`VramAccess`] this gives the
//! cross-check a real GPU allows: write page tables and data through one path, read them back
//! through the MMU.
//!
//! BAR accesses use the VRAM back door: they are not counted in [`crate::VramStats`] and not
//! subject to fault injection (which models the PRAMIN path); they have their own counters
//! ([`SimGpu::bar_accesses`]).
//!
//! The VRAM and the TLB are separate fields, so a caller can hold `&mut` to both at once through
//! [`SimGpu::parts`]; `SimGpu` itself also implements [`VramAccess`] and [`TlbInvalidate`] by
//! delegation.

use nova_mm_core::tlb::{InvalidateRequest, TlbError, TlbInvalidate};
use nova_mm_core::{Chip, VirtAddr, VramAccess, VramAddress, VramError};

use crate::refmmu::{Access, Aperture, Fault, Pdb, Translation};
use crate::tlb::{SimTlb, TlbPath};
use crate::vram::{SimVram, SimVramError};

mod shared;
pub use shared::{SharedGpu, SimBar1};

/// One of the two BAR address spaces.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Bar {
    /// BAR1: the CPU window onto a GPU virtual address space.
    Bar1,
    /// BAR2: the kernel-only window for instance memory and page tables.
    Bar2,
}

/// Why a BAR access failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BarError {
    /// No address space is bound to the BAR.
    #[error("{0:?} is not bound to an address space")]
    Unbound(Bar),
    /// The VA is not aligned to the access size.
    #[error("BAR access at {va} is not {align}-byte aligned")]
    Misaligned {
        /// The VA.
        va: VirtAddr,
        /// The access size.
        align: u64,
    },
    /// The MMU faulted.
    #[error("MMU fault: {0}")]
    Fault(#[from] Fault),
    /// The page is not in this GPU's VRAM (peer or system memory), which the simulator does
    /// not have.
    #[error("page is in {0:?}, not local VRAM")]
    NotVidmem(Aperture),
    /// The physical address is outside the VRAM.
    #[error("VRAM: {0}")]
    Vram(#[from] VramError),
}

/// Counters of BAR accesses.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct BarAccesses {
    /// Successful reads.
    pub reads: u64,
    /// Successful writes.
    pub writes: u64,
    /// Failed accesses (any [`BarError`]).
    pub errors: u64,
}

/// The simulated GPU. See the module documentation.
#[derive(Debug)]
pub struct SimGpu {
    chip: Chip,
    vram: SimVram,
    tlb: SimTlb,
    bar1: Option<Pdb>,
    bar2: Option<Pdb>,
    bar_privileged: bool,
    bar_counts: BarAccesses,
}

impl SimGpu {
    /// A GPU of family `chip` with `vram_size` bytes of (all-zero, unallocated) VRAM, nothing
    /// bound to the BARs, and a strict reference MMU.
    ///
    /// # Errors
    ///
    /// [`SimVramError::TooLarge`] above 256 GiB.
    pub fn new(chip: Chip, vram_size: u64) -> Result<Self, SimVramError> {
        Ok(Self::from_vram(chip, SimVram::new(vram_size)?))
    }

    /// A GPU around an existing VRAM (e.g. one loaded from an image).
    #[must_use]
    pub fn from_vram(chip: Chip, vram: SimVram) -> Self {
        Self {
            chip,
            vram,
            tlb: SimTlb::new(chip),
            bar1: None,
            bar2: None,
            bar_privileged: false,
            bar_counts: BarAccesses::default(),
        }
    }

    /// The chip family.
    #[must_use]
    pub fn chip(&self) -> Chip {
        self.chip
    }

    /// The VRAM.
    #[must_use]
    pub fn vram(&self) -> &SimVram {
        &self.vram
    }

    /// The VRAM, mutably.
    pub fn vram_mut(&mut self) -> &mut SimVram {
        &mut self.vram
    }

    /// The TLB model.
    #[must_use]
    pub fn tlb(&self) -> &SimTlb {
        &self.tlb
    }

    /// The TLB model, mutably.
    pub fn tlb_mut(&mut self) -> &mut SimTlb {
        &mut self.tlb
    }

    /// Both at once, for code that writes page tables and invalidates (the VMM).
    pub fn parts(&mut self) -> (&mut SimVram, &mut SimTlb) {
        (&mut self.vram, &mut self.tlb)
    }

    /// Takes the GPU apart.
    #[must_use]
    pub fn into_parts(self) -> (SimVram, SimTlb) {
        (self.vram, self.tlb)
    }

    /// Binds `bar` to the address space rooted at `pdb` (or unbinds it). Like writing the BAR
    /// block register: cached translations are not touched.
    pub fn bind_bar(&mut self, bar: Bar, pdb: Option<Pdb>) {
        match bar {
            Bar::Bar1 => self.bar1 = pdb,
            Bar::Bar2 => self.bar2 = pdb,
        }
    }

    /// The PDB bound to `bar`.
    #[must_use]
    pub fn bar_pdb(&self, bar: Bar) -> Option<Pdb> {
        match bar {
            Bar::Bar1 => self.bar1,
            Bar::Bar2 => self.bar2,
        }
    }

    /// Whether BAR accesses are privileged (default: not, so pages with the PRIVILEGE bit fault
    /// through the BARs).
    pub fn set_bar_privileged(&mut self, privileged: bool) {
        self.bar_privileged = privileged;
    }

    /// The BAR access counters.
    #[must_use]
    pub fn bar_accesses(&self) -> BarAccesses {
        self.bar_counts
    }

    /// Translates an access to `va` through `bar` (hub TLB, then the reference MMU).
    ///
    /// # Errors
    ///
    /// [`BarError::Unbound`] or the MMU's [`BarError::Fault`].
    pub fn bar_translate(
        &mut self,
        bar: Bar,
        va: VirtAddr,
        access: Access,
    ) -> Result<Translation, BarError> {
        let pdb = self.bar_pdb(bar).ok_or(BarError::Unbound(bar))?;
        Ok(self
            .tlb
            .translate(&self.vram, TlbPath::Hub, pdb, va, access)?)
    }

    /// Translates a channel (engine) access through the GPC TLB.
    ///
    /// # Errors
    ///
    /// The MMU's [`Fault`].
    pub fn channel_translate(
        &mut self,
        pdb: Pdb,
        va: VirtAddr,
        access: Access,
    ) -> Result<Translation, Fault> {
        self.tlb
            .translate(&self.vram, TlbPath::Gpc, pdb, va, access)
    }

    /// The VRAM address of an access of `len` bytes at `va` through `bar`.
    fn bar_addr(&mut self, bar: Bar, va: VirtAddr, len: u64, write: bool) -> Result<u64, BarError> {
        if !va.is_aligned_to(len) {
            return Err(BarError::Misaligned { va, align: len });
        }
        let access = Access {
            kind: if write {
                crate::refmmu::AccessKind::Write
            } else {
                crate::refmmu::AccessKind::Read
            },
            privileged: self.bar_privileged,
        };
        let t = self.bar_translate(bar, va, access)?;
        if t.mapping.aperture != Aperture::Vidmem {
            return Err(BarError::NotVidmem(t.mapping.aperture));
        }
        let pa = t.pa.raw();
        match pa.checked_add(len) {
            Some(end) if end <= self.vram.size() => Ok(pa),
            _ => Err(BarError::Vram(VramError::OutOfRange {
                addr: VramAddress::new(pa),
                len,
            })),
        }
    }

    fn counted<T>(&mut self, r: Result<T, BarError>, write: bool) -> Result<T, BarError> {
        let c = &mut self.bar_counts;
        match (&r, write) {
            (Err(_), _) => c.errors += 1,
            (Ok(_), true) => c.writes += 1,
            (Ok(_), false) => c.reads += 1,
        }
        r
    }

    /// Reads `len` bytes (4 or 8) at `va` through `bar`.
    fn bar_read(&mut self, bar: Bar, va: VirtAddr, len: u64) -> Result<u64, BarError> {
        let r = self.bar_addr(bar, va, len, false).map(|pa| {
            if len == 4 {
                u64::from(self.vram.peek32(pa).unwrap_or(0))
            } else {
                self.vram.peek64(pa).unwrap_or(0)
            }
        });
        self.counted(r, false)
    }

    fn bar_write(&mut self, bar: Bar, va: VirtAddr, len: u64, value: u64) -> Result<(), BarError> {
        let r = self.bar_addr(bar, va, len, true).map(|pa| {
            if len == 4 {
                let [b0, b1, b2, b3, ..] = value.to_le_bytes();
                self.vram.poke_bytes(pa, &[b0, b1, b2, b3]);
            } else {
                self.vram.poke64(pa, value);
            }
        });
        self.counted(r, true)
    }

    /// Reads the 32-bit word at `va` in the BAR1 address space.
    ///
    /// # Errors
    ///
    /// See [`BarError`].
    pub fn bar1_read32(&mut self, va: VirtAddr) -> Result<u32, BarError> {
        self.bar_read(Bar::Bar1, va, 4)
            .map(|v| u32::try_from(v).unwrap_or(0))
    }

    /// Writes the 32-bit word at `va` in the BAR1 address space.
    ///
    /// # Errors
    ///
    /// See [`BarError`].
    pub fn bar1_write32(&mut self, va: VirtAddr, value: u32) -> Result<(), BarError> {
        self.bar_write(Bar::Bar1, va, 4, u64::from(value))
    }

    /// Reads the 64-bit word at `va` in the BAR1 address space.
    ///
    /// # Errors
    ///
    /// See [`BarError`].
    pub fn bar1_read64(&mut self, va: VirtAddr) -> Result<u64, BarError> {
        self.bar_read(Bar::Bar1, va, 8)
    }

    /// Writes the 64-bit word at `va` in the BAR1 address space.
    ///
    /// # Errors
    ///
    /// See [`BarError`].
    pub fn bar1_write64(&mut self, va: VirtAddr, value: u64) -> Result<(), BarError> {
        self.bar_write(Bar::Bar1, va, 8, value)
    }

    /// Reads the 32-bit word at `va` in the BAR2 address space.
    ///
    /// # Errors
    ///
    /// See [`BarError`].
    pub fn bar2_read32(&mut self, va: VirtAddr) -> Result<u32, BarError> {
        self.bar_read(Bar::Bar2, va, 4)
            .map(|v| u32::try_from(v).unwrap_or(0))
    }

    /// Writes the 32-bit word at `va` in the BAR2 address space.
    ///
    /// # Errors
    ///
    /// See [`BarError`].
    pub fn bar2_write32(&mut self, va: VirtAddr, value: u32) -> Result<(), BarError> {
        self.bar_write(Bar::Bar2, va, 4, u64::from(value))
    }

    /// Reads the 64-bit word at `va` in the BAR2 address space.
    ///
    /// # Errors
    ///
    /// See [`BarError`].
    pub fn bar2_read64(&mut self, va: VirtAddr) -> Result<u64, BarError> {
        self.bar_read(Bar::Bar2, va, 8)
    }

    /// Writes the 64-bit word at `va` in the BAR2 address space.
    ///
    /// # Errors
    ///
    /// See [`BarError`].
    pub fn bar2_write64(&mut self, va: VirtAddr, value: u64) -> Result<(), BarError> {
        self.bar_write(Bar::Bar2, va, 8, value)
    }
}

impl VramAccess for SimGpu {
    fn size(&self) -> u64 {
        self.vram.size()
    }
    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
        self.vram.read32(addr)
    }
    fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError> {
        self.vram.write32(addr, value)
    }
    fn read64(&mut self, addr: VramAddress) -> Result<u64, VramError> {
        self.vram.read64(addr)
    }
    fn write64(&mut self, addr: VramAddress, value: u64) -> Result<(), VramError> {
        self.vram.write64(addr, value)
    }
    fn read_u64s(&mut self, addr: VramAddress, out: &mut [u64]) -> Result<(), VramError> {
        self.vram.read_u64s(addr, out)
    }
    fn write_u64s(&mut self, addr: VramAddress, words: &[u64]) -> Result<(), VramError> {
        self.vram.write_u64s(addr, words)
    }
    fn fill_u64(&mut self, addr: VramAddress, value: u64, count: u64) -> Result<(), VramError> {
        self.vram.fill_u64(addr, value, count)
    }
}

impl TlbInvalidate for SimGpu {
    fn invalidate(&mut self, req: &InvalidateRequest) -> Result<(), TlbError> {
        self.tlb.invalidate(req)
    }
}

#[cfg(test)]
mod tests;
