//! Helpers shared by the VMM integration tests.
#![allow(dead_code)]

pub mod backend;

use nova_mm_core::vmm::{PageTableAllocator, PtAllocError};
use nova_mm_core::VramAddress;

/// A free-list page-table allocator over `n` 4 KiB tables from `base`, with fault injection.
#[derive(Debug)]
pub struct ListAlloc {
    pub free: Vec<u64>,
    pub total: usize,
    pub allocs: u64,
    pub fail_at: Option<u64>,
}

impl ListAlloc {
    pub fn new(base: u64, n: usize) -> Self {
        Self {
            free: (0..n as u64).rev().map(|i| base + i * 4096).collect(),
            total: n,
            allocs: 0,
            fail_at: None,
        }
    }
    pub fn used(&self) -> usize {
        self.total - self.free.len()
    }
}

impl PageTableAllocator for ListAlloc {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        self.allocs += 1;
        if self.fail_at == Some(self.allocs) {
            return Err(PtAllocError::OutOfMemory);
        }
        self.free
            .pop()
            .map(VramAddress::new)
            .ok_or(PtAllocError::OutOfMemory)
    }
    fn free_table(&mut self, addr: VramAddress) {
        assert!(!self.free.contains(&addr.raw()), "double free of {addr}");
        self.free.push(addr.raw());
    }
}
