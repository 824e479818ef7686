//! Shared generators and oracles for nova-mm's cargo-fuzz targets.
//!
//! The targets in `fuzz_targets/` are thin: they take an [`arbitrary`] input type from
//! [`gen`] and hand it to a checker here, so that a crash found by one target can be replayed
//! from a unit test or another tool without copying code.
//!
//! - [`gen`]: `Arbitrary` inputs that turn into the core's semantic types (chips, levels,
//!   entry states), biased so that legal values come up often;
//! - [`entries`]: the entry-format oracles (decode/encode round trips);
//! - [`image`]: arbitrary VRAM images with page-table chains, for the walker targets;
//! - [`walker`], [`buddy`], [`vmm`]: the oracles of the other targets;
//! - [`refmmu`]: the reference-MMU oracles (no panic, bounded reads, consistent results,
//!   agreement with the core's entry decoders).

pub mod buddy;
pub mod entries;
pub mod gen;
pub mod image;
pub mod refmmu;
pub mod vmm;
pub mod walker;
