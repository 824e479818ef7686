//! The VRAM buddy allocator under arbitrary alloc/free/trim/reset_clear sequences, checked
//! against a per-chunk model and `check()` after every step. See `nova_mm_fuzz::buddy`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_mm_fuzz::buddy::{check, BuddyInput};

fuzz_target!(|input: BuddyInput| {
    check(&input);
});
