//! Test doubles for self-tests that need neither `std` nor `alloc`: VRAM over a caller's word
//! slice, a recording [`TlbInvalidate`], and a fixed-size text buffer to check `Display` output.
//! Public so that other areas and the kernel backend can build their self-tests on them.

use core::fmt;

use crate::addr::VramAddress;
use crate::tlb::{InvalidateRequest, TlbError, TlbInvalidate};
use crate::vram::{check_access, VramAccess, VramError};

/// VRAM backed by a caller-provided slice of 32-bit words (on the stack, in a static, or from the
/// kernel allocator). Only the two 32-bit accesses are implemented, so the trait's default bulk
/// and 64-bit methods are what runs.
#[derive(Debug)]
pub struct SliceVram<'a> {
    words: &'a mut [u32],
    /// After this many more successful 32-bit accesses, every access fails with
    /// `VramError::Backend(-5)` (an injected `-EIO`). `None`: never fail.
    pub fail_after: Option<u32>,
    /// The number of 32-bit accesses performed so far (successful ones).
    pub accesses: u32,
}

impl<'a> SliceVram<'a> {
    /// VRAM of `4 * words.len()` bytes.
    pub fn new(words: &'a mut [u32]) -> Self {
        Self {
            words,
            fail_after: None,
            accesses: 0,
        }
    }

    /// The backing words, to check what was written.
    #[must_use]
    pub fn words(&self) -> &[u32] {
        self.words
    }

    fn slot(&mut self, addr: VramAddress) -> Result<&mut u32, VramError> {
        let size = self.size();
        check_access(addr, 4, 4, size)?;
        if let Some(left) = self.fail_after {
            match left.checked_sub(1) {
                Some(l) => self.fail_after = Some(l),
                None => return Err(VramError::Backend(-5)),
            }
        }
        let index =
            usize::try_from(addr.raw() >> 2).map_err(|_| VramError::OutOfRange { addr, len: 4 })?;
        self.accesses = self.accesses.saturating_add(1);
        self.words
            .get_mut(index)
            .ok_or(VramError::OutOfRange { addr, len: 4 })
    }
}

impl VramAccess for SliceVram<'_> {
    fn size(&self) -> u64 {
        u64::try_from(self.words.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(4)
    }

    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
        self.slot(addr).map(|w| *w)
    }

    fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError> {
        *self.slot(addr)? = value;
        Ok(())
    }
}

/// A [`TlbInvalidate`] that records the last request and counts calls, optionally failing.
#[derive(Debug, Default)]
pub struct RecordingTlb {
    /// Number of `invalidate` calls (failed ones included).
    pub calls: u32,
    /// The most recent request.
    pub last: Option<InvalidateRequest>,
    /// When set, every call fails with this error.
    pub fail_with: Option<TlbError>,
}

impl TlbInvalidate for RecordingTlb {
    fn invalidate(&mut self, req: &InvalidateRequest) -> Result<(), TlbError> {
        self.calls = self.calls.saturating_add(1);
        self.last = Some(*req);
        match self.fail_with {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A fixed-capacity text buffer implementing [`fmt::Write`]; writing past the end fails
/// (`fmt::Error`) instead of truncating silently.
#[derive(Debug)]
pub struct TextBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> TextBuf<N> {
    /// An empty buffer.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// The text written so far.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.bytes
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl<const N: usize> Default for TextBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for TextBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Whether `value` formats (with `Display`) to exactly `expected`.
pub fn displays_as(value: &dyn fmt::Display, expected: &str) -> bool {
    let mut buf = TextBuf::<128>::new();
    fmt::write(&mut buf, format_args!("{value}")).is_ok() && buf.as_str() == expected
}

/// Whether `value` formats (with `Debug`) to exactly `expected`.
pub fn debugs_as(value: &dyn fmt::Debug, expected: &str) -> bool {
    let mut buf = TextBuf::<128>::new();
    fmt::write(&mut buf, format_args!("{value:?}")).is_ok() && buf.as_str() == expected
}
