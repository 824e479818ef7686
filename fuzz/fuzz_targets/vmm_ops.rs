//! Address-space operation sequences (map/unmap/protect/sparse with mixed page sizes, wild
//! requests, allocation failures) checked against a model, the simulator's TLB and reference
//! MMU, and the core walker after every step. See `nova_mm_fuzz::vmm`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_mm_fuzz::vmm::{check, VmmInput};

fuzz_target!(|input: VmmInput| {
    check(&input);
});
