//! The simulator's reference MMU over arbitrary VRAM images and PDBs: never panics or hangs,
//! reads only inside the image, and gives self-consistent results that agree with the core's
//! entry decoders. See `nova_mm_fuzz::refmmu`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_mm_fuzz::image::ImageInput;

fuzz_target!(|input: ImageInput| {
    nova_mm_fuzz::refmmu::check(&input);
});
