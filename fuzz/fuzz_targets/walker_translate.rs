//! The core's walker (translate and range walk) over arbitrary VRAM images and PDBs: never
//! panics, hangs, writes or reads outside the image, and agrees with the simulator's reference
//! MMU wherever both answer. See `nova_mm_fuzz::walker`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_mm_fuzz::image::ImageInput;

fuzz_target!(|input: ImageInput| {
    nova_mm_fuzz::walker::check(&input);
});
