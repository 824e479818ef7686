//! Raw VRAM image files: byte offset = VRAM address, written sparse.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{SimVram, SimVramError, PAGE_USIZE, SIM_PAGE_BYTES};

impl SimVram {
    /// Saves the VRAM as a raw image: byte offset = VRAM address, file length = VRAM size.
    /// Only the allocated non-zero pages are written (the file is extended with `set_len` and
    /// the writer seeks over holes), so on a file system with sparse files a 192 GiB image costs
    /// only the written pages. The file is not synced to disk.
    ///
    /// # Errors
    ///
    /// Any I/O error.
    pub fn save_image(&self, path: &Path) -> Result<(), SimVramError> {
        let mut f = File::create(path)?;
        f.set_len(self.size)?;
        let mut err = None;
        self.for_each_page(|addr, page| {
            if err.is_some() || page.iter().all(|&b| b == 0) {
                return;
            }
            let n = usize::try_from((self.size - addr).min(SIM_PAGE_BYTES)).unwrap_or(0);
            let r = f
                .seek(SeekFrom::Start(addr))
                .and_then(|_| f.write_all(&page[..n]));
            if let Err(e) = r {
                err = Some(e);
            }
        });
        match err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Loads a raw image written by [`SimVram::save_image`] (or any file whose byte offset is the
    /// VRAM address); the VRAM size is the file length. On Linux only the data extents are read
    /// (`SEEK_DATA` / `SEEK_HOLE`); elsewhere the whole file is read and all-zero pages skipped.
    ///
    /// # Errors
    ///
    /// I/O errors, or [`SimVramError::TooLarge`] for a file over 256 GiB.
    pub fn load_image(path: &Path) -> Result<Self, SimVramError> {
        let mut f = File::open(path)?;
        let size = f.metadata()?.len();
        let mut vram = Self::new(size)?;
        for (start, end) in data_extents(&f, size)? {
            // Extents from SEEK_DATA are file-system-block aligned; align to our pages anyway.
            let mut pos = start - start % SIM_PAGE_BYTES;
            f.seek(SeekFrom::Start(pos))?;
            let mut buf = [0u8; PAGE_USIZE];
            while pos < end {
                let n = usize::try_from((size - pos).min(SIM_PAGE_BYTES)).unwrap_or(0);
                f.read_exact(&mut buf[..n])?;
                vram.poke_bytes(pos, &buf[..n]);
                pos += SIM_PAGE_BYTES;
            }
        }
        Ok(vram)
    }
}

/// The `[start, end)` byte ranges of `f` that may hold data.
#[cfg(target_os = "linux")]
fn data_extents(f: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    use rustix::fs::{seek, SeekFrom as RSeek};
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(f, RSeek::Data(pos)) {
            Ok(s) => s,
            // ENXIO: no data after `pos`.
            Err(e) if e == rustix::io::Errno::NXIO => break,
            Err(e) => return Err(e.into()),
        };
        let end = seek(f, RSeek::Hole(start))
            .map_err(io::Error::from)?
            .min(size);
        if end <= start {
            break;
        }
        out.push((start, end));
        pos = end;
    }
    Ok(out)
}

/// Without `SEEK_DATA`, the whole file is one extent.
#[cfg(not(target_os = "linux"))]
fn data_extents(_f: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    Ok(vec![(0, size)])
}
