//! [`SimVram`]: sparse simulated video memory with counters and fault injection.
//!
//! Only the 4 KiB pages that were written with non-zero data are allocated, so a simulated
//! 192 GiB VRAM costs only what the test touched; reads of memory never written return 0.
//!
//! Every access through [`VramAccess`] (and the byte helpers [`SimVram::read_bytes`] /
//! [`SimVram::write_bytes`]) is counted in [`VramStats`] and passes the fault-injection rules
//! ([`FaultRule`]), so tests of the layers above can prove all-or-nothing behaviour. The
//! back-door accessors (`peek*` / `poke*`) bypass both: they are for oracles (the reference MMU)
//! and for test setup.
//!
//! Fault injection counts *word accesses*: a 32- or 64-bit access is one access, and a bulk
//! call counts one access per 64-bit word in address order, so a bulk write that hits an injected
//! fault in its fifth word has written the first four (the trait allows that, and it is the
//! adversarial case the layers above must survive). A byte-helper call is one access.

use std::collections::HashMap;
use std::io;

use nova_mm_core::vram::check_access;
use nova_mm_core::{VramAccess, VramAddress, VramError};

/// Allocation granularity of the simulated VRAM: 4 KiB.
pub const SIM_PAGE_BYTES: u64 = 4096;
const PAGE_USIZE: usize = 4096;

/// The largest simulated VRAM: 256 GiB.
pub const MAX_SIM_VRAM_BYTES: u64 = 256 << 30;

/// `-EIO`, the default error code for injected faults.
pub const EIO: i32 = -5;

type Page = Box<[u8; PAGE_USIZE]>;

/// Why a [`SimVram`] could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SimVramError {
    /// The requested size exceeds [`MAX_SIM_VRAM_BYTES`].
    #[error("simulated VRAM of {0} bytes exceeds the 256 GiB limit")]
    TooLarge(u64),
    /// Reading or writing an image file failed.
    #[error("VRAM image I/O: {0}")]
    Io(#[from] io::Error),
}

/// Which accesses a [`FaultRule`] applies to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FaultOps {
    /// Reads only.
    Reads,
    /// Writes only.
    Writes,
    /// Reads and writes.
    Both,
}

impl FaultOps {
    fn matches(self, write: bool) -> bool {
        match self {
            FaultOps::Reads => !write,
            FaultOps::Writes => write,
            FaultOps::Both => true,
        }
    }
}

/// When a [`FaultRule`] fires.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FaultTrigger {
    /// The `n`-th matching access (1-based, counted from when the rule was added) fails; every
    /// other access succeeds. `Nth(0)` never fires.
    Nth(u64),
    /// The first `n` matching accesses succeed, every later one fails.
    AfterN(u64),
    /// Every matching access overlapping `[start, end)` fails.
    Range {
        /// First faulting byte.
        start: u64,
        /// One past the last faulting byte.
        end: u64,
    },
}

/// One fault-injection rule: when it fires, the access fails with
/// [`VramError::Backend`]`(code)` and transfers nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FaultRule {
    /// When it fires.
    pub trigger: FaultTrigger,
    /// Which accesses it sees (and counts, for `Nth` / `AfterN`).
    pub ops: FaultOps,
    /// The backend error code returned.
    pub code: i32,
}

impl FaultRule {
    /// Fail the `n`-th access (reads and writes, 1-based) with `-EIO`.
    #[must_use]
    pub const fn nth(n: u64) -> Self {
        Self {
            trigger: FaultTrigger::Nth(n),
            ops: FaultOps::Both,
            code: EIO,
        }
    }

    /// Fail every access after the first `n` with `-EIO`.
    #[must_use]
    pub const fn after(n: u64) -> Self {
        Self {
            trigger: FaultTrigger::AfterN(n),
            ops: FaultOps::Both,
            code: EIO,
        }
    }

    /// Fail every access overlapping `[start, end)` with `-EIO`.
    #[must_use]
    pub const fn range(start: u64, end: u64) -> Self {
        Self {
            trigger: FaultTrigger::Range { start, end },
            ops: FaultOps::Both,
            code: EIO,
        }
    }

    /// The same rule, restricted to `ops`.
    #[must_use]
    pub const fn only(self, ops: FaultOps) -> Self {
        Self { ops, ..self }
    }

    /// The same rule, failing with `code`.
    #[must_use]
    pub const fn with_code(self, code: i32) -> Self {
        Self { code, ..self }
    }
}

#[derive(Clone, Copy, Debug)]
struct ArmedRule {
    rule: FaultRule,
    /// Matching accesses seen so far.
    seen: u64,
}

/// Number of calls of each access method, failed ones included.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct MethodCalls {
    /// [`VramAccess::read32`].
    pub read32: u64,
    /// [`VramAccess::write32`].
    pub write32: u64,
    /// [`VramAccess::read64`].
    pub read64: u64,
    /// [`VramAccess::write64`].
    pub write64: u64,
    /// [`VramAccess::read_u64s`].
    pub read_u64s: u64,
    /// [`VramAccess::write_u64s`].
    pub write_u64s: u64,
    /// [`VramAccess::fill_u64`].
    pub fill_u64: u64,
    /// [`SimVram::read_bytes`].
    pub read_bytes: u64,
    /// [`SimVram::write_bytes`].
    pub write_bytes: u64,
}

/// Access counters of a [`SimVram`] (back-door `peek`/`poke` accesses are not counted).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct VramStats {
    /// Word accesses that read successfully (a bulk read of `n` words counts `n`; a
    /// `read_bytes` call counts 1).
    pub reads: u64,
    /// Word accesses that wrote successfully (same counting as `reads`).
    pub writes: u64,
    /// Bytes read successfully.
    pub bytes_read: u64,
    /// Bytes written successfully.
    pub bytes_written: u64,
    /// Accesses failed by fault injection.
    pub injected_faults: u64,
    /// Calls per method.
    pub calls: MethodCalls,
}

/// Sparse simulated VRAM. See the module documentation.
#[derive(Debug)]
pub struct SimVram {
    size: u64,
    pages: HashMap<u64, Page>,
    stats: VramStats,
    rules: Vec<ArmedRule>,
}

fn page_of(addr: u64) -> (u64, usize) {
    let off = usize::try_from(addr % SIM_PAGE_BYTES).unwrap_or(0);
    (addr / SIM_PAGE_BYTES, off)
}

impl SimVram {
    /// An all-zero VRAM of `size` bytes (at most [`MAX_SIM_VRAM_BYTES`]); nothing is allocated.
    ///
    /// # Errors
    ///
    /// [`SimVramError::TooLarge`] above 256 GiB.
    pub fn new(size: u64) -> Result<Self, SimVramError> {
        if size > MAX_SIM_VRAM_BYTES {
            return Err(SimVramError::TooLarge(size));
        }
        Ok(Self {
            size,
            pages: HashMap::new(),
            stats: VramStats::default(),
            rules: Vec::new(),
        })
    }

    /// Number of 4 KiB pages currently allocated.
    #[must_use]
    pub fn allocated_pages(&self) -> usize {
        self.pages.len()
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> VramStats {
        self.stats
    }

    /// Resets every counter to zero (fault rules keep their own progress).
    pub fn reset_stats(&mut self) {
        self.stats = VramStats::default();
    }

    /// Adds a fault-injection rule; its access count starts now. Rules are checked in the order
    /// added; the first that fires decides the error code.
    pub fn add_fault(&mut self, rule: FaultRule) {
        self.rules.push(ArmedRule { rule, seen: 0 });
    }

    /// Replaces all rules by `rule` (or none).
    pub fn set_fault(&mut self, rule: Option<FaultRule>) {
        self.rules.clear();
        if let Some(r) = rule {
            self.add_fault(r);
        }
    }

    /// Removes every fault-injection rule.
    pub fn clear_faults(&mut self) {
        self.rules.clear();
    }

    /// The active rules.
    #[must_use]
    pub fn faults(&self) -> Vec<FaultRule> {
        self.rules.iter().map(|r| r.rule).collect()
    }

    /// Runs one access of `len` bytes at `addr` through the rules. Every rule counts the access
    /// (so `Nth` rules stay in step); the first that fires decides the code.
    fn inject(&mut self, addr: u64, len: u64, write: bool) -> Result<(), VramError> {
        let mut fired = None;
        for armed in &mut self.rules {
            if !armed.rule.ops.matches(write) {
                continue;
            }
            let fire = match armed.rule.trigger {
                FaultTrigger::Nth(n) => {
                    armed.seen = armed.seen.saturating_add(1);
                    armed.seen == n
                }
                FaultTrigger::AfterN(n) => {
                    armed.seen = armed.seen.saturating_add(1);
                    armed.seen > n
                }
                FaultTrigger::Range { start, end } => {
                    let last = addr.saturating_add(len);
                    len > 0 && addr < end && start < last
                }
            };
            if fire && fired.is_none() {
                fired = Some(armed.rule.code);
            }
        }
        match fired {
            Some(code) => {
                self.stats.injected_faults = self.stats.injected_faults.saturating_add(1);
                Err(VramError::Backend(code))
            }
            None => Ok(()),
        }
    }

    fn count(&mut self, len: u64, write: bool) {
        let s = &mut self.stats;
        if write {
            s.writes = s.writes.saturating_add(1);
            s.bytes_written = s.bytes_written.saturating_add(len);
        } else {
            s.reads = s.reads.saturating_add(1);
            s.bytes_read = s.bytes_read.saturating_add(len);
        }
    }

    // ---- back door: no counting, no fault injection ----

    /// Copies `out.len()` bytes starting at `addr` into `out`, bypassing counters and faults.
    /// Returns `false` (and copies nothing) if the range is not inside the VRAM.
    pub fn peek_bytes(&self, addr: u64, out: &mut [u8]) -> bool {
        let Ok(len) = u64::try_from(out.len()) else {
            return false;
        };
        if addr.checked_add(len).is_none_or(|end| end > self.size) {
            return false;
        }
        let mut a = addr;
        let mut done = 0usize;
        while done < out.len() {
            let (pg, off) = page_of(a);
            let n = (PAGE_USIZE - off).min(out.len() - done);
            let dst = &mut out[done..done + n];
            match self.pages.get(&pg) {
                Some(p) => dst.copy_from_slice(&p[off..off + n]),
                None => dst.fill(0),
            }
            done += n;
            a += n as u64;
        }
        true
    }

    /// Writes `data` at `addr`, bypassing counters and faults. Returns `false` (and writes
    /// nothing) if the range is not inside the VRAM. Writing zeros to unallocated pages
    /// allocates nothing.
    pub fn poke_bytes(&mut self, addr: u64, data: &[u8]) -> bool {
        let Ok(len) = u64::try_from(data.len()) else {
            return false;
        };
        if addr.checked_add(len).is_none_or(|end| end > self.size) {
            return false;
        }
        let mut a = addr;
        let mut done = 0usize;
        while done < data.len() {
            let (pg, off) = page_of(a);
            let n = (PAGE_USIZE - off).min(data.len() - done);
            let src = &data[done..done + n];
            if let Some(p) = self.pages.get_mut(&pg) {
                p[off..off + n].copy_from_slice(src);
            } else if src.iter().any(|&b| b != 0) {
                let mut p: Page = Box::new([0u8; PAGE_USIZE]);
                p[off..off + n].copy_from_slice(src);
                self.pages.insert(pg, p);
            }
            done += n;
            a += n as u64;
        }
        true
    }

    /// The 64-bit little-endian word at `addr` (any alignment), bypassing counters and faults;
    /// `None` outside the VRAM.
    #[must_use]
    pub fn peek64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.peek_bytes(addr, &mut b).then(|| u64::from_le_bytes(b))
    }

    /// The 32-bit word at `addr`, bypassing counters and faults; `None` outside the VRAM.
    #[must_use]
    pub fn peek32(&self, addr: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.peek_bytes(addr, &mut b).then(|| u32::from_le_bytes(b))
    }

    /// Writes a 64-bit word at `addr`, bypassing counters and faults; `false` outside the VRAM.
    pub fn poke64(&mut self, addr: u64, value: u64) -> bool {
        self.poke_bytes(addr, &value.to_le_bytes())
    }

    /// Writes a 32-bit word at `addr`, bypassing counters and faults; `false` outside the VRAM.
    pub fn poke32(&mut self, addr: u64, value: u32) -> bool {
        self.poke_bytes(addr, &value.to_le_bytes())
    }

    /// Calls `f(addr, page)` for every allocated page in address order.
    pub fn for_each_page(&self, mut f: impl FnMut(u64, &[u8; PAGE_USIZE])) {
        let mut keys: Vec<u64> = self.pages.keys().copied().collect();
        keys.sort_unstable();
        for k in keys {
            if let Some(p) = self.pages.get(&k) {
                f(k * SIM_PAGE_BYTES, p);
            }
        }
    }

    // ---- counted, fault-injected byte helpers ----

    /// Reads `out.len()` bytes at `addr` (any alignment) as one counted, fault-checked access.
    ///
    /// # Errors
    ///
    /// [`VramError::OutOfRange`], or an injected [`VramError::Backend`] (nothing is read).
    pub fn read_bytes(&mut self, addr: VramAddress, out: &mut [u8]) -> Result<(), VramError> {
        self.stats.calls.read_bytes += 1;
        let len = u64::try_from(out.len()).map_err(|_| VramError::OutOfRange {
            addr,
            len: u64::MAX,
        })?;
        check_access(addr, len, 1, self.size)?;
        self.inject(addr.raw(), len, false)?;
        self.peek_bytes(addr.raw(), out);
        self.count(len, false);
        Ok(())
    }

    /// Writes `data` at `addr` (any alignment) as one counted, fault-checked access.
    ///
    /// # Errors
    ///
    /// [`VramError::OutOfRange`], or an injected [`VramError::Backend`] (nothing is written).
    pub fn write_bytes(&mut self, addr: VramAddress, data: &[u8]) -> Result<(), VramError> {
        self.stats.calls.write_bytes += 1;
        let len = u64::try_from(data.len()).map_err(|_| VramError::OutOfRange {
            addr,
            len: u64::MAX,
        })?;
        check_access(addr, len, 1, self.size)?;
        self.inject(addr.raw(), len, true)?;
        self.poke_bytes(addr.raw(), data);
        self.count(len, true);
        Ok(())
    }

    fn word_read64(&mut self, addr: u64) -> Result<u64, VramError> {
        self.inject(addr, 8, false)?;
        self.count(8, false);
        Ok(self.peek64(addr).unwrap_or(0))
    }

    fn word_write64(&mut self, addr: u64, value: u64) -> Result<(), VramError> {
        self.inject(addr, 8, true)?;
        self.count(8, true);
        self.poke64(addr, value);
        Ok(())
    }
}

impl VramAccess for SimVram {
    fn size(&self) -> u64 {
        self.size
    }

    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
        self.stats.calls.read32 += 1;
        check_access(addr, 4, 4, self.size)?;
        self.inject(addr.raw(), 4, false)?;
        self.count(4, false);
        Ok(self.peek32(addr.raw()).unwrap_or(0))
    }

    fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError> {
        self.stats.calls.write32 += 1;
        check_access(addr, 4, 4, self.size)?;
        self.inject(addr.raw(), 4, true)?;
        self.count(4, true);
        self.poke32(addr.raw(), value);
        Ok(())
    }

    fn read64(&mut self, addr: VramAddress) -> Result<u64, VramError> {
        self.stats.calls.read64 += 1;
        check_access(addr, 8, 8, self.size)?;
        self.word_read64(addr.raw())
    }

    fn write64(&mut self, addr: VramAddress, value: u64) -> Result<(), VramError> {
        self.stats.calls.write64 += 1;
        check_access(addr, 8, 8, self.size)?;
        self.word_write64(addr.raw(), value)
    }

    fn read_u64s(&mut self, addr: VramAddress, out: &mut [u64]) -> Result<(), VramError> {
        self.stats.calls.read_u64s += 1;
        let len = words_len(addr, out.len())?;
        check_access(addr, len, 8, self.size)?;
        if self.rules.is_empty() {
            // Fast path: one copy per page; no rule can fire part-way.
            let mut buf = vec![0u8; out.len() * 8];
            self.peek_bytes(addr.raw(), &mut buf);
            for (slot, b) in out.iter_mut().zip(buf.chunks_exact(8)) {
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                *slot = u64::from_le_bytes(w);
            }
            self.stats.reads = self.stats.reads.saturating_add(len / 8);
            self.stats.bytes_read = self.stats.bytes_read.saturating_add(len);
            return Ok(());
        }
        let mut a = addr.raw();
        for slot in out.iter_mut() {
            *slot = self.word_read64(a)?;
            a += 8;
        }
        Ok(())
    }

    fn write_u64s(&mut self, addr: VramAddress, words: &[u64]) -> Result<(), VramError> {
        self.stats.calls.write_u64s += 1;
        let len = words_len(addr, words.len())?;
        check_access(addr, len, 8, self.size)?;
        if self.rules.is_empty() {
            let buf: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            self.poke_bytes(addr.raw(), &buf);
            self.stats.writes = self.stats.writes.saturating_add(len / 8);
            self.stats.bytes_written = self.stats.bytes_written.saturating_add(len);
            return Ok(());
        }
        let mut a = addr.raw();
        for &w in words {
            self.word_write64(a, w)?;
            a += 8;
        }
        Ok(())
    }

    fn fill_u64(&mut self, addr: VramAddress, value: u64, count: u64) -> Result<(), VramError> {
        self.stats.calls.fill_u64 += 1;
        let len = count.checked_mul(8).ok_or(VramError::OutOfRange {
            addr,
            len: u64::MAX,
        })?;
        check_access(addr, len, 8, self.size)?;
        let mut a = addr.raw();
        if self.rules.is_empty() && value == 0 {
            // Fast path: zeroing touches only allocated pages.
            let end = a + len;
            let first = a / SIM_PAGE_BYTES;
            let last = end.div_ceil(SIM_PAGE_BYTES);
            let touched: Vec<u64> = if last - first < self.pages.len() as u64 {
                (first..last)
                    .filter(|p| self.pages.contains_key(p))
                    .collect()
            } else {
                self.pages
                    .keys()
                    .copied()
                    .filter(|p| (first..last).contains(p))
                    .collect()
            };
            for pg in touched {
                let lo = (pg * SIM_PAGE_BYTES).max(a);
                let hi = ((pg + 1) * SIM_PAGE_BYTES).min(end);
                if let Some(p) = self.pages.get_mut(&pg) {
                    let (_, off) = page_of(lo);
                    let n = usize::try_from(hi - lo).unwrap_or(0);
                    p[off..off + n].fill(0);
                }
            }
            self.stats.writes = self.stats.writes.saturating_add(count);
            self.stats.bytes_written = self.stats.bytes_written.saturating_add(len);
            return Ok(());
        }
        if self.rules.is_empty() {
            // Fast path: write one page-sized pattern chunk at a time (`a` is 8-byte aligned,
            // so the pattern stays in phase across pages).
            let pattern: Vec<u8> = (0..PAGE_USIZE / 8)
                .flat_map(|_| value.to_le_bytes())
                .collect();
            let end = a + len;
            while a < end {
                let (_, off) = page_of(a);
                let n = ((PAGE_USIZE - off) as u64).min(end - a);
                let n_us = usize::try_from(n).unwrap_or(0);
                self.poke_bytes(a, &pattern[..n_us]);
                a += n;
            }
            self.stats.writes = self.stats.writes.saturating_add(count);
            self.stats.bytes_written = self.stats.bytes_written.saturating_add(len);
            return Ok(());
        }
        for _ in 0..count {
            self.word_write64(a, value)?;
            a += 8;
        }
        Ok(())
    }
}

fn words_len(addr: VramAddress, n: usize) -> Result<u64, VramError> {
    u64::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(8))
        .ok_or(VramError::OutOfRange {
            addr,
            len: u64::MAX,
        })
}

mod image;

#[cfg(test)]
mod tests;
