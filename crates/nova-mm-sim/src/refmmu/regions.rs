//! Enumerating an address space region by region.

use nova_mm_core::VirtAddr;

use super::{Fault, Level, Mapping, Pdb, RefMmu};
use crate::vram::SimVram;

impl RefMmu {
    /// The VA span (a power of two) around a VA that faulted with `fault` that is certain to
    /// fault the same way: the coverage of the entry that faulted, or 64 KiB where a
    /// neighbouring big PTE could still map something. `None` when everything from there on
    /// faults (root unreadable, VA out of range) or the fault is not about one entry.
    fn fault_span(&self, fault: &Fault) -> Option<u64> {
        let cover = |level: Level| 1u64 << level.va_shift();
        match *fault {
            Fault::PageTableInSysmem {
                level: Level::SmallPt,
            }
            | Fault::NoValid4k => Some(1 << 16),
            Fault::PageTableInSysmem { level } => {
                if level == Level::root(self.version()) {
                    return None;
                }
                // The entry pointing at the sysmem table is one level up.
                Some(match level {
                    Level::BigPt => cover(Level::Pd0),
                    Level::Pd0 => cover(Level::Pd1),
                    Level::Pd1 => cover(Level::Pd2),
                    Level::Pd2 => cover(Level::Pd3),
                    _ => cover(Level::Pd4),
                })
            }
            Fault::PdeInvalid { level }
            | Fault::Sparse { level }
            | Fault::LargePageNotAllowed { level }
            | Fault::InvalidPte { level }
            | Fault::MappingNowhere { level }
            | Fault::ReservedBits { level, .. }
            | Fault::MisalignedPage { level }
            | Fault::TableOutsideVram { level, .. } => Some(cover(level)),
            Fault::VaOutOfRange { .. }
            | Fault::PdbMisaligned { .. }
            | Fault::Privilege
            | Fault::ReadOnly
            | Fault::AtomicDisabled => None,
        }
    }

    /// Calls `f(start, len, result)` for consecutive regions covering `[start, end)` (clipped
    /// to the VA width): each region is one page (`Ok`) or a span that faults the same way
    /// (`Err`). Walks once per page or faulting entry, so an empty or sparse address space is
    /// cheap and a densely mapped one costs one walk per page. Stops early if `f` returns
    /// `false`.
    pub fn for_each_region(
        &self,
        vram: &SimVram,
        pdb: Pdb,
        start: VirtAddr,
        end: VirtAddr,
        mut f: impl FnMut(VirtAddr, u64, Result<Mapping, Fault>) -> bool,
    ) {
        let limit = end.raw().min(1u64 << self.version().va_bits());
        let mut va = start.raw();
        while va < limit {
            let r = self.walk(vram, pdb, VirtAddr::new(va));
            let next = match &r {
                Ok(m) => m.va_base.raw().checked_add(m.page_size.bytes()),
                Err(fault) => match self.fault_span(fault) {
                    Some(span) => (va | (span - 1)).checked_add(1),
                    None => Some(limit),
                },
            };
            let next = next.unwrap_or(limit).min(limit);
            if !f(VirtAddr::new(va), next - va, r) {
                return;
            }
            va = next;
        }
    }

    /// Every page mapped in `[start, end)`, in VA order. A page straddling `start` is
    /// included.
    #[must_use]
    pub fn mappings(
        &self,
        vram: &SimVram,
        pdb: Pdb,
        start: VirtAddr,
        end: VirtAddr,
    ) -> Vec<Mapping> {
        let mut out = Vec::new();
        self.for_each_region(vram, pdb, start, end, |_, _, r| {
            if let Ok(m) = r {
                out.push(m);
            }
            true
        });
        out
    }
}
