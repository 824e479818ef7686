//! [`VramImage`]: a VRAM image file as a read-only [`VramAccess`] backend.
//!
//! A VRAM image is a raw file whose byte offset is the VRAM address. Images of real GPUs
//! (80-192 GiB) are sparse files of that apparent size, so the image is never read whole: every
//! access is one positioned read (`pread`) of exactly the bytes asked for. The image is opened
//! read-only and every write returns [`READ_ONLY`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nova_mm_core::vram::check_access;
use nova_mm_core::{MmuVersion, VramAccess, VramAddress, VramError};
use zerocopy::IntoBytes;

use crate::progress::Progress;

/// `EROFS` on Linux.
const EROFS: i32 = 30;
/// `EIO` on Linux.
const EIO: i32 = 5;

/// The error every write to a [`VramImage`] returns: `VramError::Backend(-EROFS)`. The core's
/// `VramError` has no read-only variant; a backend-specific code is what the trait provides for
/// this.
pub const READ_ONLY: VramError = VramError::Backend(-EROFS);

/// Why an image could not be opened, checked or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened or inspected.
    #[error("cannot open VRAM image {path}: {source}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The path is a directory or another non-regular file.
    #[error("VRAM image {path} is not a regular file")]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// The PDB is not 4 KiB aligned (the instance block and the invalidate registers hold
    /// `PDB >> 12`).
    #[error("PDB {pdb:#x} is not 4 KiB aligned")]
    PdbMisaligned {
        /// The PDB given.
        pdb: u64,
    },
    /// The root page directory at the PDB does not lie inside the image.
    #[error("PDB {pdb:#x} is outside the VRAM image {path} ({size:#x} bytes)")]
    PdbOutside {
        /// The PDB given.
        pdb: u64,
        /// The image size in bytes.
        size: u64,
        /// The image path.
        path: PathBuf,
    },
    /// Writing an image failed.
    #[error("cannot write VRAM image {path}: {source}")]
    Write {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Reading the VRAM to save failed.
    #[error("cannot read VRAM at {addr} to save it: {source}")]
    Read {
        /// Where the read failed.
        addr: VramAddress,
        /// The backend error.
        source: VramError,
    },
}

/// A read-only VRAM image file.
#[derive(Debug)]
pub struct VramImage {
    file: File,
    size: u64,
    path: PathBuf,
}

impl VramImage {
    /// Opens `path` read-only; its length is the VRAM size. Nothing is read.
    ///
    /// # Errors
    ///
    /// [`ImageError::Open`] (missing file, no permission) or [`ImageError::NotAFile`].
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let open_err = |source| ImageError::Open {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new().read(true).open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if !meta.is_file() {
            return Err(ImageError::NotAFile {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            file,
            size: meta.len(),
            path: path.to_owned(),
        })
    }

    /// The image's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that `pdb` is 4 KiB aligned and that the root page directory of an `mmu` address
    /// space at `pdb` (4 entries of 8 bytes for v2's PD3, 2 for v3's PD4) lies inside the image.
    ///
    /// # Errors
    ///
    /// [`ImageError::PdbMisaligned`] or [`ImageError::PdbOutside`].
    pub fn check_pdb(&self, pdb: u64, mmu: MmuVersion) -> Result<(), ImageError> {
        if pdb % 4096 != 0 {
            return Err(ImageError::PdbMisaligned { pdb });
        }
        let root_bytes = root_directory_bytes(mmu);
        match pdb.checked_add(root_bytes) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(ImageError::PdbOutside {
                pdb,
                size: self.size,
                path: self.path.clone(),
            }),
        }
    }

    fn read_at(&self, addr: VramAddress, buf: &mut [u8]) -> Result<(), VramError> {
        self.file
            .read_exact_at(buf, addr.raw())
            .map_err(|e| io_to_vram(&e, addr, buf.len()))
    }
}

/// Bytes of the root page directory: v2's PD3 has 4 entries, v3's PD4 has 2, 8 bytes each
/// (`mmu-formats.md`).
#[must_use]
pub fn root_directory_bytes(mmu: MmuVersion) -> u64 {
    match mmu {
        MmuVersion::V2 => 4 * 8,
        MmuVersion::V3 => 2 * 8,
    }
}

/// Bytes in a run of `count` 64-bit words, as an out-of-range error on overflow.
fn run_bytes(addr: VramAddress, count: u64) -> Result<u64, VramError> {
    count.checked_mul(8).ok_or(VramError::OutOfRange {
        addr,
        len: u64::MAX,
    })
}

fn io_to_vram(e: &io::Error, addr: VramAddress, len: usize) -> VramError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        // The file shrank after it was opened.
        return VramError::OutOfRange {
            addr,
            len: u64::try_from(len).unwrap_or(u64::MAX),
        };
    }
    VramError::Backend(e.raw_os_error().map_or(-EIO, |errno| -errno))
}

impl VramAccess for VramImage {
    fn size(&self) -> u64 {
        self.size
    }

    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
        check_access(addr, 4, 4, self.size)?;
        let mut b = [0u8; 4];
        self.read_at(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn write32(&mut self, addr: VramAddress, _value: u32) -> Result<(), VramError> {
        check_access(addr, 4, 4, self.size)?;
        Err(READ_ONLY)
    }

    fn read64(&mut self, addr: VramAddress) -> Result<u64, VramError> {
        check_access(addr, 8, 8, self.size)?;
        let mut b = [0u8; 8];
        self.read_at(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn write64(&mut self, addr: VramAddress, _value: u64) -> Result<(), VramError> {
        check_access(addr, 8, 8, self.size)?;
        Err(READ_ONLY)
    }

    /// One `pread` for the whole run.
    fn read_u64s(&mut self, addr: VramAddress, out: &mut [u64]) -> Result<(), VramError> {
        let len = run_bytes(addr, u64::try_from(out.len()).unwrap_or(u64::MAX))?;
        check_access(addr, len, 8, self.size)?;
        self.read_at(addr, out.as_mut_bytes())?;
        for w in out.iter_mut() {
            *w = u64::from_le(*w);
        }
        Ok(())
    }

    fn write_u64s(&mut self, addr: VramAddress, words: &[u64]) -> Result<(), VramError> {
        let count = u64::try_from(words.len()).unwrap_or(u64::MAX);
        check_access(addr, run_bytes(addr, count)?, 8, self.size)?;
        Err(READ_ONLY)
    }

    fn fill_u64(&mut self, addr: VramAddress, _value: u64, count: u64) -> Result<(), VramError> {
        check_access(addr, run_bytes(addr, count)?, 8, self.size)?;
        Err(READ_ONLY)
    }
}

/// Writes all of `src`'s VRAM to a new image at `path` as a sparse file: the file gets the VRAM's
/// size and only 64 KiB blocks that are not all zero are written. Reads go through
/// `read_u64s` in 64 KiB runs, so this reads the whole VRAM (the simulated VRAM is fast at
/// that); progress is reported to `progress`.
///
/// # Errors
///
/// [`ImageError::Write`] or [`ImageError::Read`]. A partly written file is left behind.
pub fn save_image(
    path: &Path,
    src: &mut dyn VramAccess,
    progress: &Progress,
) -> Result<(), ImageError> {
    const BLOCK_WORDS: usize = 64 * 1024 / 8;
    let write_err = |source| ImageError::Write {
        path: path.to_owned(),
        source,
    };
    let file = File::create(path).map_err(write_err)?;
    let size = src.size();
    file.set_len(size).map_err(write_err)?;
    progress.set_length(size);
    let mut buf = vec![0u64; BLOCK_WORDS];
    let mut addr = 0u64;
    while addr < size {
        let words = usize::try_from((size - addr) / 8)
            .unwrap_or(usize::MAX)
            .min(BLOCK_WORDS);
        if words == 0 {
            break; // A tail shorter than 8 bytes cannot be read by the word API; it stays zero.
        }
        let chunk = &mut buf[..words];
        let at = VramAddress::new(addr);
        src.read_u64s(at, chunk)
            .map_err(|source| ImageError::Read { addr: at, source })?;
        if chunk.iter().any(|&w| w != 0) {
            for w in chunk.iter_mut() {
                *w = w.to_le();
            }
            file.write_all_at(chunk.as_bytes(), addr)
                .map_err(write_err)?;
        }
        let n = u64::try_from(words).unwrap_or(0) * 8;
        addr += n;
        progress.inc(n);
    }
    progress.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with(bytes: &[u8]) -> (tempfile::NamedTempFile, VramImage) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        let img = VramImage::open(f.path()).unwrap();
        (f, img)
    }

    #[test]
    fn reads_little_endian_words_on_demand() {
        let bytes: Vec<u8> = (0u8..64).collect();
        let (_f, mut img) = image_with(&bytes);
        assert_eq!(img.size(), 64);
        assert_eq!(img.read32(VramAddress::new(4)).unwrap(), 0x0706_0504);
        assert_eq!(
            img.read64(VramAddress::new(8)).unwrap(),
            0x0f0e_0d0c_0b0a_0908
        );
        let mut out = [0u64; 3];
        img.read_u64s(VramAddress::new(16), &mut out).unwrap();
        assert_eq!(out[0], 0x1716_1514_1312_1110);
        assert_eq!(out[2], 0x2726_2524_2322_2120);
        assert_eq!(
            img.read64(VramAddress::new(60)),
            Err(VramError::Misaligned {
                addr: VramAddress::new(60),
                align: 8
            })
        );
        assert_eq!(
            img.read64(VramAddress::new(64)),
            Err(VramError::OutOfRange {
                addr: VramAddress::new(64),
                len: 8
            })
        );
        assert!(matches!(
            img.read_u64s(VramAddress::new(48), &mut [0u64; 3]),
            Err(VramError::OutOfRange { .. })
        ));
    }

    #[test]
    fn writes_are_refused() {
        let (f, mut img) = image_with(&[0u8; 64]);
        assert_eq!(img.write32(VramAddress::new(0), 1), Err(READ_ONLY));
        assert_eq!(img.write64(VramAddress::new(8), 1), Err(READ_ONLY));
        assert_eq!(img.write_u64s(VramAddress::new(8), &[1, 2]), Err(READ_ONLY));
        assert_eq!(img.fill_u64(VramAddress::new(8), 1, 2), Err(READ_ONLY));
        assert!(matches!(
            img.write64(VramAddress::new(64), 1),
            Err(VramError::OutOfRange { .. })
        ));
        assert_eq!(std::fs::read(f.path()).unwrap(), [0u8; 64]);
    }

    #[test]
    fn open_and_pdb_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.bin");
        let e = VramImage::open(&missing).unwrap_err();
        assert!(matches!(e, ImageError::Open { .. }));
        assert!(e.to_string().starts_with("cannot open VRAM image "));
        assert!(matches!(
            VramImage::open(dir.path()).unwrap_err(),
            ImageError::NotAFile { .. }
        ));
        let (_f, img) = image_with(&[0u8; 8192]);
        img.check_pdb(0x1000, MmuVersion::V2).unwrap();
        img.check_pdb(0x1000, MmuVersion::V3).unwrap();
        assert!(matches!(
            img.check_pdb(0x1008, MmuVersion::V2),
            Err(ImageError::PdbMisaligned { pdb: 0x1008 })
        ));
        assert!(matches!(
            img.check_pdb(0x2000, MmuVersion::V2),
            Err(ImageError::PdbOutside {
                pdb: 0x2000,
                size: 0x2000,
                ..
            })
        ));
        assert!(matches!(
            img.check_pdb(!0xfff, MmuVersion::V3),
            Err(ImageError::PdbOutside { .. })
        ));
    }

    #[test]
    fn huge_sparse_image_is_read_on_demand() {
        // 128 GiB apparent size; only one page is written.
        let f = tempfile::NamedTempFile::new().unwrap();
        let size = 128u64 << 30;
        f.as_file().set_len(size).unwrap();
        f.as_file()
            .write_all_at(&0x1122_3344_5566_7788u64.to_le_bytes(), size - 4096)
            .unwrap();
        let mut img = VramImage::open(f.path()).unwrap();
        assert_eq!(img.size(), size);
        img.check_pdb(size - 4096, MmuVersion::V2).unwrap();
        assert_eq!(
            img.read64(VramAddress::new(size - 4096)).unwrap(),
            0x1122_3344_5566_7788
        );
        assert_eq!(img.read64(VramAddress::new(1 << 30)).unwrap(), 0);
    }

    #[test]
    fn save_image_round_trips_and_stays_sparse() {
        let (_src_file, mut src) = {
            let mut bytes = vec![0u8; 256 * 1024];
            bytes[0x1_0008..0x1_0010].copy_from_slice(&7u64.to_le_bytes());
            bytes[0x3_fff8..0x4_0000].copy_from_slice(&u64::MAX.to_le_bytes());
            image_with(&bytes)
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("saved.bin");
        save_image(&out, &mut src, &Progress::hidden()).unwrap();
        let mut img = VramImage::open(&out).unwrap();
        assert_eq!(img.size(), 256 * 1024);
        assert_eq!(img.read64(VramAddress::new(0x1_0008)).unwrap(), 7);
        assert_eq!(img.read64(VramAddress::new(0x3_fff8)).unwrap(), u64::MAX);
        assert_eq!(img.read64(VramAddress::new(0x2_0000)).unwrap(), 0);
    }
}
