//! [`SimTlb`]: a TLB model in front of the reference MMU that makes missing or too-narrow
//! invalidates visible.
//!
//! Two TLBs are modelled, as on the hardware: the *hub* TLB, used for translations requested by
//! the host interface (BAR1/BAR2), and a *GPC* (engine) TLB, used for channel translations.
//! Each caches
//! - leaf translations ([`Mapping`]s), keyed by PDB, page size and the page's VA, and
//! - a page-walk cache per directory level: the raw PDE read at that level, keyed by PDB, level
//!   and the VA prefix the entry covers (`va >> va_shift(level)`), for entries the walk followed.
//!
//! A lookup first tries the leaf cache; on a miss the reference MMU walks the tables, taking
//! every directory entry it can from the page-walk cache, and the result fills both caches.
//! Faults are not cached. The caches are unbounded (nothing is ever evicted), so anything not
//! invalidated stays visible: a translation after an update that was not covered by an
//! invalidate returns the **stale** result.
//!
//! [`TlbInvalidate::invalidate`] drops exactly what the request's scope covers:
//! - `pdb`: one address space (PDB address *and* aperture must match) or all;
//! - `va`: all VAs, or entries whose VA range overlaps `[start, start + size)` (a zero size
//!   overlaps nothing);
//! - `cache_level`: `PteOnly` drops leaf translations only, `UpToPdeN` also drops cached PDEs of
//!   levels PD0..PDN, `All` drops everything;
//! - `hub_tlb_only`: only the hub TLB; the GPC TLB keeps everything.
//!
//! Every request is recorded (see [`SimTlb::history`]), and failures can be injected.

use std::collections::HashMap;

use nova_mm_core::tlb::{CacheLevel, InvalidateRequest, PdbTarget, TlbError, TlbInvalidate};
use nova_mm_core::{Chip, PageSize, VaScope, VirtAddr};

use crate::refmmu::{Access, EntrySource, Fault, Level, Mapping, Pdb, RefMmu, Translation};
use crate::vram::SimVram;

/// Which TLB a translation goes through.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TlbPath {
    /// The hub TLB: host-interface (BAR1/BAR2) translations.
    Hub,
    /// The GPC / engine TLB: channel translations.
    Gpc,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct LeafKey {
    pdb: Pdb,
    size: PageSize,
    va_base: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct PwcKey {
    pdb: Pdb,
    level: Level,
    prefix: u64,
}

/// One TLB's caches.
#[derive(Clone, Debug, Default)]
struct Caches {
    leaf: HashMap<LeafKey, Mapping>,
    pwc: HashMap<PwcKey, [u64; 2]>,
}

/// Counters of a [`SimTlb`].
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TlbStats {
    /// Lookups answered from the leaf cache.
    pub leaf_hits: u64,
    /// Lookups that walked.
    pub walks: u64,
    /// Directory entries taken from the page-walk cache during walks.
    pub pwc_hits: u64,
    /// Directory and PTE entries read from VRAM during walks.
    pub entry_reads: u64,
}

/// One recorded invalidate request and its outcome.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InvalidateRecord {
    /// The request as received.
    pub req: InvalidateRequest,
    /// What [`TlbInvalidate::invalidate`] returned.
    pub result: Result<(), TlbError>,
}

/// The TLB model. See the module documentation.
#[derive(Clone, Debug)]
pub struct SimTlb {
    mmu: RefMmu,
    hub: Caches,
    gpc: Caches,
    stats: TlbStats,
    history: Vec<InvalidateRecord>,
    /// `(n, error)`: the `n`-th invalidate from now fails with `error`.
    fail_at: Option<(u64, TlbError)>,
}

/// An entry source that serves directory entries from a page-walk cache.
struct Cached<'a> {
    vram: &'a SimVram,
    pwc: &'a HashMap<PwcKey, [u64; 2]>,
    pdb: Pdb,
    pwc_hits: u64,
    reads: u64,
}

impl EntrySource for Cached<'_> {
    fn read_entry(&mut self, level: Level, va: u64, addr: u64) -> Option<[u64; 2]> {
        if level.pde_level().is_some() {
            let key = PwcKey {
                pdb: self.pdb,
                level,
                prefix: va >> level.va_shift(),
            };
            if let Some(e) = self.pwc.get(&key) {
                self.pwc_hits += 1;
                return Some(*e);
            }
        }
        self.reads += 1;
        crate::refmmu::VramEntries(self.vram).read_entry(level, va, addr)
    }
}

impl SimTlb {
    /// An empty TLB in front of the strict reference MMU of `chip`.
    #[must_use]
    pub fn new(chip: Chip) -> Self {
        Self::with_mmu(RefMmu::new(chip))
    }

    /// An empty TLB in front of `mmu`.
    #[must_use]
    pub fn with_mmu(mmu: RefMmu) -> Self {
        Self {
            mmu,
            hub: Caches::default(),
            gpc: Caches::default(),
            stats: TlbStats::default(),
            history: Vec::new(),
            fail_at: None,
        }
    }

    /// The reference MMU behind the TLB.
    #[must_use]
    pub fn mmu(&self) -> RefMmu {
        self.mmu
    }

    /// Translates one access through the `path` TLB (possibly stale, by design).
    ///
    /// # Errors
    ///
    /// The walk's [`Fault`] on a miss, or a permission fault.
    pub fn translate(
        &mut self,
        vram: &SimVram,
        path: TlbPath,
        pdb: Pdb,
        va: VirtAddr,
        access: Access,
    ) -> Result<Translation, Fault> {
        self.lookup(vram, path, pdb, va)?.check(va, access)
    }

    /// The page `va` is in, as the `path` TLB sees it, without checking an access.
    ///
    /// # Errors
    ///
    /// The walk's [`Fault`] on a miss.
    pub fn lookup(
        &mut self,
        vram: &SimVram,
        path: TlbPath,
        pdb: Pdb,
        va: VirtAddr,
    ) -> Result<Mapping, Fault> {
        let chip = self.mmu.chip();
        let mmu = self.mmu;
        let caches = match path {
            TlbPath::Hub => &mut self.hub,
            TlbPath::Gpc => &mut self.gpc,
        };
        for size in PageSize::ALL {
            if !chip.supports_page_size(size) {
                continue;
            }
            let key = LeafKey {
                pdb,
                size,
                va_base: va.raw() & !(size.bytes() - 1),
            };
            if let Some(m) = caches.leaf.get(&key) {
                let m = *m;
                self.stats.leaf_hits += 1;
                return Ok(m);
            }
        }
        let mut src = Cached {
            vram,
            pwc: &caches.pwc,
            pdb,
            pwc_hits: 0,
            reads: 0,
        };
        let walk = mmu.walk_with(&mut src, pdb, va);
        let (pwc_hits, reads) = (src.pwc_hits, src.reads);
        for s in walk.steps.iter().filter(|s| s.followed) {
            if s.level.pde_level().is_some() {
                let key = PwcKey {
                    pdb,
                    level: s.level,
                    prefix: va.raw() >> s.level.va_shift(),
                };
                caches.pwc.insert(key, s.entry);
            }
        }
        if let Ok(m) = walk.result {
            let key = LeafKey {
                pdb,
                size: m.page_size,
                va_base: m.va_base.raw(),
            };
            caches.leaf.insert(key, m);
        }
        self.stats.walks += 1;
        self.stats.pwc_hits += pwc_hits;
        self.stats.entry_reads += reads;
        walk.result
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> TlbStats {
        self.stats
    }

    /// Resets the counters (not the history).
    pub fn reset_stats(&mut self) {
        self.stats = TlbStats::default();
    }

    /// Number of invalidates that succeeded.
    #[must_use]
    pub fn invalidate_count(&self) -> usize {
        self.history.iter().filter(|r| r.result.is_ok()).count()
    }

    /// Every invalidate request received (failed ones included), oldest first.
    #[must_use]
    pub fn history(&self) -> &[InvalidateRecord] {
        &self.history
    }

    /// Returns and clears the history.
    pub fn take_history(&mut self) -> Vec<InvalidateRecord> {
        std::mem::take(&mut self.history)
    }

    /// Makes the `n`-th invalidate from now (1-based) fail with `error` and drop nothing
    /// (it is still recorded). A later call replaces the setting; `None` or `n = 0` disarms.
    pub fn fail_invalidate(&mut self, at: Option<(u64, TlbError)>) {
        self.fail_at = at;
    }

    /// Drops everything from both TLBs without recording a request (test setup).
    pub fn flush_all(&mut self) {
        self.hub = Caches::default();
        self.gpc = Caches::default();
    }

    /// Number of cached leaf translations in the `path` TLB.
    #[must_use]
    pub fn cached_translations(&self, path: TlbPath) -> usize {
        match path {
            TlbPath::Hub => self.hub.leaf.len(),
            TlbPath::Gpc => self.gpc.leaf.len(),
        }
    }

    /// Number of cached directory entries in the `path` TLB's page-walk cache.
    #[must_use]
    pub fn cached_pdes(&self, path: TlbPath) -> usize {
        match path {
            TlbPath::Hub => self.hub.pwc.len(),
            TlbPath::Gpc => self.gpc.pwc.len(),
        }
    }
}

fn pdb_matches(target: PdbTarget, pdb: Pdb) -> bool {
    match target {
        PdbTarget::All => true,
        PdbTarget::One { addr, aperture } => pdb.addr == addr && pdb.aperture == aperture,
    }
}

/// Whether `[base, base + len)` overlaps the scope.
fn va_matches(scope: VaScope, base: u64, len: u64) -> bool {
    match scope {
        VaScope::All => true,
        VaScope::Range { start, size } => {
            let s = start.raw();
            size != 0 && s < base.saturating_add(len) && base < s.saturating_add(size)
        }
    }
}

/// Whether `req_level` drops cached PDEs of `level`.
fn level_covered(req_level: CacheLevel, level: Level) -> bool {
    match level.pde_level().and_then(CacheLevel::up_to_pde) {
        Some(l) => req_level.covers(l),
        None => true,
    }
}

impl Caches {
    fn drop_scope(&mut self, req: &InvalidateRequest) {
        self.leaf.retain(|k, _| {
            !(pdb_matches(req.pdb, k.pdb) && va_matches(req.va, k.va_base, k.size.bytes()))
        });
        self.pwc.retain(|k, _| {
            let shift = k.level.va_shift();
            let base = k.prefix.checked_shl(shift).unwrap_or(u64::MAX);
            let len = 1u64.checked_shl(shift).unwrap_or(u64::MAX);
            !(pdb_matches(req.pdb, k.pdb)
                && level_covered(req.cache_level, k.level)
                && va_matches(req.va, base, len))
        });
    }
}

impl TlbInvalidate for SimTlb {
    fn invalidate(&mut self, req: &InvalidateRequest) -> Result<(), TlbError> {
        let result = match self.fail_at {
            Some((n, err)) => {
                if n <= 1 {
                    self.fail_at = None;
                    if n == 1 {
                        Err(err)
                    } else {
                        Ok(())
                    }
                } else {
                    self.fail_at = Some((n - 1, err));
                    Ok(())
                }
            }
            None => Ok(()),
        };
        self.history.push(InvalidateRecord { req: *req, result });
        if result.is_ok() {
            self.hub.drop_scope(req);
            if !req.hub_tlb_only {
                self.gpc.drop_scope(req);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests;
