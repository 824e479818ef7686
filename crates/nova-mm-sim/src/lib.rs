//! `nova-mm-sim`: a simulated NVIDIA GPU for testing nova-mm on a laptop.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bar0;
