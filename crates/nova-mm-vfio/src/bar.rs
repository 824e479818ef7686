//! A BAR of a VFIO device as the core's [`Mmio`]: mmapped where the kernel allows (honouring
//! sparse-mmap areas), `pread`/`pwrite` on the device file elsewhere.

use std::cell::Cell;

use nova_mm_core::hw::mmio::{check_mmio, Mmio, MmioError};

use crate::device::{DeviceFd, Mapping};
use crate::error::VfioError;
use crate::region::RegionInfo;

/// `EIO`, for short transfers.
const EIO: i32 = 5;

/// Counters of how accesses were served.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct BarStats {
    /// Accesses served through an mmap.
    pub mapped: u64,
    /// Accesses served by `pread`/`pwrite`.
    pub syscalls: u64,
}

/// One BAR of an open VFIO device.
#[derive(Debug)]
pub struct VfioBar<D> {
    device: D,
    info: RegionInfo,
    /// (offset in the BAR, mapping), sorted by offset.
    maps: Vec<(u64, Mapping)>,
    stats: Cell<BarStats>,
}

impl<D: DeviceFd> VfioBar<D> {
    /// Sets up BAR access for `info`. With `map` set, every mmap-able area (the sparse areas,
    /// or the whole BAR) is mapped; an area the kernel refuses to map is served by
    /// `pread`/`pwrite` instead.
    ///
    /// # Errors
    ///
    /// [`VfioError::BadRegionInfo`] when the region is not readable and writable.
    pub fn new(device: D, info: RegionInfo, map: bool) -> Result<Self, VfioError> {
        if !info.read || !info.write {
            return Err(VfioError::BadRegionInfo {
                index: info.index,
                what: "BAR is not readable and writable",
            });
        }
        let mut maps = Vec::new();
        if map {
            for area in info.mmap_areas() {
                let (Some(file_off), Ok(len)) = (
                    info.offset.checked_add(area.offset),
                    usize::try_from(area.size),
                ) else {
                    continue;
                };
                if let Ok(m) = device.map(file_off, len) {
                    maps.push((area.offset, m));
                }
            }
        }
        maps.sort_by_key(|(o, _)| *o);
        Ok(VfioBar {
            device,
            info,
            maps,
            stats: Cell::new(BarStats::default()),
        })
    }

    /// The region information.
    #[must_use]
    pub fn info(&self) -> &RegionInfo {
        &self.info
    }

    /// Bytes of the BAR that are mmapped.
    #[must_use]
    pub fn mapped_bytes(&self) -> u64 {
        self.maps.iter().map(|(_, m)| m.len() as u64).sum()
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> BarStats {
        self.stats.get()
    }

    /// The mapping and offset inside it serving `[offset, offset + width)`, if any.
    fn mapped(&self, offset: u32, width: u8) -> Option<(&Mapping, usize)> {
        let off = u64::from(offset);
        let idx = self
            .maps
            .partition_point(|(start, _)| *start <= off)
            .checked_sub(1)?;
        let (start, m) = self.maps.get(idx)?;
        let inside = usize::try_from(off - start).ok()?;
        (inside.checked_add(usize::from(width))? <= m.len()).then_some((m, inside))
    }

    fn count(&self, mapped: bool) {
        let mut s = self.stats.get();
        if mapped {
            s.mapped += 1;
        } else {
            s.syscalls += 1;
        }
        self.stats.set(s);
    }

    fn pread<const N: usize>(&self, offset: u32) -> Result<[u8; N], MmioError> {
        let mut buf = [0u8; N];
        let at = self
            .info
            .offset
            .checked_add(u64::from(offset))
            .ok_or(MmioError::Io(-EIO))?;
        self.count(false);
        match self.device.read_at(&mut buf, at) {
            Ok(n) if n == N => Ok(buf),
            Ok(_) => Err(MmioError::Io(-EIO)),
            Err(e) => Err(MmioError::Io(-e.raw_os_error().unwrap_or(EIO))),
        }
    }

    fn pwrite(&self, offset: u32, bytes: &[u8]) -> Result<(), MmioError> {
        let at = self
            .info
            .offset
            .checked_add(u64::from(offset))
            .ok_or(MmioError::Io(-EIO))?;
        self.count(false);
        match self.device.write_at(bytes, at) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(_) => Err(MmioError::Io(-EIO)),
            Err(e) => Err(MmioError::Io(-e.raw_os_error().unwrap_or(EIO))),
        }
    }
}

macro_rules! rw {
    ($read:ident, $write:ident, $t:ty, $w:literal) => {
        fn $read(&self, offset: u32) -> Result<$t, MmioError> {
            check_mmio(offset, $w, self.bar_size())?;
            if let Some((m, at)) = self.mapped(offset, $w) {
                self.count(true);
                return m.read::<$t>(at).ok_or(MmioError::Io(-EIO));
            }
            self.pread::<$w>(offset).map(<$t>::from_le_bytes)
        }
        fn $write(&self, offset: u32, value: $t) -> Result<(), MmioError> {
            check_mmio(offset, $w, self.bar_size())?;
            if let Some((m, at)) = self.mapped(offset, $w) {
                self.count(true);
                return m.write::<$t>(at, value).ok_or(MmioError::Io(-EIO));
            }
            self.pwrite(offset, &value.to_le_bytes())
        }
    };
}

impl<D: DeviceFd> Mmio for VfioBar<D> {
    fn bar_size(&self) -> u64 {
        self.info.size
    }

    /// vfio-pci performs 8-byte `pread`/`pwrite` as one 64-bit access, and a mapped BAR takes
    /// single 64-bit loads and stores on 64-bit hosts.
    fn has_native_64(&self) -> bool {
        cfg!(target_pointer_width = "64")
    }

    rw!(read32, write32, u32, 4);
    rw!(read64, write64, u64, 8);
    rw!(read16, write16, u16, 2);
    rw!(read8, write8, u8, 1);
}
