//! Entry formats: decoding arbitrary raw entries never panics and whatever decodes
//! re-encodes canonically; arbitrary semantic states either encode with a typed error or
//! round-trip. See `nova_mm_fuzz::entries`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_mm_fuzz::entries::{check, EntryInput};

fuzz_target!(|input: EntryInput| {
    check(&input);
});
